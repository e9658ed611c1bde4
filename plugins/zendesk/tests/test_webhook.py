"""Tests of the Zendesk webhook verifier: the RELIABILITY.md section 7 vectors, Events, Zendesk's timestamps.

The properties every verifier shares (signatures, the 300 s window, malformed headers, rotation, fuzzing) are
``cxbridge.testing.TimestampedVerifierContract``'s, run here by ``TestZendeskVerifier``.

The signature is computed here from the documented algorithm (``hmac`` of the stdlib), independently of the
verifier's code; the vectors come from Zendesk's pages as recorded in VENDOR-APIS.md 4.1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cxbridge_zendesk.webhook import MAX_SIGNATURES, verify_zendesk, verify_zendesk_signature

from cxbridge.sdk import Ref, Secret, WebhookRejected
from cxbridge.testing import SignedDelivery, TimestampedVerifierContract

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


# -- timestamps -----------------------------------------------------------------------------------------------


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


def test_a_timestamp_read_before_is_checked_against_each_delivery_now() -> None:
    """The parsed timestamp is reused, the window is not: the same signed stamp goes stale as time passes, and
    an unreadable one is refused every time."""
    body = trigger_body()
    headers = headers_for(body)
    assert len(verify(headers, body)) == 1
    assert len(verify(headers, body, now=NOW + 300)) == 1
    assert rejected(headers, body, now=NOW + 301).status == 401
    assert rejected(headers, body, now=NOW - 301).status == 401
    for _ in range(2):
        assert rejected(headers_for(body, stamp="2024-05-03T16:40:11"), body).status == 400


# -- what every verifier does (cxbridge.testing) ----------------------------------------------------------------


class TestZendeskVerifier(TimestampedVerifierContract):
    system = "zendesk"
    verifier = staticmethod(verify_zendesk)
    signature_header = "X-Zendesk-Webhook-Signature"
    timestamp_header = "X-Zendesk-Webhook-Signature-Timestamp"
    window = 300
    max_signatures = MAX_SIGNATURES
    events_per_delivery = 1
    secret = SECRET
    now = NOW
    body = trigger_body()
    fuzz_header_names = ("X-Zendesk-Webhook-Invocation-Id",)
    fuzz_payload_keys = ("ticket", "id", "event", "type", "subject", "detail", "event_id", "actor_id", "time")

    def signed_delivery(self, *, secret: str, body: bytes, now: float) -> SignedDelivery:
        stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return SignedDelivery("POST", URL, headers_for(body, secret=secret, stamp=stamp), body)


# -- the requester's email: a hint the escalation body carries -------------------------------------------------


@pytest.mark.parametrize(
    ("requester", "hint"),
    [
        ({"email": "ada@acme.example"}, "ada@acme.example"),
        ({"email": "  ada@acme.example "}, "ada@acme.example"),
        ({"email": ""}, None),  # a requester without an email: the placeholder renders empty
        ({"email": "not an address"}, None),
        ({"email": 7}, None),
        (None, None),  # the body an earlier version provisioned
    ],
)
def test_the_escalation_body_carries_the_requesters_email_as_a_hint(requester: Any, hint: str | None) -> None:
    from cxbridge_zendesk.signals import interpret

    from cxbridge.sdk import EscalationRequested, Triggers

    ticket: dict[str, Any] = {"id": 4211, "tags": "escalated_to_engineering"}
    if requester is not None:
        ticket["requester"] = requester
    body = json.dumps({"event": "tag_added", "ticket": ticket, "current_user": {"id": 5}}).encode()
    (event,) = verify(headers_for(body), body)
    (signal,) = interpret("zendesk", event, Triggers(escalation_tag="escalated_to_engineering"))
    assert isinstance(signal, EscalationRequested)
    assert signal.requester_email == hint
    assert signal.fresh
