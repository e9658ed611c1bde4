"""Faults after the vendor acted, at the receiver: poison bodies, an honest /healthz, a store locked elsewhere."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from cxbridge.config import load_config
from cxbridge.plugins import build_plugins
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import mock_vendors, write_config
from cxbridge.store.sqlite import SQLiteStore
from cxbridge.webhooks.metrics import Metrics
from cxbridge.webhooks.receiver import MAX_NESTING, Receiver, RequestTimeout, nesting_problem, read_body
from cxbridge.webhooks.serve import RunningServer, serving

SECRET = "jira-hook-secret-for-faults"


def make_runtime(tmp_path: Path) -> Runtime:
    """A Runtime on a sandbox-written config whose Jira webhooks are signed with ``SECRET``."""
    (tmp_path / "hook-jira.secret").write_text(SECRET, encoding="utf-8")
    extra = {"webhooks": {"secrets": {"jira": [{"file": "hook-jira.secret"}]}}}
    with mock_vendors(["zendesk", "jira", "hubspot"]) as vendors:
        path = write_config(vendors, tmp_path / "cxbridge.toml", extra=extra)
    plugins = build_plugins()
    return Runtime(load_config(path, plugins=plugins), plugins)


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path)
    yield runtime
    runtime.close()


@pytest.fixture
def server(rt: Runtime) -> Iterator[RunningServer]:
    with serving(rt, threads=4, systems=["jira"]) as running:
        yield running


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


def jira_body(issue_id: str = "10001", extra: Any = None) -> bytes:
    doc: dict[str, Any] = {"webhookEvent": "jira:issue_updated", "issue": {"id": issue_id, "key": "ENG-1"}}
    if extra is not None:
        doc["changelog"] = extra
    return json.dumps(doc).encode()


def nested_body(depth: int) -> bytes:
    """A Jira delivery whose ``changelog`` nests ``depth`` objects (built as text: json.dumps recurses too)."""
    head = b'{"webhookEvent":"jira:issue_updated","issue":{"id":"10001","key":"ENG-1"},"changelog":'
    return head + b'{"n":' * depth + b'"leaf"' + b"}" * depth + b"}"


def post(srv: RunningServer, body: bytes, delivery: str, timeout: float = 10) -> requests.Response:
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": delivery}
    return requests.post(srv.webhook_url("jira"), data=body, headers=headers, timeout=timeout)


def inbox_count(rt: Runtime) -> int:
    with contextlib.closing(sqlite3.connect(rt.config.store_path())) as conn:
        return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])


# -- poison: refused once, never a 503 ---------------------------------------------------------------------------
def test_a_signed_delivery_nested_100_levels_is_stored(server: RunningServer, rt: Runtime) -> None:
    """100 levels is within MAX_NESTING and within what the store serialises: 200, stored once, never 503."""
    response = post(server, nested_body(100), "deep-100")
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0}
    assert inbox_count(rt) == 1


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 600, 900, 5000])
def test_a_deeply_nested_signed_delivery_is_refused_400(server: RunningServer, rt: Runtime, depth: int) -> None:
    """A signed body nested past MAX_NESTING, up to 5,000 levels, gets 400 (the vendor stops retrying), never 503."""
    response = post(server, nested_body(depth), f"deep-{depth}")
    assert response.status_code == 400
    assert response.json()["error"].startswith("jira: ")  # refused for its content: too deep, or JSON too deep
    again = post(server, nested_body(depth), f"deep-{depth}")
    assert again.status_code == 400
    assert server.metrics.deliveries()[("jira", "rejected_400")] == 2
    assert post(server, jira_body(), "after-poison").status_code == 200
    assert inbox_count(rt) == 1


def test_a_delivery_nested_within_the_limit_is_stored(server: RunningServer, rt: Runtime) -> None:
    """Nesting just under MAX_NESTING is an ordinary delivery: 200 and one inbox row."""
    body = jira_body(extra=nested(MAX_NESTING - 3))
    response = post(server, body, "shallow")
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0}
    assert inbox_count(rt) == 1


def test_nesting_problem_measures_without_recursion() -> None:
    """The depth walk is iterative: 100,000 levels are measured, and non-JSON values are named."""
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert nesting_problem(deep) == f"nested deeper than {MAX_NESTING} levels"
    assert nesting_problem({"a": [1, 2.5, None, True, "x"]}) is None
    assert nesting_problem({"a": object()}) == "holds a value that is not JSON (object)"


def test_a_store_recursion_error_is_a_400_not_a_503(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Should serialising fail with RecursionError anyway, the delivery is poison (400), not a store outage."""

    def explode(*args: Any, **kwargs: Any) -> bool:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("cxbridge.webhooks.receiver.enqueue_event", explode)
    response = post(server, jira_body(), "recursion")
    assert response.status_code == 400


