"""The PostgreSQL store: the same ``Store`` contract as SQLite, for receivers and workers on several machines.

``store = "postgresql://user@host:5432/db"`` in ``[cxbridge]`` (the password from ``store_password = { env = ... }``
or libpq's own ``PGPASSWORD`` / ``~/.pgpass``, never inline). Needs the ``cxbridge[postgres]`` extra (psycopg 3 and
its connection pool).

How the guarantees are kept without any process-local lock:

- Claims run ``SELECT ... FOR UPDATE SKIP LOCKED``: several workers on several machines each lock a different due
  row and never wait for each other. A job with a ``lock_key`` (one ticket or issue) is claimed only while holding
  ``pg_try_advisory_xact_lock`` on that key (the key ``lock_id`` gives, computed by the server in the statement
  that picks the job) and by an ``UPDATE`` that re-reads, in a snapshot taken under the lock, that no other live
  lease holds the key: two claimers racing for two jobs of one entity cannot both win.
- Leases are fenced by attempt as in SQLite: ``complete``, ``retry_later``, ``fail`` and ``heartbeat`` act only
  while the caller's attempt is the current one.
- Intent compare-and-set is a conditional ``UPDATE`` (from the expected state and attempts, never from ``done``):
  a concurrent writer of the row makes it wait and re-check the condition, so the move to ``sending`` has one
  winner.
- Migrations are numbered (the SQLite store's numbers) and run under ``pg_advisory_xact_lock``.
- ``exclusive(name)`` (one reconciler per stream) is a session ``pg_try_advisory_lock`` on a connection of its own:
  a process that dies, or whose connection drops, releases it.
- A queued job is announced with ``NOTIFY``: idle workers wait on ``LISTEN`` and wake at once (a poll every
  ``cxbridge.worker.ANNOUNCED_POLL_SECONDS`` covers delayed jobs and a lost notification).

Durability: like the SQLite store (``synchronous = NORMAL``, ``FULL`` for deliveries), the transaction that
accepts a webhook delivery commits with ``synchronous_commit = on`` (the vendor is acknowledged after it: it is on
disk first), and every other transaction commits asynchronously (``synchronous_commit = off``), which spares a WAL
flush per claim, lease and intent step. A crash of the server may then lose its last fraction of a second of those
commits (never corrupt anything; a clean restart loses nothing), and each of those writes has a second guard
against repeating its effect: a lost completion runs the job again, and its writes find their intents done or
their effects by marker; a lost claim or lease simply lapses.

Round trips: an operation that is one statement runs in autocommit, one round trip to the server (no ``BEGIN`` and
``COMMIT`` around it); the steps a job takes are each one statement where that keeps its guarantee: a claim
(``UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED)``), the intent's begin (insert or read), its
compare-and-set (the row read back only when it lost), the lease check, the heartbeat and the fenced completion
(its ``NOTIFY`` in the same statement). A job with an entity lock is claimed in a transaction of two statements
(pick and lock, then lease if free: 4 round trips with ``BEGIN`` and ``COMMIT``, 7 before); once a claim met such
a job, the store's claims go straight to it until one leases a job without. Burying exhausted leases, a delivery
with its job and a dead letter keep their transactions.

Connection loss: an operation whose connection fails before anything was sent is run again on a fresh connection
(``RUN_ATTEMPTS`` in all; the pool discards broken ones): a transaction that failed before its ``COMMIT``, or an
idle pooled connection the server has closed (its socket has something to read while no statement is in flight:
the server's goodbye or the end of the stream; it is dropped unused). One that failed while committing may or
may not have committed, and so may an autocommit statement once sent: it raises ``StoreBusy`` and is never
repeated blindly, unless running it twice changes nothing (a read, recording an intent's outcome, a lease's
extension, an upsert: a ``sending`` intent left behind by a lost answer would hold its write for
``IN_FLIGHT_SECONDS``). A worker that cannot reach the server loses nothing: its lease lapses, the job comes
back with the next attempt, and the stale attempt's completion is refused.
"""

# SQL text here is assembled only from module constants and '%s' placeholders; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import json
import os
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the PostgreSQL store needs the postgres extra: pip install 'cxbridge[postgres]'") from exc

from ..models import Link, Ref
from ..redact import redact_url
from . import pg_migrations
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
from .migrations import MIGRATIONS_TABLE, migrations

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

POOL_SIZE = 8
"""Connections per process: a worker thread, the receiver's threads and heartbeats share them."""
CONNECT_TIMEOUT_SECONDS = 10
CHECKOUT_TIMEOUT_SECONDS = 30.0
"""How long an operation waits for a free pooled connection (or for the server to come back) before ``StoreBusy``."""
RUN_ATTEMPTS = 3
"""Tries of one operation when its connection fails (each on a fresh connection, broken idle ones dropped)."""
OPEN_ATTEMPTS = 4
"""Tries to open the store when the connection is cut while opening (a restart or failover under way)."""
CLAIM_SCAN = 32
"""How many due jobs one claim may pass over because their entity is busy before it reports nothing to do."""

_JOB_COLUMNS = (
    "id, kind, payload, key, state, attempt, run_at, lease_until, worker_id, last_error, created_at, updated_at, waits"
)
_INTENT_COLUMNS = (
    "op_id, kind, business_key, state, payload, result, error, attempts, sent_at, created_at, updated_at, owner"
)
_LETTER_COLUMNS = "id, job_id, kind, payload, key, attempt, error, created_at, replayed_at, replay_job_id"
_LINK_COLUMNS = "ticket, issue, issue_key, customer, linked_by, linked_at, origin_event"
_AUDIT_COLUMNS = "id, at, actor, action, target, result, policy, origin_event, ticket, issue_key, details"
_QUALIFIED_JOB_COLUMNS = ", ".join(f"jobs.{column.strip()}" for column in _JOB_COLUMNS.split(","))
_ENTITY_LOCK = (
    "('x' || left(encode(sha256(convert_to('cxbridge:entity:' || %s || ':' || {key}, 'UTF8')), 'hex'), 16))"
    "::bit(64)::bigint"
)
"""An entity's advisory lock key computed by the server: ``lock_id(f"cxbridge:entity:{schema}:{lock_key}")``."""
_ANNOUNCE = "(SELECT 1 FROM pg_notify(%s, {payload}))"
"""Wakes an idle worker of each listening process at commit, as a column of a statement (evaluated only where the
statement reaches it). ``{payload}``: the job's id where it queues one, so that jobs queued in one transaction are
one notification each (PostgreSQL delivers a repeated channel and payload of one transaction once)."""
_ANNOUNCE_FREED = _ANNOUNCE.format(payload="''")
"""A job ended that another job was waiting for, or a job is due again at once: one notification."""
_ENTITY_WAITED = (
    "({key} IS NOT NULL AND EXISTS (SELECT 1 FROM jobs AS w WHERE w.lock_key = {key} AND w.state = 'ready'"
    " AND w.run_at <= %s))"
)
"""Whether a due job waits for the entity ``{key}`` names (the parameter: now): only then does freeing it wake a
worker (in the statement's snapshot the job being settled counts as it was before). ``{key}`` must be qualified
by its table: inside the subquery a bare ``lock_key`` would be the other job's own."""
_LIVE_LEASE_ON_KEY = (
    "EXISTS (SELECT 1 FROM jobs AS o WHERE o.lock_key = {key} AND o.state = 'leased' AND o.lease_until > %s"
    " AND o.id != {id})"
)


