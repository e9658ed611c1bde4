"""Unit tests of the HubSpot connector against canned, spec-validated HubSpot responses (``responses``).

Every canned body is checked against HubSpot's published description before it is served, and every request
body the connector sends is checked against the operation's request schema when the test ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import responses
from cxbridge_hubspot.connector import HubSpotConnector
from cxbridge_hubspot.sandbox.backend import HubSpotBackend

from cxbridge.sdk import (
    AmbiguousOutcome,
    AuthError,
    ConfigError,
    Customer,
    RateLimited,
    Ref,
    Secret,
    SystemConfig,
    Unavailable,
    VendorError,
)
from cxbridge.testing import CannedVendor, Sleeps, Spec, build_connector, spec_by_prefix

BASE = "https://api.hubapi.com"
TOKEN = "pat-eu1-11111111-2222-3333-4444-555555555555"

spec_for = spec_by_prefix(HubSpotBackend.spec_prefixes)


# -- realistic HubSpot bodies ---------------------------------------------------------------------------------

STAMP = "2024-05-02T09:14:03.512Z"


def record(oid: str, properties: dict[str, str], associations: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": oid,
        "properties": {"hs_object_id": oid, "createdate": STAMP, "hs_lastmodifieddate": STAMP, **properties},
        "createdAt": STAMP,
        "updatedAt": STAMP,
        "archived": False,
    }
    if associations is not None:
        body["associations"] = associations
    return body


def contact(companies: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    associations = None
    if companies is not None:
        associations = {"companies": {"results": [{"id": cid, "type": t} for cid, t in companies]}}
    return record(
        "151",
        {
            "email": "dana+ops@globex.example",
            "firstname": "Dana",
            "lastname": "Whitfield",
            "lifecyclestage": "customer",
        },
        associations,
    )


def company(deal_ids: list[str] | None = None, **properties: str) -> dict[str, Any]:
    props = {
        "name": "Globex Corporation",
        "domain": "globex.example",
        "tier": "enterprise",
        "annualrevenue": "250000.50",
        "renewal_date": "2025-03-31",
        "hubspot_owner_id": "31337",
        **properties,
    }
    associations = None
    if deal_ids:
        associations = {"deals": {"results": [{"id": d, "type": "company_to_deal"} for d in deal_ids]}}
    return record("9001", props, associations)


def deal(oid: str, name: str, stage: str, amount: str, currency: str = "EUR") -> dict[str, Any]:
    return record(
        oid,
        {
            "dealname": name,
            "dealstage": stage,
            "amount": amount,
            "closedate": "2024-09-30T00:00:00Z",
            "deal_currency_code": currency,
        },
    )


OWNER_PATH = "/crm/v3/owners/31337"
OWNER = {
    "id": "31337",
    "email": "olivia@globex-vendor.example",
    "firstName": "Olivia",
    "lastName": "Owner",
    "type": "PERSON",
    "userId": 9170001,
    "createdAt": "2024-01-10T08:00:00.000Z",
    "updatedAt": "2024-04-01T08:00:00.000Z",
    "archived": False,
}


def batch(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "status": "COMPLETE",
        "results": results,
        "startedAt": "2024-05-02T09:14:04.001Z",
        "completedAt": "2024-05-02T09:14:04.042Z",
    }


def hs_error(category: str, message: str) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
        "category": category,
    }


NOT_FOUND = hs_error("OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")
UNAUTHORIZED = hs_error(
    "INVALID_AUTHENTICATION",
    "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
)
# The 429 body of HubSpot's usage guidelines page. The description documents only 2xx and a ``default``
# Error (which requires ``category``), so this documented shape is served as is and not schema-checked.
RATE_LIMITED = {
    "status": "error",
    "message": "You have reached your ten_secondly_rolling limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24",
    "policyName": "TEN_SECONDLY_ROLLING",
    "requestId": "3d3e35b7-0dae-4b9f-a6e3-9c26e1a4e1f8",
}


# -- harness --------------------------------------------------------------------------------------------------


class Vendor(CannedVendor):
    """The canned HubSpot: queues validated responses and records what the connector sent."""

    def reply(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        status: int = 200,
        validate: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        if validate:
            spec = spec_for(path)
            template = spec.match_path(method, path)
            if status >= 400:
                # every operation's ``default`` answer is components/responses/Error, served as "*/*"
                # (which Spec.validate_response does not read as JSON): check the Error schema directly
                assert "default" in spec.doc["paths"][template][method.lower()]["responses"]
                spec.validate_schema("Error", body)
            else:
                spec.validate_response(method, template, status, body)
        url = re.compile(re.escape(BASE + path) + r"(\?.*)?$")
        self.rsps.add(method, url, json=body, status=status, headers=headers)


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    """Canned HubSpot; on teardown every JSON request body sent is validated against its operation."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        v = Vendor(rsps)
        yield v
        v.check_sent(spec_for)


