"""State and rules of the Zendesk emulator: users, organizations, tickets, comments, ticket fields, webhooks.

Models know nothing about HTTP: they validate, change state, raise the vendor's errors (``errors.py``) and
report what changed as ``Change`` records, from which the backend emits webhooks. Times are floats from the
backend's clock; the wire format (ISO-8601 ``Z``, whole seconds) is applied when serialising.
"""

from __future__ import annotations

import base64
import bisect
import calendar
import html
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cxbridge.sdk import VendorFault

from . import errors

if TYPE_CHECKING:
    from .macros import Macro
    from .triggers import Trigger

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
TYPES = ("problem", "incident", "question", "task")
ROLES = ("end-user", "agent", "admin")

# Id ranges: tickets count from 1 like a new account; other records get distinct ranges so that an id used
# for the wrong kind of record (a user id as an organization id) finds nothing instead of the wrong record.
ORG_IDS = 360_000_100_001
USER_IDS = 360_000_200_001
COMMENT_IDS = 360_000_300_001
AUDIT_IDS = 360_000_400_001
FIELD_IDS = 360_000_500_001
INVOCATION_IDS = 8_350_205_001
ATTACHMENT_IDS = 360_000_600_001
MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
"""Zendesk's limit on one attachment (50 MB)."""
TRIGGER_IDS = 360_000_700_001
MACRO_IDS = 360_000_800_001
FIELD_TYPES = ("text", "textarea", "checkbox", "date", "integer", "decimal", "regexp", "tagger", "multiselect")

IDEMPOTENCY_TTL = 2 * 3600.0


def iso(ts: float) -> str:
    """A Zendesk timestamp: UTC, whole seconds, ``Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))


def parse_iso(text: str) -> float:
    """Seconds since the epoch for ``2024-05-01T10:00:00Z`` (fraction and offset allowed) or ``2024-05-01``."""
    m = re.fullmatch(
        r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?",
        text.strip(),
    )
    if not m:
        raise ValueError(f"not a timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g or 0) for g in m.groups()[:6])
    ts = float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    zone = m[7]
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        ts -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return ts


def plain_text(html_body: str) -> str:
    """The text of an HTML comment body (what Zendesk stores as ``body`` for an ``html_body`` comment)."""
    text = re.sub(r"<br\s*/?>|</p>|</div>|</li>", "\n", html_body, flags=re.IGNORECASE)
    text = re.sub(r"<[^>]+>", "", text)
    return html.unescape(re.sub(r"\n{3,}", "\n\n", text)).strip()


def html_of(body: str) -> str:
    """The HTML rendering Zendesk gives a plain-text comment."""
    paragraphs = [p for p in re.split(r"\n{2,}", body.strip()) if p]
    inner = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return f'<div class="zd-comment" dir="auto">{inner}</div>'


def normalize_tags(value: Any) -> list[str]:
    """Tags as Zendesk keeps them: lower case, split on spaces and commas, no duplicates, order kept."""
    if value is None:
        return []
    items: Iterable[Any] = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise errors.record_invalid("tags", "Tags: must be an array of strings or a string")
    seen: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise errors.record_invalid("tags", "Tags: must be an array of strings or a string")
        for tag in re.split(r"[\s,]+", item.strip().lower()):
            if tag and tag not in seen:
                seen.append(tag)
    return seen


def truthy(value: Any) -> bool:
    """Zendesk accepts booleans and their string spellings (``"safe_update": "true"`` in its docs)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


@dataclass
class User:
    """A Zendesk user: end user (requester), agent or admin."""

    id: int
    name: str
    email: str
    role: str
    created_at: float
    updated_at: float
    organization_id: int | None = None
    tags: list[str] = field(default_factory=list)
    external_id: str | None = None
    phone: str | None = None
    time_zone: str = "UTC"
    active: bool = True
    verified: bool = True
    notes: str = ""
    user_fields: dict[str, Any] = field(default_factory=dict)

    @property
    def is_agent(self) -> bool:
        return self.role in ("agent", "admin")


@dataclass
class Organization:
    """A Zendesk organization (a customer company)."""

    id: int
    name: str
    created_at: float
    updated_at: float
    domain_names: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    organization_fields: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = None
    details: str = ""
    notes: str = ""


@dataclass
class Comment:
    """A public reply or an internal note (``public=False``)."""

    id: int
    author_id: int
    body: str
    html_body: str
    public: bool
    created_at: float
    audit_id: int
    channel: str = "api"
    attachment_ids: list[int] = field(default_factory=list)


@dataclass
class Attachment:
    """A file uploaded through ``POST /api/v2/uploads``; its ``token`` attaches it to a comment."""

    id: int
    token: str
    file_name: str
    content_type: str
    content: bytes = field(repr=False)
    created_at: float

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass
class Ticket:
    """A ticket with its comments; ``updated_ts`` is the precise change time (orders the incremental export).

    Change ``updated_ts`` only through ``ZendeskModel`` (it caches the export order until a ticket changes).
    """

    id: int
    subject: str
    description: str
    status: str
    requester_id: int
    submitter_id: int
    created_at: float
    updated_ts: float
    priority: str | None = None
    type: str | None = None
    assignee_id: int | None = None
    organization_id: int | None = None
    group_id: int | None = None
    external_id: str | None = None
    tags: list[str] = field(default_factory=list)
    custom_fields: dict[int, Any] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    channel: str = "api"

    @property
    def updated_at(self) -> float:
        return self.updated_ts


