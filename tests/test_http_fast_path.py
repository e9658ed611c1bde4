"""HttpClient's own session prepares requests and hands them to the adapter itself: the same request on the wire,
the same response, the same errors as ``Session.request`` (which an injected session still goes through)."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import logging
import re
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from cxbridge.config import SystemConfig
from cxbridge.errors import AmbiguousOutcome, Unavailable, VendorError
from cxbridge.http import BasicAuth, BearerAuth, CallCounter, HttpClient
from cxbridge.http.client import _plain_prefix
from cxbridge.http.retry import classify_transport_error
from cxbridge.http.transport import DirectAdapter
from cxbridge.secrets import Secret

BASE = "https://acme.zendesk.com"


def make_client(
    *, base_url: str = BASE, sandbox: bool = False, session: requests.Session | None = None, **kw: Any
) -> HttpClient:
    config = SystemConfig(name="zendesk", plugin="zendesk", base_url=base_url, sandbox=sandbox, max_retries=2)
    kw.setdefault("auth", BasicAuth("agent@example.com/token", Secret("fast-path-token-1")))
    kw.setdefault("sleep", lambda seconds: None)
    return HttpClient(config, counter=CallCounter(), session=session, cloud_domains=(".zendesk.com",), **kw)


def injected(**kw: Any) -> HttpClient:
    """A client on an injected session: every call goes through ``Session.request``."""
    session = requests.Session()
    session.trust_env = False
    return make_client(session=session, **kw)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def wire(request: requests.PreparedRequest) -> tuple[Any, ...]:
    return (request.method, request.url, request.body, list(request.headers.items()))


# --- the URL ----------------------------------------------------------------------------------------------


PATHS = [
    "/api/v2/tickets/1.json",
    "/api/v2/tickets.json",
    "/",
    "/a//b/",
    "/rest/api/3/issue/ABC-12/remotelink",
    "/crm/v3/objects/contacts/ada@acme.example",
    "/api/v2/search.json?query=type:ticket",
    "/a/./b",
    "/a/../b",
    "/.well-known/x",
    "/a/b c",
    "/caf\u00e9",
    "/a%2Fb",
    "/a%zz",
    "/a#frag",
    "/a;b=c",
    "/~user/x_y-z",
]
PARAMS: list[Any] = [
    None,
    {},
    {"include": "users,organizations"},
    {"a": None, "b": "2"},
    {"fields": ["summary", "status"], "n": 3, "flag": True},
    {"q": "caf\u00e9 & b\u00e4r=1+2/3?#"},
    {"k": b"raw bytes \xff"},
    [("a", "1"), ("a", "2"), ("b", None)],
    (("x", "y"),),
    {b"bytes-key": "v", "f": 1.5},
    "already=encoded&x=1",
    b"raw=bytes",
]


@pytest.mark.parametrize("base", ["https://acme.zendesk.com", "http://127.0.0.1:8080", "https://acme.zendesk.com/x"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("params", PARAMS, ids=repr)
def test_the_url_is_the_one_requests_prepares(base: str, path: str, params: Any) -> None:
    """Built directly or by requests, the prepared URL equals ``PreparedRequest.prepare_url``'s."""
    client = make_client(base_url=base, sandbox=base.startswith("http:"), allow_any_https_host=True)
    url = base + path
    expected = requests.PreparedRequest()
    expected.prepare_url(url, params)
    assert client._prepared_url(requests.PreparedRequest(), url, params) == expected.url


@settings(max_examples=300, deadline=None)
@given(
    path=st.text(alphabet=st.sampled_from("abcXYZ019-._~/%?#@:; \u00e9"), max_size=20),
    params=st.none()
    | st.dictionaries(
        st.text(max_size=5),
        st.none() | st.text(max_size=8) | st.integers() | st.lists(st.text(max_size=4), max_size=3),
        max_size=3,
    ),
)
def test_the_url_matches_requests_for_any_path_and_params(path: str, params: Any) -> None:
    client = make_client()
    url = BASE + "/" + path
    expected = requests.PreparedRequest()
    expected.prepare_url(url, params)
    assert client._prepared_url(requests.PreparedRequest(), url, params) == expected.url


