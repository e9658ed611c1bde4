"""The SQLite store under concurrency: several processes and threads on one database file."""

from __future__ import annotations

import gc
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cxbridge.store import SQLiteStore, Store, open_store
from cxbridge.store.migrations import migrations

# A worker process: open the store, read a start time on stdin and sleep until it (so that every worker
# starts together), claim and complete until the queue is empty, then print the ids it completed as JSON.
# Any exception (SQLITE_BUSY included) exits non-zero.
CLAIMER = """
import json, sys, time
from cxbridge.store import SQLiteStore
store = SQLiteStore(sys.argv[1])
print("ready", flush=True)
time.sleep(max(0.0, float(sys.stdin.readline()) - time.time()))
done = []
while True:
    job = store.claim(sys.argv[2], lease_seconds=60)
    if job is None:
        break
    time.sleep(0.002)  # the work, done outside any transaction
    if not store.complete(job.id, job.attempt):
        raise SystemExit(f"completion of job {job.id} refused")
    done.append(job.id)
store.close()
print(json.dumps(done), flush=True)
"""

# Open a store that may not exist yet (racing the others to migrate it) and enqueue one job.
OPENER = """
import sys
sys.stdin.readline()
from cxbridge.store import SQLiteStore
store = SQLiteStore(sys.argv[1])
print(store.enqueue("opened", {"by": sys.argv[2]}), flush=True)
store.close()
"""


