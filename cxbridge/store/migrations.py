"""Numbered schema migrations for the SQLite store, each applied once, in its own transaction, and recorded.

In the manner of sqlite-utils' migrations: a migration is a decorated function that receives the connection
and runs its statements with ``conn.execute`` (never ``executescript``, which would commit half-way). The
runner takes the write lock with ``BEGIN IMMEDIATE``, checks the record again under the lock (so two
processes opening the same file at once apply each migration exactly once), runs the function, records its
number and name in ``_cxbridge_migrations``, and commits; any error rolls the whole migration back.
"""

# SQL text here is assembled only from module constants and '?' placeholders; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from .base import StoreError

MIGRATIONS_TABLE = "_cxbridge_migrations"

MigrationFn = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class Migration:
    """One schema step: its number (the schema version it produces), its name and the function."""

    version: int
    name: str
    fn: MigrationFn


class Migrations:
    """An ordered set of numbered migrations; ``@migrations(3)`` registers the function as version 3."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._items: dict[int, Migration] = {}

    def __call__(self, version: int) -> Callable[[MigrationFn], MigrationFn]:
        """Register the decorated function as migration ``version`` (numbers are unique and positive)."""
        if version < 1:
            raise ValueError("migration numbers start at 1")
        if version in self._items:
            raise ValueError(f"migration {version} is registered twice")

        def register(fn: MigrationFn) -> MigrationFn:
            self._items[version] = Migration(version, fn.__name__, fn)
            return fn

        return register

    @property
    def latest(self) -> int:
        """The highest registered version (0 when there is none)."""
        return max(self._items, default=0)

    def all(self) -> list[Migration]:
        """Every registered migration, in order."""
        return [self._items[v] for v in sorted(self._items)]

    def applied(self, conn: sqlite3.Connection) -> dict[int, str]:
        """The migrations recorded in the database: version -> name."""
        _ensure_table(conn)
        rows = conn.execute(
            f"SELECT version, name FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY version",
            (self.name,),
        ).fetchall()
        return {int(v): str(n) for v, n in rows}

    def pending(self, conn: sqlite3.Connection) -> list[Migration]:
        """The registered migrations the database has not had yet."""
        done = self.applied(conn)
        return [m for m in self.all() if m.version not in done]

    def apply(self, conn: sqlite3.Connection, *, clock: Callable[[], float] = time.time) -> list[Migration]:
        """Apply each pending migration in its own ``BEGIN IMMEDIATE`` transaction; returns those applied. An
        up-to-date database is only read.

        ``conn`` must be in autocommit mode (``isolation_level=None``). Raises ``StoreError`` when the
        database records a version this code does not know (it was written by a newer cxbridge).
        """
        if conn.in_transaction:
            raise StoreError("migrations must start outside a transaction")
        _ensure_table(conn)
        known = set(self._items)
        recorded = self.applied(conn)
        unknown = sorted(set(recorded) - known)
        if unknown:
            raise StoreError(
                f"the database has schema version {unknown[-1]} of {self.name!r}, newer than this cxbridge "
                f"knows ({self.latest}); upgrade cxbridge"
            )
        done: list[Migration] = []
        # Only what the read found missing takes the write lock (re-checked inside: another process may apply it
        # meanwhile): opening an up-to-date store writes nothing, so it never queues behind a busy writer.
        for migration in [m for m in self.all() if m.version not in recorded]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                already = conn.execute(
                    f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE migration_set = ? AND version = ?",
                    (self.name, migration.version),
                ).fetchone()
                if already is None:
                    migration.fn(conn)
                    conn.execute(
                        f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, version, name, applied_at)"
                        " VALUES (?, ?, ?, ?)",
                        (self.name, migration.version, migration.name, clock()),
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if already is None:
                done.append(migration)
        return done

    def version(self, conn: sqlite3.Connection) -> int:
        """The schema version the database is at (0 before the first migration)."""
        return max(self.applied(conn), default=0)


def _ensure_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
        " migration_set TEXT NOT NULL,"
        " version INTEGER NOT NULL,"
        " name TEXT NOT NULL,"
        " applied_at REAL NOT NULL,"
        " PRIMARY KEY (migration_set, version))"
    )


migrations = Migrations("cxbridge")
"""The store's own schema history. Append new steps with the next number; never edit an applied one."""


