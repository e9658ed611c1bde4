"""Base URL checks and connect-time address checks (RELIABILITY.md S2)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from cxbridge.config import SystemConfig
from cxbridge.errors import ConfigError, VendorError
from cxbridge.http import (
    AddressPolicy,
    BearerAuth,
    CallCounter,
    HttpClient,
    check_base_url,
    host_matches,
    ip_literal,
    same_origin,
)
from cxbridge.secrets import Secret

CLOUD = (".zendesk.com", ".atlassian.net", "api.hubapi.com", "api.atlassian.com")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acme.zendesk.com", "https://acme.zendesk.com"),
        ("https://acme.zendesk.com/", "https://acme.zendesk.com"),
        ("https://ACME.atlassian.net", "https://ACME.atlassian.net"),
        ("https://api.hubapi.com", "https://api.hubapi.com"),
        ("https://api.atlassian.com/ex/jira/1234", "https://api.atlassian.com/ex/jira/1234"),
        ("https://acme.zendesk.com:443", "https://acme.zendesk.com:443"),
    ],
)
def test_cloud_urls_accepted(url: str, expected: str) -> None:
    assert check_base_url("x", url, cloud_domains=CLOUD) == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://acme.zendesk.com", "only https"),
        ("ftp://acme.zendesk.com", "only https"),
        ("https://acme.zendesk.com.evil.com", "not on the vendor's domains"),
        ("https://zendesk.com", "not on the vendor's domains"),
        ("https://evilzendesk.com", "not on the vendor's domains"),
        ("https://api.hubapi.com.evil.com", "not on the vendor's domains"),
        ("https://x.api.hubapi.com", "not on the vendor's domains"),
        ("https://user:pw@acme.zendesk.com", "credentials"),
        ("https://user@acme.zendesk.com", "credentials"),
        ("https://evil.com@acme.zendesk.com", "credentials"),
        ("https://acme.zendesk.com\\@evil.com", "backslash"),
        ("https://169.254.169.254", "IP address"),
        ("https://169.254.169.254/latest/meta-data", "IP address"),
        ("https://127.0.0.1", "IP address"),
        ("https://2130706433", "IP address"),
        ("https://0x7f000001", "IP address"),
        ("https://0177.0.0.1", "IP address"),
        ("https://127.1", "IP address"),
        ("https://[::1]", "IP address"),
        ("https://[::ffff:169.254.169.254]", "IP address"),
        ("https://localhost", "localhost"),
        ("https://x.localhost", "localhost"),
        ("https://acme.zendesk.com?x=1", "query"),
        ("https://acme.zendesk.com#frag", "query or fragment"),
        ("https://acme.zendesk.com:notaport", "not a valid URL"),
        ("https://acme.zendesk.com:0", "port 0"),
        ("https://ac me.zendesk.com", "whitespace"),
        ("https://acme.zendesk.com\r\nHost: evil", "whitespace"),
        ("https://acme_x.zendesk.com", "not a valid DNS host name"),
        ("https:///path", "no host"),
        ("", "expected an https URL"),
    ],
)
def test_cloud_urls_refused(url: str, why: str) -> None:
    with pytest.raises(ConfigError, match=r"systems\.zendesk\.base_url") as info:
        check_base_url("zendesk", url, cloud_domains=CLOUD)
    assert why in str(info.value)


def test_any_https_host_for_self_hosted() -> None:
    """Jira DC: any https DNS host, still never http, an IP literal, localhost or userinfo."""
    assert check_base_url("jira", "https://jira.corp.example/jira", allow_any_https_host=True) == (
        "https://jira.corp.example/jira"
    )
    for bad in (
        "http://jira.corp.example",
        "https://10.0.0.5",
        "https://localhost",
        "https://u@jira.corp.example",
    ):
        with pytest.raises(ConfigError):
            check_base_url("jira", bad, allow_any_https_host=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://localhost:9000/",
        "http://[::1]:8000",
        "https://127.0.0.1:9443",
        "http://127.0.0.2",
    ],
)
def test_sandbox_allows_loopback_only(url: str) -> None:
    assert check_base_url("zendesk", url, sandbox=True, cloud_domains=CLOUD) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://acme.zendesk.com",
        "https://acme.zendesk.com",
        "http://169.254.169.254",
        "http://10.0.0.1",
        "http://2130706433",
        "http://127.1",
        "http://localhost.evil.com",
        "http://u:p@127.0.0.1:80",
    ],
)
def test_sandbox_refuses_everything_else(url: str) -> None:
    with pytest.raises(ConfigError):
        check_base_url("zendesk", url, sandbox=True, cloud_domains=CLOUD)


def test_plain_http_loopback_refused_without_sandbox() -> None:
    with pytest.raises(ConfigError, match="only https"):
        check_base_url("zendesk", "http://127.0.0.1:8080", cloud_domains=CLOUD)


def test_helpers() -> None:
    assert host_matches("a.zendesk.com", [".zendesk.com"])
    assert not host_matches("zendesk.com", [".zendesk.com"])
    assert not host_matches("a.zendesk.com.evil.com", [".zendesk.com"])
    assert host_matches("API.HUBAPI.COM", ["api.hubapi.com"])
    assert str(ip_literal("2130706433")) == "127.0.0.1"
    assert ip_literal("acme.zendesk.com") is None
    assert same_origin("https://a.zendesk.com:443/x?y", "https://a.zendesk.com")
    assert not same_origin("https://a.zendesk.com:444/x", "https://a.zendesk.com")
    assert not same_origin("https://u@a.zendesk.com/x", "https://a.zendesk.com")
    assert not same_origin("not a url", "https://a.zendesk.com")


@pytest.mark.parametrize(
    ("address", "cloud_refuses", "self_hosted_refuses"),
    [
        ("127.0.0.1", True, True),
        ("169.254.169.254", True, True),
        ("10.1.2.3", True, False),
        ("192.168.1.1", True, False),
        ("100.64.0.1", True, False),
        ("0.0.0.0", True, True),  # noqa: S104 (an address under test, not a bind)
        ("::1", True, True),
        ("fe80::1", True, True),
        ("fc00::1", True, False),
        ("::ffff:127.0.0.1", True, True),
        ("224.0.0.1", True, True),
        ("104.16.1.1", False, False),
        ("2606:4700::1", False, False),
    ],
)
def test_address_policy(address: str, cloud_refuses: bool, self_hosted_refuses: bool) -> None:
    assert (AddressPolicy(allow_private=False).refuses(address) is not None) is cloud_refuses
    assert (AddressPolicy(allow_private=True).refuses(address) is not None) is self_hosted_refuses


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback TCP listener that records whatever a client sends; stops by itself."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.05)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                with contextlib.suppress(OSError):
                    received.append(conn.recv(4096))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join(timeout=3)
    server.close()


@pytest.mark.parametrize("self_hosted", [False, True])
def test_rebinding_host_is_refused_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch, listener: tuple[int, list[bytes]], self_hosted: bool
) -> None:
    """A configured host that resolves to loopback is never talked to; the error is not retried."""
    port, received = listener
    real = socket.getaddrinfo

    def fake_getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        if host in ("acme.atlassian.net", "jira.corp.example"):
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    host = "jira.corp.example" if self_hosted else "acme.atlassian.net"
    config = SystemConfig(name="jira", plugin="jira", base_url=f"https://{host}:{port}", max_retries=3)
    sleeps: list[float] = []
    client = HttpClient(
        config,
        auth=BearerAuth(Secret("rebind-token-xyz")),
        cloud_domains=(".atlassian.net",),
        allow_any_https_host=self_hosted,
        counter=CallCounter(),
        sleep=sleeps.append,
    )
    client.session.trust_env = False  # no proxy from the environment: connect directly
    with pytest.raises(VendorError, match="refusing to connect") as info:
        client.get("/rest/api/3/myself", op="myself")
    assert "a loopback address" in str(info.value)
    assert client.counter.total() == 1
    assert sleeps == []
    client.close()
    assert received == []


def test_rebinding_between_check_and_connect_is_caught(
    monkeypatch: pytest.MonkeyPatch, listener: tuple[int, list[bytes]]
) -> None:
    """DNS answers public first, loopback on the connect: the connected peer is checked, nothing is sent."""
    port, received = listener
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34", "127.0.0.1"])

    def flipping_getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "acme.atlassian.net":
            return real(next(answers, "127.0.0.1"), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", flipping_getaddrinfo)
    config = SystemConfig(name="jira", plugin="jira", base_url=f"https://acme.atlassian.net:{port}")
    client = HttpClient(
        config,
        auth=BearerAuth(Secret("rebind-token-abc")),
        cloud_domains=(".atlassian.net",),
        counter=CallCounter(),
        sleep=lambda s: None,
    )
    client.session.trust_env = False
    with pytest.raises(VendorError, match=r"refusing to talk to acme\.atlassian\.net"):
        client.get("/rest/api/3/myself", op="myself")
    client.close()
    assert all(chunk == b"" for chunk in received)
