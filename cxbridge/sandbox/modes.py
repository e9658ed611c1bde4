"""The two ways to run the emulators, over one set of backends: in-process and loopback servers."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import tomlkit
from werkzeug.serving import BaseWSGIServer, DechunkedInput, WSGIRequestHandler, make_server
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from ..plugins import build_plugins
from .base import Backend, SandboxSecret, lost_answer

log = logging.getLogger(__name__)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


class Vendors:
    """The running emulators by system key, with their base URLs."""

    def __init__(self, backends: Mapping[str, Backend]) -> None:
        self.backends = dict(backends)

    def __getitem__(self, system: str) -> Backend:
        return self.backends[system]

    def __getattr__(self, system: str) -> Backend:
        try:
            backend: Backend = self.__dict__["backends"][system]
            return backend
        except KeyError:
            raise AttributeError(system) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.backends)

    def base_url(self, system: str) -> str:
        return self.backends[system].base_url

    def reset(self) -> None:
        for backend in self.backends.values():
            with backend.lock:
                backend.reset()
                backend.faults = []
                backend.rate_limit = None
                backend.latency = None
                backend.calls = []
                backend.connections_opened = 0

    def seed(self, name: str) -> None:
        for backend in self.backends.values():
            with backend.lock:
                backend.seed(name)

    def connections(self) -> dict[str, int]:
        """Connections the emulators accepted so far, per system (0 in-process: no sockets)."""
        return {name: b.connections_opened for name, b in self.backends.items()}

    def calls(self) -> dict[str, int]:
        """Vendor calls answered so far, per system."""
        return {name: len(b.calls) for name, b in self.backends.items()}

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        return all(b.wait_for_webhooks(timeout) for b in self.backends.values())


def _backend_classes(systems: Iterable[str] | None) -> dict[str, type[Backend]]:
    found = build_plugins().sandbox_backends()
    if systems is None:
        return found
    wanted = list(systems)
    missing = [s for s in wanted if s not in found]
    if missing:
        raise KeyError(f"no sandbox backend for {', '.join(missing)} (known: {', '.join(sorted(found))})")
    return {s: found[s] for s in wanted}


def _wsgi_callback(backend: Backend) -> Any:
    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        url = request.url or ""
        path, _, query = url[len(backend.base_url) :].partition("?")
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        builder = EnvironBuilder(
            path=path or "/",
            base_url=backend.base_url,
            query_string=query,
            method=request.method or "GET",
            headers=list(request.headers.items()),
            data=body or b"",
        )
        try:
            response = backend.handle(Request(builder.get_environ()))
        finally:
            builder.close()
        fault = lost_answer(response)
        if fault is not None:
            # the emulator applied the call; the client never gets its answer
            if fault.reset:
                raise requests.exceptions.ConnectionError(
                    ConnectionResetError(104, "Connection reset by peer (sandbox fault after the write)"),
                    request=request,
                )
            raise requests.exceptions.ReadTimeout(
                f"Read timed out (sandbox fault: the answer came {fault.delay} s late, after the write)",
                request=request,
            )
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return response.status_code, headers, response.get_data()

    return callback


@contextlib.contextmanager
def mock_vendors(
    systems: Iterable[str] | None = None,
    *,
    seed: str | None = None,
    backends: Mapping[str, Backend] | None = None,
    passthru: Iterable[str] = (),
) -> Iterator[Vendors]:
    """Route every request for the emulators' base URLs into them, in-process, through ``responses``.

    A request for any other URL fails loudly (``ConnectionError`` from responses), except prefixes in
    ``passthru`` (e.g. a loopback webhook receiver).
    """
    import responses  # here, not at the top: with yaml and unittest.mock it would add ~0.1 s to every command

    instances = (
        dict(backends) if backends is not None else {name: cls() for name, cls in _backend_classes(systems).items()}
    )
    if seed:
        for b in instances.values():
            b.seed(seed)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:

        def allow(url: str) -> None:
            # A webhook delivery is a real request from the emulator, not a call to a vendor.
            if url not in rsps.passthru_prefixes:
                rsps.add_passthru(url)

        for prefix in passthru:
            rsps.add_passthru(prefix)
        for backend in instances.values():
            backend.allow_delivery_to = allow
            for target in backend.webhook_targets:
                allow(target.url)
            pattern = re.compile(re.escape(backend.base_url) + r"(/.*)?$")
            callback = _wsgi_callback(backend)
            for method in METHODS:
                rsps.add_callback(method, pattern, callback=callback)
        try:
            yield Vendors(instances)
        finally:
            for b in instances.values():
                b.close()
                b.allow_delivery_to = None


KEEP_ALIVE_SECONDS = 60.0
"""How long a served emulator keeps an idle connection open for the client's next request (vendors' load
balancers keep idle HTTP/1.1 connections for about a minute)."""


class KeepAliveHandler(WSGIRequestHandler):
    """Serves one connection to an emulator with persistent HTTP/1.1, as the vendors' endpoints do.

    werkzeug's own handler answers ``Connection: close`` to every request, so a client would open a connection
    per call; this one reads each request's body whole (so the next request line starts where it ends), answers
    with a ``Content-Length`` and keeps the connection until the client closes it, asks ``Connection: close``,
    or leaves it idle ``KEEP_ALIVE_SECONDS``. It calls the backend directly, acting out lost-answer faults: a
    reset closes the connection before a byte of the answer, a delay holds the answer back.
    """

    protocol_version = "HTTP/1.1"
    timeout = KEEP_ALIVE_SECONDS

    @property
    def backend(self) -> Backend:
        app = self.server.app
        assert isinstance(app, Backend)
        return app

    def setup(self) -> None:
        super().setup()
        # answers go out as soon as they are written: without this, Nagle's algorithm holds the body back until
        # the client acknowledges the headers (a delayed ACK: tens of milliseconds on a kept-alive connection)
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.backend.note_connection()
        open_sockets(self.server).add(self.connection)

    def finish(self) -> None:
        open_sockets(self.server).discard(self.connection)
        super().finish()

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        if environ.get("wsgi.input_terminated"):
            stream = environ["wsgi.input"]
            assert isinstance(stream, DechunkedInput)
            chunks = []
            while chunk := stream.read(65536):
                chunks.append(chunk)
            return b"".join(chunks)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        body = self._read_body(environ)
        environ.pop("wsgi.input_terminated", None)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        try:
            response = self.backend.handle(Request(environ))
        except Exception:  # an emulator bug: answer 500 as a server would, and say so in the log
            log.exception("sandbox %s: error answering %s %s", self.backend.system, self.command, self.path)
            response = Response(b"internal error", status=500)
        fault = lost_answer(response)
        if fault is not None and fault.reset:
            # the connection drops before a byte of the answer: the client sees the server hang up
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if fault is not None and fault.delay is not None:
            time.sleep(fault.delay)
        data = response.get_data()
        self.send_response(response.status_code, response.status.partition(" ")[2])
        for key, value in response.headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)
        self.wfile.flush()


def open_sockets(server: BaseWSGIServer) -> set[socket.socket]:
    """The connections a served emulator holds open (closed by ``ServedVendors.stop``)."""
    found: set[socket.socket] | None = getattr(server, "_cxbridge_open_sockets", None)
    if found is None:
        found = set()
        server._cxbridge_open_sockets = found  # type: ignore[attr-defined]
    return found


class ServedVendors(Vendors):
    """Emulators served on loopback ports; ``stop()`` (or leaving the ``with``) shuts them down."""

    def __init__(self, backends: Mapping[str, Backend], servers: Mapping[str, BaseWSGIServer]) -> None:
        super().__init__(backends)
        self.servers = dict(servers)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, server in self.servers.items():
            # A short poll interval: stop() waits for the loop to notice the shutdown request.
            thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=f"sandbox-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
            # kept-alive connections would otherwise go on being answered by their threads
            for sock in list(open_sockets(server)):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for b in self.backends.values():
            b.close()

    def __enter__(self) -> ServedVendors:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_vendors(
    systems: Iterable[str] | None = None,
    *,
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    seed: str | None = None,
) -> ServedVendors:
    """Start each emulator as a threaded HTTP server on ``host`` (port 0 picks a free one) and return them.

    Connections are kept alive (``KeepAliveHandler``); each emulator counts the ones it accepted.
    """
    ports = dict(ports or {})
    # The emulators answer many calls; werkzeug's per-request lines would drown what the caller prints.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    backends: dict[str, Backend] = {}
    servers: dict[str, BaseWSGIServer] = {}
    try:
        for name, cls in _backend_classes(systems).items():
            backend = cls("http://placeholder")
            server = make_server(host, ports.get(name, 0), backend, threaded=True, request_handler=KeepAliveHandler)
            open_sockets(server)
            shown_host = f"[{host}]" if ":" in host else host
            backend.base_url = f"http://{shown_host}:{server.server_port}"
            if seed:
                backend.seed(seed)
            backends[name] = backend
            servers[name] = server
    except Exception:
        for server in servers.values():
            server.server_close()
        raise
    served = ServedVendors(backends, servers)
    served.start()
    return served


def _secret_file(secret_file: Path, value: str) -> Any:
    """Write a secret to a file only its owner can read; the config's ``{ file = ... }`` reference to it."""
    secret_file.write_text(value, encoding="utf-8")
    os.chmod(secret_file, 0o600)
    inline = tomlkit.inline_table()
    inline["file"] = secret_file.name
    return inline


