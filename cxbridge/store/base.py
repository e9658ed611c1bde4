"""The ``Store`` interface every storage backend implements, and the rows it hands out.

Times are epoch seconds (UTC) as floats everywhere in this interface: ``run_at``, ``lease_until``,
``created_at`` and so on, read from the store's injectable ``clock`` (``time.time`` by default). The one
exception is ``Link.linked_at``, which the shared model declares as a ``datetime``: the store keeps it as
epoch seconds and hands it back as a timezone-aware UTC ``datetime``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from types import TracebackType
from typing import Any, Final, Literal, Self

from ..errors import CxbridgeError
from ..models import Link, Ref, to_jsonable
from ..redact import MIN_SECRET_LENGTH as MIN_SECRET_LENGTH  # re-exported: the one redaction
from ..redact import redact_text as redact_text
from ..redact import redact_value as redact_value

IntentState = Literal["pending", "sending", "done", "ambiguous", "failed"]
JobState = Literal["ready", "leased", "done", "dead"]

INTENT_STATES: Final[tuple[str, ...]] = ("pending", "sending", "done", "ambiguous", "failed")
JOB_STATES: Final[tuple[str, ...]] = ("ready", "leased", "done", "dead")
INBOX_RETENTION_SECONDS: Final[int] = 7 * 86400
JOB_RETENTION_SECONDS: Final[int] = 7 * 86400
PURGE_BATCH: Final[int] = 500
"""Rows one purge transaction deletes at most: the writer lock is released between batches, so deliveries and
jobs never wait behind a long purge."""


_ENCODE: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def _plain(value: Any) -> bool:
    """True when ``value`` holds only exact JSON types (str keys): ``to_jsonable`` would return an equal copy."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return True
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    return False


def jsonable(value: Any) -> Any:
    """``to_jsonable(value)``, or ``value`` itself when it holds only plain JSON types already (what the stores are
    mostly given: redacted snapshots, intents' payloads and results, audit details): the same JSON, no copy."""
    return value if _plain(value) else to_jsonable(value)


def json_text(value: Any) -> str:
    """The JSON the stores keep for a value: ``json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"))``,
    byte for byte, by one encoder made once (``json.dumps`` with options builds one per call)."""
    return _ENCODE(jsonable(value))


def intent_move_values(
    op_id: str, state: str, now: float, *, result: str | None, error: str | None, owner: str | None
) -> tuple[Any, ...]:
    """The values of both stores' intent UPDATE, in its placeholders' order: state, result (JSON text), error
    (redacted), the attempt added, whether and when ``sent_at`` is stamped, whether and which ``owner``, the time,
    the op_id. Moving to ``sending`` counts an attempt, stamps ``sent_at`` and records ``owner`` when given."""
    sending = state == "sending"
    return (
        state,
        result,
        None if error is None else redact_text(error),
        1 if sending else 0,
        sending,
        now,
        sending and owner is not None,
        owner,
        now,
        op_id,
    )


@contextmanager
def kept_together(local: threading.local, save: Callable[[list[Any]], None]) -> Iterator[None]:
    """The block of ``Store.snapshots_together`` for a store that keeps a thread's pending snapshots in
    ``local.snapshots`` (its ``put_snapshot`` appends there while it is a list) and writes a list of them in one
    transaction with ``save``."""
    if getattr(local, "snapshots", None) is not None:  # nested: the outermost block writes them
        yield
        return
    pending: list[Any] = []
    local.snapshots = pending
    try:
        yield
    except BaseException:
        local.snapshots = None
        with contextlib.suppress(Exception):  # what was put is kept if it can be; the block's error is raised
            save(pending)
        raise
    local.snapshots = None
    save(pending)


def link_row(link: Link, *, now: float, last: float | None) -> tuple[Any, ...]:
    """The links table's row of a link (its columns in the stores' order: ticket, issue, issue_key, customer,
    linked_by, linked_at, origin_event). A link without ``linked_at`` is stamped ``now``, never before ``last`` (the
    latest ``linked_at`` of the issue's links): a link added comes last in its issue's order."""
    if link.linked_at is not None:
        moment = link.linked_at if link.linked_at.tzinfo is not None else link.linked_at.replace(tzinfo=UTC)
        linked_at = moment.timestamp()
    else:
        linked_at = now if last is None else max(now, last)
    return (
        str(link.ticket),
        str(link.issue),
        link.issue_key,
        None if link.customer is None else str(link.customer),
        link.linked_by,
        linked_at,
        link.origin_event,
    )