@dataclass
class TicketField:
    """A system or custom ticket field."""

    id: int
    type: str
    title: str
    created_at: float
    description: str = ""
    position: int = 0
    active: bool = True
    required: bool = False
    removable: bool = True
    tag: str | None = None


@dataclass
class Webhook:
    """A webhook created through the API; its ``secret`` signs every delivery."""

    id: str
    name: str
    endpoint: str
    http_method: str
    request_format: str
    status: str
    subscriptions: list[str]
    created_at: float
    updated_at: float
    created_by: int
    secret: str
    description: str = ""

    @property
    def receives_ticket_events(self) -> bool:
        return self.status == "active" and "conditional_ticket_events" in self.subscriptions


@dataclass
class Change:
    """Something a trigger reacts to: a ticket gained tags, got a comment, or changed status."""

    kind: str  # "tag_added" | "comment_added" | "status_changed"
    ticket_id: int
    actor_id: int
    tags_added: list[str] = field(default_factory=list)
    comment: Comment | None = None


@dataclass
class Audit:
    """What one create or update changed, as the ``audit`` of an update's answer."""

    id: int
    ticket_id: int
    author_id: int
    created_at: float
    events: list[dict[str, Any]]
    custom: dict[str, Any] = field(default_factory=dict)
    """The update's write-only ``ticket.metadata``, shown as the audit's ``metadata.custom``."""


@dataclass
class IdempotentAnswer:
    """The stored answer to a create carrying an ``Idempotency-Key``."""

    fingerprint: str
    stored_at: float
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class JiraLink:
    """A ticket-issue link of Zendesk's own Jira integration (the Jira Links API, ``/api/v2/jira/links``)."""

    id: int
    ticket_id: int
    issue_id: str
    issue_key: str
    created_at: float
    updated_at: float