@pytest.mark.parametrize(
    ("base", "plain"),
    [
        ("https://acme.zendesk.com", True),
        ("http://127.0.0.1:8080", True),
        ("https://acme.zendesk.com/jira", True),
        ("https://Acme.Zendesk.com", False),  # requests lower-cases the host
        ("HTTPS://acme.zendesk.com", False),
        ("http://127.0.0.1:0080", False),  # and drops the padding of a port
        ("https://acme.zendesk.com/a/../b", False),
    ],
)
def test_only_a_base_url_requests_leaves_alone_is_used_as_is(base: str, plain: bool) -> None:
    assert (_plain_prefix(base) == base) is plain


# --- the request on the wire ------------------------------------------------------------------------------


CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/v2/tickets/1.json", {}),
    ("GET", "/api/v2/tickets/1.json", {"params": {"include": "users,organizations"}}),
    ("GET", BASE + "/api/v2/tickets.json?page=2&per_page=100", {}),
    ("GET", "api/v2/search.json", {"params": [("query", "type:ticket status<solved"), ("x", None)]}),
    ("POST", "/api/v2/tickets.json", {"json": {"ticket": {"subject": "H\u00e9"}}, "creates": True}),
    ("POST", "/api/v2/uploads.json", {"data": b"\x00bytes", "headers": {"Content-Type": "image/png"}}),
    ("POST", "/api/v2/tickets/1/tags.json", {}),
    ("PUT", "/api/v2/tickets/1.json", {"json": {"ticket": {"status": "open"}}, "headers": {"Idempotency-Key": "k1"}}),
    ("PATCH", "/api/v2/tickets/1.json", {"data": {"a": "1", "b": ["2", "3"]}}),
    ("DELETE", "/api/v2/tickets/1/tags.json", {"headers": {"accept": "text/plain", "User-Agent": None}}),
]


ANY_URL = re.compile(r"https://acme\.zendesk\.com/.*")


def answer(
    status: int = 200, headers: dict[str, str] | None = None
) -> Callable[[Any], tuple[int, dict[str, str], str]]:
    return lambda request: (status, dict(headers or {}), "{}")


@pytest.mark.parametrize(("method", "path", "kwargs"), CALLS)
@pytest.mark.parametrize("auth", ["basic", "bearer", "none"])
def test_own_session_sends_exactly_what_session_request_sends(
    mock: responses.RequestsMock, method: str, path: str, kwargs: dict[str, Any], auth: str
) -> None:
    """Method, URL, body and headers (names, values and order) equal those of ``Session.request``."""
    auths: dict[str, Any] = {
        "basic": BasicAuth("agent@example.com/token", Secret("fast-path-token-1")),
        "bearer": BearerAuth(Secret("fast-path-bearer-1")),
        "none": None,
    }
    mock.add_callback(method, ANY_URL, callback=answer())
    sent = []
    for client in (
        make_client(auth=auths[auth], default_headers={"X-Extra": "1"}),
        injected(auth=auths[auth], default_headers={"X-Extra": "1"}),
    ):
        client.request(method, path, op="x", **kwargs)
        sent.append(wire(mock.calls[-1].request))
        assert mock.calls[-1].request.req_kwargs == {  # type: ignore[attr-defined]
            "timeout": (5.0, 30.0),
            "proxies": {},
            "stream": False,
            "verify": client.session.verify,  # the own session's CA bundle is settled from the environment
            "cert": None,
        }
    assert sent[0] == sent[1]


def test_edited_session_or_default_headers_are_sent_on_the_next_call(mock: responses.RequestsMock) -> None:
    """The merged session and default headers are kept between calls, never stale after an edit."""
    mock.add_callback("GET", ANY_URL, callback=answer())
    client = make_client()
    client.get("/a", op="x")
    assert "X-Later" not in mock.calls[-1].request.headers
    client.session.headers["X-Later"] = "1"
    client.get("/a", op="x")
    assert mock.calls[-1].request.headers["X-Later"] == "1"
    client.session.headers["X-Later"] = "2"
    client.default_headers["Accept"] = "application/vnd.x+json"
    client.get("/a", op="x")
    assert mock.calls[-1].request.headers["X-Later"] == "2"
    assert mock.calls[-1].request.headers["Accept"] == "application/vnd.x+json"
    client.session.headers["Accept-Encoding"] = None  # type: ignore[assignment]  # requests drops a None
    client.get("/a", op="x", headers={"X-Call": "c"})
    sent = mock.calls[-1].request.headers
    assert "Accept-Encoding" not in sent
    assert sent["X-Call"] == "c"
    del client.session.headers["Accept-Encoding"]
    client.get("/a", op="x")
    assert "Accept-Encoding" not in mock.calls[-1].request.headers
    assert "X-Call" not in mock.calls[-1].request.headers  # a call's header is for that call only


