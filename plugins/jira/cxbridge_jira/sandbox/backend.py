"""The Jira emulator: a stateful Jira Cloud (default) or Jira Data Center site for tests, the demo and real clients.

    backend = JiraBackend()                         # Cloud: Basic email:api_token, REST v2 and v3
    backend = JiraBackend(deployment="datacenter")  # DC: PAT bearer, REST v2 only, /search with total

The deployment can also be switched at run time through the admin API: ``POST /_sandbox/deployment``
``{"deployment": "datacenter"}`` or ``POST /_sandbox/seed`` ``{"name": "demo", "deployment": "datacenter"}``
(``GET /_sandbox/deployment`` tells which one runs). Records are kept when switching; only how they are shown
and which credentials are accepted change.

Changes are announced like Jira admin webhooks (``jira:issue_created``, ``jira:issue_updated`` with a
changelog, ``comment_created``, ``comment_updated``, ``comment_deleted``; ``jira:version_created``,
``jira:version_released`` (``PUT /version/{id}`` with ``released: true``), ``jira:version_unreleased`` and
``jira:version_updated`` with a ``version`` body and no issue) to the admin webhooks registered
through ``POST /rest/webhooks/1.0/webhook`` and to the framework's webhook targets, signed with
``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>`` when the target has a secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from werkzeug.wrappers import Request, Response

from cxbridge.sdk import ADMIN_PREFIX, SandboxSecret, WebhookTarget

from . import errors
from .errors import error_collection
from .jql import JqlError, parse
from .models import DEPLOYMENTS, Deployment, Event, Issue, JiraModel, User
from .render import Renderer
from .routes import JiraRoutes
from .seeds import (
    DEFAULT_ISSUE_TYPE,
    DEFAULT_PROJECT,
    ENGINEER_EMAIL,
    INTEGRATION_EMAIL,
    SEEDS,
    new_site,
)

ANONYMOUS_PATHS = ("/serverInfo",)
NOMINAL_BURST_LIMIT = 100
"""``X-RateLimit-Limit`` on an injected 429 when no enforced limit is configured (Jira does not publish its own)."""

_ALIASES: dict[str, Deployment] = {
    "cloud": "cloud",
    "datacenter": "datacenter",
    "data-center": "datacenter",
    "data_center": "datacenter",
    "dc": "datacenter",
    "server": "datacenter",
}


def hub_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira admin webhooks carry: ``sha256=<hex HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def parse_deployment(value: Any) -> Deployment:
    """``cloud`` or ``datacenter`` from a config or admin value (``dc``, ``server`` and ``data-center`` too)."""
    found = _ALIASES.get(str(value).strip().lower())
    if found is None:
        raise ValueError(f"unknown Jira deployment {value!r} (use one of {', '.join(DEPLOYMENTS)})")
    return found


class JiraBackend(JiraRoutes):
    """A Jira site: Cloud by default, or Data Center (``deployment="datacenter"``)."""

    system = "jira"
    default_base_url = "https://cxbridge-sandbox.atlassian.net"
    spec_files: ClassVar[Mapping[str, str]] = {
        "jira": "jira/jira-cloud-platform-v3.swagger-v3.v3.json",
        "adf": "jira/adf-schema-v1-full.json",
    }

    def __init__(
        self,
        base_url: str | None = None,
        *,
        clock: Callable[[], float] | None = None,
        deployment: str = "cloud",
    ) -> None:
        self.initial_deployment: Deployment = parse_deployment(deployment)
        self.deployment = self.initial_deployment
        self.actor: User | None = None
        if clock is None:
            super().__init__(base_url)
        else:
            super().__init__(base_url, clock=clock)

    # -- the framework's contract ------------------------------------------------------------------------------
    def reset(self) -> None:
        """A freshly created site: the integration user, the workflow, priorities and system fields."""
        self.model = JiraModel(self.clock)
        new_site(self.model)
        self.deployment = self.initial_deployment
        self.actor = None

    def seed(self, name: str) -> None:
        """Load ``empty`` (nothing more) or ``demo`` (project ENG, impact fields, Eve Engineer)."""
        loader = SEEDS.get(name)
        if loader is None:
            raise ValueError(f"unknown Jira seed {name!r} (known: {', '.join(sorted(SEEDS))})")
        loader(self.model)

    def set_deployment(self, value: str) -> None:
        """Switch between ``cloud`` and ``datacenter``; records stay, their representation follows."""
        self.deployment = parse_deployment(value)

    @property
    def integration_user(self) -> User:
        """The site admin whose credentials the sandbox config holds."""
        user = self.model.user_by_email(INTEGRATION_EMAIL)
        assert user is not None
        return user

    @property
    def engineer(self) -> User | None:
        """Eve Engineer (present after the ``demo`` seed)."""
        return self.model.user_by_email(ENGINEER_EMAIL)

    def credentials(self) -> dict[str, str]:
        """The integration user's credentials for the current deployment, and the engineer's after ``demo``."""
        me, eve = self.integration_user, self.engineer
        if self.deployment == "cloud":
            creds = {"deployment": "cloud", "email": me.email, "api_token": me.api_token}
            if eve is not None:
                creds.update({"engineer_email": eve.email, "engineer_api_token": eve.api_token})
            return creds
        creds = {"deployment": "datacenter", "username": me.name, "personal_access_token": me.personal_access_token}
        if eve is not None:
            creds.update({"engineer_username": eve.name, "engineer_personal_access_token": eve.personal_access_token})
        return creds

    def config_table(self) -> dict[str, Any]:
        """The ``[systems.jira]`` keys the Jira connector reads."""
        me = self.integration_user
        table: dict[str, Any] = {"deployment": self.deployment}
        if self.deployment == "cloud":
            table.update({"email": me.email, "api_token": SandboxSecret(me.api_token)})
        else:
            table["personal_access_token"] = SandboxSecret(me.personal_access_token)
        table.update({"project": DEFAULT_PROJECT, "issue_type": DEFAULT_ISSUE_TYPE})
        return table

    def state(self) -> dict[str, Any]:
        """Everything the site holds, shown as REST v2 would (no credentials, no webhook secrets)."""
        view = Renderer(self.model, self.base_url, 2, self.deployment)
        issues = []
        for issue in sorted(self.model.issues.values(), key=lambda i: int(i.id)):
            body = view.issue(issue, view.select_fields(["*all"], "*all"), ["*all"])
            body["remoteLinks"] = [view.remote_link(issue, r) for r in issue.remote_links]
            body["changelog"] = [view.history(h) for h in issue.history]
            issues.append(body)
        return {
            "deployment": self.deployment,
            "users": [view.user(u) for u in self.model.users.values()],
            "projects": [view.project(p) for p in self.model.projects.values()],
            "fields": [view.field(f) for f in self.model.fields.values()],
            "issues": issues,
            "versions": [view.version(v) for v in self.model.versions.values()],
            "webhooks": [view.webhook(h) for h in self.model.webhooks.values()],
        }

    # -- auth and errors ---------------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        """Cloud: Basic ``email:api_token``; Data Center: ``Authorization: Bearer <PAT>``.

        serverInfo may be read anonymously, as on Jira; anything else without credentials gets 401.
        """
        self.actor = None
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if not header:
            if request.path.startswith("/rest/api/") and request.path.endswith(ANONYMOUS_PATHS):
                return None
            return self.json(error_collection([errors.NOT_AUTHENTICATED]), 401)
        user: User | None = None
        if scheme.lower() == "basic" and self.deployment == "cloud":
            try:
                email, _, token = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                email = token = ""
            user = self.model.user_by_basic(email, token) if email and token else None
        elif scheme.lower() == "bearer" and self.deployment == "datacenter":
            user = self.model.user_by_pat(value.strip())
        if user is None:
            return Response(
                errors.AUTH_FAILED_TEXT,
                status=401,
                content_type="text/plain;charset=UTF-8",
                headers={"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"},
            )
        self.actor = user
        return None

    def error_response(self, status: int, message: str, *, retry_after: float | None = None) -> Response:
        """An ErrorCollection; 429 carries Jira's rate-limit headers, and Retry-After where one is given."""
        headers: dict[str, str] = {}
        if status == 429:
            wait = max(1, math.ceil(retry_after if retry_after is not None else 1))
            reset = datetime.fromtimestamp(self.clock() + wait, UTC).strftime("%Y-%m-%dT%H:%MZ")
            limit = self.rate_limit.limit if self.rate_limit is not None else NOMINAL_BURST_LIMIT
            headers.update(
                {
                    "Retry-After": str(wait),
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": reset,
                    "RateLimit-Reason": "jira-burst-based",
                }
            )
        elif retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return self.json(error_collection([message]), status, headers)

    def rate_limit_headers(self, limit: int, remaining: int, reset: float) -> dict[str, str]:
        """Jira's burst-limit headers; ``X-RateLimit-NearLimit`` once less than a fifth remains."""
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining)}
        if remaining < limit / 5:
            headers["X-RateLimit-NearLimit"] = "true"
        return headers

    # -- admin API additions: the deployment -------------------------------------------------------------------
    def _admin(self, request: Request) -> Response:
        action = request.path[len(ADMIN_PREFIX) :].strip("/")
        if action == "deployment" and request.method == "GET":
            return self.json({"deployment": self.deployment})
        if action in {"deployment", "seed"} and request.method == "POST":
            try:
                body = self.read_json(request) or {}
                wanted = body.get("deployment") if isinstance(body, dict) else None
                if action == "deployment" and wanted is None:
                    raise ValueError('say which deployment: {"deployment": "cloud" | "datacenter"}')
                with self.lock:
                    if wanted is not None:
                        self.set_deployment(str(wanted))
                    if action == "seed":
                        self.seed(str(body.get("name", "demo")))
            except ValueError as exc:
                return self.json({"error": str(exc)}, 400)
            return self.json({"ok": True, "deployment": self.deployment})
        return super()._admin(request)

    # -- webhooks ----------------------------------------------------------------------------------------------
    def _handle_vendor(self, request: Request) -> Response:
        try:
            return super()._handle_vendor(request)
        finally:
            self.deliver_events()

    def deliver_events(self) -> None:
        """Send each queued model event to the admin webhooks and framework targets that want it."""
        events, self.model.events = self.model.events, []
        for event in events:
            issue = self.model.issues.get(event.issue_id)
            if event.version is not None:
                body_data = self.version_payload(event)
            elif issue is None:
                continue
            else:
                body_data = self.webhook_payload(event, issue)
            payload = json.dumps(body_data, separators=(",", ":")).encode("utf-8")
            for target, exclude_body in self._targets(event, issue):
                body = b"" if exclude_body else payload
                headers = {
                    "Content-Type": "application/json; charset=utf-8",
                    "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
                    "X-Atlassian-Webhook-Flow": "Primary",
                }
                if target.secret:
                    headers["X-Hub-Signature"] = hub_signature(target.secret, body)
                self.emit_webhook(body, headers, target)

    def _targets(self, event: Event, issue: Issue | None) -> list[tuple[WebhookTarget, bool]]:
        """The targets that want the event; JQL filters apply to issue events only (as on Jira)."""
        actor = self.model.users[event.actor_id]
        now = self.clock()
        found: list[tuple[WebhookTarget, bool]] = []
        for hook in self.model.webhooks.values():
            if not hook.enabled or event.name not in hook.events:
                continue
            if issue is not None and hook.jql and not self._jql_matches(hook.jql, issue, actor, now):
                continue
            found.append((WebhookTarget(url=hook.url, secret=hook.secret), hook.exclude_body))
        for target in self.webhook_targets:
            wanted = target.extra.get("events")
            if wanted and event.name not in wanted:
                continue
            jql = target.extra.get("jql")
            if issue is not None and jql and not self._jql_matches(str(jql), issue, actor, now):
                continue
            found.append((target, False))
        return found

    def _jql_matches(self, jql: str, issue: Issue, actor: User, now: float) -> bool:
        try:
            query = parse(jql)
            return query.where is None or self.model.matches(query.where, issue, actor, now)
        except JqlError:
            return False

    def version_payload(self, event: Event) -> dict[str, Any]:
        """A version event's body: ``{timestamp, webhookEvent, version}`` (no issue, no user)."""
        assert event.version is not None
        view = Renderer(self.model, self.base_url, 2, self.deployment)
        return {"timestamp": int(event.at * 1000), "webhookEvent": event.name, "version": view.version(event.version)}

    def webhook_payload(self, event: Event, issue: Issue) -> dict[str, Any]:
        """The delivery body, shaped like Jira's: field values in their REST v2 (string) form."""
        view = Renderer(self.model, self.base_url, 2, self.deployment)
        body: dict[str, Any] = {"timestamp": int(event.at * 1000), "webhookEvent": event.name}
        if event.type_name:
            body["issue_event_type_name"] = event.type_name
        body["user"] = view.user(self.model.users.get(event.actor_id))
        if event.name.startswith("comment_"):
            fields = ["summary", "issuetype", "project", "assignee", "priority", "status"]
        else:
            fields = view.select_fields(["*navigable"], "*navigable")
        shown = view.issue(issue, fields)
        body["issue"] = {"id": shown["id"], "self": shown["self"], "key": shown["key"], "fields": shown["fields"]}
        if event.history is not None:
            body["changelog"] = {"id": event.history.id, "items": [i.as_dict() for i in event.history.items]}
        if event.comment is not None:
            body["comment"] = view.comment(issue, event.comment)
        return body
