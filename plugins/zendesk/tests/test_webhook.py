"""Tests of the Zendesk webhook verifier: the RELIABILITY.md section 7 vectors, the window, malformed input.

The signature is computed here from the documented algorithm (``hmac`` of the stdlib), independently of the
verifier's code; the vectors come from Zendesk's pages as recorded in VENDOR-APIS.md 4.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cxbridge_zendesk.webhook import MAX_SIGNATURES, verify_zendesk, verify_zendesk_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxbridge.errors import WebhookRejected
from cxbridge.models import Ref
from cxbridge.secrets import Secret
from cxbridge.testing import MALFORMED_SIGNATURE_HEADERS, byte_flips, character_changes

URL = "https://bridge.example.com/webhooks/zendesk"
SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
NOW = datetime(2024, 5, 3, 16, 40, 11, tzinfo=UTC).timestamp()
STAMP = "2024-05-03T16:40:11Z"

# RELIABILITY.md section 7 / VENDOR-APIS.md 4.1
VECTOR_SECRET = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA="
VECTOR_TS = "2021-07-25T10:00:00Z"
VECTOR_BODY = b'{"say": "hello"}'
VECTOR_TS_THEN_BODY = "Rry/4TtIdFyawtXXp8QdI6tlAUUQ/5kL1OTp5qo/ZIk="
VECTOR_BODY_THEN_TS = "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw="
VECTOR_NOW = datetime(2021, 7, 25, 10, 0, 0, tzinfo=UTC).timestamp()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret as UTF-8, timestamp + body)), as Zendesk documents it."""
    return base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()


def trigger_body(**extra: Any) -> bytes:
    """A trigger delivery in the shape the sandbox documents for its trigger template (read, not imported)."""
    payload: dict[str, Any] = {
        "id": "0b5e7a4e-9a7f-4c1e-8f0a-3d1c2b4a5e6f",
        "event": "tag_added",
        "time": STAMP,
        "ticket": {
            "id": 4211,
            "url": "https://acme.zendesk.com/api/v2/tickets/4211.json",
            "subject": "CSV exports fail",
            "status": "open",
            "priority": "urgent",
            "tags": ["enterprise", "escalated_to_engineering"],
            "requester_id": 90001,
            "organization_id": 70001,
            "updated_at": STAMP,
            "updater_id": 80001,
        },
        "current_user": {"id": 80001, "email": "sam@acme.example", "name": "Sam Agent"},
        "tags_added": ["escalated_to_engineering"],
    }
    payload.update(extra)
    return json.dumps(payload).encode()


def headers_for(body: bytes, *, secret: str = SECRET, stamp: str = STAMP, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Signature": sign(secret, stamp, body),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Id": "01HX00000000000000000WEBHK",
        **extra,
    }


def verify(headers: dict[str, str], body: bytes, *, secrets: list[str] | None = None, now: float = NOW) -> Any:
    return verify_zendesk(
        method="POST",
        url=URL,
        headers=headers,
        body=body,
        secrets=[Secret(s) for s in (secrets if secrets is not None else [SECRET])],
        now=now,
    )


def outcome(headers: dict[str, Any], body: bytes, **kw: Any) -> Any:
    """The Events, or the WebhookRejected raised (any other exception propagates and fails the test)."""
    try:
        return verify(headers, body, **kw)
    except WebhookRejected as exc:
        return exc


def rejected(headers: dict[str, Any], body: bytes, **kw: Any) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as info:
        verify(headers, body, **kw)
    assert info.value.status in (400, 401)
    return info.value


# -- the documented vectors -----------------------------------------------------------------------------------


def test_vector_timestamp_then_body_is_accepted() -> None:
    """The section 7 vector signed over timestamp + body (the current Zendesk page) verifies."""
    headers = {"X-Zendesk-Webhook-Signature": VECTOR_TS_THEN_BODY, "X-Zendesk-Webhook-Signature-Timestamp": VECTOR_TS}
    verify_zendesk_signature(headers=headers, body=VECTOR_BODY, secrets=[Secret(VECTOR_SECRET)], now=VECTOR_NOW)


def test_vector_body_is_not_a_ticket_event() -> None:
    """The vector's body verifies but names no ticket: the delivery is malformed (400), not forged (401)."""
    headers = {"X-Zendesk-Webhook-Signature": VECTOR_TS_THEN_BODY, "X-Zendesk-Webhook-Signature-Timestamp": VECTOR_TS}
    error = rejected(headers, VECTOR_BODY, secrets=[VECTOR_SECRET], now=VECTOR_NOW)
    assert error.status == 400