class StoreError(CxbridgeError):
    """The store refused an operation: unknown row, forbidden transition, closed store, newer schema."""


class StoreBusy(StoreError):
    """Another process held the store's write lock past the time a caller could wait (answer 503, retry)."""


class NotFoundInStore(StoreError, LookupError):
    """The row asked for does not exist."""


class AlreadyReplayed(StoreError):
    """A dead letter was replayed before; replaying it again would repeat its effect."""


class IntentStateError(StoreError):
    """An intent transition the protocol forbids (a ``done`` intent never goes back)."""


@dataclass(frozen=True)
class Intent:
    """One external write, keyed by a deterministic ``op_id``, with its protocol state.

    ``attempts`` counts the times the write was marked ``sending``; ``sent_at`` is the time of the latest,
    so a workflow can tell whether the grace period after an ambiguous outcome has elapsed.
    """

    op_id: str
    kind: str
    business_key: str
    state: str
    payload: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    sent_at: float | None
    created_at: float
    updated_at: float
    owner: str | None = None
    """The runner that won the latest move to ``sending`` (``host:pid:thread``), None before any."""


def unmoved_intent(current: Intent | None, op_id: str, state: str) -> Intent:
    """What ``mark_intent`` answers when its write moved nothing (``current`` is the intent read back): the
    done intent when ``state`` is ``done`` (an outcome recorded twice is recorded once), else the error."""
    if current is None:
        raise NotFoundInStore(f"no intent with op_id {op_id!r}")
    if current.state == "done" and state == "done":
        return current
    raise IntentStateError(f"intent {op_id!r} is done; it cannot become {state!r}")


@dataclass(frozen=True)
class Job:
    """A unit of work in the durable queue: ready -> leased(lease_until, attempt) -> done | dead.

    ``attempt`` is the fencing token: it grows with every claim, and completion, retry, failure and
    heartbeat only act when the caller's attempt is still the current one.
    """

    id: int
    kind: str
    payload: dict[str, Any]
    key: str | None
    state: str
    attempt: int
    run_at: float
    lease_until: float | None
    worker_id: str | None
    last_error: str | None
    created_at: float
    updated_at: float
    waits: int = 0
    """How many of ``attempt``'s claims ended waiting for a known time (not failures: they spend no retry budget)."""


@dataclass(frozen=True)
class FollowUp:
    """A job queued in the same transaction as another change (``Store.fail``'s ``then``): both happen or neither
    does, so a crash between them cannot lose the follow-up (the note telling an agent of a dead letter)."""

    kind: str
    payload: dict[str, Any]
    key: str | None = None
    lock_key: str | None = None


Fold = Callable[[dict[str, Any]], dict[str, Any] | None]
"""Folds one new link into an issue's aggregate (``Store.add_link``): the aggregate as stored -> as it becomes, or
None to drop it (it is then recomputed from every link). Pure: a store may run it again after a lost connection."""


@dataclass(frozen=True)
class Aggregate:
    """What the workflows keep summed up about one issue's links (the customer impact's running aggregate).

    ``seq`` grows with every change that can make ``data`` differ from a recomputation from the links (a link added
    or removed, a linked ticket's facts saved with ``put_snapshot(..., linked_ticket=)``); ``put_aggregate`` writes
    only at the ``seq`` its caller read. ``data`` None: none is kept (never computed, or dropped by a change the
    store could not fold in)."""

    issue: Ref
    seq: int
    data: dict[str, Any] | None


@dataclass(frozen=True)
class DeadLetter:
    """A job that failed for good, with its (redacted) error, kept so that an admin can replay it."""

    id: int
    job_id: int
    kind: str
    payload: dict[str, Any]
    key: str | None
    attempt: int
    error: str
    created_at: float
    replayed_at: float | None = None
    replay_job_id: int | None = None

    @property
    def replayed(self) -> bool:
        """Whether the letter was replayed already."""
        return self.replayed_at is not None


