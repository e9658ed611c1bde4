"""Reconciliation by polling: catch what webhooks missed, through the same event path.

``cxbridge sync`` scans each configured system for records changed since its checkpoint (Zendesk's cursor-based
incremental export, HubSpot's CRM search on ``hs_lastmodifieddate``, Jira's JQL on ``updated``) and turns only
what matters into Events shaped like that system's webhook Events:

- a helpdesk ticket that asks for an escalation (the ``[escalation] tag`` on Zendesk, the escalation property on
  HubSpot) and is not linked in the store yet: a Zendesk trigger-style ``ticket.tag_added`` event
  (``{"ticket": {...}, "tags_added": [tag]}``) or a HubSpot ``ticket.propertyChange`` event;
- a tracker issue that has linked tickets in the store: a Jira ``jira:issue_updated`` event carrying the issue's
  current fields (state-based: no changelog), which the router compares with what it applied last.

Each Event's id names the remote state, ``poll:<system:kind:id>:<updated>``, and goes through
``events.enqueue_event`` like a webhook delivery, so the same state polled twice is one job, and a change the
webhook delivered too is dropped by the state-based router. The checkpoint of each (system, stream) is saved
after each page's events are committed: a crash resumes after the last page handled. Running it from cron while
``cxbridge serve`` runs is safe: the store serialises writers, and jobs take per-entity locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..connectors import HELPDESK, TRACKER, Connector, Helpdesk, Page, Tracker
from ..errors import ConfigError, CxbridgeError, VendorError
from ..models import Event, Issue, Ref, Ticket
from .escalate import completed_escalation
from .events import enqueue_event

if TYPE_CHECKING:
    from ..runtime import Runtime

TICKETS = "tickets"
ISSUES = "issues"
POLL_PREFIX = "poll"

Progress = Callable[["StreamReport"], None]


@dataclass
class StreamReport:
    """What one polling stream of one system did in this run."""

    system: str
    stream: str
    pages: int = 0
    records: int = 0
    calls: int = 0
    enqueued: int = 0
    duplicates: int = 0
    done: bool = False
    cursor: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "system": self.system,
            "stream": self.stream,
            "pages": self.pages,
            "records": self.records,
            "calls": self.calls,
            "enqueued": self.enqueued,
            "duplicates": self.duplicates,
            "done": self.done,
            "error": self.error,
        }


@dataclass
class ReconcileReport:
    """Every stream's figures, and the drain's when the queue was run afterwards."""

    streams: list[StreamReport] = field(default_factory=list)
    jobs: dict[str, Any] | None = None

    @property
    def enqueued(self) -> int:
        """Events committed as new jobs, over every stream."""
        return sum(s.enqueued for s in self.streams)

    @property
    def duplicates(self) -> int:
        """Events whose delivery id was in the inbox already (the same remote state seen before)."""
        return sum(s.duplicates for s in self.streams)

    @property
    def failed(self) -> list[StreamReport]:
        """Streams that stopped on an error (their checkpoint holds the last page handled)."""
        return [s for s in self.streams if s.error]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "streams": [s.as_dict() for s in self.streams],
            "enqueued": self.enqueued,
            "duplicates": self.duplicates,
            "jobs": self.jobs,
        }


# --- which systems poll --------------------------------------------------------------------------------------


def _overrides(connector: Connector, base: type, method: str) -> bool:
    own = getattr(type(connector), method, None)
    return own is not None and own is not getattr(base, method, None)


def pollable_streams(connector: Connector) -> list[str]:
    """The streams a connector offers: ``tickets`` (helpdesk ``changed_tickets``), ``issues`` (tracker)."""
    streams: list[str] = []
    if (
        HELPDESK in connector.roles
        and isinstance(connector, Helpdesk)
        and _overrides(connector, Helpdesk, "changed_tickets")
    ):
        streams.append(TICKETS)
    if (
        TRACKER in connector.roles
        and isinstance(connector, Tracker)
        and _overrides(connector, Tracker, "changed_issues")
    ):
        streams.append(ISSUES)
    return streams


def _targets(rt: Runtime, systems: list[str] | None) -> list[tuple[str, Connector, str]]:
    names = list(systems) if systems else [n for n, sc in rt.config.systems.items() if sc.enabled]
    targets: list[tuple[str, Connector, str]] = []
    for name in names:
        if name not in rt.config.systems:
            known = ", ".join(sorted(rt.config.systems)) or "none"
            raise ConfigError(f"sync: no system named {name!r} is configured (known: {known})")
        connector = rt.connector(name)
        streams = pollable_streams(connector)
        if not streams and systems:
            raise ConfigError(f"sync: the system {name!r} offers nothing to poll")
        targets.extend((name, connector, stream) for stream in streams)
    return targets


# --- the scan ------------------------------------------------------------------------------------------------


def reconcile(
    rt: Runtime,
    *,
    systems: list[str] | None = None,
    since: float | None = None,
    progress: Progress | None = None,
    now: float | None = None,
) -> ReconcileReport:
    """Poll every configured system (or ``systems``) and enqueue an Event for each change that matters.

    ``since`` (epoch seconds) overrides the saved checkpoints; without it a stream resumes from its checkpoint,
    or on its first run looks back ``[sync] lookback_hours``. A stream that fails keeps the checkpoint of the
    last page it handled, is reported with its error, and the other streams still run.
    """
    clock = time.time() if now is None else now
    lookback = float(rt.config.section("sync").get("lookback_hours", 24)) * 3600
    report = ReconcileReport()
    for name, connector, stream in _targets(rt, systems):
        figures = StreamReport(system=name, stream=stream)
        report.streams.append(figures)
        cursor = None if since is not None else rt.store.get_checkpoint(name, stream)
        start = float(since) if since is not None else clock - lookback
        calls_before = rt.counter.total(name)
        try:
            for page in _pages(connector, stream, cursor, start):
                figures.pages += 1
                figures.records += len(page.items)
                for item in page.items:
                    event = _event_for(rt, name, connector, item)
                    if event is None:
                        continue
                    if enqueue_event(rt, name, event):
                        figures.enqueued += 1
                    else:
                        figures.duplicates += 1
                if page.cursor:
                    rt.store.set_checkpoint(name, stream, page.cursor)
                    figures.cursor = page.cursor
                figures.done = page.done
                figures.calls = rt.counter.total(name) - calls_before
                if progress is not None:
                    progress(figures)
        except VendorError as exc:
            figures.error = str(exc)
        figures.calls = rt.counter.total(name) - calls_before
    return report


def _pages(connector: Connector, stream: str, cursor: dict[str, Any] | None, since: float) -> Iterator[Page]:
    if stream == TICKETS:
        assert isinstance(connector, Helpdesk)
        return connector.changed_tickets(cursor, since=since)
    assert isinstance(connector, Tracker)
    return connector.changed_issues(cursor, since=since)


def _event_for(rt: Runtime, name: str, connector: Connector, item: Any) -> Event | None:
    if isinstance(item, Ticket) and isinstance(connector, Helpdesk):
        if item.status == "deleted":  # the export lists deleted tickets too; they cannot be escalated
            return None
        if not escalation_requested(rt, connector, item):
            return None
        if completed_escalation(rt.store, connector.ticket_ref(item.ref.id)) is not None:
            return None
        if connector.system == "hubspot":
            return hubspot_ticket_event(connector, item)
        return zendesk_ticket_event(connector, item, tag=_escalation_tag(rt))
    if isinstance(item, Issue) and isinstance(connector, Tracker):
        if not item.ref.id:
            return None
        linked = rt.store.links_for_issue(Ref(name, "issue", item.ref.id))
        if not linked and item.key:
            linked = rt.store.links_for_issue_key(item.key)
        if not linked:
            return None
        return jira_issue_event(connector, item)
    return None


def _escalation_tag(rt: Runtime) -> str:
    return str(rt.config.section("escalation").get("tag") or "")


def escalation_requested(rt: Runtime, connector: Helpdesk, ticket: Ticket) -> bool:
    """Whether a ticket, as polled, asks to be escalated.

    A connector that knows its own trigger says so (``wants_escalation(ticket)``: HubSpot's escalation property
    set to its value); any other ticket asks when it carries the ``[escalation] tag`` (Zendesk).
    """
    own = getattr(connector, "wants_escalation", None)
    if callable(own):
        return bool(own(ticket))
    tag = _escalation_tag(rt)
    return bool(tag) and tag in ticket.tags


# --- events shaped like the webhooks -------------------------------------------------------------------------


def poll_delivery_id(subject: Ref, updated: str) -> str:
    """The delivery id of a polled state: ``poll:<system:kind:id>:<updated>`` (the same state, the same id)."""
    return f"{POLL_PREFIX}:{subject}:{updated}"


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.isoformat()


def _millis(value: datetime | None) -> int | None:
    """Epoch milliseconds, as HubSpot's ``occurredAt`` and Jira's ``timestamp`` carry them."""
    return int(value.timestamp() * 1000) if value else None


def _object_id(ref: Ref) -> int | str:
    """A record id as the vendor's payload spells it: a number when it is one."""
    return int(ref.id) if ref.id.isdigit() else ref.id


