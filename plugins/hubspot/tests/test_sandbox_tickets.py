"""HubSpot tickets on the emulator: cxbridge's ticket properties, the helpdesk connector, webhooks, its client.

Covers the emulator's side (custom ticket properties, property-change webhooks), the connector's helpdesk
methods against it, and HubSpot's own client reading a seeded ticket. The end-to-end escalation with HubSpot as
the helpdesk is a core test: ``tests/test_escalate_hubspot_helpdesk.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import hubspot
import pytest
import requests
from cxbridge_hubspot.connector import HubSpotConnector
from cxbridge_hubspot.sandbox.backend import HubSpotBackend
from cxbridge_hubspot.webhook import verify_hubspot
from urllib3.util.retry import Retry

from cxbridge.sdk import CallCounter, Ref, Secret, SystemConfig, Triggers
from cxbridge.testing import Clock, Spec, mock_vendors, serve_vendors, verify_deliveries

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

BASE = "https://api.hubapi.com"
HOOK_URL = "http://127.0.0.1:9/webhooks/hubspot"
"""A target nobody listens on: deliveries are read from what the emulator recorded as sent."""
HOOK_SECRET = "hubspot-app-secret-for-tests"


@pytest.fixture
def hub() -> Iterator[HubSpotBackend]:
    backend = HubSpotBackend()
    with mock_vendors(backends={"hubspot": backend}, seed="demo"):
        yield backend


def headers(backend: HubSpotBackend) -> dict[str, str]:
    return {"Authorization": f"Bearer {backend.access_token}"}


def grace_ticket(backend: HubSpotBackend) -> str:
    """The seeded ticket (Grace Hopper of Globex)."""
    [tid] = list(backend.portal.objects["tickets"])
    return tid


def connector(backend: HubSpotBackend, counter: CallCounter | None = None) -> HubSpotConnector:
    config = SystemConfig(
        name="hubspot",
        plugin="hubspot",
        base_url=BASE,
        max_retries=0,
        options={"access_token": Secret(backend.access_token), "portal_id": str(backend.portal_id)},
    )
    return HubSpotConnector.from_config(config, counter=counter or CallCounter(), session=requests.Session())


def ticket_notes(backend: HubSpotBackend, tid: str) -> list[dict[str, Any]]:
    """The notes associated with a ticket, as the emulator holds them."""
    ids = {to_id for to_id, _ in backend.portal.associated("tickets", tid, "notes")}
    return [n for n in backend.state()["objects"]["notes"] if n["id"] in ids]


# -- the emulator --------------------------------------------------------------------------------------------------


def test_ticket_properties_are_defined_and_unknown_ones_refused(hub: HubSpotBackend) -> None:
    """cxbridge's ticket properties exist; an unknown property or a bad checkbox value is HubSpot's 400."""
    tid = grace_ticket(hub)
    url = f"{BASE}/crm/v3/objects/tickets/{tid}"
    ok = requests.patch(
        url, headers=headers(hub), json={"properties": {"cxbridge_issue_key": "ENG-5", "cxbridge_escalate": True}}
    )
    assert ok.status_code == 200
    Spec("hubspot-tickets").validate_response("PATCH", "/crm/v3/objects/tickets/{ticketId}", 200, ok.json())
    assert ok.json()["properties"]["cxbridge_escalate"] == "true"
    unknown = requests.patch(url, headers=headers(hub), json={"properties": {"cxbridge_issue": "ENG-5"}})
    assert unknown.status_code == 400
    Spec("hubspot-tickets").validate_schema("Error", unknown.json())
    assert unknown.json()["category"] == "VALIDATION_ERROR"
    assert unknown.json()["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    bad = requests.patch(url, headers=headers(hub), json={"properties": {"cxbridge_escalate": "yes"}})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["code"] == "INVALID_OPTION"


def deliveries(backend: HubSpotBackend) -> list[dict[str, Any]]:
    return [d for d in backend.webhooks_sent if d["url"] == HOOK_URL]


def test_escalation_property_change_fires_a_signed_webhook(hub: HubSpotBackend) -> None:
    """Through the API and the ``ui-update`` admin route: one ticket.propertyChange each, valid v3 signature."""
    assert (
        requests.post(
            f"{BASE}/_sandbox/webhooks", json={"targets": [{"url": HOOK_URL, "secret": HOOK_SECRET}]}
        ).status_code
        == 200
    )
    tid = grace_ticket(hub)
    ui = requests.post(
        f"{BASE}/_sandbox/hubspot/ui-update",
        json={"objectType": "tickets", "id": tid, "properties": {"cxbridge_escalate": "true"}},
    )
    assert ui.status_code == 200
    requests.patch(
        f"{BASE}/crm/v3/objects/tickets/{tid}",
        headers=headers(hub),
        json={"properties": {"cxbridge_escalate": "false", "cxbridge_issue_key": "ENG-1"}},
    )
    sent = deliveries(hub)
    assert len(sent) == 2  # the issue key is not subscribed: no event for it
    events = verify_deliveries(verify_hubspot, sent, HOOK_SECRET)
    assert [(e.kind, e.subject, e.payload["propertyName"], e.payload["propertyValue"]) for e in events] == [
        ("ticket.propertyChange", Ref("hubspot", "ticket", tid), "cxbridge_escalate", "true"),
        ("ticket.propertyChange", Ref("hubspot", "ticket", tid), "cxbridge_escalate", "false"),
    ]
    assert [e.payload["changeSource"] for e in events] == ["CRM_UI", "INTEGRATION"]
    assert events[1].actor == str(hub.app_id)
    tampered = dict(sent[0], body=sent[0]["body"].replace('"true"', '"TRUE"'))
    with pytest.raises(Exception, match="signature"):
        verify_deliveries(verify_hubspot, [tampered], HOOK_SECRET)


# -- the connector against the emulator ---------------------------------------------------------------------------


def test_connector_reads_and_writes_a_seeded_ticket(hub: HubSpotBackend) -> None:
    """get_ticket (2 calls), record_escalation once, list_comments, set_status, requested_issue_key."""
    counter = CallCounter()
    hs = connector(hub, counter)
    tid = grace_ticket(hub)
    ticket = hs.get_ticket(tid)
    assert counter.total("hubspot") == 2
    assert ticket.subject == "CSV export times out on large reports"
    assert ticket.requester is not None
    assert ticket.requester.email == "grace@globex.example"
    assert (ticket.requester.name, ticket.organization, ticket.priority) == ("Grace Hopper", "Globex", "high")
    assert ticket.url == f"https://app.hubspot.com/contacts/{hub.portal_id}/record/0-5/{tid}"
    assert hs.requested_issue_key(ticket) is None

    assert hs.record_escalation(
        ticket, note="Escalated to engineering: ENG-3", tag="t", issue_key="ENG-3", issue_url=""
    )
    props = hub.portal.objects["tickets"][tid].properties
    assert (props["cxbridge_issue_key"], props["cxbridge_escalate"]) == ("ENG-3", "true")
    again = hs.get_ticket(tid)
    assert hs.requested_issue_key(again) == "ENG-3"
    assert not hs.record_escalation(again, note="Escalated again", tag="t", issue_key="ENG-3", issue_url="")
    assert len(ticket_notes(hub, tid)) == 1

    hs.add_internal_note(tid, "ENG-3 moved to In Progress")
    comments = hs.list_comments(tid)
    assert [c.body for c in comments] == [
        "Escalated to engineering: ENG-3\n\ncxbridge: escalated ENG-3",
        "ENG-3 moved to In Progress",
    ]
    assert hs.set_status(tid, "3")
    assert not hs.set_status(tid, "3")
    assert hub.portal.objects["tickets"][tid].properties["hs_pipeline_stage"] == "3"


def test_get_customer_on_the_emulator(hub: HubSpotBackend) -> None:
    """A company by reference, as find_customer builds it: Globex with its ARR and its open deal."""
    hs = connector(hub)
    [(globex, _)] = hub.portal.associated("tickets", grace_ticket(hub), "companies")[:1]
    customer = hs.get_customer(Ref("hubspot", "company", globex))
    assert (customer.name, customer.tier, str(customer.arr)) == ("Globex", "enterprise", "150000")
    assert [d.name for d in customer.deals] == ["Globex renewal"]
    via_contact = hs.find_customer("grace@globex.example")
    assert dataclasses.replace(via_contact, contact_ref=None, lifecycle_stage=None) == customer


def test_changed_tickets_on_the_emulator() -> None:
    """A scan from before the seed sees the ticket; a resumed scan sees only what changed after its cursor."""
    clock = Clock(1_772_445_600.0)
    hub = HubSpotBackend(clock=clock)
    with mock_vendors(backends={"hubspot": hub}, seed="demo"):
        _scan(hub, clock)


def _scan(hub: HubSpotBackend, clock: Clock) -> None:
    hs = connector(hub)
    tid = grace_ticket(hub)
    pages = list(hs.changed_tickets(None, since=0))
    assert [t.ref.id for p in pages for t in p.items] == [tid]
    cursor = pages[-1].cursor
    assert cursor == {"modified_ms": int(clock.now * 1000), "ids": [tid]}
    assert list(hs.changed_tickets(cursor, since=0))[-1].items == []
    assert [t.ref.id for p in hs.changed_tickets(None, since=clock.now + 1) for t in p.items] == []
    created = requests.post(
        f"{BASE}/crm/v3/objects/tickets",
        headers=headers(hub),
        json={"properties": {"subject": "Second", "hs_pipeline": "0", "hs_pipeline_stage": "1"}},
    ).json()
    clock.now += 5  # a later modification time than the first ticket's
    requests.patch(
        f"{BASE}/crm/v3/objects/tickets/{tid}", headers=headers(hub), json={"properties": {"cxbridge_escalate": "true"}}
    )
    later = [t for p in hs.changed_tickets(cursor, since=0) for t in p.items]
    assert {t.ref.id for t in later} == {tid, created["id"]}
    assert hs.wants_escalation(next(t for t in later if t.ref.id == tid), Triggers())


# -- HubSpot's own client ------------------------------------------------------------------------------------------


@pytest.mark.sandbox
def test_hubspot_client_reads_a_seeded_ticket() -> None:
    """hubspot-api-client reads the seeded ticket, its cxbridge properties and its contact association."""
    with serve_vendors(["hubspot"], seed="demo") as served:
        hub = served["hubspot"]
        assert isinstance(hub, HubSpotBackend)
        tid = grace_ticket(hub)
        hub.ui_update("tickets", tid, {"cxbridge_issue_key": "ENG-8"})
        client = hubspot.Client.create(access_token=hub.access_token, host=hub.base_url, retry=Retry(total=0))
        ticket = client.crm.tickets.basic_api.get_by_id(
            tid,
            properties=["subject", "hs_pipeline_stage", "cxbridge_issue_key", "cxbridge_escalate"],
            associations=["contacts", "companies"],
        )
        assert ticket.properties["subject"] == "CSV export times out on large reports"
        assert ticket.properties["cxbridge_issue_key"] == "ENG-8"
        assert ticket.updated_at.tzinfo is not None
        contact_ids = [a.id for a in ticket.associations["contacts"].results]
        emails = [hub.portal.objects["contacts"][c].properties["email"] for c in contact_ids]
        assert emails == ["grace@globex.example"]
