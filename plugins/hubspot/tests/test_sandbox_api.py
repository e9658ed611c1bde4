"""The HubSpot emulator from outside, in-process: every answer checked against HubSpot's published specs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests
from cxbridge_hubspot.sandbox.backend import HubSpotBackend
from cxbridge_hubspot.sandbox.models import OBJECT_TYPES

from cxbridge.testing import Spec, mock_vendors

BASE = "https://api.hubapi.com"

SPEC_FOR_TYPE = {
    "contacts": "hubspot-contacts",
    "companies": "hubspot-companies",
    "deals": "hubspot-deals",
    "notes": "hubspot-notes",
    "tickets": "hubspot-tickets",
}


class Clock:
    """A clock that moves one millisecond per reading, so timestamps are distinct and ordered."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.001
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Api:
    """A thin caller for the emulator that validates every answer against the vendor's spec."""

    def __init__(self, backend: HubSpotBackend) -> None:
        self.backend = backend
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {backend.access_token}"

    def call(
        self, method: str, path: str, spec: str | None = None, *, validate: bool = True, **kwargs: Any
    ) -> requests.Response:
        response = self.session.request(method, BASE + path, **kwargs)
        if validate:
            check(response, spec)
        return response


def spec_for(path: str) -> tuple[Spec, str]:
    """The spec and the concrete path to match for a request path."""
    if path.startswith("/crm/v3/objects/"):
        type_name = path.split("/")[4]
        if type_name in ("deals", "0-3"):
            return Spec("hubspot-deals"), path.replace("/objects/deals", "/objects/0-3", 1)
        return Spec(SPEC_FOR_TYPE.get(type_name, "hubspot-objects")), path
    if path.startswith("/crm/v3/properties/"):
        return Spec("hubspot-properties"), path
    if path.startswith("/crm/v4/"):
        if path.endswith("/labels"):
            parts = path.split("/")
            return Spec("hubspot-associations-schema"), f"/crm/associations/v4/{parts[4]}/{parts[5]}/labels"
        return Spec("hubspot-associations"), path
    if path.startswith("/crm/associations/v4/"):
        return Spec("hubspot-associations-schema"), path
    return Spec("hubspot-webhooks"), path


def check(response: requests.Response, spec_name: str | None = None) -> None:
    """Validate a response body against the operation's schema for its status."""
    request = response.request
    path = (request.path_url or "").split("?", 1)[0]
    path = requests.utils.unquote(path)
    spec, concrete = spec_for(path)
    if spec_name:
        spec = Spec(spec_name)
    template = spec.match_path(request.method or "GET", concrete)
    body = response.json() if response.content else None
    if response.status_code >= 400:
        # Every operation documents errors as ``default: $ref #/components/responses/Error`` (media ``*/*``).
        assert "default" in spec.doc["paths"][template][(request.method or "GET").lower()]["responses"]
        spec.validate_schema("Error", body)
        return
    spec.validate_response(request.method or "GET", template, response.status_code, body)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(clock: Clock) -> Iterator[HubSpotBackend]:
    hub = HubSpotBackend(clock=clock)
    with mock_vendors(backends={"hubspot": hub}, seed="demo"):
        yield hub


@pytest.fixture
def api(backend: HubSpotBackend) -> Api:
    return Api(backend)


def ids_of(backend: HubSpotBackend, type_name: str, prop: str, value: str) -> str:
    for obj in backend.portal.objects[type_name].values():
        if obj.properties.get(prop) == value:
            return obj.id
    raise AssertionError(f"no {type_name} with {prop}={value}")


# -- objects v3 ---------------------------------------------------------------------------------------------------


def test_get_contact_by_email_with_properties_and_associations(api: Api, backend: HubSpotBackend) -> None:
    """A contact is found by email; properties come as repeated keys and comma lists; associations show both types."""
    response = api.call(
        "GET",
        "/crm/v3/objects/contacts/ada%40acme.example?idProperty=email&properties=firstname,lastname"
        "&properties=email&properties=not_a_property&associations=companies&associations=deals",
    )
    assert response.status_code == 200
    body = response.json()
    acme = ids_of(backend, "companies", "domain", "acme.example")
    assert body["id"] == ids_of(backend, "contacts", "email", "ada@acme.example")
    props = body["properties"]
    assert {k: props[k] for k in ("firstname", "lastname", "email")} == {
        "firstname": "Ada",
        "lastname": "Lovelace",
        "email": "ada@acme.example",
    }
    assert props["hs_object_id"] == body["id"]
    assert "createdate" in props
    assert "lastmodifieddate" in props
    assert "not_a_property" not in props
    assert "jobtitle" not in props
    assert all(isinstance(v, str) for v in props.values())
    assert body["createdAt"].endswith("Z")
    assert len(body["createdAt"]) == 24
    companies = body["associations"]["companies"]["results"]
    assert {(r["id"], r["type"]) for r in companies} == {
        (acme, "contact_to_company"),
        (acme, "contact_to_company_unlabeled"),
    }
    assert [r["type"] for r in body["associations"]["deals"]["results"]] == ["contact_to_deal"]


