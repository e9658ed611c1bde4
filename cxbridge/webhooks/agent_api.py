"""The agent API of ``cxbridge serve``: what a helpdesk sidebar app reads and does for the agent at the ticket.

Routes (JSON in and out; every error is ``{"error": "<a sentence an agent can read>", "code": "..."}``):

- ``GET /agent/tickets/<id>``: the ticket view in one answer (``cxbridge.workflows.agent_view.ticket_view``):
  links with each issue's status, assignee and fix versions, the customer and the impact, the last failure, the
  agent's grants per action, the recent audit.
- ``POST /agent/tickets/<id>/escalate`` ``{"request_id", "note"?, "issue_key"?}``: escalate, or join ``issue_key``.
- ``POST /agent/tickets/<id>/decide`` ``{"request_id", "action", "value"?, "note"?, "reply"?}``: a decision
  under the policies, carried out (``act_on_ticket``; ``reply`` is the agent's words in a public reply); beyond
  every grant it is refused with 403, naming the rule that would allow it; one the ticket's systems cannot carry
  out (no linked issue to reopen) gets 422.
- ``POST /agent/tickets/<id>/unlink`` ``{"request_id", "issue_key"}``: take the ticket off an issue.

- ``POST /agent/app`` (a form with ``token``): the app's page, loaded by the helpdesk with a request it signs
  RS256 with the app's key pair; cxbridge verifies it, reads the user it names from the helpdesk, and writes a
  session token for that agent into the page (``cxbridge.webhooks.agent_auth``). ``GET /agent/assets/<name>``:
  the page's scripts, styles and images, from ``[agent_api] app_dir``.

Authentication: ``Authorization: Bearer <session>``, the session token of the page (``verify_session``): the agent
is who the helpdesk vouched for when the page was opened, never what the body says (a body naming an agent is
refused). No session, a bad signature, an expired session: 401.

Browsers: CORS answers only the origins in ``[agent_api] origins`` (default: the issuer's origin); a request from
another origin is refused with 403. Bodies are capped at ``[agent_api] max_body`` (413). Every action carries a
``request_id``: the first answer is kept (an intent in the store), a repeat gets it again (``"replayed": true``)
without a second write, the same id for a different request is refused with 422, and a repeat while the first
is still running gets 409.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from ..connectors import HELPDESK
from ..errors import AuthError, CxbridgeError, EffectInFlight, NotFound, VendorError
from ..models import Person, Ref
from ..store.base import redact_text
from ..workflows import impact as rollup
from ..workflows.agent_view import ticket_view
from ..workflows.escalate import Escalation, EscalationRequest
from ..workflows.once import IN_FLIGHT_SECONDS, op_id
from ..workflows.policy import DecisionImpossible, PolicyRefused, act_on_ticket, parse_action
from .agent_auth import AgentApiSettings, AgentAuthError, issue_session, verify_app_token, verify_session

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)

AGENT_PREFIX = "/agent/"
MAX_NOTE = 10_000
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,100}$")
_TICKET_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ISSUE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_ASSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ASSET_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_ACTIONS_FIELDS = {
    "escalate": {"request_id", "note", "issue_key"},
    "decide": {"request_id", "action", "value", "note", "reply"},
    "unlink": {"request_id", "issue_key"},
}
_AGENT_FIELDS = {"agent", "agent_email", "email", "user", "user_id", "actor", "sub"}
PAGE = "iframe.html"
"""The app's page under ``<app_dir>/assets/``, served at ``POST /agent/app`` with the session written in."""


def _json(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), default=str) + "\n",
        status=status,
        headers=dict(headers or {}),
        content_type="application/json",
    )


def _page_headers(settings: AgentApiSettings) -> dict[str, str]:
    ancestors = " ".join(settings.origins)
    return {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": f"frame-ancestors {ancestors}",
    }


def _page_error(status: int, message: str) -> Response:
    """A page saying why the app cannot open, in a sentence the agent can read (never a secret)."""
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cxbridge</title></head>'
        f'<body><p role="alert">cxbridge cannot open: {html.escape(message)}</p></body></html>\n'
    )
    return Response(text, status=status, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})


