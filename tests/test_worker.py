"""Workers: classification, Retry-After, backoff, lease fencing (Q1), SIGKILL recovery (Q2), per-entity locks
(Q5), drain, and rate limits from the sandbox."""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cxbridge import worker as worker_module
from cxbridge.errors import (
    AmbiguousOutcome,
    AuthError,
    ConfigError,
    Conflict,
    NotFound,
    RateLimited,
    TemplateError,
    Unavailable,
    VendorError,
)
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import mock_vendors
from cxbridge.store import SQLiteStore, Store, open_store
from cxbridge.testing import SandboxRuntimes, Sleeps
from cxbridge.worker import Worker, backoff_delay, drain, start_workers
from cxbridge.workflows.escalate import EscalationPending
from cxbridge.workflows.policy import PolicyRefused

TESTS = Path(__file__).parent
T0 = 1_800_000_000.0


class Clock:
    """A virtual clock shared by the store and the workers."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeConfig:
    """The configuration a worker reads: the retentions of ``[cxbridge]`` (their defaults unless given)."""

    def __init__(self, **cxbridge: int) -> None:
        self.cxbridge = {"inbox_retention_days": 7, "job_retention_days": 7, **cxbridge}

    def section(self, name: str) -> dict[str, int]:
        assert name == "cxbridge"
        return self.cxbridge


class FakeRuntime:
    """The part of a Runtime a worker touches: its store and configuration."""

    def __init__(self, store: Store, config: FakeConfig | None = None) -> None:
        self.store = store
        self.config = config or FakeConfig()
        self.inline_wait: float | None = None

    def limit_inline_waits(self, seconds: float) -> None:
        self.inline_wait = seconds


class Metrics:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.seconds: list[tuple[str, float | None]] = []
        self.lock = threading.Lock()

    def job(self, outcome: str, *, kind: str = "event", seconds: float | None = None) -> None:
        with self.lock:
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            self.seconds.append((kind, seconds))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Store]:
    """A SQLite store, or with ``@BOTH_STORES`` each backend in turn (a PostgreSQL schema of the run's database)."""
    backend = getattr(request, "param", "sqlite")
    location = str(tmp_path / "q.db") if backend == "sqlite" else str(request.getfixturevalue("pg_url"))
    s = open_store(location, clock=clock)
    yield s
    s.close()


BOTH_STORES = pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
"""For the tests about the store's guarantees (fencing, leases, attempts, retention): run on both backends."""


def make_worker(store: Store, handler: Callable[[Any, dict[str, Any]], str], **kw: Any) -> Worker:
    rt: Any = FakeRuntime(store)
    kw.setdefault("rng", random.Random(7))
    return Worker(rt, handlers={"work": handler}, **kw)


def raising(exc: BaseException) -> Callable[[Any, dict[str, Any]], str]:
    def handler(rt: Any, payload: dict[str, Any]) -> str:
        raise exc

    return handler


# --- classification ---------------------------------------------------------------------------------------

RETRIED = [
    Unavailable("jira", "jira: 503 Service Unavailable"),
    AmbiguousOutcome("jira", "jira: POST /issue: no answer before the read timeout"),
    EscalationPending("the tracker did not confirm the create"),
    requests.ConnectionError("connection refused"),
    requests.ReadTimeout("read timed out"),
]
DEAD = [
    AuthError("zendesk", "zendesk: 401 Unauthorized", status=401),
    NotFound("zendesk", "zendesk: 404 Not Found", status=404),
    ConfigError("systems.jira.base_url is missing"),
    TemplateError("jira_description.md.j2 line 3: undefined"),
    PolicyRefused("no grant allows this", None),  # type: ignore[arg-type]
    Conflict("jira", "jira: 409 Conflict", status=409),
    VendorError("hubspot", "hubspot: 400 Bad Request", status=400),
    ValueError("a bug in a handler"),
    KeyError("event"),
]


@pytest.mark.parametrize("exc", RETRIED, ids=lambda e: type(e).__name__)
def test_transient_errors_are_retried_with_backoff(store: Store, clock: Clock, exc: Exception) -> None:
    metrics = Metrics()
    jid = store.enqueue("work", {})
    assert jid is not None
    w = make_worker(store, raising(exc), backoff_base=2.0, backoff_cap=100.0, metrics=metrics)
    assert w.run_once()
    assert w.last is not None
    assert w.last.outcome == "retried"
    assert w.last.attempt == 1
    job = store.job(jid)
    assert job is not None
    assert job.state == "ready"
    assert job.attempt == 1
    assert T0 <= job.run_at <= T0 + 2.0  # attempt 1: full jitter in [0, base]
    assert job.last_error is not None
    assert job.last_error.startswith(type(exc).__name__)
    assert store.dead_letters() == []
    assert metrics.counts == {"retried": 1}


@pytest.mark.parametrize("exc", DEAD, ids=lambda e: type(e).__name__)
def test_permanent_errors_are_dead_letters_after_one_attempt(store: Store, exc: Exception) -> None:
    metrics = Metrics()
    jid = store.enqueue("work", {"n": 1})
    w = make_worker(store, raising(exc), metrics=metrics)
    assert w.run_once()
    assert w.last is not None
    assert w.last.outcome == "dead"
    job = store.job(jid or 0)
    assert job is not None
    assert job.state == "dead"
    assert job.attempt == 1
    [letter] = store.dead_letters()
    assert letter.job_id == jid
    assert letter.attempt == 1
    assert letter.payload == {"n": 1}
    assert letter.error.startswith(type(exc).__name__)
    assert "\n" not in letter.error
    assert "Traceback" not in letter.error
    assert metrics.counts == {"dead": 1}


def test_success_completes_and_reports_done(store: Store) -> None:
    metrics = Metrics()
    jid = store.enqueue("work", {"x": 1})
    seen: list[dict[str, Any]] = []

    def handler(rt: Any, payload: dict[str, Any]) -> str:
        seen.append(payload)
        return "did it"

    w = make_worker(store, handler, metrics=metrics)
    assert w.run_once()
    assert not w.run_once()  # nothing else due
    assert seen == [{"x": 1}]
    job = store.job(jid or 0)
    assert job is not None
    assert job.state == "done"
    assert metrics.counts == {"done": 1}
    assert w.counts["done"] == 1


def test_event_jobs_go_to_handle_event(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from cxbridge.models import Event, Ref, event_to_dict
    from cxbridge.workflows import events

    seen: list[tuple[Any, Event, str | None]] = []

    def fake_handle_event(rt: Any, event: Event, *, system: str | None = None) -> str:
        seen.append((rt, event, system))
        return f"routed {event.kind}"

    monkeypatch.setattr(events, "handle_event", fake_handle_event)
    event = Event(id="d-1", system="jira", kind="jira:issue_updated", subject=Ref("jira", "issue", "10001"))
    store.enqueue("event", {"event": event_to_dict(event), "system": "jira"}, lock_key=events.lock_key_for(event))
    store.enqueue("not-an-event", {})
    rt: Any = FakeRuntime(store)
    w = Worker(rt)  # the default handlers
    assert w.run_once()
    assert not w.run_once()  # a kind it has no handler for stays queued for another worker
    assert w.last is not None
    assert w.last.outcome == "done"
    assert w.last.detail == "routed jira:issue_updated"
    assert seen == [(rt, event, "jira")]
    assert store.queue_depth() == {"ready": 1, "leased": 0, "done": 1, "dead": 0}


@BOTH_STORES
def test_transient_past_max_attempts_is_dead_with_exact_attempts(store: Store, clock: Clock) -> None:
    jid = store.enqueue("work", {})
    w = make_worker(store, raising(Unavailable("jira", "jira: 502 Bad Gateway")), max_attempts=3, backoff_cap=10)
    outcomes = []
    while w.run_once():
        assert w.last is not None
        outcomes.append((w.last.outcome, w.last.attempt))
        clock.advance(10)
    assert outcomes == [("retried", 1), ("retried", 2), ("dead", 3)]
    [letter] = store.dead_letters()
    assert letter.job_id == jid
    assert letter.attempt == 3
    assert letter.error.startswith("gave up after 3 attempts: Unavailable: jira: 502 Bad Gateway")


# --- Retry-After and backoff (R2, R3) -------------------------------------------------------------------------
@BOTH_STORES
def test_retry_after_is_honoured_without_blocking_other_jobs(store: Store, clock: Clock) -> None:
    slow = store.enqueue("work", {"name": "limited"})
    fast = store.enqueue("work", {"name": "fine"})
    calls: list[str] = []

    def handler(rt: Any, payload: dict[str, Any]) -> str:
        calls.append(payload["name"])
        if payload["name"] == "limited" and calls.count("limited") == 1:
            raise RateLimited("zendesk", "zendesk: 429 Too Many Requests (retry after 7s)", retry_after=7.0)
        return "ok"

    w = make_worker(store, handler)
    started = time.monotonic()
    first = w.process_one()
    assert first is not None
    assert first.outcome == "retried"
    assert first.run_at == T0 + 7.0
    second = w.process_one()
    assert second is not None
    assert second.job_id == fast
    assert second.outcome == "done"
    assert time.monotonic() - started < 7.0  # the worker never slept for the 7 s (a bound no load can reach)
    assert not w.run_once()
    clock.advance(6.95)
    assert not w.run_once()  # not before Retry-After
    clock.advance(0.05)
    assert w.run_once()
    assert w.last is not None
    assert w.last.job_id == slow
    assert w.last.outcome == "done"
    assert calls == ["limited", "fine", "limited"]


@pytest.mark.parametrize(("retry_after", "expected"), [(7.0, 7.0), (0.0, 0.0), (86400.0, 300.0)])
def test_retry_after_is_capped(store: Store, retry_after: float, expected: float) -> None:
    jid = store.enqueue("work", {})
    w = make_worker(store, raising(RateLimited("jira", "jira: 429", retry_after=retry_after)))
    assert w.run_once()
    job = store.job(jid or 0)
    assert job is not None
    assert job.run_at == T0 + expected


def test_rate_limited_without_retry_after_backs_off(store: Store) -> None:
    jid = store.enqueue("work", {})
    w = make_worker(store, raising(RateLimited("jira", "jira: 429")), backoff_base=4.0)
    assert w.run_once()
    job = store.job(jid or 0)
    assert job is not None
    assert T0 <= job.run_at <= T0 + 4.0


@BOTH_STORES
def test_rate_limited_does_not_use_up_attempts_but_gives_up_with_age(store: Store, clock: Clock) -> None:
    jid = store.enqueue("work", {})
    w = make_worker(store, raising(RateLimited("jira", "jira: 429", retry_after=60.0)), max_attempts=2, max_age=600)
    outcomes = []
    while w.run_once():
        assert w.last is not None
        outcomes.append(w.last.outcome)
        clock.advance(60)
    assert outcomes == ["retried"] * 10 + ["dead"]  # 10 minutes old at the 11th attempt
    [letter] = store.dead_letters()
    assert letter.job_id == jid
    assert letter.error.startswith("gave up after 11 attempts and 600s")


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(42)
    for attempt in range(1, 40):
        ceiling = min(60.0, 0.5 * 2 ** (attempt - 1))
        draws = [backoff_delay(attempt, base=0.5, cap=60.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
    draws = [backoff_delay(30, base=0.5, cap=60.0, rng=rng) for _ in range(5000)]
    assert max(draws) <= 60.0
    assert 28.0 < statistics.mean(draws) < 32.0  # uniform on [0, 60]
    # 1,000 clients failing together spread out: no 100 ms bucket holds more than 5 % of them (R3)
    first = [backoff_delay(9, base=0.5, cap=60.0, rng=rng) for _ in range(1000)]
    buckets: dict[int, int] = {}
    for d in first:
        buckets[int(d * 10)] = buckets.get(int(d * 10), 0) + 1
    assert max(buckets.values()) <= 50
    assert backoff_delay(10_000, base=1.0, cap=300.0, rng=rng) <= 300.0


def test_backoff_in_the_worker_is_seeded_and_grows(tmp_path: Path, clock: Clock) -> None:
    def delays(name: str, seed: int) -> list[float]:
        out = []
        with SQLiteStore(tmp_path / f"{name}.db", clock=clock) as store:
            jid = store.enqueue("work", {"seed": seed})
            w = make_worker(store, raising(Unavailable("x", "down")), rng=random.Random(seed), max_attempts=20)
            for _ in range(12):
                assert w.run_once()
                assert w.last is not None
                assert w.last.job_id == jid
                assert w.last.run_at is not None
                out.append(w.last.run_at - clock())
                clock.advance(400)
        return out

    a, b = delays("a", 1), delays("b", 1)
    assert a == b  # deterministic for a seed
    assert all(0 <= d <= 300 for d in a)
    assert all(0 <= d <= 2**i for i, d in enumerate(a))
    assert len(set(a)) == len(a)  # jittered, not a fixed schedule


# --- Q1: a worker whose lease lapsed is fenced out -------------------------------------------------------------


@BOTH_STORES
@pytest.mark.parametrize("late", ["completes", "transient", "permanent"])
def test_lapsed_lease_cannot_settle_the_newer_attempt(store: Store, clock: Clock, late: str) -> None:
    metrics = Metrics()
    jid = store.enqueue("work", {})
    started = threading.Event()
    release = threading.Event()
    effects: list[str] = []

    def slow(rt: Any, payload: dict[str, Any]) -> str:  # worker A: paused past its lease
        started.set()
        assert release.wait(10)
        if late == "transient":
            raise Unavailable("jira", "jira: 503")
        if late == "permanent":
            raise NotFound("jira", "jira: 404")
        effects.append("A")
        return "A finished late"

    def quick(rt: Any, payload: dict[str, Any]) -> str:
        effects.append("B")
        return "B"

    # A's heartbeat never fires: the process is "stopped", as with SIGSTOP
    a = make_worker(store, slow, worker_id="A", lease_seconds=10, heartbeat_every=3600, metrics=metrics)
    b = make_worker(store, quick, worker_id="B", lease_seconds=10, metrics=metrics)
    thread = threading.Thread(target=a.run_once)
    thread.start()
    assert started.wait(5)
    assert not b.run_once()  # A's lease is live
    clock.advance(10.5)
    assert b.run_once()
    assert b.last is not None
    assert b.last.outcome == "done"
    assert b.last.attempt == 2
    release.set()
    thread.join(10)
    assert a.last is not None
    assert a.last.outcome == "stale"
    assert a.last.attempt == 1
    job = store.job(jid or 0)
    assert job is not None
    assert job.state == "done"
    assert job.attempt == 2
    assert store.dead_letters() == []
    assert not store.heartbeat(jid or 0, 1, 10)  # A's heartbeat is fenced out too
    assert metrics.counts == {"done": 1}
    assert effects.count("B") == 1


@BOTH_STORES
def test_heartbeat_keeps_the_lease_of_a_long_job(store: Store, clock: Clock) -> None:
    jid = store.enqueue("work", {})
    other = make_worker(store, lambda rt, p: "other", worker_id="other", lease_seconds=10)

    def long_job(rt: Any, payload: dict[str, Any]) -> str:
        for _ in range(3):
            clock.advance(8)  # most of the lease passes while the handler works
            deadline = time.monotonic() + 5
            while True:
                job = store.job(jid or 0)
                assert job is not None
                assert job.lease_until is not None
                if job.lease_until >= clock() + 9:
                    break
                assert time.monotonic() < deadline, "the heartbeat did not extend the lease"
                time.sleep(0.01)
            assert not other.run_once()
        return "long"

    w = make_worker(store, long_job, lease_seconds=10, heartbeat_every=0.02)
    assert w.run_once()
    assert w.last is not None
    assert w.last.outcome == "done"
    assert w.last.attempt == 1


@BOTH_STORES
def test_heartbeat_notices_a_lost_lease(store: Store, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    from cxbridge.worker import _Heartbeat

    store.enqueue("work", {})
    first = store.claim("A", lease_seconds=10)
    assert first is not None
    clock.advance(11)
    second = store.claim("B", lease_seconds=10)
    assert second is not None
    assert second.attempt == 2
    with caplog.at_level(logging.WARNING, logger="cxbridge.worker"):
        hb = _Heartbeat(store, 10, 0.01)
        hb.watch(first)
        with hb:
            deadline = time.monotonic() + 5
            while not hb.lost:
                assert time.monotonic() < deadline
                time.sleep(0.01)
    assert "lease lost" in caplog.text
    job = store.job(first.id)
    assert job is not None
    assert job.attempt == 2
    assert job.lease_until == clock() + 10


def test_one_heartbeat_thread_serves_a_workers_jobs_one_after_the_other(store: Store) -> None:
    """A worker keeps one heartbeat thread for all its jobs (not one per job), and each job's lease is kept by it."""
    seen: list[tuple[int | None, str]] = []

    def work(rt: Any, payload: dict[str, Any]) -> str:
        beating = [t for t in threading.enumerate() if t.name == "cxbridge-heartbeat-w"]
        assert len(beating) == 1
        seen.append((beating[0].ident, beating[0].name))
        return "ok"

    for n in range(3):
        store.enqueue("work", {"n": n})
    w = make_worker(store, work, worker_id="w", lease_seconds=10)
    assert [w.run_once() for _ in range(3)] == [True, True, True]
    assert len(seen) == 3
    assert len(set(seen)) == 1  # the same thread every time


def test_the_heartbeat_keeps_beating_the_job_it_watches_and_stops_when_released(store: Store, clock: Clock) -> None:
    """The shared heartbeat extends the watched job's lease; once the job is let go it writes to it no more, and a
    beat that meets a job already settled is not a lost lease."""
    from cxbridge.worker import _Heartbeat

    store.enqueue("work", {})
    job = store.claim("A", lease_seconds=10)
    assert job is not None
    hb = _Heartbeat(store, 10, 0.01)
    hb.watch(job)
    with hb:
        clock.advance(5)
        deadline = time.monotonic() + 5
        while (store.job(job.id) or job).lease_until != clock() + 10:
            assert time.monotonic() < deadline, "the heartbeat did not extend the lease"
            time.sleep(0.01)
    assert store.complete(job.id, job.attempt)
    clock.advance(3)
    time.sleep(0.1)  # several beats would have been due
    done = store.job(job.id)
    assert done is not None
    assert (done.state, done.lease_until) == ("done", None)
    assert hb.lost is False


def test_an_idle_heartbeat_thread_ends_and_the_next_job_starts_another(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no job for ``IDLE_SECONDS`` the heartbeat thread ends; the worker's next job gets a new one."""
    from cxbridge.worker import _Heartbeat

    monkeypatch.setattr(_Heartbeat, "IDLE_SECONDS", 0.05)
    names: list[str] = []

    def work(rt: Any, payload: dict[str, Any]) -> str:
        names.extend(t.name for t in threading.enumerate() if t.name == "cxbridge-heartbeat-idle")
        return "ok"

    w = make_worker(store, work, worker_id="idle", lease_seconds=10)
    store.enqueue("work", {})
    assert w.run_once()
    deadline = time.monotonic() + 5
    while any(t.name == "cxbridge-heartbeat-idle" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the idle heartbeat thread did not end"
        time.sleep(0.01)
    store.enqueue("work", {})
    assert w.run_once()
    assert names == ["cxbridge-heartbeat-idle", "cxbridge-heartbeat-idle"]


@BOTH_STORES
def test_the_lease_check_before_a_write_reads_while_the_lease_is_fresh(store: Store, clock: Clock) -> None:
    """The check every write makes (``check_lease``) writes nothing while more than half the lease is left, extends
    it past half, and still refuses once another worker took the job over."""
    from cxbridge.errors import LeaseLost
    from cxbridge.workflows.once import check_lease

    jid = store.enqueue("work", {}) or 0
    leases: list[float | None] = []

    def current_lease() -> float | None:
        job = store.job(jid)
        return None if job is None else job.lease_until

    def work(rt: Any, payload: dict[str, Any]) -> str:
        check_lease()
        leases.append(current_lease())
        clock.advance(6)  # 4 s of 10 left: the next check extends
        check_lease()
        leases.append(current_lease())
        clock.advance(11)  # lapsed: another worker takes it over
        other = store.claim("B", lease_seconds=10)
        assert other is not None
        with pytest.raises(LeaseLost):
            check_lease()
        return "never"

    w = make_worker(store, work, lease_seconds=10, heartbeat_every=3600)
    claimed = w.run_once()
    assert claimed
    assert leases == [T0 + 10, T0 + 16]
    assert w.last is not None
    assert w.last.outcome == "stale"


# --- Q2: SIGKILL mid-job ---------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkilled_worker_job_completes_once_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    marker = tmp_path / "started"
    store = SQLiteStore(db)
    try:
        jid = store.enqueue("work", {"name": "job-1"})
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
        child = subprocess.Popen(
            [sys.executable, str(TESTS / "_worker_child.py"), str(db), str(marker), "1.0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 20
            while not marker.exists():
                assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
                assert time.monotonic() < deadline, "the child never started its job"
                time.sleep(0.02)
            job = store.job(jid or 0)
            assert job is not None
            assert job.state == "leased"
            assert job.attempt == 1
            assert job.worker_id == "child"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            if child.stderr:
                child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        assert marker.read_text() == "started job-1\n"

        effects: list[str] = []

        def handler(rt: Any, payload: dict[str, Any]) -> str:
            effects.append(payload["name"])
            return "done"

        restarted = make_worker(store, handler, worker_id="restarted")
        deadline = time.monotonic() + 10
        while not restarted.run_once():  # the dead worker's lease (1 s) lapses; nobody renews it
            assert time.monotonic() < deadline, "the job was never taken over"
            time.sleep(0.05)
        assert restarted.last is not None
        assert restarted.last.outcome == "done"
        assert restarted.last.attempt == 2
        assert not restarted.run_once()
        assert effects == ["job-1"]
        job = store.job(jid or 0)
        assert job is not None
        assert job.state == "done"
        assert store.queue_depth() == {"ready": 0, "leased": 0, "done": 1, "dead": 0}
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


# --- Q5: one job per entity at a time --------------------------------------------------------------------------


def test_jobs_for_one_entity_never_overlap(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    try:
        for i in range(50):
            store.enqueue("work", {"i": i}, lock_key="zendesk:ticket:1")
        for i in range(10):
            store.enqueue("work", {"i": 100 + i}, lock_key="zendesk:ticket:2")
        lock = threading.Lock()
        in_flight: dict[str, int] = {}
        peak: dict[str, int] = {}
        counter = {"zendesk:ticket:1": 0, "zendesk:ticket:2": 0}

        def handler(rt: Any, payload: dict[str, Any]) -> str:
            key = "zendesk:ticket:1" if payload["i"] < 100 else "zendesk:ticket:2"
            with lock:
                in_flight[key] = in_flight.get(key, 0) + 1
                peak[key] = max(peak.get(key, 0), in_flight[key])
            seen = counter[key]  # a read-modify-write that would lose updates if two ran at once
            time.sleep(0.002)
            counter[key] = seen + 1
            with lock:
                in_flight[key] -= 1
            return "ok"

        metrics = Metrics()
        stop = threading.Event()
        rt: Any = FakeRuntime(store)
        threads = start_workers(rt, 4, stop, metrics=metrics, idle_sleep=0.005, handlers={"work": handler})
        try:
            deadline = time.monotonic() + 30
            while store.queue_depth()["done"] < 60:
                assert time.monotonic() < deadline, store.queue_depth()
                time.sleep(0.02)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        assert all(t.daemon and not t.is_alive() for t in threads)
        assert peak == {"zendesk:ticket:1": 1, "zendesk:ticket:2": 1}
        assert counter == {"zendesk:ticket:1": 50, "zendesk:ticket:2": 10}
        assert metrics.counts == {"done": 60}
    finally:
        store.close()


# --- drain ------------------------------------------------------------------------------------------------------


def test_drain_runs_retries_that_come_due_and_reports(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.db")
    try:
        for i in range(12):
            store.enqueue("work", {"i": i})
        failed: set[int] = set()

        def handler(rt: Any, payload: dict[str, Any]) -> str:
            if payload["i"] % 3 == 0 and payload["i"] not in failed:
                failed.add(payload["i"])
                raise Unavailable("jira", "jira: 503")
            return "ok"

        rt: Any = FakeRuntime(store)
        report = drain(
            rt, workers=3, timeout=10, handlers={"work": handler}, backoff_base=0.01, backoff_cap=0.02, idle_sleep=0.01
        )
        assert (report.done, report.retried, report.dead, report.stale) == (12, 4, 0, 0)
        assert report.empty
        assert report.pending == []
        assert not report.timed_out
        assert store.queue_depth()["done"] == 12
    finally:
        store.close()


@BOTH_STORES
def test_drain_leaves_far_retries_pending(store: Store, clock: Clock) -> None:
    store.enqueue("work", {"i": 1})
    limited = store.enqueue("work", {"i": 2})
    store.enqueue("other-kind", {})

    def handler(rt: Any, payload: dict[str, Any]) -> str:
        if payload["i"] == 2:
            raise RateLimited("hubspot", "hubspot: 429", retry_after=120.0)
        return "ok"

    rt: Any = FakeRuntime(store)
    started = time.monotonic()
    report = drain(rt, timeout=5, handlers={"work": handler}, idle_sleep=0.01)
    assert time.monotonic() - started < 5  # it did not wait out its timeout for the retry 120 s away
    assert (report.done, report.retried, report.dead) == (1, 1, 0)
    assert report.pending == [(limited, T0 + 120.0)]
    assert report.ready == 2
    assert report.leased == 0
    assert not report.timed_out
    assert report.as_dict()["pending"] == [{"job": limited, "run_at": T0 + 120.0}]


# --- rate limits from the sandbox (real connector calls) -----------------------------------------------------------


def _get_ticket(rt: Runtime, payload: dict[str, Any]) -> str:
    return rt.helpdesk("zendesk").get_ticket(str(payload["ticket"])).subject


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_sandbox_429_and_503_with_retry_after_all_jobs_complete(
    sandbox_runtime: SandboxRuntimes, clock: Clock, sleeps: Sleeps
) -> None:
    with mock_vendors(["zendesk"], seed="demo") as vendors:
        vendors["zendesk"].clock = clock  # its rate-limit windows run on the virtual clock
        rt = sandbox_runtime(vendors, systems={"zendesk": {"max_retries": 0}}, clock=clock)
        rt.helpdesk("zendesk").http._clock = clock  # the client's "not before" a Retry-After, on the same clock
        rt.helpdesk("zendesk").http._sleep = sleeps  # any wait the client would take is recorded instead
        try:
            base = vendors.base_url("zendesk")
            r = requests.post(f"{base}/_sandbox/fail-next", json={"status": 429, "count": 3, "retry_after": 7})
            assert r.json()["ok"]
            r = requests.post(f"{base}/_sandbox/fail-next", json={"status": 503, "count": 2, "retry_after": 5})
            assert r.json()["pending"] == 5
            jobs = [rt.store.enqueue("zd", {"ticket": 1 + i % 2}) for i in range(10)]
            metrics = Metrics()
            w = Worker(rt, handlers={"zd": _get_ticket}, metrics=metrics, rng=random.Random(3), max_attempts=3)
            waits: list[float] = []
            rounds = 0
            while True:
                while w.run_once():
                    assert w.last is not None
                    if w.last.outcome == "retried":
                        assert w.last.run_at is not None
                        waits.append(w.last.run_at - clock())
                ready = [j for j in (rt.store.job(i or 0) for i in jobs) if j is not None and j.state == "ready"]
                if not ready:
                    break
                clock.advance(min(j.run_at for j in ready) - clock())
                rounds += 1
            assert sleeps == []  # nobody slept for Retry-After: each job was re-queued for the vendor's time
            # each job waits exactly the vendor's Retry-After: its own 429/503's, or the one another job met
            assert set(waits) == {5.0, 7.0}
            assert metrics.counts == {"done": 10, "retried": len(waits)}
            assert rt.store.queue_depth() == {"ready": 0, "leased": 0, "done": 10, "dead": 0}
            assert rt.store.dead_letters() == []
            statuses = [c.status for c in vendors["zendesk"].calls]
            assert statuses.count(429) == 3
            assert statuses.count(503) == 2
            # while the vendor had asked for a pause, no job spent a call to meet its own 429: 10 successes, 5 faults
            assert len(statuses) == 15

            # an enforced limit "for a while": 2 calls per 10 s window on the virtual clock
            r = requests.post(f"{base}/_sandbox/rate-limit", json={"limit": "2/10s"})
            assert r.json()["ok"]
            more = [rt.store.enqueue("zd", {"ticket": 1}) for _ in range(12)]
            attempts_at: dict[int, list[float]] = {}
            retried_until: dict[int, float] = {}
            while True:
                while w.run_once():
                    assert w.last is not None
                    attempts_at.setdefault(w.last.job_id, []).append(clock())
                    if w.last.job_id in retried_until:
                        assert clock() >= retried_until[w.last.job_id]  # never before Retry-After
                    if w.last.outcome == "retried":
                        assert w.last.run_at is not None
                        assert w.last.run_at - clock() >= 1.0
                        retried_until[w.last.job_id] = w.last.run_at
                ready = [j for j in (rt.store.job(i or 0) for i in more) if j is not None and j.state == "ready"]
                if not ready:
                    break
                clock.advance(min(j.run_at for j in ready) - clock())
            assert rt.store.queue_depth()["done"] == 22
            assert rt.store.dead_letters() == []
            assert any(len(a) > 3 for a in attempts_at.values())  # a job waited through several windows
        finally:
            rt.close()


def test_a_worker_never_sleeps_long_for_a_rate_limit(sandbox_runtime: SandboxRuntimes) -> None:
    """Workers cap the HTTP layer's inline Retry-After wait, so a long one re-queues the job (RELIABILITY R2)."""
    clock = Clock()
    with mock_vendors(["zendesk"], seed="demo") as vendors:
        rt = sandbox_runtime(vendors, systems={"zendesk": {"max_retries": 0}}, clock=clock)
        before = rt.helpdesk()
        assert before.http.max_inline_wait > worker_module.INLINE_WAIT
        Worker(rt)
        assert before.http.max_inline_wait == worker_module.INLINE_WAIT
        rt.close()


@BOTH_STORES
def test_a_running_worker_purges_inbox_rows_past_the_retention(store: Store, clock: Clock) -> None:
    """RELIABILITY D2: deliveries are kept 7 days to deduplicate redeliveries, then purged."""
    assert store.accept_delivery("jira", "old", payload={}, job_kind="noop", job_payload={})
    clock.advance(7 * 86400 + 1)
    assert store.accept_delivery("jira", "new", payload={}, job_kind="noop", job_payload={})
    rt: Any = FakeRuntime(store)
    stop = threading.Event()
    worker = Worker(rt, handlers={"noop": lambda rt, payload: "ok"})
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"idle_sleep": 0.01})
    thread.start()
    deadline = time.monotonic() + 5
    while store.inbox_row("jira", "old") is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join()
    assert store.inbox_row("jira", "old") is None
    assert store.inbox_row("jira", "new") is not None


def test_housekeeping_purges_finished_jobs_past_their_retention_in_batches(store: Store, clock: Clock) -> None:
    """Issue 16: done jobs go after ``job_retention_days`` (dead ones stay, for their letters); the counts follow."""
    ids = [store.enqueue("noop", {"n": n}) for n in range(5)]
    for _ in ids:
        job = store.claim("w", lease_seconds=60)
        assert job is not None
        if job.payload["n"] == 4:
            assert store.fail(job.id, job.attempt, error="broken")
        else:
            assert store.complete(job.id, job.attempt)
    clock.advance(2 * 86400 + 1)
    young = store.enqueue("noop", {"n": 5})
    assert store.queue_depth() == {"ready": 1, "leased": 0, "done": 4, "dead": 1}
    rt: Any = FakeRuntime(store, FakeConfig(job_retention_days=2))
    assert Worker(rt).housekeeping() == 4
    assert store.queue_depth() == {"ready": 1, "leased": 0, "done": 0, "dead": 1}
    assert [store.job(i) is None for i in ids] == [True, True, True, True, False]
    assert store.job(young or 0) is not None
    assert len(store.dead_letters()) == 1
    assert Worker(rt).housekeeping() == 0


def test_housekeeping_forgets_old_echo_fingerprints(store: Store, clock: Clock) -> None:
    store.put_snapshot("echo", "zendesk:ticket:1|abc", {})
    clock.advance(worker_module.ECHO_RETENTION_SECONDS + 1)
    store.put_snapshot("echo", "zendesk:ticket:1|def", {})
    rt: Any = FakeRuntime(store)
    assert Worker(rt).housekeeping() == 1
    assert store.get_snapshot("echo", "zendesk:ticket:1|abc") is None
    assert store.get_snapshot("echo", "zendesk:ticket:1|def") is not None


# --- the escalation's audit is written with its job's completion ---------------------------------------------------


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_an_escalation_job_that_lost_its_lease_leaves_its_audit_to_the_attempt_that_completes(
    sandbox_runtime: SandboxRuntimes, clock: Clock
) -> None:
    """Worker A escalates, then pauses past its lease before completing; B takes the job over and runs the
    escalation again (its writes all skipped). The audit rows go with the completion: B's are written, A's stale
    completion writes none, so the escalation is audited exactly once (as a create: A's attempt recorded nothing)."""
    from cxbridge.workflows.escalate import Escalation, EscalationRequest

    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as vendors:
        rt = sandbox_runtime(vendors, clock=clock)
        try:
            paused = threading.Event()
            release = threading.Event()

            def escalate(runtime: Any, payload: dict[str, Any]) -> str:
                result = Escalation(runtime).run(EscalationRequest(ticket_id="1"))
                if threading.current_thread().name == "A":
                    paused.set()
                    assert release.wait(10)
                return str(result.writes)

            jid = rt.store.enqueue("esc", {})
            a = Worker(rt, handlers={"esc": escalate}, worker_id="A", lease_seconds=10, heartbeat_every=3600)
            b = Worker(rt, handlers={"esc": escalate}, worker_id="B", lease_seconds=10, heartbeat_every=3600)
            thread = threading.Thread(target=a.run_once, name="A")
            thread.start()
            assert paused.wait(10)
            ticket = rt.helpdesk().ticket_ref("1")
            assert rt.store.audit_entries(ticket=ticket) == []  # kept for A's completion
            clock.advance(10.5)
            assert b.run_once()
            assert b.last is not None
            assert b.last.outcome == "done"
            release.set()
            thread.join(10)
            assert a.last is not None
            assert a.last.outcome == "stale"
            job = rt.store.job(jid or 0)
            assert job is not None
            assert (job.state, job.attempt) == ("done", 2)
            actions = [e.action for e in rt.store.audit_entries(ticket=ticket) if e.action.startswith("escalate.")]
            assert actions == ["escalate.create"]
            assert len(vendors["jira"].state()["issues"]) == 1
        finally:
            rt.close()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_job_that_fails_after_its_escalation_keeps_the_escalation_audited(
    sandbox_runtime: SandboxRuntimes, clock: Clock
) -> None:
    """The escalation finished, then its job failed (a later step's 503): its audit rows are written before the job
    is retried, so the escalation counts as complete and the retry does not run it again."""
    from cxbridge.workflows.escalate import Escalation, EscalationRequest, completed_escalation

    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as vendors:
        rt = sandbox_runtime(vendors, clock=clock)
        try:

            def escalate_then_fail(runtime: Any, payload: dict[str, Any]) -> str:
                Escalation(runtime).run(EscalationRequest(ticket_id="1"))
                raise Unavailable("zendesk", "zendesk: 503 Service Unavailable")

            rt.store.enqueue("esc", {})
            w = Worker(rt, handlers={"esc": escalate_then_fail}, rng=random.Random(1))
            assert w.run_once()
            assert w.last is not None
            assert w.last.outcome == "retried"
            ticket = rt.helpdesk().ticket_ref("1")
            assert [e.action for e in rt.store.audit_entries(ticket=ticket)] == ["escalate.create"]
            assert completed_escalation(rt.store, ticket) is not None
        finally:
            rt.close()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_an_escalation_kept_for_its_jobs_completion_counts_as_complete_in_that_job(
    sandbox_runtime: SandboxRuntimes, clock: Clock
) -> None:
    """Inside the job, an escalation whose audit rows wait for the completion is complete already: a second
    request for the same ticket in the same job (two signals of one change) is not escalated again."""
    from cxbridge.workflows.escalate import Escalation, EscalationRequest, completed_escalation

    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as vendors:
        rt = sandbox_runtime(vendors, clock=clock)
        try:
            seen: list[bool] = []

            def escalate(runtime: Any, payload: dict[str, Any]) -> str:
                ticket = runtime.helpdesk().ticket_ref("1")
                seen.append(completed_escalation(runtime.store, ticket) is not None)
                Escalation(runtime).run(EscalationRequest(ticket_id="1"))
                seen.append(completed_escalation(runtime.store, ticket) is not None)
                assert runtime.store.audit_entries(ticket=ticket) == []  # written with the completion
                return "escalated"

            rt.store.enqueue("esc", {})
            assert Worker(rt, handlers={"esc": escalate}).run_once()
            assert seen == [False, True]
            ticket = rt.helpdesk().ticket_ref("1")
            assert [e.action for e in rt.store.audit_entries(ticket=ticket)] == ["escalate.create"]
        finally:
            rt.close()
