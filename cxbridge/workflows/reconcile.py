"""Reconciliation by polling: catch what webhooks missed, through the same event path.

``cxbridge sync`` scans each configured system for records changed since its checkpoint (Zendesk's cursor-based
incremental export, HubSpot's CRM search on ``hs_lastmodifieddate``, Jira's JQL on ``updated``: each plugin's
``changed_tickets`` / ``changed_issues``) and turns only what matters into neutral signals:

- a helpdesk ticket that asks for an escalation (``Helpdesk.wants_escalation``: the ``[escalation] tag`` by
  default, a plugin's own trigger otherwise) and whose escalation is not complete: ``EscalationRequested``;
- a tracker issue that has linked tickets in the store: ``IssueStateObserved`` with its current state (no
  changelog), which sync back compares with what it applied last.

Each signal's delivery id names the remote state, ``poll:<system:kind:id>:<updated>``, and goes through
``events.enqueue_signal`` into the inbox and the queue, so the same state polled twice is one job, and a change
the webhook delivered too is dropped by the state-based router. The checkpoint of each (system, stream) is saved
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
from ..models import Issue, Ref, Ticket
from ..signals import EscalationRequested, IssueStateObserved, Signal
from .escalate import completed_escalation
from .events import enqueue_signal, triggers

if TYPE_CHECKING:
    from .context import Context

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


def pollable_streams(connector: Connector) -> list[str]:
    """The streams a connector offers: ``tickets`` (helpdesk ``changed_tickets``), ``issues`` (tracker)."""
    streams: list[str] = []
    if HELPDESK in connector.roles and isinstance(connector, Helpdesk) and connector.supports("changed_tickets"):
        streams.append(TICKETS)
    if TRACKER in connector.roles and isinstance(connector, Tracker) and connector.supports("changed_issues"):
        streams.append(ISSUES)
    return streams


def _targets(rt: Context, systems: list[str] | None) -> list[tuple[str, Connector, str]]:
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
    rt: Context,
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
                    found = _signal_for(rt, name, connector, item)
                    if found is None:
                        continue
                    if enqueue_signal(rt, name, *found):
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


def _signal_for(rt: Context, name: str, connector: Connector, item: Any) -> tuple[str, Signal] | None:
    """The delivery id and signal of a polled record that matters; None for one that does not."""
    if isinstance(item, Ticket) and isinstance(connector, Helpdesk):
        if item.status == "deleted":  # an export lists deleted tickets too; they cannot be escalated
            return None
        if not connector.wants_escalation(item, triggers(rt)):
            return None
        ticket = Ref(name, "ticket", item.ref.id)
        if completed_escalation(rt.store, ticket) is not None:
            return None
        return poll_delivery_id(ticket, _iso(item.updated_at)), EscalationRequested(ticket=ticket)
    if isinstance(item, Issue) and isinstance(connector, Tracker):
        if not item.ref.id:
            return None
        ref = Ref(name, "issue", item.ref.id)
        linked = rt.store.links_for_issue(ref)
        if not linked and item.key:
            linked = rt.store.links_for_issue_key(item.key)
        if not linked:
            return None
        signal = IssueStateObserved(
            issue=ref,
            key=item.key,
            summary=item.summary,
            status=item.status,
            category=item.status_category,
            updated=item.updated_at,
            category_changed=item.status_category_changed_at,
            resolution=item.resolution,
        )
        return poll_delivery_id(ref, _iso(item.updated_at)), signal
    return None


def poll_delivery_id(subject: Ref, updated: str) -> str:
    """The delivery id of a polled state: ``poll:<system:kind:id>:<updated>`` (the same state, the same id)."""
    return f"{POLL_PREFIX}:{subject}:{updated}"


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.isoformat()


# --- the --since option ------------------------------------------------------------------------------------


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