def test_default_properties_when_none_are_asked_for(api: Api) -> None:
    """Without ``properties`` a company carries HubSpot's defaults, not every value."""
    body = api.call("GET", "/crm/v3/objects/companies?limit=1").json()
    assert set(body["results"][0]["properties"]) == {
        "createdate",
        "domain",
        "hs_lastmodifieddate",
        "hs_object_id",
        "name",
    }


def test_unknown_id_is_404_object_not_found(api: Api) -> None:
    """A missing record answers 404 with HubSpot's Error body."""
    response = api.call("GET", "/crm/v3/objects/contacts/nobody%40nowhere.example?idProperty=email")
    assert response.status_code == 404
    body = response.json()
    assert body["category"] == "OBJECT_NOT_FOUND"
    uuid.UUID(body["correlationId"])
    assert api.call("GET", "/crm/v3/objects/contacts/999999").status_code == 404


def test_missing_or_wrong_token_is_401(backend: HubSpotBackend) -> None:
    """No bearer token, a wrong one, or a legacy hapikey: 401 INVALID_AUTHENTICATION."""
    for headers, query in (
        ({}, ""),
        ({"Authorization": "Bearer pat-na1-wrong"}, ""),
        ({}, f"?hapikey={backend.developer_api_key}"),
    ):
        response = requests.get(f"{BASE}/crm/v3/objects/contacts{query}", headers=headers)
        assert response.status_code == 401
        check(response)
        assert response.json()["category"] == "INVALID_AUTHENTICATION"
        assert response.json()["message"].startswith("Authentication credentials not found")


def test_create_contact_then_duplicate_email_conflicts(api: Api) -> None:
    """Create answers 201 with string values; a second contact with that email is 409 naming the first."""
    response = api.call(
        "POST",
        "/crm/v3/objects/contacts",
        json={"properties": {"email": "Margaret@Hamilton.example", "firstname": "Margaret", "lastname": "Hamilton"}},
    )
    assert response.status_code == 201
    created = response.json()
    assert created["properties"]["email"] == "margaret@hamilton.example"
    assert created["properties"]["hs_object_id"] == created["id"]
    again = api.call(
        "POST",
        "/crm/v3/objects/contacts",
        json={"properties": {"email": "margaret@hamilton.example"}, "associations": []},
    )
    assert again.status_code == 409
    assert again.json()["category"] == "CONFLICT"
    assert f"Existing ID: {created['id']}" in again.json()["message"]


def test_create_rejects_unknown_read_only_and_invalid_values(api: Api) -> None:
    """Unknown or read-only properties and invalid options are one 400 listing each problem."""
    response = api.call(
        "POST",
        "/crm/v3/objects/tickets",
        json={
            "properties": {
                "subject": "x",
                "hs_pipeline": "0",
                "hs_pipeline_stage": "99",
                "hs_object_id": "5",
                "colour": "red",
            }
        },
    )
    assert response.status_code == 400
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    codes = {e["context"]["propertyName"][0]: e["code"] for e in body["errors"]}
    assert codes == {
        "hs_pipeline_stage": "INVALID_OPTION",
        "hs_object_id": "READ_ONLY_VALUE",
        "colour": "PROPERTY_DOESNT_EXIST",
    }


def test_ticket_needs_pipeline_stage_and_subject(api: Api) -> None:
    """A ticket without hs_pipeline, hs_pipeline_stage and subject is refused; with them it is created."""
    missing = api.call("POST", "/crm/v3/objects/tickets", json={"properties": {"content": "hello"}})
    assert missing.status_code == 400
    named = {e["context"]["propertyName"][0] for e in missing.json()["errors"]}
    assert named == {"hs_pipeline", "hs_pipeline_stage", "subject"}
    ok = api.call(
        "POST",
        "/crm/v3/objects/tickets",
        json={
            "properties": {
                "subject": "Login fails",
                "hs_pipeline": "0",
                "hs_pipeline_stage": "1",
                "escalate_to_engineering": True,
            }
        },
    )
    assert ok.status_code == 201
    assert ok.json()["properties"]["escalate_to_engineering"] == "true"


def test_patch_by_id_and_by_email(api: Api, backend: HubSpotBackend, clock: Clock) -> None:
    """PATCH sets values, an empty string clears one, and the modified date moves on."""
    contact_id = ids_of(backend, "contacts", "email", "grace@globex.example")
    before = api.call("GET", f"/crm/v3/objects/contacts/{contact_id}").json()
    clock.advance(5)
    response = api.call(
        "PATCH",
        f"/crm/v3/objects/contacts/{contact_id}",
        json={"properties": {"jobtitle": "Rear Admiral", "phone": "+1 555 0100"}},
    )
    assert response.status_code == 200
    assert response.json()["properties"]["jobtitle"] == "Rear Admiral"
    assert response.json()["updatedAt"] > before["updatedAt"]
    by_email = api.call(
        "PATCH", "/crm/v3/objects/contacts/grace%40globex.example?idProperty=email", json={"properties": {"phone": ""}}
    )
    assert by_email.status_code == 200
    assert "phone" not in by_email.json()["properties"]
    assert by_email.json()["id"] == contact_id
    history = api.call("GET", f"/crm/v3/objects/contacts/{contact_id}?propertiesWithHistory=jobtitle").json()
    assert [h["value"] for h in history["propertiesWithHistory"]["jobtitle"]] == ["Rear Admiral", "Head of Data"]


