"""The store contract suite (``cxbridge.testing.contracts.StoreContract``) on both backends, unchanged.

Each backend gives the suite's hooks for the batch properties: how to line deliveries up into one batch (SQLite's
group commit), how to make the database refuse one delivery, and how to make its commits fail.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from cxbridge.store import SQLiteStore, Store
from cxbridge.store.sqlite import writer_lock
from cxbridge.testing.contracts import StoreContract


def _sqlite(location: str, script: str) -> None:
    with closing(sqlite3.connect(location, isolation_level=None)) as conn:
        conn.executescript(script)


class TestSQLiteStore(StoreContract):
    """The suite on a SQLite file."""

    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return str(tmp_path / "cxbridge.db")

    @contextmanager
    def lined_up(self, store: Store, count: int) -> Iterator[None]:
        """Hold this process's write lock until ``count`` deliveries wait for their batch: one batch takes them."""
        assert isinstance(store, SQLiteStore)
        lock = writer_lock(store.path)
        lock.acquire()
        try:
            yield
            deadline = time.monotonic() + 30
            while store.group_commit.pending() < count and time.monotonic() < deadline:
                time.sleep(0.002)
        finally:
            lock.release()

    def refuse_delivery(self, location: Any, delivery_id: str) -> None:
        _sqlite(
            location,
            "CREATE TRIGGER refuse_one BEFORE INSERT ON inbox"
            f" WHEN NEW.delivery_id = '{delivery_id}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        )

    def refuse_commits(self, location: Any) -> None:
        # a deferred foreign key broken by every inbox insert: SQLite checks it at COMMIT, which then fails
        _sqlite(
            location,
            "CREATE TABLE refused_parent (id INTEGER PRIMARY KEY);"
            " CREATE TABLE refused_child (parent INTEGER REFERENCES refused_parent (id) DEFERRABLE INITIALLY DEFERRED);"
            " CREATE TRIGGER refuse_commit AFTER INSERT ON inbox BEGIN INSERT INTO refused_child VALUES (1); END;",
        )


def _postgres(location: str, script: str) -> None:
    import psycopg

    with psycopg.connect(location, autocommit=True) as conn:
        conn.execute(script.encode())


class TestPostgresStore(StoreContract):
    """The suite on a PostgreSQL schema of this run's own database."""

    @pytest.fixture
    def location(self, pg_url: str) -> str:
        return pg_url

    def refuse_delivery(self, location: Any, delivery_id: str) -> None:
        _postgres(
            location,
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;"
            " CREATE TRIGGER refuse_one BEFORE INSERT ON inbox FOR EACH ROW"
            f" WHEN (NEW.delivery_id = '{delivery_id}') EXECUTE FUNCTION refuse();",
        )

    def refuse_commits(self, location: Any) -> None:
        # a deferred constraint trigger runs at COMMIT, which then fails
        _postgres(
            location,
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'commit refused by the test'; END $$;"
            " CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON inbox DEFERRABLE INITIALLY DEFERRED"
            " FOR EACH ROW EXECUTE FUNCTION refuse();",
        )
