"""One redaction: ``cxbridge.redact`` serves the HTTP layer and the store alike, with every secret spelling."""

from __future__ import annotations

import ast
import base64
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

import cxbridge.redact as redact_module
import cxbridge.store.base as store_base
from cxbridge.http import redact as http_redact_fn
from cxbridge.redact import redact, redact_url, secret_forms
from cxbridge.secrets import Secret

# the package cxbridge.http exports the function redact, which hides its submodule of that name
http_redact = importlib.import_module("cxbridge.http.redact")

VALUE = "one/two+three=four&five six"


def spellings(value: str) -> list[str]:
    raw = value.encode()
    return [
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]


REDACTORS: list[tuple[str, Callable[[str], str]]] = [
    ("cxbridge.http.redact", http_redact_fn),
    ("cxbridge.store.base.redact_text", store_base.redact_text),
    ("cxbridge.redact", redact),
]


@pytest.mark.parametrize(("name", "fn"), REDACTORS)
def test_every_path_scrubs_all_seven_spellings(name: str, fn: Callable[[str], str]) -> None:
    """Raw, both URL encodings and the four base64 forms are scrubbed by the HTTP layer and the store alike."""
    Secret(VALUE)
    for form in spellings(VALUE):
        out = fn(f"before {form} after")
        assert form not in out, (name, form)
        assert out == "before *** after", (name, form)


@pytest.mark.parametrize(("name", "fn"), REDACTORS)
def test_every_path_scrubs_credential_headers_and_url_passwords(name: str, fn: Callable[[str], str]) -> None:
    """Header values and a URL's password are scrubbed by every path, the user name and host kept."""
    assert fn("Authorization: Bearer abcDEF123456ghiJKL789") == "Authorization: ***", name
    assert fn("cannot reach postgresql://app:pa55word@db.internal:5432/cx") == (
        "cannot reach postgresql://app:***@db.internal:5432/cx"
    ), name


def test_the_store_redacts_json_values_through_the_same_redactor() -> None:
    """redact_value scrubs every string of a JSON-like value, keys included, with all spellings."""
    Secret(VALUE)
    encoded = base64.urlsafe_b64encode(VALUE.encode()).decode()
    assert store_base.redact_value({encoded: [quote(VALUE, safe=""), 3]}) == {"***": ["***", 3]}


def test_a_value_with_a_lone_surrogate_is_scrubbed_without_an_error() -> None:
    """A secret that is not valid UTF-8 still gets its spellings (the store's stricter encoding won)."""
    odd = "abc\udcffdef-123"
    assert odd in secret_forms(odd)
    Secret(odd)
    assert redact(f"x {odd} y") == "x *** y"


def test_short_values_are_not_scrubbed_by_value() -> None:
    """A value shorter than four characters would destroy every message: it is left alone."""
    Secret("ab")
    assert redact("abc") == "abc"


def test_redact_url_hides_only_the_password() -> None:
    """A database URL stays readable: scheme, user, host and database shown, the password replaced."""
    assert redact_url("postgresql://cx:s3cret@db/cxbridge") == "postgresql://cx:***@db/cxbridge"
    assert redact_url("postgresql://db/cxbridge") == "postgresql://db/cxbridge"


def test_the_http_and_store_names_are_the_one_implementation() -> None:
    """cxbridge.http.redact and cxbridge.store.base re-export cxbridge.redact's functions, not copies."""
    assert http_redact.redact is redact_module.redact
    assert http_redact.RedactingFilter is redact_module.RedactingFilter
    assert store_base.redact_text is redact_module.redact_text
    assert store_base.redact_value is redact_module.redact_value
    assert store_base.MIN_SECRET_LENGTH == http_redact.MIN_SECRET_LENGTH == redact_module.MIN_SECRET_LENGTH
    assert "importlib" not in inspect.getsource(store_base)


def test_the_redact_module_is_a_leaf() -> None:
    """cxbridge.redact imports the standard library and cxbridge.secrets only."""
    tree = ast.parse(Path(redact_module.__file__).read_text(encoding="utf-8"))
    local = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            local.add(node.module)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert not any(str(n).startswith("cxbridge") for n in names), names
    assert local <= {"secrets"}


def test_a_secret_registered_after_a_redaction_is_scrubbed_by_the_next() -> None:
    """The compiled forms are rebuilt when the registry changes: a secret loaded later is never missed."""
    later = "registered-later-9f3b1c"
    text = f"value {later} and {base64.b64encode(later.encode()).decode()} here"
    assert redact(text) == text  # not a secret yet: the forms compiled now do not hold it
    Secret(later)
    assert redact(text) == "value *** and *** here"
    assert store_base.redact_value({"k": [text]}) == {"k": ["value *** and *** here"]}


