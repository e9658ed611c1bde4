"""Per-entity job locks (one running job per entity) and snapshots of remote records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cxbridge.secrets import Secret
from cxbridge.store import SQLiteStore

T0 = 1_750_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "cxbridge.db", clock=clock)
    yield s
    s.close()


def test_a_locked_entity_runs_one_job_at_a_time(store: SQLiteStore, clock: Clock) -> None:
    first = store.enqueue("event", {"n": 1}, lock_key="jira:issue:1")
    second = store.enqueue("event", {"n": 2}, lock_key="jira:issue:1")
    other = store.enqueue("event", {"n": 3}, lock_key="jira:issue:2")
    a = store.claim("w1", lease_seconds=30)
    assert a is not None
    assert a.id == first
    # the second job of the same entity waits; the other entity's job goes ahead
    b = store.claim("w2", lease_seconds=30)
    assert b is not None
    assert b.id == other
    assert store.claim("w3", lease_seconds=30) is None
    assert store.complete(a.id, a.attempt)
    c = store.claim("w3", lease_seconds=30)
    assert c is not None
    assert c.id == second


def test_an_expired_lease_releases_the_lock(store: SQLiteStore, clock: Clock) -> None:
    first = store.enqueue("event", {}, lock_key="zendesk:ticket:1")
    second = store.enqueue("event", {}, lock_key="zendesk:ticket:1")
    a = store.claim("w1", lease_seconds=30)
    assert a is not None
    assert a.id == first
    clock.now += 31
    # the lapsed job is due again and comes first (older); its newer attempt holds the lock
    again = store.claim("w2", lease_seconds=30)
    assert again is not None
    assert again.id == first
    assert again.attempt == a.attempt + 1
    assert store.claim("w3", lease_seconds=30) is None
    assert not store.complete(a.id, a.attempt)  # the stale attempt is fenced out
    assert store.complete(again.id, again.attempt)
    b = store.claim("w3", lease_seconds=30)
    assert b is not None
    assert b.id == second


def test_a_delivery_carries_its_lock(store: SQLiteStore) -> None:
    assert store.accept_delivery(
        "jira", "d1", payload={}, job_kind="event", job_payload={"n": 1}, lock_key="jira:issue:7"
    )
    assert store.accept_delivery(
        "jira", "d2", payload={}, job_kind="event", job_payload={"n": 2}, lock_key="jira:issue:7"
    )
    a = store.claim("w1", lease_seconds=30)
    assert a is not None
    assert a.payload == {"n": 1}
    assert store.claim("w2", lease_seconds=30) is None
    assert store.complete(a.id, a.attempt)
    b = store.claim("w2", lease_seconds=30)  # the second delivery's job was queued; it waited for the lock
    assert b is not None
    assert b.payload == {"n": 2}


def test_unlocked_jobs_run_side_by_side(store: SQLiteStore) -> None:
    first = store.enqueue("event", {"n": 1})
    second = store.enqueue("event", {"n": 2})
    a = store.claim("w1", lease_seconds=30)
    b = store.claim("w2", lease_seconds=30)
    assert a is not None
    assert b is not None
    assert (a.id, b.id) == (first, second)


def test_snapshots_replace_and_survive_reopen(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path, clock=clock) as s:
        assert s.get_snapshot("customer", "hubspot:company:1") is None
        s.put_snapshot("customer", "hubspot:company:1", {"arr": "100.50", "tier": "growth"})
        s.put_snapshot("customer", "hubspot:company:1", {"arr": "200.00", "tier": "strategic"})
        s.put_snapshot("sync", "hubspot:company:1", {"other": True})
    with SQLiteStore(path, clock=clock) as s:
        assert s.get_snapshot("customer", "hubspot:company:1") == {"arr": "200.00", "tier": "strategic"}
        assert s.get_snapshot("sync", "hubspot:company:1") == {"other": True}


def test_snapshots_never_hold_a_secret(store: SQLiteStore) -> None:
    secret = Secret("s3cr3t-snapshot-value", source="test")
    store.put_snapshot("customer", "x", {"note": f"token {secret.reveal()}"})
    snapshot = store.get_snapshot("customer", "x")
    assert snapshot is not None  # stored, with the value redacted
    assert snapshot["note"].startswith("token ")
    assert secret.reveal() not in str(snapshot)


def test_forget_intent_lets_an_undone_write_be_redone(store: SQLiteStore) -> None:
    store.begin_intent("op-1", "tracker.remotelink", business_key="zendesk:ticket:1", payload={})
    store.mark_intent("op-1", "sending")
    store.mark_intent("op-1", "done", result={"id": "10"})
    assert store.forget_intent("op-1")
    assert store.get_intent("op-1") is None
    assert not store.forget_intent("op-1")
    again = store.begin_intent("op-1", "tracker.remotelink", business_key="zendesk:ticket:1", payload={})
    assert again.state == "pending"


def test_purge_snapshots_deletes_only_old_rows_of_one_kind(store: SQLiteStore, clock: Clock) -> None:
    store.put_snapshot("echo", "old", {})
    store.put_snapshot("customer", "old", {})
    clock.now += 100
    store.put_snapshot("echo", "new", {})
    assert store.purge_snapshots("echo", 50) == 1
    assert store.get_snapshot("echo", "old") is None
    assert store.get_snapshot("echo", "new") is not None
    assert store.get_snapshot("customer", "old") is not None


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python 3.12 warns on fork with threads
def test_a_forked_child_does_not_inherit_a_held_writer_lock(tmp_path: Path) -> None:
    """A fork while another thread writes must not leave the child waiting on a lock nobody will release."""
    import os
    import threading

    from cxbridge.store import sqlite as sqlite_module

    path = tmp_path / "fork.db"
    with SQLiteStore(path) as parent:
        parent.put_snapshot("k", "before", {})
        lock = sqlite_module._writer_lock(path)
        lock.acquire()  # another thread of the parent is mid-write
        try:
            pid = os.fork()
            if pid == 0:  # the child writes at once and exits with 0 when it could
                ok = False
                try:
                    with SQLiteStore(path) as child:
                        child.put_snapshot("k", "child", {})
                        ok = True
                finally:
                    os._exit(0 if ok else 1)
            done = threading.Event()
            status: list[int] = []

            def wait() -> None:
                status.append(os.waitpid(pid, 0)[1])
                done.set()

            threading.Thread(target=wait, daemon=True).start()
            assert done.wait(10), "the child hung on the writer lock"
            assert os.waitstatus_to_exitcode(status[0]) == 0
        finally:
            lock.release()
        assert parent.get_snapshot("k", "child") is not None