def test_patch_to_a_taken_email_conflicts(api: Api, backend: HubSpotBackend) -> None:
    """Changing a contact's email to another contact's is 409."""
    grace = ids_of(backend, "contacts", "email", "grace@globex.example")
    response = api.call(
        "PATCH", f"/crm/v3/objects/contacts/{grace}", json={"properties": {"email": "ADA@acme.example"}}
    )
    assert response.status_code == 409


def test_deals_answer_on_the_type_id_path_too(api: Api) -> None:
    """Deals are reachable as ``deals`` and as ``0-3`` (the spec's own path)."""
    by_name = api.call("GET", "/crm/v3/objects/deals?limit=100").json()
    by_id = api.call("GET", "/crm/v3/objects/0-3?limit=100").json()
    assert [d["id"] for d in by_name["results"]] == [d["id"] for d in by_id["results"]]
    names = {d["properties"]["dealname"]: d["properties"] for d in by_id["results"]}
    assert names["Acme expansion 2027"]["dealstage"] == "contractsent"
    assert names["Acme expansion 2027"]["amount"] == "120000"
    assert names["Globex renewal"]["dealstage"] == "qualifiedtobuy"


def test_list_pages_follow_the_next_link(api: Api) -> None:
    """Lists page with ``after``; the next link is absolute on the request's host; every record comes once."""
    for index in range(7):
        api.call("POST", "/crm/v3/objects/contacts", json={"properties": {"email": f"p{index}@paging.example"}})
    seen: list[str] = []
    path = "/crm/v3/objects/contacts?limit=3&properties=email"
    for _ in range(10):
        body = api.call("GET", path).json()
        assert len(body["results"]) <= 3
        seen.extend(r["id"] for r in body["results"])
        nxt = body.get("paging", {}).get("next")
        if not nxt:
            break
        assert nxt["link"].startswith(BASE + "/crm/v3/objects/contacts?")
        assert f"after={nxt['after']}" in nxt["link"]
        path = nxt["link"][len(BASE) :]
    assert len(seen) == 10 == len(set(seen))
    assert api.call("GET", "/crm/v3/objects/contacts?limit=101").status_code == 400


# -- batch read ---------------------------------------------------------------------------------------------------


def test_batch_read_all_found_is_200(api: Api, backend: HubSpotBackend) -> None:
    """All ids found: 200 BatchResponseSimplePublicObject with the asked-for properties."""
    ids = [ids_of(backend, "companies", "domain", d) for d in ("acme.example", "initech.example")]
    response = api.call(
        "POST",
        "/crm/v3/objects/companies/batch/read",
        json={"inputs": [{"id": i} for i in ids], "properties": ["tier", "annualrevenue"], "propertiesWithHistory": []},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert {r["id"]: r["properties"]["tier"] for r in body["results"]} == {ids[0]: "strategic", ids[1]: "standard"}


def test_batch_read_by_email_with_a_miss_is_207(api: Api) -> None:
    """A missing input gives 207 with the found ones and an error naming the missing id."""
    response = api.call(
        "POST",
        "/crm/v3/objects/contacts/batch/read",
        json={
            "idProperty": "email",
            "properties": ["email"],
            "inputs": [{"id": "ada@acme.example"}, {"id": "ghost@nowhere.example"}],
        },
    )
    assert response.status_code == 207
    body = response.json()
    assert [r["properties"]["email"] for r in body["results"]] == ["ada@acme.example"]
    assert body["numErrors"] == 1
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"]["ids"] == ["ghost@nowhere.example"]


# -- search -------------------------------------------------------------------------------------------------------


def search(api: Api, type_name: str, **body: Any) -> dict[str, Any]:
    response = api.call("POST", f"/crm/v3/objects/{type_name}/search", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def company_names(body: dict[str, Any]) -> list[str]:
    return [r["properties"]["name"] for r in body["results"]]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"propertyName": "tier", "operator": "EQ", "value": "Strategic"}, {"Acme Corp"}),
        ({"propertyName": "tier", "operator": "NEQ", "value": "strategic"}, {"Globex", "Initech"}),
        ({"propertyName": "annualrevenue", "operator": "GT", "value": "150000"}, {"Acme Corp"}),
        ({"propertyName": "annualrevenue", "operator": "GTE", "value": "150000"}, {"Acme Corp", "Globex"}),
        ({"propertyName": "annualrevenue", "operator": "LT", "value": "150000"}, {"Initech"}),
        ({"propertyName": "annualrevenue", "operator": "LTE", "value": "12000"}, {"Initech"}),
        (
            {"propertyName": "annualrevenue", "operator": "BETWEEN", "value": "10000", "highValue": "150000"},
            {"Globex", "Initech"},
        ),
        ({"propertyName": "tier", "operator": "IN", "values": ["enterprise", "standard"]}, {"Globex", "Initech"}),
        ({"propertyName": "tier", "operator": "NOT_IN", "values": ["enterprise", "standard"]}, {"Acme Corp"}),
        ({"propertyName": "hubspot_owner_id", "operator": "HAS_PROPERTY"}, {"Acme Corp", "Globex"}),
        ({"propertyName": "hubspot_owner_id", "operator": "NOT_HAS_PROPERTY"}, {"Initech"}),
        ({"propertyName": "name", "operator": "CONTAINS_TOKEN", "value": "corp"}, {"Acme Corp"}),
        (
            {"propertyName": "domain", "operator": "CONTAINS_TOKEN", "value": "*.example"},
            {"Acme Corp", "Globex", "Initech"},
        ),
        ({"propertyName": "name", "operator": "NOT_CONTAINS_TOKEN", "value": "corp"}, {"Globex", "Initech"}),
        ({"propertyName": "renewal_date", "operator": "LT", "value": "2027-03-01"}, {"Acme Corp"}),
    ],
)
def test_search_operators(api: Api, flt: dict[str, Any], expected: set[str]) -> None:
    """Each documented operator filters the seeded companies as HubSpot would."""
    body = search(api, "companies", filterGroups=[{"filters": [flt]}], properties=["name"])
    assert set(company_names(body)) == expected
    assert body["total"] == len(expected)


