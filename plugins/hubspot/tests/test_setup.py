"""``cxbridge setup`` on HubSpot, against the in-process emulator: company and ticket properties (created in the
group ``cxbridge``, HubSpot's own ones only checked), and the app's webhook target and subscription."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cxbridge_hubspot.connector import HubSpotConnector
from cxbridge_hubspot.sandbox.backend import HubSpotBackend

from cxbridge.sdk import (
    CREATE,
    CRM_ROLE,
    HELPDESK,
    MANUAL,
    OK,
    UPDATE,
    PlanItem,
    Secret,
    SetupContext,
    SystemConfig,
)
from cxbridge.testing import Spec, mock_vendors

URL = "https://hooks.example.com/webhooks/hubspot"


@pytest.fixture
def hubspot() -> Iterator[HubSpotBackend]:
    backend = HubSpotBackend()
    with mock_vendors(backends={"hubspot": backend}, seed="empty"):
        yield backend


def connector(hubspot: HubSpotBackend, **options: object) -> HubSpotConnector:
    creds = hubspot.credentials()
    config = SystemConfig(
        name="hubspot",
        plugin="hubspot",
        base_url=hubspot.base_url,
        max_retries=0,
        options={"access_token": Secret(creds["access_token"]), **options},
    )
    return HubSpotConnector.from_config(config)


def setup_for(*roles: str) -> SetupContext:
    return SetupContext(webhook_url=URL, webhook_secrets=(Secret("client-secret"),), roles=frozenset(roles))


def apply_all(conn: HubSpotConnector, items: list[PlanItem], setup: SetupContext) -> None:
    for item in items:
        if item.action in (CREATE, UPDATE):
            assert conn.apply_setup(item, setup) == []


def test_properties_and_app_webhooks(hubspot: HubSpotBackend) -> None:
    creds = hubspot.credentials()
    conn = connector(hubspot, app_id=creds["app_id"], developer_api_key=Secret(creds["developer_api_key"]))
    setup = setup_for(CRM_ROLE, HELPDESK)
    items = conn.plan_setup(setup)
    assert [(i.name, i.action) for i in items] == [
        ("companies.tier", CREATE),
        ("companies.renewal_date", CREATE),
        ("companies.annualrevenue", OK),
        ("companies.hubspot_owner_id", OK),
        ("tickets.cxbridge_escalate", CREATE),
        ("tickets.cxbridge_issue_key", CREATE),
        ("app", UPDATE),
        ("ticket.propertyChange cxbridge_escalate", CREATE),
    ]
    spec = Spec("hubspot-properties")
    for item in items:
        if item.kind == "property" and item.action == CREATE:
            spec.validate_request("POST", "/crm/v3/properties/{objectType}", item.desired)
    apply_all(conn, items, setup)
    schema = hubspot.portal.schema
    assert (schema["companies"]["renewal_date"].kind, schema["companies"]["renewal_date"].group) == ("date", "cxbridge")
    assert schema["tickets"]["cxbridge_escalate"].kind == "bool"
    assert hubspot.portal.settings is not None
    assert hubspot.portal.settings["targetUrl"] == URL
    assert [(s.event_type, s.property_name, s.active) for s in hubspot.portal.subscriptions.values()] == [
        ("ticket.propertyChange", "cxbridge_escalate", True)
    ]
    assert [i.action for i in conn.plan_setup(setup)] == [OK] * 8


def test_a_misspelled_property_and_no_developer_key_are_manual_steps(hubspot: HubSpotBackend) -> None:
    items = connector(hubspot, arr_property="anualrevenue").plan_setup(setup_for(CRM_ROLE, HELPDESK))
    arr = next(i for i in items if i.name == "companies.anualrevenue")
    assert (arr.action, arr.detail) == (
        MANUAL,
        "HubSpot has no companies property 'anualrevenue': check arr_property in [systems.hubspot]",
    )
    app = items[-1]
    assert app.action == MANUAL
    assert f"target URL {URL}, subscribe to Ticket > Property changed > cxbridge_escalate" in app.detail
    crm_only = connector(hubspot).plan_setup(setup_for(CRM_ROLE))
    assert [i.name.split(".")[0] for i in crm_only] == ["companies"] * 4