def test_an_invalid_header_is_refused_before_sending(mock: responses.RequestsMock) -> None:
    mock.add_callback("GET", ANY_URL, callback=answer())
    for client in (make_client(), injected()):
        with pytest.raises(VendorError, match="invalid request"):
            client.get("/a", op="x", headers={"X-Bad": "a\r\nInjected: 1"})
    client = make_client(default_headers={"X-Bad": " leading space"})
    with pytest.raises(VendorError, match="invalid request"):
        client.get("/a", op="x")
    assert len(mock.calls) == 0


def test_a_vendor_cookie_is_kept_and_sent_back_as_before(mock: responses.RequestsMock) -> None:
    """A Set-Cookie answer goes into the session's jar and the next request carries it, as with ``Session.send``."""
    mock.add_callback("GET", BASE + "/login", callback=answer(headers={"Set-Cookie": "sid=abc; Path=/"}))
    mock.add_callback("GET", BASE + "/next", callback=answer())
    for client in (make_client(), injected()):
        client.get("/next", op="x")
        assert "Cookie" not in mock.calls[-1].request.headers
        client.get("/login", op="x")
        client.get("/next", op="x")
        assert mock.calls[-1].request.headers["Cookie"] == "sid=abc"
        assert client.session.cookies.get("sid") == "abc"


def test_a_listed_redirect_keeps_its_next_request(mock: responses.RequestsMock) -> None:
    """With ``ok`` naming a 3xx, the response's ``next`` is the request ``Session.send`` would have kept."""
    mock.add_callback("GET", BASE + "/old", callback=answer(302, {"Location": "/new"}))
    nexts = []
    for client in (make_client(), injected()):
        response = client.get("/old", op="x", ok=(302,))
        assert response.next is not None
        nexts.append(wire(response.next))
    assert nexts[0] == nexts[1]
    assert nexts[0][1] == BASE + "/new"


def test_a_response_hook_can_replace_the_response(mock: responses.RequestsMock) -> None:
    mock.add_callback("GET", ANY_URL, callback=answer(500))
    ok = requests.Response()
    ok.status_code = 200
    ok._content = b"{}"
    for client in (make_client(), injected()):
        client.session.hooks["response"].append(lambda r, *a, **k: ok)
        assert client.get("/a", op="x") is ok