def test_search_groups_are_ored_and_filters_anded(api: Api) -> None:
    """Filters in a group must all hold; any group may hold."""
    body = search(
        api,
        "companies",
        properties=["name"],
        filterGroups=[
            {
                "filters": [
                    {"propertyName": "tier", "operator": "EQ", "value": "enterprise"},
                    {"propertyName": "annualrevenue", "operator": "GT", "value": "200000"},
                ]
            },
            {"filters": [{"propertyName": "domain", "operator": "EQ", "value": "initech.example"}]},
        ],
    )
    assert company_names(body) == ["Initech"]


def test_search_sorts_and_pages_by_offset(api: Api) -> None:
    """Sorts order the matches; ``after`` is a stringified offset; ``total`` counts every match."""
    first = search(
        api,
        "companies",
        properties=["name"],
        limit=2,
        sorts=[{"propertyName": "annualrevenue", "direction": "DESCENDING"}],
    )
    assert first["total"] == 3
    assert company_names(first) == ["Acme Corp", "Globex"]
    assert first["paging"]["next"]["after"] == "2"
    second = search(api, "companies", properties=["name"], limit=2, after="2", sorts=["-annualrevenue"])
    assert company_names(second) == ["Initech"]
    assert "paging" not in second
    ascending = search(api, "companies", properties=["name"], sorts=["annualrevenue"])
    assert company_names(ascending) == ["Initech", "Globex", "Acme Corp"]


def test_search_on_modified_date_with_epoch_millis(api: Api, backend: HubSpotBackend, clock: Clock) -> None:
    """Date-time properties compare with epoch-millisecond filter values (how reconcile polls)."""
    clock.advance(60)
    since = int(clock.now * 1000)
    clock.advance(1)
    ticket = ids_of(backend, "tickets", "hs_pipeline_stage", "1")
    api.call("PATCH", f"/crm/v3/objects/tickets/{ticket}", json={"properties": {"hs_pipeline_stage": "3"}})
    body = search(
        api,
        "tickets",
        filterGroups=[{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(since)}]}],
        sorts=[{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
    )
    assert [r["id"] for r in body["results"]] == [ticket]
    assert body["results"][0]["properties"]["hs_pipeline_stage"] == "3"


def test_company_changes_are_found_by_modified_date_and_id(api: Api, backend: HubSpotBackend, clock: Clock) -> None:
    """A company's update (API or UI) moves its hs_lastmodifieddate; the search the CRM poll makes (GTE the
    checkpoint, IN the linked ids, ascending) finds exactly the changed linked companies, oldest change first."""
    acme, globex = ids_of(backend, "companies", "name", "Acme Corp"), ids_of(backend, "companies", "name", "Globex")
    initech = ids_of(backend, "companies", "name", "Initech")
    clock.advance(60)
    since = int(clock.now * 1000)
    clock.advance(1)
    backend.ui_update("companies", globex, {"tier": "strategic"})
    clock.advance(1)
    api.call("PATCH", f"/crm/v3/objects/companies/{acme}", json={"properties": {"annualrevenue": "520000"}})
    clock.advance(1)
    api.call("PATCH", f"/crm/v3/objects/companies/{initech}", json={"properties": {"annualrevenue": "1"}})
    body = search(
        api,
        "companies",
        filterGroups=[
            {
                "filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(since)},
                    {"propertyName": "hs_object_id", "operator": "IN", "values": [acme, globex]},
                ]
            }
        ],
        sorts=["hs_lastmodifieddate"],
        properties=["name", "annualrevenue", "hs_lastmodifieddate"],
        limit=200,
        after="0",
    )
    assert [r["id"] for r in body["results"]] == [globex, acme]
    assert body["results"][1]["properties"]["annualrevenue"] == "520000"
    stamps = [r["properties"]["hs_lastmodifieddate"] for r in body["results"]]
    assert stamps == sorted(stamps)
    assert datetime.fromisoformat(stamps[0].replace("Z", "+00:00")).timestamp() * 1000 > since