class ZendeskModel:
    """Everything one emulated Zendesk account holds, and the rules for changing it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.users: dict[int, User] = {}
        self.organizations: dict[int, Organization] = {}
        self.tickets: dict[int, Ticket] = {}
        self._export_order: list[tuple[float, int, Ticket]] | None = None  # all tickets by (updated_ts, id)
        self.ticket_fields: dict[int, TicketField] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.triggers: dict[int, Trigger] = {}
        self.jira_links: dict[int, JiraLink] = {}
        self.macros: dict[int, Macro] = {}
        self.idempotency: dict[str, IdempotentAnswer] = {}
        self.audits: dict[int, list[Audit]] = {}
        """Every audit of a ticket, oldest first (List Audits for a Ticket)."""
        self.attachments: dict[int, Attachment] = {}
        self.uploads: dict[str, list[int]] = {}
        self._next = {
            "ticket": 1,
            "org": ORG_IDS,
            "user": USER_IDS,
            "comment": COMMENT_IDS,
            "audit": AUDIT_IDS,
            "field": FIELD_IDS,
            "webhook": 1,
            "invocation": INVOCATION_IDS,
            "attachment": ATTACHMENT_IDS,
            "trigger": TRIGGER_IDS,
            "jira_link": 1,
            "macro": MACRO_IDS,
        }

    # -- ids and time --------------------------------------------------------------------------------------
    def next_id(self, kind: str) -> int:
        """The next id of a kind of record."""
        value = self._next[kind]
        self._next[kind] = value + 1
        return value

    def add_jira_link(self, ticket_id: Any, issue_id: Any, issue_key: Any) -> JiraLink:
        """A link of the Jira integration: the ticket must exist, the issue id and key are mandatory, and a ticket
        is linked to an issue once (the same pair again is refused)."""
        tid = _opt_int(ticket_id)
        if tid is None or tid not in self.tickets:
            raise errors.record_invalid("ticket_id", "Ticket: not found", "InvalidValue")
        issue, key = str(issue_id or "").strip(), str(issue_key or "").strip()
        if not issue:
            raise errors.record_invalid("issue_id", "Issue id: cannot be blank", "BlankValue")
        if not key:
            raise errors.record_invalid("issue_key", "Issue key: cannot be blank", "BlankValue")
        if any(link.ticket_id == tid and link.issue_id == issue for link in self.jira_links.values()):
            raise errors.record_invalid("issue_id", "Issue id: is already linked to this ticket", "DuplicateValue")
        now = self.now()
        link = JiraLink(self.next_id("jira_link"), tid, issue, key, now, now)
        self.jira_links[link.id] = link
        return link

    def new_webhook_id(self) -> str:
        """A 26-character id in the shape of Zendesk's webhook ids (ULIDs)."""
        return f"01J{self.next_id('webhook'):023d}"

    def now(self) -> float:
        return float(self.clock())

    @staticmethod
    def new_secret() -> str:
        """A signing secret in the shape of Zendesk's (URL-safe base64 of 32 random bytes)."""
        return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")

    # -- lookups ------------------------------------------------------------------------------------------
    def ticket(self, ticket_id: int) -> Ticket:
        """A ticket by id, or the vendor's 404."""
        found = self.tickets.get(ticket_id)
        if found is None:
            raise errors.not_found()
        return found

    def user(self, user_id: int) -> User:
        """A user by id, or the vendor's 404."""
        found = self.users.get(user_id)
        if found is None:
            raise errors.not_found()
        return found

    def organization(self, org_id: int) -> Organization:
        """An organization by id, or the vendor's 404."""
        found = self.organizations.get(org_id)
        if found is None:
            raise errors.not_found()
        return found

    def webhook(self, webhook_id: str) -> Webhook:
        """A webhook by id, or a 404."""
        found = self.webhooks.get(webhook_id)
        if found is None:
            raise errors.not_found()
        return found

    def user_by_email(self, email: str) -> User | None:
        wanted = email.strip().lower()
        return next((u for u in self.users.values() if u.email.lower() == wanted), None)

    def organization_by_name(self, name: str) -> Organization | None:
        wanted = name.strip().lower()
        return next((o for o in self.organizations.values() if o.name.lower() == wanted), None)

    def field_by_title(self, title: str) -> TicketField | None:
        return next((f for f in self.ticket_fields.values() if f.title == title), None)

    # -- creating records ---------------------------------------------------------------------------------
    def add_user(
        self,
        name: str,
        email: str,
        role: str = "end-user",
        *,
        organization_id: int | None = None,
        created_at: float | None = None,
        **extra: Any,
    ) -> User:
        """Create a user (seeds and requesters given by email)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        if self.user_by_email(email) is not None:
            raise errors.record_invalid(
                "email", f"Email: {email} is already being used by another user", "DuplicateValue"
            )
        at = self.now() if created_at is None else created_at
        user = User(
            id=self.next_id("user"),
            name=name,
            email=email,
            role=role,
            organization_id=organization_id,
            created_at=at,
            updated_at=at,
            **extra,
        )
        self.users[user.id] = user
        return user

    def add_organization(
        self, name: str, *, domain_names: list[str] | None = None, created_at: float | None = None, **extra: Any
    ) -> Organization:
        """Create an organization."""
        if self.organization_by_name(name) is not None:
            raise errors.record_invalid("name", "Name: has already been taken", "DuplicateValue")
        at = self.now() if created_at is None else created_at
        org = Organization(
            id=self.next_id("org"),
            name=name,
            domain_names=list(domain_names or []),
            created_at=at,
            updated_at=at,
            **extra,
        )
        self.organizations[org.id] = org
        return org

    def add_ticket_field(
        self, type_: str, title: str, *, removable: bool = True, description: str = "", tag: str | None = None
    ) -> TicketField:
        """Create a ticket field (system fields are not removable)."""
        created = TicketField(
            id=self.next_id("field"),
            type=type_,
            title=title,
            created_at=self.now(),
            description=description,
            position=len(self.ticket_fields) + 1,
            removable=removable,
            tag=tag,
        )
        self.ticket_fields[created.id] = created
        return created

    def create_ticket_field(self, body: Any) -> TicketField:
        """Create a custom field from a ``{"ticket_field": {...}}`` body (``type`` and ``title`` required)."""
        data = body.get("ticket_field") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise errors.bad_request("Parameter ticket_field is required")
        if data.get("type") not in FIELD_TYPES:
            raise errors.record_invalid("type", f"Type: {data.get('type')!r} is not a valid field type")
        title = str(data.get("title") or "").strip()
        if not title:
            raise errors.record_invalid("title", "Title: cannot be blank", "BlankValue")
        return self.add_ticket_field(str(data["type"]), title, description=str(data.get("description") or ""))

    def remove_custom_fields(self) -> None:
        """Delete every removable (custom) ticket field: a bare account holds only the system fields."""
        for fid in [f.id for f in self.ticket_fields.values() if f.removable]:
            del self.ticket_fields[fid]

    # -- tickets ------------------------------------------------------------------------------------------
    def touch(self, ticket: Ticket) -> None:
        """Mark the ticket changed now (a trigger's action changed it)."""
        self._touch(ticket, self.now())

    def _touch(self, ticket: Ticket, at: float) -> None:
        # Every change moves the ticket strictly forward, so the export cursor sees it again.
        ticket.updated_ts = max(at, ticket.updated_ts + 1e-6)
        self._export_order = None

    def _resolve_requester(self, data: dict[str, Any], actor: User) -> User:
        if data.get("requester_id") is not None:
            found = self.users.get(_int(data["requester_id"], "requester_id"))
            if found is None:
                raise errors.record_invalid("requester", "Requester: is invalid", "InvalidValue")
            return found
        requester = data.get("requester")
        if requester is None:
            return actor
        if isinstance(requester, int):
            found = self.users.get(requester)
            if found is None:
                raise errors.record_invalid("requester", "Requester: is invalid", "InvalidValue")
            return found
        if isinstance(requester, str):
            requester = {"email": requester}
        if not isinstance(requester, dict) or not str(requester.get("email") or "").strip():
            raise errors.record_invalid("requester", "Requester: Email is invalid", "InvalidValue")
        email = str(requester["email"]).strip()
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise errors.record_invalid(
                "requester", f"Requester: Email: {email} is not properly formatted", "InvalidFormat"
            )
        existing = self.user_by_email(email)
        if existing is not None:
            return existing
        name = str(requester.get("name") or email.split("@", 1)[0])
        org_id = requester.get("organization_id")
        return self.add_user(
            name,
            email,
            "end-user",
            organization_id=org_id
            if isinstance(org_id, int) and org_id in self.organizations
            else self._org_for_email(email),
        )

    def _org_for_email(self, email: str) -> int | None:
        domain = email.rsplit("@", 1)[-1].lower()
        return next((o.id for o in self.organizations.values() if domain in (d.lower() for d in o.domain_names)), None)

    def _comment_text(self, comment: Any) -> tuple[str, str] | None:
        """(body, html_body) of a comment in a request, or None when it has no text."""
        if comment is None:
            return None
        if isinstance(comment, str):
            comment = {"body": comment}
        if not isinstance(comment, dict):
            raise errors.record_invalid("comment", "Comment: is invalid")
        if comment.get("html_body"):
            html_body = str(comment["html_body"])
            return plain_text(html_body), html_body
        body = comment.get("body")
        if body is None or not str(body).strip():
            return None
        return str(body), html_of(str(body))

    def _check_enums(self, data: dict[str, Any]) -> None:
        problems: dict[str, list[tuple[str, str]]] = {}
        for name, allowed in (("status", STATUSES), ("priority", PRIORITIES), ("type", TYPES)):
            if name in data and data[name] is not None and data[name] not in allowed:
                problems[name] = [(f"{name.capitalize()}: {data[name]} is not valid", "InvalidValue")]
        if data.get("status") is None and "status" in data:
            problems["status"] = [("Status: cannot be blank", "BlankValue")]
        if problems:
            raise errors.record_invalid_many(problems)

    def _custom_values(self, data: dict[str, Any]) -> dict[int, Any]:
        values: dict[int, Any] = {}
        for key in ("fields", "custom_fields"):
            entries = data.get(key)
            if entries is None:
                continue
            if isinstance(entries, dict):  # the older {"<id>": value} spelling
                entries = [{"id": k, "value": v} for k, v in entries.items()]
            if not isinstance(entries, list):
                raise errors.record_invalid("custom_fields", "Custom fields: must be an array")
            for entry in entries:
                if not isinstance(entry, dict) or "id" not in entry:
                    raise errors.record_invalid("custom_fields", "Custom fields: each entry needs an id")
                field_id = _int(entry["id"], "custom_fields.id")
                if field_id in self.ticket_fields and self.ticket_fields[field_id].removable:
                    values[field_id] = entry.get("value")
        return values

    def create_ticket(
        self, body: Any, actor: User, *, at: float | None = None, comment_author_id: int | None = None
    ) -> tuple[Ticket, Audit, list[Change]]:
        """Create a ticket from a ``{"ticket": {...}}`` request body."""
        data = _ticket_body(body)
        self._check_enums(data)
        text = self._comment_text(data.get("comment"))
        if text is None and str(data.get("description") or "").strip():
            text = (str(data["description"]), html_of(str(data["description"])))
        if text is None:
            raise errors.record_invalid("description", "Description: cannot be blank", "BlankValue")
        requester = self._resolve_requester(data, actor)
        org_id = data.get("organization_id")
        if org_id is not None:
            org_id = _int(org_id, "organization_id")
            if org_id not in self.organizations:
                raise errors.record_invalid("organization_id", "Organization: is invalid")
        else:
            org_id = requester.organization_id
        assignee_id = self._assignee(data.get("assignee_id"))
        now = self.now() if at is None else at
        subject = data.get("subject") or data.get("raw_subject")
        subject = str(subject) if subject else text[0].strip().splitlines()[0][:80]
        raw_comment = data.get("comment")
        comment_spec: dict[str, Any] = raw_comment if isinstance(raw_comment, dict) else {}
        public = truthy(comment_spec.get("public", True))
        author_id = comment_author_id or _opt_int(comment_spec.get("author_id")) or actor.id
        ticket = Ticket(
            id=self.next_id("ticket"),
            subject=subject,
            description=text[0],
            status=data.get("status") or ("open" if assignee_id else "new"),
            priority=data.get("priority"),
            type=data.get("type"),
            requester_id=requester.id,
            submitter_id=_opt_int(data.get("submitter_id")) or actor.id,
            assignee_id=assignee_id,
            organization_id=org_id,
            group_id=_opt_int(data.get("group_id")),
            external_id=None if data.get("external_id") is None else str(data["external_id"]),
            tags=normalize_tags(data.get("tags")),
            custom_fields=self._custom_values(data),
            created_at=now,
            updated_ts=now,
        )
        audit_id = self.next_id("audit")
        comment = Comment(
            id=self.next_id("comment"),
            author_id=author_id,
            body=text[0],
            html_body=text[1],
            public=public,
            created_at=now,
            audit_id=audit_id,
            attachment_ids=self._uploaded(comment_spec),
        )
        ticket.comments.append(comment)
        self.tickets[ticket.id] = ticket
        self._export_order = None
        events: list[dict[str, Any]] = [self._comment_event(comment)]
        for name in ("subject", "status", "priority", "type"):
            if getattr(ticket, name) is not None:
                events.append(self._field_event("Create", name, getattr(ticket, name)))
        if ticket.tags:
            events.append(self._field_event("Create", "tags", " ".join(ticket.tags)))
        audit = Audit(id=audit_id, ticket_id=ticket.id, author_id=actor.id, created_at=now, events=events)
        self.audits.setdefault(ticket.id, []).append(audit)
        changes = [Change("tag_added", ticket.id, actor.id, tags_added=list(ticket.tags))] if ticket.tags else []
        return ticket, audit, changes

    def _assignee(self, value: Any) -> int | None:
        if value is None:
            return None
        assignee = self.users.get(_int(value, "assignee_id"))
        if assignee is None or not assignee.is_agent:
            raise errors.record_invalid("assignee", "Assignee: is not an agent", "InvalidValue")
        return assignee.id

    def _check_stamp(self, ticket: Ticket, data: dict[str, Any]) -> None:
        if not truthy(data.get("safe_update")) or data.get("updated_stamp") in (None, ""):
            return
        try:
            stamp = parse_iso(str(data["updated_stamp"]))
        except ValueError:
            raise errors.record_invalid("updated_stamp", "Updated stamp: is invalid") from None
        if int(stamp) != int(ticket.updated_ts):
            raise errors.update_conflict()

    def update_ticket(
        self, ticket_id: int, body: Any, actor: User, *, at: float | None = None
    ) -> tuple[Ticket, Audit, list[Change]]:
        """Apply a ``{"ticket": {...}}`` update: fields, tags (replacing), custom fields, a comment."""
        ticket = self.ticket(ticket_id)
        data = _ticket_body(body)
        self._check_stamp(ticket, data)
        if ticket.status == "closed":
            raise errors.record_invalid("status", "Status: closed prevents ticket update", "ClosedPreventsUpdate")
        self._check_enums(data)
        now = self.now() if at is None else at
        events: list[dict[str, Any]] = []
        changes: list[Change] = []
        for name in ("subject", "status", "priority", "type", "external_id", "group_id"):
            if name in data and data[name] != getattr(ticket, name):
                value = data[name]
                if name == "subject" and not str(value or "").strip():
                    raise errors.record_invalid("subject", "Subject: cannot be blank", "BlankValue")
                if name == "external_id" and value is not None:
                    value = str(value)
                if name == "group_id":
                    value = _opt_int(value)
                events.append(self._field_event("Change", name, value, getattr(ticket, name)))
                setattr(ticket, name, value)
                if name == "status":
                    changes.append(Change("status_changed", ticket.id, actor.id))
        if "assignee_id" in data and _opt_int(data["assignee_id"]) != ticket.assignee_id:
            new_assignee = self._assignee(data["assignee_id"])
            events.append(self._field_event("Change", "assignee_id", new_assignee, ticket.assignee_id))
            ticket.assignee_id = new_assignee
        if "tags" in data:
            new_tags = normalize_tags(data["tags"])
            if new_tags != ticket.tags:
                events.append(self._field_event("Change", "tags", " ".join(new_tags), " ".join(ticket.tags)))
                gained = [t for t in new_tags if t not in ticket.tags]
                ticket.tags = new_tags
                if gained:
                    changes.append(Change("tag_added", ticket.id, actor.id, tags_added=gained))
        for field_id, value in self._custom_values(data).items():
            if ticket.custom_fields.get(field_id) != value:
                events.append(self._field_event("Change", str(field_id), value, ticket.custom_fields.get(field_id)))
                if value is None:
                    ticket.custom_fields.pop(field_id, None)
                else:
                    ticket.custom_fields[field_id] = value
        audit_id = self.next_id("audit")
        text = self._comment_text(data.get("comment"))
        if text is not None:
            spec = data["comment"] if isinstance(data["comment"], dict) else {}
            author_id = _opt_int(spec.get("author_id")) or actor.id
            if author_id not in self.users:
                raise errors.record_invalid("comment", "Comment: author is invalid")
            comment = Comment(
                id=self.next_id("comment"),
                author_id=author_id,
                body=text[0],
                html_body=text[1],
                public=truthy(spec.get("public", True)),
                created_at=now,
                audit_id=audit_id,
                attachment_ids=self._uploaded(spec),
            )
            ticket.comments.append(comment)
            events.insert(0, self._comment_event(comment))
            changes.append(Change("comment_added", ticket.id, actor.id, comment=comment))
        audit = Audit(audit_id, ticket.id, actor.id, now, events, custom=_metadata(data.get("metadata")))
        if events:
            self._touch(ticket, now)
            self.audits.setdefault(ticket.id, []).append(audit)
        return ticket, audit, changes

    def change_tags(
        self, ticket_id: int, op: str, tags: Any, actor: User, body: dict[str, Any] | None = None
    ) -> tuple[Ticket, list[Change]]:
        """The Tags API on a ticket: ``set`` (POST), ``add`` (PUT) or ``remove`` (DELETE); safe updates apply."""
        ticket = self.ticket(ticket_id)
        self._check_stamp(ticket, body or {})
        wanted = normalize_tags(tags)
        if op == "set":
            new = wanted
        elif op == "add":
            new = ticket.tags + [t for t in wanted if t not in ticket.tags]
        elif op == "remove":
            new = [t for t in ticket.tags if t not in wanted]
        else:
            raise ValueError(op)
        changes: list[Change] = []
        if new != ticket.tags:
            gained = [t for t in new if t not in ticket.tags]
            ticket.tags = new
            self._touch(ticket, self.now())
            if gained:
                changes.append(Change("tag_added", ticket.id, actor.id, tags_added=gained))
        return ticket, changes

    def _comment_event(self, comment: Comment) -> dict[str, Any]:
        return {
            "id": self.next_id("audit"),
            "type": "Comment",
            "author_id": comment.author_id,
            "body": comment.body,
            "html_body": comment.html_body,
            "plain_body": comment.body,
            "public": comment.public,
            "attachments": [],
            "audit_id": comment.audit_id,
        }

    def _field_event(self, kind: str, name: str, value: Any, previous: Any = None) -> dict[str, Any]:
        # The spec types an audit event's value as a string or an integer.
        event: dict[str, Any] = {
            "id": self.next_id("audit"),
            "type": kind,
            "field_name": name,
            "value": value if isinstance(value, int | str) else _as_text(value),
        }
        if kind == "Change":
            event["previous_value"] = previous if isinstance(previous, int | str) else _as_text(previous)
        return event

    # -- idempotent creates -------------------------------------------------------------------------------
    def idempotent_lookup(self, key: str, fingerprint: str) -> IdempotentAnswer | None:
        """The stored answer for a key (None when new or expired); a 400 when the body differs."""
        now = self.now()
        for stale in [k for k, v in self.idempotency.items() if now - v.stored_at > IDEMPOTENCY_TTL]:
            del self.idempotency[stale]
        found = self.idempotency.get(key)
        if found is None:
            return None
        if found.fingerprint != fingerprint:
            raise errors.idempotency_mismatch()
        return found

    def redact(self, ticket_id: int, comment_id: int, text: Any) -> Comment:
        """Redact String in Comment: every occurrence of ``text`` becomes ``▇`` characters, for good; the ticket
        records the change (its ``updated_at`` moves, so the incremental export lists it). Closed: 422."""
        ticket = self.ticket(ticket_id)
        comment = next((c for c in ticket.comments if c.id == comment_id), None)
        if comment is None:
            raise errors.not_found()
        if not isinstance(text, str) or not text:
            raise errors.bad_request("text is required")
        if ticket.status == "closed":
            raise errors.record_invalid("comment", "Comment: a closed ticket's comments cannot be redacted")
        if text in comment.body:
            comment.body = comment.body.replace(text, "\u2587" * len(text))
            comment.html_body = html_of(comment.body)
            self._touch(ticket, self.now())
        return comment

    # -- attachments --------------------------------------------------------------------------------------
    def upload(self, file_name: str, content: bytes, content_type: str, token: str | None = None) -> Attachment:
        """``POST /api/v2/uploads``: a new attachment under a new token, or added to an upload's ``token``."""
        name = file_name.strip()
        if not name:
            raise errors.bad_request("filename is required")
        if len(content) > MAX_ATTACHMENT_BYTES:
            raise VendorFault(413, {"error": "RecordInvalid", "description": "Attachment is too large"})
        if token is not None and token not in self.uploads:
            raise errors.not_found()
        token = token or secrets.token_urlsafe(18)
        attachment = Attachment(
            self.next_id("attachment"), token, name, content_type or "application/octet-stream", content, self.now()
        )
        self.attachments[attachment.id] = attachment
        self.uploads.setdefault(token, []).append(attachment.id)
        return attachment

    def attachment(self, attachment_id: int) -> Attachment:
        """An attachment by id, or a 404."""
        found = self.attachments.get(attachment_id)
        if found is None:
            raise errors.not_found()
        return found

    def _uploaded(self, spec: dict[str, Any]) -> list[int]:
        """The attachments a comment's ``uploads`` tokens name (each token once: it is spent by the comment)."""
        tokens = spec.get("uploads") or []
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise errors.record_invalid("comment", "Comment: uploads is invalid")
        ids: list[int] = []
        for token in tokens:
            if token not in self.uploads:
                raise errors.record_invalid("comment", "Comment: uploads is invalid")
            ids.extend(self.uploads.pop(token))
        return ids

    # -- webhooks -----------------------------------------------------------------------------------------
    @staticmethod
    def _webhook_fields(body: Any, *, partial: bool) -> dict[str, Any]:
        """The ``webhook`` object of a create (every mandatory field) or update (the fields given), checked."""
        data = body.get("webhook") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise _webhook_invalid("webhook", "webhook is required")
        for name in ("name", "endpoint", "http_method", "request_format", "status"):
            if (not partial or name in data) and not str(data.get(name) or "").strip():
                raise _webhook_invalid(name, f"{name} is required")
        if "http_method" in data and data["http_method"] not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise _webhook_invalid("http_method", "http_method must be one of GET, POST, PUT, PATCH, DELETE")
        if "request_format" in data and data["request_format"] not in ("json", "xml", "form_encoded"):
            raise _webhook_invalid("request_format", "request_format must be one of json, xml, form_encoded")
        if "status" in data and data["status"] not in ("active", "inactive"):
            raise _webhook_invalid("status", "status must be active or inactive")
        if "endpoint" in data and not re.match(r"https?://", str(data["endpoint"])):
            raise _webhook_invalid("endpoint", "endpoint must be an http(s) URL")
        subscriptions = data.get("subscriptions") or []
        if not isinstance(subscriptions, list) or not all(isinstance(s, str) for s in subscriptions):
            raise _webhook_invalid("subscriptions", "subscriptions must be an array of strings")
        return data

    def create_webhook(self, body: Any, actor: User) -> Webhook:
        """Create a webhook from ``{"webhook": {...}}``; missing mandatory fields are refused."""
        data = self._webhook_fields(body, partial=False)
        given = data.get("signing_secret")
        secret = given.get("secret") if isinstance(given, dict) else None
        now = self.now()
        hook = Webhook(
            id=self.new_webhook_id(),
            name=str(data["name"]),
            endpoint=str(data["endpoint"]),
            http_method=str(data["http_method"]),
            request_format=str(data["request_format"]),
            status=str(data["status"]),
            subscriptions=list(data.get("subscriptions") or []),
            created_at=now,
            updated_at=now,
            created_by=actor.id,
            secret=str(secret) if secret else self.new_secret(),
            description=str(data.get("description") or ""),
        )
        self.webhooks[hook.id] = hook
        return hook

    def update_webhook(self, hook: Webhook, body: Any) -> None:
        """Update Webhook (``PUT``): the given fields replace the webhook's; its signing secret stays."""
        data = self._webhook_fields(body, partial=True)
        for name in ("name", "endpoint", "http_method", "request_format", "status", "description"):
            if name in data:
                setattr(hook, name, str(data[name] or ""))
        if "subscriptions" in data:
            hook.subscriptions = list(data["subscriptions"] or [])
        hook.updated_at = self.now()

    # -- search -------------------------------------------------------------------------------------------
    def search(self, query: str) -> list[tuple[str, Any]]:
        """Records matching a Zendesk search query, as (result_type, record)."""
        return Search(self, query).run()

    # -- incremental export -------------------------------------------------------------------------------
    def export_keys(self, delay: float) -> list[tuple[float, int, Ticket]]:
        """Tickets in export order (change time, id), leaving out the last ``delay`` seconds like Zendesk."""
        if self._export_order is None:
            # (updated_ts, id) is unique, so the tuples sort without ever comparing tickets
            self._export_order = sorted((t.updated_ts, t.id, t) for t in self.tickets.values())
        rows = self._export_order
        return rows[: bisect.bisect_right(rows, self.now() - delay, key=lambda r: r[0])]


class Search:
    """Zendesk's search syntax over the emulator's records (the subset cxbridge and its tests use).

    Supported: ``type:ticket|user|organization``; ``status``/``priority`` with ``: < > <= >=`` (ordered like
    Zendesk); ``tags:``/``tag:``; ``requester:``, ``submitter:``, ``assignee:`` (email, id or ``none``);
    ``organization:`` (name or id); ``ticket_type:``; ``subject:``, ``description:``; ``external_id:``;
    ``custom_field_<id>:``; ``created``/``updated``/``solved`` with dates, datetimes or relative times
    (``updated>2hours``); ``email:``, ``name:``, ``role:`` for users; ``-`` negates a term; quoted phrases;
    ``*`` as a trailing wildcard; bare words search subject, description and comments (or names and emails).
    The same property named twice is an OR, different properties AND.
    """

    TERM = re.compile(r'(-?)(?:([a-z_0-9]+)(:|<=|>=|<|>))?("[^"]*"|\S+)', re.IGNORECASE)
    WORDS = frozenset({"subject", "description", "comment", "comments", "name", "notes", "details", "organization"})
    UNITS = {
        "minute": 60,
        "minutes": 60,
        "hour": 3600,
        "hours": 3600,
        "day": 86400,
        "days": 86400,
        "week": 604800,
        "weeks": 604800,
        "month": 2592000,
        "months": 2592000,
        "year": 31536000,
        "years": 31536000,
    }

    def __init__(self, model: ZendeskModel, query: str) -> None:
        self.model = model
        self.types: set[str] = set()
        self.terms: list[tuple[bool, str | None, str, str]] = []
        for neg, key, op, raw in self.TERM.findall(query.strip()):
            value = raw[1:-1] if len(raw) >= 2 and raw.startswith('"') and raw.endswith('"') else raw
            key = key.lower() or None
            if key == "type" and op == ":" and not neg:
                if value.lower() not in ("ticket", "user", "organization", "group"):
                    raise errors.search_invalid(f"Invalid type: {value}")
                self.types.add(value.lower())
                continue
            self.terms.append((bool(neg), key, op or ":", value))

    def run(self) -> list[tuple[str, Any]]:
        types = self.types or {"ticket", "user", "organization"}
        found: list[tuple[str, Any]] = []
        if "ticket" in types:
            found += [
                ("ticket", t)
                for t in sorted(self.model.tickets.values(), key=lambda t: t.id)
                if self._matches(t, self._ticket_value, self._ticket_text)
            ]
        if "user" in types:
            found += [
                ("user", u)
                for u in sorted(self.model.users.values(), key=lambda u: u.id)
                if self._matches(u, self._user_value, lambda u: [u.name, u.email, u.notes])
            ]
        if "organization" in types:
            found += [
                ("organization", o)
                for o in sorted(self.model.organizations.values(), key=lambda o: o.id)
                if self._matches(o, self._org_value, lambda o: [o.name, *o.domain_names, o.details])
            ]
        return found

    def _matches(
        self, record: Any, value_of: Callable[[Any, str], list[Any] | None], text_of: Callable[[Any], list[str]]
    ) -> bool:
        groups: dict[str, list[bool]] = {}
        for neg, key, op, value in self.terms:
            if key is None:
                hit = any(_like(value, text, partial=True) for text in text_of(record) if text)
                if hit == neg:
                    return False
                continue
            values = value_of(record, key)
            if values is None:  # a property this kind of record does not have
                return False
            hit = any(self._compare(key, op, value, v) for v in values)
            if neg:
                if hit:
                    return False
            elif op == ":":
                groups.setdefault(key, []).append(hit)
            elif not hit:
                return False
        return all(any(hits) for hits in groups.values())

    def _compare(self, key: str, op: str, wanted: str, actual: Any) -> bool:
        if key in ("created", "updated", "solved"):
            if actual is None:
                return False
            return self._compare_time(op, wanted, float(actual))
        if key in ("status", "priority") and op != ":":
            order = STATUSES if key == "status" else PRIORITIES
            if wanted.lower() not in order or actual not in order:
                return False
            diff = order.index(actual) - order.index(wanted.lower())
            return {"<": diff < 0, ">": diff > 0, "<=": diff <= 0, ">=": diff >= 0}[op]
        if wanted.lower() == "none":
            return actual is None or actual == ""
        if actual is None:
            return False
        return _like(wanted, str(actual), partial=key in self.WORDS)

    def _compare_time(self, op: str, wanted: str, ts: float) -> bool:
        rel = re.fullmatch(r"(\d+)\s*([a-z]+)", wanted.lower())
        if rel and rel[2] in self.UNITS:
            low = high = self.model.now() - int(rel[1]) * self.UNITS[rel[2]]
        else:
            try:
                low = parse_iso(wanted)
            except ValueError:
                raise errors.search_invalid(f"Invalid date: {wanted}") from None
            # A bare date is the whole day [low, high); a datetime is an instant.
            high = low + 86400 if re.fullmatch(r"\d{4}-\d{2}-\d{2}", wanted.strip()) else low
        day = high > low
        if op == ":":
            return low <= ts < high if day else int(ts) == int(low)
        if op == "<":
            return ts < low
        if op == "<=":
            return ts < high if day else ts <= low
        if op == ">":
            return ts >= high if day else ts > low
        return ts >= low

    def _ticket_value(self, t: Ticket, key: str) -> list[Any] | None:
        users = self.model.users
        if key in ("status", "priority"):
            return [getattr(t, key)]
        if key in ("tags", "tag"):
            return list(t.tags) or [None]
        if key in ("requester", "submitter", "assignee"):
            uid = getattr(t, f"{key}_id")
            user = users.get(uid) if uid is not None else None
            return [None] if user is None else [user.email, str(user.id), user.name]
        if key == "organization":
            org = self.model.organizations.get(t.organization_id) if t.organization_id else None
            return [None] if org is None else [org.name, str(org.id)]
        if key == "ticket_type":
            return [t.type]
        if key in ("subject", "description", "external_id"):
            return [getattr(t, key)]
        if key == "created":
            return [t.created_at]
        if key == "updated":
            return [t.updated_ts]
        if key == "solved":
            return [t.updated_ts if t.status in ("solved", "closed") else None]
        m = re.fullmatch(r"custom_field_(\d+)", key)
        if m:
            value = t.custom_fields.get(int(m[1]))
            return value if isinstance(value, list) else [value]
        if key in ("comment", "comments"):
            return [c.body for c in t.comments]
        return None

    @staticmethod
    def _ticket_text(t: Ticket) -> list[str]:
        return [t.subject, t.description, *(c.body for c in t.comments)]

    def _user_value(self, u: User, key: str) -> list[Any] | None:
        if key in ("email", "name", "role", "external_id", "phone", "notes"):
            return [getattr(u, key)]
        if key in ("tags", "tag"):
            return list(u.tags) or [None]
        if key == "organization":
            org = self.model.organizations.get(u.organization_id) if u.organization_id else None
            return [None] if org is None else [org.name, str(org.id)]
        if key == "created":
            return [u.created_at]
        if key == "updated":
            return [u.updated_at]
        return None

    def _org_value(self, o: Organization, key: str) -> list[Any] | None:
        if key in ("name", "external_id", "details", "notes"):
            return [getattr(o, key)]
        if key in ("tags", "tag"):
            return list(o.tags) or [None]
        if key in ("domain", "domain_names"):
            return list(o.domain_names) or [None]
        if key == "created":
            return [o.created_at]
        if key == "updated":
            return [o.updated_at]
        return None


def _like(pattern: str, text: str, *, partial: bool = False) -> bool:
    """Case-insensitive equality, with ``*`` as a wildcard; ``partial`` matches inside the text."""
    regex = ".*".join(re.escape(part) for part in pattern.lower().split("*"))
    if partial:
        return re.search(regex, text.lower()) is not None
    return re.fullmatch(regex, text.lower()) is not None


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return json.dumps(value) if isinstance(value, dict) else str(value)


METADATA_MAX = 1024
"""Zendesk keeps up to 1 kilobyte of custom metadata per audit."""


def _metadata(value: Any) -> dict[str, Any]:
    """An update's ``ticket.metadata`` (an object, at most ``METADATA_MAX`` bytes of JSON), for the audit."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.record_invalid("metadata", "Metadata: is invalid")
    if len(json.dumps(value).encode("utf-8")) > METADATA_MAX:
        raise errors.record_invalid("metadata", "Metadata: is too large (1 KB at most)")
    return dict(value)


def _ticket_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("ticket"), dict):
        raise VendorFault(400, {"error": "InvalidValue", "description": "Parameter ticket is required"})
    data: dict[str, Any] = body["ticket"]
    return data


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise errors.record_invalid(name, f"{name}: is not a number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.record_invalid(name, f"{name}: is not a number") from None


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value, "id")


def _webhook_invalid(name: str, detail: str) -> VendorFault:
    # The Webhooks API (not in the OAS) answers in the JSON:API error envelope of Zendesk's newer APIs.
    return VendorFault(
        400,
        {
            "errors": [
                {
                    "code": "InvalidInput",
                    "title": "Invalid input",
                    "detail": detail,
                    "source": {"pointer": f"/webhook/{name}"},
                }
            ]
        },
    )
