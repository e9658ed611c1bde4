"""``HttpClient``: one configured session per system with the error table, retries, counts and redaction."""

from __future__ import annotations

import http
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import timedelta
from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
import requests.auth
import urllib3.exceptions
import urllib3.response
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from .. import __version__
from ..errors import AmbiguousOutcome, RateLimited, Unavailable, VendorError
from .counter import ERROR, CallCounter, default_counter
from .guard import AddressPolicy, guarded_session
from .redact import one_line, redact
from .retry import (
    FAIL,
    RATE_LIMITED,
    RECONCILE,
    RETRY,
    RETRY_AFTER_CAP,
    classify_transport_error,
    parse_retry_after,
    rule_for,
)
from .transport import DirectAdapter, _Raw
from .urls import check_base_url, origin, same_origin

if TYPE_CHECKING:
    from ..settings import SystemConfig

log = logging.getLogger("cxbridge.http")

ErrorMessage = Callable[[requests.Response], "str | None"]

BACKOFF_BASE = 0.5
"""Seconds: the first full-jitter backoff is drawn from [0, 2 x base]."""
BACKOFF_CAP = 30.0
"""Seconds: no backoff sleep is longer (Retry-After has its own cap)."""


class _Retry(Exception):
    """Internal: an attempt failed in a way the table says to retry; carries the typed error and the wait."""

    def __init__(self, error: VendorError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


def fallback_error_message(response: requests.Response) -> str | None:
    """A short error body shown as the vendor's message when the connector has no parser for it.

    Only a body of at most 300 characters that is not HTML is used; the caller redacts it.
    """
    ctype = response.headers.get("Content-Type", "").lower()
    if "html" in ctype:
        return None
    try:
        text = response.text
    except Exception:  # undecodable body
        return None
    text = " ".join(text.split())
    if not text or len(text) > 300 or text.startswith("<"):
        return None
    return text


def _status_line(response: requests.Response) -> str:
    reason = response.reason
    if not reason:
        try:
            reason = http.HTTPStatus(response.status_code).phrase
        except ValueError:
            reason = ""
    return f"{response.status_code} {one_line(reason, 80)}".rstrip()


def _shown_url(url: str) -> str:
    """The URL as logged and shown in errors: no query string (it may hold PII), redacted."""
    parts = urlsplit(url)
    shown = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return redact(shown + ("?…" if parts.query else ""))


# untyped in requests' stubs
_merge_setting = cast(Callable[[Any, Any], Any], requests.sessions.merge_setting)
_dispatch_hook = cast(Callable[..., requests.Response], requests.hooks.dispatch_hook)
_to_native_string = cast(Callable[[Any], str], requests.utils.to_native_string)
_extract_cookies_to_jar = cast(Callable[[Any, Any, Any], None], requests.cookies.extract_cookies_to_jar)

_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*|/)*")
"""A path that ``PreparedRequest.prepare_url`` leaves exactly as it is: unreserved characters only, no query, no
percent sign, and no segment starting with a dot (so no dot segment for urllib3 to remove)."""


_NO_HOOKS: dict[str, list[Any]] = {"response": []}
"""A new session's hooks: none to register on a prepared request."""


def _encoded_params(params: Any) -> str | None:
    """The query ``PreparedRequest._encode_params`` makes of a dict or a list of pairs, or None for another type.

    The same steps as requests (a str or bytes value, or one without ``__iter__``, is one value; None values are
    dropped; str keys and values are UTF-8 encoded; ``urlencode(..., doseq=True)``) without requests' checks
    against typing protocols, which cost more than the encoding. ``urlencode`` quotes every character but the
    unreserved ones, so ``requote_uri`` leaves the result as it is.
    """
    if isinstance(params, dict):
        pairs: Iterable[Any] = params.items()
    elif isinstance(params, (list, tuple)):
        pairs = params
    else:
        return None
    result: list[tuple[Any, Any]] = []
    for key, values in pairs:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        for value in values:
            if value is not None:
                result.append(
                    (
                        key.encode("utf-8") if isinstance(key, str) else key,
                        value.encode("utf-8") if isinstance(value, str) else value,
                    )
                )
    return urlencode(result, doseq=True)


