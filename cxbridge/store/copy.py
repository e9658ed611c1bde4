"""``cxbridge store copy``: move an installation's SQLite store into a PostgreSQL store, losing nothing.

Everything is copied with its ids, states and times: links, intents, the inbox (so a redelivery of a webhook
accepted before the move is still a duplicate), jobs, dead letters (replayed or not), audit, snapshots and
checkpoints. The SQLite file is read inside one ``BEGIN IMMEDIATE`` transaction (a consistent snapshot: any
writer still running waits), and the target is written in one transaction: a failed copy leaves the target as
it was. The target must be empty; its identity sequences continue after the copied ids. The issues' running
aggregates are not copied: each is recomputed from the copied links on its issue's next refresh.

A job that was leased in the source belonged to a worker of the old installation: it is copied as ready (with
its attempt count), so it runs once on the new store; a ``sending`` intent keeps its owner, so the intent protocol
reconciles it by its marker before anything is written again.
"""

# SQL text here is assembled only from module constants and placeholders; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .base import StoreError
from .migrations import migrations
from .sqlite import SQLiteStore

COPIED: tuple[tuple[str, tuple[str, ...], frozenset[str], str], ...] = (
    # table, columns, JSON columns, SQLite order
    (
        "links",
        ("ticket", "issue", "issue_key", "customer", "linked_by", "linked_at", "origin_event"),
        frozenset(),
        "linked_at, rowid",
    ),
    (
        "intents",
        (
            "op_id",
            "kind",
            "business_key",
            "state",
            "payload",
            "result",
            "error",
            "attempts",
            "sent_at",
            "created_at",
            "updated_at",
            "owner",
        ),
        frozenset({"payload", "result"}),
        "created_at, op_id",
    ),
    (
        "jobs",
        (
            "id",
            "kind",
            "payload",
            "key",
            "state",
            "attempt",
            "run_at",
            "lease_until",
            "worker_id",
            "last_error",
            "created_at",
            "updated_at",
            "lock_key",
            "waits",
        ),
        frozenset({"payload"}),
        "id",
    ),
    (
        "inbox",
        ("system", "account", "delivery_id", "payload", "job_id", "received_at"),
        frozenset({"payload"}),
        "received_at, rowid",
    ),
    (
        "dead_letters",
        (
            "id",
            "job_id",
            "kind",
            "payload",
            "key",
            "attempt",
            "error",
            "created_at",
            "replayed_at",
            "replay_job_id",
        ),
        frozenset({"payload"}),
        "id",
    ),
    (
        "audit",
        ("id", "at", "actor", "action", "target", "result", "policy", "origin_event", "ticket", "issue_key", "details"),
        frozenset({"details"}),
        "id",
    ),
    ("snapshots", ("kind", "ref", "data", "updated_at"), frozenset({"data"}), "kind, ref"),
    ("checkpoints", ("system", "stream", "state", "updated_at"), frozenset({"state"}), "system, stream"),
)
"""What is copied, in an order the foreign keys accept (jobs before the inbox and the dead letters)."""

IDENTITIES = ("jobs", "dead_letters", "audit")


@dataclass
class CopyReport:
    """How many rows of each table were copied, and how many leased jobs were handed back as ready."""

    rows: dict[str, int] = field(default_factory=dict)
    released: int = 0

    def line(self) -> str:
        """One line for the command's output."""
        counts = ", ".join(f"{n} {table.replace('_', ' ')}" for table, n in self.rows.items())
        released = f"; {self.released} leased job(s) queued again as ready" if self.released else ""
        return f"copied {counts}{released}"


def copy_sqlite_to_postgres(source: Path, target: str, *, password: str | None = None) -> CopyReport:
    """Copy the SQLite store at ``source`` into the empty PostgreSQL store at ``target`` (created and migrated if
    needed); ``StoreError`` when the source is not a current cxbridge store or the target is not empty."""
    from .postgres import PostgresStore

    if not source.is_file():
        raise StoreError(f"the store {source} does not exist")
    SQLiteStore(source).close()  # migrates the source to this version's schema: both sides then match
    pg = PostgresStore(target, password=password)
    try:
        return _copy(source, pg)
    finally:
        pg.close()


def _copy(source: Path, pg: object) -> CopyReport:
    from .postgres import PostgresStore

    assert isinstance(pg, PostgresStore)
    report = CopyReport()
    conn = sqlite3.connect(source, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")  # one consistent snapshot; a writer still running waits until the end
        version = migrations.version(conn)
        if version != migrations.latest:  # pragma: no cover - opened (and so migrated) just before
            raise StoreError(f"the store {source} is at schema version {version}, not {migrations.latest}")

        def write(pgconn: object) -> None:
            import psycopg

            assert isinstance(pgconn, psycopg.Connection)
            for table, _, _, _ in COPIED:
                found = pgconn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()
                if found and found[0]:
                    raise StoreError(
                        f"the target store {pg.shown} is not empty (it has {table}): copy into a new database"
                    )
            for table, columns, json_columns, order in COPIED:
                rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}").fetchall()
                if table == "jobs":
                    leased = columns.index("state")
                    report.released = sum(1 for r in rows if r[leased] == "leased")
                    rows = [_release(columns, r) if r[leased] == "leased" else r for r in rows]
                marks = ", ".join("%s::jsonb" if c in json_columns else "%s" for c in columns)
                overriding = " OVERRIDING SYSTEM VALUE" if table in IDENTITIES else ""
                with pgconn.cursor() as cur:
                    cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}){overriding} VALUES ({marks})", rows)
                report.rows[table] = len(rows)
            for table in IDENTITIES:
                pgconn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(max(id), 0) + 1, false)"
                    f" FROM {table}"
                )

        pg._run(write, durable=True)
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # nothing was changed in the source
        conn.close()
    return report


def _release(columns: tuple[str, ...], row: tuple[object, ...]) -> tuple[object, ...]:
    """A job leased by a worker of the old installation, made ready (its attempt count kept)."""
    values = dict(zip(columns, row, strict=True))
    values.update(state="ready", lease_until=None, worker_id=None)
    return tuple(values[c] for c in columns)
