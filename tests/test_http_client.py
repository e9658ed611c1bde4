"""HttpClient: RELIABILITY.md section 4 row by row (R1), Retry-After (R2), origins, redirects, counts."""

from __future__ import annotations

import email.utils
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
import urllib3.exceptions
from tenacity import RetryError

from cxbridge.config import SystemConfig
from cxbridge.connectors import Connector
from cxbridge.errors import (
    AmbiguousOutcome,
    AuthError,
    ConfigError,
    Conflict,
    NotFound,
    RateLimited,
    Unavailable,
    VendorError,
)
from cxbridge.http import BasicAuth, CallCounter, HttpClient
from cxbridge.secrets import Secret

BASE = "https://acme.zendesk.com"
URL = BASE + "/api/v2/tickets.json"
NOW = 1_700_000_000.0


class Clock:
    """A fake clock and sleep: sleeping advances the clock and records the wait."""

    def __init__(self) -> None:
        self.now = NOW
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def make_client(
    clock: Clock,
    *,
    name: str = "zendesk",
    base_url: str = BASE,
    max_retries: int = 4,
    counter: CallCounter | None = None,
    **kw: Any,
) -> HttpClient:
    config = SystemConfig(name=name, plugin=name, base_url=base_url, max_retries=max_retries)
    kw.setdefault("cloud_domains", (".zendesk.com", ".atlassian.net"))
    return HttpClient(
        config,
        auth=BasicAuth("agent@example.com/token", Secret("client-test-token-1")),
        counter=counter if counter is not None else CallCounter(),
        sleep=clock.sleep,
        clock=clock.time,
        **kw,
    )


# --- transport failures, built as requests builds them (test_http_transport.py checks the real shapes) ---


def refused() -> Exception:
    reason = urllib3.exceptions.NewConnectionError(
        None,  # type: ignore[arg-type]
        "Failed to establish a new connection: [Errno 111] Connection refused",
    )
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, URL, reason))  # type: ignore[arg-type]


def dns_failure() -> Exception:
    reason = urllib3.exceptions.NameResolutionError(
        "acme.zendesk.com",
        None,  # type: ignore[arg-type]
        socket.gaierror(-2, "Name or service not known"),
    )
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, URL, reason))  # type: ignore[arg-type]


def connect_timeout() -> Exception:
    reason = urllib3.exceptions.ConnectTimeoutError(None, "Connection to acme.zendesk.com timed out.")
    return requests.exceptions.ConnectTimeout(urllib3.exceptions.MaxRetryError(None, URL, reason))  # type: ignore[arg-type]


def tls_certificate_failure() -> Exception:
    cert = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    reason = urllib3.exceptions.SSLError(cert)
    return requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(None, URL, reason))  # type: ignore[arg-type]


def read_timeout() -> Exception:
    return requests.exceptions.ReadTimeout(
        urllib3.exceptions.ReadTimeoutError(None, URL, "Read timed out. (read timeout=30)")  # type: ignore[arg-type]
    )


def reset_after_send() -> Exception:
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )


Outcome = Callable[[responses.RequestsMock, str, str], None]


def status(code: int, retry_after: str | None = None) -> Outcome:
    def add(mock: responses.RequestsMock, method: str, url: str) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        mock.add(method, url, status=code, json={"error": f"status {code}"}, headers=headers)

    return add


def failure(make: Callable[[], Exception]) -> Outcome:
    def add(mock: responses.RequestsMock, method: str, url: str) -> None:
        mock.add(method, url, body=make())

    return add


# RELIABILITY.md section 4, with max_retries=4 (5 attempts at most):
# (outcome, error for a GET, attempts for a GET, error for a creating POST, attempts for a creating POST)
R1: list[tuple[str, Outcome, type[VendorError], int, type[VendorError], int]] = [
    ("400", status(400), VendorError, 1, VendorError, 1),
    ("401", status(401), AuthError, 1, AuthError, 1),
    ("403", status(403), AuthError, 1, AuthError, 1),
    ("404", status(404), NotFound, 1, NotFound, 1),
    ("409", status(409), Conflict, 1, Conflict, 1),
    ("422", status(422), VendorError, 1, VendorError, 1),
    ("429", status(429, "2"), RateLimited, 5, RateLimited, 5),
    ("429-no-retry-after", status(429), RateLimited, 5, RateLimited, 5),
    ("500", status(500), Unavailable, 5, AmbiguousOutcome, 1),
    ("502", status(502), Unavailable, 5, AmbiguousOutcome, 1),
    ("503-retry-after", status(503, "2"), RateLimited, 5, RateLimited, 5),
    ("503", status(503), Unavailable, 5, AmbiguousOutcome, 1),
    ("504", status(504), Unavailable, 5, AmbiguousOutcome, 1),
    ("refused", failure(refused), Unavailable, 5, Unavailable, 5),
    ("dns", failure(dns_failure), Unavailable, 5, Unavailable, 5),
    ("connect-timeout", failure(connect_timeout), Unavailable, 5, Unavailable, 5),
    ("tls-certificate", failure(tls_certificate_failure), Unavailable, 5, Unavailable, 5),
    ("read-timeout", failure(read_timeout), Unavailable, 5, AmbiguousOutcome, 1),
    ("reset-after-send", failure(reset_after_send), Unavailable, 5, AmbiguousOutcome, 1),
]


