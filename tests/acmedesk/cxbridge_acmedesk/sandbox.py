"""The AcmeDesk emulator: a stateful stand-in for the API in ``connector``'s docstring.

Kept in one module (the built-in plugins split models, routes, errors and seeds): ``AcmeModel`` holds the state
and the rules, ``AcmeDeskBackend`` parses requests, answers in AcmeDesk's shapes and sends webhooks.

Auth: ``Authorization: Bearer <token>`` of an agent: the integration user ``cxbridge`` (``credentials()["api_token"]``,
what the generated config uses) or ``Alex Agent`` (``credentials()["agent_token"]``, a person in tests). Anything
else: 401 ``{"error": {"code": "unauthorized", ...}}``. Tokens survive ``reset()``.

Webhooks (to every target of ``/_sandbox/webhooks``): when a request adds a tag to a ticket
(``ticket.tag_added``, one delivery per tag) or a comment (``comment.created``, also for the ``comment`` of a
``PATCH``), signed as ``cxbridge_acmedesk.webhook`` describes. The actor is the authenticated agent.

Seeds: ``empty``; ``demo``: three open tickets, two from Ada (ada@acme.example) and one from Grace
(grace@globex.example), the contacts of the HubSpot emulator's demo seed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from cxbridge.sdk import Backend, SandboxSecret, VendorFault

STATUSES = ("open", "pending", "solved")
MAX_LIMIT = 100
ACTOR_KEY = "acmedesk.actor"


@dataclass
class Agent:
    id: int
    name: str
    email: str
    token: str


@dataclass
class Note:
    id: int
    body: str
    public: bool
    author: dict[str, Any]
    created_at: float


@dataclass
class AcmeTicket:
    id: int
    subject: str
    description: str
    requester: dict[str, str]
    status: str = "open"
    tags: list[str] = field(default_factory=list)
    custom_fields: dict[str, Any] = field(default_factory=lambda: {"issue_key": None})
    comments: list[Note] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0


def iso(ts: float) -> str:
    """AcmeDesk's timestamps: UTC with microseconds and ``Z``."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fault(status: int, code: str, message: str) -> VendorFault:
    return VendorFault(status, {"error": {"code": code, "message": message}})


