"""Tests of the HubSpot webhook verifier (signature v3): the official vectors, the signed URI, batches, bad input.

The properties every verifier shares (signatures, the 300 s window, malformed headers, rotation, fuzzing) are
``cxbridge.testing.TimestampedVerifierContract``'s, run here by ``TestHubSpotVerifier``.

Signatures are computed here from the documented algorithm with the stdlib, independently of the verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cxbridge_hubspot.webhook import MAX_SIGNATURES, classic_kind, decode_uri, verify_hubspot, verify_hubspot_signature

from cxbridge.sdk import Ref, Secret, WebhookRejected
from cxbridge.testing import SignedDelivery, TimestampedVerifierContract

# hubspot-api-python tests/spec/utils/test_signature.py (RELIABILITY.md section 7)
SDK_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
SDK_URI = "https://www.example.com/webhook_uri"
SDK_BODY = b"{'example_field':'example_value'}"
SDK_TS = "1693657560000"
SDK_V3 = "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
SDK_V3_TS_15000000 = "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="
SDK_V1 = "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
SDK_V2 = "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"

URL = "https://bridge.example.com/webhooks/hubspot"
SECRET = "c1d2e3f4-0000-4000-8000-123456789abc"
NOW = 1714754411.0
NOW_MS = str(int(NOW * 1000))


def sign(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    source = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def event(event_id: int, kind: str = "contact.propertyChange", object_id: int = 151, **extra: Any) -> dict[str, Any]:
    """One event of a delivery, in the shape of HubSpot's webhook payload documentation."""
    item: dict[str, Any] = {
        "eventId": event_id,
        "subscriptionId": 2012345,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": 1714754400000,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
        "sourceId": "userId:1234567",
    }
    if kind.endswith("propertyChange"):
        item.update(propertyName="lifecyclestage", propertyValue="customer")
    item.update(extra)
    return item


def delivery(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events, separators=(",", ":")).encode()


def headers_for(
    body: bytes, *, secret: str = SECRET, url: str = URL, ts: str = NOW_MS, method: str = "POST"
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign(secret, method, url, body, ts),
        "X-HubSpot-Signature-Version": "v3",
        "X-HubSpot-Request-Timestamp": ts,
    }


def verify(
    headers: dict[str, Any],
    body: bytes,
    *,
    secrets: list[str] | None = None,
    now: float = NOW,
    url: str = URL,
    method: str = "POST",
) -> Any:
    return verify_hubspot(
        method=method,
        url=url,
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


# -- official vectors -----------------------------------------------------------------------------------------


def test_official_v3_vector() -> None:
    """hubspot-api-python's v3 vector verifies with a clock just after its timestamp."""
    headers = {"X-HubSpot-Signature-v3": SDK_V3, "X-HubSpot-Request-Timestamp": SDK_TS}
    verify_hubspot_signature(
        method="POST",
        url=SDK_URI,
        headers=headers,
        body=SDK_BODY,
        secrets=[Secret(SDK_SECRET)],
        now=int(SDK_TS) / 1000 + 10,
    )


def test_official_v3_vector_body_is_not_an_event_array() -> None:
    """The vector's body (Python-repr, not JSON) passes the signature and is then malformed: 400."""
    headers = {"X-HubSpot-Signature-v3": SDK_V3, "X-HubSpot-Request-Timestamp": SDK_TS}
    error = rejected(headers, SDK_BODY, secrets=[SDK_SECRET], now=int(SDK_TS) / 1000, url=SDK_URI)
    assert error.status == 400


def test_sdk_seconds_unit_trap_is_rejected() -> None:
    """The SDK's own v3 test passes a timestamp in seconds (15000000); read as milliseconds it is 1970: stale.

    The signature itself is right (it verifies when the clock is put at 15000 s after the epoch).
    """
    headers = {"X-HubSpot-Signature-v3": SDK_V3_TS_15000000, "X-HubSpot-Request-Timestamp": "15000000"}
    verify_hubspot_signature(
        method="POST", url=SDK_URI, headers=headers, body=SDK_BODY, secrets=[Secret(SDK_SECRET)], now=15000.0
    )
    with pytest.raises(WebhookRejected) as info:
        verify_hubspot_signature(
            method="POST", url=SDK_URI, headers=headers, body=SDK_BODY, secrets=[Secret(SDK_SECRET)], now=15000000.0
        )
    assert info.value.status == 401


def test_timestamp_in_seconds_is_rejected() -> None:
    """A delivery signed with a seconds timestamp (a ms-vs-s mix-up) is rejected even though it is signed."""
    body = delivery([event(1)])
    seconds = str(int(NOW))
    assert rejected(headers_for(body, ts=seconds), body).status == 401


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"X-HubSpot-Signature": SDK_V1, "X-HubSpot-Signature-Version": "v1"}, "v1"),
        ({"X-HubSpot-Signature": SDK_V2, "X-HubSpot-Signature-Version": "v2"}, "v2"),
    ],
)
def test_legacy_signatures_are_rejected(headers: dict[str, str], why: str) -> None:
    """Correct v1/v2 signatures (plain SHA-256, no timestamp) are refused: v3 is required."""
    v1 = hashlib.sha256(SDK_SECRET.encode() + SDK_BODY).hexdigest()
    v2 = hashlib.sha256(SDK_SECRET.encode() + b"POST" + SDK_URI.encode() + SDK_BODY).hexdigest()
    assert (v1, v2) == (SDK_V1, SDK_V2)  # the vectors are what the legacy schemes produce
    error = rejected(headers, SDK_BODY, secrets=[SDK_SECRET], url=SDK_URI)
    assert error.status == 401
    assert "legacy" in str(error)