def _polled_event(
    connector: Connector, kind: str, subject: Ref, delivery: str, payload: dict[str, Any], occurred: datetime | None
) -> Event:
    """The Event for a polled state: no actor, received now, ``delivery`` (``poll_delivery_id``) as its id."""
    return Event(
        id=delivery,
        system=connector.system,
        kind=kind,
        subject=subject,
        actor=None,
        payload=payload,
        received_at=datetime.now(UTC),
        occurred_at=occurred,
    )


ZENDESK_TICKET_KEYS = (
    "id",
    "url",
    "subject",
    "status",
    "priority",
    "type",
    "tags",
    "requester_id",
    "submitter_id",
    "assignee_id",
    "organization_id",
    "external_id",
    "custom_fields",
    "created_at",
    "updated_at",
)
"""The ticket fields a polled Zendesk event carries (what a trigger's JSON template renders)."""


def zendesk_ticket_event(connector: Helpdesk, ticket: Ticket, *, tag: str) -> Event:
    """A trigger-style Zendesk ``ticket.tag_added`` Event for a ticket that carries the escalation tag.

    Shaped like the emulator's and an admin's trigger payload (``cxbridge_zendesk.webhook``):
    ``{"id", "event": "tag_added", "time", "ticket": {...}, "tags_added": [tag], "source": "poll"}``.
    """
    raw = ticket.raw or {}
    updated = raw.get("updated_at") if isinstance(raw.get("updated_at"), str) else _iso(ticket.updated_at)
    subject = Ref(connector.system, "ticket", ticket.ref.id)
    delivery = poll_delivery_id(subject, str(updated))
    body = {k: raw[k] for k in ZENDESK_TICKET_KEYS if k in raw}
    body.setdefault("id", _object_id(ticket.ref))
    body.setdefault("tags", list(ticket.tags))
    body.setdefault("updated_at", updated)
    payload = {
        "id": delivery,
        "event": "tag_added",
        "time": updated,
        "ticket": body,
        "tags_added": [tag],
        "source": POLL_PREFIX,
    }
    return _polled_event(connector, "ticket.tag_added", subject, delivery, payload, ticket.updated_at)