def test_documented_discrepancy_vector_is_rejected() -> None:
    """Known doc discrepancy: the older event-connectors page's example signature is HMAC over BODY + TIMESTAMP.

    Zendesk's current page (and production verifiers) sign TIMESTAMP + BODY, which cxbridge implements, so that
    worked example must be refused until a captured real delivery says otherwise (RELIABILITY.md 9, item 1).
    """
    assert sign(VECTOR_SECRET, "", VECTOR_BODY + VECTOR_TS.encode()) == VECTOR_BODY_THEN_TS  # what it signs
    headers = {"X-Zendesk-Webhook-Signature": VECTOR_BODY_THEN_TS, "X-Zendesk-Webhook-Signature-Timestamp": VECTOR_TS}
    with pytest.raises(WebhookRejected) as info:
        verify_zendesk_signature(headers=headers, body=VECTOR_BODY, secrets=[Secret(VECTOR_SECRET)], now=VECTOR_NOW)
    assert info.value.status == 401


def test_secret_is_used_as_utf8_not_base64_decoded() -> None:
    """The key is the secret string's bytes: signing with its base64-decoded bytes does not verify."""
    decoded = base64.b64decode(SECRET)
    body = trigger_body()
    forged = base64.b64encode(hmac.new(decoded, STAMP.encode() + body, hashlib.sha256).digest()).decode()
    headers = headers_for(body)
    headers["X-Zendesk-Webhook-Signature"] = forged
    assert rejected(headers, body).status == 401


# -- a good delivery and its Event ----------------------------------------------------------------------------


def test_trigger_delivery_becomes_one_event() -> None:
    """A trigger payload gives one Event: body event id, ticket.<event> kind, ticket subject, actor, payload."""
    body = trigger_body()
    (event,) = verify(headers_for(body), body)
    assert event.id == "0b5e7a4e-9a7f-4c1e-8f0a-3d1c2b4a5e6f"
    assert event.system == "zendesk"
    assert event.kind == "ticket.tag_added"
    assert event.subject == Ref("zendesk", "ticket", "4211")
    assert event.actor == "80001"
    assert event.payload == json.loads(body)
    assert event.received_at == datetime.fromtimestamp(NOW, tz=UTC)
    assert event.occurred_at == datetime.fromisoformat(STAMP)


def test_other_template_spellings() -> None:
    """Admin templates vary: ``event_id`` and ``actor_id`` are read, a string ticket id, a dotted kind kept."""
    body = json.dumps(
        {"event_id": "e-2", "event": "ticket.comment_added", "ticket": {"id": "4211"}, "actor_id": 80001}
    ).encode()
    (event,) = verify(headers_for(body), body)
    assert (event.id, event.kind, event.subject.id, event.actor) == ("e-2", "ticket.comment_added", "4211", "80001")


def test_actor_from_current_user() -> None:
    """Without an updater id, the template's ``current_user`` is the actor."""
    body = json.dumps({"id": "e-3", "event": "comment_added", "ticket": {"id": 1}, "current_user": {"id": 5}}).encode()
    (event,) = verify(headers_for(body), body)
    assert (event.kind, event.actor) == ("ticket.comment_added", "5")


def test_event_subscription_envelope() -> None:
    """The ``zen:event-type`` envelope: id, kind without the prefix, subject zen:ticket:<id>, actor from detail."""
    body = json.dumps(
        {
            "type": "zen:event-type:ticket.tags_changed",
            "account_id": 12514403,
            "id": "2b0a5b8e-52c5-4f4d-9d28-8b7d1c4a1a10",
            "time": "2024-05-03T16:40:11.123Z",
            "zendesk_event_version": "2022-11-06",
            "subject": "zen:ticket:4211",
            "detail": {"id": "4211", "actor_id": "80001", "tags": ["escalated_to_engineering"]},
            "event": {"tags": {"added": ["escalated_to_engineering"], "removed": []}},
        }
    ).encode()
    (event,) = verify(headers_for(body), body)
    assert event.id == "2b0a5b8e-52c5-4f4d-9d28-8b7d1c4a1a10"
    assert event.kind == "ticket.tags_changed"
    assert event.subject == Ref("zendesk", "ticket", "4211")
    assert event.actor == "80001"
    assert event.occurred_at is not None
    assert event.occurred_at.year == 2024


def test_event_id_falls_back_to_the_invocation_header() -> None:
    """Without an id in the body, the invocation id header is the dedupe key."""
    body = json.dumps({"event": "tag_added", "ticket": {"id": 4211}}).encode()
    (event,) = verify(headers_for(body, **{"X-Zendesk-Webhook-Invocation-Id": "88776655"}), body)
    assert event.id == "invocation:88776655"