def test_search_by_association_and_query(api: Api, backend: HubSpotBackend) -> None:
    """``associations.contact`` filters by an associated record; ``query`` searches default text properties."""
    grace = ids_of(backend, "contacts", "email", "grace@globex.example")
    body = search(
        api,
        "deals",
        filterGroups=[{"filters": [{"propertyName": "associations.contact", "operator": "EQ", "value": grace}]}],
    )
    assert [r["properties"]["dealname"] for r in body["results"]] == ["Globex renewal"]
    by_query = search(api, "contacts", query="lovel")
    assert [r["properties"]["email"] for r in by_query["results"]] == ["ada@acme.example"]


def test_search_limits(api: Api) -> None:
    """Over 200 per page, over five groups, or an offset past 10,000 is a 400."""
    too_many = [{"filters": [{"propertyName": "name", "operator": "HAS_PROPERTY"}]}] * 6
    for body in ({"limit": 201}, {"filterGroups": too_many}, {"after": "10000"}):
        response = api.call("POST", "/crm/v3/objects/companies/search", json=body)
        assert response.status_code == 400
        assert response.json()["category"] == "VALIDATION_ERROR"


def test_search_caps_paging_at_ten_thousand(api: Api, backend: HubSpotBackend) -> None:
    """The last reachable page before 10,000 has no next cursor even when more records match."""
    for index in range(10_050):  # straight into the portal: 10,050 API calls would be slow
        backend.portal.create(OBJECT_TYPES["notes"], {"hs_timestamp": str(1_700_000_000_000 + index)})
    backend.portal.take_changes()
    assert len(backend.portal.objects["notes"]) == 10_050
    body = search(api, "notes", limit=100, after="9900")
    assert body["total"] == 10_050
    assert len(body["results"]) == 100
    assert "paging" not in body


# -- associations v4 ----------------------------------------------------------------------------------------------


def test_default_association_is_stored_both_ways(api: Api, backend: HubSpotBackend) -> None:
    """PUT …/default creates the unlabeled type; both sides list it; DELETE removes both directions."""
    linus = ids_of(backend, "contacts", "email", "linus@initech.example")
    globex = ids_of(backend, "companies", "domain", "globex.example")
    response = api.call("PUT", f"/crm/v4/objects/contacts/{linus}/associations/default/companies/{globex}")
    assert response.status_code == 200
    specs = {(r["from"]["id"], r["associationSpec"]["associationTypeId"]) for r in response.json()["results"]}
    assert specs == {(linus, 279), (globex, 280)}
    from_contact = api.call("GET", f"/crm/v4/objects/contacts/{linus}/associations/companies").json()
    assert {r["toObjectId"] for r in from_contact["results"]} == {
        globex,
        ids_of(backend, "companies", "domain", "initech.example"),
    }
    from_company = api.call("GET", f"/crm/v4/objects/companies/{globex}/associations/contacts").json()
    assert linus in {r["toObjectId"] for r in from_company["results"]}
    gone = api.call("DELETE", f"/crm/v4/objects/contacts/{linus}/associations/companies/{globex}")
    assert gone.status_code == 204
    after = api.call("GET", f"/crm/v4/objects/companies/{globex}/associations/contacts").json()
    assert linus not in {r["toObjectId"] for r in after["results"]}


