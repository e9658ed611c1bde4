"""Reconciliation by polling: catch what webhooks missed, through the same event path.

``cxbridge sync`` scans each configured system for records changed since its checkpoint (Zendesk's cursor-based
incremental export, HubSpot's CRM search on ``hs_lastmodifieddate``, Jira's JQL on ``updated``: each plugin's
``changed_tickets`` / ``changed_issues``) and turns only what matters into neutral signals:

- a helpdesk ticket that asks for an escalation (``Helpdesk.wants_escalation``: the ``[escalation] tag`` by
  default, a plugin's own trigger otherwise) and whose escalation is not complete: ``EscalationRequested``,
  carrying the polled record when it is complete (``Ticket.complete``: the export had get_ticket's sideloads), so
  the escalation does not read the ticket again. The record is as fresh as the export (at least as new as the
  checkpoint the scan started from): the state the request was seen in; the escalation's ticket update is a safe
  update against the record's stamp, so a ticket changed since is read again there, never overwritten;
  one whose escalation is complete: ``TicketStateObserved`` with its status (its links' resolved flag);
- a tracker issue that has linked tickets in the store: ``IssueStateObserved`` with its current state (no
  changelog), which sync back compares with what it applied last;
- the comments of a changed ticket or issue that is linked, made since it was first linked: on a ticket, those
  the relay would send to engineering (``TicketCommentAdded``, delivery id ``poll:<ticket>:comment:<id>:<text
  fingerprint>``, so an edit is a new delivery); on an issue, those marked for support (``IssueCommentPosted``,
  ``poll:<issue>:comment:<id>:<updated>``);
- the ``companies`` stream of a CRM (``CRM.changed_companies``, restricted to the companies linked to issues):
  each changed linked company is a ``CustomerChanged`` with ``poll:<system:company:id>:<modified>``, which
  re-reads the company and refreshes the impact of its open issues (nothing written where the rollup is as the
  issue holds it already), as the CRM's webhook would;
- the ``versions`` stream of a tracker (``Tracker.released_versions``): every version released since the
  checkpoint's day, ``VersionReleased`` with ``poll:<tracker>:version:<id>:released``.

Each signal's delivery id names the remote state, ``poll:<system:kind:id>:<updated>``, and goes through
``events.enqueue_signal`` into the inbox and the queue, so the same state polled twice is one job, and a change
the webhook delivered too is dropped by the state-based router. The checkpoint of each (system, stream) is saved
after each page's events are committed: a crash resumes after the last page handled. Running it from cron while
``cxbridge serve`` runs is safe: the store serialises writers, and jobs take per-entity locks. Running it from
every machine's timer at once is safe too: each (system, stream) is polled under the store's cross-process lock
``exclusive("sync:<system>:<stream>")``, so one process polls it and the others skip it (reported as skipped),
and the next run resumes from the shared checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..connectors import CRM, CRM_ROLE, HELPDESK, TRACKER, ChangedCompany, Connector, Helpdesk, Page, Tracker
from ..errors import ConfigError, CxbridgeError, VendorError
from ..models import Comment, Issue, Link, Ref, Ticket
from ..signals import (
    CustomerChanged,
    EscalationRequested,
    IssueCommentPosted,
    IssueStateObserved,
    Signal,
    TicketCommentAdded,
    TicketStateObserved,
    VersionReleased,
)
from . import impact
from .escalate import completed_escalation
from .events import enqueue_signal, triggers
from .relay import Relay
from .syncback import SyncBack, fingerprint

if TYPE_CHECKING:
    from .context import Context

TICKETS = "tickets"
ISSUES = "issues"
VERSIONS = "versions"
COMPANIES = "companies"
POLL_PREFIX = "poll"

Progress = Callable[["StreamReport"], None]
LINK_SKEW_SECONDS = 5.0
"""A comment made within this many seconds before the link still counts as after it (clocks of two systems)."""


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
    skipped: bool = False
    """Another process held this stream's lock: it was polling it, so this run did not."""

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
            "skipped": self.skipped,
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
    """The streams a connector offers: ``tickets`` (helpdesk ``changed_tickets``), ``issues`` and ``versions``
    (tracker), ``companies`` (CRM ``changed_companies``)."""
    streams: list[str] = []
    if HELPDESK in connector.roles and isinstance(connector, Helpdesk) and connector.supports("changed_tickets"):
        streams.append(TICKETS)
    if TRACKER in connector.roles and isinstance(connector, Tracker) and connector.supports("changed_issues"):
        streams.append(ISSUES)
    if TRACKER in connector.roles and isinstance(connector, Tracker) and connector.supports("released_versions"):
        streams.append(VERSIONS)
    if CRM_ROLE in connector.roles and isinstance(connector, CRM) and connector.supports("changed_companies"):
        streams.append(COMPANIES)
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
        with rt.store.exclusive(f"sync:{name}:{stream}") as mine:
            if not mine:  # another process (this machine's or another's) is polling this stream right now
                figures.skipped = True
                continue
            _poll(rt, name, connector, stream, figures, since, clock, clock - lookback, progress)
    return report


