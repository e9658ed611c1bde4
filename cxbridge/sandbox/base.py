"""The vendor-neutral emulator framework: a Backend holds one vendor's state and answers its routes.

A plugin's emulator subclasses ``Backend`` (moto's layout: ``models.py`` for state and rules, ``routes.py`` for
parsing and vendor-shaped responses, ``errors.py`` for the vendor's error bodies) and registers it with the
``register_sandbox_backends`` hook. The framework adds what every emulator needs: the admin API under
``/_sandbox/``, injected faults, an optional enforced rate limit, a call log, and webhook delivery.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import random
import re
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_sandbox/"


class VendorFault(Exception):
    """Raised by an emulator's models or routes: answered as ``status`` with the vendor's own error ``body``."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


@dataclass
class SandboxSecret:
    """A credential in a generated config table: written to a file, referenced as ``{ file = ... }``."""

    value: str


@dataclass
class Fault:
    """Make the next ``count`` matching calls fail (``method`` and a ``path`` regex narrow which calls match).

    Before the vendor acts (the default): the call is answered ``status`` (with ``Retry-After`` when given) and
    nothing is applied. After it (``after=True``): the vendor APPLIES the call, then its answer is spoiled or lost:
    ``status`` is answered instead of the real answer (a 500 or 504 after the write), ``reset`` drops the
    connection without an answer, ``delay`` holds the answer back that many seconds (past the client's read
    timeout). ``reset`` and ``delay`` describe a lost answer, so they imply ``after``.
    In-process (``mock_vendors``) a reset raises ``requests.exceptions.ConnectionError`` and a delay
    ``requests.exceptions.ReadTimeout`` right away, with the call applied; served, a reset closes the socket
    before a byte of the answer is sent and a delay sleeps, then answers.
    """

    status: int = 503
    count: int = 1
    retry_after: float | None = None
    path: str | None = None
    method: str | None = None
    after: bool = False
    reset: bool = False
    delay: float | None = None

    def __post_init__(self) -> None:
        if self.reset or self.delay is not None:
            self.after = True

    @property
    def loses_answer(self) -> bool:
        """True when the client gets no answer at all (a reset, or an answer later than its timeout)."""
        return self.reset or self.delay is not None

    def matches(self, request: Request) -> bool:
        if self.method and request.method.upper() != self.method.upper():
            return False
        return not (self.path and not re.search(self.path, request.path))

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Fault:
        """A fault from the ``POST /_sandbox/fail-next`` body (the same names as the fields)."""
        delay = body.get("delay")
        return cls(
            status=int(body.get("status", 503)),
            count=int(body.get("count", 1)),
            retry_after=body.get("retry_after"),
            path=body.get("path"),
            method=body.get("method"),
            after=bool(body.get("after", False)),
            reset=bool(body.get("reset", False)),
            delay=None if delay is None else float(delay),
        )


_LOST = "_sandbox_lost_answer"


def lost_answer(response: Response) -> Fault | None:
    """The after-fault that loses this (applied) answer: a reset or a delay the transport must act out."""
    fault = getattr(response, _LOST, None)
    return fault if isinstance(fault, Fault) else None


@dataclass
class RateLimit:
    """An enforced limit of ``limit`` calls per ``window`` seconds (fixed windows on the backend's clock)."""

    limit: int
    window: float
    window_start: float = 0.0
    used: int = 0

    def take(self, now: float) -> tuple[bool, int, float]:
        """Count one call; returns (allowed, remaining, seconds until the window resets)."""
        if now - self.window_start >= self.window:
            self.window_start = now - ((now - self.window_start) % self.window) if self.window_start else now
            self.used = 0
        reset = max(0.0, self.window_start + self.window - now)
        if self.used >= self.limit:
            return False, 0, reset
        self.used += 1
        return True, self.limit - self.used, reset

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Read ``700/min``, ``100/10s`` or ``5/s``."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*", text)
        if not m:
            raise ValueError(f"not a rate limit (expected like 700/min or 100/10s): {text!r}")
        unit = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}[m[3]]
        return cls(limit=int(m[1]), window=float(int(m[2] or 1) * unit))