@pytest.mark.parametrize(
    ("outcome", "get_error", "get_attempts"),
    [pytest.param(o, e, n, id=i) for i, o, e, n, _, _ in R1],
)
def test_r1_get(
    mock: responses.RequestsMock,
    clock: Clock,
    outcome: Outcome,
    get_error: type[VendorError],
    get_attempts: int,
) -> None:
    """A GET follows the table: typed error, exact attempt count, a sleep between attempts."""
    client = make_client(clock)
    outcome(mock, "GET", URL)
    with pytest.raises(VendorError) as info:
        client.get("/api/v2/tickets.json", op="tickets.list")
    assert type(info.value) is get_error
    assert len(mock.calls) == get_attempts
    assert client.counter.total(system="zendesk", op="tickets.list") == get_attempts
    assert len(clock.sleeps) == get_attempts - 1
    assert info.value.system == "zendesk"


@pytest.mark.parametrize(
    ("outcome", "post_error", "post_attempts"),
    [pytest.param(o, e, n, id=i) for i, o, _, _, e, n in R1],
)
def test_r1_creating_post(
    mock: responses.RequestsMock,
    clock: Clock,
    outcome: Outcome,
    post_error: type[VendorError],
    post_attempts: int,
) -> None:
    """A creating POST is retried only where the request was certainly not processed."""
    client = make_client(clock)
    outcome(mock, "POST", URL)
    with pytest.raises(VendorError) as info:
        client.post("/api/v2/tickets.json", op="tickets.create", json={"ticket": {}}, creates=True)
    assert type(info.value) is post_error
    assert len(mock.calls) == post_attempts
    assert client.counter.total(op="tickets.create") == post_attempts
    assert len(clock.sleeps) == post_attempts - 1
    if post_error is AmbiguousOutcome:
        assert info.value.action == "reconcile"
        assert "may or may not have been processed" in str(info.value)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_idempotent_writes_retry_5xx_and_read_timeouts(mock: responses.RequestsMock, clock: Clock, method: str) -> None:
    """PUT, PATCH, DELETE and a POST not marked creates are retried like reads, and recover."""
    client = make_client(clock)
    mock.add(method, URL, status=502)
    mock.add(method, URL, body=read_timeout())
    mock.add(method, URL, json={"ok": True}, status=200)
    response = client.request(method, "/api/v2/tickets.json", op="tickets.write", json={})
    assert response.json() == {"ok": True}
    assert len(mock.calls) == 3
    assert client.counter.by_outcome(op="tickets.write") == {"502": 1, "error": 1, "200": 1}


def test_recovers_after_transient_errors(mock: responses.RequestsMock, clock: Clock) -> None:
    """503, 503, 200: the response comes back after two backoff sleeps within the cap."""
    client = make_client(clock, backoff_cap=3.0)
    mock.get(URL, status=503)
    mock.get(URL, status=503)
    mock.get(URL, json={"tickets": []})
    assert client.get(URL, op="tickets.list").json() == {"tickets": []}
    assert len(clock.sleeps) == 2
    assert all(0 <= s <= 3.0 for s in clock.sleeps)


def test_creating_post_retries_connect_errors_then_succeeds(mock: responses.RequestsMock, clock: Clock) -> None:
    """A refused connection before a create is retried: the request never reached the server."""
    client = make_client(clock)
    mock.post(URL, body=refused())
    mock.post(URL, body=connect_timeout())
    mock.post(URL, status=201, json={"ticket": {"id": 7}})
    response = client.post(URL, op="tickets.create", json={}, creates=True)
    assert response.status_code == 201
    assert len(mock.calls) == 3


