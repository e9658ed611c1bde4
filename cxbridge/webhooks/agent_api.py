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

Authentication: ``Authorization: Bearer <JWT>``, HS256 with one of ``[agent_api] secrets`` (several during a
rotation), its ``iss`` equal to ``[agent_api] issuer``, its ``aud`` to ``[agent_api] audience``, an ``exp`` in the
future (and not further than ``MAX_TOKEN_SECONDS`` away), and the agent in ``sub`` (the helpdesk's user id) and
``email`` (``name`` optional). A helpdesk app platform that signs requests with an app's shared secret (Zendesk's
``client.request`` ``jwt`` option, the secret a secure app setting) produces it. The agent is who the token says,
never what the body says: a body naming an agent is refused. No token, a bad signature, an expired token, another
issuer or audience: 401.

Browsers: CORS answers only the origins in ``[agent_api] origins`` (default: the issuer's origin); a request from
another origin is refused with 403. Bodies are capped at ``[agent_api] max_body`` (413). Every action carries a
``request_id``: the first answer is kept (an intent in the store), a repeat gets it again (``"replayed": true``)
without a second write, the same id for a different request is refused with 422, and a repeat while the first
is still running gets 409.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jwt
from werkzeug.wrappers import Response

from ..connectors import HELPDESK
from ..errors import AuthError, ConfigError, CxbridgeError, EffectInFlight, NotFound, VendorError
from ..models import Person, Ref
from ..secrets import Secret
from ..store.base import redact_text
from ..workflows import impact as rollup
from ..workflows.agent_view import ticket_view
from ..workflows.escalate import Escalation, EscalationRequest
from ..workflows.once import IN_FLIGHT_SECONDS, op_id
from ..workflows.policy import DecisionImpossible, PolicyRefused, act_on_ticket, parse_action

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)

AGENT_PREFIX = "/agent/"
MAX_AGENT_BODY = 64 * 1024
"""Default cap of an action's body (``[agent_api] max_body``): a note and a few fields, never a file."""
MAX_TOKEN_SECONDS = 3600
"""A token whose ``exp`` lies further in the future than this is refused: a short-lived signature, not a password."""
LEEWAY_SECONDS = 30
"""Clock skew allowed between the signer and cxbridge on ``exp``."""
ALGORITHMS = ["HS256"]
MAX_NOTE = 10_000
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,100}$")
_TICKET_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ISSUE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_ACTIONS_FIELDS = {
    "escalate": {"request_id", "note", "issue_key"},
    "decide": {"request_id", "action", "value", "note", "reply"},
    "unlink": {"request_id", "issue_key"},
}
_AGENT_FIELDS = {"agent", "agent_email", "email", "user", "user_id", "actor", "sub"}


@dataclass(frozen=True)
class AgentApiSettings:
    """``[agent_api]``: the token's secrets, issuer and audience, the browser origins allowed, the body cap."""

    secrets: tuple[Secret, ...]
    issuer: str
    audience: str
    origins: tuple[str, ...]
    max_body: int = MAX_AGENT_BODY

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> AgentApiSettings | None:
        """The settings, or None when no secret is configured (the API is then not served); a ConfigError when
        secrets are set without the issuer and the audience tokens are checked against."""
        secrets = tuple(s for s in section.get("secrets") or [] if isinstance(s, Secret) and s)
        if not secrets:
            return None
        issuer = str(section.get("issuer") or "")
        if not issuer or not section.get("audience"):
            raise ConfigError(
                "[agent_api] needs issuer (your helpdesk account's URL) and audience (this cxbridge's URL as the app "
                "knows it) beside secrets: without them no token could be checked"
            )
        origins = tuple(str(o).rstrip("/") for o in section.get("origins") or [] if o)
        if not origins and issuer:
            parts = urlsplit(issuer)
            if parts.scheme and parts.netloc:
                origins = (f"{parts.scheme}://{parts.netloc}",)
        return cls(
            secrets=secrets,
            issuer=issuer,
            audience=str(section.get("audience") or ""),
            origins=origins,
            max_body=int(section.get("max_body") or MAX_AGENT_BODY),
        )


class AgentAuthError(Exception):
    """A request whose token does not prove an agent (401); the message says what is wrong, never the secret."""


def verify_agent_token(
    token: str,
    secrets: tuple[Secret, ...] | list[Secret],
    *,
    issuer: str,
    audience: str,
    now: float | None = None,
) -> Person:
    """The agent a bearer token names, once its signature, issuer, audience and expiry are checked.

    Raises ``AgentAuthError`` for a token that is malformed, signed with none of ``secrets`` (or with another
    algorithm than HS256), expired, issued by another issuer or for another audience, valid for longer than
    ``MAX_TOKEN_SECONDS``, or missing ``sub`` or ``email``.
    """
    if not token:
        raise AgentAuthError("sign in through the helpdesk app: the request carries no token")
    claims: dict[str, Any] | None = None
    for secret in secrets:
        try:
            claims = jwt.decode(
                token,
                secret.reveal(),
                algorithms=ALGORITHMS,
                audience=audience,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise AgentAuthError("the token has expired: reload the app") from None
        except jwt.InvalidAudienceError:
            raise AgentAuthError("the token was signed for another audience than this cxbridge") from None
        except jwt.InvalidIssuerError:
            raise AgentAuthError("the token was issued by another helpdesk account than the one configured") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AgentAuthError(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise AgentAuthError("the token is not signed with HS256") from None
        except jwt.PyJWTError as exc:
            raise AgentAuthError(f"the token is malformed ({type(exc).__name__})") from None
    if claims is None:
        raise AgentAuthError("the token's signature does not match the configured secret")
    clock = time.time() if now is None else now
    exp = claims.get("exp")
    if isinstance(exp, int | float) and exp - clock > MAX_TOKEN_SECONDS + LEEWAY_SECONDS:
        raise AgentAuthError(f"the token is valid for longer than {MAX_TOKEN_SECONDS} seconds")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise AgentAuthError("the token names no agent email")
    name = claims.get("name")
    return Person(name=name if isinstance(name, str) else None, email=email)


def _json(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), default=str) + "\n",
        status=status,
        headers=dict(headers or {}),
        content_type="application/json",
    )


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
        """Whether ``[agent_api] secrets`` is set (without it every ``/agent/`` request gets 404)."""
        return self.settings is not None

    # -- entry ---------------------------------------------------------------------------------------------------
    def dispatch(self, environ: dict[str, Any]) -> Response:
        """The answer to one ``/agent/...`` request, CORS headers included."""
        settings = self.settings
        if settings is None:
            return _json(404, {"error": "the agent API is not configured ([agent_api] secrets)", "code": "disabled"})
        origin = str(environ.get("HTTP_ORIGIN") or "").rstrip("/")
        cors: dict[str, str] = {"Vary": "Origin"}
        if origin:
            if origin not in settings.origins:
                return _json(403, {"error": f"requests from {origin} are not allowed", "code": "origin"}, cors)
            cors["Access-Control-Allow-Origin"] = origin
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
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
                raise AgentAuthError("sign in through the helpdesk app: the request carries no bearer token")
            agent = verify_agent_token(
                token.strip(), settings.secrets, issuer=settings.issuer, audience=settings.audience, now=self.clock()
            )
        except AgentAuthError as exc:
            log.info("agent API: refused a token (401): %s", exc)
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