@dataclass
class Latency:
    """Time the emulator takes to answer each vendor call: ``fixed`` seconds plus up to ``jitter`` more.

    The wait happens before the call is handled and outside the backend's lock, so concurrent calls wait side by
    side, as they do at a vendor (admin calls under ``/_sandbox/`` never wait). The jitter is uniform in
    ``[0, jitter]``.
    """

    fixed: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.fixed < 0 or self.jitter < 0:
            raise ValueError("latency cannot be negative")

    def sample(self, rng: random.Random) -> float:
        """One call's wait, in seconds."""
        return self.fixed + (rng.uniform(0.0, self.jitter) if self.jitter else 0.0)

    def as_json(self) -> dict[str, float]:
        """The ``GET /_sandbox/latency`` answer (milliseconds)."""
        return {"fixed_ms": round(self.fixed * 1000, 3), "jitter_ms": round(self.jitter * 1000, 3)}

    @classmethod
    def parse(cls, text: str) -> Latency:
        """Read ``150`` or ``150+50`` (milliseconds: fixed, plus jitter); ``ms`` may follow each number."""
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:ms)?\s*(?:\+\s*(\d+(?:\.\d+)?)\s*(?:ms)?)?\s*", text)
        if not m:
            raise ValueError(f"not a latency (expected milliseconds like 150 or 150+50): {text!r}")
        return cls(fixed=float(m[1]) / 1000, jitter=float(m[2] or 0) / 1000)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Latency:
        """A latency from the ``POST /_sandbox/latency`` body: ``{"fixed_ms": 150, "jitter_ms": 50}``."""
        unknown = set(body) - {"fixed_ms", "jitter_ms"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)} (expected fixed_ms, jitter_ms)")
        return cls(fixed=float(body.get("fixed_ms", 0)) / 1000, jitter=float(body.get("jitter_ms", 0)) / 1000)


@dataclass
class CallRecord:
    """One call the emulator answered (for tests, the demo's summary and benchmarks)."""

    method: str
    path: str
    status: int
    at: float