def _error(status: int, code: str, message: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    return status, {"error": message, "code": code, **extra}


class BadRequest(Exception):
    """The request cannot be served as sent; ``status``, ``code`` and the agent-readable message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AgentApi:
    """The ``/agent/...`` routes, mounted in the receiver of ``cxbridge serve``; no state per request."""

    def __init__(self, rt: Runtime, *, clock: Callable[[], float] = time.time) -> None:
        self.rt = rt
        self.clock = clock
        self.settings = AgentApiSettings.from_section(rt.config.section("agent_api"))

    @property
    def enabled(self) -> bool:
        """Whether ``[agent_api] app_public_keys`` is set (without it every ``/agent/`` request gets 404)."""
        return self.settings is not None

    # -- entry ---------------------------------------------------------------------------------------------------
    def dispatch(self, environ: dict[str, Any]) -> Response:
        """The answer to one ``/agent/...`` request, CORS headers included."""
        settings = self.settings
        if settings is None:
            return _json(
                404, {"error": "the agent API is not configured ([agent_api] app_public_keys)", "code": "disabled"}
            )
        path = str(environ.get("PATH_INFO", ""))[len(AGENT_PREFIX) :]
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if path == "app":  # the helpdesk's signed request for the page: the token is the proof, not the origin
            return self._page(environ, method, settings)
        if path.startswith("assets/"):
            return self._asset(path[len("assets/") :], method, settings)
        origin = str(environ.get("HTTP_ORIGIN") or "").rstrip("/")
        cors: dict[str, str] = {"Vary": "Origin"}
        same_origin = bool(origin) and urlsplit(origin).netloc == str(environ.get("HTTP_HOST") or "")
        if origin and not same_origin:  # the app's own page (served here) calls same-origin: no CORS needed
            if origin not in settings.origins:
                return _json(403, {"error": f"requests from {origin} are not allowed", "code": "origin"}, cors)
            cors["Access-Control-Allow-Origin"] = origin
        if method == "OPTIONS":
            return Response(
                status=204,
                headers={
                    **cors,
                    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type",
                    "Access-Control-Max-Age": "600",
                },
            )
        try:
            status, body = self._serve(environ, method, settings)
        except Exception as exc:  # a bug of ours: the agent gets a sentence, the log the detail
            log.error("agent API failed: %s", redact_text(f"{type(exc).__name__}: {exc}"))
            status, body = _error(500, "internal", "cxbridge failed to answer; the error is in its log")
        headers = dict(cors)
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="cxbridge"'
        return _json(status, body, headers)

    # -- the app's page and assets -------------------------------------------------------------------------------
    def _page(self, environ: dict[str, Any], method: str, settings: AgentApiSettings) -> Response:
        """``POST /agent/app`` with the helpdesk's signed ``token``: the app's page, carrying a session for the user
        the token names (read from the helpdesk with cxbridge's own credentials); 401 for a token that proves
        nothing, 403 for a user who is not an agent."""
        if method != "POST":
            return _page_error(405, "open the app from the helpdesk: it loads this page with a signed POST")
        if int(str(environ.get("CONTENT_LENGTH") or "0").strip() or 0) > settings.max_body:
            return _page_error(413, f"the request is larger than {settings.max_body} bytes")
        page = self._read_asset(settings, PAGE)
        if page is None:
            return _page_error(503, "the app's page is not installed: set [agent_api] app_dir to the built app")
        token = str(Request(environ).form.get("token") or "")
        try:
            user_id = verify_app_token(token, settings, now=self.clock())
        except AgentAuthError as exc:
            log.info("agent API: refused an app token (401): %s", exc)
            return _page_error(401, str(exc))
        try:
            agent = self.rt.helpdesk().agent_person(user_id)
        except NotFound:
            return _page_error(403, f"helpdesk user {user_id} is not an agent of this account")
        except (AuthError, VendorError) as exc:
            return _page_error(502, f"cxbridge could not read the agent from the helpdesk: {redact_text(str(exc))}")
        if agent is None or not agent.email:
            return _page_error(403, f"helpdesk user {user_id} is not an agent of this account")
        session = issue_session(agent, user_id, settings, now=self.clock())
        head = (
            '<head>\n  <base href="assets/">\n'
            f'  <meta name="cxbridge-session" content="{html.escape(session)}">\n'
            f'  <meta name="cxbridge-session-minutes" content="{settings.session_minutes}">'
        )
        text = page.decode("utf-8").replace("<head>", head, 1)
        return Response(text, status=200, headers=_page_headers(settings), content_type="text/html; charset=utf-8")

    def _asset(self, name: str, method: str, settings: AgentApiSettings) -> Response:
        """``GET /agent/assets/<name>``: a file of the built app's ``assets/`` (its scripts, styles, images)."""
        kind = _ASSET_TYPES.get(name[name.rfind(".") :] if "." in name else "")
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": "use GET here", "code": "method"})
        body = self._read_asset(settings, name) if _ASSET.match(name) and kind else None
        if body is None:
            return _json(404, {"error": f"the app has no asset {name!r}", "code": "not_found"})
        return Response(body, status=200, headers={"Cache-Control": "no-cache"}, content_type=kind)

    @staticmethod
    def _read_asset(settings: AgentApiSettings, name: str) -> bytes | None:
        if not settings.app_dir:
            return None
        path = Path(settings.app_dir) / "assets" / name
        return path.read_bytes() if path.is_file() else None

    def _serve(self, environ: dict[str, Any], method: str, settings: AgentApiSettings) -> tuple[int, dict[str, Any]]:
        parts = str(environ.get("PATH_INFO", ""))[len(AGENT_PREFIX) :].split("/")
        if len(parts) not in (2, 3) or parts[0] != "tickets" or not _TICKET_ID.match(parts[1]):
            return _error(404, "not_found", "no such agent API route (GET /agent/tickets/<id>)")
        ticket_id = parts[1]
        action = parts[2] if len(parts) == 3 else None
        if action is not None and action not in _ACTIONS_FIELDS:
            return _error(404, "not_found", f"no action {action!r} (escalate, decide, unlink)")
        wanted = "GET" if action is None else "POST"
        if method != wanted and not (method == "HEAD" and wanted == "GET"):
            return _error(405, "method", f"use {wanted} here")
        header = str(environ.get("HTTP_AUTHORIZATION") or "")
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise AgentAuthError("open the app from the helpdesk: the request carries no bearer session")
            agent = verify_session(token.strip(), settings, now=self.clock())
        except AgentAuthError as exc:
            log.info("agent API: refused a session (401): %s", exc)
            return _error(401, "unauthorized", str(exc))
        try:
            if action is None:
                return 200, ticket_view(self.rt, ticket_id, agent)
            payload = self._body(environ, settings, action)
            return self._once(agent, ticket_id, action, payload)
        except BadRequest as exc:
            return _error(exc.status, exc.code, str(exc))
        except NotFound as exc:
            return _error(404, "not_found", f"not found: {redact_text(str(exc))}")
        except AuthError as exc:
            return _error(502, "vendor_auth", f"cxbridge could not sign in to a system: {redact_text(str(exc))}")
        except VendorError as exc:
            return _error(502, "vendor", f"a system did not answer as expected: {redact_text(str(exc))}")
        except CxbridgeError as exc:
            return _error(422, "refused", redact_text(str(exc)))

    # -- input ---------------------------------------------------------------------------------------------------
    def _body(self, environ: dict[str, Any], settings: AgentApiSettings, action: str) -> dict[str, Any]:
        kind = str(environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise BadRequest(415, "content_type", "send the request as application/json")
        length = str(environ.get("CONTENT_LENGTH") or "").strip()
        if not length.isascii() or not length.isdigit():
            raise BadRequest(411, "length", "send the request with a Content-Length")
        if int(length) > settings.max_body:
            raise BadRequest(413, "too_large", f"the request is larger than {settings.max_body} bytes")
        stream = environ.get("wsgi.input")
        raw = stream.read(int(length)) if stream is not None and int(length) else b""
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, RecursionError):
            raise BadRequest(400, "bad_json", "the request body is not JSON") from None
        if not isinstance(data, dict):
            raise BadRequest(400, "bad_json", "the request body must be a JSON object")
        named = sorted(set(data) & _AGENT_FIELDS)
        if named:
            raise BadRequest(
                400, "agent_in_body", f"the agent comes from the signed token, not the body: remove {named[0]!r}"
            )
        unknown = sorted(set(data) - _ACTIONS_FIELDS[action])
        if unknown:
            allowed = ", ".join(sorted(_ACTIONS_FIELDS[action]))
            raise BadRequest(400, "unknown_field", f"unknown field {unknown[0]!r} (this action takes {allowed})")
        rid = data.get("request_id")
        if not isinstance(rid, str) or not _REQUEST_ID.match(rid):
            raise BadRequest(400, "request_id", "every action needs a request_id: 8 to 100 letters, digits or ._:-")
        for field in ("note", "reply"):
            text = data.get(field)
            if text is not None and (not isinstance(text, str) or len(text) > MAX_NOTE):
                raise BadRequest(400, field, f"the {field} must be text of at most {MAX_NOTE} characters")
        key = data.get("issue_key")
        if key is not None and (not isinstance(key, str) or not _ISSUE_KEY.match(key)):
            raise BadRequest(400, "issue_key", "issue_key must be an issue key such as ENG-12")
        if action == "unlink" and not key:
            raise BadRequest(400, "issue_key", "say which issue to unlink: issue_key")
        if action == "decide":
            value = data.get("value")
            if not isinstance(data.get("action"), str):
                raise BadRequest(400, "action", "say which decision: action (credit, priority, reopen...)")
            if value is not None and not isinstance(value, str | int | float | bool):
                raise BadRequest(400, "value", "value must be a number or text")
        return data

    # -- once per request id -------------------------------------------------------------------------------------
    def _once(self, agent: Person, ticket_id: str, action: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        store = self.rt.store
        rid = str(data["request_id"])
        who = (agent.email or "").lower()
        fingerprint = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
        op = op_id(f"agent-api|{who}|{rid}", "request")
        intent = store.begin_intent(
            op, f"agent_api.{action}", business_key=f"{ticket_id}|{action}", payload={"fingerprint": fingerprint}
        )
        if intent.payload.get("fingerprint") != fingerprint or intent.business_key != f"{ticket_id}|{action}":
            return _error(422, "request_id_reused", "this request_id was already used for another request")
        if intent.state == "done" and intent.result is not None:
            return int(intent.result["status"]), {**intent.result["body"], "replayed": True}
        won, intent = store.transition_intent(op, "sending", expect="pending", owner=f"agent-api:{who}")
        if not won:
            if intent.state == "done" and intent.result is not None:
                return int(intent.result["status"]), {**intent.result["body"], "replayed": True}
            stale = intent.state == "sending" and self.clock() - (intent.sent_at or 0) > IN_FLIGHT_SECONDS
            if stale:  # its runner died mid-request: this repeat carries it out (the workflows are exactly-once)
                won, intent = store.transition_intent(
                    op, "sending", expect="sending", attempts=intent.attempts, owner=f"agent-api:{who}"
                )
            if not won:
                return _error(409, "in_progress", "this request is still being carried out; try again in a moment")
        try:
            status, body = self._act(agent, ticket_id, action, data)
        except BaseException:
            store.transition_intent(op, "pending", expect="sending")
            raise
        if status >= 500 or status == 409:  # not an answer to keep: the same request may succeed when retried
            store.transition_intent(op, "pending", expect="sending")
        else:
            store.transition_intent(op, "done", expect="sending", result={"status": status, "body": body})
        return status, body

    def _act(self, agent: Person, ticket_id: str, action: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        note = data.get("note") or None
        if action == "escalate":
            request = EscalationRequest(ticket_id=ticket_id, link_key=data.get("issue_key"), note=note, agent=agent)
            try:
                result = Escalation(self.rt).run(request)
            except EffectInFlight:
                return _error(409, "in_progress", "this ticket is being escalated right now; reload in a moment")
            except PolicyRefused as exc:
                return _error(403, "refused", str(exc), decision=exc.decision.as_dict())
            verb = "created" if result.created else "joined"
            return 200, {
                "outcome": "created" if result.created else "linked",
                "message": f"Escalated: {verb} {result.issue_key}",
                "issue_key": result.issue_key,
                "issue_url": result.issue_url,
                "writes": result.writes,
            }
        if action == "decide":
            wanted = parse_action(str(data["action"]), data.get("value"))
            try:
                acted = act_on_ticket(
                    self.rt,
                    ticket_id,
                    wanted,
                    agent,
                    note=note,
                    request_id=str(data["request_id"]),
                    reply=data.get("reply") or None,
                )
            except PolicyRefused as exc:
                return _error(403, "refused", str(exc), decision=exc.decision.as_dict())
            except DecisionImpossible as exc:
                return _error(422, "impossible", str(exc))
            return 200, {
                "outcome": "granted",
                "message": acted.decision.reason,
                "decision": acted.decision.as_dict(),
                "writes": acted.writes,
            }
        helpdesk = self.rt.role_system("helpdesk", HELPDESK)
        ref = Ref(helpdesk, "ticket", ticket_id)
        result_u = rollup.unlink(self.rt, ref, str(data["issue_key"]), actor=agent.email or "agent")
        return 200, {
            "outcome": "unlinked",
            "message": f"Unlinked from {result_u.issue_key}",
            "issue_key": result_u.issue_key,
            "remote_link": result_u.remote_link,
            "impact": result_u.impact,
        }