def _webhook_secret_files(vendors: Vendors, path: Path) -> dict[str, Any]:
    """``[webhooks] secrets.<name>`` for each emulator that signs webhooks: its ``webhook_secrets()``, each
    written to a file beside the config, so ``cxbridge serve`` verifies what it sends."""
    out: dict[str, Any] = {}
    for name, backend in vendors.backends.items():
        files = tomlkit.array()
        for i, value in enumerate(dict.fromkeys(backend.webhook_secrets())):
            files.append(_secret_file(path.parent / f"{name}.webhook{i + 1 if i else ''}.secret", value))
        if files:
            out[name] = files
    return out


def write_config(
    vendors: Vendors, path: Path, *, extra: Mapping[str, Any] | None = None, store: str | None = None
) -> Path:
    """Write a cxbridge config whose systems point at the running emulators; credentials go to files beside it.

    ``store`` is the ``[cxbridge] store`` value (default ``cxbridge.db`` beside the config; a ``postgresql://``
    URL to run the sandbox on a PostgreSQL store)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = tomlkit.document()
    doc.add(tomlkit.comment("Written by cxbridge for its sandbox: every system points at a local emulator."))
    core = tomlkit.table()
    core["store"] = store or "cxbridge.db"
    doc["cxbridge"] = core
    sections = dict(extra or {})
    hook_secrets = _webhook_secret_files(vendors, path)
    if hook_secrets:
        webhooks = dict(sections.get("webhooks", {}))
        given = dict(webhooks.get("secrets", {}))
        for name, files in hook_secrets.items():
            given.setdefault(name, files)
        webhooks["secrets"] = given
        sections["webhooks"] = webhooks
    for section, values in sections.items():
        doc[section] = values
    systems = tomlkit.table(is_super_table=True)
    for name, backend in vendors.backends.items():
        table = tomlkit.table()
        table["base_url"] = backend.base_url
        # Served emulators live on loopback (a sandbox system); in-process ones keep the vendor's own URL.
        table["sandbox"] = urlsplit(backend.base_url).hostname in ("127.0.0.1", "localhost", "::1")
        for key, value in backend.config_table().items():
            if isinstance(value, SandboxSecret):
                table[key] = _secret_file(path.parent / f"{name}.{key}.secret", value.value)
            else:
                table[key] = value
        systems[name] = table
    doc["systems"] = systems
    from ..provision import write_text_atomically  # here: provision imports the runtime, which needs no sandbox

    # whole or not at all: `cxbridge sandbox serve &` writes it while the admin's next command may already read it
    write_text_atomically(path, tomlkit.dumps(doc))
    return path