def test_labeled_association_sets_one_primary_company(api: Api, backend: HubSpotBackend) -> None:
    """PUT with the Primary spec answers 201 with the label; a contact's previous primary company loses it."""
    ada = ids_of(backend, "contacts", "email", "ada@acme.example")
    acme = ids_of(backend, "companies", "domain", "acme.example")
    globex = ids_of(backend, "companies", "domain", "globex.example")
    response = api.call(
        "PUT",
        f"/crm/v4/objects/contact/{ada}/associations/company/{globex}",
        json=[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}],
    )
    assert response.status_code == 201
    assert response.json() == {
        "fromObjectTypeId": "0-1",
        "fromObjectId": ada,
        "toObjectTypeId": "0-2",
        "toObjectId": globex,
        "labels": ["Primary"],
    }
    rows = api.call("GET", f"/crm/v4/objects/contacts/{ada}/associations/companies").json()["results"]
    types = {r["toObjectId"]: {t["typeId"] for t in r["associationTypes"]} for r in rows}
    assert types == {acme: {279}, globex: {1, 279}}
    wrong = api.call(
        "PUT",
        f"/crm/v4/objects/contacts/{ada}/associations/companies/{globex}",
        json=[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}],
    )
    assert wrong.status_code == 400
    rows = api.call("GET", f"/crm/v4/objects/contacts/{ada}/associations/companies").json()["results"]
    assert {r["toObjectId"]: {t["typeId"] for t in r["associationTypes"]} for r in rows} == types  # unchanged


def test_association_paging(api: Api, backend: HubSpotBackend) -> None:
    """GET associations pages with ``limit`` and ``after``."""
    acme = ids_of(backend, "companies", "domain", "acme.example")
    for index in range(4):
        contact = api.call(
            "POST",
            "/crm/v3/objects/contacts",
            json={
                "properties": {"email": f"c{index}@acme.example"},
                "associations": [
                    {
                        "to": {"id": acme},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}],
                    }
                ],
            },
        )
        assert contact.status_code == 201
    first = api.call("GET", f"/crm/v4/objects/companies/{acme}/associations/contacts?limit=3").json()
    assert len(first["results"]) == 3
    rest = api.call(
        "GET",
        f"/crm/v4/objects/companies/{acme}/associations/contacts?limit=3&after={first['paging']['next']['after']}",
    ).json()
    assert len(rest["results"]) == 2
    assert "paging" not in rest
    paged = [r["toObjectId"] for r in first["results"] + rest["results"]]
    everyone = api.call("GET", f"/crm/v4/objects/companies/{acme}/associations/contacts").json()["results"]
    assert sorted(paged) == sorted(r["toObjectId"] for r in everyone)  # each contact once, none skipped


def test_note_with_associations_shows_on_contact_and_company(api: Api, backend: HubSpotBackend) -> None:
    """A note created with contact and company associations is listed from both records' side."""
    grace = ids_of(backend, "contacts", "email", "grace@globex.example")
    globex = ids_of(backend, "companies", "domain", "globex.example")
    ticket = ids_of(backend, "tickets", "hs_pipeline", "0")
    response = api.call(
        "POST",
        "/crm/v3/objects/notes",
        json={
            "properties": {"hs_timestamp": "1767225600000", "hs_note_body": "Escalated to ENG-42"},
            "associations": [
                {"to": {"id": grace}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]},
                {"to": {"id": globex}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 190}]},
                {"to": {"id": ticket}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 228}]},
            ],
        },
    )
    assert response.status_code == 201
    note = response.json()
    assert note["properties"]["hs_timestamp"] == "2026-01-01T00:00:00.000Z"
    assert "hs_createdate" in note["properties"]
    for type_name, record in (("contacts", grace), ("companies", globex), ("tickets", ticket)):
        rows = api.call("GET", f"/crm/v4/objects/{type_name}/{record}/associations/notes").json()["results"]
        assert [r["toObjectId"] for r in rows] == [note["id"]]
    on_contact = api.call("GET", f"/crm/v3/objects/contacts/{grace}?associations=notes").json()
    assert on_contact["associations"]["notes"]["results"] == [{"id": note["id"], "type": "contact_to_note"}]


def test_note_with_a_missing_target_creates_nothing(api: Api, backend: HubSpotBackend) -> None:
    """An association to a record that does not exist is a 400 and no note is stored."""
    response = api.call(
        "POST",
        "/crm/v3/objects/notes",
        json={
            "properties": {"hs_timestamp": "2026-01-01T00:00:00Z", "hs_note_body": "x"},
            "associations": [
                {
                    "to": {"id": "424242"},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}],
                }
            ],
        },
    )
    assert response.status_code == 400
    assert backend.portal.objects["notes"] == {}


def test_association_batch_read_and_labels(api: Api, backend: HubSpotBackend) -> None:
    """Batch read answers 200 when every input has associations, 207 otherwise; labels list the pair's types."""
    ada = ids_of(backend, "contacts", "email", "ada@acme.example")
    linus = ids_of(backend, "contacts", "email", "linus@initech.example")
    ok = api.call(
        "POST", "/crm/v4/associations/contacts/companies/batch/read", json={"inputs": [{"id": ada}, {"id": linus}]}
    )
    assert ok.status_code == 200
    assert {r["from"]["id"] for r in ok.json()["results"]} == {ada, linus}
    partial = api.call(
        "POST", "/crm/v4/associations/contacts/deals/batch/read", json={"inputs": [{"id": ada}, {"id": linus}]}
    )
    assert partial.status_code == 207
    assert partial.json()["numErrors"] == 1
    assert partial.json()["errors"][0]["context"] == {"fromObjectId": [linus]}
    labels = api.call("GET", "/crm/v4/associations/contacts/companies/labels")
    assert labels.status_code == 200
    assert {(r["typeId"], r.get("label")) for r in labels.json()["results"]} == {(279, None), (1, "Primary")}
    note_labels = api.call("GET", "/crm/associations/v4/notes/tickets/labels").json()
    assert [r["typeId"] for r in note_labels["results"]] == [228]


