"""``DirectAdapter``: the requests adapter of cxbridge's own sessions, sending over kept-alive ``http.client``
connections instead of urllib3's pools.

Why: an escalation makes about nine vendor calls, and requests' ``HTTPAdapter`` with urllib3 under it costs
more CPU per call than everything cxbridge does around it (``benchmarks/bench_floor.py``: a kept-alive GET
through the stock adapter costs 2.3 times the same exchange on ``http.client``). What urllib3 adds per call
(pool lookups through a pool manager, retry and timeout objects, a second header dict, a response wrapper with
decoder chains) buys nothing for the one origin and the fully read bodies of an ``HttpClient``.

What stays exactly as with requests and urllib3, so that the error table and the intents' exactly-once
guarantee do not move (``cxbridge.http.retry.classify_transport_error`` reads the same exceptions):

- the request's bytes: method, path, the prepared headers and body, ``Host`` as urllib3 writes it;
- connections reused per origin, a pooled connection the server has closed (or sent anything unasked on)
  dropped before it is used, and a connection closed after an answer that says so;
- TLS verified against the same CA bundle (``verify``), with the same default context settings;
- ``AddressPolicy`` checked on every address a host resolves to and on the connected peer (``guard``);
- the exceptions: ``ConnectionError`` wrapping urllib3's ``NameResolutionError``/``NewConnectionError`` (or
  ``BlockedAddress``) when nothing was sent; ``ConnectTimeout``; ``SSLError``; ``ReadTimeout``;
  ``ConnectionError`` wrapping ``ProtocolError('Connection aborted.', error)`` for a reset or a bad answer
  after sending; ``ChunkedEncodingError`` for a body cut short and ``ContentDecodingError`` for one that
  does not decode;
- the response: status, reason, headers (repeated ones joined with ", "), URL, encoding, the body read and
  decoded (gzip, deflate), and ``raw._original_response`` for the cookie jar. One difference: a gzip body that
  ends inside its compressed stream is a ``ContentDecodingError`` here, where urllib3 returns the part it has.

What it leaves to ``HTTPAdapter.send`` unchanged: a request through a proxy, with a client certificate,
streamed, with a body that is not bytes or text, or advertising an encoding it does not decode; and every
request while ``HTTPAdapter.send`` is patched (the ``responses`` library in tests).
"""

from __future__ import annotations

import http.client
import os.path
import socket
import ssl
import threading
import weakref
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3.exceptions
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers, select_proxy
from urllib3.util.wait import wait_for_read


class ConnectPolicy(Protocol):
    """What ``DirectAdapter`` asks of an address policy (``guard.AddressPolicy``) around each connect."""

    def check_resolved(self, host: str, port: int, conn: Any) -> None:
        """Raise when ``host`` resolves to an address that must not be connected to."""

    def check_peer(self, sock: socket.socket, conn: Any) -> None:
        """Close ``sock`` and raise when it is connected to an address that must not be talked to."""


_STOCK_SEND = requests.adapters.HTTPAdapter.send
_extract_cookies_to_jar = cast(Callable[[Any, Any, Any], None], extract_cookies_to_jar)
_DECODED = frozenset({"gzip", "deflate"})
_IDLE_PER_ORIGIN = 10  # requests' default pool_maxsize
_PORTS = {"http": 80, "https": 443}


class _Raw:
    """``Response.raw`` of a response this adapter read: the body is already in ``Response.content``;
    ``_original_response`` is what requests' cookie jar reads the ``Set-Cookie`` headers from."""

    def __init__(self, original: http.client.HTTPResponse) -> None:
        self._original_response = original

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        """Nothing is left to read: the body was read whole."""
        return b""

    def close(self) -> None:
        """Nothing to close: the connection went back to the pool or was closed."""

    def release_conn(self) -> None:
        """Nothing to release (see ``close``)."""


_MAX_LINE = 65536  # http.client's limits on a status or header line and on the number of headers
_MAX_HEADERS = 100


def _header_block(fp: Any) -> list[bytes]:
    """The header lines up to the blank line that ends them (``http.client``'s limits and errors)."""
    lines: list[bytes] = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return lines
        lines.append(line)
        if len(lines) > _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")