def settle_environment(session: requests.Session, base_url: str) -> None:
    """Read the environment's proxy (``HTTPS_PROXY``, ``NO_PROXY``) and CA bundle settings once, for the base URL.

    requests otherwise reads them on every request (a tenth of an escalation's CPU in benchmarks/bench_engine.py);
    every request of a client goes to its base URL's origin, so the answer is the same each time.
    """
    proxies = requests.utils.get_environ_proxies(base_url)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.trust_env = False
    session.proxies.update(proxies)
    if bundle:
        session.verify = bundle


def _read_body(response: requests.Response) -> None:
    """Read the body as ``Response.content`` does when ``Session.send`` does not stream, in one read of the urllib3
    response instead of 10 KiB chunks through two generators, raising the same exceptions; a body already read (by
    a mock or a hook) or another kind of ``raw`` is left to ``Response.content``."""
    raw = response.raw
    if (
        response._content is not False  # type: ignore[comparison-overlap]  # False: not read yet
        or response._content_consumed
        or response.status_code == 0
        or not isinstance(raw, urllib3.response.HTTPResponse)
    ):
        response.content  # noqa: B018 - reads the body if it is still to read
        return
    try:
        body = raw.read(decode_content=True)
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
    response._content = body or b""
    response._content_consumed = True


def _may_set_cookies(raw: Any) -> bool:
    """False only for a urllib3 or ``DirectAdapter`` response without ``Set-Cookie``/``Set-Cookie2``
    (``extract_cookies_to_jar`` would store nothing): their header dicts answer ``in`` without the KeyError that
    ``Response.headers`` raises inside."""
    if isinstance(raw, _Raw):
        headers: Any = raw._original_response.msg
    elif isinstance(raw, urllib3.response.HTTPResponse):
        headers = raw.headers
    else:
        return True
    return "set-cookie" in headers or "set-cookie2" in headers


def _plain_prefix(base_url: str) -> str | None:
    """The base URL when ``PreparedRequest.prepare_url`` leaves it as it is (a lower-case scheme and host, no
    default or padded port...), so that base URL + a plain path is already the prepared URL; else None."""
    probe = requests.PreparedRequest()
    try:
        probe.prepare_url(base_url + "/x", None)
    except requests.RequestException:
        return None
    return base_url if probe.url == base_url + "/x" else None