# -- faults and limits --------------------------------------------------------------------------------------------


def test_fail_next_injects_one_failure(api: Api) -> None:
    """``/_sandbox/fail-next`` makes the next matching call fail once, in HubSpot's error shape."""
    admin = requests.post(f"{BASE}/_sandbox/fail-next", json={"status": 503, "path": "/crm/v3/objects/contacts"})
    assert admin.status_code == 200
    failed = api.call("GET", "/crm/v3/objects/contacts", validate=False)
    assert failed.status_code == 503
    assert set(failed.json()) >= {"status", "message", "correlationId", "category"}
    assert api.call("GET", "/crm/v3/objects/contacts").status_code == 200


def test_injected_429_carries_retry_after(api: Api) -> None:
    """An injected 429 has HubSpot's RATE_LIMIT body and a Retry-After header."""
    requests.post(f"{BASE}/_sandbox/fail-next", json={"status": 429, "retry_after": 2})
    response = api.call("GET", "/crm/v3/objects/companies", validate=False)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    body = response.json()
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    uuid.UUID(body["correlationId"])


def test_enforced_rate_limit_and_headers(api: Api, clock: Clock) -> None:
    """Under an enforced limit the headers count down, the next call is 429 with Retry-After, then it resets."""
    requests.post(f"{BASE}/_sandbox/rate-limit", json={"limit": "2/10s"})
    first = api.call("GET", "/crm/v3/objects/companies")
    assert first.headers["X-HubSpot-RateLimit-Max"] == "2"
    assert first.headers["X-HubSpot-RateLimit-Remaining"] == "1"
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    second = api.call("GET", "/crm/v3/objects/companies")
    assert second.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    daily = int(first.headers["X-HubSpot-RateLimit-Daily-Remaining"])
    assert int(second.headers["X-HubSpot-RateLimit-Daily-Remaining"]) == daily - 1
    limited = api.call("GET", "/crm/v3/objects/companies", validate=False)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    assert limited.json()["errorType"] == "RATE_LIMIT"
    clock.advance(10)
    assert api.call("GET", "/crm/v3/objects/companies").status_code == 200


def test_nominal_rate_limit_headers_without_enforcement(api: Api) -> None:
    """Every answer carries HubSpot's rate-limit headers, counting calls in the ten-second window."""
    counts = [
        int(api.call("GET", "/crm/v3/objects/companies").headers["X-HubSpot-RateLimit-Remaining"]) for _ in range(3)
    ]
    assert counts == [counts[0], counts[0] - 1, counts[0] - 2]
    response = api.call("GET", "/crm/v3/objects/companies")
    assert response.headers["X-HubSpot-RateLimit-Max"] == "190"
    assert response.headers["X-HubSpot-RateLimit-Daily"] == "625000"


def test_unknown_object_type_and_route(api: Api) -> None:
    """An unknown object type is a 400; an unknown route a 404, both in the Error shape."""
    response = api.call("GET", "/crm/v3/objects/widgets", "hubspot-objects")
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    unknown = api.call("GET", "/crm/v9/nothing", validate=False)
    assert unknown.status_code == 404
    Spec("hubspot-contacts").validate_schema("Error", unknown.json())


def test_archive_then_get_is_404_unless_archived(api: Api, backend: HubSpotBackend) -> None:
    """DELETE moves a record to the recycle bin: 404 by default, found with ``archived=true``."""
    linus = ids_of(backend, "contacts", "email", "linus@initech.example")
    assert api.call("DELETE", f"/crm/v3/objects/contacts/{linus}").status_code == 204
    assert api.call("GET", f"/crm/v3/objects/contacts/{linus}").status_code == 404
    archived = api.call("GET", f"/crm/v3/objects/contacts/{linus}?archived=true").json()
    assert archived["archived"] is True
    assert "archivedAt" in archived


def test_seed_is_idempotent_and_reset_empties(backend: HubSpotBackend) -> None:
    """Loading ``demo`` twice adds nothing; ``reset`` empties the portal but keeps the credentials."""
    before = backend.state()["objects"]
    backend.seed("demo")
    assert backend.state()["objects"] == before
    assert {k: len(v) for k, v in before.items()} == {
        "contacts": 3,
        "companies": 3,
        "deals": 2,
        "tickets": 1,
        "notes": 0,
    }
    token = backend.access_token
    backend.reset()
    assert all(not v for v in backend.state()["objects"].values())
    assert backend.access_token == token
    with pytest.raises(ValueError, match="no HubSpot seed"):
        backend.seed("nonsense")


