"""Vendor-neutral signals: what an outside event means, whichever system it came from.

A plugin turns its own vendor events (a webhook delivery's ``Event``, a polled record) into these few types
(``Connector.interpret``); the router, sync back and the reconciler act on signals only, so a new helpdesk or
tracker needs no change in the core. Every reference names the ``[systems.<name>]`` table the record lives
in (``Ref("zendesk", "ticket", "4")``), and every signal carries ``actor``: the id of the user who made the
change as that system names it, so that changes made by cxbridge's own integration user are dropped as echoes.

Issue states use the neutral status categories below (the three Jira popularised; a tracker maps its own
workflow states onto them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from .models import Person, Ref, Ticket, ticket_from_dict, ticket_to_dict

NEW = "new"
IN_PROGRESS = "indeterminate"
DONE = "done"
STATUS_CATEGORIES = (NEW, IN_PROGRESS, DONE)
"""The neutral status categories of a tracker issue, in workflow order."""
CATEGORY_NAMES = {NEW: "To Do", IN_PROGRESS: "In Progress", DONE: "Done"}
"""How the categories read in notes and reports."""


@dataclass(frozen=True)
class Triggers:
    """What the admin configured that tells a plugin which changes ask for something (``[escalation] tag``)."""

    escalation_tag: str = ""
    decision_tag_prefix: str = ""
    """Tags starting with this ask for a decision (``[decisions] tag_prefix``, e.g. ``cxb_decide_``); empty: none."""


@dataclass(frozen=True)
class Signal:
    """Base of every signal; ``actor`` is the id of who made the change on its system (None when unknown)."""

    kind: ClassVar[str] = "signal"
    actor: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class EscalationRequested(Signal):
    """A ticket asks to be escalated (the agent added the tag, ticked the property...).

    ``agent`` is who asked, when the helpdesk says; ``issue_key`` an issue the agent named to join, when the
    event carries it (the escalation also asks the helpdesk for it as it reads the ticket).
    """

    kind: ClassVar[str] = "escalation_requested"
    ticket: Ref
    agent: Person | None = None
    issue_key: str | None = None
    fresh: bool = False
    """The request was made just now (the tag was just added, the property just set), not merely seen on a ticket
    that carries it: an escalated ticket is then read again for an issue key the agent changed (a move)."""
    requester_email: str | None = None
    """The ticket's requester's email when the event carries it: a hint that lets the escalation look for the
    customer while it reads the ticket (the ticket read stays the truth: a different requester there redoes the
    lookup). None when the event does not say."""
    record: Ticket | None = None
    """The ticket as a poll read it, when that record is complete (``Ticket.complete``): the escalation uses it
    instead of reading the ticket again."""


@dataclass(frozen=True)
class DecisionRequested(Signal):
    """An agent asks for a decision on a ticket from inside the helpdesk (a macro added a decision tag).

    ``tag`` is the whole tag (the core reads the action and its value from it, ``[decisions] tag_actions``);
    ``agent`` is who applied it, as the helpdesk names them (the decision's actor; None when the event does
    not say, and then the decision is refused for want of a named agent).
    """

    kind: ClassVar[str] = "decision_requested"
    ticket: Ref
    tag: str
    agent: Person | None = None


@dataclass(frozen=True)
class TicketCommentAdded(Signal):
    """A comment on a ticket, as it reads now: its plain text, whether the customer sees it, who wrote it.

    ``comment_id`` is the helpdesk's id of the comment (the same comment seen again with another text is an
    edit: a redaction, an edited note); ``tags`` the ticket's tags as the event saw them (a macro's tag can
    mark a ticket's notes for engineering). ``attachments`` are the helpdesk's attachment ids.
    """

    kind: ClassVar[str] = "ticket_comment_added"
    ticket: Ref
    text: str
    public: bool = False
    author: Person | None = None
    attachments: tuple[str, ...] = ()
    comment_id: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class IssueStateObserved(Signal):
    """The state of a tracker issue as an event or a poll saw it (no changelog: sync back compares states).

    ``category`` is one of ``STATUS_CATEGORIES`` (None when the event does not hold the status);
    ``category_changed`` is when the issue last changed category, when the tracker says; ``resolution`` is how
    the issue was resolved as the tracker names it (``Done``, ``Won't Do``, ``Duplicate``), None when unresolved.
    """

    kind: ClassVar[str] = "issue_state_observed"
    issue: Ref
    key: str
    summary: str = ""
    status: str | None = None
    category: str | None = None
    updated: datetime | None = None
    category_changed: datetime | None = None
    actor_name: str | None = None
    resolution: str | None = None


@dataclass(frozen=True)
class IssueCommentPosted(Signal):
    """A comment on a tracker issue, as plain text, with its visibility (``visibility_type``: group, role...)."""

    kind: ClassVar[str] = "issue_comment_posted"
    issue: Ref
    key: str
    comment_id: str
    text: str
    summary: str = ""
    author_name: str | None = None
    visibility_type: str | None = None
    visibility_value: str | None = None


@dataclass(frozen=True)
class VersionReleased(Signal):
    """A version (release) of the tracker was released: the issues fixed in it are asked from the tracker."""

    kind: ClassVar[str] = "version_released"
    tracker: str
    version_id: str
    name: str | None = None
    release_date: str | None = None
    released: bool = True


@dataclass(frozen=True)
class TicketStateObserved(Signal):
    """A ticket's status as an event or a poll saw it (None when the event does not hold it: the core reads the
    ticket). Its remote links' resolved flag and the impact's open tickets follow it."""

    kind: ClassVar[str] = "ticket_state_observed"
    ticket: Ref
    status: str | None = None


@dataclass(frozen=True)
class CustomerChanged(Signal):
    """A CRM company changed something the customer impact reads (ARR, tier, renewal date, name, owner...).

    ``company`` names the company in the configured CRM; ``properties`` the CRM's own names of what changed, when
    the event says (informational: the impact re-reads the company whatever changed).
    """

    kind: ClassVar[str] = "customer_changed"
    company: Ref
    properties: tuple[str, ...] = ()


SIGNAL_TYPES: dict[str, type[Signal]] = {
    cls.kind: cls
    for cls in (
        EscalationRequested,
        DecisionRequested,
        TicketCommentAdded,
        IssueStateObserved,
        IssueCommentPosted,
        VersionReleased,
        TicketStateObserved,
        CustomerChanged,
    )
}


def signal_to_dict(signal: Signal) -> dict[str, Any]:
    """A signal as JSON-ready data (a queued job's payload): its ``kind`` and its fields."""
    data: dict[str, Any] = {"kind": signal.kind}
    for f in fields(signal):
        value = getattr(signal, f.name)
        if isinstance(value, Ref):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Person):
            value = {"name": value.name, "email": value.email, "ref": str(value.ref) if value.ref else None}
        elif isinstance(value, Ticket):
            value = ticket_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        data[f.name] = value
    return data


def signal_from_dict(data: dict[str, Any]) -> Signal:
    """Read back what ``signal_to_dict`` wrote (``ValueError`` for an unknown kind)."""
    cls = SIGNAL_TYPES.get(str(data.get("kind")))
    if cls is None:
        raise ValueError(f"unknown signal kind {data.get('kind')!r}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        kind = str(f.type)
        if value is not None and kind.startswith("Ref"):
            value = Ref.parse(value)
        elif value is not None and kind.startswith("datetime"):
            value = datetime.fromisoformat(value)
        elif value is not None and kind.startswith("Person"):
            ref = value.get("ref")
            value = Person(name=value.get("name"), email=value.get("email"), ref=Ref.parse(ref) if ref else None)
        elif value is not None and kind.startswith("Ticket"):
            value = ticket_from_dict(value)
        elif kind.startswith("tuple"):
            value = tuple(value or ())
        values[f.name] = value
    return cls(**values)
