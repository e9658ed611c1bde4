"""The Zendesk emulator in-process (``mock_vendors``), its answers checked against Zendesk's OpenAPI description."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cxbridge_zendesk.sandbox.backend import ZendeskBackend
from cxbridge_zendesk.sandbox.models import iso

from cxbridge.testing import Clock, Spec, mock_vendors

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec("zendesk")


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def zd(clock: Clock) -> Iterator[ZendeskBackend]:
    backend = ZendeskBackend(clock=clock)
    with mock_vendors(backends={"zendesk": backend}, seed="demo"):
        yield backend


def url(zd: ZendeskBackend, path: str) -> str:
    return zd.base_url + path


def user_id(zd: ZendeskBackend, email: str) -> int:
    found = zd.model.user_by_email(email)
    assert found is not None
    return found.id


# -- tickets ---------------------------------------------------------------------------------------------------
def test_show_ticket_with_sideloads_matches_spec(zd: ZendeskBackend, api: requests.Session, spec: Spec) -> None:
    """Show Ticket answers the spec's TicketResponse, with the requester and organization sideloaded."""
    r = api.get(url(zd, "/api/v2/tickets/1.json"), params={"include": "users,organizations"})
    assert r.status_code == 200
    body = r.json()
    spec.validate_response("get", "/api/v2/tickets/{ticket_id}", 200, body)
    ticket = body["ticket"]
    ada = user_id(zd, "ada@acme.example")
    assert ticket["id"] == 1
    assert ticket["subject"] == "Exports to CSV fail with a timeout"
    assert ticket["priority"] == "urgent"
    assert ticket["requester_id"] == ada
    assert ticket["url"] == f"{zd.base_url}/api/v2/tickets/1.json"
    assert ticket["created_at"].endswith("Z")
    assert {u["email"] for u in body["users"]} == {"ada@acme.example"}
    assert [o["name"] for o in body["organizations"]] == ["Acme Corp"]
    assert body["organizations"][0]["id"] == ticket["organization_id"]
    plain = api.get(url(zd, "/api/v2/tickets/1")).json()
    assert "users" not in plain
    assert plain["ticket"] == ticket


def test_update_ticket_replaces_tags_adds_internal_note_and_custom_field(
    zd: ZendeskBackend, api: requests.Session, spec: Spec
) -> None:
    """Update Ticket: tags replace, a comment with public=false is an internal note, custom fields are set."""
    field_id = zd.config_table()["issue_key_field_id"]
    request = {
        "ticket": {
            "tags": ["csv", "escalated_to_engineering"],
            "comment": {"body": "Escalated to engineering as ENG-42", "public": False},
            "custom_fields": [{"id": field_id, "value": "ENG-42"}],
            "status": "pending",
        }
    }
    spec.validate_request("put", "/api/v2/tickets/{ticket_id}", request)
    r = api.put(url(zd, "/api/v2/tickets/1.json"), json=request)
    assert r.status_code == 200
    body = r.json()
    spec.validate_response("put", "/api/v2/tickets/{ticket_id}", 200, body)
    assert body["ticket"]["tags"] == ["csv", "escalated_to_engineering"]
    assert body["ticket"]["status"] == "pending"
    assert body["ticket"]["custom_fields"] == [{"id": field_id, "value": "ENG-42"}]
    assert body["audit"]["author_id"] == user_id(zd, "agent@cxbridge.example")
    comment_events = [e for e in body["audit"]["events"] if e["type"] == "Comment"]
    assert comment_events[0]["public"] is False
    comments = api.get(url(zd, "/api/v2/tickets/1/comments")).json()["comments"]
    assert comments[-1]["body"] == "Escalated to engineering as ENG-42"
    assert comments[-1]["public"] is False
    assert comments[-1]["author_id"] == user_id(zd, "agent@cxbridge.example")
    # The first public comment stays the description.
    assert api.get(url(zd, "/api/v2/tickets/1")).json()["ticket"]["description"] == comments[0]["body"]


