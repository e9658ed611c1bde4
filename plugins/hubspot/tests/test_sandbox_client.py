"""HubSpot's own Python client (hubspot-api-client) against the emulator served on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import hubspot
import pytest
import requests
from cxbridge_hubspot.sandbox.backend import HubSpotBackend
from hubspot.crm.associations.v4 import AssociationSpec as V4AssociationSpec
from hubspot.crm.companies import ApiException as CompaniesApiException
from hubspot.crm.contacts import (
    ApiException,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects.notes import (
    AssociationSpec,
    PublicAssociationsForObject,
    PublicObjectId,
)
from hubspot.crm.objects.notes import (
    SimplePublicObjectInputForCreate as NoteInput,
)
from hubspot.crm.tickets import SimplePublicObjectInputForCreate as TicketInput
from hubspot.webhooks import SettingsChangeRequest, SubscriptionCreateRequest, ThrottlingSettings
from urllib3.util.retry import Retry

from cxbridge.testing import ServedVendors, serve_vendors

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def served() -> Iterator[ServedVendors]:
    with serve_vendors(["hubspot"]) as vendors:
        yield vendors


@pytest.fixture
def backend(served: ServedVendors) -> HubSpotBackend:
    served.reset()
    served.seed("demo")
    hub = served["hubspot"]
    assert isinstance(hub, HubSpotBackend)
    return hub


def make_client(backend: HubSpotBackend, token: str | None = None) -> hubspot.Client:
    """The SDK pointed at the emulator, with urllib3's retries off so each call is one request."""
    return hubspot.Client.create(
        access_token=token or backend.access_token,
        host=backend.base_url,
        retry=Retry(total=0, redirect=0, raise_on_status=False),
    )


@pytest.fixture
def client(backend: HubSpotBackend) -> hubspot.Client:
    return make_client(backend)


def test_contact_by_email_with_company_association(client: hubspot.Client, backend: HubSpotBackend) -> None:
    """``get_by_id(email, id_property="email", associations=["companies"])`` parses into the SDK's models."""
    contact = client.crm.contacts.basic_api.get_by_id(
        "ada@acme.example",
        id_property="email",
        properties=["email", "firstname", "lastname"],
        associations=["companies"],
    )
    assert contact.properties["firstname"] == "Ada"
    assert contact.created_at.tzinfo is not None
    acme = next(o.id for o in backend.portal.objects["companies"].values() if o.properties["name"] == "Acme Corp")
    assert {a.id for a in contact.associations["companies"].results} == {acme}
    company = client.crm.companies.basic_api.get_by_id(acme, properties=["tier", "annualrevenue", "renewal_date"])
    assert (company.properties["tier"], company.properties["annualrevenue"], company.properties["renewal_date"]) == (
        "strategic",
        "480000",
        "2027-01-31",
    )


def test_create_and_update_contact(client: hubspot.Client) -> None:
    """Create then update through the SDK; the update is visible on the next read."""
    created = client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "katherine@nasa.example", "firstname": "Katherine"})
    )
    assert created.properties["email"] == "katherine@nasa.example"
    updated = client.crm.contacts.basic_api.update(
        created.id, SimplePublicObjectInput(properties={"lastname": "Johnson"})
    )
    assert updated.properties["lastname"] == "Johnson"
    again = client.crm.contacts.basic_api.get_by_id(created.id, properties=["lastname"])
    assert again.properties["lastname"] == "Johnson"
    with pytest.raises(ApiException) as conflict:
        client.crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "katherine@nasa.example"})
        )
    assert conflict.value.status == 409
    assert f"Existing ID: {created.id}" in conflict.value.body