# -- the whole-request deadline inside the app ---------------------------------------------------------------------
class TrickleStream(io.RawIOBase):
    """A wsgi.input that yields one byte per read (a server that streams the body to the app)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        chunk, self.data = self.data[:1], self.data[1:]
        return chunk


def test_read_body_stops_at_the_deadline() -> None:
    """A body still arriving at the deadline raises RequestTimeout (answered 408) instead of being awaited."""
    stream = TrickleStream(b"x" * 100)
    environ = {"wsgi.input": stream, "CONTENT_LENGTH": "100"}
    with pytest.raises(RequestTimeout):
        read_body(environ, deadline=0.0)  # a deadline in the past: monotonic time is always above 0
    assert stream.reads == 0
    assert read_body({"wsgi.input": TrickleStream(b"abc"), "CONTENT_LENGTH": "3"}, deadline=None) == b"abc"


def test_a_slow_body_is_answered_408(rt: Runtime) -> None:
    """Through the app: a body that has not arrived by the request deadline gets 408 and is counted."""
    metrics = Metrics()
    app = Receiver(rt, metrics=metrics, systems=["jira"], request_timeout=-1.0)
    body = jira_body()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/webhooks/jira",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": TrickleStream(body),
    }
    response = app.dispatch(environ)
    assert response.status_code == 408
    assert metrics.deliveries()[("jira", "rejected_408")] == 1


# -- an honest health check ------------------------------------------------------------------------------------------
class UnwritableStore(SQLiteStore):
    """A real store whose writes fail as a full disk or a read-only file makes them fail."""

    message = "database or disk is full"

    def check_writable(self) -> None:
        raise sqlite3.OperationalError(self.message)

    def accept_delivery(self, *args: Any, **kwargs: Any) -> bool:
        raise sqlite3.OperationalError(self.message)


@pytest.mark.parametrize("message", ["database or disk is full", "attempt to write a readonly database"])
def test_healthz_is_not_ready_when_the_store_cannot_write(tmp_path: Path, message: str) -> None:
    """/healthz answers 503 not-ready (with the reason) when deliveries would be 503, and 200 once it can write."""
    base = make_runtime(tmp_path)
    store = UnwritableStore(base.config.store_path())
    store.message = message
    rt = Runtime(base.config, base.plugins, store=store)
    try:
        with serving(rt, threads=2, systems=["jira"]) as srv:
            health = requests.get(f"{srv.url}/healthz", timeout=10)
            assert health.status_code == 503
            assert health.json()["status"] == "not-ready"
            assert message in health.json()["reason"]
            assert health.headers["Retry-After"]
            assert post(srv, jira_body(), "full-disk").status_code == 503
    finally:
        rt.close()
    healthy = make_runtime(tmp_path)
    try:
        with serving(healthy, threads=2, systems=["jira"]) as srv:
            assert requests.get(f"{srv.url}/healthz", timeout=10).json()["status"] == "ok"
    finally:
        healthy.close()


def test_the_write_probe_changes_nothing(tmp_path: Path) -> None:
    """check_writable commits a write that leaves the store as it was (schema, user_version, rows)."""
    store = SQLiteStore(tmp_path / "probe.db")
    try:
        before = store.schema_version()
        store.check_writable()
        store.check_writable()
        assert store.schema_version() == before
        assert sum(store.queue_depth().values()) == 0
    finally:
        store.close()


# -- a store locked by another process -------------------------------------------------------------------------------
@contextlib.contextmanager
def locked_elsewhere(path: Path) -> Iterator[None]:
    """Hold the database's write lock from another connection, as another process would."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_a_store_locked_elsewhere_answers_503_with_retry_after(server: RunningServer, rt: Runtime) -> None:
    """Eight deliveries against a store another process keeps locked are each answered 503 with Retry-After.

    Without a bounded wait each would queue behind the previous one's 5 s busy timeout, and the last ones would
    time out at the client (whose timeout here is 8 s) rather than be told to retry.
    """
    assert post(server, jira_body("1"), "warm").status_code == 200
    with locked_elsewhere(rt.config.store_path()), ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post, server, jira_body(str(100 + i)), f"locked-{i}", 8.0) for i in range(8)]
        answers = [f.result() for f in futures]
        health = requests.get(f"{server.url}/healthz", timeout=8)
    assert [a.status_code for a in answers] == [503] * 8
    assert all(a.headers.get("Retry-After") for a in answers)
    assert health.status_code == 503
    assert post(server, jira_body("2"), "unlocked").status_code == 200
    assert inbox_count(rt) == 2


def test_a_write_budget_bounds_the_wait_for_the_lock(tmp_path: Path) -> None:
    """Inside write_budget a write meets StoreBusy instead of waiting the whole busy timeout."""
    from cxbridge.store import StoreBusy

    store = SQLiteStore(tmp_path / "busy.db")
    done = threading.Event()
    try:
        with locked_elsewhere(tmp_path / "busy.db"):
            with pytest.raises(StoreBusy), store.write_budget(0.2):
                store.check_writable()
            done.set()
        store.check_writable()
    finally:
        store.close()
    assert done.is_set()
