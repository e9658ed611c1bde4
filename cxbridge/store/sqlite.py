"""The default store: one SQLite file in WAL mode, safe across threads and processes.

Every connection sets ``busy_timeout`` (5 s), ``synchronous=NORMAL`` and foreign keys; the transaction that
accepts deliveries runs with ``synchronous=FULL``, because the vendor is acknowledged after it and it must
survive power loss (RELIABILITY section 3). Deliveries arriving together share that transaction and its one
durable commit (group commit: ``group_commit.py``), each in its own savepoint. In WAL mode NORMAL survives
any crash of cxbridge itself; an OS crash may lose the last workflow commits (intents, links, job completions),
and each of those writes has a second guard against repeating its effect (the issue's label, the remote link's
globalId, the ticket's key, the note's marker), so a rerun converges. FULL's commit also flushes every earlier
NORMAL commit.

SQLite has no ``LISTEN``/``NOTIFY``: a transaction that queues a job (or frees an entity a waiting job is locked
on) rings a bell of this process after its commit (``WorkBell``, one per database file), which wakes this
process's idle workers at once (``cxbridge serve`` runs the receiver and the workers in one process). Workers of
other processes find the job at their next poll, as before.

Every writing transaction starts with ``BEGIN IMMEDIATE``, so it takes the write lock before it reads: a
DEFERRED transaction that read and then wrote after another connection committed would fail at once with
``SQLITE_BUSY_SNAPSHOT``, which ``busy_timeout`` cannot help. Each thread gets its own connection (a new
one after a fork too).
"""

# SQL text here is assembled only from module constants and '?' placeholders; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

from ..models import Link, Ref
from .base import (
    INBOX_RETENTION_SECONDS,
    INTENT_STATES,
    JOB_RETENTION_SECONDS,
    JOB_STATES,
    PURGE_BATCH,
    Aggregate,
    AlreadyReplayed,
    AuditEntry,
    AuditRow,
    DeadLetter,
    Fold,
    FollowUp,
    InboxRow,
    Intent,
    Job,
    NotFoundInStore,
    Store,
    StoreBusy,
    StoreError,
    audit_values,
    intent_move_values,
    json_text,
    kept_together,
    link_row,
    redact_text,
    redact_value,
    unmoved_intent,
)
from .bell import WorkBell
from .group_commit import GroupCommit, Outcome
from .migrations import migrations

BUSY_TIMEOUT_MS = 5000
HEALTH_WRITE_WAIT_SECONDS = 1.0
"""How long ``/healthz``'s write probe waits for another writer before it reports the store busy."""

_JOB_COLUMNS = (
    "id, kind, payload, key, state, attempt, run_at, lease_until, worker_id, last_error, created_at, updated_at, waits"
)
_INTENT_COLUMNS = (
    "op_id, kind, business_key, state, payload, result, error, attempts, sent_at, created_at, updated_at, owner"
)
_LETTER_COLUMNS = "id, job_id, kind, payload, key, attempt, error, created_at, replayed_at, replay_job_id"
_LINK_COLUMNS = "ticket, issue, issue_key, customer, linked_by, linked_at, origin_event"
_AUDIT_COLUMNS = "id, at, actor, action, target, result, policy, origin_event, ticket, issue_key, details"


def _dumps_job_payload(job_payload: dict[str, Any], record: Any, record_text: str) -> str:
    """``json_text(job_payload)`` where a value that *is* ``record`` (an event the job carries, as the inbox row
    holds it) is written as ``record_text``, its serialisation already made, rather than serialised again.

    The same text as ``json_text``: its keys sorted, the same separators and escapes."""
    if type(job_payload) is not dict or any(type(key) is not str for key in job_payload):
        return json_text(job_payload)
    parts = []
    for key in sorted(job_payload):
        item = job_payload[key]
        parts.append(f"{json_text(key)}:{record_text if item is record else json_text(item)}")
    return "{" + ",".join(parts) + "}"


_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(text: str | None) -> Any:
    """``json.loads(text)`` (None for NULL): the text the store wrote is one JSON value from its first character
    to its last, read by the decoder's scanner directly; anything else goes through ``json.loads`` (its answer,
    its error)."""
    if text is None:
        return None
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def _first(cursor: sqlite3.Cursor) -> Any:
    """The first row of a statement run to completion (RETURNING statements must be exhausted)."""
    rows = cursor.fetchall()
    return rows[0] if rows else None


def _ref(text: str | None) -> Ref | None:
    return None if text is None else Ref.parse(text)