def test_search_with_filter_groups_and_paging(client: hubspot.Client) -> None:
    """``do_search`` with two OR'ed groups, one result per page, following ``paging.next.after``."""
    request = PublicObjectSearchRequest(
        filter_groups=[
            FilterGroup(filters=[Filter(property_name="email", operator="CONTAINS_TOKEN", value="*@acme.example")]),
            FilterGroup(filters=[Filter(property_name="lastname", operator="EQ", value="Hopper")]),
        ],
        properties=["email"],
        sorts=["email"],
        limit=1,
    )
    emails: list[str] = []
    total = None
    for _ in range(5):
        page = client.crm.contacts.search_api.do_search(public_object_search_request=request)
        total = page.total
        emails.extend(r.properties["email"] for r in page.results)
        if page.paging is None or page.paging.next is None:
            break
        request.after = page.paging.next.after
    assert total == 2
    assert emails == ["ada@acme.example", "grace@globex.example"]


def test_batch_read_with_and_without_misses(client: hubspot.Client, backend: HubSpotBackend) -> None:
    """Batch read parses both the 200 and the 207 (with errors) answer."""
    ids = [o.id for o in backend.portal.objects["contacts"].values()]
    full = client.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in ids], properties=["email"], properties_with_history=[]
        )
    )
    assert sorted(r.id for r in full.results) == sorted(ids)
    partial = client.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=ids[0]), SimplePublicObjectId(id="777777")],
            properties=["email"],
            properties_with_history=[],
        )
    )
    assert [r.id for r in partial.results] == [ids[0]]
    assert partial.num_errors == 1
    assert partial.errors[0].context == {"ids": ["777777"]}


def test_companies_and_deals_basic_api(client: hubspot.Client) -> None:
    """Companies page with ``after``; deals read by id with amounts as strings."""
    names: list[str] = []
    after = None
    for _ in range(5):
        page = client.crm.companies.basic_api.get_page(limit=2, after=after, properties=["name"])
        names.extend(c.properties["name"] for c in page.results)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert names == ["Acme Corp", "Globex", "Initech"]
    deals = client.crm.deals.basic_api.get_page(
        properties=["dealname", "amount", "dealstage"], associations=["companies"]
    )
    by_name = {d.properties["dealname"]: d for d in deals.results}
    deal = client.crm.deals.basic_api.get_by_id(by_name["Globex renewal"].id, properties=["amount"])
    assert deal.properties["amount"] == "150000"
    assert by_name["Acme expansion 2027"].associations["companies"].results[0].type == "deal_to_company"


def test_note_with_associations_then_listed_from_the_contact(client: hubspot.Client, backend: HubSpotBackend) -> None:
    """A note created with associations shows up through ``associations.v4.basic_api.get_page``."""
    grace = next(
        o.id for o in backend.portal.objects["contacts"].values() if o.properties["email"] == "grace@globex.example"
    )
    globex = next(o.id for o in backend.portal.objects["companies"].values() if o.properties["name"] == "Globex")
    note = client.crm.objects.notes.basic_api.create(
        NoteInput(
            properties={"hs_timestamp": "2026-01-02T03:04:05Z", "hs_note_body": "Escalated as ENG-7"},
            associations=[
                PublicAssociationsForObject(
                    to=PublicObjectId(id=grace),
                    types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=202)],
                ),
                PublicAssociationsForObject(
                    to=PublicObjectId(id=globex),
                    types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=190)],
                ),
            ],
        )
    )
    for from_type, record in (("contacts", grace), ("companies", globex)):
        page = client.crm.associations.v4.basic_api.get_page(from_type, record, "notes")
        assert [r.to_object_id for r in page.results] == [note.id]
        assert page.results[0].association_types[0].type_id in (201, 189)


