"""Group commit on the SQLite store: deliveries that arrive together share one durable transaction.

The contract suite (``tests/test_store_contract.py``) states the properties every store keeps with many callers at
once; these tests line the callers up (this process's write lock held until all of them wait) so that they really
share one batch, and check what only a batching store can get wrong: the batch count, a transaction rolled back as
a whole by one delivery, a caller's own wait budget, and the leader's.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from cxbridge.store import SQLiteStore, StoreBusy
from cxbridge.store.sqlite import writer_lock


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "cxbridge.db")
    yield s
    s.close()


def _accept(store: SQLiteStore, delivery_id: str) -> bool:
    return store.accept_delivery("helpdesk", delivery_id, payload={"id": delivery_id}, job_kind="k", job_payload={})


@contextmanager
def _lock_held(store: SQLiteStore) -> Iterator[None]:
    lock = writer_lock(store.path)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the callers never lined up"
        time.sleep(0.002)


def _together(store: SQLiteStore, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls from their own threads while the write lock is held, release it once all wait: one batch."""
    outcomes: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        try:
            outcomes[n] = calls[n]()
        except Exception as exc:
            outcomes[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    with _lock_held(store):
        for t in threads:
            t.start()
        _wait_until(lambda: store.group_commit.pending() == len(calls))
    for t in threads:
        t.join(30)
    return outcomes


def test_deliveries_waiting_together_share_one_transaction(store: SQLiteStore) -> None:
    """Ten deliveries that wait together are one batch (one durable commit); each caller gets its own answer."""
    before = store.group_commit.stats()
    ids = [f"d{n}" for n in range(9)] + ["d0"]
    outcomes = _together(store, [lambda d=d: _accept(store, d) for d in ids])  # type: ignore[misc]
    assert outcomes == [True] * 9 + [False]
    after = store.group_commit.stats()
    assert (after.batches - before.batches, after.requests - before.requests, after.largest) == (1, 10, 10)
    assert store.queue_depth()["ready"] == 9


def test_a_delivery_that_rolls_the_whole_transaction_back_fails_the_batch(store: SQLiteStore) -> None:
    """A database error that ends the transaction itself (here a trigger's RAISE(ROLLBACK)) takes the batch's
    other rows with it: every caller of that batch is told (5xx, the vendor retries), none is told True."""
    with closing(sqlite3.connect(store.path, isolation_level=None)) as conn:
        conn.execute(
            "CREATE TRIGGER roll_back BEFORE INSERT ON inbox WHEN NEW.delivery_id = 'bad'"
            " BEGIN SELECT RAISE(ROLLBACK, 'the whole transaction goes'); END"
        )
    outcomes = _together(store, [lambda d=d: _accept(store, d) for d in ("a", "bad", "c")])  # type: ignore[misc]
    assert [type(o) for o in outcomes] == [sqlite3.IntegrityError] * 3
    assert [str(o) for o in outcomes] == ["the whole transaction goes"] * 3
    assert len({id(o) for o in outcomes}) == 3  # each caller raises its own exception object
    assert [store.inbox_row("helpdesk", d) for d in ("a", "bad", "c")] == [None] * 3
    assert _accept(store, "a")  # the store still takes deliveries; a retry of the others succeeds
    assert _accept(store, "c")


def test_a_caller_still_waiting_when_its_budget_ends_is_told_busy(store: SQLiteStore) -> None:
    """A delivery not yet taken into a batch when its write budget ends leaves the queue with StoreBusy; a caller
    without a budget behind the same lock is stored once the lock frees."""
    patient: list[bool] = []
    with _lock_held(store):
        first = threading.Thread(target=lambda: patient.append(_accept(store, "patient")))
        first.start()
        _wait_until(lambda: store.group_commit.pending() == 1)
        with pytest.raises(StoreBusy), store.write_budget(0.05):
            _accept(store, "hasty")
        assert store.group_commit.pending() == 1
    first.join(30)
    assert patient == [True]
    assert store.inbox_row("helpdesk", "hasty") is None
    assert _accept(store, "hasty")


def test_a_leader_that_cannot_get_the_lock_fails_alone(store: SQLiteStore) -> None:
    """The first caller leads the batch; when it cannot take the write lock within its budget it alone is told
    busy, and the callers waiting behind it are led by the next one."""
    behind: list[bool] = []
    with _lock_held(store):
        hasty_error: list[BaseException] = []

        def hasty() -> None:
            try:
                with store.write_budget(0.3):
                    _accept(store, "hasty")
            except StoreBusy as exc:
                hasty_error.append(exc)

        leader = threading.Thread(target=hasty)
        leader.start()
        _wait_until(lambda: store.group_commit.pending() == 1)
        follower = threading.Thread(target=lambda: behind.append(_accept(store, "behind")))
        follower.start()
        leader.join(30)
        assert len(hasty_error) == 1
        assert store.group_commit.pending() == 1  # the follower still waits, now for the lock itself
    follower.join(30)
    assert behind == [True]
    assert store.inbox_row("helpdesk", "hasty") is None