def test_config_table_names_seeded_properties(backend: HubSpotBackend) -> None:
    """The generated config points the connector at properties the seeded companies hold."""
    table = backend.config_table()
    assert table["access_token"].value == backend.access_token
    acme = next(o for o in backend.portal.objects["companies"].values() if o.properties["name"] == "Acme Corp")
    assert acme.properties[table["tier_property"]] == "strategic"
    assert acme.properties[table["arr_property"]] == "480000"
    assert acme.properties[table["renewal_date_property"]] == "2027-01-31"
    owner = acme.properties[table["owner_property"]]
    assert backend.portal.owners[owner]["firstName"] == "Olivia"


def test_admin_defines_properties_and_changes_records_as_a_person(api: Api, backend: HubSpotBackend) -> None:
    """``/_sandbox/hubspot/properties`` adds a custom property; ``ui-update`` validates like the API does."""
    before = api.call("POST", "/crm/v3/objects/companies", json={"properties": {"name": "X", "health": "red"}})
    assert before.status_code == 400
    added = requests.post(
        f"{BASE}/_sandbox/hubspot/properties", json={"objectType": "company", "name": "health", "kind": "string"}
    )
    assert added.status_code == 200
    created = api.call("POST", "/crm/v3/objects/companies", json={"properties": {"name": "X", "health": "red"}})
    assert created.status_code == 201
    changed = requests.post(
        f"{BASE}/_sandbox/hubspot/ui-update",
        json={"objectType": "companies", "id": created.json()["id"], "properties": {"health": "green"}},
    )
    assert changed.json()["properties"]["health"] == "green"
    refused = requests.post(
        f"{BASE}/_sandbox/hubspot/ui-update",
        json={"objectType": "companies", "id": created.json()["id"], "properties": {"tier": 5, "nope": "x"}},
    )
    assert refused.status_code == 400
    assert refused.json()["category"] == "VALIDATION_ERROR"
    missing = requests.post(
        f"{BASE}/_sandbox/hubspot/ui-update", json={"objectType": "companies", "id": "1", "properties": {}}
    )
    assert missing.status_code == 404


def test_the_emulator_never_imports_the_connector() -> None:
    """The sandbox package imports only the core, the standard library, werkzeug and itself."""
    import ast
    import sys
    from pathlib import Path

    import cxbridge_hubspot.sandbox as package

    allowed_roots = {"cxbridge", "werkzeug", *sys.stdlib_module_names}
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    assert node.level == 1, f"{path.name} reaches outside the sandbox package"
                    continue
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed_roots, f"{path.name} imports {name}"


# -- properties v3 ------------------------------------------------------------------------------------------------


def test_properties_read_and_list_match_the_spec(api: Api, backend: HubSpotBackend) -> None:
    """One property by name, the list of a type, and a misspelled name answered 404 OBJECT_NOT_FOUND."""
    tier = api.call("GET", "/crm/v3/properties/companies/tier").json()
    assert (tier["name"], tier["type"], tier["fieldType"], tier["hubspotDefined"]) == ("tier", "string", "text", False)
    revenue = api.call("GET", "/crm/v3/properties/0-2/annualrevenue").json()
    assert (revenue["type"], revenue["hubspotDefined"]) == ("number", True)
    listed = api.call("GET", "/crm/v3/properties/tickets").json()["results"]
    assert {"cxbridge_escalate", "cxbridge_issue_key", "subject"} <= {p["name"] for p in listed}
    missing = api.call("GET", "/crm/v3/properties/companies/teir")
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"
    assert "teir" in missing.json()["message"]
    backend.portal.define_property("companies", "teir", "string")
    assert api.call("GET", "/crm/v3/properties/companies/teir").status_code == 200


def test_owners_and_company_search_by_domain(api: Api) -> None:
    """``GET /crm/v3/owners/{id}`` and ``GET /crm/v3/owners`` answer PublicOwner shapes; a company search on
    ``domain`` EQ finds Acme, case-insensitively."""
    owner = api.call("GET", "/crm/v3/owners/41920001", "hubspot-owners")
    assert (owner.json()["firstName"], owner.json()["email"]) == ("Olivia", "olivia.owner@cxbridge.example")
    missing = api.call("GET", "/crm/v3/owners/1", "hubspot-owners")
    assert missing.status_code == 404
    listed = api.call("GET", "/crm/v3/owners?email=OLIVIA.owner@cxbridge.example", "hubspot-owners")
    assert [o["id"] for o in listed.json()["results"]] == ["41920001"]
    found = api.call(
        "POST",
        "/crm/v3/objects/companies/search",
        json={
            "filterGroups": [{"filters": [{"propertyName": "domain", "operator": "EQ", "value": "ACME.example"}]}],
            "properties": ["name", "domain"],
            "sorts": ["hs_object_id"],
            "limit": 2,
            "after": "0",
        },
    )
    assert [r["properties"]["name"] for r in found.json()["results"]] == ["Acme Corp"]
