"""One HTTP layer for every connector: sessions, auth, the error table, retries, call counts, redaction.

Implementation lives in the submodules; connectors import from here.

Contract (what connectors rely on):

``HttpClient(system_config, *, auth, error_message=..., counter=None, default_headers=None, cloud_domains=(),
allow_any_https_host=False, session=None, sleep=time.sleep, max_inline_wait=60.0, clock=time.time,
backoff_base=0.5, backoff_cap=30.0, retry_after_cap=300.0)``
    Checks ``system_config.base_url`` with ``check_base_url`` (``ConfigError``: https only, no userinfo, no IP
    literal, host on ``cloud_domains`` unless ``allow_any_https_host``; http and loopback only, and only
    loopback, when the system is a sandbox). One ``requests.Session`` per client unless one is injected;
    timeouts ``(connect_timeout, timeout)`` from the config; ``default_headers`` are sent on every request.
    ``error_message(response)`` returns the vendor's own words from an error body (or None).

``client.request(method, path_or_url, *, op, params=None, json=None, data=None, headers=None, creates=False,
ok=None) -> requests.Response``
    ``path_or_url`` is relative to the base URL, or an absolute URL whose origin must equal the base URL's
    (pagination links; otherwise ``VendorError``). ``op`` names the operation for the call counts
    (``tickets.show``). ``ok`` lists accepted statuses (default any 2xx). Redirects are never followed (a 3xx
    is a ``VendorError``). Up to ``1 + max_retries`` attempts, full-jitter exponential backoff with a cap.
    Reads and idempotent writes retry connect errors, read timeouts, resets, 429 and 500/502/503/504.
    ``creates=True`` marks a non-idempotent POST: retried only where the request was certainly not processed
    (connect errors, 429, 503 with Retry-After); a read timeout, a reset after send, or any other 5xx raises
    ``AmbiguousOutcome`` at once. 404 ``NotFound``; 401/403 ``AuthError``; 409 ``Conflict`` (never retried);
    429 and 503-with-Retry-After ``RateLimited``; other 4xx ``VendorError``; 5xx ``Unavailable``. Each
    error's message is one redacted line ``<system>: <status> <reason>: <vendor message>`` and carries
    ``status``, ``vendor_message``, ``action`` and ``retry_after``. ``Retry-After`` (seconds or HTTP-date,
    capped at 300 s) is slept through the injected ``sleep`` when it is at most ``max_inline_wait``; a longer
    one raises ``RateLimited`` at once with ``retry_after`` set so a worker can re-queue. After the last
    attempt the last typed error is raised (never tenacity's ``RetryError``). ``action`` is one of
    ``retry``, ``rate-limited``, ``fail-config`` (401/403), ``fail``, ``reconcile`` (409, ambiguous). A POST
    carrying a key the vendor deduplicates on (Zendesk ``Idempotency-Key: <op id>`` in ``headers``) is sent
    with ``creates=False``, so every row of the table is retried.
``client.get/post/put/patch/delete(path, *, op, **kw)`` are shorthands.
``client.base_url``; ``client.counter`` (a ``CallCounter``: every attempt per (system, op, status or
"error"); ``total()``, ``by_system()``, ``by_op()``, ``by_outcome()``, ``snapshot()``, ``reset()``).

Auth: ``BasicAuth(username, Secret)`` and ``BearerAuth(Secret)``; the Basic credential they build is
registered with the redactor. Redaction: ``redact(text)`` scrubs every known secret (raw, base64,
URL-encoded) and credential header values; ``RedactingFilter`` / ``install_redaction(logger)`` apply it to
logs. DEBUG logs (logger ``cxbridge.http``) show system, method, URL without query, op, status and elapsed
time, never headers. Sessions the client creates (non-sandbox) refuse, at connect time, hosts that resolve to
loopback, link-local and other internal addresses (private ranges too unless ``allow_any_https_host``), which
defeats DNS rebinding; an injected session is used as given. The client's own sessions send through
``DirectAdapter`` (kept-alive ``http.client`` connections, the same bytes, responses and exceptions as requests'
adapter on urllib3, which still sends what it does not: proxied, streamed or client-certificate requests, and
everything while ``HTTPAdapter.send`` is mocked).
"""

from __future__ import annotations

from .auth import BasicAuth, BearerAuth
from .client import HttpClient, fallback_error_message
from .counter import ERROR, CallCounter, default_counter
from .guard import AddressPolicy, BlockedAddress, GuardedAdapter, guarded_session
from .redact import RedactingFilter, escape_crlf, install_redaction, redact, redact_headers
from .retry import (
    FAIL,
    FAIL_CONFIG,
    RATE_LIMITED,
    RECONCILE,
    RETRY,
    RETRY_AFTER_CAP,
    STATUS_TABLE,
    SUCCESS,
    Rule,
    classify_transport_error,
    parse_retry_after,
    rule_for,
)
from .transport import DirectAdapter
from .urls import check_base_url, host_matches, ip_literal, is_loopback_host, origin, same_origin

__all__ = [
    "ERROR",
    "FAIL",
    "FAIL_CONFIG",
    "RATE_LIMITED",
    "RECONCILE",
    "RETRY",
    "RETRY_AFTER_CAP",
    "STATUS_TABLE",
    "SUCCESS",
    "AddressPolicy",
    "BasicAuth",
    "BearerAuth",
    "BlockedAddress",
    "CallCounter",
    "DirectAdapter",
    "GuardedAdapter",
    "HttpClient",
    "RedactingFilter",
    "Rule",
    "check_base_url",
    "classify_transport_error",
    "default_counter",
    "escape_crlf",
    "fallback_error_message",
    "guarded_session",
    "host_matches",
    "install_redaction",
    "ip_literal",
    "is_loopback_host",
    "origin",
    "parse_retry_after",
    "redact",
    "redact_headers",
    "rule_for",
    "same_origin",
]
