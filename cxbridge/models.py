"""The vendor-neutral records that flow between connectors, workflows, templates and the store."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, order=True)
class Ref:
    """Names any record in any system, as ``system:kind:id`` (for Jira the issue id, never the key)."""

    system: str
    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.system}:{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Ref:
        """Read ``system:kind:id`` back into a Ref."""
        parts = text.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"not a reference of the form system:kind:id: {text!r}")
        return cls(*parts)


@dataclass
class Person:
    """Someone on a ticket: a requester, an agent or an author."""

    name: str | None = None
    email: str | None = None
    ref: Ref | None = None


@dataclass
class Comment:
    """One comment on a ticket, public (seen by the customer) or internal (a note)."""

    ref: Ref
    body: str
    public: bool
    author: Person | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    """When the comment was last edited (trackers say; None when never or unknown)."""
    visibility: str | None = None
    """A tracker comment restricted to a role or group, as ``type:value`` (``role:Support``); None: unrestricted."""
    attachments: list[str] = field(default_factory=list)
    """The ids of the comment's attachments on its system."""


@dataclass
class Attachment:
    """A file on a ticket's comment or on an issue: its name, type and size, and where its system serves it."""

    ref: Ref
    filename: str
    content_type: str
    size: int
    url: str = ""


@dataclass
class Ticket:
    """A helpdesk ticket with what escalation needs to know about it."""

    ref: Ref
    url: str
    subject: str
    description: str = ""
    status: str | None = None
    priority: str | None = None
    tags: list[str] = field(default_factory=list)
    requester: Person | None = None
    organization: str | None = None
    organization_domains: list[str] = field(default_factory=list)
    """The requester's organization's domains as the helpdesk holds them (for finding the customer's company)."""
    comments: list[Comment] = field(default_factory=list)
    custom_fields: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    complete: bool = False
    """The record holds everything ``Helpdesk.get_ticket`` reads (a listing that carried the same sideloads, such as
    a poll's export): a workflow may use it instead of reading the ticket again. Its comments are never included."""


@dataclass
class Deal:
    """An open deal of the customer's, as the CRM holds it."""

    ref: Ref
    name: str
    stage: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    close_date: str | None = None


@dataclass
class Customer:
    """The customer behind a ticket, as the CRM knows them (company and contact)."""

    company_ref: Ref | None
    contact_ref: Ref | None
    name: str | None = None
    domain: str | None = None
    tier: str | None = None
    arr: Decimal | None = None
    currency: str | None = None
    owner: str | None = None
    """The account owner's name (the CRM's id for the owner when the CRM cannot tell the name)."""
    owner_email: str | None = None
    renewal_date: str | None = None
    lifecycle_stage: str | None = None
    deals: list[Deal] = field(default_factory=list)
    known: bool = True
    match: str | None = None
    """How the customer was found: ``email`` (a contact with the requester's email), ``email_domain`` (the
    company by the email's domain), ``organization_domain`` or ``organization_name`` (the company by the
    helpdesk organization's domain or name); None when not found."""

    @classmethod
    def unknown(cls) -> Customer:
        """A customer the CRM does not know: the handoff says so instead of failing."""
        return cls(company_ref=None, contact_ref=None, known=False)