def test_event_id_falls_back_to_webhook_id_and_body_hash() -> None:
    """Without any id, the webhook id plus the body's SHA-256: a retry of the same body dedupes."""
    body = json.dumps({"event": "tag_added", "ticket": {"id": 4211}}).encode()
    (event,) = verify(headers_for(body), body)
    assert event.id == f"webhook:01HX00000000000000000WEBHK:{hashlib.sha256(body).hexdigest()}"
    (again,) = verify(headers_for(body), body)
    assert again.id == event.id


def test_header_names_are_case_insensitive() -> None:
    """Servers may hand headers over lower-cased."""
    body = trigger_body()
    headers = {k.lower(): v for k, v in headers_for(body).items()}
    assert len(verify(headers, body)) == 1


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        "text",
        {"event": "tag_added"},
        {"event": "tag_added", "ticket": {"id": "../1"}},
        {"event": "tag_added", "ticket": {"id": True}},
        {"event": "tag added!", "ticket": {"id": 1}},
        {"type": "zen:event-type:ticket.tags_changed", "id": "x", "subject": "zen:ticket:abc"},
        {"type": "zen:event-type:", "id": "x", "subject": "zen:ticket:1"},
        {"type": "zen:event-type:ticket.x", "id": "x"},
    ],
)
def test_signed_but_malformed_bodies_are_400(payload: Any) -> None:
    """A correctly signed body that is not a usable ticket event is rejected as malformed."""
    body = json.dumps(payload).encode()
    assert rejected(headers_for(body), body).status == 400


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff\xfe{}", b'{"a":'])
def test_signed_non_json_is_400(body: bytes) -> None:
    """A signed body that is not JSON is malformed."""
    assert rejected(headers_for(body), body).status == 400


def test_signed_body_too_deep_to_parse_is_400() -> None:
    """JSON nested past the parser's recursion limit fails outside any expected error: still one 400."""
    body = b"[" * 100_000
    error = rejected(headers_for(body), body)
    assert (error.status, str(error)) == (400, "zendesk: malformed delivery")


# -- timestamps -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(-301, False), (-300, True), (-299, True), (0, True), (299, True), (300, True), (301, False)],
)
def test_window_is_symmetric_300_seconds(offset: int, accepted: bool) -> None:
    """Signed timestamps up to 300 s from now, past or future, are accepted; 301 s is not."""
    stamp = (datetime.fromtimestamp(NOW, tz=UTC) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = trigger_body()
    headers = headers_for(body, stamp=stamp)
    if accepted:
        assert len(verify(headers, body)) == 1
    else:
        assert rejected(headers, body).status == 401


def test_timestamp_with_offset_and_fraction() -> None:
    """ISO-8601 with a numeric offset and nanoseconds is read correctly."""
    stamp = "2024-05-03T18:40:11.123456789+02:00"
    body = trigger_body()
    assert len(verify(headers_for(body, stamp=stamp), body)) == 1


@pytest.mark.parametrize(
    "stamp",
    ["yesterday", "1714754411", "2024-05-03", "2024-05-03T16:40:11", "2024-13-03T16:40:11Z", "٢٠٢٤-05-03T16:40:11Z"],
)
def test_unreadable_timestamps_are_400(stamp: str) -> None:
    """A timestamp that is not an ISO-8601 time with a zone is malformed (even when correctly signed)."""
    body = trigger_body()
    assert rejected(headers_for(body, stamp=stamp), body).status == 400


def test_missing_timestamp_is_401() -> None:
    """No timestamp header: unsigned."""
    body = trigger_body()
    headers = headers_for(body)
    del headers["X-Zendesk-Webhook-Signature-Timestamp"]
    assert rejected(headers, body).status == 401


# -- malformed signature headers (RELIABILITY.md 7, W3) -------------------------------------------------------


MALFORMED = [*MALFORMED_SIGNATURE_HEADERS, "\x00", "====", "a" * 44]


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_signature_headers_raise_only_webhook_rejected(value: str) -> None:
    """Every malformed header of section 7 is a WebhookRejected (never ValueError, TypeError, binascii.Error)."""
    body = trigger_body()
    headers = headers_for(body)
    headers["X-Zendesk-Webhook-Signature"] = value
    assert rejected(headers, body).status == 401


def test_missing_signature_is_401() -> None:
    body = trigger_body()
    headers = headers_for(body)
    del headers["X-Zendesk-Webhook-Signature"]
    assert rejected(headers, body).status == 401


def test_8kb_header_is_400() -> None:
    """A header over 8 KB is refused before any HMAC is computed."""
    body = trigger_body()
    headers = headers_for(body)
    headers["X-Zendesk-Webhook-Signature"] = headers["X-Zendesk-Webhook-Signature"] + " " + "A" * 8192
    assert rejected(headers, body).status == 400


def test_200_signatures_are_400_even_with_a_good_one() -> None:
    """More than MAX_SIGNATURES signatures in one header is malformed, whatever they hold."""
    body = trigger_body()
    good = sign(SECRET, STAMP, body)
    headers = headers_for(body)
    headers["X-Zendesk-Webhook-Signature"] = " ".join([good] * 200)
    assert rejected(headers, body).status == 400


def test_up_to_ten_signatures_with_decoys() -> None:
    """A header listing decoys and the good signature (within the cap) verifies."""
    body = trigger_body()
    decoy = sign("another secret", STAMP, body)
    headers = headers_for(body)
    headers["X-Zendesk-Webhook-Signature"] = ",".join([decoy] * (MAX_SIGNATURES - 1) + [sign(SECRET, STAMP, body)])
    assert len(verify(headers, body)) == 1


@pytest.mark.parametrize("value", [b"bytes-value", 12345, None, ["a"]])
def test_non_text_header_values(value: Any) -> None:
    """Header values of unexpected types never escape as another exception."""
    body = trigger_body()
    headers: dict[str, Any] = headers_for(body)
    headers["X-Zendesk-Webhook-Signature"] = value
    rejected(headers, body)


# -- secrets and rotation (W4, W8) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signed_with", "active", "accepted"),
    [
        ("old", ["old"], True),
        ("old", ["old", "new"], True),
        ("new", ["old", "new"], True),
        ("new", ["new"], True),
        ("old", ["new"], False),  # the old secret retired
        ("new", ["old"], False),
    ],
)
def test_rotation(signed_with: str, active: list[str], accepted: bool) -> None:
    """Any active secret verifies; a retired one does not."""
    secrets = {"old": "old-signing-secret-AAAA", "new": "new-signing-secret-BBBB"}
    body = trigger_body()
    headers = headers_for(body, secret=secrets[signed_with])
    if accepted:
        assert len(verify(headers, body, secrets=[secrets[a] for a in active])) == 1
    else:
        assert rejected(headers, body, secrets=[secrets[a] for a in active]).status == 401


