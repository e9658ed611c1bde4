"""The escalation's store transactions: the fewest its recovery points need, each all durable or none of it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from cxbridge.models import Link, Ref
from cxbridge.store import SQLiteStore, open_store

TICKET = Ref("helpdesk", "ticket", "4211")
TICKET2 = Ref("helpdesk", "ticket", "4212")
ISSUE = Ref("tracker", "issue", "10042")


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


class Refused(Exception):
    """Raised inside the transaction, after the intent's UPDATE: the transaction must not commit."""


def test_done_and_linked_is_one_transaction(store_location: str) -> None:
    """A failure after the intent is marked done and before the link is stored leaves neither: the intent stays
    ``sending`` (a rerun reconciles the create by its marker) and no link is kept."""
    with open_store(store_location) as store:
        store.begin_sending("op-c", "tracker.create", business_key="bk", payload={}, owner="me")
        store.add_link(Link(TICKET2, ISSUE, "ENG-7"))
        assert store.put_aggregate(ISSUE, {"n": 1}, seq=store.get_aggregate(ISSUE).seq)

        def fold(data: dict[str, Any]) -> dict[str, Any] | None:
            raise Refused("the fold failed")

        with pytest.raises(Refused):
            store.done_and_linked("op-c", {"key": "ENG-7"}, Link(TICKET, ISSUE, "ENG-7"), fold=fold)
        intent = store.get_intent("op-c")
        assert intent is not None
        assert (intent.state, intent.result) == ("sending", None)
        assert [str(link.ticket) for link in store.links_for_issue(ISSUE)] == [str(TICKET2)]
        assert store.get_aggregate(ISSUE).data == {"n": 1}
