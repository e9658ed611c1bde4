"""The Jira emulator's answers match Atlassian's published description (Spec("jira")) and ADF schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cxbridge_jira.sandbox.backend import JiraBackend

from cxbridge.testing import Spec, mock_vendors, validate_adf

ADF = {
    "type": "doc",
    "version": 1,
    "content": [
        {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Context"}]},
        {
            "type": "paragraph",
            "content": [
                {"type": "text", "text": "Checkout fails for "},
                {"type": "text", "text": "Acme", "marks": [{"type": "strong"}]},
            ],
        },
        {
            "type": "bulletList",
            "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "one"}]}]},
            ],
        },
    ],
}


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec("jira")


class Site:
    """A demo-seeded Cloud site in-process, with a session authenticated as the integration user."""

    def __init__(self, backend: JiraBackend, base: str) -> None:
        self.backend = backend
        self.base = base
        creds = backend.credentials()
        self.http = requests.Session()
        self.http.auth = (creds["email"], creds["api_token"])

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.base + path, timeout=5, **kwargs)

    def create(self, api: int = 3, **fields: Any) -> dict[str, Any]:
        body = {"project": {"key": "ENG"}, "issuetype": {"name": "Bug"}, "summary": "Checkout fails", **fields}
        response = self.call("POST", f"/rest/api/{api}/issue", json={"fields": body})
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture
def site() -> Iterator[Site]:
    backend = JiraBackend()
    with mock_vendors(backends={"jira": backend}, seed="demo") as vendors:
        yield Site(backend, vendors.base_url("jira"))


def check(spec: Spec, response: requests.Response, method: str, template: str) -> Any:
    """Validate a response body against the v3 operation (v2 shares its schemas)."""
    body = response.json() if response.content else None
    spec.validate_response(method, template, response.status_code, body)
    return body


def test_server_info_and_myself_match_the_spec(site: Site, spec: Spec) -> None:
    """serverInfo (read anonymously, as pycontribs does first) and myself validate; baseUrl is the caller's host."""
    info = check(spec, requests.get(site.base + "/rest/api/2/serverInfo", timeout=5), "GET", "/rest/api/3/serverInfo")
    assert info["baseUrl"] == site.base
    assert info["deploymentType"] == "Cloud"
    assert info["versionNumbers"][0] > 1000
    me = check(spec, site.call("GET", "/rest/api/3/myself"), "GET", "/rest/api/3/myself")
    assert me["emailAddress"] == "cxbridge@cxbridge.example"
    assert me["accountId"].startswith("712020:")


def test_configuration_endpoints_match_the_spec(site: Site, spec: Spec) -> None:
    """project (with issue types), priorities and fields (with the impact custom fields) validate."""
    project = check(spec, site.call("GET", "/rest/api/3/project/ENG"), "GET", "/rest/api/3/project/{projectIdOrKey}")
    assert {t["name"] for t in project["issueTypes"]} == {"Bug", "Task"}
    priorities = check(spec, site.call("GET", "/rest/api/3/priority"), "GET", "/rest/api/3/priority")
    assert [(p["id"], p["name"]) for p in priorities] == [
        ("1", "Highest"),
        ("2", "High"),
        ("3", "Medium"),
        ("4", "Low"),
        ("5", "Lowest"),
    ]
    fields = check(spec, site.call("GET", "/rest/api/3/field"), "GET", "/rest/api/3/field")
    custom = {f["name"]: f for f in fields if f["custom"]}
    assert custom["ARR at stake"]["schema"]["type"] == "number"
    assert custom["Soonest renewal"]["schema"]["type"] == "date"
    assert "cf[10100]" in custom["ARR at stake"]["clauseNames"]
    assert all(f["id"].startswith("customfield_101") for f in custom.values())