def _poll(
    rt: Context,
    name: str,
    connector: Connector,
    stream: str,
    figures: StreamReport,
    since: float | None,
    clock: float,
    default_start: float,
    progress: Progress | None,
) -> None:
    """Poll one stream from its checkpoint (or ``since``), page by page, while holding its lock."""
    cursor = None if since is not None else rt.store.get_checkpoint(name, stream)
    start = float(since) if since is not None else default_start
    calls_before = rt.counter.total(name)
    try:
        for page in _pages(rt, connector, stream, cursor, start, clock):
            figures.pages += 1
            figures.records += len(page.items)
            for item in page.items:
                for found in _signals_for(rt, name, connector, item):
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
    else:
        rt.store.put_snapshot(POLL_KIND, f"{name}/{stream}", {"at": time.time()})
    figures.calls = rt.counter.total(name) - calls_before


POLL_KIND = "poll"
"""Snapshot kind of a stream's last successful poll (``<system>/<stream>`` -> ``{"at": unix time}``)."""


def last_successful_polls(rt: Context) -> dict[tuple[str, str], float]:
    """When each configured stream was last read to its end without an error (Unix time); never-polled streams
    are left out. One store read per stream (the metrics scrape calls this)."""
    found: dict[tuple[str, str], float] = {}
    for name, sc in rt.config.systems.items():
        if not sc.enabled:
            continue
        try:
            streams = pollable_streams(rt.connector(name))
        except Exception:  # a system that cannot be built has no poll to report
            streams = []
        for stream in streams:
            snap = rt.store.get_snapshot(POLL_KIND, f"{name}/{stream}")
            at = (snap or {}).get("at")
            if isinstance(at, int | float):
                found[(name, stream)] = float(at)
    return found


def _pages(
    rt: Context, connector: Connector, stream: str, cursor: dict[str, Any] | None, since: float, now: float
) -> Iterator[Page]:
    if stream == VERSIONS:
        assert isinstance(connector, Tracker)
        saved = (cursor or {}).get("since")
        start = float(saved) if isinstance(saved, int | float) and not isinstance(saved, bool) else since
        keys = sorted({link.issue_key for link in rt.store.all_links() if link.issue.system == connector.name})
        return iter([Page(list(connector.released_versions(since=start, issue_keys=keys)), {"since": now}, True)])
    if stream == COMPANIES:
        assert isinstance(connector, CRM)
        linked = linked_companies(rt, connector.name)
        if not linked:  # nothing to refresh: no call, and the checkpoint stays where it was
            return iter(())
        return connector.changed_companies(cursor, since=since, company_ids=linked)
    if stream == TICKETS:
        assert isinstance(connector, Helpdesk)
        return connector.changed_tickets(cursor, since=since)
    assert isinstance(connector, Tracker)
    return connector.changed_issues(cursor, since=since)


def linked_companies(rt: Context, system: str) -> list[str]:
    """The ids of the companies of the CRM ``system`` that some ticket-issue link names as its customer."""
    ids = {link.customer.id for link in rt.store.all_links() if link.customer and link.customer.system == system}
    return sorted(ids, key=lambda i: (len(i), i))


def _company_signal(rt: Context, name: str, item: ChangedCompany) -> tuple[str, Signal] | None:
    """A changed company linked to an issue: ``CustomerChanged`` named by its modified time; None otherwise."""
    ref = Ref(name, "company", item.ref.id)
    if not any(link.customer == ref for link in rt.store.all_links()):
        return None
    return poll_delivery_id(ref, _iso(item.updated_at)), CustomerChanged(company=ref)