def _hubspot_property(connector: Connector) -> str:
    """The ticket property that escalates (the connector's ``escalate_property``, the router's config key)."""
    value = getattr(connector, "escalate_property", None)
    if not isinstance(value, str) or not value:
        value = connector.config.get("escalate_property")
    return value if isinstance(value, str) else ""


def _hubspot_properties(ticket: Ticket) -> dict[str, Any]:
    raw = ticket.raw or {}
    props = raw.get("properties")
    merged: dict[str, Any] = dict(ticket.custom_fields)
    if isinstance(props, dict):
        merged.update(props)
    return merged


def hubspot_ticket_event(connector: Helpdesk, ticket: Ticket) -> Event:
    """A HubSpot ``ticket.propertyChange`` Event for a ticket whose escalation property is set.

    Shaped like one item of a HubSpot webhook batch (``cxbridge_hubspot.webhook``): ``eventId``,
    ``subscriptionType``, ``objectId``, ``propertyName``, ``propertyValue``, ``occurredAt`` (ms).
    """
    prop = _hubspot_property(connector)
    value = _hubspot_properties(ticket).get(prop)
    raw = ticket.raw or {}
    updated = raw.get("updatedAt") if isinstance(raw.get("updatedAt"), str) else _iso(ticket.updated_at)
    subject = Ref(connector.system, "ticket", ticket.ref.id)
    delivery = poll_delivery_id(subject, str(updated))
    payload: dict[str, Any] = {
        "eventId": delivery,
        "subscriptionType": "ticket.propertyChange",
        "objectId": _object_id(ticket.ref),
        "propertyName": prop,
        "propertyValue": None if value is None else str(value),
        "occurredAt": _millis(ticket.updated_at),
        "source": POLL_PREFIX,
    }
    return _polled_event(connector, "ticket.propertyChange", subject, delivery, payload, ticket.updated_at)


def jira_issue_event(connector: Tracker, issue: Issue) -> Event:
    """A Jira ``jira:issue_updated`` Event carrying the issue's current fields, without a changelog.

    Shaped like an admin webhook's payload (``cxbridge_jira.webhook``): ``{"timestamp" (ms),
    "webhookEvent", "issue_event_type_name", "issue": {"id", "key", "fields"}}``.
    """
    fields = dict(issue.fields) if issue.fields else _fields_of(issue)
    raw_updated = fields.get("updated")
    updated = raw_updated if isinstance(raw_updated, str) and raw_updated else _iso(issue.updated_at)
    subject = Ref(connector.system, "issue", issue.ref.id)
    delivery = poll_delivery_id(subject, updated)
    payload: dict[str, Any] = {
        "timestamp": _millis(issue.updated_at),
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "issue": {"id": issue.ref.id, "key": issue.key, "fields": fields},
        "source": POLL_PREFIX,
    }
    return _polled_event(connector, "jira:issue_updated", subject, delivery, payload, issue.updated_at)


def _fields_of(issue: Issue) -> dict[str, Any]:
    """Jira-shaped fields rebuilt from an Issue (when the connector did not keep the raw ones)."""
    status: dict[str, Any] = {"name": issue.status}
    if issue.status_category:
        status["statusCategory"] = {"key": issue.status_category}
    return {
        "summary": issue.summary,
        "status": status,
        "priority": {"name": issue.priority} if issue.priority else None,
        "labels": list(issue.labels),
        "fixVersions": [{"name": v} for v in issue.fix_versions],
        "updated": _iso(issue.updated_at),
    }


# --- cxbridge sync --since -------------------------------------------------------------------------------------


def parse_since(text: str) -> float:
    """``--since``: an ISO-8601 date or time (UTC when it names no offset) as epoch seconds."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CxbridgeError(f"--since: not an ISO-8601 time: {text!r} (e.g. 2026-01-31T09:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