def _message(lines: list[bytes]) -> http.client.HTTPMessage:
    """The ``HTTPMessage`` of header lines: each name and its value (leading blanks and the line end dropped, as
    the email parser's ``compat32`` policy does), a folded line joined to the header it continues; a line that
    is no header (no colon, or a blank in the name) is left out."""
    pairs: list[list[str]] = []
    for raw in lines:
        line = raw.decode("iso-8859-1").rstrip("\r\n")
        if line[:1] in (" ", "\t"):
            if pairs:
                pairs[-1][1] += " " + line.strip(" \t")
            continue
        name, colon, value = line.partition(":")
        if colon and name and name == name.strip() and " " not in name and "\t" not in name:
            pairs.append([name, value.lstrip(" \t")])
    message = http.client.HTTPMessage()
    for name, value in pairs:
        message[name] = value
    return message


class _Response(http.client.HTTPResponse):
    """``http.client``'s response, its headers read without the email package's parser.

    ``HTTPResponse.begin`` parses the header block with ``email.parser``, which costs about a quarter of a
    kept-alive call's CPU; ``begin`` here reads the status line with http.client's own ``_read_status``, puts
    the headers into the same ``HTTPMessage`` directly, and frames the body by the rules of RFC 9112 section 6
    as http.client does (chunked, else ``Content-Length``, none for 1xx, 204, 304 and HEAD, else until close).
    """

    def begin(self) -> None:
        if self.headers is not None:
            return
        version, status, reason = self._read_status()  # type: ignore[attr-defined]
        while status == http.client.CONTINUE:  # an interim 100: its headers are skipped
            _header_block(self.fp)
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.code = self.status = status
        self.reason = reason.strip()
        headers = _message(_header_block(self.fp))
        self.headers = self.msg = headers
        self.chunked = (headers.get("transfer-encoding") or "").lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        length: int | None = None
        declared = headers.get("content-length")
        if declared and not self.chunked:
            try:
                length = int(declared)
            except ValueError:
                length = None
            if length is not None and length < 0:
                length = None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or status < 200 or self._method == "HEAD":  # type: ignore[attr-defined]
            length = 0
        self.length = length
        if not self.will_close and not self.chunked and length is None:
            self.will_close = True  # no framing: the body ends when the server closes


class _Connection(http.client.HTTPConnection):
    """An ``http.client`` connection opened through ``open_socket`` (the address policy, TCP_NODELAY)."""

    policy: ConnectPolicy | None = None
    response_class = _Response

    def connect(self) -> None:
        self.sock = open_socket(self.host, self.port, self.timeout, self.policy, self)


class _TLSConnection(http.client.HTTPSConnection):
    """The TLS twin of ``_Connection``: the socket opened as ``_Connection`` opens it, then the handshake."""

    policy: ConnectPolicy | None = None
    response_class = _Response

    def connect(self) -> None:
        sock = open_socket(self.host, self.port, self.timeout, self.policy, self)
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
        except BaseException:
            sock.close()
            raise


def open_socket(host: str, port: int, timeout: float | None, policy: ConnectPolicy | None, conn: Any) -> socket.socket:
    """A TCP connection to ``host:port``, every resolved address and the peer checked against ``policy`` (when
    there is one), with Nagle off as urllib3 sets it; raises urllib3's ``NameResolutionError``,
    ``NewConnectionError`` (``BlockedAddress``) or ``ConnectTimeoutError``, as its ``_new_conn`` does."""
    if policy is not None:
        policy.check_resolved(host, port, conn)
    try:
        sock = socket.create_connection((host, port), timeout)
    except socket.gaierror as exc:
        raise urllib3.exceptions.NameResolutionError(host, conn, exc) from exc
    except TimeoutError as exc:
        raise urllib3.exceptions.ConnectTimeoutError(
            conn, f"Connection to {host} timed out. (connect timeout={timeout})"
        ) from exc
    except OSError as exc:
        raise urllib3.exceptions.NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
    if policy is not None:
        policy.check_peer(sock, conn)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _decoded(body: bytes, encoding: str) -> bytes:
    """``body`` with its ``Content-Encoding`` undone, last applied first; an encoding other than gzip and
    deflate is left as it is (urllib3 does the same)."""
    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        if coding == "gzip":
            out, rest = b"", body
            while rest:  # gzip allows members one after the other
                inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                try:
                    out += inflater.decompress(rest)
                except zlib.error:
                    if not out:
                        raise
                    break  # bytes after a whole member that are no gzip: ignored, as urllib3 ignores them
                if not inflater.eof:
                    raise zlib.error("truncated gzip member")
                rest = inflater.unused_data
            body = out
        elif coding == "deflate":
            try:
                body = zlib.decompress(body)
            except zlib.error:  # deflate without its zlib wrapper, as some servers send it
                body = zlib.decompress(body, -zlib.MAX_WBITS)
    return body


class DirectAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter sending over kept-alive ``http.client`` connections (see the module docstring for
    what it keeps and what it leaves to ``HTTPAdapter.send``); ``policy`` (when given) is checked on every
    connection it opens."""

    def __init__(self, policy: ConnectPolicy | None = None, **kwargs: Any) -> None:
        self.policy = policy
        self._idle: dict[tuple[str, str, int, Any], list[http.client.HTTPConnection]] = {}
        self._contexts: dict[Any, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        # a session dropped without close() still closes its pooled connections (as urllib3's pools do)
        weakref.finalize(self, _close_idle, self._idle, self._lock)
        super().__init__(**kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` over a pooled connection, or through ``HTTPAdapter.send`` when it is not one this
        adapter sends itself."""
        url = cast(str, request.url)
        body = request.body
        if (
            requests.adapters.HTTPAdapter.send is not _STOCK_SEND
            or stream
            or cert
            or not isinstance(body, bytes | str | None)
            or not isinstance(timeout, tuple | float | int | None)
            or not url.startswith(("http://", "https://"))
            or (proxies and select_proxy(url, proxies))
            or not _decodes(request.headers.get("Accept-Encoding"))
        ):
            return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        connect_timeout, read_timeout = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or _PORTS[scheme]
        key = (scheme, host, port, verify if scheme == "https" else None)
        conn = self._connection(key, connect_timeout, request)
        try:
            conn.sock.settimeout(read_timeout)
            answer = self._exchange(conn, request, body, read_timeout)
            content = self._body(answer, url)
        except BaseException:
            conn.close()
            raise
        if answer.will_close:
            conn.close()
        else:
            self._put_back(key, conn)
        return self._response(request, answer, content)

    def close(self) -> None:
        """Close every pooled connection, then urllib3's pools."""
        _close_idle(self._idle, self._lock)
        super().close()

    # --- connections ----------------------------------------------------------------------------------------

    def _connection(
        self, key: tuple[str, str, int, Any], connect_timeout: float | None, request: requests.PreparedRequest
    ) -> http.client.HTTPConnection:
        """A pooled connection still open and silent, else a new one (connected here: the errors of a
        connection that never opened are those of nothing sent)."""
        with self._lock:
            pool = self._idle.get(key)
            while pool:
                idle = pool.pop()
                if idle.sock is not None and not wait_for_read(idle.sock, timeout=0.0):
                    return idle
                idle.close()  # the server closed it (or said something unasked): not reusable
        scheme, host, port, verify = key
        conn: http.client.HTTPConnection
        if scheme == "https":
            tls = _TLSConnection(host, port, timeout=connect_timeout, context=self._context(verify))
            tls.policy = self.policy
            conn = tls
        else:
            plain = _Connection(host, port, timeout=connect_timeout)
            plain.policy = self.policy
            conn = plain
        try:
            conn.connect()
        except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.NewConnectionError) as exc:
            conn.close()
            if isinstance(exc, urllib3.exceptions.NewConnectionError):  # refused, unresolved, blocked
                raise requests.exceptions.ConnectionError(exc, request=request) from exc
            raise requests.exceptions.ConnectTimeout(exc, request=request) from exc
        except ssl.SSLError as exc:  # the TLS handshake (certificate verification among them)
            conn.close()
            raise requests.exceptions.SSLError(urllib3.exceptions.SSLError(exc), request=request) from exc
        except TimeoutError as exc:  # during the TLS handshake: urllib3 reports it as a read timeout
            conn.close()
            raise self._read_timeout(request, connect_timeout) from exc
        except OSError as exc:  # a reset during the TLS handshake: urllib3's "Connection aborted."
            conn.close()
            error = urllib3.exceptions.ProtocolError("Connection aborted.", exc)
            raise requests.exceptions.ConnectionError(error, request=request) from exc
        return conn

    @staticmethod
    def _read_timeout(request: requests.PreparedRequest, seconds: float | None) -> requests.exceptions.ReadTimeout:
        error = urllib3.exceptions.ReadTimeoutError(
            cast(Any, None), request.url, f"Read timed out. (read timeout={seconds})"
        )
        return requests.exceptions.ReadTimeout(error, request=request)

    def _context(self, verify: bool | str) -> ssl.SSLContext:
        """The TLS context for ``verify`` (True: requests' CA bundle; a path: that bundle or directory;
        False: no verification), made once per value."""
        with self._lock:
            context = self._contexts.get(verify)
            if context is None:
                if verify is False:
                    context = ssl.create_default_context()
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                else:
                    where = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
                    if os.path.isdir(where):
                        context = ssl.create_default_context(capath=where)
                    else:
                        context = ssl.create_default_context(cafile=where)
                self._contexts[verify] = context
            return context

    def _put_back(self, key: tuple[str, str, int, Any], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            pool = self._idle.setdefault(key, [])
            if len(pool) < _IDLE_PER_ORIGIN:
                pool.append(conn)
                return
        conn.close()

    # --- one exchange ---------------------------------------------------------------------------------------

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        request: requests.PreparedRequest,
        body: bytes | str | None,
        read_timeout: float | None,
    ) -> http.client.HTTPResponse:
        """Write the request and read the answer's status line and headers."""
        headers = request.headers
        try:
            conn.putrequest(
                cast(str, request.method), request.path_url, skip_host="Host" in headers, skip_accept_encoding=True
            )
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders(body.encode("utf-8") if isinstance(body, str) else body)
            return conn.getresponse()
        except TimeoutError as exc:
            raise self._read_timeout(request, read_timeout) from exc
        except ssl.SSLError as exc:
            raise requests.exceptions.SSLError(urllib3.exceptions.SSLError(exc), request=request) from exc
        except (OSError, http.client.HTTPException) as exc:
            error = urllib3.exceptions.ProtocolError("Connection aborted.", exc)
            raise requests.exceptions.ConnectionError(error, request=request) from exc

    def _body(self, answer: http.client.HTTPResponse, url: str) -> bytes:
        """The whole body, decoded; the errors ``Response.content`` raises for a body cut short or undecodable."""
        try:
            content = answer.read()
        except TimeoutError as exc:
            # urllib3 reports a read timeout inside the body as a ConnectionError (requests' Response.content)
            timed_out = urllib3.exceptions.ReadTimeoutError(cast(Any, None), url, "Read timed out.")
            raise requests.exceptions.ConnectionError(timed_out) from exc
        except ssl.SSLError as exc:
            raise requests.exceptions.SSLError(urllib3.exceptions.SSLError(exc)) from exc
        except (OSError, http.client.HTTPException) as exc:
            error = urllib3.exceptions.ProtocolError(f"Connection broken: {exc!r}", exc)
            raise requests.exceptions.ChunkedEncodingError(error) from exc
        encoding = answer.getheader("Content-Encoding")
        if encoding and content:
            try:
                content = _decoded(content, encoding)
            except zlib.error as exc:
                undecoded = urllib3.exceptions.DecodeError(
                    f"Received response with content-encoding: {encoding}, but failed to decode it.", exc
                )
                raise requests.exceptions.ContentDecodingError(undecoded) from exc
        return content

    def _response(
        self, request: requests.PreparedRequest, answer: http.client.HTTPResponse, content: bytes
    ) -> requests.Response:
        """The ``requests.Response`` ``HTTPAdapter.build_response`` makes, with the body already read."""
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in answer.getheaders():
            earlier = headers.get(name)
            headers[name] = value if earlier is None else f"{earlier}, {value}"
        response = requests.Response()
        response.status_code = answer.status
        response.headers = headers
        response.encoding = get_encoding_from_headers(headers)
        response.raw = _Raw(answer)
        response.reason = answer.reason
        url = request.url
        response.url = url.decode("utf-8") if isinstance(url, bytes) else cast(str, url)
        response.request = request
        response.connection = self
        response._content = content
        response._content_consumed = True  # type: ignore[attr-defined]  # Response.content's flag
        if "Set-Cookie" in headers or "Set-Cookie2" in headers:
            _extract_cookies_to_jar(response.cookies, request, response.raw)
        return response


def _close_idle(idle: dict[Any, list[http.client.HTTPConnection]], lock: threading.Lock) -> None:
    """Close and forget every connection of ``idle``."""
    with lock:
        connections = [conn for pooled in idle.values() for conn in pooled]
        idle.clear()
    for conn in connections:
        conn.close()


def _decodes(accept_encoding: str | bytes | None) -> bool:
    """Whether every encoding the request advertises is one this adapter decodes."""
    if accept_encoding is None:
        return True
    text = accept_encoding.decode("latin-1") if isinstance(accept_encoding, bytes) else accept_encoding
    codings = {c.split(";")[0].strip().lower() for c in text.split(",")}
    return codings <= _DECODED | {"identity", ""}