def test_associations_v4_create_and_labels(client: hubspot.Client, backend: HubSpotBackend) -> None:
    """``create_default``, ``create`` with a spec, and the labels between two types."""
    linus = next(
        o.id for o in backend.portal.objects["contacts"].values() if o.properties["email"] == "linus@initech.example"
    )
    deal = next(iter(backend.portal.objects["deals"]))
    made = client.crm.associations.v4.basic_api.create_default("deals", deal, "contacts", linus)
    assert made.status == "COMPLETE"
    labelled = client.crm.associations.v4.basic_api.create(
        "contacts",
        linus,
        "companies",
        next(o.id for o in backend.portal.objects["companies"].values() if o.properties["name"] == "Globex"),
        [V4AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=1)],
    )
    assert labelled.labels == ["Primary"]
    rows = client.crm.associations.v4.basic_api.get_page("contacts", linus, "deals").results
    assert [r.to_object_id for r in rows] == [deal]
    labels = client.crm.associations.v4.schema.definitions_api.get_all("contacts", "companies")
    assert {(r.type_id, r.label) for r in labels.results} == {(279, None), (1, "Primary")}


def test_ticket_create(client: hubspot.Client) -> None:
    """A HubSpot ticket with its pipeline, stage and subject."""
    ticket = client.crm.tickets.basic_api.create(
        TicketInput(
            properties={
                "subject": "Webhook retries",
                "hs_pipeline": "0",
                "hs_pipeline_stage": "1",
                "hs_ticket_priority": "HIGH",
            }
        )
    )
    assert ticket.properties["hs_pipeline_stage"] == "1"


def test_not_found_and_unauthorised_raise_api_exception(client: hubspot.Client, backend: HubSpotBackend) -> None:
    """404 and 401 surface as the SDK's ApiException with the status and HubSpot's body."""
    with pytest.raises(ApiException) as missing:
        client.crm.contacts.basic_api.get_by_id("999999")
    assert missing.value.status == 404
    assert '"OBJECT_NOT_FOUND"' in missing.value.body
    bad = make_client(backend, token="pat-na1-00000000-0000-0000-0000-000000000000")
    with pytest.raises(CompaniesApiException) as denied:
        bad.crm.companies.basic_api.get_page()
    assert denied.value.status == 401
    assert '"INVALID_AUTHENTICATION"' in denied.value.body


def test_rate_limited_call_raises_429_with_retry_after(client: hubspot.Client, backend: HubSpotBackend) -> None:
    """Under an enforced limit the SDK sees 429 with Retry-After and HubSpot's rate-limit headers."""
    assert requests.post(f"{backend.base_url}/_sandbox/rate-limit", json={"limit": "1/min"}).status_code == 200
    client.crm.companies.basic_api.get_page()
    with pytest.raises(CompaniesApiException) as limited:
        client.crm.companies.basic_api.get_page()
    assert limited.value.status == 429
    assert 1 <= int(limited.value.headers["Retry-After"]) <= 60
    assert limited.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert '"RATE_LIMIT"' in limited.value.body


def test_fail_next_over_http(client: hubspot.Client, backend: HubSpotBackend) -> None:
    """An injected 502 reaches the SDK once; the call after it succeeds."""
    requests.post(f"{backend.base_url}/_sandbox/fail-next", json={"status": 502, "method": "GET"})
    with pytest.raises(CompaniesApiException) as failed:
        client.crm.companies.basic_api.get_page()
    assert failed.value.status == 502
    assert len(client.crm.companies.basic_api.get_page().results) == 3


def test_webhooks_management_with_developer_key(backend: HubSpotBackend) -> None:
    """The SDK's webhooks API (``?hapikey=``) configures settings and subscriptions."""
    dev = hubspot.Client.create(api_key=backend.developer_api_key, host=backend.base_url, retry=Retry(total=0))
    app = backend.app_id
    settings = dev.webhooks.settings_api.configure(
        app,
        SettingsChangeRequest(
            target_url="http://127.0.0.1:9/hooks", throttling=ThrottlingSettings(max_concurrent_requests=5)
        ),
    )
    assert settings.target_url == "http://127.0.0.1:9/hooks"
    created = dev.webhooks.subscriptions_api.create(
        app, SubscriptionCreateRequest(event_type="deal.propertyChange", property_name="dealstage", active=True)
    )
    assert created.event_type == "deal.propertyChange"
    listed = dev.webhooks.subscriptions_api.get_all(app)
    assert created.id in {s.id for s in listed.results}