def _signal_for(rt: Context, name: str, connector: Connector, item: Any) -> tuple[str, Signal] | None:
    """The delivery id and signal of a polled record that matters; None for one that does not."""
    if isinstance(item, Ticket) and isinstance(connector, Helpdesk):
        if item.status == "deleted":  # an export lists deleted tickets too; they cannot be escalated
            return None
        if not connector.wants_escalation(item, triggers(rt)):
            return None
        ticket = Ref(name, "ticket", item.ref.id)
        if completed_escalation(rt.store, ticket) is not None:  # linked: its state (solved, reopened) matters
            if not impact.ticket_state_stale(rt, ticket, item.status):
                return None
            return poll_delivery_id(ticket, _iso(item.updated_at)) + ":state", TicketStateObserved(
                ticket=ticket, status=item.status
            )
        record = item if item.complete else None  # the export carried all a read would: not read again
        return poll_delivery_id(ticket, _iso(item.updated_at)), EscalationRequested(
            ticket=ticket, fresh=True, record=record
        )
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


def _signals_for(rt: Context, name: str, connector: Connector, item: Any) -> list[tuple[str, Signal]]:
    """Every signal a polled record carries: its state or escalation, the comments of a linked one, a release."""
    if isinstance(item, VersionReleased):
        ref = Ref(name, "version", item.version_id)
        return [(poll_delivery_id(ref, "released"), VersionReleased(**{**vars(item), "tracker": name}))]
    if isinstance(item, ChangedCompany):
        company = _company_signal(rt, name, item)
        return [company] if company is not None else []
    found = _signal_for(rt, name, connector, item)
    out = [found] if found is not None else []
    if isinstance(item, Ticket) and isinstance(connector, Helpdesk) and item.status != "deleted":
        out.extend(_ticket_comments(rt, name, connector, item))
    elif isinstance(item, Issue) and isinstance(connector, Tracker) and item.ref.id:
        out.extend(_issue_comments(rt, name, connector, item))
    return out


def _since_linked(links: list[Link]) -> float | None:
    """When the record was first linked (comments before it are the handoff's, or nobody's business)."""
    times = [link.linked_at.timestamp() for link in links if link.linked_at is not None]
    return min(times) if times else None


def _after(comment: Comment, linked: float | None) -> bool:
    created = comment.created_at
    return linked is None or created is None or created.timestamp() >= linked - LINK_SKEW_SECONDS


def _ticket_comments(rt: Context, name: str, helpdesk: Helpdesk, ticket: Ticket) -> list[tuple[str, Signal]]:
    """The comments of a linked ticket that the relay sends to engineering (one call: the ticket's comments)."""
    ref = Ref(name, "ticket", ticket.ref.id)
    links = rt.store.links_for_ticket(ref)
    if not links or not rt.config.section("sync")["to_tracker"]:
        return []
    linked = _since_linked(links)
    relayer = Relay(rt)
    out: list[tuple[str, Signal]] = []
    for comment in helpdesk.list_comments(ticket.ref.id):
        if not _after(comment, linked):
            continue
        author = comment.author
        signal = TicketCommentAdded(
            ticket=ref,
            text=comment.body,
            public=comment.public,
            author=author,
            attachments=tuple(comment.attachments),
            comment_id=comment.ref.id,
            tags=tuple(ticket.tags),
            actor=author.ref.id if author is not None and author.ref is not None else None,
        )
        if relayer.marked_text(signal) is None:
            continue
        version = fingerprint(comment.body)[:16]
        out.append((poll_delivery_id(ref, f"comment:{comment.ref.id}:{version}"), signal))
    return out


def _issue_comments(rt: Context, name: str, tracker: Tracker, issue: Issue) -> list[tuple[str, Signal]]:
    """The comments of a linked issue marked for support (one call: the issue's comments)."""
    if not tracker.supports("list_comments") or not rt.config.section("sync")["to_helpdesk"]:
        return []
    ref = Ref(name, "issue", issue.ref.id)
    links = rt.store.links_for_issue(ref) or (rt.store.links_for_issue_key(issue.key) if issue.key else [])
    if not links:
        return []
    linked = _since_linked(links)
    sync = SyncBack(rt)
    out: list[tuple[str, Signal]] = []
    for comment in tracker.list_comments(issue.key or issue.ref.id):
        if not _after(comment, linked):
            continue
        kind, _, value = (comment.visibility or "").partition(":")
        author = comment.author
        signal = IssueCommentPosted(
            issue=ref,
            key=issue.key,
            comment_id=comment.ref.id,
            text=comment.body,
            summary=issue.summary,
            author_name=(author.name or author.email) if author is not None else None,
            visibility_type=kind or None,
            visibility_value=value or None,
            actor=author.ref.id if author is not None and author.ref is not None else None,
        )
        if not sync.for_support(signal):
            continue
        stamp = _iso(comment.updated_at or comment.created_at)
        out.append((poll_delivery_id(ref, f"comment:{comment.ref.id}:{stamp}"), signal))
    return out


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
