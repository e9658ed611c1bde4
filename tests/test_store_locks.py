"""Per-entity job locks (one running job per entity) and snapshots of remote records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python 3.12 warns on fork with threads
def test_a_forked_child_does_not_inherit_a_held_writer_lock(tmp_path: Path) -> None:
    """A fork while another thread writes must not leave the child waiting on a lock nobody will release."""
    import os
    import threading

    from cxbridge.store import sqlite as sqlite_module

    path = tmp_path / "fork.db"
    with SQLiteStore(path) as parent:
        parent.put_snapshot("k", "before", {})
        lock = sqlite_module.writer_lock(path)
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


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python 3.12 warns on fork with threads
def test_a_forked_child_uses_a_connection_and_writer_lock_of_its_own(tmp_path: Path) -> None:
    """The store object a child inherits opens its own connection and takes its own process's writer lock (the
    process id the store compares is kept current across a fork)."""
    import os

    path = tmp_path / "fork-own.db"
    with SQLiteStore(path) as store:
        store.put_snapshot("k", "parent", {})
        parent_conn, parent_lock = store._conn(), store._writer_lock()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                own = store._conn() is not parent_conn and store._writer_lock() is not parent_lock
                store.put_snapshot("k", "child", {})
                code = 0 if own else 2
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert store._conn() is parent_conn
        assert store.get_snapshot("k", "child") == {}
