"""The escalation's store transactions: the fewest its recovery points need, each all durable or none of it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from cxbridge.store import SQLiteStore


def test_a_claim_that_finds_nothing_takes_no_write_lock(tmp_path: Path) -> None:
    """With no job due, a claim is a read: it answers None while another process holds the write lock (it used to
    wait for the lock and make an empty commit); with a job due it claims it as before."""
    path = tmp_path / "cxbridge.db"
    with SQLiteStore(path) as store:
        store.enqueue("event", {"n": 1}, run_at=store.clock() + 3600)  # queued, not due
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")  # another process writing
            with store.write_budget(0.2):
                assert store.claim("w1", lease_seconds=30) is None
            other.execute("ROLLBACK")
        store.enqueue("event", {"n": 2})
        job = store.claim("w1", lease_seconds=30)
        assert job is not None
        assert job.payload == {"n": 2}
        assert store.claim("w2", lease_seconds=30) is None
