"""HttpClient's own session prepares requests and hands them to the adapter itself: the same request on the wire,
the same response, the same errors as ``Session.request`` (which an injected session still goes through)."""

from __future__ import annotations

import gzip
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from cxbridge.config import SystemConfig
from cxbridge.errors import Unavailable, VendorError
from cxbridge.http import BasicAuth, BearerAuth, CallCounter, HttpClient
from cxbridge.http.client import _plain_prefix
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

    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
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
        with conn:
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
                conn.sendall(answer)
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


@pytest.mark.parametrize("path", ["/plain", "/chunked", "/gzip", "/empty"])
def test_bodies_read_over_a_socket_are_those_of_response_content(server: RawServer, path: str) -> None:
    results = []
    for client in loopback_clients(server.port):
        for _ in range(2):  # the second call reuses the connection: the first body was read to its end
            response = client.get(path, op="x")
            results.append((response.status_code, response.content, response.headers.get("Content-Encoding")))
        client.close()
    assert all(r == results[0] for r in results)
    assert results[0][1] == (b"" if path == "/empty" else BODY)


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


def test_a_cookie_set_over_a_socket_is_sent_back(server: RawServer) -> None:
    for client in loopback_clients(server.port):
        client.get("/cookie", op="x")
        client.get("/plain", op="x")
        assert b"Cookie: sid=xyz" in server.requests[-1]
        client.close()
