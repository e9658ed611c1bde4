"""Retry-After parsing, the error table, and transport errors as real sockets produce them."""

from __future__ import annotations

import contextlib
import email.utils
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
import requests

from cxbridge.config import SystemConfig
from cxbridge.errors import AmbiguousOutcome, Conflict, RateLimited, Unavailable, VendorError
from cxbridge.http import (
    STATUS_TABLE,
    BearerAuth,
    CallCounter,
    HttpClient,
    classify_transport_error,
    parse_retry_after,
    rule_for,
)
from cxbridge.secrets import Secret

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("300", 300.0),
        ("301", 300.0),
        ("86400", 300.0),
        (email.utils.formatdate(NOW + 42, usegmt=True), 42.0),
        (email.utils.formatdate(NOW + 86400, usegmt=True), 300.0),
        (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # RFC 9110's example date, long past
        ("Sunday, 06-Nov-94 08:49:37 GMT", 0.0),  # obsolete RFC 850 form
        ("Sun Nov  6 08:49:37 1994", None),  # asctime form has no zone: refused rather than guessed
        ("", None),
        ("   ", None),
        ("-5", None),
        ("abc", None),
        ("7 seconds", None),
        ("1e3", None),
        ("nan", None),
        ("inf", None),
        ("0x10", None),
        ("١٢", None),  # non-ASCII digits
        ("Mon, 99 Foo 2024 99:99:99 GMT", None),
        ("9" * 100, None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_cap_is_configurable() -> None:
    assert parse_retry_after("100", NOW, cap=60) == 60.0
    assert parse_retry_after("100", NOW, cap=1000) == 100.0


def test_error_table() -> None:
    """The table as data: reads retry 5xx; creates treat every 5xx but 503-with-Retry-After as ambiguous."""
    assert rule_for(404, creates=False).error.__name__ == "NotFound"
    assert rule_for(409, creates=True).error is Conflict
    assert not rule_for(409, creates=False).retryable
    assert rule_for(429, creates=True).error is RateLimited
    assert rule_for(429, creates=True).retryable
    assert rule_for(503, creates=True, retry_after=True).error is RateLimited
    assert rule_for(503, creates=True).error is AmbiguousOutcome
    for code in (500, 502, 503, 504):
        assert rule_for(code, creates=False).error is Unavailable
        assert rule_for(code, creates=False).retryable
        assert rule_for(code, creates=True).error is AmbiguousOutcome
        assert not rule_for(code, creates=True).retryable
    assert rule_for(501, creates=False).error is Unavailable
    assert not rule_for(501, creates=False).retryable
    assert rule_for(418, creates=False).error is VendorError
    for code in (400, 401, 403, 404, 422):
        assert not STATUS_TABLE[code].retryable


# --- real sockets: the shapes requests and urllib3 actually raise -------------------------------------


def serve_once(handler: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback server that hands each accepted connection to ``handler``; stops by itself."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.05)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                handler(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=3)
        server.close()


def read_request(conn: socket.socket) -> None:
    conn.settimeout(1.0)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Reads the request and never answers (until the client gives up)."""

    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.settimeout(2.0)
        try:  # drain the body and wait until the client gives up and closes
            while conn.recv(4096):
                pass
        except OSError:
            pass

    yield from serve_once(handler)


@pytest.fixture
def resetting_port() -> Iterator[int]:
    """Reads the request, then resets the connection (RST) without answering."""

    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    yield from serve_once(handler)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def sandbox_client(port: int, sleeps: list[float], *, max_retries: int = 2) -> HttpClient:
    config = SystemConfig(
        name="jira",
        plugin="jira",
        base_url=f"http://127.0.0.1:{port}",
        sandbox=True,
        timeout=0.3,
        connect_timeout=0.5,
        max_retries=max_retries,
    )
    client = HttpClient(
        config, auth=BearerAuth(Secret("socket-test-token")), counter=CallCounter(), sleep=sleeps.append
    )
    client.session.trust_env = False
    return client


def test_real_refused_connection_is_not_sent(closed_port: int) -> None:
    sleeps: list[float] = []
    client = sandbox_client(closed_port, sleeps)
    with pytest.raises(Unavailable, match="connection refused") as info:
        client.post("/rest/api/3/issue", op="issue.create", json={}, creates=True)
    assert client.counter.by_outcome() == {"error": 3}
    assert len(sleeps) == 2
    assert info.value.status is None


def test_real_read_timeout_on_create_is_ambiguous(silent_port: int) -> None:
    sleeps: list[float] = []
    client = sandbox_client(silent_port, sleeps)
    with pytest.raises(AmbiguousOutcome, match="read timeout"):
        client.post("/rest/api/3/issue", op="issue.create", json={}, creates=True)
    assert client.counter.total() == 1
    assert sleeps == []
    client.close()


def test_real_reset_after_send_on_create_is_ambiguous(resetting_port: int) -> None:
    sleeps: list[float] = []
    client = sandbox_client(resetting_port, sleeps)
    with pytest.raises(AmbiguousOutcome, match="may or may not have been processed"):
        client.post("/rest/api/3/issue", op="issue.create", json={}, creates=True)
    assert client.counter.total() == 1
    client.close()


def test_real_reset_on_read_is_retried(resetting_port: int) -> None:
    sleeps: list[float] = []
    client = sandbox_client(resetting_port, sleeps, max_retries=1)
    with pytest.raises(Unavailable):
        client.get("/rest/api/3/issue/A-1", op="issue.show")
    assert client.counter.total() == 2
    assert len(sleeps) == 1
    client.close()


def test_classify_real_exceptions(closed_port: int, silent_port: int) -> None:
    """The classification sees through requests' wrapping of urllib3's errors."""
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.RequestException) as refused:
        session.get(f"http://127.0.0.1:{closed_port}/", timeout=(0.5, 0.5))
    verdict = classify_transport_error(refused.value)
    assert verdict.not_sent
    assert verdict.retryable

    with pytest.raises(requests.RequestException) as slow:
        session.get(f"http://127.0.0.1:{silent_port}/", timeout=(0.5, 0.2))
    verdict = classify_transport_error(slow.value)
    assert not verdict.not_sent
    assert verdict.retryable

    with pytest.raises(requests.RequestException) as invalid:
        session.get(f"http://127.0.0.1:{silent_port}/", headers={"X-Bad": "a\r\nInjected: 1"}, timeout=0.2)
    assert not classify_transport_error(invalid.value).retryable
    session.close()


@pytest.fixture
def plaintext_port() -> Iterator[int]:
    """Answers a TLS ClientHello with plain HTTP: the TLS handshake fails before the request is sent."""

    def handler(conn: socket.socket) -> None:
        conn.settimeout(1.0)
        with contextlib.suppress(OSError):
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    yield from serve_once(handler)


def test_real_tls_handshake_failure_on_create_is_retried(plaintext_port: int) -> None:
    """RELIABILITY.md section 4: a TLS handshake failure means the request was not processed."""
    sleeps: list[float] = []
    config = SystemConfig(
        name="jira",
        plugin="jira",
        base_url=f"https://127.0.0.1:{plaintext_port}",
        sandbox=True,
        timeout=1.0,
        connect_timeout=1.0,
        max_retries=2,
    )
    client = HttpClient(
        config, auth=BearerAuth(Secret("socket-test-token")), counter=CallCounter(), sleep=sleeps.append
    )
    client.session.trust_env = False
    with pytest.raises(Unavailable, match="TLS handshake failed"):
        client.post("/rest/api/3/issue", op="issue.create", json={}, creates=True)
    assert client.counter.total() == 3
    assert len(sleeps) == 2
    client.close()