# -- URI decoding ---------------------------------------------------------------------------------------------


def test_uri_is_decoded_as_hubspot_documents() -> None:
    """HubSpot signs the URI with the listed escapes decoded; the receiver sees them encoded."""
    wire = "https://bridge.example.com/webhooks/hubspot%3Fportal%3D62515%40eu?x=%2F%2a%2C%3b%28%29%21%24%27&y=%20"
    signed = "https://bridge.example.com/webhooks/hubspot?portal%3D62515@eu?x=/*,;()!$'&y=%20"
    assert decode_uri(wire) == signed  # %3D and %20 are not in HubSpot's list and stay encoded
    body = delivery([event(1)])
    headers = headers_for(body, url=signed)
    assert len(verify(headers, body, url=wire)) == 1


def test_method_is_signed() -> None:
    """A signature made for another method does not verify."""
    body = delivery([event(1)])
    assert rejected(headers_for(body, method="PUT"), body).status == 401


def test_url_is_signed() -> None:
    """A delivery replayed to another URL does not verify."""
    body = delivery([event(1)])
    assert rejected(headers_for(body, url=URL + "/other"), body).status == 401


# -- batches and Events ---------------------------------------------------------------------------------------


def test_batch_becomes_one_event_per_event_id() -> None:
    """Each array element is an Event (id = eventId-subscriptionId-objectId-occurredAt); a repeated event in the
    batch yields one Event."""
    items = [
        event(1001, "contact.propertyChange", 151),
        event(1002, "company.creation", 9001, changeFlag="NEW"),
        event(1001, "contact.propertyChange", 151),
        event(1003, "deal.deletion", 5001, changeFlag="DELETED", sourceId="54321", changeSource="INTEGRATION"),
    ]
    body = delivery(items)
    events = verify(headers_for(body), body)
    assert [e.id for e in events] == [
        "1001-2012345-151-1714754400000",
        "1002-2012345-9001-1714754400000",
        "1003-2012345-5001-1714754400000",
    ]
    assert [e.kind for e in events] == ["contact.propertyChange", "company.creation", "deal.deletion"]
    assert [e.subject for e in events] == [
        Ref("hubspot", "contact", "151"),
        Ref("hubspot", "company", "9001"),
        Ref("hubspot", "deal", "5001"),
    ]
    assert [e.actor for e in events] == ["userId:1234567", "userId:1234567", "54321"]
    assert events[0].payload == items[0]
    assert all(e.system == "hubspot" for e in events)
    assert events[0].occurred_at is not None
    assert int(events[0].occurred_at.timestamp() * 1000) == 1714754400000


def test_generic_object_events_use_the_object_type_id() -> None:
    """``object.*`` subscriptions name the type by id (0-3 is a deal; unknown ids are kept)."""
    body = delivery(
        [
            event(7, "object.propertyChange", 5001, objectTypeId="0-3"),
            event(8, "object.creation", 12, objectTypeId="2-1234"),
        ]
    )
    events = verify(headers_for(body), body)
    assert [e.subject for e in events] == [Ref("hubspot", "deal", "5001"), Ref("hubspot", "2-1234", "12")]
    assert [classic_kind(e) for e in events] == ["deal.propertyChange", "object.creation"]


