"""The webhook receiver of ``cxbridge serve``: a WSGI app that verifies, dedupes, persists, then acknowledges.

Routes:

- ``POST /webhooks/<name>``: ``<name>`` is a ``[systems.<name>]`` table whose plugin registered a webhook verifier.
  The body is read up to ``MAX_BODY`` (1 MiB; a larger Content-Length is refused with 413 before reading, a body
  without one is read to at most the cap plus one byte); the plugin's verifier checks it against the system's active
  secrets (several during a rotation) and returns Events; each is committed with its job in one transaction
  (``cxbridge.workflows.events.enqueue_event``) before the answer. No vendor is called inside a request.
- ``GET /healthz``: 200 with the queue depth when the store answers and takes a write, else 503 not-ready.
- ``GET /metrics``: the Prometheus text format (``Metrics.render``).

Answers: 200 ``{"accepted": n, "duplicates": m}`` (duplicates are acknowledged so the vendor stops retrying);
401 bad or missing signature; 400 malformed delivery, or one that parses but cannot be stored (nested deeper than
``MAX_NESTING``: refused once, never a 503 the vendor would retry for days); 408 a body slower than the request
deadline; 413 too large; 404 unknown system; 405 wrong method; 503 with Retry-After when the store cannot commit,
including a store another process keeps locked past ``STORE_WAIT_SECONDS`` (the vendor retries). Nothing a sender
controls produces a 500, and error bodies never carry a secret.

Secrets (fail closed): ``[webhooks] secrets.<name>``, a list of ``{ env = "NAME" }`` / ``{ file = "path" }``;
when absent, a ``client_secret`` secret of the system's own table (HubSpot signs with the app's client secret).
A served system without a usable secret stops the app from starting (``ConfigError`` naming the key); with
``require_secrets=False`` the app starts and answers that system's deliveries with 401.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response

from ..errors import ConfigError, WebhookRejected
from ..secrets import Secret
from ..store.base import redact_text
from ..workflows.events import enqueue_event
from .agent_api import AGENT_PREFIX, AgentApi
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..settings import Config
    from .verify import Verifier

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
"""The largest delivery body read, in bytes (1 MiB)."""

WEBHOOK_PREFIX = "/webhooks/"
CLIENT_SECRET_KEY = "client_secret"  # noqa: S105 - a config key name, not a secret
"""A system option used as the webhook secret when ``[webhooks] secrets.<name>`` is absent (HubSpot's app secret)."""

_READ_CHUNK = 64 * 1024

MAX_NESTING = 128
"""The deepest nesting of lists and objects a delivery may carry; deeper ones are refused once with 400. A vendor's
payloads nest a dozen levels (a rich-text comment with nested lists a few dozen); from about 600 the recursion that
stores them overflows, which made such a poison delivery a 503 the vendor retried for days."""

STORE_WAIT_SECONDS = 2.0
"""How long a delivery waits for a store another process has locked before it is answered 503 with Retry-After,
well within the vendors' delivery timeouts (5 to 10 s)."""

REQUEST_TIMEOUT_SECONDS = 10.0
"""The whole request (headers and body) must arrive within this; a slower sender is answered 408."""

_JSON_SCALARS = (str, int, float, bool, type(None))
_COMPACT = json.JSONEncoder(separators=(",", ":"))
"""``json.dumps(..., separators=(",", ":"))`` without building an encoder per call."""
_JSON_SCALAR_TYPES = frozenset(_JSON_SCALARS)

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Endpoint:
    """One served ``POST /webhooks/<name>``: the system, its plugin's verifier and its active secrets."""

    name: str
    plugin: str
    verifier: Verifier
    secrets: tuple[Secret, ...]
    secret_key: str
    """Where the secrets are configured (for messages): ``[webhooks] secrets.<name>`` or a ``client_secret``."""
    tolerance: float | None = None
    """Passed to verifiers that take a ``tolerance`` (seconds), from ``[webhooks] tolerance_seconds``."""
    public_url: str | None = None
    """The full URL this system's vendor calls (``[webhooks] public_urls.<name>``), when a proxy rewrites the path."""


def webhook_secrets(config: Config, name: str) -> tuple[list[Secret], str]:
    """The usable (non-empty) signing secrets of a system and the config key they come from."""
    table = config.section("webhooks").get("secrets", {})
    if name in table:
        values = table[name] if isinstance(table[name], list) else [table[name]]
        return [s for s in values if isinstance(s, Secret) and s], f"[webhooks] secrets.{name}"
    system = config.systems.get(name)
    fallback = system.options.get(CLIENT_SECRET_KEY) if system is not None else None
    if isinstance(fallback, Secret) and fallback:
        return [fallback], f"systems.{name}.{CLIENT_SECRET_KEY}"
    return [], f"[webhooks] secrets.{name}"


def _takes_tolerance(verifier: Verifier) -> bool:
    try:
        return "tolerance" in inspect.signature(verifier).parameters
    except (TypeError, ValueError):
        return False


def build_endpoints(
    rt: Runtime, systems: Iterable[str] | None = None, *, require_secrets: bool = True
) -> dict[str, Endpoint]:
    """The webhook endpoints to serve: every enabled system with a verifier, or the named ones.

    Raises ``ConfigError`` for a named system that has no verifier, and (with ``require_secrets``) for a served
    system without a usable secret: unsigned deliveries are never accepted.
    """
    config = rt.config
    verifiers = rt.plugins.webhook_verifiers()
    section = config.section("webhooks")
    tolerance = section.get("tolerance_seconds")
    public_urls = section.get("public_urls") or {}
    wanted = list(systems) if systems is not None else None
    if wanted is not None:
        for name in wanted:
            system = config.system(name)
            if system.plugin not in verifiers:
                raise ConfigError(f"systems.{name}: the plugin {system.plugin!r} verifies no webhooks")
            if not system.enabled:
                raise ConfigError(f"systems.{name} is disabled (enabled = false): its webhooks cannot be served")
    endpoints: dict[str, Endpoint] = {}
    missing: list[str] = []
    for name, system in config.systems.items():
        if wanted is not None and name not in wanted:
            continue
        if not system.enabled or system.plugin not in verifiers:
            continue
        verifier = verifiers[system.plugin]
        secrets, key = webhook_secrets(config, name)
        if not secrets:
            missing.append(key)
        url = public_urls.get(name)
        endpoints[name] = Endpoint(
            name=name,
            plugin=system.plugin,
            verifier=verifier,
            secrets=tuple(secrets),
            secret_key=key,
            tolerance=float(tolerance) if tolerance is not None and _takes_tolerance(verifier) else None,
            public_url=url if isinstance(url, str) and url else None,
        )
    if missing and require_secrets:
        keys = ", ".join(missing)
        raise ConfigError(
            f"webhooks cannot be served without a signing secret: set {keys} "
            '(a list of { env = "NAME" } or { file = "path" }); unsigned deliveries are never accepted'
        )
    for name in (n for n, e in endpoints.items() if not e.secrets):
        log.warning("webhooks for %s refuse every delivery (401): %s is not set", name, endpoints[name].secret_key)
    return endpoints


class JsonAnswer:
    """A small JSON answer as a WSGI app: the status, the encoded body and its headers, nothing else.

    What the receiver answers deliveries, ``/healthz`` and its 404/405s with. Werkzeug's ``Response`` built the
    same bytes through header objects and iterator wrappers that cost more than the rest of an echo's handling;
    this sends the same status line (``"200 OK"``, ``"503 SERVICE UNAVAILABLE"``) and headers (the given ones,
    then ``Content-Type: application/json`` and ``Content-Length``), and no body to a ``HEAD``.
    """

    __slots__ = ("body", "headers", "status_code")

    def __init__(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status
        self.body = (_COMPACT.encode(body) + "\n").encode("utf-8")
        self.headers = dict(headers or {})

    @classmethod
    def accepted(cls, accepted: int, duplicates: int) -> JsonAnswer:
        """200 ``{"accepted": n, "duplicates": m}``, the answer to a stored delivery, written without an encoder."""
        answer = cls.__new__(cls)
        answer.status_code = 200
        answer.body = f'{{"accepted":{int(accepted)},"duplicates":{int(duplicates)}}}\n'.encode("ascii")
        answer.headers = {}
        return answer

    def get_json(self) -> Any:
        """The body, parsed (for callers that dispatch in-process, such as tests)."""
        return json.loads(self.body)

    def __call__(self, environ: Mapping[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = list(self.headers.items())
        headers.append(("Content-Type", "application/json"))
        headers.append(("Content-Length", str(len(self.body))))
        start_response(_status_line(self.status_code), headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [self.body]


@functools.lru_cache(maxsize=64)
def _status_line(code: int) -> str:
    return f"{code} {HTTP_STATUS_CODES.get(code, 'UNKNOWN').upper()}"


def request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers by name as a WSGI server passed them, as werkzeug's ``EnvironHeaders`` lists them.

    ``HTTP_X_FOO`` becomes ``X-Foo`` (title case), and a non-empty ``CONTENT_TYPE`` / ``CONTENT_LENGTH``
    ``Content-Type`` / ``Content-Length``; a later name of the same spelling wins, as in ``dict(...items())``.
    """
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            if key not in _CONTENT_HEADERS_FROM_CLIENT:
                headers[_header_name(key[5:])] = value
        elif key in _CONTENT_HEADERS and value:
            headers[_header_name(key)] = value
    return headers


_CONTENT_HEADERS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})
_CONTENT_HEADERS_FROM_CLIENT = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})


@functools.lru_cache(maxsize=512)
def _header_name(key: str) -> str:
    """``X_ZENDESK_WEBHOOK_ID`` -> ``X-Zendesk-Webhook-Id`` (cached: senders repeat the same few names)."""
    return key.replace("_", "-").title()


def request_url(environ: Mapping[str, Any], public_url: str = "", *, endpoint_url: str | None = None) -> str:
    """The URL a vendor called, as signature schemes over the URI (HubSpot v3) expect it.

    ``endpoint_url`` (a system's full public URL) plus the query; else ``public_url`` plus the request's path and
    query; else the URL as the request arrived (scheme, Host, raw path and query).
    """
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
    if isinstance(raw, str) and raw.startswith(("http://", "https://")):  # absolute-form request target
        parts = urlsplit(raw)
        raw = parts.path + (f"?{parts.query}" if parts.query else "")
    query = str(environ.get("QUERY_STRING", ""))
    if isinstance(raw, str) and raw.startswith("/") and query and "?" not in raw:
        raw = f"{raw}?{query}"  # some servers give the path alone in REQUEST_URI
    if not isinstance(raw, str) or not raw.startswith("/"):
        path = quote(str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")), safe="/:@!$&'()*+,;=-._~")
        raw = path + (f"?{query}" if query else "")
    if endpoint_url:
        raw_query = raw.partition("?")[2]
        return endpoint_url + (f"?{raw_query}" if raw_query else "")
    if public_url:
        return public_url.rstrip("/") + raw
    scheme = str(environ.get("wsgi.url_scheme", "http"))
    host = environ.get("HTTP_HOST")
    if not host:
        host = str(environ.get("SERVER_NAME", "localhost"))
        port = str(environ.get("SERVER_PORT", ""))
        if port and (scheme, port) not in (("http", "80"), ("https", "443")):
            host = f"{host}:{port}"
    return f"{scheme}://{host}{raw}"


class BodyTooLarge(Exception):
    """The request body is larger than the cap (413)."""


class BadContentLength(Exception):
    """The Content-Length header is not a number (400)."""


class RequestTimeout(Exception):
    """The body did not arrive within the request's deadline (408)."""


def nesting_problem(value: Any, limit: int = MAX_NESTING) -> str | None:
    """Why ``value`` cannot be stored as JSON (nested deeper than ``limit``, a value of another type), or None.

    Walks iteratively, so a payload nested thousands deep is measured without a ``RecursionError``.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind in _JSON_SCALAR_TYPES:  # the common case first, by exact type (no isinstance chain per value)
            continue
        if kind is dict or kind is list or isinstance(item, dict | list | tuple):
            if depth >= limit:
                return f"nested deeper than {limit} levels"
            children = item.values() if isinstance(item, dict) else item
            depth += 1
            stack.extend([(child, depth) for child in children])
        elif not isinstance(item, _JSON_SCALARS):
            return f"holds a value that is not JSON ({type(item).__name__})"
    return None


def read_body(environ: Mapping[str, Any], cap: int = MAX_BODY, *, deadline: float | None = None) -> bytes:
    """The request body, never more than ``cap`` bytes read past what the cap allows.

    Raises ``BodyTooLarge`` for a Content-Length above the cap (nothing read) or a body without one that runs past
    the cap (at most ``cap + 1`` bytes read); ``BadContentLength`` for an unreadable Content-Length;
    ``RequestTimeout`` when the body is still arriving at ``deadline`` (``time.monotonic``; a server that streams
    the body to the app, where waitress hands it over whole and enforces its own deadline, see ``serve``).
    """
    stream = environ.get("wsgi.input")
    length_text = str(environ.get("CONTENT_LENGTH") or "").strip()
    if length_text:
        if not length_text.isascii() or not length_text.isdigit() or len(length_text) > 18:
            raise BadContentLength
        length = int(length_text)
        if length > cap:
            raise BodyTooLarge
        limit, exact = length, True
    else:
        chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        if not (chunked or environ.get("wsgi.input_terminated")) or stream is None:
            return b""  # WSGI: without a length and an EOF-terminated input, there is no body to read
        limit, exact = cap + 1, False
    if stream is None:
        return b""
    parts: list[bytes] = []
    remaining = limit
    while remaining > 0:
        if deadline is not None and time.monotonic() > deadline:
            raise RequestTimeout
        chunk = stream.read(min(remaining, _READ_CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    body = b"".join(parts)
    if not exact and len(body) > cap:
        raise BodyTooLarge
    return body


class Receiver:
    """The WSGI app of ``cxbridge serve``: webhook deliveries in, inbox rows and jobs out; health and metrics.

    One instance serves many threads; it holds no per-request state. ``clock`` gives ``now`` to the verifiers
    (a virtual clock in tests).
    """

    def __init__(
        self,
        rt: Runtime,
        *,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        systems: Iterable[str] | None = None,
        require_secrets: bool = True,
        max_body: int = MAX_BODY,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        store_wait: float = STORE_WAIT_SECONDS,
    ) -> None:
        self.rt = rt
        self.metrics = metrics
        self.clock = clock
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.store_wait = store_wait
        self.endpoints = build_endpoints(rt, systems, require_secrets=require_secrets)
        self.public_url = str(rt.config.section("webhooks").get("public_url") or "")
        self.agent_api = AgentApi(rt, clock=clock)
        metrics.register_systems(self.endpoints)
        metrics.bind(rt)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self.dispatch(environ)
        except Exception as exc:  # a bug of ours, never the sender's doing: ask the vendor to retry
            log.error("webhook receiver failed: %s", redact_text(f"{type(exc).__name__}: {exc}"))
            response = JsonAnswer(503, {"error": "temporarily unavailable"}, {"Retry-After": "5"})
        return response(environ, start_response)

    # -- routing -----------------------------------------------------------------------------------------------
    def dispatch(self, environ: dict[str, Any]) -> Response | JsonAnswer:
        """The answer to one request."""
        path = str(environ.get("PATH_INFO", ""))
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if path in ("/healthz", "/metrics"):
            if method not in ("GET", "HEAD"):
                return JsonAnswer(405, {"error": "method not allowed"}, {"Allow": "GET, HEAD"})
            return self.healthz() if path == "/healthz" else self.render_metrics()
        if path.startswith(AGENT_PREFIX):
            return self.agent_api.dispatch(environ)
        if path.startswith(WEBHOOK_PREFIX):
            endpoint = self.endpoints.get(path[len(WEBHOOK_PREFIX) :])
            if endpoint is None:
                return JsonAnswer(404, {"error": "no webhook endpoint at this path"})
            if method != "POST":
                return JsonAnswer(405, {"error": "method not allowed"}, {"Allow": "POST"})
            started = time.monotonic()
            try:
                return self.deliver(endpoint, environ)
            finally:
                self.metrics.observe_delivery(endpoint.name, time.monotonic() - started)
        return JsonAnswer(404, {"error": "not found"})

    def healthz(self) -> JsonAnswer:
        """200 with the queue depth when the store answers and takes a write, else 503 not-ready.

        Ready means a delivery would be stored: a store that reads but cannot write (a read-only file or folder,
        a full disk, a lock held by another process) is not ready, and says why.
        """
        try:
            store = self.rt.store
            depth = store.queue_depth()
        except Exception as exc:
            log.warning("healthz: the store does not answer: %s", redact_text(type(exc).__name__))
            unanswered = {"status": "unavailable", "reason": "the store does not answer"}
            return JsonAnswer(503, unanswered, {"Retry-After": "5"})
        try:
            store.check_writable()
        except Exception as exc:
            reason = redact_text(f"the store cannot take a write: {exc}")
            log.warning("healthz: %s", reason)
            return JsonAnswer(503, {"status": "not-ready", "reason": reason, "queue": depth}, {"Retry-After": "5"})
        return JsonAnswer(200, {"status": "ok", "queue": depth, "webhooks": sorted(self.endpoints)})

    def render_metrics(self) -> Response:
        """The Prometheus text exposition of this process's metrics."""
        return Response(self.metrics.render(self.rt), status=200, content_type=METRICS_CONTENT_TYPE)

    # -- deliveries --------------------------------------------------------------------------------------------
    def deliver(self, endpoint: Endpoint, environ: dict[str, Any]) -> JsonAnswer:
        """Read, verify and persist one delivery for ``endpoint``; the answer the vendor gets."""
        name = endpoint.name
        try:
            body = read_body(environ, self.max_body, deadline=time.monotonic() + self.request_timeout)
        except RequestTimeout:
            self.metrics.delivery(name, "rejected_408")
            return JsonAnswer(408, {"error": "the request did not arrive in time"}, {"Connection": "close"})
        except BodyTooLarge:
            self.metrics.delivery(name, "too_large")
            return JsonAnswer(413, {"error": f"the body is larger than {self.max_body} bytes"})
        except BadContentLength:
            self.metrics.delivery(name, "rejected_400")
            return JsonAnswer(400, {"error": "unreadable Content-Length"})
        if not endpoint.secrets:  # fail closed: without a secret nothing can be verified, so nothing is accepted
            self.metrics.delivery(name, "rejected_401")
            return JsonAnswer(401, {"error": f"{name}: no signing secret is configured"})
        try:
            events = self._verify(endpoint, environ, body)
        except WebhookRejected as exc:
            status = 401 if exc.status == 401 else 400
            self.metrics.delivery(name, f"rejected_{status}")
            message = redact_text(str(exc))
            log.info("webhook %s rejected (%d): %s", name, status, message)
            return JsonAnswer(status, {"error": message})
        except Exception as exc:  # the verifier choked on the sender's input: malformed, not our failure
            self.metrics.delivery(name, "rejected_400")
            log.info("webhook %s rejected (400): the verifier raised %s", name, type(exc).__name__)
            return JsonAnswer(400, {"error": f"{name}: malformed delivery"})
        for event in events:
            problem = nesting_problem(getattr(event, "payload", None))
            if problem is not None:  # poison: refused once, so the vendor does not retry it for days
                self.metrics.delivery(name, "rejected_400")
                log.info("webhook %s rejected (400): the delivery %s", name, problem)
                return JsonAnswer(400, {"error": f"{name}: the delivery cannot be stored: it {problem}"})
        accepted = duplicates = 0
        try:
            with self.rt.store.write_budget(self.store_wait):
                for event in events:
                    if enqueue_event(self.rt, name, event):
                        accepted += 1
                    else:
                        duplicates += 1
        except RecursionError:  # the content, not the store: storing it again would fail the same way
            self.metrics.delivery(name, "rejected_400")
            log.info("webhook %s rejected (400): the delivery nests too deeply to be stored", name)
            return JsonAnswer(400, {"error": f"{name}: the delivery cannot be stored: it nests too deeply"})
        except Exception as exc:  # the store could not commit: the vendor must retry
            self.metrics.delivery(name, "error")
            log.error("webhook %s not stored: %s", name, redact_text(f"{type(exc).__name__}: {exc}"))
            return JsonAnswer(503, {"error": "the delivery could not be stored; retry later"}, {"Retry-After": "5"})
        self.metrics.delivery(name, "accepted" if accepted else "duplicate")
        log.debug("webhook %s: %d accepted, %d duplicates", name, accepted, duplicates)
        return JsonAnswer.accepted(accepted, duplicates)

    def _verify(self, endpoint: Endpoint, environ: dict[str, Any], body: bytes) -> Sequence[Any]:
        headers = request_headers(environ)
        url = request_url(environ, self.public_url, endpoint_url=endpoint.public_url)
        kwargs: dict[str, Any] = {
            "method": str(environ.get("REQUEST_METHOD", "POST")).upper(),
            "url": url,
            "headers": headers,
            "body": body,
            "secrets": endpoint.secrets,
            "now": self.clock(),
        }
        if endpoint.tolerance is not None:
            kwargs["tolerance"] = endpoint.tolerance
        events = endpoint.verifier(**kwargs)
        if not isinstance(events, list | tuple):
            raise TypeError("a verifier returned something other than a list of Events")
        return events


def make_app(
    rt: Runtime,
    *,
    metrics: Metrics | None = None,
    clock: Callable[[], float] = time.time,
    systems: Iterable[str] | None = None,
    require_secrets: bool = True,
) -> Receiver:
    """The receiver's WSGI app for a Runtime (a fresh ``Metrics`` unless one is shared with workers)."""
    return Receiver(
        rt,
        metrics=metrics if metrics is not None else Metrics(),
        clock=clock,
        systems=systems,
        require_secrets=require_secrets,
    )