def test_max_retries_zero_means_one_attempt(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock, max_retries=0)
    mock.get(URL, status=503)
    with pytest.raises(Unavailable):
        client.get(URL, op="tickets.list")
    assert len(mock.calls) == 1
    assert clock.sleeps == []


def test_exhaustion_raises_typed_error_never_retry_error(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock, max_retries=2)
    mock.get(URL, status=504)
    with pytest.raises(Unavailable) as info:
        client.get(URL, op="tickets.list")
    assert not isinstance(info.value, RetryError)
    assert info.value.status == 504
    assert info.value.action == "retry"
    assert str(info.value) == "zendesk: 504 Gateway Timeout"


def test_backoff_is_full_jitter_and_capped(mock: responses.RequestsMock, clock: Clock) -> None:
    """Backoff sleeps are drawn from [0, min(cap, base * 2^n)]: never above the cap."""
    client = make_client(clock, max_retries=8, backoff_base=1.0, backoff_cap=4.0)
    mock.get(URL, status=500)
    with pytest.raises(Unavailable):
        client.get(URL, op="tickets.list")
    assert len(clock.sleeps) == 8
    assert all(0 <= s <= 4.0 for s in clock.sleeps)
    assert clock.sleeps[0] <= 2.0  # first retry: at most base * 2^1


# --- Retry-After (R2) -----------------------------------------------------------------------------------


def test_retry_after_seconds_is_slept(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock)
    mock.get(URL, status=429, headers={"Retry-After": "7"})
    mock.get(URL, json={})
    client.get(URL, op="tickets.list")
    assert clock.sleeps == [7.0]


def test_retry_after_http_date_uses_the_clock(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock)
    when = email.utils.formatdate(NOW + 30, usegmt=True)
    mock.get(URL, status=503, headers={"Retry-After": when})
    mock.get(URL, json={})
    client.get(URL, op="tickets.list")
    assert clock.sleeps == [30.0]


def test_retry_after_garbage_falls_back_to_backoff(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock, backoff_cap=5.0)
    mock.get(URL, status=429, headers={"Retry-After": "soon, maybe"})
    mock.get(URL, json={})
    client.get(URL, op="tickets.list")
    assert len(clock.sleeps) == 1
    assert 0 <= clock.sleeps[0] <= 5.0


def test_503_with_garbage_retry_after_on_create_is_ambiguous(mock: responses.RequestsMock, clock: Clock) -> None:
    """Only a usable Retry-After turns a 503 into rate limiting; otherwise a create's outcome is unknown."""
    client = make_client(clock)
    mock.post(URL, status=503, headers={"Retry-After": "later"})
    with pytest.raises(AmbiguousOutcome):
        client.post(URL, op="tickets.create", json={}, creates=True)
    assert len(mock.calls) == 1


@pytest.mark.parametrize(("header", "expected"), [("86400", 300.0), ("120", 120.0), ("61", 61.0)])
def test_long_retry_after_is_not_slept(
    mock: responses.RequestsMock, clock: Clock, header: str, expected: float
) -> None:
    """A wait beyond max_inline_wait raises RateLimited at once with retry_after (capped at 300 s)."""
    client = make_client(clock, max_inline_wait=60.0)
    mock.get(URL, status=429, headers={"Retry-After": header})
    with pytest.raises(RateLimited) as info:
        client.get(URL, op="tickets.list")
    assert info.value.retry_after == expected
    assert info.value.action == "rate-limited"
    assert clock.sleeps == []
    assert len(mock.calls) == 1


def test_retry_after_cap_is_configurable(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock, retry_after_cap=10.0)
    mock.get(URL, status=429, headers={"Retry-After": "3600"})
    mock.get(URL, json={})
    client.get(URL, op="tickets.list")
    assert clock.sleeps == [10.0]


def test_rate_limit_exhausted_keeps_retry_after(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock, max_retries=2)
    mock.post(URL, status=429, headers={"Retry-After": "5"})
    with pytest.raises(RateLimited) as info:
        client.post(URL, op="tickets.create", json={}, creates=True)
    assert info.value.retry_after == 5.0
    assert info.value.status == 429
    assert clock.sleeps == [5.0, 5.0]
    assert "(retry after 5s)" in str(info.value)


# --- URLs, redirects, ok ----------------------------------------------------------------------------------


