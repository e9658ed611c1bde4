"""The one redaction choke point: secret values (every spelling), credential headers, URL passwords -> ``***``.

``redact(text)`` is applied to every exception message the HTTP layer raises, through ``RedactingFilter`` to
log records, and through ``redact_text`` / ``redact_value`` to everything the store writes (errors, dead
letters, audit details, snapshots). Secret values come from ``cxbridge.secrets`` (every ``Secret`` ever
created, plus derived values such as a Basic credential registered with ``register_secret_values``).

A leaf module: the standard library and ``cxbridge.secrets`` only, so that the HTTP layer and the store both
import it (``cxbridge.http.redact`` and ``cxbridge.store.base`` re-export its names).
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from .secrets import REDACTED, known_secret_values, secret_values_snapshot, secret_values_version

# Values shorter than this are not scrubbed by value: replacing "a" everywhere would destroy every message.
MIN_SECRET_LENGTH = 4

_HEADER_NAMES = r"(?:proxy-)?authorization|cookie|set-cookie|x-api-key|api[-_]?key|private[-_]?token"
# "Authorization: Basic abc", "'Authorization': 'Bearer abc'", "cookie=abc" (one header value, up to a quote,
# comma-in-dict or line end)
_HEADER_VALUE = re.compile(
    rf"(?i)(?P<name>\b(?:{_HEADER_NAMES})\b)(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?P<value>[^\"'\r\n]+)"
)
# "Bearer eyJ0eXAi..." anywhere; the value must look like a credential (a digit or base64 punctuation and at
# least 12 characters) so that prose such as "Basic authentication failed" survives.
_SCHEME_TOKEN = re.compile(
    r"(?i)\b(?P<scheme>Bearer|Basic|Token)\s+(?P<value>(?=[A-Za-z._~-]*[0-9+/=])[A-Za-z0-9._~+/=-]{12,})"
)
_SCHEME_TOKEN_MIN = len("Basic ") + 12
"""The shortest text ``_SCHEME_TOKEN`` matches: the shortest scheme, one space, a 12-character credential."""
# "postgresql://user:password@host/db": the password of a URL's userinfo (the user name stays readable)
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@'\"]*:)(?P<password>[^\s/@'\"]+)(?=@)")


def secret_forms(value: str) -> frozenset[str]:
    """The spellings a secret value may take on the wire or in a message: raw, URL-encoded (``%20`` and ``+``),
    base64 and URL-safe base64 (each with and without padding). Spellings shorter than MIN_SECRET_LENGTH are left
    out; a value that is not valid UTF-8 (a lone surrogate) is still encoded, never an error."""
    raw = value.encode("utf-8", "surrogatepass")
    forms = {
        value,
        quote(raw, safe=""),
        quote_plus(raw, safe=""),
        base64.b64encode(raw).decode("ascii"),
        base64.b64encode(raw).decode("ascii").rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii"),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
    }
    return frozenset(f for f in forms if len(f) >= MIN_SECRET_LENGTH)


_cache: dict[str, frozenset[str]] = {}


def _all_forms(values: Iterable[str]) -> list[str]:
    out: set[str] = set()
    for value in values:
        if len(value) < MIN_SECRET_LENGTH:
            continue
        forms = _cache.get(value)
        if forms is None:
            forms = secret_forms(value)
            _cache[value] = forms
        out |= forms
    # longest first, so a form that contains another is scrubbed whole
    return sorted(out, key=len, reverse=True)


class _KnownForms:
    """Every spelling of the registered secret values, longest first, built once per version of the registry,
    with one pattern that finds whether a text holds any of them."""

    __slots__ = ("done", "forms", "pattern", "version")

    def __init__(self, version: int, values: Iterable[str]) -> None:
        self.version = version
        self.forms = _all_forms(values)
        self.pattern = re.compile("|".join(map(re.escape, self.forms))) if self.forms else None
        self.done: dict[str, str] = {}
        """Short texts already redacted with these forms (dict keys and field values recur in every record the
        store writes), and what they became; dropped with the forms when a secret is registered."""


_DONE_MAX_CHARS = 64
"""Texts up to this length are remembered redacted (``_KnownForms.done``)."""
_DONE_MAX_ITEMS = 4096
"""How many texts ``_KnownForms.done`` holds before it starts again from empty."""


_known = _KnownForms(-1, ())


def _known_forms() -> _KnownForms:
    """The registered secrets' forms, rebuilt when a secret was registered since they were last built."""
    global _known
    known = _known
    if known.version != secret_values_version():
        known = _known = _KnownForms(*secret_values_snapshot())
    return known


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every known secret value (every spelling of ``secret_forms``), credential header values and
    URL passwords replaced by ``***``.

    ``extra`` adds values to scrub for this call only.
    """
    if not text:
        return text
    extra = list(extra)
    if extra:
        return _scrub(text, _all_forms([*known_secret_values(), *extra]))
    known = _known_forms()
    if type(text) is not str or len(text) > _DONE_MAX_CHARS:
        return _scrub_known(text, known)
    done = known.done.get(text)
    if done is None:
        done = _scrub_known(text, known)
        if len(known.done) >= _DONE_MAX_ITEMS:
            known.done.clear()
        known.done[text] = done
    return done


def _scrub_known(text: str, known: _KnownForms) -> str:
    """``_scrub`` with the registered secrets' forms. Most texts hold no secret: one search says so. When one does,
    the forms are replaced one by one, longest first, exactly as without the search (a replacement may reveal
    another form's occurrence)."""
    return _scrub(text, known.forms if known.pattern is not None and known.pattern.search(text) else ())


def _scrub(text: str, forms: Iterable[str]) -> str:
    """``text`` with each of ``forms`` (longest first), credential header values and URL passwords replaced."""
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    # each pattern is tried only where it could match (what each needs: "://", a ":" or "=", 18 characters, and
    # in an ASCII text one of its words: the case-blind scan of the two patterns cost more than the rest together)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}", text)
    if (":" in text or "=" in text) and _may_hold(text, _HEADER_WORDS):
        text = _HEADER_VALUE.sub(lambda m: f"{m['name']}{m['sep']}{REDACTED}", text)
    if len(text) >= _SCHEME_TOKEN_MIN and _may_hold(text, _SCHEME_WORDS):
        text = _SCHEME_TOKEN.sub(lambda m: f"{m['scheme']} {REDACTED}", text)
    return text


_HEADER_WORDS = ("authorization", "cookie", "api", "private")
"""A word each of ``_HEADER_NAMES`` contains (``x-api-key`` and ``api-key`` both hold ``api``)."""
_SCHEME_WORDS = ("bearer", "basic", "token")
"""``_SCHEME_TOKEN``'s schemes."""


def _may_hold(text: str, words: tuple[str, ...]) -> bool:
    """False only when ``text`` cannot hold any of ``words`` the way a case-insensitive pattern matches them.

    Exact for ASCII text (lower-casing is what the pattern's ``(?i)`` does there); any other text answers True,
    since ``(?i)`` also lets a few non-ASCII letters match ASCII ones (``\u017f`` is an ``s``, ``\u212a`` a
    ``k``) and the pattern alone decides."""
    if not text.isascii():
        return True
    lowered = text.lower()
    return any(word in lowered for word in words)


_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """A URL safe to show: the password of its userinfo (``postgresql://app:***@db/cxbridge``), a ``password=``
    query parameter and any known secret replaced."""
    return redact(_QUERY_PASSWORD.sub(r"\1***", url))


def redact_text(text: str) -> str:
    """``redact`` for text about to be stored (errors, dead letters, audit rows)."""
    return redact(text)


def redact_value(value: Any) -> Any:
    """``redact_text`` applied to every string inside a JSON-like value (dict keys included)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def escape_crlf(text: str) -> str:
    """CR and LF shown as ``\\r`` and ``\\n`` so a value cannot forge a log line (CWE-117)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def one_line(text: str, limit: int = 500) -> str:
    """Whitespace runs (including CR/LF) collapsed to one space, trimmed to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact_line(text: str) -> str:
    """``text`` with every secret value this process loaded replaced, on one line (for terminal output)."""
    return " ".join(redact(text).split())


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of the headers safe to show: credential headers replaced, other values redacted by value."""
    sensitive = re.compile(rf"(?i)^(?:{_HEADER_NAMES})$")
    return {k: REDACTED if sensitive.match(k) else redact(str(v)) for k, v in headers.items()}


def _clean_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return escape_crlf(redact(arg))
    if isinstance(arg, bytes):
        return escape_crlf(redact(arg.decode("utf-8", "replace")))
    return arg


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message, arguments, exception and stack text.

    String arguments also have CR/LF escaped (CWE-117). The record is rewritten in place and always passed on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            args = record.args
            if isinstance(args, Mapping):
                record.args = {k: _clean_arg(v) for k, v in args.items()}
            elif isinstance(args, tuple):
                record.args = tuple(_clean_arg(a) for a in args)
            message = record.getMessage()
        except Exception:  # a broken format string: keep the record, show its parts redacted
            message = f"{record.msg!s} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        # the formatter prints exc_text (set here, redacted) instead of formatting exc_info again
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Add the redacting filter to ``logger`` (the root logger by default) and to each of its handlers.

    A logger's own filters only see records logged on that very logger, and handlers see every record that
    propagates to them, so both are covered. Handlers added later must add the filter themselves (the CLI
    installs it once its handlers exist). Calling this twice adds nothing twice.
    """
    target = logger if logger is not None else logging.getLogger()
    for filterer in (target, *target.handlers):
        if not any(isinstance(f, RedactingFilter) for f in filterer.filters):
            filterer.addFilter(_FILTER)
    return _FILTER