def test_update_metadata_is_kept_on_the_audit_and_audits_list_by_cursor(
    zd: ZendeskBackend, api: requests.Session, spec: Spec
) -> None:
    """An update's write-only ``metadata`` is the audit's ``metadata.custom``; List Audits pages by cursor."""
    request = {
        "ticket": {"comment": {"body": "Thanks, fixed.", "public": True}, "metadata": {"cxbridge_marker": "cxb-1"}}
    }
    spec.validate_request("put", "/api/v2/tickets/{ticket_id}", request)
    r = api.put(url(zd, "/api/v2/tickets/1.json"), json=request)
    assert r.status_code == 200
    assert r.json()["audit"]["metadata"]["custom"] == {"cxbridge_marker": "cxb-1"}
    too_big = {"ticket": {"comment": {"body": "x"}, "metadata": {"k": "v" * 2000}}}
    assert api.put(url(zd, "/api/v2/tickets/1.json"), json=too_big).status_code == 422
    listed = api.get(url(zd, "/api/v2/tickets/1/audits"), params={"page[size]": 1, "sort": "-created_at"})
    assert listed.status_code == 200
    body = listed.json()
    spec.validate_response("get", "/api/v2/tickets/{ticket_id}/audits", 200, body)
    spec.validate_schema("CursorPaginationMeta", {"meta": body["meta"], "links": body["links"]})
    [newest] = body["audits"]
    assert newest["metadata"]["custom"] == {"cxbridge_marker": "cxb-1"}
    assert [e["public"] for e in newest["events"] if e["type"] == "Comment"] == [True]
    assert body["meta"]["has_more"] is True
    rest = api.get(body["links"]["next"]).json()["audits"]
    assert rest
    assert all(a["metadata"]["custom"] == {} for a in rest)
    assert api.get(url(zd, "/api/v2/tickets/999/audits")).status_code == 404


def test_update_with_html_body_and_string_tags(zd: ZendeskBackend, api: requests.Session) -> None:
    """``html_body`` comments keep their HTML and get a plain ``body``; a tag string is split like Zendesk."""
    r = api.put(
        url(zd, "/api/v2/tickets/3"),
        json={
            "ticket": {
                "comment": {"html_body": "<p>See <b>invoice</b> settings</p>", "public": True},
                "tags": "Billing  faq",
            }
        },
    )
    assert r.status_code == 200
    assert r.json()["ticket"]["tags"] == ["billing", "faq"]
    last = api.get(url(zd, "/api/v2/tickets/3/comments")).json()["comments"][-1]
    assert last["html_body"] == "<p>See <b>invoice</b> settings</p>"
    assert last["body"] == "See invoice settings"