def test_paths_are_joined_to_the_base_url(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock, base_url="https://acme.atlassian.net/")
    mock.get("https://acme.atlassian.net/rest/api/3/myself", json={})
    client.get("rest/api/3/myself", op="myself")
    client.get("/rest/api/3/myself", op="myself")
    assert client.base_url == "https://acme.atlassian.net"
    assert [c.request.url for c in mock.calls] == ["https://acme.atlassian.net/rest/api/3/myself"] * 2


def test_same_origin_absolute_url_is_followed(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock)
    mock.get(BASE + "/api/v2/tickets.json?page[after]=abc", json={})
    client.get(BASE + "/api/v2/tickets.json?page[after]=abc", op="tickets.list")
    client.get("HTTPS://ACME.zendesk.com:443/api/v2/tickets.json?page[after]=abc", op="tickets.list")
    assert len(mock.calls) == 2


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/api/v2/tickets.json",
        "http://acme.zendesk.com/api/v2/tickets.json",
        "https://acme.zendesk.com:8443/api/v2/tickets.json",
        "https://other.zendesk.com/api/v2/tickets.json",
        "https://acme.zendesk.com.evil.com/api/v2/tickets.json",
        "https://acme.zendesk.com@evil.com/api/v2/tickets.json",
        "https://user@acme.zendesk.com/api/v2/tickets.json",
        "//evil.example/api/v2/tickets.json",
        "https://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ],
)
def test_foreign_absolute_urls_are_refused(mock: responses.RequestsMock, clock: Clock, url: str) -> None:
    """A pagination or payload link on another origin is never followed, and nothing is sent."""
    client = make_client(clock)
    with pytest.raises(VendorError, match="not on the configured origin"):
        client.get(url, op="tickets.list")
    assert len(mock.calls) == 0
    assert client.counter.total() == 0


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirects_are_never_followed(mock: responses.RequestsMock, clock: Clock, code: int) -> None:
    client = make_client(clock)
    mock.get(URL, status=code, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    target = mock.get("http://169.254.169.254/latest/meta-data/", body="secret metadata")
    with pytest.raises(VendorError, match="not followed") as info:
        client.get(URL, op="tickets.list")
    assert type(info.value) is VendorError
    assert info.value.status == code
    assert target.call_count == 0
    assert len(mock.calls) == 1


def test_ok_accepts_listed_statuses(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock)
    mock.get(URL, status=404, json={"error": "RecordNotFound"})
    assert client.get(URL, op="tickets.show", ok={200, 404}).status_code == 404
    mock.get(BASE + "/x", status=200)
    with pytest.raises(VendorError):  # 200 not listed: refused
        client.get("/x", op="x", ok={204})


# --- messages -----------------------------------------------------------------------------------------------


def jira_errors(response: requests.Response) -> str | None:
    body = response.json()
    return "; ".join([*body.get("errorMessages", []), *body.get("errors", {}).values()]) or None


def test_message_names_system_status_and_vendor_words(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock, name="jira", base_url="https://acme.atlassian.net", error_message=jira_errors)
    mock.post(
        "https://acme.atlassian.net/rest/api/3/issue",
        status=400,
        json={"errorMessages": [], "errors": {"priority": "Field 'priority' is required"}},
    )
    with pytest.raises(VendorError) as info:
        client.post("/rest/api/3/issue", op="issue.create", json={}, creates=True)
    assert str(info.value) == "jira: 400 Bad Request: Field 'priority' is required"
    assert info.value.vendor_message == "Field 'priority' is required"
    assert info.value.status == 400
    assert info.value.action == "fail"


def test_auth_error_message(mock: responses.RequestsMock, clock: Clock) -> None:
    def zendesk_error(response: requests.Response) -> str | None:
        body = response.json()
        return str(body["error"]) if isinstance(body.get("error"), str) else None

    client = make_client(clock, error_message=zendesk_error)
    mock.get(URL, status=401, json={"error": "Couldn't authenticate you"})
    with pytest.raises(AuthError) as info:
        client.get(URL, op="tickets.list")
    assert str(info.value) == "zendesk: 401 Unauthorized: Couldn't authenticate you"
    assert info.value.action == "fail-config"


def test_broken_error_parser_keeps_the_status(mock: responses.RequestsMock, clock: Clock) -> None:
    def broken(response: requests.Response) -> str | None:
        return str(response.json()["no such key"])

    client = make_client(clock, error_message=broken)
    mock.get(URL, status=404, body="<html><body>Not here</body></html>", content_type="text/html")
    with pytest.raises(NotFound) as info:
        client.get(URL, op="tickets.show")
    assert str(info.value) == "zendesk: 404 Not Found"
    assert info.value.vendor_message is None


def test_vendor_message_is_one_line(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock)
    mock.get(URL, status=422, body="bad\r\nInjected: line\n", content_type="text/plain")
    with pytest.raises(VendorError) as info:
        client.get(URL, op="tickets.list")
    assert str(info.value) == "zendesk: 422 Unprocessable Entity: bad Injected: line"
    assert "\n" not in str(info.value)


# --- session, headers, timeouts, counts ---------------------------------------------------------------------


def test_request_carries_auth_headers_and_timeouts(mock: responses.RequestsMock, clock: Clock) -> None:
    config = SystemConfig(name="zendesk", plugin="zendesk", base_url=BASE, timeout=12.0, connect_timeout=3.0)
    client = HttpClient(
        config,
        auth=BasicAuth("agent@example.com/token", Secret("client-test-token-2")),
        default_headers={"X-Extra": "1"},
        cloud_domains=(".zendesk.com",),
        counter=CallCounter(),
        sleep=clock.sleep,
    )
    mock.get(URL, json={})
    client.get(URL, op="tickets.list", headers={"Accept": "application/vnd.test+json"})
    sent = mock.calls[0].request
    assert sent.headers["Authorization"].startswith("Basic ")
    assert sent.headers["X-Extra"] == "1"
    assert sent.headers["Accept"] == "application/vnd.test+json"
    assert sent.headers["User-Agent"].startswith("cxbridge/")
    assert sent.req_kwargs["timeout"] == (3.0, 12.0)  # type: ignore[attr-defined]


def test_each_client_has_its_own_session(clock: Clock) -> None:
    a, b = make_client(clock), make_client(clock)
    assert isinstance(a.session, requests.Session)
    assert a.session is not b.session
    shared = requests.Session()
    c = make_client(clock, session=shared)
    assert c.session is shared
    c.close()  # an injected session is the caller's to close
    assert shared.adapters


def test_counts_per_system_and_op(mock: responses.RequestsMock, clock: Clock) -> None:
    counter = CallCounter()
    zendesk = make_client(clock, counter=counter)
    jira = make_client(clock, name="jira", base_url="https://acme.atlassian.net", counter=counter)
    mock.get(URL, json={})
    mock.get("https://acme.atlassian.net/rest/api/3/issue/A-1", status=503)
    mock.get("https://acme.atlassian.net/rest/api/3/issue/A-1", json={})
    zendesk.get(URL, op="tickets.list")
    zendesk.get(URL, op="tickets.list")
    jira.get("/rest/api/3/issue/A-1", op="issue.show")
    assert counter.total() == 4
    assert counter.by_system() == {"zendesk": 2, "jira": 2}
    assert counter.by_op() == {"tickets.list": 2, "issue.show": 2}
    assert counter.by_op("jira") == {"issue.show": 2}
    assert counter.by_outcome("jira") == {"503": 1, "200": 1}
    assert counter.snapshot() == {
        ("zendesk", "tickets.list", "200"): 2,
        ("jira", "issue.show", "503"): 1,
        ("jira", "issue.show", "200"): 1,
    }
    counter.reset()
    assert counter.total() == 0


def test_counter_is_thread_safe() -> None:
    counter = CallCounter()

    def work() -> None:
        for _ in range(2000):
            counter.record("s", "op", 200)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.total() == 16000


def test_bad_base_url_is_refused_at_construction(clock: Clock) -> None:
    with pytest.raises(ConfigError, match=r"systems\.zendesk\.base_url"):
        make_client(clock, base_url="https://acme.zendesk.com.evil.com")


def test_connector_from_config_builds_a_working_client(mock: responses.RequestsMock) -> None:
    """``Connector.from_config`` passes every keyword the client takes."""

    class Demo(Connector):
        system = "demo"
        cloud_domains = (".zendesk.com",)
        default_headers = {"X-Demo": "yes"}

        @classmethod
        def make_auth(cls, config: SystemConfig) -> requests.auth.AuthBase:
            return BasicAuth("a@example.com/token", config.get("token"))

        @staticmethod
        def error_message(response: requests.Response) -> str | None:
            return str(response.json().get("description"))

        def check(self) -> str:
            return "ok"

    config = SystemConfig(
        name="demo", plugin="demo", base_url=BASE, max_retries=0, options={"token": Secret("demo-token-123")}
    )
    counter = CallCounter()
    connector = Demo.from_config(config, counter=counter)
    mock.get(URL, status=404, json={"error": "RecordNotFound", "description": "Not found"})
    with pytest.raises(NotFound, match=r"^demo: 404 Not Found: Not found$"):
        connector.http.get(URL, op="tickets.list")
    assert mock.calls[0].request.headers["X-Demo"] == "yes"
    assert counter.total(system="demo") == 1


def test_after_a_retry_after_no_call_goes_out_before_the_vendors_time(
    mock: responses.RequestsMock, clock: Clock
) -> None:
    """One 429 holds every later call on the shared client: refused with the time left, no call spent on a 429."""
    client = make_client(clock, max_inline_wait=1.0)
    mock.get(URL, status=429, headers={"Retry-After": "30"})
    with pytest.raises(RateLimited):
        client.get(URL, op="tickets.list")
    clock.now += 10
    with pytest.raises(RateLimited) as info:
        client.get(URL, op="tickets.show")
    assert info.value.retry_after == 20.0
    assert "not sent" in str(info.value)
    assert len(mock.calls) == 1  # the refusal made no call
    clock.now += 20
    mock.replace(responses.GET, URL, json={"ok": True})
    assert client.get(URL, op="tickets.list").json() == {"ok": True}
    assert len(mock.calls) == 2


def test_a_short_pause_is_waited_out_inline(mock: responses.RequestsMock, clock: Clock) -> None:
    client = make_client(clock, max_inline_wait=60.0)
    mock.get(URL, status=429, headers={"Retry-After": "5"})
    mock.get(URL, json={"n": 1})
    client.get(URL, op="tickets.list")  # slept 5 s, then succeeded
    mock.get(URL, json={"n": 2})
    client.get(URL, op="tickets.list")
    assert clock.sleeps == [5.0]  # the pause was over: the next call did not wait again


def test_the_environments_proxy_is_read_once_at_build(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY and NO_PROXY still apply, decided once for the base URL instead of on every request."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = make_client(clock)
    assert client.session.proxies.get("https") == "http://proxy.internal.example:3128"
    assert client.session.trust_env is False
    monkeypatch.setenv("NO_PROXY", ".zendesk.com")
    assert "https" not in make_client(clock).session.proxies


def test_the_environments_ca_bundle_is_kept(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/corporate.pem")
    assert make_client(clock).session.verify == "/etc/ssl/certs/corporate.pem"


# --- the client's own session sends what Session.request would --------------------------------------------


@pytest.mark.parametrize("call", ["get", "post"])
def test_own_session_sends_what_session_request_sends(mock: responses.RequestsMock, clock: Clock, call: str) -> None:
    """The client's own session prepares and sends a request directly (no per-call merge in Session.request);
    the request on the wire is the one an injected session's ``Session.request`` sends: method, URL with the
    session's and the call's params, headers (the session's under the call's, a None dropped), auth, cookies,
    body, and the session's response hooks run."""
    sent: list[requests.PreparedRequest] = []
    hooked: list[str] = []

    def configure(session: requests.Session) -> None:
        session.trust_env = False
        session.headers["X-Session"] = "kept"
        session.headers["X-Dropped"] = "session value"
        session.params = {"locale": "en"}
        session.cookies.set("sid", "abc", domain="acme.zendesk.com", path="/")
        session.hooks["response"].append(lambda r, *a, **k: hooked.append(r.url))

    mock.get(URL, json={})
    mock.post(URL, json={}, status=201)
    own = make_client(clock)
    assert own._own_session
    configure(own.session)
    injected_session = requests.Session()
    configure(injected_session)
    injected = make_client(clock, session=injected_session)
    kwargs: dict[str, Any] = {"op": "tickets", "params": {"page": 2}, "headers": {"X-Dropped": None}}
    if call == "post":
        kwargs["json"] = {"ticket": {"subject": "Hi"}}
    for client in (own, injected):
        getattr(client, call)(URL, **kwargs)
        sent.append(mock.calls[-1].request)
    a, b = sent
    assert (a.method, a.url, a.body) == (b.method, b.url, b.body)
    assert dict(a.headers) == dict(b.headers)
    assert "locale=en" in str(a.url)
    assert "page=2" in str(a.url)
    assert a.headers["X-Session"] == "kept"
    assert "X-Dropped" not in a.headers
    assert a.headers["Cookie"] == "sid=abc"
    assert a.headers["Authorization"].startswith("Basic ")
    assert len(hooked) == 2