@pytest.mark.parametrize("secrets", [[], [""]])
def test_no_usable_secret_fails_closed(secrets: list[str]) -> None:
    """Without an active secret nothing verifies, not even an unsigned or empty-key delivery."""
    body = trigger_body()
    assert rejected(headers_for(body, secret=""), body, secrets=secrets).status == 401


# -- mutations (W1) -------------------------------------------------------------------------------------------


def test_every_single_byte_mutation_of_the_body_is_rejected() -> None:
    """Flipping any one byte of the body breaks the signature."""
    body = trigger_body()
    headers = headers_for(body)
    for mutated in byte_flips(body):
        assert rejected(headers, mutated).status == 401


def test_every_single_character_mutation_of_the_timestamp_and_signature_is_rejected() -> None:
    """Changing any one character of the timestamp (401, or 400 when unreadable) or of the signature (401)."""
    body = trigger_body()
    headers = headers_for(body)
    for name in ("X-Zendesk-Webhook-Signature-Timestamp", "X-Zendesk-Webhook-Signature"):
        for value in character_changes(headers[name]):
            error = rejected({**headers, name: value}, body)
            if name == "X-Zendesk-Webhook-Signature":
                assert error.status == 401


# -- fuzz (F3, in small) --------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "X-Zendesk-Webhook-Signature",
                "x-zendesk-webhook-signature-timestamp",
                "X-Zendesk-Webhook-Id",
                "X-Zendesk-Webhook-Invocation-Id",
                "Other",
            ]
        ),
        st.one_of(st.text(max_size=60), st.binary(max_size=20), st.integers(), st.none()),
    ),
    body=st.binary(max_size=200),
)
def test_arbitrary_input_only_raises_webhook_rejected(headers: dict[str, Any], body: bytes) -> None:
    """Whatever the headers and body hold, the verifier returns Events or raises WebhookRejected."""
    result = outcome(headers, body)
    assert isinstance(result, list) or result.status in (400, 401)


@settings(max_examples=200, deadline=None)
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(["ticket", "id", "event", "type", "subject", "detail", "event_id", "actor_id", "time"]),
                children,
                max_size=5,
            )
        ),
        max_leaves=12,
    )
)
def test_arbitrary_signed_json_only_raises_webhook_rejected(payload: Any) -> None:
    """Correctly signed but arbitrary JSON gives Events or a 400, nothing else."""
    body = json.dumps(payload).encode()
    result = outcome(headers_for(body), body)
    if isinstance(result, WebhookRejected):
        assert result.status == 400
    else:
        assert len(result) == 1
        assert result[0].subject.system == "zendesk"