@dataclass
class Issue:
    """An engineering issue in the tracker."""

    ref: Ref
    key: str
    url: str
    summary: str = ""
    status: str | None = None
    status_category: str | None = None
    priority: str | None = None
    assignee: str | None = None
    labels: list[str] = field(default_factory=list)
    fix_versions: list[str] = field(default_factory=list)
    updated_at: datetime | None = None
    status_category_changed_at: datetime | None = None
    """When the issue last moved to another status category, when the tracker says."""
    resolution: str | None = None
    """How the issue was resolved (``Done``, ``Won't Do``, ``Duplicate``...); None while it is unresolved."""
    description: Any = field(default=None, repr=False, compare=False)
    """The description in the tracker's own form (ADF on Jira Cloud, wiki text on Data Center), when read."""
    fields: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The raw vendor fields, when read (custom fields such as the impact values)."""


@dataclass
class Link:
    """A ticket joined to an issue, with the customer it concerns and how it came about."""

    ticket: Ref
    issue: Ref
    issue_key: str
    customer: Ref | None = None
    linked_by: str | None = None
    linked_at: datetime | None = None
    origin_event: str | None = None


@dataclass
class Event:
    """Something that happened outside, from a webhook or from polling; ``id`` is the dedupe key."""

    id: str
    system: str
    kind: str
    subject: Ref
    actor: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    received_at: datetime | None = None
    occurred_at: datetime | None = None


def event_to_dict(event: Event) -> dict[str, Any]:
    """An Event as JSON-ready data (for the inbox and a job's payload)."""
    return {
        "id": event.id,
        "system": event.system,
        "kind": event.kind,
        "subject": str(event.subject),
        "actor": event.actor,
        "payload": event.payload,
        "received_at": event.received_at.isoformat() if event.received_at else None,
        "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None,
    }


def event_from_dict(data: dict[str, Any]) -> Event:
    """Read back what ``event_to_dict`` wrote."""
    received, occurred = data.get("received_at"), data.get("occurred_at")
    return Event(
        id=str(data["id"]),
        system=str(data["system"]),
        kind=str(data["kind"]),
        subject=Ref.parse(str(data["subject"])),
        actor=data.get("actor"),
        payload=dict(data.get("payload") or {}),
        received_at=datetime.fromisoformat(received) if received else None,
        occurred_at=datetime.fromisoformat(occurred) if occurred else None,
    )


def ticket_to_dict(ticket: Ticket) -> dict[str, Any]:
    """A Ticket as JSON-ready data (a polled record carried in a job's payload), without its comments."""
    data: dict[str, Any] = to_jsonable(ticket)
    data["comments"] = []
    data["raw"] = ticket.raw
    return data


def ticket_from_dict(data: dict[str, Any]) -> Ticket:
    """Read back what ``ticket_to_dict`` wrote."""

    def person(value: Any) -> Person | None:
        if not isinstance(value, dict):
            return None
        ref = value.get("ref")
        return Person(name=value.get("name"), email=value.get("email"), ref=Ref.parse(ref) if ref else None)

    def when(value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None

    return Ticket(
        ref=Ref.parse(str(data["ref"])),
        url=str(data.get("url") or ""),
        subject=str(data.get("subject") or ""),
        description=str(data.get("description") or ""),
        status=data.get("status"),
        priority=data.get("priority"),
        tags=[str(t) for t in data.get("tags") or []],
        requester=person(data.get("requester")),
        organization=data.get("organization"),
        organization_domains=[str(d) for d in data.get("organization_domains") or []],
        custom_fields=dict(data.get("custom_fields") or {}),
        created_at=when(data.get("created_at")),
        updated_at=when(data.get("updated_at")),
        raw=dict(data.get("raw") or {}),
        complete=bool(data.get("complete")),
    )


_PLAIN = frozenset({str, int, float, bool, type(None)})
"""Types ``to_jsonable`` returns as they are (exact types: a subclass goes through the checks below)."""
_FIELDS: dict[type, tuple[str, ...]] = {}
"""Per dataclass, the names of its fields shown in its repr (what ``to_jsonable`` keeps), looked up once."""


def _shown_fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.repr)
    return names


def to_jsonable(value: Any) -> Any:
    """Turn models (and the Decimals, datetimes and Refs inside them) into JSON-ready values."""
    if type(value) in _PLAIN:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, Ref):
            return str(value)
        out = {}
        for name in _shown_fields(type(value)):
            item = getattr(value, name)
            out[name] = item if type(item) in _PLAIN else to_jsonable(item)
        return out
    if isinstance(value, dict):  # plain leaves taken as they are here, without a call each
        return {str(k): v if type(v) in _PLAIN else to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [v if type(v) in _PLAIN else to_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