def make_config(**options: Any) -> SystemConfig:
    opts: dict[str, Any] = {"access_token": Secret(TOKEN)}
    opts.update(options)
    return SystemConfig(name="hubspot", plugin="hubspot", base_url=BASE, max_retries=2, options=opts)


def build(config: SystemConfig, sleeps: Sleeps) -> HubSpotConnector:
    return build_connector(
        HubSpotConnector,
        config,
        session=requests.Session(),
        default_headers=dict(HubSpotConnector.default_headers),
        sleep=sleeps,
    )


@pytest.fixture
def hs(sleeps: Sleeps) -> HubSpotConnector:
    return build(make_config(), sleeps)


CONTACT_PATH = "/crm/v3/objects/contacts/dana%2Bops%40globex.example"
EMAIL = "dana+ops@globex.example"


# -- configuration, auth, check -------------------------------------------------------------------------------


def test_bearer_auth_and_check(vendor: Vendor) -> None:
    """check() is one cheap authenticated read, sent with the private app token as Bearer."""
    hs = HubSpotConnector.from_config(make_config(), session=requests.Session())
    vendor.reply("GET", "/crm/v3/objects/contacts", {"results": [contact()], "paging": {"next": {"after": "152"}}})
    assert hs.check() == "authenticated (private app token)"
    assert vendor.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert vendor.query(0) == {"limit": ["1"]}


def test_missing_token_is_a_config_error() -> None:
    """No access token is a ConfigError naming the system's key."""
    with pytest.raises(ConfigError, match=r"systems\.hubspot\.access_token"):
        HubSpotConnector.make_auth(make_config(access_token=None))


def test_base_url_must_be_api_hubapi_com() -> None:
    """from_config refuses any host other than api.hubapi.com."""
    config = SystemConfig(
        name="hubspot", plugin="hubspot", base_url="https://api.hubapi.com.evil.example", options=make_config().options
    )
    with pytest.raises(ConfigError):
        HubSpotConnector.from_config(config)


