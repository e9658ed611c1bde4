"""The error table (status -> typed error and action), transport-error classification and Retry-After parsing.

Policy is data (RELIABILITY.md section 4):

=================================  =====================  ==========================================
outcome                            reads, idempotent      ``creates=True`` (non-idempotent POST)
=================================  =====================  ==========================================
connect refused/timeout, DNS, TLS  retry                  retry (certainly not sent)
429, 503 with Retry-After          wait (capped), retry   wait (capped), retry
400/401/403/404/422, other 4xx     fail fast              fail fast
409                                Conflict, no retry     Conflict, no retry
read timeout, reset after send     retry                  AmbiguousOutcome, no retry
500/502/504, 503 w/o Retry-After   retry                  AmbiguousOutcome, no retry
other 5xx (501, 505...)            fail                   AmbiguousOutcome, no retry
3xx                                fail (never followed)  fail (never followed)
=================================  =====================  ==========================================
"""

from __future__ import annotations

import email.utils
import math
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import requests
import urllib3.exceptions

from ..errors import AmbiguousOutcome, AuthError, Conflict, NotFound, RateLimited, Unavailable, VendorError
from .guard import BlockedAddress

# Actions of the error table (VendorError.action).
SUCCESS = "success"
RETRY = "retry"
RATE_LIMITED = "rate-limited"
FAIL_CONFIG = "fail-config"
FAIL = "fail"
RECONCILE = "reconcile"

_SECONDS = re.compile(r"^[0-9]{1,12}(?:\.[0-9]{1,6})?$")

RETRY_AFTER_CAP = 300.0
"""The longest Retry-After honoured, in seconds; longer values are capped to it."""


@dataclass(frozen=True)
class Rule:
    """One row of the error table: the error type to raise and what to do about it."""

    error: type[VendorError]
    action: str

    @property
    def retryable(self) -> bool:
        """True when the client may retry the request itself (after a backoff or Retry-After)."""
        return self.action in (RETRY, RATE_LIMITED)


STATUS_TABLE: dict[int, Rule] = {
    400: Rule(VendorError, FAIL),
    401: Rule(AuthError, FAIL_CONFIG),
    403: Rule(AuthError, FAIL_CONFIG),
    404: Rule(NotFound, FAIL),
    409: Rule(Conflict, RECONCILE),
    422: Rule(VendorError, FAIL),
    429: Rule(RateLimited, RATE_LIMITED),
    500: Rule(Unavailable, RETRY),
    502: Rule(Unavailable, RETRY),
    503: Rule(Unavailable, RETRY),
    504: Rule(Unavailable, RETRY),
}
"""Statuses with a rule of their own, for reads and idempotent writes."""

AMBIGUOUS = Rule(AmbiguousOutcome, RECONCILE)
_RATE_LIMITED_503 = Rule(RateLimited, RATE_LIMITED)


def rule_for(status: int, *, creates: bool, retry_after: bool = False) -> Rule:
    """The error-table row for a non-success status.

    ``retry_after`` says the response carried a usable ``Retry-After`` (it turns a 503 into rate limiting).
    """
    if status == 503 and retry_after:
        return _RATE_LIMITED_503
    if status >= 500:
        if creates:
            return AMBIGUOUS
        return STATUS_TABLE.get(status, Rule(Unavailable, FAIL))
    if status in STATUS_TABLE:
        return STATUS_TABLE[status]
    return Rule(VendorError, FAIL)


def parse_retry_after(value: str | None, now: float, *, cap: float = RETRY_AFTER_CAP) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 section 10.2.3), capped at ``cap``, or None.

    Accepts delay-seconds (``"7"``; a decimal such as ``"1.5"`` is tolerated) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``), which is measured from ``now`` (a Unix time). A date in the past
    gives 0. Anything else (empty, negative, NaN, garbage) gives None: the caller falls back to its backoff.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    seconds: float | None = None
    if _SECONDS.match(text):
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None or when.tzinfo is None:  # RFC 9110 dates are always GMT; refuse a zoneless one
            return None
        seconds = when.timestamp() - now
    if seconds is None or math.isnan(seconds) or math.isinf(seconds):
        return None
    return min(max(seconds, 0.0), cap)


# --- transport errors ---------------------------------------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps: args, ``reason``, ``__cause__`` and ``__context__``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 50:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(a for a in e.args if isinstance(a, BaseException))
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        for linked in (e.__cause__, e.__context__):
            if linked is not None:
                todo.append(linked)


_CONNECT_FRAMES = frozenset({"do_handshake", "_validate_conn", "_new_conn"})


def _raised_during_connect(exc: BaseException) -> bool:
    """True when the exception was raised while urllib3 was connecting (TCP or TLS handshake), before sending.

    urllib3 wraps handshake and later TLS errors alike, so the phase is read from where the error was raised:
    ``HTTPConnectionPool._validate_conn`` connects and shakes hands before a single request byte is written.
    """
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in _CONNECT_FRAMES:
            return True
        tb = tb.tb_next
    return False


@dataclass(frozen=True)
class TransportFailure:
    """What a requests exception means: whether the request was certainly not sent, and a short reason."""

    not_sent: bool
    reason: str
    retryable: bool


def classify_transport_error(exc: requests.RequestException) -> TransportFailure:
    """Classify an exception from ``Session.request``.

    ``not_sent`` is True only when the request certainly never reached the server: the connection was never
    established (DNS failure, connection refused, connect timeout: urllib3's ``NewConnectionError`` and
    ``ConnectTimeoutError``) or the TLS handshake failed (certificate verification, protocol mismatch). A
    read timeout, a reset or a protocol error after the connection was up is possibly-sent. Errors raised
    before any I/O (an invalid URL or header) are neither sent nor retryable.
    """
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.InvalidHeader
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.URLRequired
        | requests.exceptions.TooManyRedirects,
    ):
        return TransportFailure(True, "invalid request", False)
    chain = list(_chain(exc))
    blocked = next((e for e in chain if isinstance(e, BlockedAddress)), None)
    if blocked is not None:
        return TransportFailure(True, str(blocked), False)
    if any(isinstance(e, urllib3.exceptions.NameResolutionError) for e in chain):
        return TransportFailure(True, "the host name could not be resolved", True)
    if any(isinstance(e, urllib3.exceptions.NewConnectionError) for e in chain):
        refused = any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in str(exc).lower()
        return TransportFailure(True, "connection refused" if refused else "could not connect", True)
    if isinstance(exc, requests.exceptions.ConnectTimeout) or any(
        isinstance(e, urllib3.exceptions.ConnectTimeoutError) for e in chain
    ):
        return TransportFailure(True, "connect timeout", True)
    if any(isinstance(e, ssl.SSLCertVerificationError | ssl.CertificateError) for e in chain):
        return TransportFailure(True, "TLS certificate verification failed", True)
    if any(isinstance(e, ssl.SSLError) and _raised_during_connect(e) for e in chain):
        return TransportFailure(True, "TLS handshake failed", True)
    if isinstance(exc, requests.exceptions.ReadTimeout) or any(
        isinstance(e, urllib3.exceptions.ReadTimeoutError) for e in chain
    ):
        return TransportFailure(False, "no answer before the read timeout", True)
    if isinstance(exc, requests.exceptions.SSLError):
        return TransportFailure(False, "TLS error", True)
    if any(isinstance(e, ConnectionResetError | BrokenPipeError) for e in chain):
        return TransportFailure(False, "connection reset after the request was sent", True)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return TransportFailure(False, "the answer was cut off", True)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return TransportFailure(False, "connection lost after the request was sent", True)
    return TransportFailure(False, type(exc).__name__, True)
