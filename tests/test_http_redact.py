"""Redaction (RELIABILITY.md S1): no secret, in any encoding, reaches logs or exception text."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest
import requests
import responses
import urllib3.exceptions

from cxbridge.config import SystemConfig
from cxbridge.errors import AuthError, Unavailable, VendorError
from cxbridge.http import (
    BasicAuth,
    BearerAuth,
    CallCounter,
    HttpClient,
    RedactingFilter,
    install_redaction,
    redact,
    redact_headers,
)
from cxbridge.secrets import Secret

TOKEN = "zd-Tok3n/with+special=chars&more"
BEARER = "pat-na1-5e3b7c1d-aaaa-bbbb-cccc-0123456789ab"
EMAIL_TOKEN_USER = "agent@example.com/token"


def leak_forms(value: str) -> list[str]:
    raw = value.encode()
    basic = base64.b64encode(f"{EMAIL_TOKEN_USER}:{value}".encode()).decode()
    return [
        value,
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        quote(value, safe=""),
        quote_plus(value),
        basic,
    ]


@pytest.fixture
def redacted_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """DEBUG capture with the redacting filter installed on the root logger and its handlers (caplog's)."""
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    installed = install_redaction(root)
    try:
        yield caplog
    finally:
        for filterer in (root, *root.handlers):
            filterer.removeFilter(installed)


def test_redact_scrubs_every_form() -> None:
    Secret(TOKEN)
    BasicAuth(EMAIL_TOKEN_USER, Secret(TOKEN))
    for form in leak_forms(TOKEN):
        text = f"before {form} after"
        assert form not in redact(text), form
        assert redact(text).startswith("before ")
        assert redact(text).endswith(" after")


def test_redact_scrubs_credential_headers_by_name() -> None:
    assert redact("Authorization: Basic dXNlcjpub3Qta25vd24=") == "Authorization: ***"
    assert redact("{'Authorization': 'Bearer abc.def.ghi123', 'Accept': 'x'}") == (
        "{'Authorization': '***', 'Accept': 'x'}"
    )
    assert redact("Cookie: session=abc123; other=1") == "Cookie: ***"
    assert redact("sent Bearer eyJhbGciOi.J9x.yz12 to host") == "sent Bearer *** to host"
    assert redact("Basic authentication failed") == "Basic authentication failed"  # prose survives
    assert redact_headers({"Authorization": "Basic x", "Accept": "application/json"}) == {
        "Authorization": "***",
        "Accept": "application/json",
    }


def test_auth_objects_never_show_their_secret() -> None:
    basic = BasicAuth(EMAIL_TOKEN_USER, Secret(TOKEN))
    bearer = BearerAuth(Secret(BEARER))
    for text in (repr(basic), str(basic), repr(bearer), str(bearer)):
        assert TOKEN not in text
        assert BEARER not in text
    with pytest.raises(TypeError):
        BasicAuth("u", TOKEN)  # type: ignore[arg-type]
    prepared = bearer(requests.Request("GET", "https://api.hubapi.com/x").prepare())
    assert prepared.headers["Authorization"] == f"Bearer {BEARER}"


def test_filter_redacts_args_exceptions_and_escapes_crlf(redacted_logs: pytest.LogCaptureFixture) -> None:
    Secret(TOKEN)
    log = logging.getLogger("cxbridge.test.redact")
    log.info("token=%s user=%s", TOKEN, "eve\r\nFAKE LINE")
    try:
        raise RuntimeError(f"boom {quote(TOKEN, safe='')}")
    except RuntimeError:
        log.exception("failed with %r", {"Authorization": f"Bearer {BEARER}"})
    text = redacted_logs.text
    for form in leak_forms(TOKEN):
        assert form not in text
    assert BEARER not in text
    assert "eve\\r\\nFAKE LINE" in text
    assert "\nFAKE LINE" not in text
    assert "boom ***" in text


def test_filter_survives_a_broken_format_string() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s", (TOKEN,), None)
    Secret(TOKEN)
    assert RedactingFilter().filter(record)
    assert TOKEN not in record.getMessage()


def test_install_redaction_is_idempotent() -> None:
    logger = logging.getLogger("cxbridge.test.idempotent")
    install_redaction(logger)
    install_redaction(logger)
    assert sum(isinstance(f, RedactingFilter) for f in logger.filters) == 1
    for f in list(logger.filters):
        logger.removeFilter(f)


def _connection_error(message: str) -> Exception:
    reason = urllib3.exceptions.NewConnectionError(None, message)  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, "https://acme.zendesk.com/x", reason)  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("auth_kind", ["basic", "bearer"])
def test_s1_no_secret_in_debug_logs_or_errors(redacted_logs: pytest.LogCaptureFixture, auth_kind: str) -> None:
    """Forced errors with DEBUG on: the secret (raw, base64, URL-encoded, Basic) is nowhere to be found."""
    secret_value = TOKEN if auth_kind == "basic" else BEARER
    secret = Secret(secret_value)
    auth = BasicAuth(EMAIL_TOKEN_USER, secret) if auth_kind == "basic" else BearerAuth(secret)
    config = SystemConfig(name="zendesk", plugin="zendesk", base_url="https://acme.zendesk.com", max_retries=1)
    client = HttpClient(
        config,
        auth=auth,
        counter=CallCounter(),
        cloud_domains=(".zendesk.com",),
        sleep=lambda s: None,
        error_message=lambda r: str(r.json().get("error")),
    )
    basic = base64.b64encode(f"{EMAIL_TOKEN_USER}:{secret_value}".encode()).decode()
    echo = {"error": f"bad token {secret_value} / {quote(secret_value, safe='')} / Basic {basic}"}
    errors: list[VendorError] = []
    with responses.RequestsMock() as mock:
        mock.get("https://acme.zendesk.com/api/v2/users/me.json", status=401, json=echo)
        mock.get("https://acme.zendesk.com/api/v2/tickets/1.json", status=500, json=echo)
        mock.get(
            "https://acme.zendesk.com/api/v2/tickets/2.json",
            body=_connection_error(f"refused; header was Authorization: Basic {basic} {secret_value}"),
        )
        for path, expected in (
            ("/api/v2/users/me.json", AuthError),
            ("/api/v2/tickets/1.json", Unavailable),
            ("/api/v2/tickets/2.json", Unavailable),
        ):
            with pytest.raises(expected) as info:
                client.get(path, op="check")
            errors.append(info.value)
            logging.getLogger("cxbridge.caller").error("step failed: %s", info.value, exc_info=info.value)
        # the real header went out: redaction is not a side effect of never sending the credential
        assert mock.calls[0].request.headers["Authorization"] in (f"Basic {basic}", f"Bearer {secret_value}")
    texts = [redacted_logs.text]
    for err in errors:
        texts += [str(err), repr(err), err.vendor_message or "", str(err.args)]
    assert any("op=check status=401" in r.getMessage() for r in redacted_logs.records)
    assert "bad token ***" in str(errors[0])
    for text in texts:
        for form in leak_forms(secret_value):
            assert form not in text, (form, text)