def test_create_and_get_issue_match_the_spec(site: Site, spec: Spec) -> None:
    """createIssue answers 201 CreatedIssue; getIssue an IssueBean with ADF (v3) or wiki text (v2)."""
    created = site.call(
        "POST",
        "/rest/api/3/issue",
        json={
            "fields": {
                "project": {"key": "ENG"},
                "issuetype": {"name": "Bug"},
                "summary": "Checkout fails",
                "description": ADF,
                "priority": {"name": "High"},
                "labels": ["cxb-zd-4211"],
                "customfield_10100": 120000,
                "customfield_10103": "2026-03-01",
                "customfield_10104": "Enterprise",
            },
            "properties": [{"key": "cxbridge", "value": {"zendesk": [4211]}}],
        },
    )
    body = check(spec, created, "POST", "/rest/api/3/issue")
    assert created.status_code == 201
    assert body["key"] == "ENG-1"
    assert body["self"].endswith(f"/rest/api/3/issue/{body['id']}")
    v3 = check(
        spec,
        site.call("GET", "/rest/api/3/issue/ENG-1", params={"properties": "cxbridge"}),
        "GET",
        "/rest/api/3/issue/{issueIdOrKey}",
    )
    fields = v3["fields"]
    assert fields["description"] == ADF
    validate_adf(fields["description"])
    assert fields["status"]["name"] == "To Do"
    assert fields["status"]["statusCategory"]["key"] == "new"
    assert fields["priority"]["name"] == "High"
    assert fields["labels"] == ["cxb-zd-4211"]
    assert fields["customfield_10100"] == 120000
    assert fields["customfield_10103"] == "2026-03-01"
    assert fields["customfield_10101"] is None
    assert v3["properties"] == {"cxbridge": {"zendesk": [4211]}}
    v2 = check(
        spec,
        site.call("GET", f"/rest/api/2/issue/{body['id']}", params={"fields": "summary,description"}),
        "GET",
        "/rest/api/3/issue/{issueIdOrKey}",
    )
    assert set(v2["fields"]) == {"summary", "description"}
    assert v2["fields"]["description"] == "h2. Context\n\nCheckout fails for *Acme*\n\n* one"


def test_v2_text_reads_back_as_valid_adf_in_v3(site: Site) -> None:
    """A wiki string written through v2 comes back unchanged in v2 and as a valid ADF document in v3."""
    text = "First line\nsecond line\n\nNext paragraph"
    created = site.create(api=2, description=text)
    assert site.call("GET", f"/rest/api/2/issue/{created['key']}").json()["fields"]["description"] == text
    adf = site.call("GET", f"/rest/api/3/issue/{created['key']}").json()["fields"]["description"]
    validate_adf(adf)
    assert [p["type"] for p in adf["content"]] == ["paragraph", "paragraph"]
    assert adf["content"][0]["content"][1] == {"type": "hardBreak"}


def test_create_errors_are_error_collections(site: Site, spec: Spec) -> None:
    """Missing fields and a string description in v3 answer 400 ErrorCollections naming the fields."""
    missing = site.call(
        "POST", "/rest/api/3/issue", json={"fields": {"project": {"key": "ENG"}, "issuetype": {"name": "Bug"}}}
    )
    body = check(spec, missing, "POST", "/rest/api/3/issue")
    assert missing.status_code == 400
    assert body == {"errorMessages": [], "errors": {"summary": "You must specify a summary of the issue."}}
    wrong = site.call(
        "POST",
        "/rest/api/3/issue",
        json={
            "fields": {"project": {"key": "ENG"}, "issuetype": {"name": "Bug"}, "summary": "x", "description": "plain"}
        },
    )
    assert wrong.status_code == 400
    assert wrong.json()["errors"] == {
        "description": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    }
    v2_adf = site.call(
        "POST",
        "/rest/api/2/issue",
        json={"fields": {"project": {"key": "ENG"}, "issuetype": {"name": "Bug"}, "summary": "x", "description": ADF}},
    )
    assert v2_adf.json()["errors"] == {"description": "Operation value must be a string"}
    unknown = site.call(
        "POST",
        "/rest/api/3/issue",
        json={
            "fields": {"project": {"key": "NOPE"}, "issuetype": {"name": "Bug"}, "summary": "x", "customfield_99999": 1}
        },
    )
    errors = unknown.json()["errors"]
    assert set(errors) == {"project", "customfield_99999"}
    bad_number = site.call(
        "POST",
        "/rest/api/3/issue",
        json={
            "fields": {
                "project": {"key": "ENG"},
                "issuetype": {"name": "Bug"},
                "summary": "x",
                "customfield_10100": "lots",
            }
        },
    )
    assert set(bad_number.json()["errors"]) == {"customfield_10100"}
    assert site.backend.model.issues == {}