def test_check_401_is_an_auth_error(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A refused token raises AuthError with HubSpot's message and category, never the token."""
    vendor.reply("GET", "/crm/v3/objects/contacts", UNAUTHORIZED, status=401)
    with pytest.raises(AuthError) as info:
        hs.check()
    assert info.value.vendor_message is not None
    assert info.value.vendor_message.startswith("Authentication credentials not found")
    assert "INVALID_AUTHENTICATION" in info.value.vendor_message
    assert TOKEN not in str(info.value)
    assert len(vendor.calls) == 1


# -- find_customer --------------------------------------------------------------------------------------------


def test_find_customer_with_deals_is_four_calls(vendor: Vendor, hs: HubSpotConnector) -> None:
    """Contact by email, its primary company, its owner, then its deals in one batch read; closed deals dropped."""
    vendor.reply(
        "GET", CONTACT_PATH, contact([("777", "contact_to_company_unlabeled"), ("9001", "contact_to_company")])
    )
    vendor.reply("GET", "/crm/v3/objects/companies/9001", company(["5001", "5002", "5003"]))
    vendor.reply("GET", OWNER_PATH, OWNER)
    vendor.reply(
        "POST",
        "/crm/v3/objects/deals/batch/read",
        batch(
            [
                deal("5001", "Globex renewal 2025", "contractsent", "120000.00"),
                deal("5002", "Globex pilot", "closedwon", "5000"),
                deal("5003", "Globex add-on seats", "appointmentscheduled", "", currency=""),
            ]
        ),
    )
    customer = hs.find_customer(EMAIL)
    assert len(vendor.calls) == 4
    assert vendor.query(0) == {
        "idProperty": ["email"],
        "properties": ["email,firstname,lastname,lifecyclestage"],
        "associations": ["companies"],
    }
    assert vendor.query(1) == {
        "properties": ["name,domain,tier,annualrevenue,renewal_date,hubspot_owner_id"],
        "associations": ["deals"],
    }
    assert urlsplit(vendor.calls[2].request.url).path == OWNER_PATH
    assert vendor.sent(3) == {
        "inputs": [{"id": "5001"}, {"id": "5002"}, {"id": "5003"}],
        "properties": ["dealname", "dealstage", "amount", "closedate", "deal_currency_code"],
        "propertiesWithHistory": [],
    }
    assert customer.known
    assert customer.contact_ref == Ref("hubspot", "contact", "151")
    assert customer.company_ref == Ref("hubspot", "company", "9001")
    assert (customer.name, customer.domain, customer.tier) == ("Globex Corporation", "globex.example", "enterprise")
    assert customer.arr == Decimal("250000.50")
    assert customer.currency == "USD"
    assert (customer.owner, customer.owner_email) == ("Olivia Owner", "olivia@globex-vendor.example")
    # the owner is read once per connector: a second customer with the same owner costs no owner read
    vendor.reply("GET", CONTACT_PATH, contact([("9001", "contact_to_company")]))
    vendor.reply("GET", "/crm/v3/objects/companies/9001", company(None))
    assert hs.find_customer(EMAIL).owner == "Olivia Owner"
    assert len(vendor.calls) == 6
    assert customer.renewal_date == "2025-03-31"
    assert customer.lifecycle_stage == "customer"
    assert [(d.ref.id, d.stage, d.amount, d.currency) for d in customer.deals] == [
        ("5001", "contractsent", Decimal("120000.00"), "EUR"),
        ("5003", "appointmentscheduled", None, "USD"),
    ]
    assert customer.deals[0].name == "Globex renewal 2025"


def test_find_customer_without_deals_is_two_calls(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A company without deals costs no batch read (and an owner HubSpot does not have is shown by its id)."""
    vendor.reply("GET", CONTACT_PATH, contact([("9001", "contact_to_company")]))
    vendor.reply("GET", "/crm/v3/objects/companies/9001", company(None, annualrevenue=""))
    vendor.reply("GET", OWNER_PATH, NOT_FOUND, status=404)
    customer = hs.find_customer(EMAIL)
    assert len(vendor.calls) == 3
    assert (customer.owner, customer.owner_email) == ("31337", None)
    assert customer.deals == []
    assert customer.arr is None  # an empty HubSpot value is no value


def test_unknown_email_is_one_call_and_not_an_error(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A 404 for the contact is Customer.unknown(), not an error, after exactly one call."""
    vendor.reply("GET", CONTACT_PATH, NOT_FOUND, status=404)
    customer = hs.find_customer(EMAIL)
    assert customer == Customer.unknown()
    assert len(vendor.calls) == 1
    assert urlsplit(vendor.calls[0].request.url).path == CONTACT_PATH  # '+' and '@' encoded


def test_contact_without_company(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A contact with no company gives a known customer holding the contact only."""
    vendor.reply("GET", CONTACT_PATH, contact(None))
    customer = hs.find_customer(EMAIL)
    assert len(vendor.calls) == 1
    assert customer.known
    assert customer.company_ref is None
    assert customer.contact_ref == Ref("hubspot", "contact", "151")


def search_page(*ids: str) -> dict[str, Any]:
    return {
        "total": len(ids),
        "results": [record(i, {"name": "Globex Corporation", "domain": "globex.example"}) for i in ids],
    }


def test_find_company_by_domain(vendor: Vendor, hs: HubSpotConnector) -> None:
    """One search on ``domain`` EQ, then the company read of ``find_customer``; no contact."""
    vendor.reply("POST", "/crm/v3/objects/companies/search", search_page("9001"))
    vendor.reply("GET", "/crm/v3/objects/companies/9001", company(None))
    vendor.reply("GET", OWNER_PATH, OWNER)
    customer = hs.find_company(domain="globex.example")
    assert vendor.sent(0) == {
        "filterGroups": [{"filters": [{"propertyName": "domain", "operator": "EQ", "value": "globex.example"}]}],
        "properties": ["name", "domain"],
        "sorts": ["hs_object_id"],
        "limit": 2,
        "after": "0",
    }
    assert (customer.known, customer.company_ref, customer.contact_ref) == (
        True,
        Ref("hubspot", "company", "9001"),
        None,
    )
    assert customer.owner == "Olivia Owner"


@pytest.mark.parametrize("ids", [(), ("9001", "9002")])
def test_find_company_none_or_ambiguous_is_unknown(vendor: Vendor, hs: HubSpotConnector, ids: tuple[str, ...]) -> None:
    """No company, or two with that name: unknown after the one search (a guess would put wrong revenue on it)."""
    vendor.reply("POST", "/crm/v3/objects/companies/search", search_page(*ids))
    assert hs.find_company(name="Globex Corporation") == Customer.unknown()
    assert len(vendor.calls) == 1
    assert vendor.sent(0)["filterGroups"][0]["filters"][0]["propertyName"] == "name"


def test_property_names_are_configurable(vendor: Vendor, sleeps: Sleeps) -> None:
    """Admins name their own tier/ARR/renewal/owner properties and closed stages."""
    hs = build(
        make_config(
            tier_property="customer_tier",
            arr_property="arr_eur",
            renewal_date_property="contract_end",
            owner_property="csm_owner",
            currency="EUR",
            closed_deal_stages=["lost"],
        ),
        sleeps,
    )
    vendor.reply("GET", CONTACT_PATH, contact([("9001", "contact_to_company")]))
    vendor.reply(
        "GET",
        "/crm/v3/objects/companies/9001",
        company(["5002"], customer_tier="gold", arr_eur="99000", contract_end="1767139200000", csm_owner="42"),
    )
    vendor.reply("POST", "/crm/v3/objects/deals/batch/read", batch([deal("5002", "Pilot", "closedwon", "5000")]))
    customer = hs.find_customer(EMAIL)
    assert vendor.query(1)["properties"] == ["name,domain,customer_tier,arr_eur,contract_end,csm_owner"]
    assert (customer.tier, customer.arr, customer.currency, customer.owner) == ("gold", Decimal(99000), "EUR", "42")
    assert customer.renewal_date == "2025-12-31"  # epoch milliseconds read as a date
    assert [d.stage for d in customer.deals] == ["closedwon"]  # only "lost" is closed here


@pytest.mark.parametrize("arr", ["n/a", "NaN", "Infinity"])
def test_unreadable_arr_is_none(vendor: Vendor, hs: HubSpotConnector, arr: str) -> None:
    """An ARR value that is not a finite number is None, not a crash."""
    vendor.reply("GET", CONTACT_PATH, contact([("9001", "contact_to_company")]))
    vendor.reply("GET", "/crm/v3/objects/companies/9001", company(None, annualrevenue=arr))
    vendor.reply("GET", OWNER_PATH, OWNER)
    assert hs.find_customer(EMAIL).arr is None


def test_find_customer_retries_a_429(vendor: Vendor, hs: HubSpotConnector, sleeps: Sleeps) -> None:
    """A 429 (HubSpot's rate-limit body) is backed off and retried."""
    vendor.reply("GET", CONTACT_PATH, RATE_LIMITED, status=429, validate=False)
    vendor.reply("GET", CONTACT_PATH, contact(None))
    assert hs.find_customer(EMAIL).known
    assert len(vendor.calls) == 2
    assert len(sleeps) == 1


def test_persistent_429_is_rate_limited(vendor: Vendor, hs: HubSpotConnector) -> None:
    """When the limit outlasts the retry budget, RateLimited carries HubSpot's words."""
    for _ in range(3):
        vendor.reply("GET", CONTACT_PATH, RATE_LIMITED, status=429, validate=False, headers={"Retry-After": "1"})
    with pytest.raises(RateLimited) as info:
        hs.find_customer(EMAIL)
    assert info.value.vendor_message == (
        "You have reached your ten_secondly_rolling limit. (RATE_LIMIT, TEN_SECONDLY_ROLLING)"
    )


def test_find_customer_5xx_then_success(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A 502 on a read is retried."""
    vendor.reply("GET", CONTACT_PATH, hs_error("INTERNAL_ERROR", "internal error"), status=502)
    vendor.reply("GET", CONTACT_PATH, contact(None))
    assert hs.find_customer(EMAIL).contact_ref == Ref("hubspot", "contact", "151")


def test_find_customer_5xx_exhausted(vendor: Vendor, hs: HubSpotConnector) -> None:
    """Persistent 503s raise Unavailable after the retry budget."""
    for _ in range(3):
        vendor.reply("GET", CONTACT_PATH, hs_error("INTERNAL_ERROR", "Service unavailable"), status=503)
    with pytest.raises(Unavailable):
        hs.find_customer(EMAIL)


def test_not_an_email_makes_no_call(hs: HubSpotConnector) -> None:
    """A requester without an email address is an unknown customer, without asking HubSpot."""
    with responses.RequestsMock():
        assert hs.find_customer("") == Customer.unknown()


# -- add_note -------------------------------------------------------------------------------------------------


def known_customer() -> Customer:
    return Customer(company_ref=Ref("hubspot", "company", "9001"), contact_ref=Ref("hubspot", "contact", "151"))


def created_note(body: str) -> dict[str, Any]:
    return record("70042", {"hs_note_body": body, "hs_timestamp": STAMP})


def test_add_note_associates_contact_company_and_ticket(vendor: Vendor, hs: HubSpotConnector) -> None:
    """One POST: the note with the marker, on the contact (202), company (190) and HubSpot ticket (228)."""
    vendor.reply("POST", "/crm/v3/objects/notes", created_note("x"), status=201)
    ref = hs.add_note(
        known_customer(), "<p>Escalated to ENG-42</p>", marker="esc-4211-ENG-42", ticket=Ref("hubspot", "ticket", "88")
    )
    assert ref == Ref("hubspot", "note", "70042")
    assert len(vendor.calls) == 1
    sent = vendor.sent(0)
    assert sent["properties"]["hs_note_body"] == "<p>Escalated to ENG-42</p><p>cxbridge: esc-4211-ENG-42</p>"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", sent["properties"]["hs_timestamp"])
    assert sent["associations"] == [
        {"to": {"id": "151"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]},
        {"to": {"id": "9001"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 190}]},
        {"to": {"id": "88"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 228}]},
    ]


def test_add_note_ignores_a_ticket_of_another_system(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A Zendesk ticket ref is not a HubSpot ticket: no 228 association."""
    vendor.reply("POST", "/crm/v3/objects/notes", created_note("x"), status=201)
    hs.add_note(known_customer(), "<p>x</p>", marker="m1", ticket=Ref("zendesk", "ticket", "4211"))
    assert [a["to"]["id"] for a in vendor.sent(0)["associations"]] == ["151", "9001"]


def test_add_note_escapes_the_marker(vendor: Vendor, hs: HubSpotConnector) -> None:
    """The marker is data: HTML in it is escaped."""
    vendor.reply("POST", "/crm/v3/objects/notes", created_note("x"), status=201)
    hs.add_note(known_customer(), "", marker="<b>m</b>")
    assert vendor.sent(0)["properties"]["hs_note_body"] == "<p>cxbridge: &lt;b&gt;m&lt;/b&gt;</p>"


def test_add_note_never_retries_an_unknown_outcome(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A 500 on the create is AmbiguousOutcome after one call (find_note resolves it later)."""
    vendor.reply("POST", "/crm/v3/objects/notes", hs_error("INTERNAL_ERROR", "internal error"), status=500)
    with pytest.raises(AmbiguousOutcome):
        hs.add_note(known_customer(), "<p>x</p>", marker="m1")
    assert len(vendor.calls) == 1


def test_add_note_retries_a_429(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A 429 means the create was not processed: it is retried, and one note results."""
    vendor.reply(
        "POST", "/crm/v3/objects/notes", RATE_LIMITED, status=429, validate=False, headers={"Retry-After": "2"}
    )
    vendor.reply("POST", "/crm/v3/objects/notes", created_note("x"), status=201)
    assert hs.add_note(known_customer(), "<p>x</p>", marker="m1") == Ref("hubspot", "note", "70042")
    assert len(vendor.calls) == 2


def test_add_note_for_an_unknown_customer_is_refused(hs: HubSpotConnector) -> None:
    """A note on no timeline is useless: ValueError, no call."""
    with responses.RequestsMock(), pytest.raises(ValueError, match="unknown"):
        hs.add_note(Customer.unknown(), "<p>x</p>", marker="m1")


# -- find_note ------------------------------------------------------------------------------------------------


def note_links(ids: list[str], after: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "results": [
            {"toObjectId": i, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 201}]} for i in ids
        ]
    }
    if after:
        body["paging"] = {
            "next": {"after": after, "link": f"{BASE}/crm/v4/objects/contacts/151/associations/notes?after={after}"}
        }
    return body


def test_find_note_by_marker(vendor: Vendor, hs: HubSpotConnector) -> None:
    """The contact's notes are listed (v4 associations, paginated) and batch-read to find the marker."""
    path = "/crm/v4/objects/contacts/151/associations/notes"
    vendor.reply("GET", path, note_links(["70001", "70002"], after="MjA="))
    vendor.reply("GET", path, note_links(["70042"]))
    vendor.reply(
        "POST",
        "/crm/v3/objects/notes/batch/read",
        batch(
            [
                record("70042", {"hs_note_body": "<p>Escalated</p><p>cxbridge: esc-4211-ENG-42</p>"}),
                record("70002", {"hs_note_body": "<p>call notes</p>"}),
                record("70001", {"hs_note_body": "<p>cxbridge: esc-9-ENG-1</p>"}),
            ]
        ),
    )
    assert hs.find_note(known_customer(), "esc-4211-ENG-42") == Ref("hubspot", "note", "70042")
    assert vendor.query(0) == {"limit": ["500"]}
    assert vendor.query(1) == {"limit": ["500"], "after": ["MjA="]}
    assert vendor.sent(2)["inputs"] == [{"id": "70042"}, {"id": "70002"}, {"id": "70001"}]  # newest first
    assert vendor.sent(2)["properties"] == ["hs_note_body"]


@pytest.mark.parametrize("marker", ["esc-4211-ENG-42", "esc-9-ENG-", "esc-9-ENG-1"[:-1]])
def test_find_note_absent(vendor: Vendor, hs: HubSpotConnector, marker: str) -> None:
    """No note with the marker gives None; a marker that is a prefix of another one does not match."""
    vendor.reply("GET", "/crm/v4/objects/contacts/151/associations/notes", note_links(["70001"]))
    vendor.reply(
        "POST",
        "/crm/v3/objects/notes/batch/read",
        batch([record("70001", {"hs_note_body": "<p>cxbridge: esc-9-ENG-1</p>"})]),
    )
    assert hs.find_note(known_customer(), marker) is None


def test_find_note_matches_an_unescaped_marker(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A marker with HTML-special characters is found whether HubSpot keeps the escaping or not."""
    vendor.reply("GET", "/crm/v4/objects/contacts/151/associations/notes", note_links(["70001"]))
    vendor.reply(
        "POST",
        "/crm/v3/objects/notes/batch/read",
        batch([record("70001", {"hs_note_body": "<div><p>cxbridge: a&b</p></div>"})]),
    )
    assert hs.find_note(known_customer(), "a&b") == Ref("hubspot", "note", "70001")


def test_find_note_without_notes_makes_no_batch_read(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A contact without notes costs one call."""
    vendor.reply("GET", "/crm/v4/objects/contacts/151/associations/notes", {"results": []})
    assert hs.find_note(known_customer(), "m") is None
    assert len(vendor.calls) == 1


def test_find_note_unknown_customer(hs: HubSpotConnector) -> None:
    """An unknown customer has no notes: None without a call."""
    with responses.RequestsMock():
        assert hs.find_note(Customer.unknown(), "m") is None


# -- error_message --------------------------------------------------------------------------------------------


def _response(body: Any, status: int = 400, *, raw: bytes | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = raw if raw is not None else json.dumps(body).encode()
    r.headers["Content-Type"] = "application/json"
    return r


def test_error_message_validation_error_with_details() -> None:
    """A VALIDATION_ERROR names the category and each detail."""
    body = {
        "status": "error",
        "message": "Property values were not valid",
        "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf",
        "category": "VALIDATION_ERROR",
        "errors": [{"message": 'Property "tier" does not exist', "code": "PROPERTY_DOESNT_EXIST"}],
    }
    Spec("hubspot-contacts").validate_schema("Error", body)
    assert HubSpotConnector.error_message(_response(body)) == (
        'Property values were not valid (VALIDATION_ERROR): Property "tier" does not exist'
    )


def test_error_message_conflict() -> None:
    """409 CONFLICT keeps HubSpot's message (it names the existing id)."""
    body = hs_error("CONFLICT", "Contact already exists. Existing ID: 151")
    Spec("hubspot-contacts").validate_schema("Error", body)
    assert HubSpotConnector.error_message(_response(body, 409)) == "Contact already exists. Existing ID: 151 (CONFLICT)"


@pytest.mark.parametrize("raw", [b"<html/>", b"[]", b"{}", b'{"message": 3}', b"\xff"])
def test_error_message_none_for_other_bodies(raw: bytes) -> None:
    """Bodies without HubSpot's words give None, never an exception."""
    assert HubSpotConnector.error_message(_response(None, raw=raw)) is None


def test_non_json_error_body_still_fails_cleanly(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A 400 with an HTML body raises VendorError with the status, not a parsing error."""
    vendor.rsps.add(
        "GET", BASE + "/crm/v3/objects/contacts", body="<html>Bad Request</html>", status=400, content_type="text/html"
    )
    with pytest.raises(VendorError) as info:
        hs.check()
    assert info.value.status == 400


def test_connector_declares_its_contract() -> None:
    """System key, role, cloud host and config keys are what the core and admins rely on."""
    assert HubSpotConnector.system == "hubspot"
    assert "crm" in HubSpotConnector.roles
    assert HubSpotConnector.cloud_domains == ("api.hubapi.com",)
    keys = HubSpotConnector.config_keys
    assert keys["access_token"].required
    assert keys["access_token"].type is Secret
    assert keys["closed_deal_stages"].default == ["closedwon", "closedlost"]
    assert keys["arr_property"].default == "annualrevenue"
