"""Macros in the Zendesk emulator (``/api/v2/macros``): stored, listed in offset pages, shown, updated and
deleted, every answer checked against Zendesk's OpenAPI description; admins write them, agents read them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from cxbridge_zendesk.sandbox.backend import ZendeskBackend
from cxbridge_zendesk.sandbox.seeds import SECOND_AGENT_EMAIL

from cxbridge.testing import Spec, mock_vendors

CREDIT = {"title": "cxbridge: Credit of 50", "actions": [{"field": "current_tags", "value": "cxb_decide_credit_50"}]}


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec("zendesk")


@pytest.fixture
def zd() -> Iterator[ZendeskBackend]:
    backend = ZendeskBackend()
    with mock_vendors(backends={"zendesk": backend}, seed="empty"):
        yield backend


def agent(zd: ZendeskBackend) -> requests.Session:
    session = requests.Session()
    session.auth = (f"{SECOND_AGENT_EMAIL}/token", zd.credentials()["api_token"])
    return session


def test_the_empty_account_has_no_macros(zd: ZendeskBackend, api: requests.Session, spec: Spec) -> None:
    r = api.get(f"{zd.base_url}/api/v2/macros")
    assert r.status_code == 200
    spec.validate_response("get", "/api/v2/macros", 200, r.json())
    assert (r.json()["macros"], r.json()["count"], r.json()["next_page"]) == ([], 0, None)


def test_create_show_update_list_and_delete(zd: ZendeskBackend, api: requests.Session, spec: Spec) -> None:
    spec.validate_request("post", "/api/v2/macros", {"macro": CREDIT})
    made = api.post(f"{zd.base_url}/api/v2/macros", json={"macro": CREDIT})
    assert made.status_code == 200
    spec.validate_response("post", "/api/v2/macros", 200, made.json())
    macro = made.json()["macro"]
    assert (macro["title"], macro["actions"], macro["active"], macro["restriction"]) == (
        CREDIT["title"],
        CREDIT["actions"],
        True,
        None,
    )
    one = f"{zd.base_url}/api/v2/macros/{macro['id']}"
    shown = agent(zd).get(one)  # agents may read a shared macro
    assert shown.status_code == 200
    spec.validate_response("get", "/api/v2/macros/{macro_id}", 200, shown.json())
    assert shown.json()["macro"] == macro
    change = {"macro": {"active": False, "actions": [{"field": "current_tags", "value": "cxb_decide_reopen"}]}}
    spec.validate_request("put", "/api/v2/macros/{macro_id}", {"macro": {**CREDIT, **change["macro"]}})
    updated = api.put(one, json=change)
    assert updated.status_code == 200
    spec.validate_response("put", "/api/v2/macros/{macro_id}", 200, updated.json())
    assert (updated.json()["macro"]["active"], updated.json()["macro"]["title"]) == (False, CREDIT["title"])
    assert zd.model.macros[macro["id"]].actions == change["macro"]["actions"]
    for n in range(2):
        body = {"macro": {"title": f"Team macro {n}", "actions": [{"field": "status", "value": "open"}]}}
        api.post(f"{zd.base_url}/api/v2/macros", json=body)
    page = api.get(f"{zd.base_url}/api/v2/macros", params={"per_page": 2}).json()
    spec.validate_response("get", "/api/v2/macros", 200, page)
    assert [m["title"] for m in page["macros"]] == [CREDIT["title"], "Team macro 0"]
    last = api.get(page["next_page"]).json()
    assert ([m["title"] for m in last["macros"]], last["next_page"]) == (["Team macro 1"], None)
    active = api.get(f"{zd.base_url}/api/v2/macros", params={"active": "true"}).json()
    assert [m["title"] for m in active["macros"]] == ["Team macro 0", "Team macro 1"]
    assert api.delete(one).status_code == 204
    assert api.get(one).status_code == 404
    assert api.delete(one).status_code == 404


def test_bad_macros_are_refused_as_zendesk_does(zd: ZendeskBackend, api: requests.Session) -> None:
    untitled = api.post(f"{zd.base_url}/api/v2/macros", json={"macro": {"actions": CREDIT["actions"]}})
    assert (untitled.status_code, untitled.json()["error"]) == (422, "RecordInvalid")
    no_actions = api.post(f"{zd.base_url}/api/v2/macros", json={"macro": {"title": "x", "actions": []}})
    assert no_actions.status_code == 422
    assert api.post(f"{zd.base_url}/api/v2/macros", json={"title": "x"}).status_code == 400
    assert zd.model.macros == {}


def test_an_agents_macro_is_personal_and_shared_ones_are_read_only_to_agents(
    zd: ZendeskBackend, api: requests.Session
) -> None:
    shared = api.post(f"{zd.base_url}/api/v2/macros", json={"macro": CREDIT}).json()["macro"]
    alex = agent(zd)
    mine = alex.post(f"{zd.base_url}/api/v2/macros", json={"macro": {**CREDIT, "title": "My credit"}})
    assert mine.status_code == 200
    alex_id = zd.model.user_by_email(SECOND_AGENT_EMAIL).id  # type: ignore[union-attr]
    assert mine.json()["macro"]["restriction"] == {"type": "User", "id": alex_id}
    admins = api.post(
        f"{zd.base_url}/api/v2/macros",
        json={"macro": {**CREDIT, "title": "Admin's own", "restriction": {"type": "User", "id": 1}}},
    ).json()["macro"]
    assert [m["title"] for m in alex.get(f"{zd.base_url}/api/v2/macros").json()["macros"]] == [
        CREDIT["title"],
        "My credit",
    ]
    assert len(api.get(f"{zd.base_url}/api/v2/macros").json()["macros"]) == 3  # an admin sees every macro
    assert alex.get(f"{zd.base_url}/api/v2/macros/{admins['id']}").status_code == 404
    assert alex.put(f"{zd.base_url}/api/v2/macros/{shared['id']}", json={"macro": {"active": False}}).status_code == 403
    assert alex.delete(f"{zd.base_url}/api/v2/macros/{shared['id']}").status_code == 403
    own = f"{zd.base_url}/api/v2/macros/{mine.json()['macro']['id']}"
    assert alex.put(own, json={"macro": {"restriction": None, "active": False}}).status_code == 200
    assert zd.model.macros[mine.json()["macro"]["id"]].restriction == {"type": "User", "id": alex_id}
    assert alex.delete(own).status_code == 204