class AcmeModel:
    """Agents, tickets and comments, and the rules of changing them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.agents: dict[int, Agent] = {}
        self.tickets: dict[int, AcmeTicket] = {}
        self._ids = {"ticket": 0, "comment": 0}
        self._last_stamp = 0.0

    def next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def stamp(self) -> float:
        """Now, strictly after every earlier stamp (the change list orders by it)."""
        self._last_stamp = max(self.clock(), self._last_stamp + 1e-6)
        return self._last_stamp

    def ticket(self, ticket_id: int) -> AcmeTicket:
        found = self.tickets.get(ticket_id)
        if found is None:
            raise fault(404, "not_found", f"ticket {ticket_id} does not exist")
        return found

    def create_ticket(self, subject: str, description: str, requester: dict[str, str]) -> AcmeTicket:
        now = self.stamp()
        ticket = AcmeTicket(self.next_id("ticket"), subject, description, dict(requester), created_at=now)
        ticket.updated_at = now
        ticket.comments.append(Note(self.next_id("comment"), description, True, {"id": None, **requester}, now))
        return ticket

    def add_comment(self, ticket: AcmeTicket, body: Any, public: Any, author: Agent) -> Note:
        if not isinstance(body, str) or not body.strip():
            raise fault(422, "invalid", "a comment needs a body")
        if not isinstance(public, bool):
            raise fault(422, "invalid", "public must be true or false")
        note = Note(
            self.next_id("comment"),
            body,
            public,
            {"id": author.id, "name": author.name, "email": author.email},
            self.stamp(),
        )
        ticket.comments.append(note)
        ticket.updated_at = note.created_at
        return note

    def update(self, ticket: AcmeTicket, body: Any, author: Agent) -> tuple[list[str], Note | None]:
        """Apply a PATCH; returns the tags gained and the comment added. Validates everything before changing."""
        if not isinstance(body, dict) or not body:
            raise fault(400, "bad_request", "expected a JSON object")
        unknown = set(body) - {"status", "tags", "add_tags", "custom_fields", "comment"}
        if unknown:
            raise fault(422, "invalid", f"unknown fields: {', '.join(sorted(unknown))}")
        status = body.get("status", ticket.status)
        if status not in STATUSES:
            raise fault(422, "invalid", f"status must be one of {', '.join(STATUSES)}")
        tags = body.get("tags", ticket.tags)
        added = body.get("add_tags", [])
        for value in (tags, added):
            if not isinstance(value, list) or not all(isinstance(t, str) and t and " " not in t for t in value):
                raise fault(422, "invalid", "tags are a list of words")
        fields = body.get("custom_fields", {})
        if not isinstance(fields, dict) or set(fields) - {"issue_key"}:
            raise fault(422, "invalid", "the only custom field is issue_key")
        if fields.get("issue_key") is not None and not isinstance(fields["issue_key"], str):
            raise fault(422, "invalid", "issue_key is text")
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, dict):
            raise fault(422, "invalid", "comment is an object")
        new_tags = list(dict.fromkeys([*tags, *added]))
        gained = [t for t in new_tags if t not in ticket.tags]
        ticket.status, ticket.tags = status, new_tags
        ticket.custom_fields.update(fields)
        note = None
        if comment is not None:
            note = self.add_comment(ticket, comment.get("body"), comment.get("public", True), author)
        ticket.updated_at = self.stamp()
        return gained, note


def ticket_json(t: AcmeTicket) -> dict[str, Any]:
    return {
        "id": t.id,
        "subject": t.subject,
        "description": t.description,
        "status": t.status,
        "tags": list(t.tags),
        "requester": dict(t.requester),
        "custom_fields": dict(t.custom_fields),
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
    }


def comment_json(c: Note) -> dict[str, Any]:
    return {"id": c.id, "body": c.body, "public": c.public, "author": dict(c.author), "created_at": iso(c.created_at)}


def _cursor(t: AcmeTicket) -> str:
    return base64.urlsafe_b64encode(f"{t.updated_at!r}:{t.id}".encode()).decode("ascii")


def _position(cursor: str) -> tuple[float, int]:
    try:
        stamp, _, tid = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii").partition(":")
        return float(stamp), int(tid)
    except (binascii.Error, UnicodeError, ValueError):
        raise fault(400, "invalid_cursor", "the cursor is not one this API returned") from None


def _since(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise fault(400, "bad_request", "updated_since is not an ISO-8601 time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _limit(request: Request) -> int:
    try:
        return max(1, min(MAX_LIMIT, int(request.args.get("limit", MAX_LIMIT))))
    except ValueError:
        raise fault(400, "bad_request", "limit is a number") from None


class AcmeDeskBackend(Backend):
    """Emulates one AcmeDesk account (see the module docstring)."""

    system: ClassVar[str] = "acmedesk"
    default_base_url: ClassVar[str] = "https://cxbridge-sandbox.acmedesk.example"

    def __init__(self, base_url: str | None = None, *, clock: Callable[[], float] | None = None) -> None:
        self.api_token = secrets.token_urlsafe(24)
        self.agent_token = secrets.token_urlsafe(24)
        if clock is None:
            super().__init__(base_url)
        else:
            super().__init__(base_url, clock=clock)

    # -- state ------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """A fresh account: the integration user and one agent."""
        self.model = AcmeModel(self.clock)
        for agent in (
            Agent(900, "cxbridge", "cxbridge@acmedesk.example", self.api_token),
            Agent(901, "Alex Agent", "alex@acmedesk.example", self.agent_token),
        ):
            self.model.agents[agent.id] = agent

    def seed(self, name: str) -> None:
        """``empty`` or ``demo`` (idempotent: ``demo`` twice adds nothing)."""
        if name not in ("empty", "demo"):
            raise ValueError(f"unknown AcmeDesk seed {name!r} (known: demo, empty)")
        if name == "empty" or self.model.tickets:
            return
        ada = {"name": "Ada Lovelace", "email": "ada@acme.example"}
        grace = {"name": "Grace Hopper", "email": "grace@globex.example"}
        with self.lock:
            for subject, text, who in (
                ("CSV export times out", "The monthly CSV export times out past 50,000 rows.", ada),
                ("Export to CSV never finishes", "Our usage export spins forever since Monday.", grace),
                ("CSV export still failing", "Tried again today with a smaller range: same timeout.", ada),
            ):
                ticket = self.model.create_ticket(subject, text, who)
                self.model.tickets[ticket.id] = ticket

    def state(self) -> dict[str, Any]:
        """Tickets with their comments, JSON-ready."""
        with self.lock:
            return {
                "tickets": [
                    {**ticket_json(t), "comments": [comment_json(c) for c in t.comments]}
                    for t in sorted(self.model.tickets.values(), key=lambda t: t.id)
                ],
                "agents": [{"id": a.id, "name": a.name, "email": a.email} for a in self.model.agents.values()],
            }

    def credentials(self) -> dict[str, str]:
        return {"api_token": self.api_token, "agent_token": self.agent_token}

    def config_table(self) -> dict[str, Any]:
        return {"api_token": SandboxSecret(self.api_token)}

    # -- framework hooks --------------------------------------------------------------------------------------
    def url_map(self) -> Map:
        return Map(
            [
                Rule("/api/me", endpoint="me", methods=["GET"]),
                Rule("/api/tickets", endpoint="tickets", methods=["GET"]),
                Rule("/api/tickets/<int:ticket_id>", endpoint="ticket", methods=["GET"]),
                Rule("/api/tickets/<int:ticket_id>", endpoint="update", methods=["PATCH"]),
                Rule("/api/tickets/<int:ticket_id>/comments", endpoint="comments", methods=["GET"]),
                Rule("/api/tickets/<int:ticket_id>/comments", endpoint="comment", methods=["POST"]),
            ],
            strict_slashes=False,
        )

    def authenticate(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            for agent in self.model.agents.values():
                if secrets.compare_digest(token.strip().encode(), agent.token.encode()):
                    request.environ[ACTOR_KEY] = agent
                    return None
        return self.error_response(401, "a valid bearer token is required")

    def error_response(self, status: int, message: str, *, retry_after: float | None = None) -> Response:
        codes = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 429: "throttled"}
        headers = {"Retry-After": str(max(0, int(retry_after)))} if retry_after is not None else {}
        return self.json({"error": {"code": codes.get(status, "error"), "message": message}}, status, headers)

    # -- routes -----------------------------------------------------------------------------------------------
    @staticmethod
    def _actor(request: Request) -> Agent:
        agent: Agent = request.environ[ACTOR_KEY]
        return agent

    def route_me(self, request: Request) -> Response:
        me = self._actor(request)
        return self.json({"user": {"id": me.id, "name": me.name, "email": me.email}})

    def route_ticket(self, request: Request, ticket_id: int) -> Response:
        return self.json({"ticket": ticket_json(self.model.ticket(ticket_id))})

    def route_tickets(self, request: Request) -> Response:
        limit = _limit(request)
        cursor = request.args.get("cursor")
        ordered = sorted(self.model.tickets.values(), key=lambda t: (t.updated_at, t.id))
        if cursor:
            after = _position(cursor)
            found = [t for t in ordered if (t.updated_at, t.id) > after]
        else:
            since = _since(request.args.get("updated_since", "1970-01-01T00:00:00Z"))
            found = [t for t in ordered if t.updated_at >= since]
        page = found[:limit]
        following = _cursor(page[-1]) if page else cursor
        return self.json(
            {"tickets": [ticket_json(t) for t in page], "next_cursor": following, "has_more": len(found) > limit}
        )

    def route_comments(self, request: Request, ticket_id: int) -> Response:
        ticket = self.model.ticket(ticket_id)
        limit = _limit(request)
        start = 0
        if request.args.get("cursor"):
            try:
                start = int(request.args["cursor"])
            except ValueError:
                raise fault(400, "invalid_cursor", "the cursor is not one this API returned") from None
        chunk = ticket.comments[start : start + limit]
        more = start + limit < len(ticket.comments)
        return self.json(
            {"comments": [comment_json(c) for c in chunk], "next_cursor": str(start + limit) if more else None}
        )

    def route_comment(self, request: Request, ticket_id: int) -> Response:
        ticket = self.model.ticket(ticket_id)
        body = self.read_json(request)
        if not isinstance(body, dict):
            raise fault(400, "bad_request", "expected a JSON object")
        actor = self._actor(request)
        note = self.model.add_comment(ticket, body.get("body"), body.get("public", True), actor)
        self._announce("comment.created", ticket, actor, comment=comment_json(note))
        return self.json({"comment": comment_json(note)}, 201)

    def route_update(self, request: Request, ticket_id: int) -> Response:
        ticket = self.model.ticket(ticket_id)
        actor = self._actor(request)
        gained, note = self.model.update(ticket, self.read_json(request), actor)
        for tag in gained:
            self._announce("ticket.tag_added", ticket, actor, tag=tag)
        if note is not None:
            self._announce("comment.created", ticket, actor, comment=comment_json(note))
        return self.json({"ticket": ticket_json(ticket)})

    # -- webhooks ---------------------------------------------------------------------------------------------
    def _announce(self, kind: str, ticket: AcmeTicket, actor: Agent, **extra: Any) -> None:
        payload = {
            "event": kind,
            "occurred_at": iso(ticket.updated_at),
            "actor": {"id": actor.id, "name": actor.name, "email": actor.email},
            "ticket": ticket_json(ticket),
            **extra,
        }
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        delivery = str(uuid.uuid4())
        for target in self.webhook_targets:
            signature = hmac.new(target.secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "AcmeDesk-Webhooks/1.0",
                "X-Acme-Event": kind,
                "X-Acme-Delivery": delivery,
                "X-Acme-Signature": signature,
            }
            self.emit_webhook(body, headers, target)