def test_not_found_and_unauthenticated_bodies(site: Site, spec: Spec) -> None:
    """404 says what Jira says; missing credentials give an ErrorCollection, wrong ones Jira's plain 401."""
    missing = site.call("GET", "/rest/api/3/issue/ENG-404")
    assert missing.status_code == 404
    body = missing.json()
    spec.validate_schema("ErrorCollection", body)
    assert body == {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}
    anonymous = requests.get(site.base + "/rest/api/3/myself", timeout=5)
    assert anonymous.status_code == 401
    spec.validate_schema("ErrorCollection", anonymous.json())
    wrong = requests.get(site.base + "/rest/api/3/myself", auth=("cxbridge@cxbridge.example", "nope"), timeout=5)
    assert wrong.status_code == 401
    assert wrong.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
    bearer = requests.get(site.base + "/rest/api/3/myself", headers={"Authorization": "Bearer x"}, timeout=5)
    assert bearer.status_code == 401


def test_transitions_match_the_spec(site: Site, spec: Spec) -> None:
    """getTransitions lists the workflow from the current status; doTransition answers 204, bad ids 400."""
    key = site.create()["key"]
    listed = check(
        spec,
        site.call("GET", f"/rest/api/3/issue/{key}/transitions"),
        "GET",
        "/rest/api/3/issue/{issueIdOrKey}/transitions",
    )
    assert {t["name"]: t["to"]["statusCategory"]["key"] for t in listed["transitions"]} == {
        "In Progress": "indeterminate",
        "Done": "done",
    }
    done = next(t["id"] for t in listed["transitions"] if t["name"] == "Done")
    moved = site.call("POST", f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": done}})
    assert moved.status_code == 204
    assert moved.content == b""
    fields = site.call("GET", f"/rest/api/3/issue/{key}").json()["fields"]
    assert fields["status"]["name"] == "Done"
    assert fields["resolution"]["name"] == "Done"
    assert fields["resolutiondate"] is not None
    bad = site.call("POST", f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": "999"}})
    assert bad.status_code == 400
    spec.validate_schema("ErrorCollection", bad.json())
    assert bad.json()["errorMessages"] == ["Transition id '999' is not valid for this issue."]
    reopened = site.call("POST", f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": "11"}})
    assert reopened.status_code == 204
    assert site.call("GET", f"/rest/api/3/issue/{key}").json()["fields"]["resolution"] is None


def test_the_workflow_offers_reopen_only_from_done(site: Site, spec: Spec) -> None:
    """The site's workflow has a transition that is not global: Reopen leaves Done (only) for To Do."""
    key = site.create()["key"]
    path = f"/rest/api/3/issue/{key}/transitions"
    assert "Reopen" not in {t["name"] for t in site.call("GET", path).json()["transitions"]}
    assert site.call("POST", path, json={"transition": {"id": "41"}}).status_code == 400  # not from To Do
    site.call("POST", path, json={"transition": {"id": "31"}})
    listed = check(spec, site.call("GET", path), "GET", "/rest/api/3/issue/{issueIdOrKey}/transitions")
    reopen = next(t for t in listed["transitions"] if t["name"] == "Reopen")
    assert (reopen["isGlobal"], reopen["to"]["name"], reopen["to"]["statusCategory"]["key"]) == (False, "To Do", "new")
    assert all(t["isGlobal"] for t in listed["transitions"] if t["name"] != "Reopen")
    assert site.call("POST", path, json={"transition": {"id": "41"}}).status_code == 204
    assert site.call("GET", f"/rest/api/3/issue/{key}").json()["fields"]["status"]["name"] == "To Do"


def test_comments_match_the_spec(site: Site, spec: Spec) -> None:
    """addComment 201, getComments PageOfComments (offset paging), updateComment edits in place."""
    key = site.create()["key"]
    first = check(
        spec,
        site.call("POST", f"/rest/api/3/issue/{key}/comment", json={"body": ADF}),
        "POST",
        "/rest/api/3/issue/{issueIdOrKey}/comment",
    )
    validate_adf(first["body"])
    assert first["author"]["emailAddress"] == "cxbridge@cxbridge.example"
    v2 = site.call("POST", f"/rest/api/2/issue/{key}/comment", json={"body": "plain *wiki*"})
    assert v2.status_code == 201
    assert v2.json()["body"] == "plain *wiki*"
    page = check(
        spec,
        site.call("GET", f"/rest/api/3/issue/{key}/comment", params={"maxResults": 1}),
        "GET",
        "/rest/api/3/issue/{issueIdOrKey}/comment",
    )
    assert (page["total"], page["startAt"], len(page["comments"])) == (2, 0, 1)
    second = site.call("GET", f"/rest/api/3/issue/{key}/comment", params={"startAt": 1}).json()["comments"]
    validate_adf(second[0]["body"])
    edited = check(
        spec,
        site.call("PUT", f"/rest/api/2/issue/{key}/comment/{first['id']}", json={"body": "impact: 3 customers"}),
        "PUT",
        "/rest/api/3/issue/{issueIdOrKey}/comment/{id}",
    )
    assert edited["id"] == first["id"]
    assert edited["body"] == "impact: 3 customers"
    listed = site.call("GET", f"/rest/api/2/issue/{key}/comment").json()["comments"]
    assert [c["body"] for c in listed] == ["impact: 3 customers", "plain *wiki*"]
    string_in_v3 = site.call("POST", f"/rest/api/3/issue/{key}/comment", json={"body": "plain"})
    assert string_in_v3.status_code == 400
    assert string_in_v3.json()["errors"] == {"comment": "Comment body is not valid!"}


def test_remote_links_create_then_update_by_global_id(site: Site, spec: Spec) -> None:
    """createOrUpdateRemoteIssueLink: 201 for a new globalId, 200 for the same one; list, get and delete."""
    key = site.create()["key"]
    link = {
        "globalId": "system=https://acme.zendesk.com&id=4211",
        "application": {"type": "com.zendesk", "name": "Zendesk"},
        "relationship": "escalated from",
        "object": {
            "url": "https://acme.zendesk.com/agent/tickets/4211",
            "title": "ZD-4211",
            "summary": "Checkout fails",
        },
    }
    created = site.call("POST", f"/rest/api/3/issue/{key}/remotelink", json=link)
    first = check(spec, created, "POST", "/rest/api/3/issue/{issueIdOrKey}/remotelink")
    assert created.status_code == 201
    assert isinstance(first["id"], int)
    updated = site.call(
        "POST",
        f"/rest/api/3/issue/{key}/remotelink",
        json={**link, "object": {"url": link["object"]["url"], "title": "ZD-4211 (solved)"}},
    )
    second = check(spec, updated, "POST", "/rest/api/3/issue/{issueIdOrKey}/remotelink")
    assert updated.status_code == 200
    assert second["id"] == first["id"]
    listed = site.call("GET", f"/rest/api/3/issue/{key}/remotelink").json()
    assert len(listed) == 1
    spec.validate_schema("RemoteIssueLink", listed[0])
    assert listed[0]["object"] == {"url": link["object"]["url"], "title": "ZD-4211 (solved)"}
    one = check(
        spec,
        site.call("GET", f"/rest/api/3/issue/{key}/remotelink", params={"globalId": link["globalId"]}),
        "GET",
        "/rest/api/3/issue/{issueIdOrKey}/remotelink",
    )
    assert one["id"] == first["id"]
    missing_title = site.call("POST", f"/rest/api/3/issue/{key}/remotelink", json={"object": {"url": "https://x"}})
    assert missing_title.status_code == 400
    assert missing_title.json() == {"errorMessages": [], "errors": {"title": "'title' is required."}}
    gone = site.call("DELETE", f"/rest/api/3/issue/{key}/remotelink", params={"globalId": link["globalId"]})
    assert gone.status_code == 204
    assert site.call("GET", f"/rest/api/3/issue/{key}/remotelink").json() == []
    again = site.call("DELETE", f"/rest/api/3/issue/{key}/remotelink", params={"globalId": link["globalId"]})
    assert again.status_code == 404


def test_issue_properties_match_the_spec(site: Site, spec: Spec) -> None:
    """setIssueProperty 201 then 200; getIssueProperty EntityProperty; keys listed; unknown key 404."""
    key = site.create()["key"]
    path = f"/rest/api/3/issue/{key}/properties/cxbridge.links"
    first = site.call("PUT", path, json={"tickets": [1]})
    check(spec, first, "PUT", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}")
    assert first.status_code == 201
    second = site.call("PUT", path, json={"tickets": [1, 2]})
    assert second.status_code == 200
    got = check(spec, site.call("GET", path), "GET", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}")
    assert got == {"key": "cxbridge.links", "value": {"tickets": [1, 2]}}
    keys = check(
        spec,
        site.call("GET", f"/rest/api/3/issue/{key}/properties"),
        "GET",
        "/rest/api/3/issue/{issueIdOrKey}/properties",
    )
    assert [k["key"] for k in keys["keys"]] == ["cxbridge.links"]
    assert site.call("GET", f"/rest/api/3/issue/{key}/properties/other").status_code == 404
    assert site.call("PUT", path, data=b"").status_code == 400


def test_search_jql_matches_the_spec_and_pages_by_token(site: Site, spec: Spec) -> None:
    """search/jql: fields default to id, no total, nextPageToken until isLast; unbounded JQL is refused."""
    keys = [site.create(labels=["batch"])["key"] for _ in range(5)]
    first = check(
        spec,
        site.call("GET", "/rest/api/3/search/jql", params={"jql": "labels = batch ORDER BY key ASC", "maxResults": 2}),
        "GET",
        "/rest/api/3/search/jql",
    )
    assert first["issues"] == [{"id": "10000"}, {"id": "10001"}]
    assert first["isLast"] is False
    assert "total" not in first
    seen = [i["id"] for i in first["issues"]]
    token = first["nextPageToken"]
    while token:
        page = site.call(
            "POST",
            "/rest/api/3/search/jql",
            json={
                "jql": "labels = batch ORDER BY key ASC",
                "maxResults": 2,
                "nextPageToken": token,
                "fields": ["summary", "status"],
            },
        ).json()
        spec.validate_response("POST", "/rest/api/3/search/jql", 200, page)
        seen += [i["id"] for i in page["issues"]]
        assert all(set(i["fields"]) == {"summary", "status"} for i in page["issues"])
        token = page.get("nextPageToken")
        assert page["isLast"] is (token is None)
    assert len(seen) == len(keys) == len(set(seen))
    unbounded = site.call("GET", "/rest/api/3/search/jql", params={"jql": "order by key desc"})
    assert unbounded.status_code == 400
    assert unbounded.json()["errorMessages"] == [
        "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
    ]
    wrong_token = site.call(
        "GET",
        "/rest/api/3/search/jql",
        params={"jql": "project = ENG", "nextPageToken": token or first["nextPageToken"]},
    )
    assert wrong_token.status_code == 400
    count = site.call("POST", "/rest/api/3/search/approximate-count", json={"jql": "labels = batch"})
    assert count.json() == {"count": 5}


def test_removed_search_answers_410_on_cloud(site: Site, spec: Spec) -> None:
    """/rest/api/{2,3}/search is gone on Cloud: 410 with Atlassian's migration message."""
    for api in (2, 3):
        response = site.call("GET", f"/rest/api/{api}/search", params={"jql": "project = ENG"})
        assert response.status_code == 410
        spec.validate_schema("ErrorCollection", response.json())
        assert "/rest/api/3/search/jql" in response.json()["errorMessages"][0]


def test_data_center_search_has_total_and_offsets(spec: Spec) -> None:
    """DC: /rest/api/2/search pages with startAt/maxResults/total; v3 and /search/jql do not exist."""
    backend = JiraBackend(deployment="datacenter")
    with mock_vendors(backends={"jira": backend}, seed="demo") as vendors:
        base = vendors.base_url("jira")
        token = backend.credentials()["personal_access_token"]
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        info = http.get(base + "/rest/api/2/serverInfo", timeout=5).json()
        assert info["deploymentType"] == "Server"
        for n in range(3):
            created = http.post(
                base + "/rest/api/2/issue",
                timeout=5,
                json={"fields": {"project": {"key": "ENG"}, "issuetype": {"name": "Task"}, "summary": f"task {n}"}},
            )
            assert created.status_code == 201
        page = http.get(
            base + "/rest/api/2/search",
            timeout=5,
            params={"jql": "project = ENG ORDER BY key", "startAt": 1, "maxResults": 1},
        ).json()
        spec.validate_schema("SearchResults", page)
        assert (page["startAt"], page["maxResults"], page["total"]) == (1, 1, 3)
        assert page["issues"][0]["key"] == "ENG-2"
        assert page["issues"][0]["fields"]["reporter"]["name"] == "cxbridge"
        assert "accountId" not in page["issues"][0]["fields"]["reporter"]
        assert http.get(base + "/rest/api/3/issue/ENG-1", timeout=5).status_code == 404
        assert http.get(base + "/rest/api/2/search/jql", params={"jql": "project = ENG"}, timeout=5).status_code == 404
        basic = requests.get(base + "/rest/api/2/myself", auth=("cxbridge@cxbridge.example", "x"), timeout=5)
        assert basic.status_code == 401


def test_create_and_edit_meta_match_the_spec_and_follow_the_project_screens(site: Site, spec: Spec) -> None:
    """createmeta (issue types, fields of one type) and editmeta validate; a required field, and fields taken off the
    create or edit screen, change what they list and what create and edit accept, with Jira's words."""
    project = site.backend.model.project("ENG")
    assert project is not None
    types = check(
        spec,
        site.call("GET", "/rest/api/3/issue/createmeta/ENG/issuetypes"),
        "GET",
        "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes",
    )
    bug = next(t for t in types["issueTypes"] if t["name"] == "Bug")
    path = f"/rest/api/3/issue/createmeta/ENG/issuetypes/{bug['id']}"
    template = "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}"
    fields = {f["fieldId"]: f for f in check(spec, site.call("GET", path), "GET", template)["fields"]}
    assert fields["summary"]["required"] is True
    assert fields["reporter"]["hasDefaultValue"] is True
    assert fields["customfield_10100"]["required"] is False

    project.required_fields.add("customfield_10104")
    project.off_create_screen.add("customfield_10100")
    project.off_edit_screen.add("customfield_10101")
    page = check(spec, site.call("GET", path, params={"maxResults": 5}), "GET", template)
    assert (page["maxResults"], page["startAt"], len(page["fields"])) == (5, 0, 5)
    fields = {f["fieldId"]: f for f in check(spec, site.call("GET", path), "GET", template)["fields"]}
    assert fields["customfield_10104"]["required"] is True
    assert "customfield_10100" not in fields
    body = {"project": {"key": "ENG"}, "issuetype": {"name": "Bug"}, "summary": "s", "customfield_10100": 5}
    refused = site.call("POST", "/rest/api/3/issue", json={"fields": body})
    assert refused.status_code == 400
    assert refused.json()["errors"] == {
        "customfield_10100": "Field 'customfield_10100' cannot be set. It is not on the appropriate screen, or "
        "unknown.",
        "customfield_10104": "Highest tier is required.",
    }
    created = site.create(customfield_10104="gold")
    edit = check(
        spec,
        site.call("GET", f"/rest/api/3/issue/{created['key']}/editmeta"),
        "GET",
        "/rest/api/3/issue/{issueIdOrKey}/editmeta",
    )
    assert "customfield_10101" not in edit["fields"]
    assert "customfield_10102" in edit["fields"]
    refused = site.call("PUT", f"/rest/api/3/issue/{created['key']}", json={"fields": {"customfield_10101": 2}})
    assert refused.status_code == 400
    assert "customfield_10101" in refused.json()["errors"]
    missing = site.call("GET", "/rest/api/3/issue/createmeta/NOPE/issuetypes")
    assert missing.status_code == 404
    assert missing.json()["errorMessages"] == ["No project could be found with key 'NOPE'."]


def test_attachments_match_the_spec(site: Site, spec: Spec) -> None:
    """addAttachment: multipart under ``file`` with the XSRF header, 200 with the attachments; the issue's
    ``attachment`` field lists them; without the header 403; beyond the site's limit 413."""
    key = site.create()["key"]
    path = f"/rest/api/3/issue/{key}/attachments"
    files = {"file": ("trace.har", b'{"log": {}}', "application/json")}
    blocked = site.call("POST", path, files=files)
    assert blocked.status_code == 403
    assert blocked.json()["errorMessages"] == ["XSRF check failed"]
    added = check(
        spec,
        site.call("POST", path, files=files, headers={"X-Atlassian-Token": "no-check"}),
        "POST",
        "/rest/api/3/issue/{issueIdOrKey}/attachments",
    )
    assert [(a["filename"], a["size"], a["mimeType"]) for a in added] == [("trace.har", 11, "application/json")]
    issue = check(
        spec,
        site.call("GET", f"/rest/api/3/issue/{key}", params={"fields": "attachment"}),
        "GET",
        "/rest/api/3/issue/{issueIdOrKey}",
    )
    assert [a["id"] for a in issue["fields"]["attachment"]] == [added[0]["id"]]
    shown = check(
        spec,
        site.call("GET", f"/rest/api/3/attachment/{added[0]['id']}"),
        "GET",
        "/rest/api/3/attachment/{id}",
    )
    assert shown["filename"] == "trace.har"
    assert site.call("GET", f"/rest/api/3/attachment/content/{added[0]['id']}").content == b'{"log": {}}'
    site.backend.model.attachment_max_bytes = 4
    too_big = site.call("POST", path, files=files, headers={"X-Atlassian-Token": "no-check"})
    assert too_big.status_code == 413


def test_internal_comments_validate_as_requests(site: Site, spec: Spec) -> None:
    """A comment restricted to a role and marked internal for Service Management: the request and the answer."""
    key = site.create()["key"]
    body = {
        "body": ADF,
        "visibility": {"type": "role", "value": "Developers"},
        "properties": [{"key": "sd.public.comment", "value": {"internal": True}}],
    }
    spec.validate_request("POST", "/rest/api/3/issue/{issueIdOrKey}/comment", body)
    made = check(
        spec,
        site.call("POST", f"/rest/api/3/issue/{key}/comment", json=body),
        "POST",
        "/rest/api/3/issue/{issueIdOrKey}/comment",
    )
    assert made["visibility"] == {"type": "role", "value": "Developers"}
    assert made["properties"] == [{"key": "sd.public.comment", "value": {"internal": True}}]


def test_project_versions_and_resolutions_match_the_spec(site: Site, spec: Spec) -> None:
    """getProjectVersions lists released versions with their date; a transition may name the resolution."""
    project = site.call("GET", "/rest/api/3/project/ENG").json()
    made = site.call("POST", "/rest/api/3/version", json={"name": "9.9", "projectId": int(project["id"])}).json()
    site.call("PUT", f"/rest/api/3/version/{made['id']}", json={"released": True})
    versions = check(
        spec,
        site.call("GET", "/rest/api/3/project/ENG/versions"),
        "GET",
        "/rest/api/3/project/{projectIdOrKey}/versions",
    )
    [released] = [v for v in versions if v["id"] == made["id"]]
    assert released["released"] is True
    assert released["releaseDate"]
    key = site.create()["key"]
    done = next(
        t
        for t in site.call("GET", f"/rest/api/3/issue/{key}/transitions").json()["transitions"]
        if t["to"]["name"] == "Done"
    )
    body = {"transition": {"id": done["id"]}, "fields": {"resolution": {"name": "Duplicate"}}}
    spec.validate_request("POST", "/rest/api/3/issue/{issueIdOrKey}/transitions", body)
    assert site.call("POST", f"/rest/api/3/issue/{key}/transitions", json=body).status_code == 204
    issue = check(
        spec,
        site.call("GET", f"/rest/api/3/issue/{key}", params={"fields": "resolution"}),
        "GET",
        "/rest/api/3/issue/{issueIdOrKey}",
    )
    assert issue["fields"]["resolution"]["name"] == "Duplicate"


def test_create_screen_user_search_and_required_fields(site: Site, spec: Spec) -> None:
    """createmeta (issue types, then one type's fields) and user search validate; a field the screen requires is
    refused with Jira's 400 ErrorCollection naming it; components and select options are kept and shown."""
    types = check(
        spec,
        site.call("GET", "/rest/api/3/issue/createmeta/ENG/issuetypes"),
        "GET",
        "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes",
    )
    bug = next(t for t in types["issueTypes"] if t["name"] == "Bug")
    site.backend.model.require_field("ENG", "components")
    site.backend.model.require_field("ENG", "customfield_10107")
    fields = check(
        spec,
        site.call("GET", f"/rest/api/3/issue/createmeta/ENG/issuetypes/{bug['id']}", params={"maxResults": 200}),
        "GET",
        "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}",
    )
    by_id = {f["fieldId"]: f for f in fields["fields"]}
    assert by_id["components"]["required"] is True
    assert [c["name"] for c in by_id["components"]["allowedValues"]] == ["Backend", "Frontend", "Exports"]
    assert [o["value"] for o in by_id["customfield_10107"]["allowedValues"]] == ["Sev 1", "Sev 2", "Sev 3"]
    assert by_id["priority"]["hasDefaultValue"] is True
    assert by_id["labels"]["required"] is False
    users = check(
        spec, site.call("GET", "/rest/api/3/user/search", params={"query": "eve@"}), "GET", "/rest/api/3/user/search"
    )
    assert [u["emailAddress"] for u in users] == ["eve@cxbridge.example"]

    missing = site.call(
        "POST",
        "/rest/api/3/issue",
        json={"fields": {"project": {"key": "ENG"}, "issuetype": {"name": "Bug"}, "summary": "x"}},
    )
    assert missing.status_code == 400
    assert check(spec, missing, "POST", "/rest/api/3/issue") == {
        "errorMessages": [],
        "errors": {"components": "Component/s is required.", "customfield_10107": "Customer severity is required."},
    }
    bad_option = site.call(
        "POST",
        "/rest/api/3/issue",
        json={
            "fields": {
                "project": {"key": "ENG"},
                "issuetype": {"name": "Bug"},
                "summary": "x",
                "components": [{"name": "Exports"}],
                "customfield_10107": {"value": "Sev 9"},
            }
        },
    )
    assert bad_option.json()["errors"] == {"customfield_10107": "Option value 'Sev 9' is not valid"}
    assert site.backend.model.issues == {}
    created = site.create(components=[{"name": "Exports"}], customfield_10107={"value": "Sev 1"})
    issue = check(
        spec, site.call("GET", f"/rest/api/3/issue/{created['key']}"), "GET", "/rest/api/3/issue/{issueIdOrKey}"
    )
    assert [c["name"] for c in issue["fields"]["components"]] == ["Exports"]
    assert issue["fields"]["customfield_10107"]["value"] == "Sev 1"
