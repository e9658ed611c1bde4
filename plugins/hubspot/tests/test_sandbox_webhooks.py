"""Webhooks from the HubSpot emulator: batched event arrays, signed v3, for the app's subscriptions."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from cxbridge_hubspot.sandbox.backend import HubSpotBackend
from cxbridge_hubspot.sandbox.models import OBJECT_TYPES, Change
from cxbridge_hubspot.sandbox.webhooks import sign_v3
from hubspot.utils.signature import Signature

from cxbridge.testing import Delivery, Receiver, Spec, mock_vendors

BASE = "https://api.hubapi.com"
SECRET = "client-secret-for-tests"


def test_sign_v3_matches_hubspots_published_vector() -> None:
    """The signer reproduces the v3 vector from hubspot-api-python's tests."""
    signature = sign_v3(
        "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        "POST",
        "https://www.example.com/webhook_uri",
        "{'example_field':'example_value'}",
        1693657560000,
    )
    assert signature == "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
    assert (
        sign_v3(
            "other", "POST", "https://www.example.com/webhook_uri", "{'example_field':'example_value'}", 1693657560000
        )
        != signature
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver("/webhooks/hubspot") as r:
        yield r


@pytest.fixture
def backend(receiver: Receiver) -> Iterator[HubSpotBackend]:
    hub = HubSpotBackend()
    with mock_vendors(backends={"hubspot": hub}, seed="demo", passthru=[receiver.url]):
        admin = requests.post(f"{BASE}/_sandbox/webhooks", json={"targets": [{"url": receiver.url, "secret": SECRET}]})
        assert admin.status_code == 200
        yield hub


def auth(backend: HubSpotBackend) -> dict[str, str]:
    return {"Authorization": f"Bearer {backend.access_token}"}


def ticket_id(backend: HubSpotBackend) -> str:
    return next(iter(backend.portal.objects["tickets"]))


def delivered(backend: HubSpotBackend, receiver: Receiver) -> list[Delivery]:
    assert backend.wait_for_webhooks(10)
    return list(receiver.deliveries)


def assert_signed(delivery: Delivery, secret: str) -> None:
    """The delivery verifies with the official SDK's v3 check (which also checks the timestamp is fresh)."""
    assert delivery.headers["X-Hubspot-Signature-Version"] == "v3"
    assert Signature.is_valid(
        signature=delivery.headers["X-Hubspot-Signature-V3"],
        client_secret=secret,
        request_body=delivery.text,
        http_uri=delivery.url,
        http_method="POST",
        signature_version="v3",
        timestamp=delivery.headers["X-Hubspot-Request-Timestamp"],
    )


def test_ui_change_is_delivered_as_a_signed_crm_ui_event(backend: HubSpotBackend, receiver: Receiver) -> None:
    """An agent ticking ``escalate_to_engineering`` in HubSpot sends one signed ticket.propertyChange event."""
    ticket = ticket_id(backend)
    response = requests.post(
        f"{BASE}/_sandbox/hubspot/ui-update",
        json={"objectType": "tickets", "id": ticket, "properties": {"escalate_to_engineering": "true"}},
    )
    assert response.status_code == 200
    assert response.json()["properties"]["escalate_to_engineering"] == "true"
    [delivery] = delivered(backend, receiver)
    assert_signed(delivery, SECRET)
    [event] = json.loads(delivery.body)
    assert event["subscriptionType"] == "ticket.propertyChange"
    assert event["objectId"] == int(ticket)
    assert event["propertyName"] == "escalate_to_engineering"
    assert event["propertyValue"] == "true"
    assert event["changeSource"] == "CRM_UI"
    assert event["sourceId"].startswith("userId:")
    assert event["portalId"] == backend.portal_id
    assert event["appId"] == backend.app_id
    assert event["attemptNumber"] == 0
    assert isinstance(event["eventId"], int)
    assert isinstance(event["subscriptionId"], int)
    assert abs(event["occurredAt"] - int(delivery.headers["X-Hubspot-Request-Timestamp"])) < 5000


def test_api_changes_of_one_request_arrive_in_one_delivery(backend: HubSpotBackend, receiver: Receiver) -> None:
    """A PATCH changing two subscribed properties gives one array of two INTEGRATION events."""
    ticket = ticket_id(backend)
    response = requests.patch(
        f"{BASE}/crm/v3/objects/tickets/{ticket}",
        headers=auth(backend),
        json={"properties": {"hs_pipeline_stage": "3", "escalate_to_engineering": "true", "content": "more detail"}},
    )
    assert response.status_code == 200
    [delivery] = delivered(backend, receiver)
    assert_signed(delivery, SECRET)
    events = json.loads(delivery.body)
    assert {(e["propertyName"], e["propertyValue"]) for e in events} == {
        ("hs_pipeline_stage", "3"),
        ("escalate_to_engineering", "true"),
    }
    assert {e["changeSource"] for e in events} == {"INTEGRATION"}
    assert {e["sourceId"] for e in events} == {str(backend.app_id)}
    assert len({e["eventId"] for e in events}) == 2


def test_unsubscribed_or_unchanged_values_send_nothing(backend: HubSpotBackend, receiver: Receiver) -> None:
    """Changing an unsubscribed property, or writing the value a property already holds, sends no webhook."""
    ticket = ticket_id(backend)
    for props in ({"content": "new text"}, {"hs_pipeline_stage": "1"}):
        response = requests.patch(
            f"{BASE}/crm/v3/objects/tickets/{ticket}", headers=auth(backend), json={"properties": props}
        )
        assert response.status_code == 200
    assert delivered(backend, receiver) == []


def test_company_revenue_change_is_subscribed(backend: HubSpotBackend, receiver: Receiver) -> None:
    """The default subscriptions include company annualrevenue."""
    acme = next(o.id for o in backend.portal.objects["companies"].values() if o.properties["name"] == "Acme Corp")
    requests.patch(
        f"{BASE}/crm/v3/objects/companies/{acme}",
        headers=auth(backend),
        json={"properties": {"annualrevenue": "500000"}},
    )
    [delivery] = delivered(backend, receiver)
    [event] = json.loads(delivery.body)
    assert (event["subscriptionType"], event["objectId"], event["propertyValue"]) == (
        "company.propertyChange",
        int(acme),
        "500000",
    )


def test_more_than_a_hundred_events_are_split(backend: HubSpotBackend, receiver: Receiver) -> None:
    """Deliveries hold at most 100 events each."""
    ticket = ticket_id(backend)
    changes = [
        Change(
            OBJECT_TYPES["tickets"],
            ticket,
            "propertyChange",
            "CRM_UI",
            backend.clock(),
            "hs_pipeline_stage",
            str(i % 4 + 1),
        )
        for i in range(150)
    ]
    with backend.lock:
        assert backend.deliver(changes) == 150
    sizes = [len(json.loads(d.body)) for d in delivered(backend, receiver)]
    assert sizes == [100, 50]


def test_webhooks_api_settings_and_subscriptions(backend: HubSpotBackend, receiver: Receiver) -> None:
    """With the developer key an app sets its target URL and subscriptions; events then go there too."""
    app = backend.app_id
    key = {"hapikey": backend.developer_api_key}
    spec = Spec("hubspot-webhooks")
    assert requests.get(f"{BASE}/webhooks/v3/{app}/subscriptions").status_code == 401
    listed = requests.get(f"{BASE}/webhooks/v3/{app}/subscriptions", params=key)
    spec.validate_response("GET", "/webhooks/v3/{appId}/subscriptions", 200, listed.json())
    assert {(s["eventType"], s.get("propertyName")) for s in listed.json()["results"]} == {
        ("ticket.propertyChange", "hs_pipeline_stage"),
        ("ticket.propertyChange", "escalate_to_engineering"),
        ("ticket.propertyChange", "cxbridge_escalate"),
        ("company.propertyChange", "annualrevenue"),
    }
    created = requests.post(
        f"{BASE}/webhooks/v3/{app}/subscriptions",
        params=key,
        json={"eventType": "contact.propertyChange", "propertyName": "firstname", "active": True},
    )
    assert created.status_code == 201
    spec.validate_response("POST", "/webhooks/v3/{appId}/subscriptions", 201, created.json())
    requests.post(f"{BASE}/_sandbox/webhooks", json={"targets": []})
    settings = requests.put(
        f"{BASE}/webhooks/v3/{app}/settings",
        params=key,
        json={"targetUrl": receiver.url, "throttling": {"maxConcurrentRequests": 10}},
    )
    assert settings.status_code == 200
    spec.validate_response("PUT", "/webhooks/v3/{appId}/settings", 200, settings.json())
    ada = next(o.id for o in backend.portal.objects["contacts"].values() if o.properties["email"] == "ada@acme.example")
    requests.patch(
        f"{BASE}/crm/v3/objects/contacts/{ada}", headers=auth(backend), json={"properties": {"firstname": "Augusta"}}
    )
    [delivery] = delivered(backend, receiver)
    assert_signed(delivery, backend.client_secret)
    [event] = json.loads(delivery.body)
    assert (event["subscriptionType"], event["propertyValue"], event["subscriptionId"]) == (
        "contact.propertyChange",
        "Augusta",
        int(created.json()["id"]),
    )
    paused = requests.patch(
        f"{BASE}/webhooks/v3/{app}/subscriptions/{created.json()['id']}", params=key, json={"active": False}
    )
    assert paused.json()["active"] is False
    requests.patch(
        f"{BASE}/crm/v3/objects/contacts/{ada}", headers=auth(backend), json={"properties": {"firstname": "Ada"}}
    )
    assert len(delivered(backend, receiver)) == 1
    assert requests.delete(f"{BASE}/webhooks/v3/{app}/settings", params=key).status_code == 204
    missing = requests.get(f"{BASE}/webhooks/v3/{app}/settings", params=key)
    assert missing.status_code == 404
    Spec("hubspot-webhooks").validate_schema("Error", missing.json())
    assert requests.get(f"{BASE}/webhooks/v3/999/subscriptions", params=key).status_code == 404


def test_generic_object_subscription_is_sent_and_read_like_the_classic_one(
    backend: HubSpotBackend, receiver: Receiver
) -> None:
    """An ``object.propertyChange`` subscription for tickets (``0-5``), created through the webhooks API, sends the
    generic form (with ``objectTypeId``); the plugin reads it as the classic ``ticket.propertyChange`` and asks for
    the escalation."""
    from cxbridge_hubspot.connector import HubSpotConnector
    from cxbridge_hubspot.webhook import classic_kind, verify_hubspot

    from cxbridge.sdk import EscalationRequested, Secret, SystemConfig, Triggers
    from cxbridge.testing import build_connector

    app = backend.app_id
    key = {"hapikey": backend.developer_api_key}
    for sub in list(backend.portal.subscriptions.values()):
        sub.active = False  # only the generic subscription reports the change
    missing_type = requests.post(
        f"{BASE}/webhooks/v3/{app}/subscriptions",
        params=key,
        json={"eventType": "object.propertyChange", "propertyName": "cxbridge_escalate", "active": True},
    )
    assert missing_type.status_code == 400
    created = requests.post(
        f"{BASE}/webhooks/v3/{app}/subscriptions",
        params=key,
        json={
            "eventType": "object.propertyChange",
            "objectTypeId": "0-5",
            "propertyName": "cxbridge_escalate",
            "active": True,
        },
    )
    assert created.status_code == 201
    Spec("hubspot-webhooks").validate_response("POST", "/webhooks/v3/{appId}/subscriptions", 201, created.json())
    assert created.json()["objectTypeId"] == "0-5"
    ticket = ticket_id(backend)
    backend.ui_update("tickets", ticket, {"cxbridge_escalate": "true"})
    [delivery] = delivered(backend, receiver)
    assert_signed(delivery, SECRET)
    [raw] = json.loads(delivery.body)
    assert (raw["subscriptionType"], raw["objectTypeId"], raw["objectId"]) == (
        "object.propertyChange",
        "0-5",
        int(ticket),
    )
    [event] = verify_hubspot(
        method="POST",
        url=delivery.url,
        headers=delivery.headers,
        body=delivery.body,
        secrets=[Secret(SECRET)],
        now=int(delivery.headers["X-Hubspot-Request-Timestamp"]) / 1000,
    )
    assert classic_kind(event) == "ticket.propertyChange"
    assert event.id == f"{raw['eventId']}-{raw['subscriptionId']}-{ticket}-{raw['occurredAt']}"
    options = {"access_token": Secret(backend.access_token), "portal_id": backend.portal_id}
    hub = build_connector(
        HubSpotConnector, SystemConfig(name="hubspot", plugin="hubspot", base_url=BASE, options=options)
    )
    [signal] = hub.interpret(event, Triggers(escalation_tag="escalated"))
    assert isinstance(signal, EscalationRequested)
    assert signal.ticket.id == ticket