class HttpClient:
    """The HTTP client of one configured system; see the ``cxbridge.http`` module docstring for the contract.

    One ``requests.Session`` per client (or the injected one), explicit ``(connect, read)`` timeouts from the
    system's config, redirects never followed, the base URL checked against the vendor's domains when the
    client is built (``ConfigError`` otherwise), and every attempt counted in ``counter``.

    ``sleep`` and ``clock`` are injectable so tests never sleep: ``sleep`` performs backoff and Retry-After
    waits, ``clock`` (Unix time) measures HTTP-date Retry-After values. A Retry-After longer than
    ``max_inline_wait`` is not slept: ``RateLimited`` is raised with ``retry_after`` set so a worker can
    re-queue the job.
    """

    def __init__(
        self,
        system_config: SystemConfig,
        *,
        auth: requests.auth.AuthBase | None,
        error_message: ErrorMessage | None = None,
        counter: CallCounter | None = None,
        session: requests.Session | None = None,
        default_headers: Mapping[str, str] | None = None,
        cloud_domains: Iterable[str] = (),
        allow_any_https_host: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        max_inline_wait: float = 60.0,
        clock: Callable[[], float] = time.time,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        retry_after_cap: float = RETRY_AFTER_CAP,
    ) -> None:
        self.config = system_config
        self.system = system_config.name
        self.base_url = check_base_url(
            system_config.name,
            system_config.base_url,
            sandbox=system_config.sandbox,
            cloud_domains=tuple(cloud_domains),
            allow_any_https_host=allow_any_https_host,
        )
        self.auth = auth
        self.error_message = error_message
        self.counter = counter if counter is not None else default_counter
        self._own_session = session is None
        if session is not None:
            self.session = session
        elif system_config.sandbox:
            self.session = requests.Session()
            self.session.mount("http://", DirectAdapter())
            self.session.mount("https://", DirectAdapter())
        else:
            self.session = guarded_session(AddressPolicy(allow_private=allow_any_https_host))
        if self._own_session:
            settle_environment(self.session, self.base_url)
        self.default_headers: dict[str, str] = {
            "Accept": "application/json",
            "User-Agent": f"cxbridge/{__version__}",
            **dict(default_headers or {}),
        }
        self.timeout = (float(system_config.connect_timeout), float(system_config.timeout))
        self.max_attempts = 1 + max(0, int(system_config.max_retries))
        self.max_inline_wait = float(max_inline_wait)
        self.retry_after_cap = float(retry_after_cap)
        self._sleep = sleep
        self._clock = clock
        self._backoff = wait_random_exponential(multiplier=backoff_base, max=backoff_cap)
        self._not_before = 0.0  # the vendor asked us (429/503 with Retry-After) not to call before this time
        self._limit_lock = threading.Lock()
        self._plain_prefix = _plain_prefix(self.base_url)
        # (the session's and the default headers as last seen, the headers requests prepares of them), see _headers
        self._header_template: tuple[Any, CaseInsensitiveDict[Any]] | None = None

    # --- public API -----------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        op: str,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        creates: bool = False,
        ok: Collection[int] | None = None,
    ) -> requests.Response:
        """Send one logical request (retried per the error table) and return the accepted response.

        ``ok`` lists the accepted statuses (default: any 2xx). Every other status raises the typed error of
        ``cxbridge.errors`` with the vendor's message; see ``cxbridge.http.retry`` for the table.
        """
        method = method.upper()
        url = self.url(path_or_url)
        self._honour_rate_limit(op)
        kwargs: dict[str, Any] = {
            "op": op,
            "params": params,
            "json": json,
            "data": data,
            "headers": headers,
            "creates": creates,
            "ok": ok,
        }
        try:
            # the first attempt goes out without tenacity (most calls need no other); only a failure the table
            # retries builds the Retrying, which then sees that failure as its own first attempt
            return self._attempt(method, url, **kwargs)
        except _Retry as exc:
            failed = exc
        if self.max_attempts <= 1:
            raise failed.error from None
        replay = [failed]

        def attempt(method: str, url: str, **kwargs: Any) -> requests.Response:
            if replay:  # tenacity's attempt 1: the failure above, not sent again
                raise replay.pop()
            return self._attempt(method, url, **kwargs)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            retry=retry_if_exception_type(_Retry),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(attempt, method, url, **kwargs)
        except _Retry as exc:  # attempts exhausted: the last typed error, never tenacity's RetryError
            raise exc.error from None

    def _honour_rate_limit(self, op: str) -> None:
        """Before a call: wait out, or refuse with ``RateLimited``, a Retry-After the vendor gave any earlier call.

        The client is shared by the threads of a process, so one 429 holds every worker's calls to this system
        until the vendor's time instead of each worker spending a call to meet its own 429.
        """
        with self._limit_lock:
            wait = self._not_before - self._clock()
        if wait <= 0:
            return
        if wait > self.max_inline_wait:
            raise RateLimited(
                self.system,
                f"{self.system}: {op} not sent: rate limited by the vendor for {wait:.1f}s more",
                action=RATE_LIMITED,
                retry_after=wait,
            )
        self._sleep(wait)

    def _note_rate_limit(self, retry_after: float) -> None:
        with self._limit_lock:
            self._not_before = max(self._not_before, self._clock() + retry_after)

    def get(self, path: str, *, op: str, **kw: Any) -> requests.Response:
        """``request("GET", ...)``."""
        return self.request("GET", path, op=op, **kw)

    def post(self, path: str, *, op: str, **kw: Any) -> requests.Response:
        """``request("POST", ...)``; pass ``creates=True`` for a non-idempotent create."""
        return self.request("POST", path, op=op, **kw)

    def put(self, path: str, *, op: str, **kw: Any) -> requests.Response:
        """``request("PUT", ...)``."""
        return self.request("PUT", path, op=op, **kw)

    def patch(self, path: str, *, op: str, **kw: Any) -> requests.Response:
        """``request("PATCH", ...)``."""
        return self.request("PATCH", path, op=op, **kw)

    def delete(self, path: str, *, op: str, **kw: Any) -> requests.Response:
        """``request("DELETE", ...)``."""
        return self.request("DELETE", path, op=op, **kw)

    def url(self, path_or_url: str) -> str:
        """The absolute URL for a path relative to the base URL, or a same-origin absolute URL unchanged.

        Raises ``VendorError`` for an absolute URL on another origin (a pagination or payload link that
        points elsewhere is never followed).
        """
        if path_or_url.startswith("/") and not path_or_url.startswith("//") and _PLAIN_PATH.fullmatch(path_or_url):
            return self.base_url + path_or_url  # no scheme, no authority: on the base URL's origin by construction
        parts = urlsplit(path_or_url)
        if parts.scheme or path_or_url.startswith("//"):
            if not same_origin(path_or_url, self.base_url):
                raise VendorError(
                    self.system,
                    f"{self.system}: refusing to follow {_shown_url(path_or_url)}: "
                    f"it is not on the configured origin {self._origin_text()}",
                    action=FAIL,
                )
            # rebuilt on the configured scheme and authority, so the request goes exactly where configured
            base = urlsplit(self.base_url)
            return urlunsplit((base.scheme, base.netloc, parts.path or "/", parts.query, ""))
        path = path_or_url if path_or_url.startswith("/") else "/" + path_or_url
        url = self.base_url + path
        if not same_origin(url, self.base_url):  # e.g. a path smuggling '@' or '\' into the authority
            raise VendorError(self.system, f"{self.system}: refusing the path {redact(path)!r}", action=FAIL)
        return url

    def close(self) -> None:
        """Close the session if this client created it."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpClient({self.system!r}, {self.base_url!r})"

    # --- one attempt ----------------------------------------------------------------------------------------

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        op: str,
        params: Any,
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
        creates: bool,
        ok: Collection[int] | None,
    ) -> requests.Response:
        start = time.monotonic()
        try:
            response = self._send(method, url, params=params, json=json, data=data, headers=headers)
        except requests.RequestException as exc:
            elapsed = time.monotonic() - start
            self.counter.record(self.system, op, ERROR)
            raise self._transport_error(exc, method, url, op=op, creates=creates, elapsed=elapsed) from None
        elapsed = time.monotonic() - start
        self.counter.record(self.system, op, response.status_code)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s %s op=%s status=%d elapsed=%.3fs",
                self.system,
                method,
                _shown_url(url),
                op,
                response.status_code,
                elapsed,
            )
        accepted = (200 <= response.status_code < 300) if ok is None else response.status_code in ok
        if accepted:
            return response
        raise self._status_error(response, method, url, creates=creates)

    def _send(self, method: str, url: str, **fields: Any) -> requests.Response:
        """One HTTP exchange: ``Session.request`` for an injected session; for the client's own session (environment
        settled once, ``trust_env`` off) the request prepared here and handed to the session's adapter. ``fields``
        are ``_prepare``'s params, json, data and headers.

        ``Session.request`` and ``Session.send`` redo per call what is the same on every call of a client: merging
        and validating the session's and default headers, preparing a cookie header from an empty jar, parsing and
        re-quoting a URL built from the checked base URL, encoding params through typing-protocol checks, and more.
        ``_prepare`` and ``_exchange`` produce the same request and response (an exact equivalent, or requests' own
        step where a shortcut would not be exact) at a fraction of the CPU; the adapter's ``send`` (and any mock of
        it) runs as before.
        """
        session = self.session
        if not self._own_session or session.trust_env:
            headers = fields.pop("headers")
            return session.request(
                method,
                url,
                headers={**self.default_headers, **dict(headers or {})},
                auth=self.auth,
                timeout=self.timeout,
                allow_redirects=False,
                **fields,
            )
        return self._exchange(self._prepare(method, url, **fields))

    def _prepare(
        self,
        method: str,
        url: str,
        *,
        params: Any,
        json: Any,
        data: Any,
        headers: Mapping[str, str] | None,
    ) -> requests.PreparedRequest:
        """The request ``Session.request`` would prepare on the client's own session (``Session.prepare_request``
        and ``PreparedRequest.prepare``), step by step in the same order."""
        session = self.session
        prepared = requests.PreparedRequest()
        prepared.method = method  # already upper-case and a str
        if session.params:
            params = _merge_setting(params, session.params)
        prepared.url = self._prepared_url(prepared, url, params)
        prepared.headers = self._headers(headers)
        jar = session.cookies
        if isinstance(jar, CookieJar) and len(jar) == 0:
            prepared._cookies = jar  # type: ignore[attr-defined]  # prepare_cookies' store; an empty jar adds no header
        else:
            prepared.prepare_cookies(jar)
        prepared.prepare_body(data, None, json)
        prepared.prepare_auth(self.auth if self.auth is not None else session.auth, url)
        if session.hooks != _NO_HOOKS:
            prepared.prepare_hooks(session.hooks)
        return prepared

    def _prepared_url(self, prepared: requests.PreparedRequest, url: str, params: Any) -> str:
        """``PreparedRequest.prepare_url(url, params)``'s result: built directly when the URL is the (already
        normal) base URL and a plain path and the params a dict or list, else by requests."""
        prefix = self._plain_prefix
        if prefix is not None and url.startswith(prefix) and _PLAIN_PATH.fullmatch(url, len(prefix)):
            rest = url[len(prefix) :]
            if rest.startswith("/"):
                if params is None:
                    return url
                query = _encoded_params(params)
                if query is not None:
                    return f"{url}?{query}" if query else url
        prepared.prepare_url(url, params)
        return cast(str, prepared.url)

    def _headers(self, headers: Mapping[str, str] | None) -> CaseInsensitiveDict[Any]:
        """The request's headers as ``PreparedRequest.prepare_headers`` makes them of the session's headers, the
        client's default headers and the call's (a None value drops the header).

        The session's and default headers are merged and validated once and again only when either changes
        (the session's are public and may be edited); a call's own headers are validated on every call.
        """
        session_headers = self.session.headers
        seen = (tuple(session_headers.items()), tuple(self.default_headers.items()))
        template = self._header_template
        if template is None or template[0] != seen:
            if any(value is None for _, value in seen[0] + seen[1]):  # a None to drop: merge as requests does
                merged: CaseInsensitiveDict[Any] = CaseInsensitiveDict(session_headers)
                merged.update({**self.default_headers, **dict(headers or {})})
                for name in [name for name, value in merged.items() if value is None]:
                    del merged[name]
                probe = requests.PreparedRequest()
                probe.prepare_headers(merged)
                return probe.headers
            probe = requests.PreparedRequest()
            probe.prepare_headers(CaseInsensitiveDict(session_headers, **self.default_headers))
            self._header_template = template = (seen, probe.headers)
        prepared = template[1].copy()
        for name, value in (headers or {}).items():
            if value is None:
                prepared.pop(name, None)
            else:
                check_header_validity((name, value))
                prepared[_to_native_string(name)] = value
        return prepared

    def _exchange(self, prepared: requests.PreparedRequest) -> requests.Response:
        """What ``Session.send`` does with the prepared request (``allow_redirects=False``): the session's adapter
        sends it, the response hooks run, cookies the answer sets go into the session's jar, a redirect's next
        request is kept on ``Response.next``, and the body is read unless the session streams."""
        session = self.session
        kwargs: dict[str, Any] = {
            "timeout": self.timeout,
            "proxies": session.proxies,
            "stream": session.stream,
            "verify": session.verify,
            "cert": session.cert,
        }
        adapter = session.get_adapter(url=cast(str, prepared.url))
        start = time.perf_counter()
        response = adapter.send(prepared, **kwargs)
        response.elapsed = timedelta(seconds=time.perf_counter() - start)
        hooked = any(prepared.hooks.values())
        if hooked:
            response = _dispatch_hook("response", prepared.hooks, response, **kwargs)
            for earlier in response.history:
                _extract_cookies_to_jar(session.cookies, earlier.request, earlier.raw)
        if hooked or _may_set_cookies(response.raw):
            _extract_cookies_to_jar(session.cookies, prepared, response.raw)
        if 300 <= response.status_code < 400 and response.is_redirect:
            next_request = next(session.resolve_redirects(response, prepared, yield_requests=True, **kwargs), None)
            if next_request is not None:
                response._next = next_request  # type: ignore[attr-defined]  # Response.next's store
        if not kwargs["stream"]:
            _read_body(response)
        return response

    def _transport_error(
        self,
        exc: requests.RequestException,
        method: str,
        url: str,
        *,
        op: str,
        creates: bool,
        elapsed: float,
    ) -> Exception:
        failure = classify_transport_error(exc)
        where = f"{method} {_shown_url(url)}"
        log.debug("%s %s op=%s error=%s elapsed=%.3fs", self.system, where, op, redact(failure.reason), elapsed)
        if not failure.retryable:
            return VendorError(self.system, f"{self.system}: {where}: {failure.reason}", action=FAIL)
        if failure.not_sent:
            err = Unavailable(
                self.system,
                f"{self.system}: could not reach {self._origin_text()}: {failure.reason}",
                action=RETRY,
            )
            return _Retry(err)
        if creates:
            return AmbiguousOutcome(
                self.system,
                f"{self.system}: {where}: {failure.reason}; the request may or may not have been processed",
                action=RECONCILE,
            )
        return _Retry(Unavailable(self.system, f"{self.system}: {where}: {failure.reason}", action=RETRY))

    def _status_error(self, response: requests.Response, method: str, url: str, *, creates: bool) -> Exception:
        status = response.status_code
        vendor = self._vendor_message(response)
        line = f"{self.system}: {_status_line(response)}"
        if vendor:
            line += f": {vendor}"

        if 300 <= status < 400:
            location = response.headers.get("Location")
            shown = f" to {_shown_url(location)}" if location else ""
            return VendorError(
                self.system, f"{line} (redirect{shown} not followed)", status=status, vendor_message=vendor
            )

        retry_after: float | None = None
        if status in (429, 503):
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), self._clock(), cap=self.retry_after_cap
            )
        rule = rule_for(status, creates=creates, retry_after=retry_after is not None)
        if rule.error is AmbiguousOutcome:
            line += f" ({method} {_shown_url(url)} may or may not have been processed)"
        if rule.action == RATE_LIMITED and retry_after is not None:
            line += f" (retry after {retry_after:g}s)"
            self._note_rate_limit(retry_after)
        error = rule.error(
            self.system,
            redact(line),
            status=status,
            vendor_message=vendor,
            action=rule.action,
            retry_after=retry_after,
        )
        if not rule.retryable:
            return error
        if rule.action == RATE_LIMITED and retry_after is not None and retry_after > self.max_inline_wait:
            return error  # too long to sleep here: the caller re-queues
        return _Retry(error, wait=retry_after)

    def _vendor_message(self, response: requests.Response) -> str | None:
        message: str | None
        try:
            parse = self.error_message or fallback_error_message
            message = parse(response)
            if message is None and self.error_message is not None:
                message = fallback_error_message(response)
        except Exception:  # a vendor body the parser did not expect must not hide the status
            message = None
        if not message:
            return None
        return redact(one_line(str(message)))

    # --- retry plumbing -------------------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retry) and exc.wait is not None:
            return exc.wait
        return float(self._backoff(state))

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        log.info(
            "%s: attempt %d of %d failed, retrying in %.2fs: %s",
            self.system,
            state.attempt_number,
            self.max_attempts,
            sleep,
            redact(str(exc)),
        )

    def _origin_text(self) -> str:
        scheme, host, port = origin(self.base_url)
        return f"{scheme}://{host}:{port}"