def test_the_first_attempt_is_sent_once_and_retries_are_numbered_from_it(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    """Only a failure builds tenacity's loop; it sees that failure as attempt 1 (logs, backoff, attempt count)."""
    mock.get(BASE + "/a", status=503)
    mock.get(BASE + "/a", status=502)
    mock.get(BASE + "/a", json={"ok": True})
    sleeps: list[float] = []
    client = make_client(sleep=sleeps.append)
    with caplog.at_level(logging.INFO, logger="cxbridge.http"):
        assert client.get("/a", op="x").json() == {"ok": True}
    assert len(mock.calls) == 3
    assert len(sleeps) == 2
    assert [r.getMessage().split(" failed")[0] for r in caplog.records] == [
        "zendesk: attempt 1 of 3",
        "zendesk: attempt 2 of 3",
    ]
    mock.replace(responses.GET, BASE + "/a", status=503)
    with pytest.raises(Unavailable):
        client.get("/a", op="x")
    assert len(mock.calls) == 6  # three attempts: max_retries=2


# --- over a socket: the body read in one go, with the errors of Response.content -------------------------


class RawServer:
    """A loopback server answering each request with the raw bytes its path names, keeping connections alive."""

    def __init__(self, answers: dict[str, bytes], tls: ssl.SSLContext | None = None) -> None:
        self.answers = answers
        self.tls = tls
        self.requests: list[bytes] = []
        self.hung_up = threading.Event()  # set when the server hung up after an "X-Then: hang-up" answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self._answer(conn)
        except OSError:  # a client that refused the certificate
            pass
        finally:
            conn.close()

    def _answer(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                buffer += conn.recv(65536)
            buffer = buffer[length:]
            self.requests.append(head)
            path = head.split(b" ")[1].decode().split("?")[0]
            answer = self.answers[path]
            if answer == b"":  # no answer: wait until the client gives up
                while conn.recv(65536):
                    pass
                return
            if answer == b"drop":  # the request was read; hang up without a word
                return
            conn.sendall(answer)
            if b"X-Then: hang-up" in answer:
                conn.close()
                self.hung_up.set()
                return
            if b"Content-Length: 100\r\n" in answer:  # the truncated answer: hang up
                return

    def close(self) -> None:
        self.sock.close()


def http_answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


BODY = json.dumps({"ticket": {"id": 1, "subject": "café " * 200}}).encode()


def chunked(body: bytes, size: int = 700) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


@pytest.fixture
def server() -> Iterator[RawServer]:
    srv = RawServer(
        {
            "/plain": http_answer(BODY),
            "/chunked": http_answer(chunked(BODY), "Transfer-Encoding: chunked"),
            "/gzip": http_answer(gzip.compress(BODY), "Content-Encoding: gzip"),
            "/gzip-members": http_answer(gzip.compress(BODY[:99]) + gzip.compress(BODY[99:]), "Content-Encoding: gzip"),
            "/gzip-trailing": http_answer(gzip.compress(BODY) + b"\x00\x00 trailing", "Content-Encoding: gzip"),
            "/gzip-cut": http_answer(gzip.compress(BODY)[:-12], "Content-Encoding: gzip"),
            "/deflate": http_answer(zlib.compress(BODY), "Content-Encoding: deflate"),
            "/raw-deflate": http_answer(zlib.compress(BODY, wbits=-15), "Content-Encoding: deflate"),
            "/unknown-coding": http_answer(BODY, "Content-Encoding: x-custom"),
            "/twice": http_answer(BODY, "X-Seen: a", "X-Seen: b"),
            "/hang-up": http_answer(BODY, "X-Then: hang-up"),
            "/close": http_answer(BODY, "Connection: close"),
            "/silent": b"",
            "/drop": b"drop",
            "/empty": http_answer(b"", status="204 No Content"),
            "/cut": http_answer(BODY[:10], "Content-Length: 100"),
            "/bad-gzip": http_answer(b"not gzip at all", "Content-Encoding: gzip"),
            "/cookie": http_answer(b"{}", "Set-Cookie: sid=xyz; Path=/"),
        }
    )
    yield srv
    srv.close()


def loopback_clients(port: int) -> list[HttpClient]:
    base = f"http://127.0.0.1:{port}"
    return [make_client(base_url=base, sandbox=True), injected(base_url=base, sandbox=True)]


def sent_directly(client: HttpClient) -> bool:
    """Whether ``client``'s calls went out through ``DirectAdapter``'s own connections (no urllib3 pool was
    made); read before ``close``, which empties the pools."""
    adapter = client.session.get_adapter(client.base_url)
    return isinstance(adapter, DirectAdapter) and not adapter.poolmanager.pools


ANSWERED = [
    "/plain",
    "/chunked",
    "/gzip",
    "/gzip-members",
    "/gzip-trailing",
    "/deflate",
    "/raw-deflate",
    "/unknown-coding",
    "/empty",
]


@pytest.mark.parametrize("path", [*ANSWERED, "/twice", "/close"])
def test_bodies_read_over_a_socket_are_those_of_response_content(server: RawServer, path: str) -> None:
    """cxbridge's own session (``DirectAdapter``) and an injected one (requests' adapter on urllib3) give the same
    response: status, body decoded, headers (repeated ones joined), reason, encoding."""
    results, direct = [], []
    for client in loopback_clients(server.port):
        for _ in range(2):  # the second call reuses the connection: the first body was read to its end
            response = client.get(path, op="x")
            results.append(
                (response.status_code, response.content, dict(response.headers), response.reason, response.encoding)
            )
        direct.append(sent_directly(client))
        client.close()
    assert direct == [True, False]
    assert all(r == results[0] for r in results)
    assert results[0][1] == (b"" if path == "/empty" else BODY)
    if path == "/twice":
        assert results[0][2]["X-Seen"] == "a, b"


def test_the_requests_on_the_wire_are_those_requests_sends(server: RawServer) -> None:
    """The same bytes reach the server from cxbridge's own session and from requests' adapter: request line,
    Host and every header in the same order."""
    heads, direct = [], []
    for client in loopback_clients(server.port):
        client.get("/plain", op="x", params={"include": "users", "q": "café b"})
        client.post("/plain", op="x", json={"ticket": {"comment": {"body": "café"}}})
        client.put("/plain", op="x", data="a=1")
        heads.append(server.requests[-3:])
        direct.append(sent_directly(client))
        client.close()
    assert direct == [True, False]
    assert heads[0] == heads[1]
    assert heads[0][0].startswith(b"GET /plain?include=users&q=caf%C3%A9+b HTTP/1.1\r\nHost: 127.0.0.1:")


def test_a_pooled_connection_the_server_closed_is_not_used(server: RawServer) -> None:
    """The server hangs up after an answer without saying so: the next call opens a new connection (as urllib3
    does) instead of failing on the dead one; an answer with ``Connection: close`` closes it at once."""
    for client in loopback_clients(server.port):
        for first in ("/hang-up", "/close"):
            server.hung_up.clear()
            assert client.get(first, op="x").content == BODY
            assert first == "/close" or server.hung_up.wait(5)
            assert client.post("/plain", op="x", json={}, creates=True).content == BODY
        client.close()


def transport_failures(server: RawServer, base: str, call: Callable[[HttpClient], Any]) -> list[tuple[Any, ...]]:
    """The typed error each kind of client raises for ``call``: (type, action, message with the port masked)."""
    failures = []
    for client in loopback_clients(server.port):
        client.base_url = base
        client._plain_prefix = _plain_prefix(base)
        with pytest.raises(VendorError) as info:
            call(client)
        failures.append((type(info.value), info.value.action, re.sub(r":\d+", ":PORT", str(info.value))))
        client.close()
    return failures


def test_a_refused_connection_is_a_request_not_sent(server: RawServer) -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    failures = transport_failures(server, closed, lambda c: c.post("/plain", op="x", json={}, creates=True))
    assert failures[0] == failures[1]
    assert failures[0][:2] == (Unavailable, "retry")
    assert "connection refused" in failures[0][2]


@pytest.mark.parametrize(("path", "reason"), [("/drop", "connection reset after the request was sent")])
def test_an_answer_lost_after_sending_is_ambiguous_for_a_create(server: RawServer, path: str, reason: str) -> None:
    base = f"http://127.0.0.1:{server.port}"
    failures = transport_failures(server, base, lambda c: c.post(path, op="x", json={}, creates=True))
    assert failures[0] == failures[1]
    assert failures[0][0] is AmbiguousOutcome
    assert reason in failures[0][2]


def test_a_read_timeout_is_ambiguous_for_a_create(server: RawServer) -> None:
    base = f"http://127.0.0.1:{server.port}"

    def call(client: HttpClient) -> Any:
        client.timeout = (5.0, 0.2)
        return client.post("/silent", op="x", json={}, creates=True)

    failures = transport_failures(server, base, call)
    assert failures[0] == failures[1]
    assert failures[0][0] is AmbiguousOutcome
    assert "no answer before the read timeout" in failures[0][2]


def test_a_proxied_request_is_left_to_urllib3(server: RawServer) -> None:
    """A proxy in effect for the URL: the request goes through requests' own adapter, to the proxy."""
    client = make_client(base_url=f"http://127.0.0.1:{server.port}", sandbox=True)
    absolute = f"http://127.0.0.1:{server.port}/plain"
    server.answers[absolute] = server.answers["/plain"]
    client.session.proxies = {"http": f"http://127.0.0.1:{server.port}"}
    assert client.get("/plain", op="x").content == BODY
    assert server.requests[-1].startswith(f"GET {absolute} HTTP/1.1".encode())
    client.close()


@pytest.mark.parametrize("path", ["/cut", "/bad-gzip"])
def test_a_broken_body_fails_as_with_response_content(server: RawServer, path: str) -> None:
    """A body cut short or not decodable: ``ChunkedEncodingError`` / ``ContentDecodingError`` as requests raises,
    classified and retried as before."""
    messages = []
    for client in loopback_clients(server.port):
        with pytest.raises(VendorError) as info:
            client.get(path, op="x")
        messages.append((type(info.value), info.value.action, str(info.value).replace(str(server.port), "PORT")))
        client.close()
    assert messages[0] == messages[1]
    assert messages[0][:2] == (Unavailable, "retry")
    assert "the answer was cut off" in messages[0][2]


def test_a_gzip_stream_cut_short_is_an_answer_cut_off(server: RawServer) -> None:
    """The one documented difference from urllib3, which returns the part of such a body it could inflate:
    cxbridge's own session fails the call as a cut-off answer (retried, and ambiguous for a create)."""
    client = make_client(base_url=f"http://127.0.0.1:{server.port}", sandbox=True)
    with pytest.raises(Unavailable, match="the answer was cut off"):
        client.get("/gzip-cut", op="x")
    with pytest.raises(AmbiguousOutcome, match="the answer was cut off"):
        client.post("/gzip-cut", op="x", json={}, creates=True)
    client.close()


def test_a_cookie_set_over_a_socket_is_sent_back(server: RawServer) -> None:
    for client in loopback_clients(server.port):
        client.get("/cookie", op="x")
        client.get("/plain", op="x")
        assert b"Cookie: sid=xyz" in server.requests[-1]
        client.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for localhost and 127.0.0.1 (PEM path) and its key (PEM path)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    where = tmp_path_factory.mktemp("tls")
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def test_tls_is_verified_as_urllib3_verifies_it(certificate: tuple[str, str]) -> None:
    """Over TLS, ``DirectAdapter`` answers as requests' adapter does with the certificate's own bundle, and
    fails the same way (a request not sent) against the default bundle, which does not trust it."""
    cert_path, key_path = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    server = RawServer({"/plain": http_answer(BODY)}, tls=context)
    url = f"https://localhost:{server.port}/plain"
    seen, pooled = [], []
    try:
        for adapter in (DirectAdapter(), requests.adapters.HTTPAdapter()):
            session = requests.Session()
            session.trust_env = False
            session.mount("https://", adapter)
            answers = [session.get(url, verify=cert_path, timeout=(5, 5)) for _ in range(2)]
            with pytest.raises(requests.exceptions.SSLError) as info:
                session.get(url, verify=True, timeout=(5, 5))
            failure = classify_transport_error(info.value)
            pools = len(adapter.poolmanager.pools)  # DirectAdapter made none: it connected and verified itself
            seen.append(([(a.status_code, a.content) for a in answers], failure.not_sent, failure.reason))
            pooled.append(pools > 0)
            session.close()
    finally:
        server.close()
    assert seen[0] == seen[1]
    assert seen[0] == ([(200, BODY), (200, BODY)], True, "TLS certificate verification failed")
    assert pooled == [False, True]


HEADER_BLOCKS = [
    b"Content-Type: application/json\r\nContent-Length: 2\r\n",
    b"X-Rate-Limit: 700\r\nx-rate-limit-remaining: 699\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n",
    b"X-Spaces:    padded value   \r\nX-Empty:\r\nX-Colon: a:b:c\r\n",
    b"X-Folded: first\r\n second\r\n\tthird\r\nX-After: yes\r\n",
    b"X-Latin: caf\xe9\r\nX-Tab:\tvalue\r\n",
    b"Content-Type: text/plain\nX-Bare-LF: yes\n",
]


@pytest.mark.parametrize("block", HEADER_BLOCKS)
def test_headers_are_read_as_http_client_reads_them(block: bytes) -> None:
    """The header block as ``http.client.parse_headers`` gives it (the email package's parser): every name, value
    and repetition, in order; only a folded line's separator differs (one space instead of the line break)."""
    from cxbridge.http.transport import _header_block, _message

    ours = _message(_header_block(io.BytesIO(block + b"\r\n")))
    stdlib = http.client.parse_headers(io.BytesIO(block + b"\r\n"))
    assert [(n, re.sub(r"\r?\n[ \t]+", " ", v)) for n, v in stdlib.items()] == ours.items()
    assert ours.get_all("set-cookie") == stdlib.get_all("set-cookie")


def test_a_line_that_is_no_header_is_left_out() -> None:
    from cxbridge.http.transport import _header_block, _message

    ours = _message(_header_block(io.BytesIO(b"X-A: 1\r\nnot a header\r\nBad Name: 2\r\nX-B: 3\r\n\r\nbody")))
    assert ours.items() == [("X-A", "1"), ("X-B", "3")]


def test_too_many_or_too_long_header_lines_fail_as_in_http_client() -> None:
    from cxbridge.http.transport import _header_block

    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        _header_block(io.BytesIO(b"X: 1\r\n" * 101 + b"\r\n"))
    with pytest.raises(http.client.LineTooLong):
        _header_block(io.BytesIO(b"X: " + b"a" * 70000 + b"\r\n\r\n"))
