"""The Zendesk Support emulator: a stateful stand-in for the endpoints cxbridge uses.

Layout (moto's): ``models.py`` holds state and rules, ``routes.py`` parses requests and answers in Zendesk's
shapes, ``errors.py`` has Zendesk's error bodies, ``seeds.py`` the data sets. This module ties them to the
framework (auth, rate-limit headers, webhooks, admin API) as ``ZendeskBackend``.

Auth: HTTP Basic ``{email}/token:{api_token}`` for any active agent or admin with the account's API token, or
``Authorization: Bearer <oauth_token>`` (acts as the sandbox admin). Anything else: 401
``{"error":"Couldn't authenticate you"}``. The incremental export and the Webhooks API are admin-only (403).

Rate limits: every answer carries ``X-Rate-Limit`` / ``X-Rate-Limit-Remaining`` (700 a minute, counted but not
enforced unless a limit is set through ``/_sandbox/rate-limit``); the ticket list endpoints add
``ratelimit-limit``, ``ratelimit-remaining`` and ``ratelimit-reset``. An enforced limit answers 429 with
``Retry-After``.

Webhooks, as Zendesk makes them: an API webhook (``/api/v2/webhooks``) is called only by a trigger
(``/api/v2/triggers``) whose ``notification_webhook`` action names it, with the action's JSON template rendered
(``sandbox/triggers.py`` runs the trigger cycle after every ticket change). The admin targets
(``/_sandbox/webhooks``) are called, without any trigger, when a ticket GAINS a trigger tag (``trigger_tags``,
default ``escalated_to_engineering``; at creation too) and when an update adds a comment, with the same bodies
cxbridge's provisioned triggers render (``cxbridge_zendesk.triggers``). Headers: ``X-Zendesk-Webhook-Signature``
= base64(HMAC-SHA256(secret as UTF-8, timestamp + body)), ``X-Zendesk-Webhook-Signature-Timestamp`` (ISO-8601
``Z``), ``X-Zendesk-Webhook-Id`` (the webhook's id, or the admin target's ``extra.webhook_id``, else
``sandbox``), ``X-Zendesk-Webhook-Invocation-Id``, ``X-Zendesk-Account-Id``, ``User-Agent: Zendesk Webhook``.

Attachments: ``POST /api/v2/uploads?filename=`` stores the raw body under a token (201, ``AttachmentUploadResponse``);
a comment's ``uploads: [token]`` attaches the files (a token is spent by the comment); ``GET /api/v2/attachments/{id}``
shows one; its ``content_url`` (``/attachments/token/<token>/?name=<file>``, on the account's own domain) serves the
bytes. ``PUT /api/v2/tickets/{id}/comments/{comment_id}/redact`` replaces a string with ``▇`` for good and moves the
ticket's ``updated_at`` (no trigger fires on it).

The incremental export leaves out changes of the last ``incremental_delay`` seconds (60, like Zendesk); tests
and demos that need their own writes at once set it to 0. ``trigger_tags`` and ``incremental_delay`` are settings
of the emulator, not account data: they survive ``reset()``, and so do the credentials.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from cxbridge.sdk import Backend, RateLimit, SandboxSecret

from . import errors, seeds
from .models import User, ZendeskModel, iso
from .routes import ACTOR_KEY, TICKET_LIST_ENDPOINTS, ZendeskRoutes, build_url_map, comment_json
from .routes import organization_json as _organization_json

DEFAULT_TRIGGER_TAG = "escalated_to_engineering"
ADVERTISED_LIMIT = 700  # requests a minute (Enterprise plan)


class ZendeskBackend(ZendeskRoutes, Backend):
    """Emulates one Zendesk Support account (see the module docstring for what it covers)."""

    system: ClassVar[str] = "zendesk"
    default_base_url: ClassVar[str] = "https://cxbridge-sandbox.zendesk.com"
    spec_files: ClassVar[Mapping[str, str]] = {"zendesk": "zendesk/zendesk-support-oas.yaml"}

    def __init__(self, base_url: str | None = None, *, clock: Callable[[], float] | None = None) -> None:
        # Credentials outlive resets (a written config keeps working); they are new for every instance.
        self.api_token = secrets.token_urlsafe(24)
        self.oauth_token = secrets.token_urlsafe(32)
        self.trigger_tags: set[str] = {DEFAULT_TRIGGER_TAG}
        self.incremental_delay = 60.0
        self._advertised = RateLimit(ADVERTISED_LIMIT, 60.0)
        self._endpoint: str | None = None
        super().__init__(base_url, clock=clock or time.time)

    # -- state --------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """A fresh account: the sandbox admin and a second agent, the ticket fields, nothing else."""
        self.model = ZendeskModel(self.clock)
        seeds.setup_account(self.model)

    def seed(self, name: str) -> None:
        """Load ``empty`` (the bare account: no custom field) or ``demo`` (see ``seeds.py``)."""
        if name not in seeds.SEEDS:
            raise ValueError(f"unknown Zendesk seed {name!r} (known: {', '.join(sorted(seeds.SEEDS))})")
        with self.lock:
            seeds.SEEDS[name](self.model)

    def state(self) -> dict[str, Any]:
        """Tickets (with comments, tags, custom fields), users, organizations and webhooks, JSON-ready."""
        with self.lock:
            m = self.model
            tickets = []
            for t in sorted(m.tickets.values(), key=lambda t: t.id):
                tickets.append(
                    {
                        "id": t.id,
                        "subject": t.subject,
                        "description": t.description,
                        "status": t.status,
                        "priority": t.priority,
                        "type": t.type,
                        "requester_id": t.requester_id,
                        "submitter_id": t.submitter_id,
                        "assignee_id": t.assignee_id,
                        "organization_id": t.organization_id,
                        "external_id": t.external_id,
                        "tags": list(t.tags),
                        "custom_fields": {str(k): v for k, v in sorted(t.custom_fields.items())},
                        "created_at": iso(t.created_at),
                        "updated_at": iso(t.updated_ts),
                        "comments": [comment_json(c, self.base_url, m.attachments) for c in t.comments],
                    }
                )
            users = [
                {
                    "id": u.id,
                    "name": u.name,
                    "email": u.email,
                    "role": u.role,
                    "organization_id": u.organization_id,
                    "active": u.active,
                }
                for u in sorted(m.users.values(), key=lambda u: u.id)
            ]
            orgs = [_organization_json(o, self.base_url) for o in sorted(m.organizations.values(), key=lambda o: o.id)]
            hooks = [
                {
                    "id": w.id,
                    "name": w.name,
                    "endpoint": w.endpoint,
                    "status": w.status,
                    "subscriptions": list(w.subscriptions),
                }
                for w in sorted(m.webhooks.values(), key=lambda w: w.id)
            ]
            fields = [
                {"id": f.id, "type": f.type, "title": f.title}
                for f in sorted(m.ticket_fields.values(), key=lambda f: f.id)
            ]
            rules = [
                {"id": t.id, "title": t.title, "active": t.active, "conditions": t.conditions, "actions": t.actions}
                for t in sorted(m.triggers.values(), key=lambda t: (t.position, t.id))
            ]
            return {
                "tickets": tickets,
                "users": users,
                "organizations": orgs,
                "webhooks": hooks,
                "ticket_fields": fields,
                "triggers": rules,
                "macros": [
                    {"id": x.id, "title": x.title, "active": x.active, "actions": [dict(a) for a in x.actions]}
                    for x in sorted(m.macros.values(), key=lambda x: (x.position, x.id))
                ],
            }

    # -- credentials and config ---------------------------------------------------------------------------
    @property
    def issue_key_field_id(self) -> int:
        """The id of the custom ticket field "Jira issue key" (absent after the ``empty`` seed)."""
        found = self.model.field_by_title(seeds.ISSUE_KEY_FIELD_TITLE)
        if found is None:
            raise RuntimeError("the Jira issue key field is missing")
        return found.id

    def credentials(self) -> dict[str, str]:
        """The sandbox login: the admin's email with the API token (or the OAuth token as a bearer)."""
        return {"email": seeds.SANDBOX_EMAIL, "api_token": self.api_token, "oauth_token": self.oauth_token}

    def config_table(self) -> dict[str, Any]:
        """``email``, ``api_token`` (a secret) and, when the field exists, ``issue_key_field_id``."""
        table: dict[str, Any] = {"email": seeds.SANDBOX_EMAIL, "api_token": SandboxSecret(self.api_token)}
        if self.model.field_by_title(seeds.ISSUE_KEY_FIELD_TITLE) is not None:
            table["issue_key_field_id"] = self.issue_key_field_id
        return table

    # -- framework hooks ----------------------------------------------------------------------------------
    def url_map(self) -> Map:
        return build_url_map()

    def authenticate(self, request: Request) -> Response | None:
        """Accept Basic ``email/token:api_token`` of an active agent, or the OAuth bearer token."""
        user = self._user_for(request.headers.get("Authorization", ""))
        if user is None:
            return self.json(errors.AUTH_FAILED, 401, errors.AUTH_HEADERS)
        request.environ[ACTOR_KEY] = user.id
        return None

    def _user_for(self, header: str) -> User | None:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            if value and secrets.compare_digest(value.encode(), self.oauth_token.encode()):
                return self.model.user_by_email(seeds.SANDBOX_EMAIL)
            return None
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, password = decoded.partition(":")
        if not sep or not username.endswith("/token"):
            return None  # password authentication is switched off on this account
        if not secrets.compare_digest(password.encode(), self.api_token.encode()):
            return None
        user = self.model.user_by_email(username[: -len("/token")])
        if user is None or not user.active or not user.is_agent:
            return None
        return user

    def error_response(self, status: int, message: str, *, retry_after: float | None = None) -> Response:
        """Zendesk's answer for a status the framework produces (faults, rate limits, bad requests)."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = str(max(0, int(retry_after)))
        if status == 401:
            headers.update(errors.AUTH_HEADERS)
        return self.json(errors.for_status(status, message), status, headers)

    def rate_limit_headers(self, limit: int, remaining: int, reset: float) -> dict[str, str]:
        """``X-Rate-Limit*`` everywhere; ``ratelimit-*`` on the ticket list endpoints too."""
        headers = {"X-Rate-Limit": str(limit), "X-Rate-Limit-Remaining": str(remaining)}
        if self._endpoint in TICKET_LIST_ENDPOINTS:
            headers.update(
                {
                    "ratelimit-limit": str(limit),
                    "ratelimit-remaining": str(remaining),
                    "ratelimit-reset": str(max(0, int(reset + 0.999))),
                }
            )
        return headers

    def handle_call(self, request: Request) -> Response:
        """The framework's handling, plus Zendesk's advisory rate-limit headers when no limit is enforced."""
        with self.lock:
            self._endpoint = self._endpoint_of(request)
            try:
                response = super().handle_call(request)
                if self.rate_limit is None and response.status_code != 401:
                    _, remaining, reset = self._advertised.take(self.clock())
                    for key, value in self.rate_limit_headers(ADVERTISED_LIMIT, remaining, reset).items():
                        response.headers.setdefault(key, value)
                return response
            finally:
                self._endpoint = None

    def _endpoint_of(self, request: Request) -> str | None:
        try:
            endpoint, _ = self._map.bind_to_environ(request.environ).match()
        except HTTPException:  # unknown path or method: no endpoint-specific headers
            return None
        return str(endpoint)