def test_create_ticket_honours_idempotency_key(zd: ZendeskBackend, api: requests.Session, spec: Spec) -> None:
    """A repeated create with the same Idempotency-Key answers the first ticket; another body is refused."""
    request = {
        "ticket": {
            "subject": "Printer offline",
            "comment": {"body": "Restarting doesn't help."},
            "requester": {"email": "new.person@hooli.example", "name": "New Person"},
            "priority": "low",
        }
    }
    spec.validate_request("post", "/api/v2/tickets", request)
    first = api.post(url(zd, "/api/v2/tickets.json"), json=request, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    spec.validate_response("post", "/api/v2/tickets", 201, first.json())
    ticket = first.json()["ticket"]
    assert ticket["id"] == 4
    assert first.headers["Location"] == f"{zd.base_url}/api/v2/tickets/4.json"
    assert first.headers["x-idempotency-lookup"] == "miss"
    requester = zd.model.users[ticket["requester_id"]]
    assert (requester.email, requester.name, requester.role) == ("new.person@hooli.example", "New Person", "end-user")
    again = api.post(url(zd, "/api/v2/tickets.json"), json=request, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 201
    assert again.headers["x-idempotency-lookup"] == "hit"
    assert again.json()["ticket"]["id"] == 4
    assert sorted(zd.model.tickets) == [1, 2, 3, 4]
    other = api.post(
        url(zd, "/api/v2/tickets.json"), json={"ticket": {"comment": {"body": "x"}}}, headers={"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 400
    assert other.json()["error"] == "IdempotentRequestError"
    without_key = api.post(url(zd, "/api/v2/tickets.json"), json=request)
    assert without_key.json()["ticket"]["id"] == 5


def test_idempotency_key_expires(zd: ZendeskBackend, api: requests.Session, clock: Clock) -> None:
    """Keys are remembered for two hours."""
    request = {"ticket": {"comment": {"body": "Hello"}}}
    assert (
        api.post(url(zd, "/api/v2/tickets"), json=request, headers={"Idempotency-Key": "k"}).json()["ticket"]["id"] == 4
    )
    clock.advance(2 * 3600 + 1)
    assert (
        api.post(url(zd, "/api/v2/tickets"), json=request, headers={"Idempotency-Key": "k"}).json()["ticket"]["id"] == 5
    )


def test_list_tickets_cursor_and_offset(zd: ZendeskBackend, api: requests.Session, spec: Spec) -> None:
    """List Tickets pages by cursor (``page[size]``) and by offset (``per_page``), with ``ratelimit-*``."""
    r = api.get(url(zd, "/api/v2/tickets.json"), params={"page[size]": 2})
    spec.validate_response("get", "/api/v2/tickets", 200, r.json())
    assert [t["id"] for t in r.json()["tickets"]] == [1, 2]
    assert r.json()["meta"]["has_more"] is True
    assert r.headers["ratelimit-limit"] == "700"
    second = api.get(r.json()["links"]["next"]).json()
    assert [t["id"] for t in second["tickets"]] == [3]
    assert second["meta"]["has_more"] is False
    offset = api.get(url(zd, "/api/v2/tickets.json"), params={"per_page": 2}).json()
    assert [t["id"] for t in offset["tickets"]] == [1, 2]
    assert offset["count"] == 3
    assert offset["next_page"].startswith(f"{zd.base_url}/api/v2/tickets.json?")
    assert [t["id"] for t in api.get(offset["next_page"]).json()["tickets"]] == [3]


# -- comments ---------------------------------------------------------------------------------------------
def add_comments(zd: ZendeskBackend, ticket_id: int, count: int, clock: Clock | None = None) -> None:
    agent = zd.model.user_by_email("agent@cxbridge.example")
    assert agent is not None
    for n in range(count):
        if clock is not None:
            clock.advance(1)
        zd.model.update_ticket(ticket_id, {"ticket": {"comment": {"body": f"note {n}", "public": False}}}, agent)


def test_comments_cursor_pagination(zd: ZendeskBackend, api: requests.Session, spec: Spec, clock: Clock) -> None:
    """List Comments with ``page[size]`` follows ``links.next`` while ``meta.has_more``, and back by ``prev``."""
    add_comments(zd, 2, 4, clock)
    seen: list[str] = []
    pages = 0
    next_url: str | None = url(zd, "/api/v2/tickets/2/comments.json?page[size]=2")
    while next_url:
        body = api.get(next_url).json()
        spec.validate_response("get", "/api/v2/tickets/{ticket_id}/comments", 200, body)
        seen += [c["body"] for c in body["comments"]]
        pages += 1
        next_url = body["links"]["next"] if body["meta"]["has_more"] else None
        if next_url:
            assert next_url.startswith(f"{zd.base_url}/api/v2/tickets/2/comments.json?")
    assert pages == 3
    assert seen[1:] == [f"note {n}" for n in range(4)]
    last = body
    back = api.get(last["links"]["prev"]).json()
    assert [c["body"] for c in back["comments"]] == ["note 1", "note 2"]
    newest_first = api.get(url(zd, "/api/v2/tickets/2/comments"), params={"page[size]": 2, "sort": "-created_at"})
    assert [c["body"] for c in newest_first.json()["comments"]] == ["note 3", "note 2"]


def test_comments_offset_pagination(zd: ZendeskBackend, api: requests.Session, clock: Clock) -> None:
    """Offset pages (``page``, ``per_page``) carry an absolute ``next_page`` that keeps ``.json``."""
    add_comments(zd, 3, 3, clock)
    first = api.get(url(zd, "/api/v2/tickets/3/comments.json"), params={"per_page": 3}).json()
    assert len(first["comments"]) == 3
    assert first["count"] == 4
    assert first["previous_page"] is None
    assert first["next_page"].startswith(f"{zd.base_url}/api/v2/tickets/3/comments.json?")
    second = api.get(first["next_page"]).json()
    assert [c["body"] for c in second["comments"]] == ["note 2"]
    assert second["next_page"] is None
    desc = api.get(url(zd, "/api/v2/tickets/3/comments"), params={"sort_order": "desc", "per_page": 1}).json()
    assert desc["comments"][0]["body"] == "note 2"
    with_users = api.get(url(zd, "/api/v2/tickets/1/comments"), params={"include": "users"}).json()
    assert {u["email"] for u in with_users["users"]} == {"ada@acme.example", "agent@cxbridge.example"}


# -- search -----------------------------------------------------------------------------------------------
def search_ids(zd: ZendeskBackend, api: requests.Session, query: str, **params: Any) -> list[int]:
    r = api.get(url(zd, "/api/v2/search.json"), params={"query": query, **params})
    assert r.status_code == 200, r.text
    return [x["id"] for x in r.json()["results"] if x["result_type"] == "ticket"]


def test_search_matches_spec_and_filters(zd: ZendeskBackend, api: requests.Session, spec: Spec, clock: Clock) -> None:
    """Search supports type, tags, status (with comparisons), people, dates, negation and free text."""
    body = api.get(url(zd, "/api/v2/search"), params={"query": "type:ticket tags:csv"}).json()
    spec.validate_response("get", "/api/v2/search", 200, body)
    assert [r["id"] for r in body["results"]] == [1, 2]
    assert {r["result_type"] for r in body["results"]} == {"ticket"}
    assert body["count"] == 2
    assert search_ids(zd, api, "type:ticket status:new") == [3]
    assert search_ids(zd, api, "type:ticket status<solved") == [1, 2, 3]
    assert search_ids(zd, api, "type:ticket status>new") == [1, 2]
    assert search_ids(zd, api, "type:ticket tags:billing tags:csv") == [1, 2, 3]  # same property: OR
    assert search_ids(zd, api, "type:ticket tags:csv priority:urgent") == [1]  # different properties: AND
    assert search_ids(zd, api, "type:ticket -tags:csv") == [3]
    assert search_ids(zd, api, "type:ticket requester:grace@globex.example") == [2]
    assert search_ids(zd, api, 'type:ticket organization:"Acme Corp"') == [1]
    assert search_ids(zd, api, "type:ticket invoice") == [3]
    assert search_ids(zd, api, 'type:ticket "2M-row report"') == [1]  # internal notes are searched too
    clock.advance(3600)
    api.put(url(zd, "/api/v2/tickets/2"), json={"ticket": {"status": "open", "priority": "urgent"}})
    assert search_ids(zd, api, "type:ticket updated>30minutes") == [2]
    assert search_ids(zd, api, f"type:ticket updated>{iso(clock.now - 60)}") == [2]
    assert search_ids(zd, api, f"type:ticket created<{iso(START - 1.5 * 86400)}") == [1, 2]
    field_id = zd.config_table()["issue_key_field_id"]
    api.put(url(zd, "/api/v2/tickets/1"), json={"ticket": {"custom_fields": [{"id": field_id, "value": "ENG-7"}]}})
    assert search_ids(zd, api, f"type:ticket custom_field_{field_id}:ENG-7") == [1]
    users = api.get(url(zd, "/api/v2/search"), params={"query": "type:user email:ada@acme.example"}).json()
    spec.validate_response("get", "/api/v2/search", 200, users)
    assert [u["name"] for u in users["results"]] == ["Ada Lovelace"]
    orgs = api.get(url(zd, "/api/v2/search"), params={"query": "type:organization globex"}).json()
    spec.validate_response("get", "/api/v2/search", 200, orgs)
    assert [o["name"] for o in orgs["results"]] == ["Globex"]
    count = api.get(url(zd, "/api/v2/search/count.json"), params={"query": "type:ticket tags:csv"}).json()
    assert count == {"count": 2}


def test_search_sorts_and_pages_with_absolute_next_page(zd: ZendeskBackend, api: requests.Session) -> None:
    """``sort_by``/``sort_order`` order results; ``next_page`` is absolute; pages past 1000 results fail."""
    assert search_ids(zd, api, "type:ticket", sort_by="priority", sort_order="desc") == [1, 2, 3]
    assert search_ids(zd, api, "type:ticket", sort_by="created_at", sort_order="asc") == [1, 2, 3]
    first = api.get(url(zd, "/api/v2/search.json"), params={"query": "type:ticket", "per_page": 2}).json()
    assert first["count"] == 3
    assert first["next_page"].startswith(f"{zd.base_url}/api/v2/search.json?")
    second = api.get(first["next_page"]).json()
    assert [r["id"] for r in second["results"]] == [3]
    assert second["next_page"] is None
    assert second["previous_page"].startswith(zd.base_url)
    too_far = api.get(url(zd, "/api/v2/search.json"), params={"query": "type:ticket", "page": 11})
    assert too_far.status_code == 422
    assert too_far.json()["error"] == "invalid"
    missing = api.get(url(zd, "/api/v2/search.json"))
    assert missing.status_code == 422


# -- incremental export -----------------------------------------------------------------------------------
def test_incremental_cursor_export(zd: ZendeskBackend, api: requests.Session, spec: Spec, clock: Clock) -> None:
    """The cursor export pages by ``after_url`` until ``end_of_stream``; a later change shows up after it."""
    start = int(START - 10 * 86400)
    r = api.get(url(zd, "/api/v2/incremental/tickets/cursor.json"), params={"start_time": start, "per_page": 2})
    assert r.status_code == 200
    body = r.json()
    spec.validate_response("get", "/api/v2/incremental/tickets/cursor", 200, body)
    assert [t["id"] for t in body["tickets"]] == [1, 2]
    assert body["end_of_stream"] is False
    assert body["after_url"].startswith(f"{zd.base_url}/api/v2/incremental/tickets/cursor.json?cursor=")
    body = api.get(body["after_url"]).json()
    spec.validate_response("get", "/api/v2/incremental/tickets/cursor", 200, body)
    assert [t["id"] for t in body["tickets"]] == [3]
    assert body["end_of_stream"] is True
    resume = body["after_url"]
    assert api.get(resume).json()["tickets"] == []
    # A change within the last minute is not exported yet, like Zendesk.
    clock.advance(120)
    api.put(url(zd, "/api/v2/tickets/1"), json={"ticket": {"tags": ["csv", "export", "vip"]}})
    assert api.get(resume).json()["tickets"] == []
    clock.advance(61)
    later = api.get(resume).json()
    assert [(t["id"], t["tags"]) for t in later["tickets"]] == [(1, ["csv", "export", "vip"])]
    assert later["end_of_stream"] is True
    # start_time filters by the time of the last change.
    recent = api.get(url(zd, "/api/v2/incremental/tickets/cursor"), params={"start_time": int(clock.now - 3600)})
    assert [t["id"] for t in recent.json()["tickets"]] == [1]
    assert api.get(url(zd, "/api/v2/incremental/tickets/cursor")).status_code == 400


def test_incremental_export_sees_new_tickets_and_pages_back(
    zd: ZendeskBackend, api: requests.Session, spec: Spec, clock: Clock
) -> None:
    """A ticket created after a scan reached ``end_of_stream`` shows up after it; ``before_url`` pages back."""
    path = "/api/v2/incremental/tickets/cursor"
    body = api.get(url(zd, path), params={"start_time": int(START - 10 * 86400)}).json()
    assert [t["id"] for t in body["tickets"]] == [1, 2, 3]
    assert body["end_of_stream"] is True
    clock.advance(120)
    requester = {"name": "Ada Lovelace", "email": "ada@acme.example"}
    created = api.post(
        url(zd, "/api/v2/tickets"), json={"ticket": {"comment": {"body": "New"}, "requester": requester}}
    )
    assert created.status_code == 201
    new_id = created.json()["ticket"]["id"]
    clock.advance(61)
    later = api.get(body["after_url"], params={"per_page": 1}).json()
    spec.validate_response("get", path, 200, later)
    assert [t["id"] for t in later["tickets"]] == [new_id]
    back = api.get(later["before_url"]).json()  # keeps per_page=1
    spec.validate_response("get", path, 200, back)
    assert [t["id"] for t in back["tickets"]] == [3]
    assert [t["id"] for t in api.get(back["before_url"]).json()["tickets"]] == [2]


def test_incremental_export_is_admin_only(zd: ZendeskBackend) -> None:
    """An agent who is not an admin gets 403 from the export."""
    session = requests.Session()
    session.auth = ("alex@cxbridge.example/token", zd.credentials()["api_token"])
    r = session.get(url(zd, "/api/v2/incremental/tickets/cursor"), params={"start_time": 0})
    assert r.status_code == 403
    assert session.get(url(zd, "/api/v2/tickets/1")).status_code == 200


# -- users, organizations, fields -------------------------------------------------------------------------
def test_users_and_organizations_match_spec(zd: ZendeskBackend, api: requests.Session, spec: Spec) -> None:
    """Show User, Show Many Users, Search Users, Show Organization and ``users/me``."""
    ada, grace = user_id(zd, "ada@acme.example"), user_id(zd, "grace@globex.example")
    one = api.get(url(zd, f"/api/v2/users/{ada}.json")).json()
    spec.validate_response("get", "/api/v2/users/{user_id}", 200, one)
    assert (one["user"]["name"], one["user"]["role"]) == ("Ada Lovelace", "end-user")
    many = api.get(url(zd, "/api/v2/users/show_many.json"), params={"ids": f"{grace},{ada},999"}).json()
    spec.validate_response("get", "/api/v2/users/show_many", 200, many)
    assert [u["email"] for u in many["users"]] == ["grace@globex.example", "ada@acme.example"]
    found = api.get(url(zd, "/api/v2/users/search.json"), params={"query": "linus@initech.example"}).json()
    spec.validate_response("get", "/api/v2/users/search", 200, found)
    assert [u["name"] for u in found["users"]] == ["Linus Torvalds"]
    org_id = one["user"]["organization_id"]
    org = api.get(url(zd, f"/api/v2/organizations/{org_id}")).json()
    spec.validate_response("get", "/api/v2/organizations/{organization_id}", 200, org)
    assert org["organization"]["name"] == "Acme Corp"
    assert org["organization"]["domain_names"] == ["acme.example"]
    assert org["organization"]["organization_fields"] == {"tier": "strategic"}
    me = api.get(url(zd, "/api/v2/users/me.json")).json()
    spec.validate_response("get", "/api/v2/users/me", 200, me)
    assert me["user"]["email"] == "agent@cxbridge.example"
    assert me["user"]["name"] == "Sam Agent"


def test_ticket_fields_include_the_issue_key_field(zd: ZendeskBackend, api: requests.Session, spec: Spec) -> None:
    """The custom field named in the config table is listed by the Ticket Fields API."""
    body = api.get(url(zd, "/api/v2/ticket_fields.json")).json()
    spec.validate_response("get", "/api/v2/ticket_fields", 200, body)
    custom = [f for f in body["ticket_fields"] if f["removable"]]
    assert [(f["id"], f["title"], f["type"]) for f in custom] == [
        (zd.config_table()["issue_key_field_id"], "Jira issue key", "text")
    ]
    one = api.get(url(zd, f"/api/v2/ticket_fields/{custom[0]['id']}")).json()
    spec.validate_response("get", "/api/v2/ticket_fields/{ticket_field_id}", 200, one)


# -- tags, safe updates, errors ---------------------------------------------------------------------------
def test_tags_api_adds_removes_and_sets(zd: ZendeskBackend, api: requests.Session, spec: Spec) -> None:
    """PUT adds, DELETE removes, POST replaces the ticket's tags."""
    added = api.put(url(zd, "/api/v2/tickets/3/tags.json"), json={"tags": ["vip", "billing"]})
    spec.validate_response("put", "/api/v2/tickets/{ticket_id}/tags", 200, added.json())
    assert added.json() == {"tags": ["billing", "vip"]}
    removed = api.delete(url(zd, "/api/v2/tickets/3/tags.json"), json={"tags": ["billing"]})
    assert removed.json() == {"tags": ["vip"]}
    removed = api.delete(url(zd, "/api/v2/tickets/3/tags.json"), params={"tags": "vip"})
    assert removed.json() == {"tags": []}
    replaced = api.post(url(zd, "/api/v2/tickets/3/tags"), json={"tags": ["a", "b"]})
    assert replaced.status_code == 201
    assert api.get(url(zd, "/api/v2/tickets/3/tags")).json() == {"tags": ["a", "b"]}


def test_safe_update_refuses_a_stale_stamp(zd: ZendeskBackend, api: requests.Session, clock: Clock) -> None:
    """``safe_update`` with an old ``updated_stamp`` answers 409 UpdateConflict and changes nothing."""
    stamp = api.get(url(zd, "/api/v2/tickets/1")).json()["ticket"]["updated_at"]
    clock.advance(5)
    api.put(url(zd, "/api/v2/tickets/1"), json={"ticket": {"priority": "high"}})
    stale = api.put(
        url(zd, "/api/v2/tickets/1"), json={"ticket": {"tags": ["only"], "safe_update": True, "updated_stamp": stamp}}
    )
    assert stale.status_code == 409
    assert stale.json()["error"] == "UpdateConflict"
    assert zd.model.tickets[1].tags == ["csv", "export"]
    tag_stale = api.put(
        url(zd, "/api/v2/tickets/1/tags"), json={"tags": ["x"], "safe_update": "true", "updated_stamp": stamp}
    )
    assert tag_stale.status_code == 409
    fresh = api.get(url(zd, "/api/v2/tickets/1")).json()["ticket"]["updated_at"]
    ok = api.put(
        url(zd, "/api/v2/tickets/1"), json={"ticket": {"tags": ["only"], "safe_update": True, "updated_stamp": fresh}}
    )
    assert ok.status_code == 200
    assert ok.json()["ticket"]["tags"] == ["only"]


def test_vendor_errors(zd: ZendeskBackend, api: requests.Session) -> None:
    """404 RecordNotFound, 422 RecordInvalid with details, 404 InvalidEndpoint for unknown paths."""
    missing = api.get(url(zd, "/api/v2/tickets/999.json"))
    assert (missing.status_code, missing.json()) == (404, {"error": "RecordNotFound", "description": "Not found"})
    assert api.get(url(zd, "/api/v2/users/1")).status_code == 404  # a ticket id is not a user id
    blank = api.post(url(zd, "/api/v2/tickets"), json={"ticket": {"subject": "No description"}})
    assert blank.status_code == 422
    assert blank.json()["error"] == "RecordInvalid"
    assert blank.json()["details"]["description"][0]["error"] == "BlankValue"
    bad_status = api.put(url(zd, "/api/v2/tickets/1"), json={"ticket": {"status": "done"}})
    assert bad_status.status_code == 422
    assert "status" in bad_status.json()["details"]
    api.put(url(zd, "/api/v2/tickets/3"), json={"ticket": {"status": "closed"}})
    closed = api.put(url(zd, "/api/v2/tickets/3"), json={"ticket": {"comment": {"body": "again"}}})
    assert closed.status_code == 422
    unknown = api.get(url(zd, "/api/v2/not_an_endpoint.json"))
    assert (unknown.status_code, unknown.json()["error"]) == (404, "InvalidEndpoint")
    no_ticket = api.put(url(zd, "/api/v2/tickets/1"), json={"status": "open"})
    assert no_ticket.status_code == 400


@pytest.mark.parametrize(
    "auth",
    [
        None,
        ("agent@cxbridge.example/token", "wrong"),
        ("agent@cxbridge.example", "password"),  # password authentication is off
        ("ada@acme.example/token", "<token>"),  # end users have no API access
        ("nobody@cxbridge.example/token", "<token>"),
    ],
)
def test_auth_is_enforced(zd: ZendeskBackend, auth: tuple[str, str] | None) -> None:
    """Refused credentials get 401 with Zendesk's body."""
    if auth is not None and auth[1] == "<token>":
        auth = (auth[0], zd.credentials()["api_token"])
    r = requests.get(url(zd, "/api/v2/tickets/1.json"), auth=auth)
    assert r.status_code == 401
    assert r.json() == {"error": "Couldn't authenticate you"}


def test_bearer_token_and_second_agent(zd: ZendeskBackend) -> None:
    """An OAuth bearer token acts as the sandbox admin; any agent may use the account's API token."""
    bearer = requests.put(
        url(zd, "/api/v2/tickets/2"),
        json={"ticket": {"comment": {"body": "hi"}}},
        headers={"Authorization": f"Bearer {zd.credentials()['oauth_token']}"},
    )
    assert bearer.status_code == 200
    assert bearer.json()["audit"]["author_id"] == user_id(zd, "agent@cxbridge.example")
    wrong = requests.get(url(zd, "/api/v2/tickets/2"), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    alex = requests.put(
        url(zd, "/api/v2/tickets/2"),
        json={"ticket": {"comment": {"body": "me too"}}},
        auth=("alex@cxbridge.example/token", zd.credentials()["api_token"]),
    )
    assert alex.json()["audit"]["author_id"] == user_id(zd, "alex@cxbridge.example")


# -- framework features through the Zendesk backend ----------------------------------------------------------
def test_rate_limit_headers_and_enforced_429(zd: ZendeskBackend, api: requests.Session) -> None:
    """Every answer carries X-Rate-Limit headers; an enforced limit answers 429 with Retry-After."""
    first = api.get(url(zd, "/api/v2/tickets/1"))
    second = api.get(url(zd, "/api/v2/tickets/1"))
    assert first.headers["X-Rate-Limit"] == "700"
    assert int(second.headers["X-Rate-Limit-Remaining"]) == int(first.headers["X-Rate-Limit-Remaining"]) - 1
    assert "ratelimit-limit" not in first.headers
    assert requests.post(url(zd, "/_sandbox/rate-limit"), json={"limit": "2/min"}).json() == {"ok": True}
    answers = [api.get(url(zd, "/api/v2/tickets.json")) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[1].headers["X-Rate-Limit-Remaining"] == "0"
    assert answers[1].headers["ratelimit-remaining"] == "0"
    limited = answers[2]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-Rate-Limit"] == "2"
    assert limited.json()["error"] == "APIRateLimitExceeded"


def test_fail_next_injects_one_fault(zd: ZendeskBackend, api: requests.Session) -> None:
    """``/_sandbox/fail-next`` fails the next matching call once, with Retry-After when asked."""
    requests.post(url(zd, "/_sandbox/fail-next"), json={"status": 503, "retry_after": 7, "path": "/tickets/2"})
    assert api.get(url(zd, "/api/v2/tickets/1")).status_code == 200
    failed = api.get(url(zd, "/api/v2/tickets/2"))
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "7"
    assert api.get(url(zd, "/api/v2/tickets/2")).status_code == 200


def test_unmatched_vendor_url_fails_loudly(zd: ZendeskBackend, api: requests.Session) -> None:
    """In-process, a request to any other URL never leaves the process: responses refuses it."""
    with pytest.raises(requests.ConnectionError):
        api.get("https://someone-else.zendesk.com/api/v2/tickets/1.json")


def test_state_and_seeds(zd: ZendeskBackend, api: requests.Session) -> None:
    """``state()`` holds tickets with comments, tags and custom fields, users, organizations and webhooks."""
    api.post(
        url(zd, "/api/v2/webhooks"),
        json={
            "webhook": {
                "name": "cxbridge",
                "endpoint": "http://127.0.0.1:9/hook",
                "http_method": "POST",
                "request_format": "json",
                "status": "active",
                "subscriptions": ["conditional_ticket_events"],
            }
        },
    )
    state = zd.state()
    assert [t["id"] for t in state["tickets"]] == [1, 2, 3]
    first = state["tickets"][0]
    assert [c["public"] for c in first["comments"]] == [True, False]
    assert first["comments"][1]["body"] == "Reproduced on their 2M-row report; workaround: export by month."
    assert first["tags"] == ["csv", "export"]
    assert {t["priority"] for t in state["tickets"]} == {"urgent", "high", "normal"}
    emails = {u["email"] for u in state["users"]}
    assert {"ada@acme.example", "grace@globex.example", "linus@initech.example", "agent@cxbridge.example"} <= emails
    assert [o["name"] for o in state["organizations"]] == ["Acme Corp", "Globex", "Initech"]
    assert [(o["organization_fields"]["tier"], o["domain_names"]) for o in state["organizations"]] == [
        ("strategic", ["acme.example"]),
        ("enterprise", ["globex.example"]),
        ("standard", ["initech.example"]),
    ]
    assert [w["name"] for w in state["webhooks"]] == ["cxbridge"]
    zd.reset()
    assert zd.state()["tickets"] == []
    assert zd.config_table()["issue_key_field_id"] == state["ticket_fields"][-1]["id"]
    zd.seed("empty")
    assert zd.state()["organizations"] == []
    with pytest.raises(ValueError, match="unknown Zendesk seed"):
        zd.seed("nope")
    refused = requests.post(url(zd, "/_sandbox/seed"), json={"name": "nope"})
    assert refused.status_code == 400
    assert requests.get(url(zd, "/_sandbox/state")).json()["tickets"] == []


def test_registered_through_the_plugin_hook() -> None:
    """``mock_vendors(["zendesk"])`` finds the emulator through the plugin's ``register_sandbox_backends``."""
    with mock_vendors(["zendesk"], seed="demo") as vendors:
        backend = vendors["zendesk"]
        assert isinstance(backend, ZendeskBackend)
        assert vendors.base_url("zendesk") == "https://cxbridge-sandbox.zendesk.com"
        creds = backend.credentials()
        r = requests.get(
            f"{backend.base_url}/api/v2/tickets/2.json", auth=(f"{creds['email']}/token", creds["api_token"]), timeout=5
        )
        assert r.json()["ticket"]["subject"] == "CSV export times out on large reports"
        assert vendors.calls() == {"zendesk": 1}


# -- attachments -----------------------------------------------------------------------------------------------
def test_uploads_attach_to_a_comment_and_match_the_spec(zd: ZendeskBackend, api: requests.Session, spec: Spec) -> None:
    """Upload Files (201, token), a comment naming the token carries the attachment, Show Attachment, and the
    content URL on the account's own domain serves the bytes."""
    r = api.post(
        url(zd, "/api/v2/uploads.json"),
        params={"filename": "screen shot.png"},
        data=b"\x89PNG" + bytes(16),
        headers={"Content-Type": "image/png"},
    )
    assert r.status_code == 201, r.text
    spec.validate_response("post", "/api/v2/uploads", 201, r.json())
    upload = r.json()["upload"]
    attachment = upload["attachment"]
    assert (attachment["file_name"], attachment["size"], attachment["content_type"]) == (
        "screen shot.png",
        20,
        "image/png",
    )
    assert attachment["content_url"].startswith(zd.base_url + "/attachments/token/")
    comment = {"body": "See the screenshot.", "public": False, "uploads": [upload["token"]]}
    assert api.put(url(zd, "/api/v2/tickets/1.json"), json={"ticket": {"comment": comment}}).status_code == 200
    listed = api.get(url(zd, "/api/v2/tickets/1/comments.json")).json()
    spec.validate_response("get", "/api/v2/tickets/{ticket_id}/comments", 200, listed)
    assert [a["id"] for a in listed["comments"][-1]["attachments"]] == [attachment["id"]]
    shown = api.get(url(zd, f"/api/v2/attachments/{attachment['id']}.json"))
    spec.validate_response("get", "/api/v2/attachments/{attachment_id}", 200, shown.json())
    assert api.get(attachment["content_url"]).content == b"\x89PNG" + bytes(16)
    # a token is spent by the comment that names it; an unknown token is refused
    again = {"body": "Again.", "uploads": [upload["token"]]}
    assert api.put(url(zd, "/api/v2/tickets/1.json"), json={"ticket": {"comment": again}}).status_code == 422
    assert api.post(url(zd, "/api/v2/uploads.json"), data=b"x").status_code == 400


def test_redact_string_in_comment_matches_the_spec(zd: ZendeskBackend, api: requests.Session, spec: Spec) -> None:
    """Redact String in Comment replaces the text with ▇ for good, moves the ticket's updated_at, fires no trigger."""
    comment = {"body": "My card is 4111 1111 1111 1111.", "public": False}
    assert api.put(url(zd, "/api/v2/tickets/1.json"), json={"ticket": {"comment": comment}}).status_code == 200
    before = api.get(url(zd, "/api/v2/tickets/1.json")).json()["ticket"]["updated_at"]
    cid = api.get(url(zd, "/api/v2/tickets/1/comments.json")).json()["comments"][-1]["id"]
    sent = len(zd.webhooks_sent)
    r = api.put(url(zd, f"/api/v2/tickets/1/comments/{cid}/redact.json"), json={"text": "4111 1111 1111 1111"})
    assert r.status_code == 200, r.text
    spec.validate_response("put", "/api/v2/tickets/{ticket_id}/comments/{ticket_comment_id}/redact", 200, r.json())
    assert r.json()["comment"]["body"] == "My card is " + "\u2587" * 19 + "."
    assert api.get(url(zd, "/api/v2/tickets/1.json")).json()["ticket"]["updated_at"] >= before
    assert len(zd.webhooks_sent) == sent
    assert api.put(url(zd, f"/api/v2/tickets/1/comments/{cid}/redact.json"), json={}).status_code == 400