@contextmanager
def _processes(script: str, argv: list[tuple[str, ...]]) -> Iterator[list[subprocess.Popen[str]]]:
    """Start one process running ``script`` per argument tuple; any still running at the end are killed."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in argv
    ]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert "database is locked" not in err
        outputs.append(out)
    return outputs


def test_processes_claim_each_job_exactly_once(tmp_path: Path) -> None:
    """Three processes draining one queue complete every job exactly once, with no SQLITE_BUSY surfaced."""
    path = tmp_path / "queue.db"
    store = SQLiteStore(path)
    ids = [store.enqueue("work", {"n": n}) for n in range(150)]
    with _processes(CLAIMER, [(str(path), f"worker-{i}") for i in range(3)]) as procs:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        start = time.time() + 0.1
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(f"{start}\n")
            p.stdin.flush()
        outputs = _finish(procs)
    per_worker = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    completed = Counter(job_id for done in per_worker for job_id in done)
    assert sorted(completed) == sorted(ids)
    assert set(completed.values()) == {1}
    assert store.queue_depth() == {"ready": 0, "leased": 0, "done": 150, "dead": 0}
    for job_id in ids:
        job = store.job(job_id or 0)
        assert job is not None
        assert job.attempt == 1
    store.close()


def test_processes_opening_a_new_file_migrate_it_once(tmp_path: Path) -> None:
    """Four processes opening a new database at the same moment apply each migration once."""
    path = tmp_path / "fresh.db"
    with _processes(OPENER, [(str(path), str(i)) for i in range(4)]) as procs:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = _finish(procs)
    assert sorted(int(o.strip()) for o in outputs) == [1, 2, 3, 4]
    conn = sqlite3.connect(path)
    applied = conn.execute("SELECT migration_set, version FROM _cxbridge_migrations ORDER BY 1, 2").fetchall()
    conn.close()
    assert applied == [(migrations.name, m.version) for m in migrations.all()]  # every migration, each once


def test_opening_an_up_to_date_store_takes_no_write_lock(tmp_path: Path) -> None:
    """A worker starting while another process holds the write lock opens the store at once: an up-to-date
    database's migrations are only read (each used to take the write lock, and waited out another writer)."""
    path = tmp_path / "cxbridge.db"
    SQLiteStore(path).close()
    writer = sqlite3.connect(path, isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")  # another process's write transaction, held through the opening
    try:
        store = SQLiteStore(path)
        assert store.queue_depth()["ready"] == 0
        store.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_threads_share_one_store(tmp_path: Path) -> None:
    """Worker threads on one SQLiteStore (a connection each) complete every job exactly once."""
    store = SQLiteStore(tmp_path / "threads.db")
    ids = {store.enqueue("work", {"n": n}) for n in range(80)}
    done: list[int] = []
    errors: list[BaseException] = []
    connections: set[int] = set()
    lock = threading.Lock()

    def work(name: str) -> None:
        try:
            with lock:
                connections.add(id(store._conn()))
            while (job := store.claim(name, lease_seconds=60)) is not None:
                if store.complete(job.id, job.attempt):
                    with lock:
                        done.append(job.id)
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(done) == sorted(ids)
    assert len(connections) == 4  # a connection per thread
    gc.collect()
    assert len(store._holders) == 1  # the finished threads' connections were closed; the main one remains
    store.close()


def test_deferred_read_then_write_fails_where_immediate_waits(tmp_path: Path) -> None:
    """Why every write is BEGIN IMMEDIATE: a DEFERRED read-then-write after another commit fails at once."""
    path = tmp_path / "control.db"
    SQLiteStore(path).close()
    a = sqlite3.connect(path, isolation_level=None, timeout=5)
    b = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        a.execute("BEGIN")  # DEFERRED
        a.execute("SELECT count(*) FROM jobs").fetchone()
        b.execute("BEGIN IMMEDIATE")
        b.execute("INSERT INTO checkpoints VALUES ('s', 'x', '{}', 0)")
        b.execute("COMMIT")
        with pytest.raises(sqlite3.OperationalError, match="locked"):  # SQLITE_BUSY_SNAPSHOT, no waiting
            a.execute("INSERT INTO checkpoints VALUES ('s', 'y', '{}', 0)")
        a.execute("ROLLBACK")

        a.execute("BEGIN IMMEDIATE")
        a.execute("SELECT count(*) FROM jobs").fetchone()
        a.execute("INSERT INTO checkpoints VALUES ('s', 'y', '{}', 0)")
        a.execute("COMMIT")
    finally:
        a.close()
        b.close()


# ---- the in-process wake-up: an idle worker wakes when a thread of its process queues a job --------------------

ENQUEUER = """
import sys
from cxbridge.store import SQLiteStore
store = SQLiteStore(sys.argv[1])
print(store.enqueue("elsewhere", {}), flush=True)
store.close()
"""


def _waiting(store: Store, timeout: float) -> tuple[threading.Thread, list[bool]]:
    """A worker thread that claims (finding nothing) then waits for work; its answer lands in the list."""
    woken: list[bool] = []

    def idle_worker() -> None:
        assert store.claim("w", lease_seconds=60) is None
        woken.append(store.wait_for_work(timeout))

    thread = threading.Thread(target=idle_worker)
    thread.start()
    return thread, woken


def test_a_job_queued_in_the_process_wakes_an_idle_worker(tmp_path: Path) -> None:
    """The receiver's delivery (another store object on the same file, as ``cxbridge serve`` may hold) wakes a
    worker that waits with a timeout far longer than this test: it returns True, woken, not timed out."""
    path = tmp_path / "s.db"
    store, receiver = SQLiteStore(path), SQLiteStore(path)
    thread, woken = _waiting(store, timeout=120)
    receiver.accept_delivery("zendesk", "d1", payload={}, job_kind="event", job_payload={"n": 1})
    thread.join(timeout=120)
    assert woken == [True]
    job = store.claim("w", lease_seconds=60)
    assert job is not None
    assert job.payload == {"n": 1}
    # completing a job that holds an entity lock frees that entity: the bell rings for the entity's next job
    store.enqueue("event", {"n": 2}, lock_key="zendesk:ticket:1")
    locked = store.claim("w", lease_seconds=60)
    assert locked is not None
    assert locked.payload == {"n": 2}
    store.enqueue("event", {"n": 3}, lock_key="zendesk:ticket:1")  # waits for the entity
    waiter, woken = _waiting(store, timeout=120)
    waiter.join(timeout=0.5)  # the only ready job waits for the entity: still waiting
    assert woken == []
    assert store.complete(locked.id, locked.attempt)
    waiter.join(timeout=120)
    assert woken == [True]
    last = store.claim("w", lease_seconds=60)
    assert last is not None
    assert last.payload == {"n": 3}
    # put back due at once, the job is work again: a waiter wakes
    waiter, woken = _waiting(store, timeout=120)
    time.sleep(0.2)
    assert store.retry_later(last.id, last.attempt, run_at=0.0, error="429")
    waiter.join(timeout=120)
    assert woken == [True]
    last = store.claim("w", lease_seconds=60)
    assert last is not None
    # no job waits for the entity the last one frees: no worker is woken for nothing
    waiter, woken = _waiting(store, timeout=1.0)
    time.sleep(0.2)
    assert store.complete(last.id, last.attempt)
    waiter.join(timeout=120)
    assert woken == [False]
    store.close()
    receiver.close()


def test_one_job_wakes_one_idle_worker_and_two_jobs_wake_two(store_location: str) -> None:
    """Each queued job wakes one idle worker of the process, not every one: with two waiting, one job wakes one
    (the other sleeps on to its timeout, where before it woke too and claimed nothing); two jobs wake both. The
    job is queued through another store object, as ``cxbridge serve``'s receiver does (on PostgreSQL through the
    server's ``NOTIFY``, each job one notification)."""
    store, receiver = open_store(store_location), open_store(store_location)
    if store.announces_work:  # the listener starts with the first wait and wakes whoever waits once it listens
        assert store.wait_for_work(120) is True
    first, woken_first = _waiting(store, timeout=1.5)
    second, woken_second = _waiting(store, timeout=1.5)
    time.sleep(0.3)  # both have claimed (nothing) and wait
    receiver.enqueue("event", {"n": 1})
    first.join(timeout=60)
    second.join(timeout=60)
    assert sorted(woken_first + woken_second) == [False, True]
    assert store.claim("w", lease_seconds=60) is not None
    first, woken_first = _waiting(store, timeout=120)
    second, woken_second = _waiting(store, timeout=120)
    time.sleep(0.3)
    receiver.enqueue("event", {"n": 2})
    receiver.enqueue("event", {"n": 3})
    first.join(timeout=120)
    second.join(timeout=120)
    assert woken_first + woken_second == [True, True]
    store.close()
    receiver.close()


def test_a_job_queued_between_the_claim_and_the_wait_is_not_missed(store_location: str) -> None:
    """The job's ring (on PostgreSQL its notification, however soon it reaches the listener) came after the claim
    began: the wait takes it, at once or when it arrives."""
    store = open_store(store_location)
    if store.announces_work:  # the listener is up: the notification reaches this process
        assert store.wait_for_work(120) is True
    assert store.claim("w", lease_seconds=60) is None
    store.enqueue("event", {})  # after the empty claim, before the wait: the wait returns at once
    assert store.wait_for_work(120) is True
    store.close()


def test_a_delayed_job_a_stop_and_another_process_do_not_ring(tmp_path: Path) -> None:
    """A job due later is not announced (the poll finds it when due), a set stop ends the wait, and a job queued
    by another process is left to the poll (SQLite has no cross-process notification)."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    assert store.claim("w", lease_seconds=60) is None
    store.enqueue("later", {}, run_at=store.clock() + 3600)
    assert store.wait_for_work(0.2) is False
    stop = threading.Event()
    stop.set()
    assert store.wait_for_work(120, stop) is False
    out = subprocess.run(
        [sys.executable, "-c", ENQUEUER, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip().isdigit()
    assert store.wait_for_work(0.2) is False
    store.close()
