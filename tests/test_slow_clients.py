"""Slow and idle clients cannot starve signed deliveries (waitress on loopback, bounded counts).

The full campaign figure (120 slow senders beside 1,000 idle connections) is ``benchmarks/bench_slowclients.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from cxbridge.config import load_config
from cxbridge.errors import ConfigError
from cxbridge.plugins import build_plugins
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import mock_vendors, write_config
from cxbridge.webhooks.serve import RunningServer, connections_possible, serving

SECRET = "jira-hook-secret-for-slow-clients"


def make_runtime(tmp_path: Path, **webhooks: object) -> Runtime:
    """A Runtime whose Jira webhooks are signed with ``SECRET``, with extra ``[webhooks]`` keys."""
    (tmp_path / "hook-jira.secret").write_text(SECRET, encoding="utf-8")
    extra = {"webhooks": {"secrets": {"jira": [{"file": "hook-jira.secret"}]}, **webhooks}}
    with mock_vendors(["zendesk", "jira", "hubspot"]) as vendors:
        path = write_config(vendors, tmp_path / "cxbridge.toml", extra=extra)
    plugins = build_plugins()
    return Runtime(load_config(path, plugins=plugins), plugins)


def signed_delivery(srv: RunningServer, delivery: str, timeout: float) -> requests.Response:
    body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"id": "10001", "key": "ENG-1"}}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": delivery}
    return requests.post(srv.webhook_url("jira"), data=body, headers=headers, timeout=timeout)


class Crowd:
    """``slow`` connections sending one byte of a request each second and ``idle`` ones sending nothing."""

    REQUEST = b"POST /webhooks/jira HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000

    def __init__(self, port: int, slow: int, idle: int) -> None:
        self.slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(slow)]
        self.idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(idle)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slow-senders", daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        offset = 0
        while not self._stop.is_set() and offset < len(self.REQUEST):
            for sock in self.slow:
                with contextlib.suppress(OSError):  # closed by the server's deadline: that is the point
                    sock.send(self.REQUEST[offset : offset + 1])
            offset += 1
            self._stop.wait(1.0)

    def answer_of_a_slow_one(self) -> bytes:
        """What the server sent a slow sender (its 408), read until the server closed the connection."""
        sock = self.slow[0]
        sock.settimeout(10)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(4096):
                data += chunk
        return data

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.slow + self.idle:
            sock.close()


@contextlib.contextmanager
def crowd(port: int, slow: int, idle: int) -> Iterator[Crowd]:
    group = Crowd(port, slow, idle)
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path)
    yield runtime
    runtime.close()


def test_a_signed_delivery_is_accepted_beside_slow_and_idle_connections(rt: Runtime) -> None:
    """120 one-byte-a-second senders and 300 idle connections open: a signed delivery still gets its 200."""
    with serving(rt, threads=4, systems=["jira"]) as srv, crowd(srv.port, slow=120, idle=300):
        response = signed_delivery(srv, "beside-the-crowd", timeout=10)
        assert response.status_code == 200
        assert response.json() == {"accepted": 1, "duplicates": 0}


def test_slow_senders_filling_every_slot_are_cut_off_at_the_request_deadline(rt: Runtime) -> None:
    """With every connection slot held by slow senders, the deadline answers them 408 and the delivery gets in.

    waitress alone closes only idle channels, so these senders would hold the slots for as long as they trickle.
    """
    with (
        serving(rt, threads=2, systems=["jira"], connection_limit=30, request_timeout=2, idle_timeout=2) as srv,
        crowd(srv.port, slow=30, idle=10) as group,
    ):
        response = signed_delivery(srv, "after-the-deadline", timeout=30)
        assert response.status_code == 200
        assert group.answer_of_a_slow_one().startswith(b"HTTP/1.1 408 ")
        assert srv.deadline is not None
        assert srv.deadline.closed >= 1


def test_the_limits_are_settings_with_ranges(tmp_path: Path) -> None:
    """[webhooks] request_timeout_seconds, idle_timeout_seconds, connection_limit and threads are checked."""
    rt = make_runtime(tmp_path, request_timeout_seconds=5, idle_timeout_seconds=7, connection_limit=50, threads=3)
    try:
        section = rt.config.section("webhooks")
        assert (section["request_timeout_seconds"], section["idle_timeout_seconds"]) == (5, 7)
        assert (section["connection_limit"], section["threads"]) == (50, 3)
        with serving(rt, systems=["jira"]) as srv:
            assert srv.server.adj.connection_limit == 50
            assert srv.server.adj.channel_timeout == 7
            assert srv.server.adj.asyncore_use_poll is True
            assert srv.deadline is not None
            assert srv.deadline.seconds == 5
    finally:
        rt.close()
    for key, value in (("request_timeout_seconds", 0), ("connection_limit", 5), ("threads", 1000)):
        with pytest.raises(ConfigError, match=key):
            make_runtime(tmp_path, **{key: value})


def test_the_connection_limit_fits_the_open_file_limit() -> None:
    """A limit the process's file descriptors cannot hold is lowered rather than failing every accept."""
    assert connections_possible(100) == 100
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")
    try:
        assert connections_possible(hard + 10_000) < hard + 10_000
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= soft
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))  # as it was for the rest of the run