@migrations(1)
def m001_initial(conn: sqlite3.Connection) -> None:
    """Links, intents, inbox, jobs, dead letters, audit and checkpoints."""
    statements = [
        """CREATE TABLE links (
            ticket TEXT NOT NULL,
            issue TEXT NOT NULL,
            issue_key TEXT NOT NULL,
            customer TEXT,
            linked_by TEXT,
            linked_at REAL NOT NULL,
            origin_event TEXT,
            PRIMARY KEY (ticket, issue)
        )""",
        "CREATE INDEX links_by_issue ON links (issue)",
        "CREATE INDEX links_by_issue_key ON links (issue_key)",
        """CREATE TABLE intents (
            op_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            business_key TEXT NOT NULL,
            state TEXT NOT NULL
                CHECK (state IN ('pending', 'sending', 'done', 'ambiguous', 'failed')),
            payload TEXT NOT NULL,
            result TEXT,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            sent_at REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX intents_by_business_key ON intents (business_key)",
        "CREATE INDEX intents_by_state ON intents (state, updated_at)",
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            key TEXT,
            state TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'done', 'dead')),
            attempt INTEGER NOT NULL DEFAULT 0,
            run_at REAL NOT NULL,
            lease_until REAL,
            worker_id TEXT,
            last_error TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            CHECK ((state = 'leased') = (lease_until IS NOT NULL))
        )""",
        "CREATE INDEX jobs_ready ON jobs (state, run_at, id)",
        "CREATE INDEX jobs_leased ON jobs (state, lease_until)",
        # a key names work that must not be queued twice while it is waiting or running
        "CREATE UNIQUE INDEX jobs_active_key ON jobs (key) WHERE key IS NOT NULL AND state IN ('ready', 'leased')",
        """CREATE TABLE inbox (
            system TEXT NOT NULL,
            account TEXT NOT NULL DEFAULT '',
            delivery_id TEXT NOT NULL,
            payload TEXT NOT NULL,
            job_id INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
            received_at REAL NOT NULL,
            PRIMARY KEY (system, account, delivery_id)
        )""",
        "CREATE INDEX inbox_by_received_at ON inbox (received_at)",
        """CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id INTEGER NOT NULL REFERENCES jobs (id),
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            key TEXT,
            attempt INTEGER NOT NULL,
            error TEXT NOT NULL,
            created_at REAL NOT NULL,
            replayed_at REAL,
            replay_job_id INTEGER REFERENCES jobs (id)
        )""",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            result TEXT NOT NULL,
            policy TEXT,
            origin_event TEXT,
            ticket TEXT,
            issue_key TEXT,
            details TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX audit_by_ticket ON audit (ticket)",
        "CREATE INDEX audit_by_issue_key ON audit (issue_key)",
        """CREATE TABLE checkpoints (
            system TEXT NOT NULL,
            stream TEXT NOT NULL,
            state TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (system, stream)
        )""",
    ]
    for statement in statements:
        conn.execute(statement)


@migrations(2)
def m002_locks_and_snapshots(conn: sqlite3.Connection) -> None:
    """Per-entity job locks (one running job per entity) and snapshots of remote records."""
    conn.execute("ALTER TABLE jobs ADD COLUMN lock_key TEXT")
    conn.execute("CREATE INDEX jobs_by_lock_key ON jobs (lock_key, state) WHERE lock_key IS NOT NULL")
    conn.execute(
        """CREATE TABLE snapshots (
            kind TEXT NOT NULL,
            ref TEXT NOT NULL,
            data TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (kind, ref)
        )"""
    )


@migrations(3)
def m003_intent_owner_and_job_waits(conn: sqlite3.Connection) -> None:
    """The runner that holds a ``sending`` intent, and the re-queues of a job that waited without failing."""
    conn.execute("ALTER TABLE intents ADD COLUMN owner TEXT")
    conn.execute("ALTER TABLE jobs ADD COLUMN waits INTEGER NOT NULL DEFAULT 0")


@migrations(4)
def m004_job_counts_and_purge_indexes(conn: sqlite3.Connection) -> None:
    """Jobs per state kept by triggers (``queue_depth`` reads 4 rows instead of scanning the jobs table), and the
    indexes the batched purges need: done jobs by finish time, inbox rows by job (the foreign key's SET NULL)."""
    conn.execute("CREATE TABLE job_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    conn.execute(
        "INSERT INTO job_counts (state, n) SELECT s.state, (SELECT count(*) FROM jobs WHERE jobs.state = s.state)"
        " FROM (SELECT 'ready' AS state UNION ALL SELECT 'leased' UNION ALL SELECT 'done' UNION ALL SELECT 'dead') s"
    )
    conn.execute(
        "CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN"
        " UPDATE job_counts SET n = n + 1 WHERE state = NEW.state; END"
    )
    conn.execute(
        "CREATE TRIGGER job_counts_update AFTER UPDATE OF state ON jobs WHEN OLD.state <> NEW.state BEGIN"
        " UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;"
        " UPDATE job_counts SET n = n + 1 WHERE state = NEW.state; END"
    )
    conn.execute(
        "CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN"
        " UPDATE job_counts SET n = n - 1 WHERE state = OLD.state; END"
    )
    conn.execute("CREATE INDEX jobs_done ON jobs (updated_at) WHERE state = 'done'")
    conn.execute("CREATE INDEX inbox_job ON inbox (job_id) WHERE job_id IS NOT NULL")
    conn.execute("CREATE INDEX inbox_received ON inbox (received_at)")


@migrations(5)
def m005_issue_aggregates(conn: sqlite3.Connection) -> None:
    """Running aggregates of issues' links (the customer impact summed up): one row per issue, its change counter
    ``seq`` for compare-and-set, the latest ``linked_at`` among its links (a link folded in comes last)."""
    conn.execute(
        """CREATE TABLE aggregates (
            issue TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            data TEXT,
            last_at REAL,
            updated_at REAL NOT NULL
        )"""
    )