def test_registering_a_known_value_again_keeps_the_compiled_forms() -> None:
    """Only a new value changes the registry's version (a Secret built again per request costs no rebuild)."""
    from cxbridge.secrets import secret_values_version

    Secret("same-value-0e1d2c")
    version = secret_values_version()
    Secret("same-value-0e1d2c")
    assert secret_values_version() == version
    assert redact("x same-value-0e1d2c y") == "x *** y"


def test_scrubbing_stays_longest_first_when_a_secret_contains_another() -> None:
    """A text holding a secret that contains another is scrubbed whole, as before the forms were compiled."""
    Secret("inner-7a7a")
    Secret("outer-inner-7a7a-outer")
    assert redact("a outer-inner-7a7a-outer b inner-7a7a c") == "a *** b *** c"


@pytest.mark.parametrize(
    "text",
    [
        "Token abcdefgh1234",  # the shortest scheme token: 18 characters
        "token=abc",
        "cookie:x",
        "see https://u:p@h/",
        "plain words, nothing secret",
        "a:b=c",
        "",
        "AUTHORIZATION: Basic abc",
        "Proxy-Authorization=xyz",
        "X-Api-Key: abc",
        "api_key=abc",
        "Private-Token: abc",
        "Set-Cookie: a=b",
        "BEARER abcdefghijkl1234",
        "basic abcdefghijkl1234",
        "job 12 (event, zendesk:ticket:4) done: unchanged (0.01s)",
        # (?i) lets a few non-ASCII letters match ASCII ones: such texts go to the patterns whatever they hold
        "Ba\u017fic abcdefgh12345",  # LATIN SMALL LETTER LONG S is an s
        "coo\u212aie: v",  # KELVIN SIGN is a k
        "x-ap\u0131-key: v",  # LATIN SMALL LETTER DOTLESS I is an i
        "caf\u00e9: nothing here",
    ],
)
def test_the_quick_checks_change_no_output(text: str) -> None:
    """Each pattern is skipped only where it cannot match: the output is the patterns' own."""
    patterns = redact_module
    expected = patterns._URL_PASSWORD.sub(lambda m: f"{m['head']}***", text)
    expected = patterns._HEADER_VALUE.sub(lambda m: f"{m['name']}{m['sep']}***", expected)
    expected = patterns._SCHEME_TOKEN.sub(lambda m: f"{m['scheme']} ***", expected)
    assert redact(text) == expected


def test_a_short_text_remembered_redacted_is_redacted_again_once_a_secret_it_holds_is_registered() -> None:
    """Short texts are remembered with the forms they were redacted with: registering a secret drops them."""
    short = "id x-late-4e5f y"
    assert redact(short) == short
    assert redact(short) == short  # remembered
    Secret("x-late-4e5f")
    assert redact(short) == "id *** y"
    assert store_base.redact_value({short: short}) == {"id *** y": "id *** y"}


def test_the_remembered_short_texts_stay_bounded() -> None:
    """However many distinct short texts go through, the memory of them stays under its bound."""
    for i in range(redact_module._DONE_MAX_ITEMS + 50):
        assert redact(f"text {i}") == f"text {i}"
    assert len(redact_module._known_forms().done) <= redact_module._DONE_MAX_ITEMS
    assert redact("Authorization: Bearer abcDEF123456") == "Authorization: ***"


class _CountingPattern:
    """A compiled pattern that counts its scans (``sub``)."""

    def __init__(self, pattern: Any) -> None:
        self.pattern = pattern
        self.scans = 0

    def sub(self, repl: Any, text: str) -> str:
        self.scans += 1
        return str(self.pattern.sub(repl, text))


def test_the_case_blind_patterns_are_not_run_on_an_ascii_text_without_their_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job's log line (a ":" in its subject, longer than a scheme token) holds none of the header names or
    schemes: neither pattern scans it, the costliest part of redacting it. One that names them is scanned."""
    header = _CountingPattern(redact_module._HEADER_VALUE)
    scheme = _CountingPattern(redact_module._SCHEME_TOKEN)
    monkeypatch.setattr(redact_module, "_HEADER_VALUE", header)
    monkeypatch.setattr(redact_module, "_SCHEME_TOKEN", scheme)
    line = "job 4021 (event, zendesk:ticket:977) attempt 1 done: unchanged: zendesk:ticket:977 is linked (0.01s)"
    assert redact(line) == line
    assert (header.scans, scheme.scans) == (0, 0)
    assert redact(f"{line} Cookie: abc") == f"{line} Cookie: ***"
    assert (header.scans, scheme.scans) == (1, 0)
    assert redact(f"{line} sent Bearer abcDEF123456xyz") == f"{line} sent Bearer ***"
    assert (header.scans, scheme.scans) == (1, 1)
    assert redact(f"{line} k\u0131: v") == f"{line} k\u0131: v"  # not ASCII: the patterns decide
    assert (header.scans, scheme.scans) == (2, 2)