@dataclass(frozen=True)
class InboxRow:
    """One accepted webhook delivery (or polled event), kept at least 7 days to deduplicate redeliveries."""

    system: str
    account: str
    delivery_id: str
    payload: dict[str, Any]
    job_id: int | None
    received_at: float


@dataclass(frozen=True)
class AuditRow:
    """An audit row to append (``Store.audit``'s arguments), handed to a job's completion to be written in its
    transaction (``Store.complete(audit=)``)."""

    actor: str
    action: str
    target: str
    result: str
    policy: str | None = None
    origin_event: str | None = None
    ticket: Ref | None = None
    issue_key: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def audit_values(now: float, row: AuditRow) -> tuple[Any, ...]:
    """The audit table's values for ``row`` stamped ``now`` (its columns in the stores' order: at, actor, action,
    target, result, policy, origin_event, ticket, issue_key, details), the result and details redacted."""
    return (
        now,
        row.actor,
        row.action,
        row.target,
        redact_text(row.result),
        row.policy,
        row.origin_event,
        None if row.ticket is None else str(row.ticket),
        row.issue_key,
        json_text(redact_value(jsonable(row.details))),
    )


@dataclass(frozen=True)
class AuditEntry:
    """One cross-system write or decision: who, what, on whose authority, caused by what, and how it ended."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    result: str
    policy: str | None = None
    origin_event: str | None = None
    ticket: Ref | None = None
    issue_key: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Store(ABC):
    """Everything cxbridge keeps: links, intents, the inbox, the job queue, dead letters, audit, checkpoints.

    SQLite implements it by default (``SQLiteStore``); a PostgreSQL store implements the same methods for
    multi-worker deployments. Every method is safe to call from several threads and several processes.
    """

    announces_work: bool = False
    """Whether ``wait_for_work`` wakes when a job is queued (PostgreSQL's ``LISTEN``/``NOTIFY``): an idle worker
    then needs only a slow poll, for delayed retries coming due."""

    clock: Callable[[], float] = staticmethod(time.time)
    """The clock the store stamps times with (``sent_at``, ``run_at``...): workflows and workers that compare
    against those times read the same clock (tests pass a virtual one)."""

    # ---- health (not abstract: a store that cannot tell answers as if it could) ---------------------------

    def check_writable(self) -> None:
        """Raise when the store cannot take a write now (read-only, disk full, locked past the wait)."""
        return

    @contextmanager
    def write_budget(self, seconds: float) -> Iterator[None]:
        """Inside: a write waits at most ``seconds`` for locks, then raises ``StoreBusy`` (a webhook's budget)."""
        yield

    def wait_for_work(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Block an idle worker until a job may be due: at most ``timeout`` seconds, less when ``stop`` is set or
        the store announces a queued job (PostgreSQL's ``LISTEN``/``NOTIFY``); True when woken by an announcement.

        The default has no announcements: it waits ``timeout`` (a poll).
        """
        (stop if stop is not None else threading.Event()).wait(timeout)
        return False

    @abstractmethod
    def schema_version(self) -> int:
        """The schema version the store is at (the number of the last migration applied)."""

    # ---- cross-process locks -----------------------------------------------------------------------

    @abstractmethod
    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """Hold the store-wide lock ``name`` for a ``with`` block if no other holder (thread, process or machine
        sharing this store) has it; the block gets False at once otherwise. The lock goes when the block ends or
        the holding process dies. One reconciler per polling stream uses it."""

    # ---- links -------------------------------------------------------------------------------------

    @abstractmethod
    def add_link(self, link: Link, *, fold: Fold | None = None) -> bool:
        """Record a ticket<->issue link; False (and nothing changed) when that pair is linked already.

        In the same transaction the issue's aggregate moves on (``seq`` + 1): when it holds data, ``fold`` is given
        and the link comes last in the issue's order (``linked_at`` not before any other link's; a link without a
        ``linked_at`` is stamped so), its data becomes ``fold(data)``; otherwise the data is dropped. Two links
        added to one issue at once are folded one after the other (the aggregate's row is locked)."""

    @abstractmethod
    def remove_link(self, ticket: Ref, issue: Ref) -> bool:
        """Remove the link between a ticket and an issue; False when there was none. The issue's aggregate is
        dropped in the same transaction (``seq`` + 1, no data)."""

    @abstractmethod
    def links_for_ticket(self, ticket: Ref) -> list[Link]:
        """Every issue link of one ticket, oldest first."""

    @abstractmethod
    def links_for_issue(self, issue: Ref) -> list[Link]:
        """Every ticket linked to one issue (by the issue's id ref), oldest first."""

    @abstractmethod
    def links_for_issue_key(self, key: str) -> list[Link]:
        """Every ticket linked to the issue that had this key when it was linked, oldest first."""

    @abstractmethod
    def all_links(self) -> list[Link]:
        """Every link, oldest first."""

    # ---- aggregates (kept beside the links) ------------------------------------------------------------

    @abstractmethod
    def get_aggregate(self, issue: Ref) -> Aggregate:
        """The issue's aggregate (``seq`` 0 and no data when none was ever kept)."""

    @abstractmethod
    def put_aggregate(self, issue: Ref, data: dict[str, Any], *, seq: int) -> bool:
        """Compare-and-set: keep ``data`` (recomputed from the links) as the issue's aggregate only if its ``seq`` is
        still ``seq`` (no link added or removed, no linked ticket's facts saved since the caller read it, before
        reading the links); False (nothing written) otherwise. Strings are redacted as in snapshots."""

    # ---- intents -----------------------------------------------------------------------------------

    @abstractmethod
    def get_intent(self, op_id: str) -> Intent | None:
        """The intent for an operation id, or None."""

    @abstractmethod
    def begin_intent(self, op_id: str, kind: str, *, business_key: str, payload: dict[str, Any]) -> Intent:
        """Insert a ``pending`` intent, or return the existing row for ``op_id`` untouched."""

    @abstractmethod
    def mark_intent(
        self,
        op_id: str,
        state: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Intent:
        """Move an intent to ``state``; ``sending`` counts an attempt and stamps ``sent_at``.

        A ``done`` intent is final: marking it ``done`` again returns it with its first result, and any
        other state raises ``IntentStateError``. An unknown ``op_id`` raises ``NotFoundInStore``.
        """

    @abstractmethod
    def transition_intent(
        self,
        op_id: str,
        state: str,
        *,
        expect: str | Iterable[str],
        attempts: int | None = None,
        owner: str | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> tuple[bool, Intent]:
        """Compare-and-set: move the intent to ``state`` only if it is in ``expect`` (and, when given, has made
        exactly ``attempts`` attempts), in one transaction; returns whether this caller won, and the row as it is now.

        Moving to ``sending`` counts an attempt, stamps ``sent_at`` and records ``owner``. A ``done`` intent
        never moves. An unknown ``op_id`` raises ``NotFoundInStore``.
        """

    def begin_sending(
        self, op_id: str, kind: str, *, business_key: str, payload: dict[str, Any], owner: str
    ) -> tuple[bool, Intent]:
        """Begin an intent already won by ``owner``: insert it straight as ``sending`` (one attempt, ``sent_at`` now,
        ``owner`` recorded); a store may also take a ``pending`` one never tried. Returns (True, the row) when this
        call moved it, else (False, the row untouched): the caller goes through the usual checks and claim.

        What ``begin_intent`` then ``transition_intent(op_id, "sending", expect="pending", attempts=0, owner=)``
        do, in one transaction where the store can: a fresh write's intent is durable as ``sending`` before the
        write goes out, one commit instead of two. This default runs the two transactions.
        """
        intent = self.begin_intent(op_id, kind, business_key=business_key, payload=payload)
        if intent.state != "pending" or intent.attempts != 0:
            return False, intent
        return self.transition_intent(op_id, "sending", expect="pending", attempts=0, owner=owner)

    def done_and_linked(
        self, op_id: str, result: dict[str, Any], link: Link, *, fold: Fold | None = None
    ) -> tuple[Intent, bool]:
        """Record a write's outcome and the link it makes, together: ``mark_intent(op_id, "done", result=result)``
        then ``add_link(link, fold=fold)``, in one transaction where the store can (an escalation's create: the
        link becomes durable with the created issue, one commit instead of two). Returns the intent as it is (a
        ``done`` one keeps its first result) and whether the link was added. This default runs the two
        transactions, the intent first: a crash between them leaves the intent done, and a rerun adds the link."""
        intent = self.mark_intent(op_id, "done", result=result)
        return intent, self.add_link(link, fold=fold)

    @abstractmethod
    def forget_intent(self, op_id: str) -> bool:
        """Delete an intent whose effect was undone (an unlinked ticket's remote link), so it can be redone.

        Returns False when there was no such intent.
        """

    # ---- inbox and queue ---------------------------------------------------------------------------

    @abstractmethod
    def accept_delivery(
        self,
        system: str,
        delivery_id: str,
        *,
        account: str = "",
        payload: dict[str, Any],
        job_kind: str | None,
        job_payload: dict[str, Any] | None,
        dedupe_key: str | None = None,
        lock_key: str | None = None,
    ) -> bool:
        """Commit an inbox row and its job in one durable transaction; False for a duplicate delivery.

        ``job_kind`` None records the delivery without a job (an echo of cxbridge's own change recognised at
        ingress: acknowledged and kept for deduplication, nothing to do); its inbox row's ``job_id`` is None, and
        its commit need not wait for the disk (no work depends on it; a redelivery is again an echo).
        Deliveries are keyed by ``(system, account, delivery_id)``. ``dedupe_key`` becomes the job's key:
        when a not-yet-done job already holds it, the delivery is still recorded (True) but no second job
        is queued. ``lock_key`` names the entity the job acts on: at most one job per lock key runs at a time.
        """

    @abstractmethod
    def inbox_row(self, system: str, delivery_id: str, *, account: str = "") -> InboxRow | None:
        """The inbox row for a delivery, or None."""

    @abstractmethod
    def purge_inbox(self, older_than_seconds: float = INBOX_RETENTION_SECONDS, *, batch: int = PURGE_BATCH) -> int:
        """Delete inbox rows received more than ``older_than_seconds`` ago, at most ``batch`` rows per
        transaction; returns how many."""

    @abstractmethod
    def purge_jobs(self, older_than_seconds: float = JOB_RETENTION_SECONDS, *, batch: int = PURGE_BATCH) -> int:
        """Delete ``done`` jobs finished more than ``older_than_seconds`` ago, at most ``batch`` per transaction;
        returns how many. Dead jobs (and any job a dead letter names) are kept: they are the dead letters' record.
        Inbox rows of a purged job keep their row with ``job_id`` None."""

    @abstractmethod
    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        run_at: float | None = None,
        lock_key: str | None = None,
    ) -> int | None:
        """Queue a ready job due at ``run_at`` (default now); None when a job not yet done holds ``key``.

        ``lock_key`` names the entity the job acts on: ``claim`` never hands out a job while another job with
        the same lock key holds a live lease, so the work on one ticket or issue runs one job at a time.
        """

    @abstractmethod
    def claim(
        self,
        worker_id: str,
        *,
        lease_seconds: float,
        kinds: Iterable[str] | None = None,
        max_attempts: int | None = None,
    ) -> Job | None:
        """Lease the oldest due job (ready, or leased with an expired lease) and bump its attempt.

        With ``max_attempts``, an expired lease whose job already had that many attempts is dead-lettered
        instead of being claimed again (a job that keeps killing its worker).
        """

    @abstractmethod
    def heartbeat(self, job_id: int, attempt: int, lease_seconds: float) -> bool:
        """Extend the lease of the caller's attempt; False when that attempt is no longer current."""

    @abstractmethod
    def hold_lease(self, job_id: int, attempt: int, lease_seconds: float) -> bool:
        """True when the caller's attempt still holds a live lease; False when the lease lapsed or another attempt
        took the job (nothing changes then). The check before every external write of a job.

        When less than half of ``lease_seconds`` is left, the lease is extended to now + ``lease_seconds``; further
        from expiry (the worker's heartbeat keeps it so) nothing is written: the check reads the job's attempt,
        state and lease as they are, so a lease another worker took over is caught either way. On True the lease
        runs at least ``lease_seconds / 2`` more."""

    @abstractmethod
    def complete(self, job_id: int, attempt: int, *, audit: Sequence[AuditRow] = ()) -> bool:
        """Mark the caller's attempt done; False (nothing changed) when the attempt is stale.

        ``audit``: rows appended in the same transaction, only when the attempt was current (the job's record of
        what it did: written once with the job's completion, never by an attempt that lost the job)."""

    @abstractmethod
    def retry_later(self, job_id: int, attempt: int, *, run_at: float, error: str, waiting: bool = False) -> bool:
        """Return the job to ready, due at ``run_at``, noting the (redacted) error; False when stale.

        ``waiting`` says the attempt did not fail but must wait for a known time: it counts in ``Job.waits``.
        """

    @abstractmethod
    def fail(self, job_id: int, attempt: int, *, error: str, then: FollowUp | None = None) -> bool:
        """Mark the job dead and write a dead letter with the (redacted) error; False when stale.

        ``then`` is queued in the same transaction (like ``enqueue``: not when a job not yet done holds its key)."""

    @abstractmethod
    def job(self, job_id: int) -> Job | None:
        """One job by id, or None."""

    @abstractmethod
    def queue_depth(self) -> dict[str, int]:
        """How many jobs are in each state (every state present, zero when empty).

        Answered from maintained counters, not a scan of the jobs table: ``/healthz`` and ``/metrics`` call it
        on every probe, whatever the number of finished jobs kept."""

    # ---- dead letters ------------------------------------------------------------------------------

    @abstractmethod
    def oldest_ready_at(self, now: float) -> float | None:
        """The ``run_at`` of the job that has waited longest among those due at ``now`` (None when none is due).

        For the metrics scrape: one indexed lookup, never a scan of the queue."""

    @abstractmethod
    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first (replayed ones included, marked as such)."""

    @abstractmethod
    def dead_letter(self, letter_id: int) -> DeadLetter | None:
        """One dead letter by id, or None."""

    @abstractmethod
    def replay_dead_letter(self, letter_id: int) -> int:
        """Queue the letter's job again as a new ready job and mark the letter replayed; returns the job id.

        Raises ``AlreadyReplayed`` for a letter replayed before and ``NotFoundInStore`` for an unknown id.
        When a job holding the same key is already waiting, that job's id is returned and no second job
        is queued.
        """

    # ---- audit -------------------------------------------------------------------------------------

    @abstractmethod
    def audit(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        result: str,
        policy: str | None = None,
        origin_event: str | None = None,
        ticket: Ref | None = None,
        issue_key: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Append an audit row (strings redacted); returns its id."""

    @abstractmethod
    def audit_entries(self, *, ticket: Ref | None = None, issue_key: str | None = None) -> list[AuditEntry]:
        """Audit rows in the order written, filtered by ticket and/or issue key when given."""

    # ---- snapshots ---------------------------------------------------------------------------------

    @abstractmethod
    def put_snapshot(self, kind: str, ref: str, data: dict[str, Any], *, linked_ticket: Ref | None = None) -> None:
        """Save (replace) what cxbridge last saw of a remote record (a customer, an issue's synced state).

        ``linked_ticket``: the snapshot holds facts of this ticket that issues' aggregates summed up; the aggregates
        of every issue it is linked to are dropped in the same transaction (``seq`` + 1, no data)."""

    def snapshots_together(self) -> AbstractContextManager[None]:
        """Inside (this thread only): ``put_snapshot`` calls are kept and written in one transaction when the block
        ends, instead of one transaction each; ``get_snapshot`` in the block sees them. When the block raises,
        what was put is still written (as it would have been at once), unless that fails too: the block's error is
        raised. Blocks nest (the outermost writes). Only for snapshots no other thread or process needs before the
        block ends (an echo fingerprint is needed at once: never put one inside). The default writes each at once.
        """
        return contextlib.nullcontext()

    @abstractmethod
    def get_snapshot(self, kind: str, ref: str) -> dict[str, Any] | None:
        """The saved snapshot of a remote record, or None."""

    @abstractmethod
    def purge_snapshots(self, kind: str, older_than_seconds: float) -> int:
        """Delete snapshots of ``kind`` last saved more than ``older_than_seconds`` ago; returns how many."""

    # ---- checkpoints -------------------------------------------------------------------------------

    @abstractmethod
    def get_checkpoint(self, system: str, stream: str) -> dict[str, Any] | None:
        """The saved cursor mapping of a polling stream, or None before the first run."""

    @abstractmethod
    def set_checkpoint(self, system: str, stream: str, state: dict[str, Any]) -> None:
        """Save (replace) the cursor mapping of a polling stream."""

    # ---- lifecycle ---------------------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Release every connection; the store cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