@dataclass
class WebhookTarget:
    """Where the emulator delivers the webhooks it emits."""

    url: str
    secret: str
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """A stateful emulator of one vendor's API.

    Subclasses set ``system`` and ``default_base_url`` and implement the abstract methods; routes are methods
    named ``route_<endpoint>`` for the endpoints of ``url_map()``, called as ``route_x(request, **values)`` and
    returning a werkzeug ``Response`` (``self.json(...)`` builds one) or raising ``VendorFault``.
    """

    system: ClassVar[str]
    default_base_url: ClassVar[str]
    spec_files: ClassVar[Mapping[str, str]] = {}
    """The vendor's published API descriptions this emulator (and its plugin's connector) is checked against:
    short name -> path under the specs folder (``cxbridge.testing`` loads them by that name)."""
    spec_prefixes: ClassVar[Mapping[str, str]] = {}
    """Which description covers which request paths, by path prefix (for ``cxbridge.testing.spec_by_prefix``)."""

    def __init__(self, base_url: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.clock = clock
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.rate_limit: RateLimit | None = None
        self.latency: Latency | None = None
        self._latency_rng = random.Random(0)  # a fixed seed: the same run waits the same times
        self.calls: list[CallRecord] = []
        # Connections the served transport accepted (in-process calls open none); see ``note_connection``.
        self.connections_opened = 0
        self._connections_lock = threading.Lock()
        self.webhook_targets: list[WebhookTarget] = []
        self.webhooks_sent: list[dict[str, Any]] = []
        self._outbox: queue.Queue[tuple[str, dict[str, str], bytes] | None] = queue.Queue()
        # Called with a target's URL before a delivery is queued; the in-process mode uses it to let the
        # delivery through ``responses`` (targets can be added while it runs: admin API, vendor webhook APIs).
        self.allow_delivery_to: Callable[[str], None] | None = None
        self._sender: threading.Thread | None = None
        self._map = self.url_map()
        self.reset()

    # -- what each emulator provides --------------------------------------------------------------------------
    @abstractmethod
    def reset(self) -> None:
        """Forget all state (records, ids, secrets), as a freshly created account."""

    @abstractmethod
    def seed(self, name: str) -> None:
        """Load a named data set (``demo`` or ``empty``) on top of the current state."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Everything the emulator holds, JSON-ready (for tests and ``GET /_sandbox/state``)."""

    @abstractmethod
    def credentials(self) -> dict[str, str]:
        """The credentials this emulator accepts, to print for a person."""

    @abstractmethod
    def config_table(self) -> dict[str, Any]:
        """The ``[systems.<name>]`` keys (besides ``base_url`` and ``sandbox``) that point cxbridge here.

        Secret values are ``SandboxSecret`` so the framework can write them to files.
        """

    @abstractmethod
    def url_map(self) -> Map:
        """The vendor's routes (werkzeug rules whose endpoints name ``route_<endpoint>`` methods)."""

    @abstractmethod
    def authenticate(self, request: Request) -> Response | None:
        """None when the request carries accepted credentials, else the vendor's 401 answer."""

    @abstractmethod
    def error_response(self, status: int, message: str, *, retry_after: float | None = None) -> Response:
        """The vendor's error answer for a status (used for injected faults, rate limits and unknown routes)."""

    def rate_limit_headers(self, limit: int, remaining: int, reset: float) -> dict[str, str]:
        """The vendor's rate-limit headers on every answer (override per vendor)."""
        return {}

    def webhook_secrets(self) -> list[str]:
        """The secrets that verify this emulator's webhook deliveries: its targets' (override to add others)."""
        return [t.secret for t in self.webhook_targets if t.secret]

    # -- helpers for emulators -------------------------------------------------------------------------------
    @staticmethod
    def json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        """A JSON response the way vendors send it."""
        return Response(
            json.dumps(body, separators=(",", ":")),
            status=status,
            headers=dict(headers or {}),
            content_type="application/json; charset=utf-8",
        )

    @staticmethod
    def read_json(request: Request) -> Any:
        """The request's JSON body, or a 400 VendorFault-ready ValueError."""
        data = request.get_data(cache=True)
        if not data:
            return None
        return json.loads(data)

    def emit_webhook(self, body: bytes, headers: Mapping[str, str], target: WebhookTarget) -> None:
        """Queue a signed delivery to a target; sent from a background thread, in order."""
        if self.allow_delivery_to is not None:
            self.allow_delivery_to(target.url)
        self.webhooks_sent.append({"url": target.url, "headers": dict(headers), "body": body.decode("utf-8")})
        self._outbox.put((target.url, dict(headers), body))
        self._ensure_sender()

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Block until every queued webhook was attempted; False when the timeout passed first."""
        deadline = time.monotonic() + timeout
        while self._outbox.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def note_connection(self) -> None:
        """Count one connection accepted by the served transport (``GET /_sandbox/connections``)."""
        with self._connections_lock:
            self.connections_opened += 1

    def _ensure_sender(self) -> None:
        if self._sender is None or not self._sender.is_alive():
            self._sender = threading.Thread(target=self._send_loop, name=f"{self.system}-webhooks", daemon=True)
            self._sender.start()

    def _send_loop(self) -> None:
        session = requests.Session()
        while True:
            item = self._outbox.get()
            try:
                if item is None:
                    return
                url, headers, body = item
                try:
                    session.post(url, data=body, headers=headers, timeout=10, allow_redirects=False)
                except requests.RequestException as exc:
                    log.warning("sandbox %s: webhook delivery to %s failed: %s", self.system, url, exc)
            finally:
                self._outbox.task_done()

    def close(self) -> None:
        """Stop the webhook sender."""
        if self._sender is not None and self._sender.is_alive():
            self._outbox.put(None)
            self._sender.join(timeout=5)

    # -- the WSGI application ----------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        response = self.handle(Request(environ))
        fault = lost_answer(response)
        if fault is not None and fault.reset:
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                # the connection drops before a byte of the answer: the client sees the server hang up
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return Response(b"", status=response.status_code)(environ, start_response)
        if fault is not None and fault.delay is not None:
            time.sleep(fault.delay)  # outside the backend's lock: other calls go on meanwhile
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        """Answer one request: admin API, then the call's latency, then ``handle_call``."""
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        latency = self.latency
        if latency is not None:
            with self._connections_lock:
                wait = latency.sample(self._latency_rng)
            time.sleep(wait)  # outside the lock: concurrent calls wait side by side, as at the vendor
        return self.handle_call(request)

    def handle_call(self, request: Request) -> Response:
        """Answer one vendor call (its latency waited already) under the backend's lock: faults, auth, rate limit,
        then the vendor route. An emulator that adds to every answer extends this, not ``handle``, so that its
        lock is never held through another call's latency."""
        with self.lock:
            response = self._handle_vendor(request)
            self.calls.append(
                CallRecord(request.method, request.full_path.rstrip("?"), response.status_code, self.clock())
            )
            return response

    def _handle_vendor(self, request: Request) -> Response:
        fault = self._take_fault(request)
        if fault is None:
            return self._answer(request)
        if not fault.after:
            return self.error_response(fault.status, "injected fault", retry_after=fault.retry_after)
        applied = self._answer(request)  # the vendor acts; only its answer is spoiled or lost
        log.debug("sandbox %s: %s %s applied (%s), answer lost", self.system, request.method, request.path, applied)
        if fault.loses_answer:
            setattr(applied, _LOST, fault)
            return applied
        return self.error_response(fault.status, "injected fault", retry_after=fault.retry_after)

    def _take_fault(self, request: Request) -> Fault | None:
        """The first pending fault matching the request, counted down (None when none matches)."""
        for fault in self.faults:
            if fault.count > 0 and fault.matches(request):
                fault.count -= 1
                self.faults = [f for f in self.faults if f.count > 0]
                return fault
        return None

    def _answer(self, request: Request) -> Response:
        """Auth, rate limit, then the vendor route."""
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        limit_headers: dict[str, str] = {}
        if self.rate_limit is not None:
            allowed, remaining, reset = self.rate_limit.take(self.clock())
            limit_headers = self.rate_limit_headers(self.rate_limit.limit, remaining, reset)
            if not allowed:
                response = self.error_response(429, "rate limit exceeded", retry_after=max(1, math.ceil(reset)))
                response.headers.update(limit_headers)
                return response
        adapter = self._map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except MethodNotAllowed:
            return self.error_response(405, f"method {request.method} not allowed on {request.path}")
        except NotFound:
            return self.error_response(404, f"no such resource: {request.path}")
        try:
            response = getattr(self, f"route_{endpoint}")(request, **values)
        except VendorFault as fault:
            response = self.json(fault.body, fault.status, fault.headers)
        except (ValueError, KeyError, TypeError) as exc:
            log.debug("sandbox %s: bad request %s %s: %s", self.system, request.method, request.path, exc)
            response = self.error_response(400, f"bad request: {exc}")
        response.headers.update({k: v for k, v in limit_headers.items() if k not in response.headers})
        return response

    def _admin(self, request: Request) -> Response:
        action = request.path[len(ADMIN_PREFIX) :].strip("/")
        body = self.read_json(request) if request.method == "POST" else None
        body = body or {}
        with self.lock:
            if action == "reset" and request.method == "POST":
                self.reset()
                self.faults = []
                self.rate_limit = None
                self.latency = None
                self.calls = []
                with self._connections_lock:
                    self.connections_opened = 0
                return self.json({"ok": True})
            if action == "seed" and request.method == "POST":
                try:
                    self.seed(str(body.get("name", "demo")))
                except (ValueError, KeyError) as exc:  # an unknown seed name: the caller's mistake, not a crash
                    return self.json({"error": f"cannot seed: {exc}"}, 400)
                return self.json({"ok": True})
            if action == "state" and request.method == "GET":
                return self.json(self.state())
            if action == "calls" and request.method == "GET":
                return self.json([c.__dict__ for c in self.calls])
            if action == "fail-next" and request.method == "POST":
                try:
                    self.faults.append(Fault.from_json(body))
                except (TypeError, ValueError) as exc:
                    return self.json({"error": f"not a fault: {exc}"}, 400)
                return self.json({"ok": True, "pending": sum(f.count for f in self.faults)})
            if action == "rate-limit" and request.method == "POST":
                spec = body.get("limit")
                self.rate_limit = RateLimit.parse(spec) if spec else None
                return self.json({"ok": True})
            if action == "latency" and request.method == "POST":
                try:
                    latency = Latency.from_json(body)
                except (TypeError, ValueError) as exc:
                    return self.json({"error": f"not a latency: {exc}"}, 400)
                self.latency = latency if latency.fixed or latency.jitter else None
                return self.json({"ok": True, **latency.as_json()})
            if action == "latency" and request.method == "GET":
                return self.json((self.latency or Latency()).as_json())
            if action == "connections" and request.method == "GET":
                with self._connections_lock:
                    return self.json({"opened": self.connections_opened})
            if action == "webhooks" and request.method == "POST":
                self.webhook_targets = [
                    WebhookTarget(url=t["url"], secret=t["secret"], extra=t.get("extra", {}))
                    for t in body.get("targets", [])
                ]
                return self.json({"ok": True})
        return Response(
            json.dumps({"error": f"unknown admin call {request.method} {request.path}"}),
            status=404,
            content_type="application/json",
        )