_Snapshot = tuple[str, str, str, float, "Ref | None"]
"""A snapshot serialised (and redacted) in its caller's thread: kind, ref, JSON text, time, linked ticket."""


def _ref(text: str | None) -> Ref | None:
    return None if text is None else Ref.parse(text)


def is_postgres_url(location: str) -> bool:
    """Whether a store location is a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    return scheme.split("+")[0] in ("postgres", "postgresql")


def conninfo_for(url: str, password: str | None = None) -> str:
    """The libpq connection string of a store URL: the password added from a secret (never read from the URL,
    which must not carry one), cxbridge's application name and a connect timeout unless the URL sets them."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"{redact_url(url)}: not a PostgreSQL URL libpq can read ({exc})") from None
    if params.get("password"):
        raise StoreError(
            f"{redact_url(url)}: the store URL carries a password inline; remove it and give it as "
            '[cxbridge] store_password = { env = "NAME" } (or { file = "path" }), or through PGPASSWORD / ~/.pgpass'
        )
    extra: dict[str, Any] = {}
    if password:
        extra["password"] = password
    if "application_name" not in params:
        extra["application_name"] = "cxbridge"
    if "connect_timeout" not in params:
        extra["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    return make_conninfo(url, **extra)


def lock_id(name: str) -> int:
    """A 64-bit advisory lock key for a name (the same on every machine, unlike Python's ``hash``)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _refused_for_good(exc: psycopg.OperationalError) -> bool:
    """A connection failure that trying again will not cure: no server at the address, bad credentials."""
    text = str(exc).lower()
    return "connection refused" in text or "password authentication failed" in text or "does not exist" in text


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact_text(text)[:300]


STORE_TABLES = ("links", "intents", "inbox", "jobs", "dead_letters", "audit", "checkpoints", "snapshots")


def inspect_database(url: str, password: str | None = None) -> str:
    """What ``doctor`` says about a PostgreSQL store, read without changing it: the server's version, the schema
    and its version, and whether cxbridge may use it. ``StoreError`` with the one line that refuses it: the server
    unreachable, a read-only standby, a schema written by a newer cxbridge, a missing privilege."""
    shown = redact_url(url)
    try:
        with psycopg.connect(conninfo_for(url, password), autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), pg_is_in_recovery(), current_schema(),"
                " current_schema() IS NOT NULL AND has_schema_privilege(current_schema(), 'CREATE')"
            ).fetchone()
            assert row is not None
            server, standby, schema, can_create = row
            if standby:
                raise StoreError(f"the store {shown} is a read-only standby: point cxbridge at the primary")
            if schema is None:
                raise StoreError(f"the store {shown} has no schema to write to (check its search_path)")
            try:
                recorded = pg_migrations.applied(conn)
            except pg_errors.InsufficientPrivilege:
                raise StoreError(
                    f"the store {shown}: cxbridge's user may not read {MIGRATIONS_TABLE} in schema {schema}: grant "
                    "it SELECT, INSERT, UPDATE, DELETE on cxbridge's tables (and CREATE on the schema to migrate)"
                ) from None
            version = max(recorded, default=0)
            if version > pg_migrations.LATEST:
                raise StoreError(
                    f"the store {shown} has schema version {version}, newer than this cxbridge knows "
                    f"({pg_migrations.LATEST}): upgrade cxbridge"
                )
            if version < pg_migrations.LATEST and not can_create:
                raise StoreError(
                    f"the store {shown} is at schema version {version} of {pg_migrations.LATEST} and its user may not "
                    f"create tables in schema {schema}: GRANT CREATE ON SCHEMA {schema}, or migrate it as its owner"
                )
            if recorded:
                missing = [
                    table
                    for table, ok in conn.execute(
                        "SELECT t, CASE WHEN to_regclass(t) IS NULL THEN false"
                        # (a list of privileges is true when any one is held: each is asked for)
                        " ELSE has_table_privilege(t, 'SELECT') AND has_table_privilege(t, 'INSERT')"
                        " AND has_table_privilege(t, 'UPDATE') AND has_table_privilege(t, 'DELETE') END"
                        " FROM unnest(%s::text[]) AS t",
                        (list(STORE_TABLES),),
                    )
                    if not ok
                ]
                if missing:
                    raise StoreError(
                        f"the store {shown}: cxbridge's user lacks SELECT, INSERT, UPDATE, DELETE on "
                        f"{', '.join(missing)}"
                    )
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot reach the store {shown}: {_one_line(exc)}") from None
    pending = (
        ""
        if version == pg_migrations.LATEST
        else f"; {pg_migrations.LATEST - version} migration(s) pending, applied at start or by 'cxbridge store migrate'"
    )
    return f"{shown} (PostgreSQL {server}, schema {schema} at version {version}{pending})"


class _GoneAway(Exception):
    """An idle pooled connection that the server closed; dropped before anything was sent on it."""


def _gone_away(conn: Conn) -> bool:
    """True when the server has closed this idle connection (or sent something unasked on it): while no statement
    is in flight a healthy connection has nothing to read (pooled connections do not ``LISTEN``), and a terminated
    backend or a restarted server leaves its goodbye and the end of the stream there. One ``select`` call, no round
    trip."""
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return True
    return bool(readable)


def _asynchronous_commits(conn: Conn) -> None:
    """A new pooled connection commits without waiting for the WAL flush, like SQLite's ``synchronous = NORMAL``
    (the transaction that acknowledges a webhook asks for the flush itself)."""
    conn.execute("SET synchronous_commit = off")


class _Listener:
    """One thread per store and process that ``LISTEN``s for due jobs and rings the process's ``WorkBell``: once per
    notification (each job queued, or an entity freed, by any process, is one), so one idle worker of this
    process wakes for each."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.bell = WorkBell()
        self.stopping = threading.Event()
        self.conn: Conn | None = None
        self.thread = threading.Thread(target=self._run, name="cxbridge-pg-listen", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    self.conn = conn
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.bell.ring_all()  # anything queued while this listener was not listening
                    while not self.stopping.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.bell.ring()
            except psycopg.Error:  # the server went away: workers fall back to polling until it is back
                self.stopping.wait(1.0)
            finally:
                self.conn = None

    def close(self) -> None:
        self.stopping.set()


class PostgresStore(Store):
    """The ``Store`` on a PostgreSQL database (``store = "postgresql://..."``); opening it applies any pending
    migrations. Each process gets its own connection pool (a new one after a fork).

    ``clock`` returns the current time in epoch seconds (tests pass a fake one); ``password`` comes from the
    config's secret. The tables live in the connection's ``search_path`` schema (``public`` by default).
    """

    announces_work = True

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        password: str | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.url = url
        self.shown = redact_url(url)
        self.clock = clock
        self.pool_size = pool_size
        self._conninfo = conninfo_for(url, password)
        self._local = threading.local()
        self._guard = threading.Lock()
        self._closed = False
        self._pid = -1
        self._pool: ConnectionPool[Conn] | None = None
        self._listener: _Listener | None = None
        self._entity_claims = False
        """A hint: the last claims met jobs with an entity lock, so claims go straight to the transaction."""
        self.schema = self._open(clock)
        self.channel = f"cxbridge_jobs:{self.schema}"

    def _open(self, clock: Callable[[], float]) -> str:
        """Connect, read the schema, apply pending migrations; the schema's name. A connection cut while opening
        (a restart, a failover, a terminated backend) is tried again, up to ``OPEN_ATTEMPTS`` times."""
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    row = conn.execute("SELECT current_schema()").fetchone()
                    if row is None or row[0] is None:
                        raise StoreError(f"the store {self.shown} has no schema to write to (check its search_path)")
                    schema = str(row[0])
                    pg_migrations.apply(conn, lock_id(f"cxbridge:migrate:{schema}"), clock=clock)
                    return schema
            except pg_errors.InsufficientPrivilege as exc:
                raise StoreError(f"the store {self.shown} refused cxbridge's schema: {_one_line(exc)}") from None
            except psycopg.OperationalError as exc:
                if attempt == OPEN_ATTEMPTS or _refused_for_good(exc):
                    raise StoreError(f"cannot reach the store {self.shown}: {_one_line(exc)}") from None
                time.sleep(0.5 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- connections and transactions --------------------------------------------------------------

    def _pool_now(self) -> ConnectionPool[Conn]:
        if self._closed:
            raise StoreError("the store is closed")
        pid = os.getpid()
        if self._pool is None or self._pid != pid:
            with self._guard:
                if self._pool is None or self._pid != pid:
                    # after a fork the parent's pool (its sockets and threads) is left alone: the child opens its own
                    self._pool = ConnectionPool(
                        self._conninfo,
                        min_size=1,
                        max_size=self.pool_size,
                        kwargs={"autocommit": True},
                        configure=_asynchronous_commits,
                        name=f"cxbridge-{pid}",
                        open=True,
                    )
                    self._listener = None
                    self._pid = pid
        return self._pool

    def _budget(self) -> float | None:
        deadline: float | None = getattr(self._local, "deadline", None)
        return None if deadline is None else max(0.001, deadline - time.monotonic())

    def _run(
        self, fn: Callable[[Conn], T], *, durable: bool = False, idempotent: bool = False, single: bool = False
    ) -> T:
        """Run ``fn`` in one transaction on a pooled connection; once more on a fresh connection when the first
        failed before committing (a dropped connection), ``StoreBusy`` when the server cannot be reached in time.

        ``durable``: the commit waits for the WAL flush (``synchronous_commit = on``); other transactions commit
        asynchronously (see the module's docstring). ``idempotent``: running ``fn`` twice leaves what running it
        once does, so a commit whose answer was lost is run again too (recording an intent ``done``, a lease).
        ``single``: ``fn`` is one statement (or statements that are each complete on their own: a conditional
        write, then a read of what it left), run in autocommit without ``BEGIN``/``COMMIT``; once it is sent its
        outcome is unknown on a lost connection, exactly like a commit that may have happened. A ``durable`` or
        budgeted (``write_budget``) operation keeps its transaction (its settings are ``SET LOCAL``)."""
        failure: BaseException | None = None
        for _ in range(RUN_ATTEMPTS):
            budget = self._budget()
            committing = False
            try:
                with self._pool_now().connection(
                    timeout=CHECKOUT_TIMEOUT_SECONDS if budget is None else budget
                ) as conn:
                    if single and not durable and budget is None:
                        if _gone_away(conn):
                            conn.close()  # the pool discards a closed connection
                            raise _GoneAway
                        committing = True  # an autocommit statement commits as it runs
                        return fn(conn)
                    with conn.transaction():
                        if durable:
                            conn.execute("SET LOCAL synchronous_commit = on")
                        if budget is not None:
                            ms = max(1, int(budget * 1000))
                            conn.execute(f"SET LOCAL lock_timeout = {ms}")
                            conn.execute(f"SET LOCAL statement_timeout = {ms}")
                        result = fn(conn)
                        committing = True
                    return result
            except _GoneAway:
                failure = StoreError("the server closed an idle connection")
                self._drop_broken()
            except PoolTimeout:
                raise StoreBusy(f"the store {self.shown} had no free connection within the wait") from None
            except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled):
                raise StoreBusy(f"the store {self.shown} is busy: a lock was held past the wait") from None
            except (pg_errors.ReadOnlySqlTransaction, pg_errors.AdminShutdown) as exc:
                failure = exc  # a standby after a failover, or a server shutting down: try a fresh connection
                if committing and not idempotent:
                    break
                self._drop_broken()
            except psycopg.OperationalError as exc:
                failure = exc
                if committing and not idempotent:  # the commit may have happened: never repeat it blindly
                    break
                self._drop_broken()
        raise StoreBusy(f"the store {self.shown} is unreachable: {_one_line(failure or StoreError('?'))}") from None

    def _read(self, fn: Callable[[Conn], T]) -> T:
        """Run a read: one autocommit round trip, run again on a fresh connection whenever its connection fails."""
        return self._run(fn, single=True, idempotent=True)

    def _drop_broken(self) -> None:
        """Discard every idle pooled connection that no longer works (after a restart or terminated backends)."""
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            try:
                pool.check()
            except psycopg.Error:  # the server is down: the pool reconnects when it is back
                return

    @contextmanager
    def write_budget(self, seconds: float) -> Iterator[None]:
        """Inside (this thread only): an operation waits at most ``seconds`` for a connection and for locks, then
        raises ``StoreBusy`` (a webhook's 503 with Retry-After rather than a request that hangs)."""
        previous = getattr(self._local, "deadline", None)
        self._local.deadline = time.monotonic() + max(0.0, seconds)
        try:
            yield
        finally:
            self._local.deadline = previous

    def check_writable(self) -> None:
        """Raise ``StoreError`` when the server is a read-only standby or cxbridge cannot write its tables, and
        ``StoreBusy`` when the server cannot be reached within a short wait."""

        def probe(conn: Conn) -> None:
            row = conn.execute(
                "SELECT pg_is_in_recovery(), has_table_privilege('jobs', 'INSERT')"
                " AND has_table_privilege('jobs', 'UPDATE') AND has_table_privilege('jobs', 'DELETE')"
            ).fetchone()
            if row is None or row[0]:
                raise StoreError(f"the store {self.shown} is a read-only standby: point cxbridge at the primary")
            if not row[1]:
                raise StoreError(f"the store {self.shown}: cxbridge's user may not write the jobs table")

        with self.write_budget(1.0):
            self._run(probe)

    def schema_version(self) -> int:
        """The schema version of the database (0 before the first migration)."""
        return self._read(lambda conn: max(pg_migrations.applied(conn), default=0))

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """A session advisory lock on a connection of its own, held for the block; yields False at once when
        another process (on any machine) holds it. The server releases it if this process dies."""
        if self._closed:
            raise StoreError("the store is closed")
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.OperationalError as exc:
            raise StoreBusy(f"the store {self.shown} is unreachable: {_one_line(exc)}") from None
        try:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (lock_id(f"cxbridge:exclusive:{self.schema}:{name}"),)
            ).fetchone()
            yield bool(row and row[0])
        finally:
            conn.close()  # ends the session: its advisory locks go with it

    def wait_for_work(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Wait until this thread takes a due job's notification (``NOTIFY``, one idle worker woken per job; a job
        announced after this thread's last ``claim`` began counts), ``stop`` is set, or ``timeout`` passed; True when
        woken by a notification."""
        self._pool_now()
        with self._guard:
            if self._listener is None:
                self._listener = _Listener(self._conninfo, self.channel)
            listener = self._listener
        bell = listener.bell
        seen = getattr(self._local, "work_seen", None)
        return bell.wait(bell.generation if seen is None else seen, timeout, stop)

    def close(self) -> None:
        """Close the pool and the listener; later calls raise ``StoreError``."""
        with self._guard:
            self._closed = True
            pool, self._pool = self._pool, None
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if pool is not None and self._pid == os.getpid():
            pool.close()

    # ---- links -------------------------------------------------------------------------------------

    def add_link(self, link: Link, *, fold: Fold | None = None) -> bool:
        """Record a ticket<->issue link, and move the issue's aggregate on in the same transaction (``Store``).

        The aggregate's row is locked first (``FOR UPDATE``): links added to one issue at once are stamped and
        folded one after the other."""
        return self._run(lambda conn: self._add_link(conn, link, fold))

    def _add_link(self, conn: Conn, link: Link, fold: Fold | None) -> bool:
        """``add_link`` inside the caller's transaction."""
        issue = str(link.issue)
        now = self.clock()
        conn.execute(
            "INSERT INTO aggregates (issue, seq, data, last_at, updated_at) VALUES (%s, 0, NULL, NULL, %s)"
            " ON CONFLICT (issue) DO NOTHING",
            (issue, now),
        )
        row = conn.execute("SELECT data, last_at FROM aggregates WHERE issue = %s FOR UPDATE", (issue,)).fetchone()
        assert row is not None  # inserted above when it was missing
        last: float | None = row[1]
        now = self.clock()  # after the lock: the links of one issue are stamped in the order they commit
        values = link_row(link, now=now, last=last)
        linked_at = float(values[5])
        inserted = conn.execute(
            f"INSERT INTO links ({_LINK_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            values,
        ).rowcount
        if inserted != 1:
            return False
        data: dict[str, Any] | None = None
        if row[0] is not None and fold is not None and (last is None or linked_at >= last):
            data = fold(dict(row[0]))
        conn.execute(
            "UPDATE aggregates SET seq = seq + 1, data = %s::jsonb,"
            " last_at = GREATEST(coalesce(last_at, %s), %s), updated_at = %s WHERE issue = %s",
            (None if data is None else json_text(redact_value(data)), linked_at, linked_at, now, issue),
        )
        return True

    def remove_link(self, ticket: Ref, issue: Ref) -> bool:
        """Remove a link (dropping the issue's aggregate); False when there was none."""

        def run(conn: Conn) -> bool:
            deleted = conn.execute(
                "DELETE FROM links WHERE ticket = %s AND issue = %s", (str(ticket), str(issue))
            ).rowcount
            if deleted == 0:
                return False
            conn.execute(
                "INSERT INTO aggregates (issue, seq, data, last_at, updated_at) VALUES (%s, 1, NULL, NULL, %s)"
                " ON CONFLICT (issue) DO UPDATE SET seq = aggregates.seq + 1, data = NULL,"
                " updated_at = excluded.updated_at",
                (str(issue), self.clock()),
            )
            return True

        return self._run(run)

    def get_aggregate(self, issue: Ref) -> Aggregate:
        """The issue's aggregate (``seq`` 0, no data, when none was kept)."""
        row = self._read(
            lambda conn: conn.execute("SELECT seq, data FROM aggregates WHERE issue = %s", (str(issue),)).fetchone()
        )
        if row is None:
            return Aggregate(issue, 0, None)
        return Aggregate(issue, int(row[0]), None if row[1] is None else dict(row[1]))

    def put_aggregate(self, issue: Ref, data: dict[str, Any], *, seq: int) -> bool:
        """Keep a recomputed aggregate if the issue's ``seq`` is still ``seq``; False otherwise."""
        text = json_text(redact_value(data))
        return self._run(
            lambda conn: (
                conn.execute(
                    "INSERT INTO aggregates (issue, seq, data, last_at, updated_at)"
                    " VALUES (%s, %s, %s::jsonb, (SELECT max(linked_at) FROM links WHERE issue = %s), %s)"
                    " ON CONFLICT (issue) DO UPDATE SET data = excluded.data, last_at = excluded.last_at,"
                    " updated_at = excluded.updated_at WHERE aggregates.seq = excluded.seq",
                    (str(issue), seq, text, str(issue), self.clock()),
                ).rowcount
                == 1
            ),
            single=True,
        )

    def _links(self, where: str, args: tuple[Any, ...]) -> list[Link]:
        rows = self._read(
            lambda conn: conn.execute(
                f"SELECT {_LINK_COLUMNS} FROM links {where} ORDER BY linked_at, seq", args
            ).fetchall()
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
        return self._links("WHERE ticket = %s", (str(ticket),))

    def links_for_issue(self, issue: Ref) -> list[Link]:
        """Every ticket linked to one issue."""
        return self._links("WHERE issue = %s", (str(issue),))

    def links_for_issue_key(self, key: str) -> list[Link]:
        """Every ticket linked to the issue with this key."""
        return self._links("WHERE issue_key = %s", (key,))

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
            payload=payload,
            result=result,
            error=error,
            attempts=attempts,
            sent_at=sent_at,
            created_at=created,
            updated_at=updated,
            owner=owner,
        )

    def _get_intent(self, conn: Conn, op_id: str) -> Intent | None:
        row = conn.execute(f"SELECT {_INTENT_COLUMNS} FROM intents WHERE op_id = %s", (op_id,)).fetchone()
        return None if row is None else self._intent(row)

    def get_intent(self, op_id: str) -> Intent | None:
        """The intent for an operation id, or None."""
        return self._read(lambda conn: self._get_intent(conn, op_id))

    def begin_intent(self, op_id: str, kind: str, *, business_key: str, payload: dict[str, Any]) -> Intent:
        """Insert a pending intent, or return the existing one untouched."""
        now = self.clock()

        def begin(conn: Conn) -> Intent | None:
            # one statement: the row inserted, or the one already there (read in the statement's snapshot)
            row = conn.execute(
                "WITH added AS (INSERT INTO intents"
                " (op_id, kind, business_key, state, payload, attempts, created_at, updated_at)"
                " VALUES (%s, %s, %s, 'pending', %s::jsonb, 0, %s, %s) ON CONFLICT (op_id) DO NOTHING"
                f" RETURNING {_INTENT_COLUMNS})"
                f" SELECT {_INTENT_COLUMNS} FROM added UNION ALL"
                f" SELECT {_INTENT_COLUMNS} FROM intents WHERE op_id = %s AND NOT EXISTS (SELECT 1 FROM added)",
                (op_id, kind, business_key, json_text(payload), now, now, op_id),
            ).fetchone()
            if row is None:  # inserted by another transaction that committed after this statement's snapshot
                return self._get_intent(conn, op_id)
            return self._intent(row)

        # inserting what is absent and reading it back: a lost answer is asked again
        intent = self._run(begin, single=True, idempotent=True)
        if intent is None:  # pragma: no cover - inserted or present, inside one transaction
            raise StoreError(f"intent {op_id!r} vanished while it was being written")
        return intent

    def begin_sending(
        self, op_id: str, kind: str, *, business_key: str, payload: dict[str, Any], owner: str
    ) -> tuple[bool, Intent]:
        """``Store.begin_sending`` as one statement in autocommit: the intent inserted already ``sending``; when
        ``op_id`` has a row (a pending one included), that row untouched, and the caller's claim follows."""
        now = self.clock()

        def begin(conn: Conn) -> Intent | None:
            row = conn.execute(
                "INSERT INTO intents (op_id, kind, business_key, state, payload, attempts, sent_at, owner,"
                " created_at, updated_at) VALUES (%s, %s, %s, 'sending', %s::jsonb, 1, %s, %s, %s, %s)"
                f" ON CONFLICT (op_id) DO NOTHING RETURNING {_INTENT_COLUMNS}",
                (op_id, kind, business_key, json_text(payload), now, owner, now, now),
            ).fetchone()
            return None if row is None else self._intent(row)

        inserted = self._run(begin, single=True)
        if inserted is not None:
            return True, inserted
        current = self.get_intent(op_id)
        if current is None:  # pragma: no cover - a row that conflicted is not deleted but by forget_intent
            raise StoreError(f"intent {op_id!r} vanished while it was being written")
        return False, current

    def _set_intent(
        self,
        conn: Conn,
        op_id: str,
        state: str,
        now: float,
        *,
        result: dict[str, Any] | None,
        error: str | None,
        owner: str | None = None,
        expect: set[str] | None = None,
        attempts: int | None = None,
    ) -> Intent | None:
        """Move the intent in one conditional ``UPDATE``: never from ``done``, and only from ``expect`` (with
        ``attempts``) when given; the row as written, or None when the condition did not hold (or no row)."""
        row = conn.execute(
            "UPDATE intents SET state = %s, result = COALESCE(%s::jsonb, result), error = %s,"
            " attempts = attempts + %s, sent_at = CASE WHEN %s THEN %s ELSE sent_at END,"
            " owner = CASE WHEN %s THEN %s ELSE owner END, updated_at = %s WHERE op_id = %s AND state <> 'done'"
            " AND (%s::text[] IS NULL OR state = ANY(%s::text[])) AND (%s::integer IS NULL OR attempts = %s)"
            f" RETURNING {_INTENT_COLUMNS}",
            (
                *intent_move_values(
                    op_id, state, now, result=None if result is None else json_text(result), error=error, owner=owner
                ),
                None if expect is None else sorted(expect),
                None if expect is None else sorted(expect),
                attempts,
                attempts,
            ),
        ).fetchone()
        return None if row is None else self._intent(row)

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
        # recording an outcome twice records it once (a done intent keeps its first result); sending counts attempts
        return self._run(
            lambda conn: self._mark(conn, op_id, state, now, result=result, error=error),
            idempotent=state != "sending",
            single=True,
        )

    def _mark(
        self, conn: Conn, op_id: str, state: str, now: float, *, result: dict[str, Any] | None, error: str | None
    ) -> Intent:
        """``mark_intent`` on ``conn`` (in the caller's transaction, or a statement then a read in autocommit)."""
        written = self._set_intent(conn, op_id, state, now, result=result, error=error)
        if written is not None:
            return written
        return unmoved_intent(self._get_intent(conn, op_id), op_id, state)  # not written: absent, or done

    def done_and_linked(
        self, op_id: str, result: dict[str, Any], link: Link, *, fold: Fold | None = None
    ) -> tuple[Intent, bool]:
        """``Store.done_and_linked`` in one transaction: both are durable, or neither."""
        now = self.clock()
        return self._run(
            lambda conn: (
                self._mark(conn, op_id, "done", now, result=result, error=None),
                self._add_link(conn, link, fold),
            )
        )

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
        """Compare-and-set on the row read ``FOR UPDATE``: move to ``state`` only from ``expect`` (and
        ``attempts``); returns whether this caller won, with the row as it is now."""
        if state not in INTENT_STATES:
            raise ValueError(f"unknown intent state {state!r}; expected one of {', '.join(INTENT_STATES)}")
        expected = {expect} if isinstance(expect, str) else set(expect)
        now = self.clock()

        def move(conn: Conn) -> tuple[bool, Intent]:
            # the conditional UPDATE is the compare-and-set: it waits for a concurrent writer of the row and
            # re-checks the condition on the row that writer left, so one caller wins
            won = self._set_intent(
                conn, op_id, state, now, result=result, error=error, owner=owner, expect=expected, attempts=attempts
            )
            if won is not None:
                return True, won
            current = self._get_intent(conn, op_id)
            if current is None:
                raise NotFoundInStore(f"no intent with op_id {op_id!r}")
            return False, current

        return self._run(move, single=True)

    def forget_intent(self, op_id: str) -> bool:
        """Delete an intent whose effect was undone; False when there was none."""
        return self._run(
            lambda conn: conn.execute("DELETE FROM intents WHERE op_id = %s", (op_id,)).rowcount == 1, single=True
        )

    # ---- inbox and queue ---------------------------------------------------------------------------

    def _insert_job(
        self,
        conn: Conn,
        kind: str,
        payload: dict[str, Any],
        key: str | None,
        run_at: float,
        now: float,
        lock_key: str | None = None,
    ) -> int | None:
        insert = (
            "INSERT INTO jobs (kind, payload, key, state, attempt, run_at, created_at, updated_at, lock_key)"
            " VALUES (%s, %s::jsonb, %s, 'ready', 0, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id"
        )
        args: tuple[Any, ...] = (kind, json_text(payload), key, run_at, now, now, lock_key)
        if run_at <= now:  # a due job wakes the idle workers at commit (announced in the same statement)
            insert = f"WITH added AS ({insert}) SELECT id, {_ANNOUNCE.format(payload='added.id::text')} FROM added"
            args = (*args, self.channel)
        row = conn.execute(insert, args).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _active_job_with_key(conn: Conn, key: str) -> int | None:
        row = conn.execute("SELECT id FROM jobs WHERE key = %s AND state IN ('ready', 'leased')", (key,)).fetchone()
        return None if row is None else int(row[0])

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
        """Commit the inbox row and its job in one durable transaction; False for a duplicate delivery.

        ``job_kind`` None: the row only (an echo recognised at ingress), committed asynchronously as the other
        writes are: no work depends on it, and a redelivery of it is again an echo."""
        now = self.clock()

        def accept(conn: Conn) -> bool:
            cur = conn.execute(
                "INSERT INTO inbox (system, account, delivery_id, payload, received_at)"
                " VALUES (%s, %s, %s, %s::jsonb, %s) ON CONFLICT DO NOTHING",
                (system, account, delivery_id, json_text(payload), now),
            )
            if cur.rowcount != 1:
                return False
            if job_kind is None:
                return True
            job_id = self._insert_job(conn, job_kind, job_payload or {}, dedupe_key, now, now, lock_key)
            if job_id is None and dedupe_key is not None:
                job_id = self._active_job_with_key(conn, dedupe_key)
            conn.execute(
                "UPDATE inbox SET job_id = %s WHERE system = %s AND account = %s AND delivery_id = %s",
                (job_id, system, account, delivery_id),
            )
            return True

        return self._run(accept, durable=job_kind is not None)

    def inbox_row(self, system: str, delivery_id: str, *, account: str = "") -> InboxRow | None:
        """The inbox row of a delivery, or None."""
        row = self._read(
            lambda conn: conn.execute(
                "SELECT payload, job_id, received_at FROM inbox"
                " WHERE system = %s AND account = %s AND delivery_id = %s",
                (system, account, delivery_id),
            ).fetchone()
        )
        return None if row is None else InboxRow(system, account, delivery_id, row[0], row[1], row[2])

    def purge_inbox(self, older_than_seconds: float = INBOX_RETENTION_SECONDS, *, batch: int = PURGE_BATCH) -> int:
        """Delete inbox rows older than the retention, ``batch`` rows per transaction; returns how many."""
        cutoff = self.clock() - older_than_seconds
        return self._purge_in_batches(
            "DELETE FROM inbox WHERE ctid IN (SELECT ctid FROM inbox WHERE received_at < %s LIMIT %s)", cutoff, batch
        )

    def purge_jobs(self, older_than_seconds: float = JOB_RETENTION_SECONDS, *, batch: int = PURGE_BATCH) -> int:
        """Delete done jobs finished before the retention, ``batch`` per transaction (dead ones are kept)."""
        cutoff = self.clock() - older_than_seconds
        return self._purge_in_batches(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 'done' AND updated_at < %s"
            " AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.job_id = jobs.id OR d.replay_job_id = jobs.id)"
            " LIMIT %s)",
            cutoff,
            batch,
        )

    def _purge_in_batches(self, statement: str, cutoff: float, batch: int) -> int:
        """Run a ``DELETE ... LIMIT`` until it deletes less than a batch; each batch is its own transaction."""
        if batch < 1:
            raise ValueError("a purge batch holds at least one row")
        total = 0
        while True:
            deleted = int(self._run(lambda conn: conn.execute(statement, (cutoff, batch)).rowcount, single=True))
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
        due = now if run_at is None else run_at
        return self._run(lambda conn: self._insert_job(conn, kind, payload, key, due, now, lock_key), single=True)

    @staticmethod
    def _job(row: tuple[Any, ...]) -> Job:
        jid, kind, payload, key, state, attempt, run_at, lease_until, worker, error, created, updated, waits = row
        return Job(
            id=jid,
            kind=kind,
            payload=payload,
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

    def _bury(self, conn: Conn, job_id: int, error: str, now: float) -> None:
        """Mark a job dead and write its dead letter (inside the caller's transaction)."""
        row = conn.execute(
            "UPDATE jobs SET state = 'dead', lease_until = NULL, last_error = %s, updated_at = %s"
            " WHERE id = %s RETURNING kind, payload, key, attempt, lock_key",
            (error, now, job_id),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO dead_letters (job_id, kind, payload, key, attempt, error, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (job_id, row[0], Jsonb(row[1]), row[2], row[3], error, now),
        )
        if row[4] is not None:  # the entity is free: a job of it that waits may run now
            conn.execute(
                f"SELECT CASE WHEN {_ENTITY_WAITED.format(key='j.lock_key')} THEN {_ANNOUNCE_FREED} END"
                " FROM jobs AS j WHERE j.id = %s",
                (now, self.channel, job_id),
            )

    def claim(
        self,
        worker_id: str,
        *,
        lease_seconds: float,
        kinds: Iterable[str] | None = None,
        max_attempts: int | None = None,
    ) -> Job | None:
        """Lease the oldest due job with ``FOR UPDATE SKIP LOCKED`` and bump its attempt; a job whose entity another
        live lease holds is passed over (checked again under the entity's advisory lock)."""
        kind_list = None if kinds is None else list(kinds)
        if kind_list is not None and not kind_list:
            return None
        listener = self._listener
        # a job announced from here on wakes this thread's wait (``wait_for_work``)
        self._local.work_seen = None if listener is None else listener.bell.generation
        kind_filter = "" if kind_list is None else " AND kind = ANY(%s)"
        kind_args: tuple[Any, ...] = () if kind_list is None else (kind_list,)
        now = self.clock()
        due = (
            "state IN ('ready', 'leased') AND ((state = 'ready' AND run_at <= %s) OR (state = 'leased' AND"
            " lease_until <= %s))"
        )
        exhausted_where = "state = 'leased' AND lease_until <= %s AND attempt - waits >= %s"
        exhausted_args: tuple[Any, ...] = () if max_attempts is None else (now, max_attempts, *kind_args)
        exhausted_any = (
            "false" if max_attempts is None else f"EXISTS (SELECT 1 FROM jobs WHERE {exhausted_where}{kind_filter})"
        )

        live_elsewhere = _LIVE_LEASE_ON_KEY.format(key="j.lock_key", id="j.id")
        pick = (
            f"SELECT id, lock_key FROM jobs AS j WHERE {due} AND (lock_key IS NULL OR NOT {live_elsewhere})"
            f" AND NOT (id = ANY(%s)){kind_filter} ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
        )
        lease = "state = 'leased', attempt = attempt + 1, lease_until = %s, worker_id = %s, updated_at = %s"
        lease_args = (now + lease_seconds, worker_id, now)

        def quick(conn: Conn) -> tuple[bool, Job | None]:
            """One statement: lease the oldest due job when it has no entity lock and no exhausted lease waits to
            be buried; (whether the transaction below must decide, the job leased)."""
            row = conn.execute(
                f"WITH burying AS (SELECT {exhausted_any} AS pending), c AS ({pick}),"
                f" u AS (UPDATE jobs SET {lease} FROM c, burying WHERE jobs.id = c.id AND c.lock_key IS NULL"
                f" AND NOT burying.pending RETURNING {_QUALIFIED_JOB_COLUMNS})"
                " SELECT burying.pending, c.id, u.* FROM burying LEFT JOIN c ON true LEFT JOIN u ON true",
                (*exhausted_args, now, now, now, [], *kind_args, *lease_args),
            ).fetchone()
            if row is None or row[0]:
                return True, None
            if row[1] is not None and row[2] is None:  # an entity's job: its claim needs the entity's lock
                self._entity_claims = True
                return True, None
            return False, None if row[2] is None else self._job(row[2:])

        if not self._entity_claims:
            undecided, job = self._run(quick, single=True)
            if not undecided:
                return job

        def take(conn: Conn) -> Job | None:
            """In one transaction: bury exhausted leases, pick the oldest due job and take its entity's advisory
            lock (one statement), then lease it after re-reading, in a new snapshot, that no other live lease
            holds the entity (a conditional UPDATE)."""
            burying = max_attempts is not None
            passed: list[int] = []
            for _ in range(CLAIM_SCAN):
                row = conn.execute(
                    f"WITH burying AS (SELECT {exhausted_any if burying else 'false'} AS pending), c AS ({pick})"
                    " SELECT burying.pending, c.id, c.lock_key, CASE WHEN c.lock_key IS NULL THEN true"
                    f" ELSE pg_try_advisory_xact_lock({_ENTITY_LOCK.format(key='c.lock_key')}) END"
                    " FROM burying LEFT JOIN c ON true",
                    (*(exhausted_args if burying else ()), now, now, now, passed, *kind_args, self.schema),
                ).fetchone()
                if row is not None and row[0]:
                    exhausted = conn.execute(
                        f"SELECT id, attempt FROM jobs WHERE {exhausted_where}{kind_filter} FOR UPDATE SKIP LOCKED",
                        exhausted_args,  # waits spend no budget: only failed attempts count
                    ).fetchall()
                    for job_id, attempt in exhausted:
                        self._bury(conn, job_id, f"lease expired on attempt {attempt} of {max_attempts}", now)
                    burying = False
                    continue
                if row is None or row[1] is None:
                    return None
                job_id, lock_key, locked = row[1:]
                if not locked:
                    passed.append(job_id)
                    continue
                leased = conn.execute(
                    f"UPDATE jobs AS j SET {lease} WHERE j.id = %s AND (j.lock_key IS NULL OR NOT {live_elsewhere})"
                    f" RETURNING {_JOB_COLUMNS}",
                    (*lease_args, job_id, now),
                ).fetchone()
                if leased is None:  # the entity's job is running elsewhere (seen under its lock)
                    passed.append(job_id)
                    continue
                if lock_key is None:
                    self._entity_claims = False
                return self._job(leased)
            return None

        return self._run(take)

    def heartbeat(self, job_id: int, attempt: int, lease_seconds: float) -> bool:
        """Extend the lease of the caller's attempt; False when it is stale."""
        now = self.clock()
        return self._run(
            lambda conn: (
                conn.execute(
                    "UPDATE jobs SET lease_until = %s, updated_at = %s"
                    " WHERE id = %s AND attempt = %s AND state = 'leased'",
                    (now + lease_seconds, now, job_id, attempt),
                ).rowcount
                == 1
            ),
            single=True,
            idempotent=True,  # extending a lease to the same end twice: the same lease, the same answer
        )

    def hold_lease(self, job_id: int, attempt: int, lease_seconds: float) -> bool:
        """True when the caller's attempt still holds a live lease (extended when less than half of it is left);
        False otherwise. One statement: far from expiry its UPDATE matches no row, so it writes nothing."""
        now = self.clock()
        renew_below = now + lease_seconds / 2

        def hold(conn: Conn) -> bool:
            row = conn.execute(
                "WITH held AS (SELECT lease_until FROM jobs"
                "  WHERE id = %s AND attempt = %s AND state = 'leased' AND lease_until > %s),"
                " renewed AS (UPDATE jobs SET lease_until = %s, updated_at = %s"
                "  WHERE id = %s AND attempt = %s AND state = 'leased' AND lease_until > %s AND lease_until < %s"
                "  RETURNING 1)"
                " SELECT CASE WHEN (SELECT lease_until FROM held) >= %s THEN true"
                " ELSE EXISTS (SELECT 1 FROM renewed) END",
                (job_id, attempt, now, now + lease_seconds, now, job_id, attempt, now, renew_below, renew_below),
            ).fetchone()
            return bool(row is not None and row[0])

        # a second try finds the lease it extended still live: the same answer
        return self._run(hold, single=True, idempotent=True)

    def _settle(self, conn: Conn, statement: str, args: tuple[Any, ...]) -> bool:
        """Run a fenced UPDATE ... RETURNING lock_key, in one statement that wakes the workers (at commit) when it
        freed an entity a ready job waits for (``_ENTITY_WAITED``), or made the job itself due again at once."""
        row = conn.execute(
            f"WITH settled AS ({statement} RETURNING lock_key, state = 'ready' AND run_at <= updated_at AS due)"
            f" SELECT lock_key, CASE WHEN due OR {_ENTITY_WAITED.format(key='settled.lock_key')} THEN {_ANNOUNCE_FREED}"
            " END"
            " FROM settled",
            (*args, self.clock(), self.channel),
        ).fetchone()
        return row is not None

    def complete(self, job_id: int, attempt: int, *, audit: Sequence[AuditRow] = ()) -> bool:
        """Mark the caller's attempt done, with its ``audit`` rows (one transaction); False when it is stale."""
        now = self.clock()
        rows = [audit_values(now, row) for row in audit]

        def settle(conn: Conn) -> bool:
            done = self._settle(
                conn,
                "UPDATE jobs SET state = 'done', lease_until = NULL, updated_at = %s"
                " WHERE id = %s AND attempt = %s AND state = 'leased'",
                (now, job_id, attempt),
            )
            if done and rows:
                conn.cursor().executemany(
                    f"INSERT INTO audit ({_AUDIT_COLUMNS.removeprefix('id, ')})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
                    rows,
                )
            return done

        return self._run(settle, single=not rows)

    def retry_later(self, job_id: int, attempt: int, *, run_at: float, error: str, waiting: bool = False) -> bool:
        """Return the caller's attempt to ready, due at ``run_at`` (``waiting``: counted in ``waits``, not as a
        failure); False when it is stale."""
        now = self.clock()
        return self._run(
            lambda conn: self._settle(
                conn,
                "UPDATE jobs SET state = 'ready', run_at = %s, lease_until = NULL, worker_id = NULL,"
                " last_error = %s, updated_at = %s, waits = waits + %s"
                " WHERE id = %s AND attempt = %s AND state = 'leased'",
                (run_at, redact_text(error), now, 1 if waiting else 0, job_id, attempt),
            ),
            single=True,
        )

    def fail(self, job_id: int, attempt: int, *, error: str, then: FollowUp | None = None) -> bool:
        """Mark the job dead with a dead letter (and queue ``then`` in the same transaction); False when the
        caller's attempt is stale."""
        now = self.clock()

        def bury(conn: Conn) -> bool:
            current = conn.execute(
                "SELECT 1 FROM jobs WHERE id = %s AND attempt = %s AND state = 'leased' FOR UPDATE", (job_id, attempt)
            ).fetchone()
            if current is None:
                return False
            self._bury(conn, job_id, redact_text(error), now)
            if then is not None:
                self._insert_job(conn, then.kind, then.payload, then.key, now, now, then.lock_key)
            return True

        return self._run(bury)

    def job(self, job_id: int) -> Job | None:
        """One job by id, or None."""
        row = self._read(
            lambda conn: conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,)).fetchone()
        )
        return None if row is None else self._job(row)

    def queue_depth(self) -> dict[str, int]:
        """Jobs per state, every state present."""
        depth = dict.fromkeys(JOB_STATES, 0)
        rows = self._read(lambda conn: conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        for state, count in rows:
            depth[state] = int(count)
        return depth

    def oldest_ready_at(self, now: float) -> float | None:
        """The earliest ``run_at`` of a due ready job (the ``jobs_due`` index answers it), or None."""
        row = self._read(
            lambda conn: conn.execute(
                "SELECT min(run_at) FROM jobs WHERE state = 'ready' AND run_at <= %s", (now,)
            ).fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    # ---- dead letters ------------------------------------------------------------------------------

    @staticmethod
    def _letter(row: tuple[Any, ...]) -> DeadLetter:
        lid, job_id, kind, payload, key, attempt, error, created, replayed_at, replay_job_id = row
        return DeadLetter(lid, job_id, kind, payload, key, attempt, error, created, replayed_at, replay_job_id)

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        rows = self._read(
            lambda conn: conn.execute(f"SELECT {_LETTER_COLUMNS} FROM dead_letters ORDER BY id").fetchall()
        )
        return [self._letter(r) for r in rows]

    def dead_letter(self, letter_id: int) -> DeadLetter | None:
        """One dead letter, or None."""
        row = self._read(
            lambda conn: conn.execute(
                f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE id = %s", (letter_id,)
            ).fetchone()
        )
        return None if row is None else self._letter(row)

    def replay_dead_letter(self, letter_id: int) -> int:
        """Queue the letter's job again and mark the letter replayed; refuses a second replay (the letter is read
        ``FOR UPDATE``, so two admins replaying at once queue it once)."""
        now = self.clock()

        def replay(conn: Conn) -> int:
            row = conn.execute(
                f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE id = %s FOR UPDATE", (letter_id,)
            ).fetchone()
            if row is None:
                raise NotFoundInStore(f"no dead letter with id {letter_id}")
            letter = self._letter(row)
            if letter.replayed_at is not None:
                raise AlreadyReplayed(
                    f"dead letter {letter_id} was replayed already (as job {letter.replay_job_id}); "
                    "replaying it again would repeat its work"
                )
            lock = conn.execute("SELECT lock_key FROM jobs WHERE id = %s", (letter.job_id,)).fetchone()
            lock_key = None if lock is None else lock[0]
            job_id = self._insert_job(conn, letter.kind, letter.payload, letter.key, now, now, lock_key)
            if job_id is None and letter.key is not None:
                job_id = self._active_job_with_key(conn, letter.key)
            if job_id is None:  # pragma: no cover - a key conflict always leaves an active job to find
                raise StoreError(f"could not queue dead letter {letter_id} again")
            conn.execute(
                "UPDATE dead_letters SET replayed_at = %s, replay_job_id = %s WHERE id = %s", (now, job_id, letter_id)
            )
            return job_id

        return self._run(replay)

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
        args = audit_values(
            self.clock(),
            AuditRow(actor, action, target, result, policy, origin_event, ticket, issue_key, details or {}),
        )

        def write(conn: Conn) -> int:
            row = conn.execute(
                f"INSERT INTO audit ({_AUDIT_COLUMNS.removeprefix('id, ')})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb) RETURNING id",
                args,
            ).fetchone()
            assert row is not None
            return int(row[0])

        return self._run(write, single=True)

    def audit_entries(self, *, ticket: Ref | None = None, issue_key: str | None = None) -> list[AuditEntry]:
        """Audit rows in the order written, filtered by ticket and/or issue key."""
        clauses: list[str] = []
        args: list[Any] = []
        if ticket is not None:
            clauses.append("ticket = %s")
            args.append(str(ticket))
        if issue_key is not None:
            clauses.append("issue_key = %s")
            args.append(issue_key)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            lambda conn: conn.execute(f"SELECT {_AUDIT_COLUMNS} FROM audit {where} ORDER BY id", args).fetchall()
        )
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
                details=r[10],
            )
            for r in rows
        ]

    # ---- snapshots and checkpoints -----------------------------------------------------------------

    def put_snapshot(self, kind: str, ref: str, data: dict[str, Any], *, linked_ticket: Ref | None = None) -> None:
        """Save (replace) the snapshot of a remote record (dropping the aggregates ``linked_ticket`` is in); inside
        ``snapshots_together``, with the block's others when it ends."""
        snapshot = (kind, ref, json_text(redact_value(data)), self.clock(), linked_ticket)
        pending: list[_Snapshot] | None = getattr(self._local, "snapshots", None)
        if pending is not None:
            pending.append(snapshot)
            return
        self._save_snapshots([snapshot])

    def _save_snapshots(self, snapshots: list[_Snapshot]) -> None:
        if not snapshots:
            return

        def run(conn: Conn) -> None:
            for kind, ref, text, now, linked_ticket in snapshots:
                conn.execute(
                    "INSERT INTO snapshots (kind, ref, data, updated_at) VALUES (%s, %s, %s::jsonb, %s)"
                    " ON CONFLICT (kind, ref) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                    (kind, ref, text, now),
                )
                if linked_ticket is not None:
                    conn.execute(
                        "INSERT INTO aggregates (issue, seq, data, last_at, updated_at)"
                        " SELECT issue, 1, NULL, NULL, %s FROM links WHERE ticket = %s ORDER BY issue"
                        " ON CONFLICT (issue) DO UPDATE SET seq = aggregates.seq + 1, data = NULL,"
                        " updated_at = excluded.updated_at",
                        (now, str(linked_ticket)),
                    )

        one = len(snapshots) == 1 and snapshots[0][4] is None
        self._run(run, single=one, idempotent=True)  # upserts: the same outcome run twice

    def snapshots_together(self) -> AbstractContextManager[None]:
        """Inside (this thread only): snapshots are kept and written in one transaction when the block ends
        (``Store.snapshots_together``)."""
        return kept_together(self._local, self._save_snapshots)

    def get_snapshot(self, kind: str, ref: str) -> dict[str, Any] | None:
        """The saved snapshot of a remote record (or one put in this thread's ``snapshots_together`` block), or None."""
        pending: list[_Snapshot] | None = getattr(self._local, "snapshots", None)
        for k, r, text, _, _ in reversed(pending or ()):
            if k == kind and r == ref:
                return dict(json.loads(text))
        row = self._read(
            lambda conn: conn.execute("SELECT data FROM snapshots WHERE kind = %s AND ref = %s", (kind, ref)).fetchone()
        )
        return None if row is None else dict(row[0])

    def purge_snapshots(self, kind: str, older_than_seconds: float) -> int:
        """Delete snapshots of ``kind`` older than the given age; returns how many."""
        cutoff = self.clock() - older_than_seconds
        return self._run(
            lambda conn: (
                conn.execute("DELETE FROM snapshots WHERE kind = %s AND updated_at < %s", (kind, cutoff)).rowcount
            ),
            single=True,
        )

    def get_checkpoint(self, system: str, stream: str) -> dict[str, Any] | None:
        """The saved cursor mapping of a stream, or None."""
        row = self._read(
            lambda conn: conn.execute(
                "SELECT state FROM checkpoints WHERE system = %s AND stream = %s", (system, stream)
            ).fetchone()
        )
        return None if row is None else dict(row[0])

    def set_checkpoint(self, system: str, stream: str, state: dict[str, Any]) -> None:
        """Save (replace) the cursor mapping of a stream."""
        now = self.clock()
        text = json_text(state)
        self._run(
            lambda conn: conn.execute(
                "INSERT INTO checkpoints (system, stream, state, updated_at) VALUES (%s, %s, %s::jsonb, %s)"
                " ON CONFLICT (system, stream) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (system, stream, text, now),
            ),
            single=True,
            idempotent=True,  # an upsert of the same state
        )


__all__ = [
    "MIGRATIONS_TABLE",
    "PostgresStore",
    "conninfo_for",
    "inspect_database",
    "is_postgres_url",
    "lock_id",
    "migrations",
]