def test_generic_ticket_property_change_escalates_like_the_classic_one() -> None:
    """``object.propertyChange`` on a ticket (0-5) asks for the escalation exactly as ``ticket.propertyChange``
    does; on a company (0-2) it is read as ``company.propertyChange``: an ARR change is a ``CustomerChanged``, as
    for the classic one (the impact of the issues the company is linked to is refreshed)."""
    from cxbridge_hubspot.connector import HubSpotConnector

    from cxbridge.sdk import CustomerChanged, EscalationRequested, Ref, SystemConfig, Triggers
    from cxbridge.testing import build_connector

    config = SystemConfig(
        name="hubspot",
        plugin="hubspot",
        base_url="https://api.hubapi.com",
        options={"access_token": Secret("t"), "portal_id": 1},
    )
    hub = build_connector(HubSpotConnector, config)
    tag = Triggers(escalation_tag="x")
    body = delivery(
        [
            event(1, "ticket.propertyChange", 5001, propertyName="cxbridge_escalate", propertyValue="true"),
            event(
                2,
                "object.propertyChange",
                5001,
                objectTypeId="0-5",
                propertyName="cxbridge_escalate",
                propertyValue="true",
            ),
            event(
                3,
                "object.propertyChange",
                5001,
                objectTypeId="0-5",
                propertyName="cxbridge_escalate",
                propertyValue=None,
                sourceId=None,
            ),
            event(
                4, "object.propertyChange", 901, objectTypeId="0-2", propertyName="annualrevenue", propertyValue="1000"
            ),
        ]
    )
    classic, generic, cleared, company = verify(headers_for(body), body)
    assert [type(s) for s in hub.interpret(classic, tag)] == [EscalationRequested]
    assert hub.interpret(generic, tag) == hub.interpret(classic, tag)
    assert hub.interpret(cleared, tag) == []
    assert cleared.actor is None
    assert classic_kind(company) == "company.propertyChange"
    assert hub.interpret(company, tag) == [
        CustomerChanged(company=Ref("hubspot", "company", "901"), properties=("annualrevenue",))
    ]


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"eventId": 1},
        [1],
        [{"subscriptionType": "contact.creation", "objectId": 1}],
        [{"eventId": 1, "objectId": 1}],
        [{"eventId": 1, "subscriptionType": "contact.creation"}],
        [{"eventId": {"x": 1}, "subscriptionType": "contact.creation", "objectId": 1}],
        [{"eventId": 1, "subscriptionType": "contact creation!", "objectId": 1}],
        [{"eventId": 1, "subscriptionType": "contact.creation", "objectId": "a:b"}],
    ],
)
def test_signed_but_malformed_bodies_are_400(payload: Any) -> None:
    """A correctly signed body that is not an array of usable events is malformed."""
    body = json.dumps(payload).encode()
    assert rejected(headers_for(body), body).status == 400


# -- timestamps (W2) ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ts", ["1714754411000.0", "-1714754411000", "1e12", "abc", "٣٣٣", "1" * 40])
def test_unreadable_timestamps_are_400(ts: str) -> None:
    body = delivery([event(1)])
    assert rejected(headers_for(body, ts=ts), body).status == 400


# -- what every verifier does (cxbridge.testing) ----------------------------------------------------------------


class TestHubSpotVerifier(TimestampedVerifierContract):
    system = "hubspot"
    verifier = staticmethod(verify_hubspot)
    signature_header = "X-HubSpot-Signature-v3"
    timestamp_header = "X-HubSpot-Request-Timestamp"
    window = 300
    max_signatures = MAX_SIGNATURES
    timestamp_change_statuses = (401,)  # every changed digit is still a number of milliseconds: another time
    secret = SECRET
    now = NOW
    body = delivery([event(1), event(2, "company.creation", 9001)])
    fuzz_header_names = ("X-HubSpot-Signature", "X-HubSpot-Signature-Version")
    fuzz_payload_keys = ("eventId", "subscriptionType", "objectId", "objectTypeId", "occurredAt", "sourceId")

    def signed_delivery(self, *, secret: str, body: bytes, now: float) -> SignedDelivery:
        return SignedDelivery("POST", URL, headers_for(body, secret=secret, ts=str(int(now * 1000))), body)


def test_company_and_stage_changes_are_neutral_signals() -> None:
    """A company's ARR change is a CustomerChanged; a property the impact does not read means nothing; a ticket's
    stage change is a TicketStateObserved with the stage id."""
    from cxbridge_hubspot.connector import HubSpotConnector

    from cxbridge.sdk import CustomerChanged, Event, Ref, SystemConfig, TicketStateObserved, Triggers

    config = SystemConfig(name="crm", plugin="hubspot", base_url="https://api.hubapi.com", options={})
    hub = HubSpotConnector(config, None)  # type: ignore[arg-type]  # interpret never calls HubSpot

    def event(kind: str, subject: Ref, name: str, value: str) -> Event:
        return Event(
            id="1", system="hubspot", kind=kind, subject=subject, payload={"propertyName": name, "propertyValue": value}
        )

    company = Ref("hubspot", "company", "1001")
    assert hub.interpret(event("company.propertyChange", company, "annualrevenue", "520000"), Triggers()) == [
        CustomerChanged(company=Ref("crm", "company", "1001"), properties=("annualrevenue",))
    ]
    assert hub.interpret(event("company.propertyChange", company, "phone", "555"), Triggers()) == []
    ticket = Ref("hubspot", "ticket", "7")
    assert hub.interpret(event("ticket.propertyChange", ticket, "hs_pipeline_stage", "4"), Triggers()) == [
        TicketStateObserved(ticket=Ref("crm", "ticket", "7"), status="4")
    ]