class _Holder:
    """One thread's connection; closed when the thread ends (its thread-local dies) or the store closes.

    A connection inherited through ``fork`` is never closed in the child: closing it there could checkpoint
    or remove the parent's WAL files. The child opens its own instead.
    """

    __slots__ = ("__weakref__", "conn", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()

    def close(self) -> None:
        if self.pid == os.getpid():
            self.conn.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit there may be nothing left to close with
            self.close()


_WRITER_LOCKS: dict[str, threading.Lock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()
_PID = [os.getpid()]
"""This process's id, kept current by the fork hook below: ``os.getpid`` is a system call, and every transaction
asked it twice (is this thread's connection, is the writer lock, this process's?)."""


def _forget_writer_locks() -> None:
    """In a forked child: locks copied from the parent may be held by threads that do not exist here."""
    global _WRITER_LOCKS_GUARD
    _PID[0] = os.getpid()
    _WRITER_LOCKS.clear()
    _BELLS.clear()
    _WRITER_LOCKS_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_forget_writer_locks)


_BELLS: dict[str, WorkBell] = {}


def _work_bell(path: Path) -> WorkBell:
    """The bell of the database file at ``path`` in this process."""
    key = os.path.realpath(path)
    with _WRITER_LOCKS_GUARD:
        bell = _BELLS.get(key)
        if bell is None:
            bell = _BELLS[key] = WorkBell()
        return bell


def writer_lock(path: Path) -> threading.Lock:
    """The lock the threads of this process take before writing to the database file at ``path``."""
    key = os.path.realpath(path)
    with _WRITER_LOCKS_GUARD:
        lock = _WRITER_LOCKS.get(key)
        if lock is None:
            lock = _WRITER_LOCKS[key] = threading.Lock()
        return lock


class _Snapshot(NamedTuple):
    """One snapshot serialised (and redacted) in its caller's thread, waiting for its write."""

    kind: str
    ref: str
    text: str
    now: float
    linked_ticket: Ref | None


@dataclass(frozen=True, slots=True)
class _Delivery:
    """One ``accept_delivery`` request, serialised in its caller's thread, waiting for its batch."""

    system: str
    account: str
    delivery_id: str
    payload: str
    job_kind: str | None
    job_payload: str | None
    dedupe_key: str | None
    lock_key: str | None
    now: float


class SQLiteStore(Store):
    """The ``Store`` on one SQLite file (``cxbridge.db``); opening it applies any pending migrations.

    ``clock`` returns the current time in epoch seconds; tests pass a fake one to move leases and
    retention forward without sleeping.
    """

    def __init__(self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._holders: weakref.WeakSet[_Holder] = weakref.WeakSet()
        self._closed = False
        self._group = GroupCommit(self._writer_lock_within, self._accept_batch)
        self._writer: tuple[int, threading.Lock] | None = None
        self._bells: tuple[int, WorkBell] = (os.getpid(), _work_bell(self.path))
        conn = self._conn()
        migrations.apply(conn, clock=clock)

    # ---- connections and transactions --------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if str(self.path) == ":memory:":
            raise StoreError("the store needs a file: every thread and process must see the same database")
        if self.path.parent and not self.path.parent.exists():
            raise StoreError(f"cannot open the store {self.path}: its folder does not exist")
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # autocommit: every transaction is opened explicitly
            check_same_thread=False,  # used by one thread only; close() may run on another
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise StoreError(f"cannot put the store {self.path} in WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the store is closed")
        local = self._local
        holder: _Holder | None = getattr(local, "holder", None)
        if holder is None or holder.pid != _PID[0]:
            holder = _Holder(self._connect())
            local.holder = holder
            with self._lock:
                self._holders.add(holder)
        return holder.conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A writing transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error.

        Threads of one process queue for the write lock here rather than in SQLite's busy handler, which sleeps
        in growing steps (up to 100 ms) instead of waking when the lock is free: under a burst of webhook
        deliveries that was the receiver's p99 (benchmarks/bench_ingest.py). Other processes still meet
        ``BEGIN IMMEDIATE`` and the busy timeout. Deliveries take the same lock through their group commit
        (``accept_delivery``).
        """
        conn = self._conn()
        local = self._local
        deadline: float | None = getattr(local, "write_deadline", None)
        lock = self._writer_lock()  # taken here, not through _writer_lock_within: one generator less per write
        if not lock.acquire(timeout=-1.0 if deadline is None else max(0.0, deadline - time.monotonic())):
            raise StoreBusy(f"the store {self.path} is busy: another writer held it past the wait")
        try:
            self._begin_immediate(conn, deadline)
            local.work_queued = 0
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            lock.release()
        if local.work_queued:
            self._ring_if_queued()

    def _work_queued(self) -> None:
        """Inside a writing transaction: it queued a due job or freed an entity; the bell rings after the commit."""
        self._local.work_queued = getattr(self._local, "work_queued", 0) + 1

    def _ring_if_queued(self) -> None:
        """After a commit: wake one idle worker of this process per job the transaction queued (or freed)."""
        queued = getattr(self._local, "work_queued", 0)
        if queued:
            self._local.work_queued = 0
            self._bell().ring(queued)

    def _bell(self) -> WorkBell:
        """This process's bell for the file (a forked child gets its own: the parent's may be held by a thread the
        child does not have)."""
        pid, bell = self._bells
        if pid != _PID[0]:
            self._bells = (_PID[0], _work_bell(self.path))
            bell = self._bells[1]
        return bell

    def wait_for_work(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Wait until a thread of this process queues a job on this file (or frees an entity a job waits for),
        ``stop`` is set, or ``timeout`` passed; True when woken by such a job.

        A job queued after this thread's last ``claim`` began (which found nothing) wakes it at once. Jobs queued
        by other processes are found by the caller's next poll (``announces_work`` stays False)."""
        bell = self._bell()
        seen = getattr(self._local, "work_seen", None)
        return bell.wait(bell.generation if seen is None else seen, timeout, stop)

    # ---- bounded waits and the write probe (the receiver's budget and /healthz) ----------------------

    @contextmanager
    def write_budget(self, seconds: float) -> Iterator[None]:
        """Inside (this thread only): a write waits at most ``seconds`` in all for the locks, else ``StoreBusy``.

        A webhook delivery must be answered within the vendor's timeout: a store locked by another process
        gets a 503 with Retry-After in time rather than a request that hangs until the client gives up.
        """
        local = self._local
        previous = getattr(local, "write_deadline", None)
        local.write_deadline = time.monotonic() + max(0.0, seconds)
        try:
            yield
        finally:
            local.write_deadline = previous

    def _writer_lock(self) -> threading.Lock:
        """This process's writer lock of the file (looked up once per process: realpath costs three lstats)."""
        writer = self._writer
        if writer is None or writer[0] != _PID[0]:
            writer = self._writer = (_PID[0], writer_lock(self.path))
        return writer[1]

    @contextmanager
    def _writer_lock_within(self, deadline: float | None) -> Iterator[None]:
        lock = self._writer_lock()
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not lock.acquire(timeout=wait):
            raise StoreBusy(f"the store {self.path} is busy: another writer held it past the wait")
        try:
            yield
        finally:
            lock.release()

    def _begin_immediate(self, conn: sqlite3.Connection, deadline: float | None) -> None:
        if deadline is None:
            conn.execute("BEGIN IMMEDIATE")
            return
        remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
        conn.execute(f"PRAGMA busy_timeout = {min(remaining_ms, BUSY_TIMEOUT_MS)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusy(f"the store {self.path} is locked by another process") from None
            raise
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def check_writable(self) -> None:
        """Commit one write that changes nothing (the schema cookie's user_version, rewritten as it was).

        Raises ``sqlite3.OperationalError`` when the file, its folder or the disk cannot take it (read-only,
        ``database or disk is full``) and ``StoreBusy`` when another process holds the lock past a short wait.
        """
        with self.write_budget(HEALTH_WRITE_WAIT_SECONDS), self._write() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute(f"PRAGMA user_version = {version}")

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """An ``flock`` on a lock file beside the database (``<store>.lock-<hash of name>``), taken without waiting:
        flock locks belong to an open file, so threads and processes exclude each other, and the kernel releases
        the lock of a process that dies."""
        if self._closed:
            raise StoreError("the store is closed")
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        fd = os.open(f"{self.path}.lock-{digest}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the file releases the lock

    def schema_version(self) -> int:
        """The schema version of the database file."""
        return migrations.version(self._conn())

    def close(self) -> None:
        """Close every thread's connection; later calls raise ``StoreError``."""
        with self._lock:
            self._closed = True
            holders = list(self._holders)
            self._holders = weakref.WeakSet()
        for holder in holders:
            holder.close()
        self._local = threading.local()

    # ---- links -------------------------------------------------------------------------------------

    def add_link(self, link: Link, *, fold: Fold | None = None) -> bool:
        """Record a ticket<->issue link, and move the issue's aggregate on in the same transaction (``Store``)."""
        with self._write() as conn:
            return self._add_link(conn, link, fold)

    def _add_link(self, conn: sqlite3.Connection, link: Link, fold: Fold | None) -> bool:
        """``add_link`` inside the caller's writing transaction."""
        issue = str(link.issue)
        now = self.clock()
        row = conn.execute("SELECT data, last_at FROM aggregates WHERE issue = ?", (issue,)).fetchone()
        last: float | None = None if row is None else row[1]
        # stamped inside the write lock: the links of one issue are stamped in the order they commit
        values = link_row(link, now=now, last=last)
        linked_at = float(values[5])
        cur = conn.execute(
            f"INSERT INTO links ({_LINK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", values
        )
        if cur.rowcount != 1:
            return False
        data: dict[str, Any] | None = None
        if row is not None and row[0] is not None and fold is not None and (last is None or linked_at >= last):
            data = fold(dict(_loads(row[0])))
        conn.execute(
            "INSERT INTO aggregates (issue, seq, data, last_at, updated_at) VALUES (?, 1, ?, ?, ?)"
            " ON CONFLICT (issue) DO UPDATE SET seq = aggregates.seq + 1, data = excluded.data,"
            " last_at = max(coalesce(aggregates.last_at, excluded.last_at), excluded.last_at),"
            " updated_at = excluded.updated_at",
            (issue, None if data is None else json_text(redact_value(data)), linked_at, now),
        )
        return True

    def remove_link(self, ticket: Ref, issue: Ref) -> bool:
        """Remove a link (dropping the issue's aggregate); False when there was none."""
        with self._write() as conn:
            cur = conn.execute("DELETE FROM links WHERE ticket = ? AND issue = ?", (str(ticket), str(issue)))
            if cur.rowcount == 0:
                return False
            conn.execute(
                "INSERT INTO aggregates (issue, seq, data, last_at, updated_at) VALUES (?, 1, NULL, NULL, ?)"
                " ON CONFLICT (issue) DO UPDATE SET seq = aggregates.seq + 1, data = NULL,"
                " updated_at = excluded.updated_at",
                (str(issue), self.clock()),
            )
            return True

    def get_aggregate(self, issue: Ref) -> Aggregate:
        """The issue's aggregate (``seq`` 0, no data, when none was kept)."""
        row = self._conn().execute("SELECT seq, data FROM aggregates WHERE issue = ?", (str(issue),)).fetchone()
        if row is None:
            return Aggregate(issue, 0, None)
        return Aggregate(issue, int(row[0]), None if row[1] is None else dict(_loads(row[1])))

    def put_aggregate(self, issue: Ref, data: dict[str, Any], *, seq: int) -> bool:
        """Keep a recomputed aggregate if the issue's ``seq`` is still ``seq``; False otherwise."""
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO aggregates (issue, seq, data, last_at, updated_at)"
                " VALUES (?, ?, ?, (SELECT max(linked_at) FROM links WHERE issue = ?), ?)"
                " ON CONFLICT (issue) DO UPDATE SET data = excluded.data, last_at = excluded.last_at,"
                " updated_at = excluded.updated_at WHERE aggregates.seq = excluded.seq",
                (str(issue), seq, json_text(redact_value(data)), str(issue), self.clock()),
            )
            return cur.rowcount == 1

    def _links(self, where: str, args: tuple[Any, ...]) -> list[Link]:
        rows = (
            self._conn()
            .execute(f"SELECT {_LINK_COLUMNS} FROM links {where} ORDER BY linked_at, rowid", args)
            .fetchall()
        )
        return [
            Link(
                ticket=Ref.parse(ticket),
                issue=Ref.parse(issue),
                issue_key=issue_key,
                customer=_ref(customer),
                linked_by=linked_by,
                linked_at=datetime.fromtimestamp(linked_at, tz=UTC),
                origin_event=origin_event,
            )
            for ticket, issue, issue_key, customer, linked_by, linked_at, origin_event in rows
        ]

    def links_for_ticket(self, ticket: Ref) -> list[Link]:
        """Every issue link of one ticket."""
        return self._links("WHERE ticket = ?", (str(ticket),))

    def links_for_issue(self, issue: Ref) -> list[Link]:
        """Every ticket linked to one issue."""
        return self._links("WHERE issue = ?", (str(issue),))

    def links_for_issue_key(self, key: str) -> list[Link]:
        """Every ticket linked to the issue with this key."""
        return self._links("WHERE issue_key = ?", (key,))

    def all_links(self) -> list[Link]:
        """Every link."""
        return self._links("", ())

    # ---- intents -----------------------------------------------------------------------------------

    @staticmethod
    def _intent(row: tuple[Any, ...]) -> Intent:
        op_id, kind, business_key, state, payload, result, error, attempts, sent_at, created, updated, owner = row
        return Intent(
            op_id=op_id,
            kind=kind,
            business_key=business_key,
            state=state,
            payload=_loads(payload),
            result=_loads(result),
            error=error,
            attempts=attempts,
            sent_at=sent_at,
            created_at=created,
            updated_at=updated,
            owner=owner,
        )

    def _get_intent(self, conn: sqlite3.Connection, op_id: str) -> Intent | None:
        row = conn.execute(f"SELECT {_INTENT_COLUMNS} FROM intents WHERE op_id = ?", (op_id,)).fetchone()
        return None if row is None else self._intent(row)

    def get_intent(self, op_id: str) -> Intent | None:
        """The intent for an operation id, or None."""
        return self._get_intent(self._conn(), op_id)

    def begin_intent(self, op_id: str, kind: str, *, business_key: str, payload: dict[str, Any]) -> Intent:
        """Insert a pending intent, or return the existing one untouched."""
        with self._write() as conn:
            return self._insert_intent(conn, op_id, kind, business_key, payload, self.clock())

    def _insert_intent(
        self, conn: sqlite3.Connection, op_id: str, kind: str, business_key: str, payload: dict[str, Any], now: float
    ) -> Intent:
        """Insert a pending intent unless ``op_id`` has one (inside the caller's transaction); the row as it is."""
        conn.execute(
            "INSERT INTO intents"
            " (op_id, kind, business_key, state, payload, attempts, created_at, updated_at)"
            " VALUES (?, ?, ?, 'pending', ?, 0, ?, ?) ON CONFLICT (op_id) DO NOTHING",
            (op_id, kind, business_key, json_text(payload), now, now),
        )
        intent = self._get_intent(conn, op_id)
        if intent is None:  # pragma: no cover - inserted or present, inside one transaction
            raise StoreError(f"intent {op_id!r} vanished while it was being written")
        return intent

    def begin_sending(
        self, op_id: str, kind: str, *, business_key: str, payload: dict[str, Any], owner: str
    ) -> tuple[bool, Intent]:
        """``Store.begin_sending`` in one ``BEGIN IMMEDIATE`` transaction."""
        now = self.clock()
        with self._write() as conn:
            # a fresh intent is inserted straight as sending (one statement): the row begin_intent then the move to
            # sending would leave, with the same times
            row = _first(
                conn.execute(
                    "INSERT INTO intents (op_id, kind, business_key, state, payload, attempts, sent_at, owner,"
                    " created_at, updated_at) VALUES (?, ?, ?, 'sending', ?, 1, ?, ?, ?, ?)"
                    f" ON CONFLICT (op_id) DO NOTHING RETURNING {_INTENT_COLUMNS}",
                    (op_id, kind, business_key, json_text(payload), now, owner, now, now),
                )
            )
            if row is not None:
                return True, self._intent(row)
            current = self._get_intent(conn, op_id)
            if current is None:  # pragma: no cover - present, inside one transaction
                raise StoreError(f"intent {op_id!r} vanished while it was being written")
            if current.state != "pending" or current.attempts != 0:
                return False, current
            intent = self._set_intent(conn, op_id, "sending", now, result=None, error=None, owner=owner)
        if intent is None:  # pragma: no cover - updated inside this transaction
            raise StoreError(f"intent {op_id!r} vanished while it was being written")
        return True, intent

    def mark_intent(
        self,
        op_id: str,
        state: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Intent:
        """Move an intent to ``state`` (``done`` is final); ``sending`` counts an attempt, stamps sent_at."""
        if state not in INTENT_STATES:
            raise ValueError(f"unknown intent state {state!r}; expected one of {', '.join(INTENT_STATES)}")
        now = self.clock()
        with self._write() as conn:
            return self._mark(conn, op_id, state, now, result=result, error=error)

    def _mark(
        self,
        conn: sqlite3.Connection,
        op_id: str,
        state: str,
        now: float,
        *,
        result: dict[str, Any] | None,
        error: str | None,
    ) -> Intent:
        """``mark_intent`` inside the caller's writing transaction."""
        intent = self._set_intent(conn, op_id, state, now, result=result, error=error, unless_done=True)
        if intent is not None:
            return intent
        return unmoved_intent(self._get_intent(conn, op_id), op_id, state)  # done already, or no such intent

    def done_and_linked(
        self, op_id: str, result: dict[str, Any], link: Link, *, fold: Fold | None = None
    ) -> tuple[Intent, bool]:
        """``Store.done_and_linked`` in one ``BEGIN IMMEDIATE`` transaction: both are durable, or neither."""
        now = self.clock()
        with self._write() as conn:
            intent = self._mark(conn, op_id, "done", now, result=result, error=None)
            return intent, self._add_link(conn, link, fold)

    def _set_intent(
        self,
        conn: sqlite3.Connection,
        op_id: str,
        state: str,
        now: float,
        *,
        result: dict[str, Any] | None,
        error: str | None,
        owner: str | None = None,
        unless_done: bool = False,
        expect: Iterable[str] | None = None,
        attempts: int | None = None,
    ) -> Intent | None:
        """The one UPDATE of an intent (inside the caller's transaction): ``sending`` counts an attempt, stamps
        ``sent_at`` and, when given, the ``owner`` that won it; returns the row as it is now, or None when no row
        moved: none has ``op_id``, or (``unless_done``) it is done, or it is not in ``expect``, or it has not made
        exactly ``attempts`` attempts (one statement: the conditions are the UPDATE's, the row its RETURNING)."""
        where = " WHERE op_id = ?"
        extra: tuple[Any, ...] = ()
        if unless_done:
            where += " AND state != 'done'"
        if expect is not None:
            states = sorted(set(expect))
            where += f" AND state IN ({', '.join('?' * len(states))})"
            extra += tuple(states)
        if attempts is not None:
            where += " AND attempts = ?"
            extra += (attempts,)
        row = _first(
            conn.execute(
                "UPDATE intents SET state = ?, result = COALESCE(?, result), error = ?,"
                " attempts = attempts + ?, sent_at = CASE WHEN ? THEN ? ELSE sent_at END,"
                f" owner = CASE WHEN ? THEN ? ELSE owner END, updated_at = ?{where} RETURNING {_INTENT_COLUMNS}",
                (
                    *intent_move_values(
                        op_id,
                        state,
                        now,
                        result=None if result is None else json_text(result),
                        error=error,
                        owner=owner,
                    ),
                    *extra,
                ),
            )
        )
        return None if row is None else self._intent(row)

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
        """Compare-and-set in one ``BEGIN IMMEDIATE`` transaction: move to ``state`` only from ``expect`` (and
        ``attempts``); returns whether this caller won, with the row as it is now."""
        if state not in INTENT_STATES:
            raise ValueError(f"unknown intent state {state!r}; expected one of {', '.join(INTENT_STATES)}")
        expected = {expect} if isinstance(expect, str) else set(expect)
        now = self.clock()
        with self._write() as conn:
            intent = self._set_intent(
                conn,
                op_id,
                state,
                now,
                result=result,
                error=error,
                owner=owner,
                unless_done=True,
                expect=expected,
                attempts=attempts,
            )
            if intent is not None:
                return True, intent
            current = self._get_intent(conn, op_id)  # lost the compare-and-set: the row as it is
            if current is None:
                raise NotFoundInStore(f"no intent with op_id {op_id!r}")
            return False, current

    # ---- inbox and queue ---------------------------------------------------------------------------

    def _insert_job(
        self,
        conn: sqlite3.Connection,
        kind: str,
        payload: dict[str, Any],
        key: str | None,
        run_at: float,
        now: float,
        lock_key: str | None = None,
    ) -> int | None:
        return self._insert_job_text(conn, kind, json_text(payload), key, run_at, now, lock_key)

    def _insert_job_text(
        self,
        conn: sqlite3.Connection,
        kind: str,
        payload: str,
        key: str | None,
        run_at: float,
        now: float,
        lock_key: str | None,
    ) -> int | None:
        """Insert a ready job whose payload is serialised already; None when its key is held."""
        row = _first(
            conn.execute(
                "INSERT INTO jobs (kind, payload, key, state, attempt, run_at, created_at, updated_at, lock_key)"
                " VALUES (?, ?, ?, 'ready', 0, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                (kind, payload, key, run_at, now, now, lock_key),
            )
        )
        if row is None:
            return None
        if run_at <= now:
            self._work_queued()
        return int(row[0])

    @staticmethod
    def _active_job_with_key(conn: sqlite3.Connection, key: str) -> int | None:
        row = conn.execute("SELECT id FROM jobs WHERE key = ? AND state IN ('ready', 'leased')", (key,)).fetchone()
        return None if row is None else int(row[0])

    def forget_intent(self, op_id: str) -> bool:
        """Delete an intent whose effect was undone; False when there was none."""
        with self._write() as conn:
            return conn.execute("DELETE FROM intents WHERE op_id = ?", (op_id,)).rowcount == 1

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
        """Commit the inbox row and its job durably; False for a duplicate delivery.

        ``job_kind`` None: the row only (an echo recognised at ingress), committed as the other writes are (no
        flush to the disk, no batch: no work depends on it, and a redelivery of it is again an echo). Deliveries
        with a job arriving together share one durable commit (group commit, ``group_commit.py``): each runs in
        its own savepoint of one ``BEGIN IMMEDIATE`` transaction, and this returns only after the commit that
        holds it."""
        # serialised here, in the caller's thread (not while the batch holds the lock), and the event once: a job
        # payload that carries the inbox row's record reuses its text
        payload_text = json_text(payload)
        delivery = _Delivery(
            system,
            account,
            delivery_id,
            payload_text,
            job_kind,
            None if job_kind is None else _dumps_job_payload(job_payload or {}, payload, payload_text),
            dedupe_key,
            lock_key,
            self.clock(),
        )
        if job_kind is None:
            with self._write() as conn:
                return self._accept_one(conn, delivery)
        return self.group_commit.submit(delivery, getattr(self._local, "write_deadline", None))

    @property
    def group_commit(self) -> GroupCommit[_Delivery, bool]:
        """This store's batcher of deliveries (a forked child makes its own: the parent's may be mid-batch)."""
        group = self._group
        if group.pid != os.getpid():
            group = self._group = GroupCommit(self._writer_lock_within, self._accept_batch)
        return group

    def _accept_batch(self, deliveries: Sequence[_Delivery]) -> list[Outcome[bool]]:
        """One durable transaction for a batch of deliveries, each in its own savepoint (see ``accept_delivery``).

        A delivery that fails is rolled back to its savepoint and gets its exception; the others commit. An error
        that ended the transaction itself (SQLite rolls back on a full disk or an I/O error) or a failed commit
        raises: nothing of the batch was stored."""
        conn = self._conn()
        deadline: float | None = getattr(self._local, "write_deadline", None)
        outcomes: list[Outcome[bool]] = []
        conn.execute("PRAGMA synchronous = FULL")  # acknowledgements depend on this commit: survive power loss
        try:
            self._begin_immediate(conn, deadline)
            self._local.work_queued = 0
            try:
                for delivery in deliveries:
                    conn.execute("SAVEPOINT delivery")
                    try:
                        outcomes.append(Outcome(value=self._accept_one(conn, delivery)))
                    except Exception as exc:
                        if not conn.in_transaction:  # the transaction itself is gone, with the batch's rows
                            raise
                        conn.execute("ROLLBACK TO delivery")
                        outcomes.append(Outcome(error=exc))
                    conn.execute("RELEASE delivery")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            conn.execute("PRAGMA synchronous = NORMAL")
        self._ring_if_queued()  # committed: the jobs it queued wake this process's idle workers
        return outcomes

    def _accept_one(self, conn: sqlite3.Connection, d: _Delivery) -> bool:
        """The inbox row and its job (inside the batch's transaction); False for a duplicate delivery."""
        cur = conn.execute(
            "INSERT INTO inbox (system, account, delivery_id, payload, received_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (d.system, d.account, d.delivery_id, d.payload, d.now),
        )
        if cur.rowcount != 1:
            return False
        if d.job_kind is None or d.job_payload is None:
            return True
        job_id = self._insert_job_text(conn, d.job_kind, d.job_payload, d.dedupe_key, d.now, d.now, d.lock_key)
        if job_id is None and d.dedupe_key is not None:
            job_id = self._active_job_with_key(conn, d.dedupe_key)
        conn.execute(
            "UPDATE inbox SET job_id = ? WHERE system = ? AND account = ? AND delivery_id = ?",
            (job_id, d.system, d.account, d.delivery_id),
        )
        return True

    def inbox_row(self, system: str, delivery_id: str, *, account: str = "") -> InboxRow | None:
        """The inbox row of a delivery, or None."""
        row = (
            self._conn()
            .execute(
                "SELECT payload, job_id, received_at FROM inbox WHERE system = ? AND account = ? AND delivery_id = ?",
                (system, account, delivery_id),
            )
            .fetchone()
        )
        if row is None:
            return None
        return InboxRow(system, account, delivery_id, _loads(row[0]), row[1], row[2])

    def purge_inbox(self, older_than_seconds: float = INBOX_RETENTION_SECONDS, *, batch: int = PURGE_BATCH) -> int:
        """Delete inbox rows older than the retention, ``batch`` rows per transaction; returns how many."""
        cutoff = self.clock() - older_than_seconds
        return self._purge_in_batches(
            "DELETE FROM inbox WHERE rowid IN (SELECT rowid FROM inbox WHERE received_at < ? LIMIT ?)", cutoff, batch
        )

    def purge_jobs(self, older_than_seconds: float = JOB_RETENTION_SECONDS, *, batch: int = PURGE_BATCH) -> int:
        """Delete done jobs finished before the retention, ``batch`` per transaction (dead ones are kept)."""
        cutoff = self.clock() - older_than_seconds
        return self._purge_in_batches(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 'done' AND updated_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.job_id = jobs.id OR d.replay_job_id = jobs.id)"
            " LIMIT ?)",
            cutoff,
            batch,
        )

    def _purge_in_batches(self, statement: str, cutoff: float, batch: int) -> int:
        """Run a ``DELETE ... LIMIT ?`` until it deletes less than a batch; each batch is its own transaction."""
        if batch < 1:
            raise ValueError("a purge batch holds at least one row")
        total = 0
        while True:
            with self._write() as conn:
                deleted = conn.execute(statement, (cutoff, batch)).rowcount
            total += deleted
            if deleted < batch:
                return total

    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        run_at: float | None = None,
        lock_key: str | None = None,
    ) -> int | None:
        """Queue a ready job; None when ``key`` is held by a job that is waiting or running."""
        now = self.clock()
        with self._write() as conn:
            return self._insert_job(conn, kind, payload, key, now if run_at is None else run_at, now, lock_key)

    @staticmethod
    def _job(row: tuple[Any, ...]) -> Job:
        jid, kind, payload, key, state, attempt, run_at, lease_until, worker, error, created, updated, waits = row
        return Job(
            id=jid,
            kind=kind,
            payload=_loads(payload),
            key=key,
            state=state,
            attempt=attempt,
            run_at=run_at,
            lease_until=lease_until,
            worker_id=worker,
            last_error=error,
            created_at=created,
            updated_at=updated,
            waits=waits,
        )

    def _bury(self, conn: sqlite3.Connection, job_id: int, error: str, now: float) -> None:
        """Mark a job dead and write its dead letter (inside the caller's transaction)."""
        row = _first(
            conn.execute(
                "UPDATE jobs SET state = 'dead', lease_until = NULL, last_error = ?, updated_at = ?"
                " WHERE id = ? RETURNING kind, payload, key, attempt, lock_key",
                (error, now, job_id),
            )
        )
        conn.execute(
            "INSERT INTO dead_letters (job_id, kind, payload, key, attempt, error, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job_id, row[0], row[1], row[2], row[3], error, now),
        )
        if row[4] is not None:
            self._entity_freed(conn, row[4])

    def claim(
        self,
        worker_id: str,
        *,
        lease_seconds: float,
        kinds: Iterable[str] | None = None,
        max_attempts: int | None = None,
    ) -> Job | None:
        """Lease the oldest due job (ready and due, or with an expired lease) and bump its attempt."""
        kind_list = None if kinds is None else list(kinds)
        if kind_list is not None and not kind_list:
            return None
        kind_filter = "" if kind_list is None else f" AND kind IN ({', '.join('?' * len(kind_list))})"
        kind_args: tuple[Any, ...] = () if kind_list is None else tuple(kind_list)
        now = self.clock()
        self._local.work_seen = self._bell().generation  # a job queued from here on wakes this thread's wait
        # A read first: when no job is due (ready and due, or leased with an expired lease: the exhausted ones
        # among them), nothing can be claimed or buried, and the claim takes no write lock and makes no commit (an
        # idle worker's poll, the claim after each job). A job queued after this read rings the bell read above.
        due = (
            self._conn()
            .execute(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'ready' AND run_at <= ?" + kind_filter + ")"
                " OR EXISTS (SELECT 1 FROM jobs WHERE state = 'leased' AND lease_until <= ?" + kind_filter + ")",
                (now, *kind_args, now, *kind_args),
            )
            .fetchone()
        )
        if not due[0]:
            return None
        with self._write() as conn:
            if max_attempts is not None:
                exhausted = conn.execute(
                    "SELECT id, attempt FROM jobs"  # waits spend no budget: only failed attempts count
                    " WHERE state = 'leased' AND lease_until <= ? AND attempt - waits >= ?" + kind_filter,
                    (now, max_attempts, *kind_args),
                ).fetchall()
                for job_id, attempt in exhausted:
                    self._bury(conn, job_id, f"lease expired on attempt {attempt} of {max_attempts}", now)
            # The oldest due ready job and the oldest job with an expired lease, each found by walking its index in
            # (run_at, id) order and stopping at the first that passes the filters; the older of the two wins. One
            # OR over both states made SQLite collect and sort every due job: with thousands queued, a claim held
            # the write lock for milliseconds and the receiver's deliveries queued behind it.
            free = (  # one running job per entity: skip a job whose lock another live lease holds
                " AND (j.lock_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs AS o WHERE o.lock_key = j.lock_key"
                " AND o.state = 'leased' AND o.lease_until > ? AND o.id != j.id))" + kind_filter
            )
            row = _first(
                conn.execute(
                    "UPDATE jobs SET state = 'leased', attempt = attempt + 1, lease_until = ?, worker_id = ?,"
                    " updated_at = ? WHERE id = (SELECT id FROM ("
                    "  SELECT * FROM (SELECT id, run_at FROM jobs AS j WHERE state = 'ready' AND run_at <= ?"
                    f"{free} ORDER BY run_at, id LIMIT 1)"
                    "  UNION ALL"
                    "  SELECT * FROM (SELECT id, run_at FROM jobs AS j WHERE state = 'leased' AND lease_until <= ?"
                    f"{free} ORDER BY run_at, id LIMIT 1)"
                    f") ORDER BY run_at, id LIMIT 1) RETURNING {_JOB_COLUMNS}",
                    (now + lease_seconds, worker_id, now, now, now, *kind_args, now, now, *kind_args),
                )
            )
        return None if row is None else self._job(row)

    def heartbeat(self, job_id: int, attempt: int, lease_seconds: float) -> bool:
        """Extend the lease of the caller's attempt; False when it is stale."""
        now = self.clock()
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE jobs SET lease_until = ?, updated_at = ? WHERE id = ? AND attempt = ? AND state = 'leased'",
                (now + lease_seconds, now, job_id, attempt),
            )
            return cur.rowcount == 1

    def hold_lease(self, job_id: int, attempt: int, lease_seconds: float) -> bool:
        """True when the caller's attempt still holds a live lease (extended when less than half of it is left);
        False otherwise. Far from expiry it is one read, no write transaction (``Store.hold_lease``)."""
        now = self.clock()
        row = (
            self._conn()
            .execute(
                "SELECT lease_until FROM jobs WHERE id = ? AND attempt = ? AND state = 'leased'", (job_id, attempt)
            )
            .fetchone()
        )
        if row is None or row[0] is None or row[0] <= now:
            return False  # taken over by a newer attempt, settled, or lapsed: nothing changes
        if row[0] - now >= lease_seconds / 2:
            return True
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE jobs SET lease_until = ?, updated_at = ?"
                " WHERE id = ? AND attempt = ? AND state = 'leased' AND lease_until > ?",
                (now + lease_seconds, now, job_id, attempt, now),
            )
            return cur.rowcount == 1

    def complete(self, job_id: int, attempt: int, *, audit: Sequence[AuditRow] = ()) -> bool:
        """Mark the caller's attempt done, with its ``audit`` rows (one transaction); False when it is stale."""
        now = self.clock()
        with self._write() as conn:
            done = self._settle(
                conn,
                "UPDATE jobs SET state = 'done', lease_until = NULL, updated_at = ?"
                " WHERE id = ? AND attempt = ? AND state = 'leased'",
                (now, job_id, attempt),
            )
            if done:
                for row in audit:
                    self._audit(conn, now, row)
            return done

    def _settle(self, conn: sqlite3.Connection, statement: str, args: tuple[Any, ...]) -> bool:
        """Run a fenced UPDATE ... RETURNING lock_key; wake a worker when it made the job itself due again at once,
        or freed an entity a job waits for."""
        row = _first(conn.execute(statement + " RETURNING lock_key, state = 'ready' AND run_at <= updated_at", args))
        if row is None:
            return False
        if row[1]:
            self._work_queued()
        elif row[0] is not None:
            self._entity_freed(conn, row[0])
        return True

    def _entity_freed(self, conn: sqlite3.Connection, lock_key: str) -> None:
        """A job holding ``lock_key`` ended (inside the caller's transaction): when a job of that entity is due,
        it may run now, and an idle worker is woken for it (most entities have none waiting: no wake)."""
        waiting = conn.execute(
            "SELECT 1 FROM jobs WHERE lock_key = ? AND state = 'ready' AND run_at <= ? LIMIT 1",
            (lock_key, self.clock()),
        ).fetchone()
        if waiting is not None:
            self._work_queued()

    def retry_later(self, job_id: int, attempt: int, *, run_at: float, error: str, waiting: bool = False) -> bool:
        """Return the caller's attempt to ready, due at ``run_at`` (``waiting``: counted in ``waits``, not as a
        failure); False when it is stale."""
        now = self.clock()
        with self._write() as conn:
            return self._settle(
                conn,
                "UPDATE jobs SET state = 'ready', run_at = ?, lease_until = NULL, worker_id = NULL,"
                " last_error = ?, updated_at = ?, waits = waits + ? WHERE id = ? AND attempt = ? AND state = 'leased'",
                (run_at, redact_text(error), now, 1 if waiting else 0, job_id, attempt),
            )

    def fail(self, job_id: int, attempt: int, *, error: str, then: FollowUp | None = None) -> bool:
        """Mark the job dead with a dead letter (and queue ``then`` in the same transaction); False when the
        caller's attempt is stale."""
        now = self.clock()
        with self._write() as conn:
            current = conn.execute(
                "SELECT 1 FROM jobs WHERE id = ? AND attempt = ? AND state = 'leased'", (job_id, attempt)
            ).fetchone()
            if current is None:
                return False
            self._bury(conn, job_id, redact_text(error), now)
            if then is not None:
                self._insert_job(conn, then.kind, then.payload, then.key, now, now, then.lock_key)
            return True

    def job(self, job_id: int) -> Job | None:
        """One job by id, or None."""
        row = self._conn().execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else self._job(row)

    def queue_depth(self) -> dict[str, int]:
        """Jobs per state, every state present."""
        depth = dict.fromkeys(JOB_STATES, 0)
        for state, count in self._conn().execute("SELECT state, n FROM job_counts"):  # kept by triggers
            depth[state] = count
        return depth

    def oldest_ready_at(self, now: float) -> float | None:
        """The earliest ``run_at`` of a due ready job (the ``jobs_ready`` index answers it), or None."""
        row = (
            self._conn()
            .execute("SELECT min(run_at) FROM jobs WHERE state = 'ready' AND run_at <= ?", (now,))
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    # ---- dead letters ------------------------------------------------------------------------------

    @staticmethod
    def _letter(row: tuple[Any, ...]) -> DeadLetter:
        lid, job_id, kind, payload, key, attempt, error, created, replayed_at, replay_job_id = row
        return DeadLetter(lid, job_id, kind, _loads(payload), key, attempt, error, created, replayed_at, replay_job_id)

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        rows = self._conn().execute(f"SELECT {_LETTER_COLUMNS} FROM dead_letters ORDER BY id").fetchall()
        return [self._letter(r) for r in rows]

    def dead_letter(self, letter_id: int) -> DeadLetter | None:
        """One dead letter, or None."""
        row = self._conn().execute(f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE id = ?", (letter_id,)).fetchone()
        return None if row is None else self._letter(row)

    def replay_dead_letter(self, letter_id: int) -> int:
        """Queue the letter's job again and mark the letter replayed; refuses a second replay."""
        now = self.clock()
        with self._write() as conn:
            row = conn.execute(f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE id = ?", (letter_id,)).fetchone()
            if row is None:
                raise NotFoundInStore(f"no dead letter with id {letter_id}")
            letter = self._letter(row)
            if letter.replayed_at is not None:
                raise AlreadyReplayed(
                    f"dead letter {letter_id} was replayed already (as job {letter.replay_job_id}); "
                    "replaying it again would repeat its work"
                )
            # the replayed job keeps its entity lock: it must not run beside another job on the same ticket
            lock = _first(conn.execute("SELECT lock_key FROM jobs WHERE id = ?", (letter.job_id,)))
            lock_key = None if lock is None else lock[0]
            job_id = self._insert_job(conn, letter.kind, letter.payload, letter.key, now, now, lock_key)
            if job_id is None and letter.key is not None:
                job_id = self._active_job_with_key(conn, letter.key)
            if job_id is None:  # pragma: no cover - a key conflict always leaves an active job to find
                raise StoreError(f"could not queue dead letter {letter_id} again")
            conn.execute(
                "UPDATE dead_letters SET replayed_at = ?, replay_job_id = ? WHERE id = ?",
                (now, job_id, letter_id),
            )
            return job_id

    # ---- audit -------------------------------------------------------------------------------------

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
        """Append an audit row; returns its id."""
        row = AuditRow(actor, action, target, result, policy, origin_event, ticket, issue_key, details or {})
        now = self.clock()
        with self._write() as conn:
            return self._audit(conn, now, row)

    @staticmethod
    def _audit(conn: sqlite3.Connection, now: float, row: AuditRow) -> int:
        """Append ``row`` (strings redacted) inside the caller's writing transaction; its id."""
        written = _first(
            conn.execute(
                f"INSERT INTO audit ({_AUDIT_COLUMNS.removeprefix('id, ')})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                audit_values(now, row),
            )
        )
        return int(written[0])

    def audit_entries(self, *, ticket: Ref | None = None, issue_key: str | None = None) -> list[AuditEntry]:
        """Audit rows in the order written, filtered by ticket and/or issue key."""
        clauses: list[str] = []
        args: list[Any] = []
        if ticket is not None:
            clauses.append("ticket = ?")
            args.append(str(ticket))
        if issue_key is not None:
            clauses.append("issue_key = ?")
            args.append(issue_key)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn().execute(f"SELECT {_AUDIT_COLUMNS} FROM audit {where} ORDER BY id", args).fetchall()
        return [
            AuditEntry(
                id=r[0],
                at=r[1],
                actor=r[2],
                action=r[3],
                target=r[4],
                result=r[5],
                policy=r[6],
                origin_event=r[7],
                ticket=_ref(r[8]),
                issue_key=r[9],
                details=_loads(r[10]),
            )
            for r in rows
        ]

    # ---- checkpoints -------------------------------------------------------------------------------

    def put_snapshot(self, kind: str, ref: str, data: dict[str, Any], *, linked_ticket: Ref | None = None) -> None:
        """Save (replace) the snapshot of a remote record (dropping the aggregates ``linked_ticket`` is in); inside
        ``snapshots_together``, with the block's others when it ends."""
        # serialised here, not under the lock
        snapshot = _Snapshot(kind, ref, json_text(redact_value(data)), self.clock(), linked_ticket)
        pending: list[_Snapshot] | None = getattr(self._local, "snapshots", None)
        if pending is not None:
            pending.append(snapshot)
            return
        with self._write() as conn:
            self._save_snapshot(conn, snapshot)

    @staticmethod
    def _save_snapshot(conn: sqlite3.Connection, snapshot: _Snapshot) -> None:
        kind, ref, text, now, linked_ticket = snapshot
        conn.execute(
            "INSERT INTO snapshots (kind, ref, data, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, ref) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
            (kind, ref, text, now),
        )
        if linked_ticket is not None:
            conn.execute(
                "INSERT INTO aggregates (issue, seq, data, last_at, updated_at)"
                " SELECT issue, 1, NULL, NULL, ? FROM links WHERE ticket = ? ORDER BY issue"
                " ON CONFLICT (issue) DO UPDATE SET seq = aggregates.seq + 1, data = NULL,"
                " updated_at = excluded.updated_at",
                (now, str(linked_ticket)),
            )

    def snapshots_together(self) -> AbstractContextManager[None]:
        """Inside (this thread only): snapshots are kept and written in one transaction when the block ends
        (``Store.snapshots_together``)."""
        return kept_together(self._local, self._save_snapshots)

    def _save_snapshots(self, snapshots: Sequence[_Snapshot]) -> None:
        if snapshots:
            with self._write() as conn:
                for snapshot in snapshots:
                    self._save_snapshot(conn, snapshot)

    def get_snapshot(self, kind: str, ref: str) -> dict[str, Any] | None:
        """The saved snapshot of a remote record (or one put in this thread's ``snapshots_together`` block), or None."""
        pending: list[_Snapshot] | None = getattr(self._local, "snapshots", None)
        for snapshot in reversed(pending or ()):
            if snapshot.kind == kind and snapshot.ref == ref:
                return dict(_loads(snapshot.text))
        row = self._conn().execute("SELECT data FROM snapshots WHERE kind = ? AND ref = ?", (kind, ref)).fetchone()
        return None if row is None else dict(_loads(row[0]))

    def purge_snapshots(self, kind: str, older_than_seconds: float) -> int:
        """Delete snapshots of ``kind`` older than the given age; returns how many."""
        cutoff = self.clock() - older_than_seconds
        with self._write() as conn:
            return conn.execute("DELETE FROM snapshots WHERE kind = ? AND updated_at < ?", (kind, cutoff)).rowcount

    def get_checkpoint(self, system: str, stream: str) -> dict[str, Any] | None:
        """The saved cursor mapping of a stream, or None."""
        row = (
            self._conn()
            .execute("SELECT state FROM checkpoints WHERE system = ? AND stream = ?", (system, stream))
            .fetchone()
        )
        return None if row is None else dict(_loads(row[0]))

    def set_checkpoint(self, system: str, stream: str, state: dict[str, Any]) -> None:
        """Save (replace) the cursor mapping of a stream."""
        now = self.clock()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO checkpoints (system, stream, state, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (system, stream)"
                " DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (system, stream, json_text(state), now),
            )
