"""The Jira emulator's rules: JQL, changelogs, signed admin webhooks, deployments, faults and its admin API."""

from __future__ import annotations

import hashlib
import hmac
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cxbridge_jira.sandbox.adf import adf_problem, adf_to_wiki, text_to_adf
from cxbridge_jira.sandbox.backend import JiraBackend, hub_signature
from cxbridge_jira.sandbox.jql import And, Clause, Empty, JqlError, Or, parse, parse_date
from hypothesis import given
from hypothesis import strategies as st

from cxbridge.sdk import SandboxSecret, WebhookTarget
from cxbridge.testing import Clock, Receiver, Spec, Vendors, mock_vendors, validate_adf, write_config

SECRET = "It's a Secret to Everybody"


# -- helpers ------------------------------------------------------------------------------------------------


class Site:
    """An in-process emulator with sessions for the integration user and for Eve Engineer."""

    def __init__(self, backend: JiraBackend, base: str) -> None:
        self.backend = backend
        self.base = base
        self.as_integration = self._session(engineer=False)
        self.as_eve = self._session(engineer=True)

    def _session(self, *, engineer: bool) -> requests.Session:
        creds = self.backend.credentials()
        session = requests.Session()
        prefix = "engineer_" if engineer else ""
        if creds["deployment"] == "cloud":
            session.auth = (creds[f"{prefix}email"], creds[f"{prefix}api_token"])
        else:
            session.headers["Authorization"] = f"Bearer {creds[f'{prefix}personal_access_token']}"
        return session

    def call(self, method: str, path: str, *, eve: bool = False, **kwargs: Any) -> requests.Response:
        session = self.as_eve if eve else self.as_integration
        return session.request(method, self.base + path, timeout=5, **kwargs)

    def create(self, **fields: Any) -> str:
        body = {"project": {"key": "ENG"}, "issuetype": {"name": "Bug"}, "summary": "Checkout fails", **fields}
        response = self.call("POST", "/rest/api/2/issue", json={"fields": body})
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    def search(self, jql: str, **params: Any) -> requests.Response:
        return self.call("GET", "/rest/api/3/search/jql", params={"jql": jql, "fields": "key", **params})

    def keys(self, jql: str) -> list[str]:
        response = self.search(jql, maxResults=100)
        assert response.status_code == 200, response.text
        return [i["key"] for i in response.json()["issues"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver("/hooks") as rec:
        yield rec


def make_site(receiver: Receiver, clock: Clock, deployment: str = "cloud") -> Iterator[Site]:
    backend = JiraBackend(clock=clock, deployment=deployment)
    with mock_vendors(backends={"jira": backend}, seed="demo", passthru=[receiver.url]) as vendors:
        yield Site(backend, vendors.base_url("jira"))


@pytest.fixture
def site(receiver: Receiver, clock: Clock) -> Iterator[Site]:
    yield from make_site(receiver, clock)


@pytest.fixture
def dc_site(receiver: Receiver, clock: Clock) -> Iterator[Site]:
    yield from make_site(receiver, clock, "datacenter")


def register_hook(
    site: Site,
    receiver: Receiver,
    *,
    events: list[str],
    jql: str = "project = ENG",
    secret: str = SECRET,
    exclude_body: bool = False,
) -> dict[str, Any]:
    response = site.call(
        "POST",
        "/rest/webhooks/1.0/webhook",
        json={
            "name": "cxbridge",
            "url": receiver.url,
            "events": events,
            "filters": {"issue-related-events-section": jql},
            "excludeBody": exclude_body,
            "secret": secret,
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


# -- signatures and webhooks --------------------------------------------------------------------------------


def test_hub_signature_reproduces_the_github_vector() -> None:
    """X-Hub-Signature uses GitHub's construction; its published vector is reproduced exactly."""
    assert hub_signature(SECRET, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_transition_emits_a_signed_issue_updated_webhook(site: Site, receiver: Receiver, clock: Clock) -> None:
    """A transition by the engineer reaches an admin webhook signed, with the changelog and v2 fields."""
    hook = register_hook(site, receiver, events=["jira:issue_updated", "comment_created"])
    assert "secret" not in hook
    key = site.create(labels=["cxb-zd-4211"])
    clock.now += 60
    moved = site.call("POST", f"/rest/api/3/issue/{key}/transitions", eve=True, json={"transition": {"id": "31"}})
    assert moved.status_code == 204
    assert site.backend.wait_for_webhooks(5)
    assert len(receiver.deliveries) == 1
    first = receiver.deliveries[0]
    headers, body = first.headers, first.body
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature"] == expected
    assert headers["X-Atlassian-Webhook-Flow"] == "Primary"
    assert headers["X-Atlassian-Webhook-Identifier"]
    payload = json.loads(body)
    assert payload["webhookEvent"] == "jira:issue_updated"
    assert payload["issue_event_type_name"] == "issue_generic"
    assert payload["timestamp"] == int(clock.now * 1000)
    eve = site.backend.engineer
    assert eve is not None
    assert payload["user"]["accountId"] == eve.account_id
    assert payload["user"]["displayName"] == "Eve Engineer"
    assert payload["issue"]["key"] == key
    assert set(payload["issue"]) == {"id", "self", "key", "fields"}
    assert payload["issue"]["fields"]["status"]["name"] == "Done"
    assert payload["issue"]["fields"]["description"] is None
    items = {i["field"]: i for i in payload["changelog"]["items"]}
    assert items["status"] == {
        "field": "status",
        "fieldtype": "jira",
        "fieldId": "status",
        "from": "10000",
        "fromString": "To Do",
        "to": "10002",
        "toString": "Done",
    }
    assert items["resolution"]["toString"] == "Done"
    spec = Spec("jira")
    for item in payload["changelog"]["items"]:
        spec.validate_schema("ChangeDetails", {k: v for k, v in item.items() if v is not None})


def test_comment_emits_comment_created_and_issue_commented(site: Site, receiver: Receiver) -> None:
    """A comment announces comment_created and jira:issue_updated (issue_commented), each with its own id."""
    register_hook(site, receiver, events=["jira:issue_updated", "comment_created"])
    key = site.create()
    response = site.call(
        "POST",
        f"/rest/api/3/issue/{key}/comment",
        eve=True,
        json={
            "body": {
                "type": "doc",
                "version": 1,
                "content": [
                    {
                        "type": "paragraph",
                        "content": [
                            {"type": "text", "text": "Fixed in "},
                            {"type": "text", "text": "4.2", "marks": [{"type": "code"}]},
                        ],
                    }
                ],
            }
        },
    )
    assert response.status_code == 201
    assert site.backend.wait_for_webhooks(5)
    by_event = {p["webhookEvent"]: p for p in receiver.payloads()}
    assert set(by_event) == {"comment_created", "jira:issue_updated"}
    created = by_event["comment_created"]
    assert created["comment"]["body"] == "Fixed in {{4.2}}"
    assert created["comment"]["author"]["displayName"] == "Eve Engineer"
    assert created["issue"]["key"] == key
    assert by_event["jira:issue_updated"]["issue_event_type_name"] == "issue_commented"
    assert by_event["jira:issue_updated"]["comment"]["id"] == created["comment"]["id"]
    ids = {d.headers["X-Atlassian-Webhook-Identifier"] for d in receiver.deliveries}
    assert len(ids) == 2


def test_webhook_filters_by_event_and_jql(site: Site, receiver: Receiver) -> None:
    """Only subscribed events for issues matching the webhook's JQL are delivered; excludeBody sends none."""
    register_hook(site, receiver, events=["jira:issue_updated"], jql="labels = vip")
    plain = site.create()
    vip = site.create(labels=["vip"])
    for key in (plain, vip):
        site.call("POST", f"/rest/api/2/issue/{key}/transitions", json={"transition": {"id": "21"}})
        site.call("POST", f"/rest/api/2/issue/{key}/comment", json={"body": "noted"})
    assert site.backend.wait_for_webhooks(5)
    payloads = receiver.payloads()
    assert {(p["issue"]["key"], p["issue_event_type_name"]) for p in payloads} == {
        (vip, "issue_generic"),
        (vip, "issue_commented"),
    }
    receiver.deliveries.clear()
    register_hook(site, receiver, events=["jira:issue_created"], secret="s3cret", exclude_body=True)
    site.create()
    assert site.backend.wait_for_webhooks(5)
    assert len(receiver.deliveries) == 1
    first = receiver.deliveries[0]
    headers, body = first.headers, first.body
    assert body == b""
    assert headers["X-Hub-Signature"] == hub_signature("s3cret", b"")


def test_framework_targets_get_events_with_their_filters(site: Site, receiver: Receiver) -> None:
    """Targets set through /_sandbox/webhooks get every event unless their ``extra`` narrows it."""
    admin = requests.post(
        site.base + "/_sandbox/webhooks",
        timeout=5,
        json={
            "targets": [
                {"url": receiver.url, "secret": "framework-secret", "extra": {"events": ["jira:issue_created"]}}
            ]
        },
    )
    assert admin.status_code == 200
    key = site.create()
    site.call("PUT", f"/rest/api/2/issue/{key}", json={"fields": {"summary": "Renamed"}})
    assert site.backend.wait_for_webhooks(5)
    assert [p["webhookEvent"] for p in receiver.payloads()] == ["jira:issue_created"]
    first = receiver.deliveries[0]
    headers, body = first.headers, first.body
    assert headers["X-Hub-Signature"] == hub_signature("framework-secret", body)
    site.backend.webhook_targets = [WebhookTarget(url=receiver.url, secret="")]
    receiver.deliveries.clear()
    site.call("PUT", f"/rest/api/2/issue/{key}", json={"fields": {"summary": "Renamed again"}})
    assert site.backend.wait_for_webhooks(5)
    assert len(receiver.deliveries) == 1
    assert "X-Hub-Signature" not in receiver.deliveries[0].headers


def test_webhook_admin_needs_an_administrator_and_hides_secrets(site: Site, receiver: Receiver) -> None:
    """Eve may not manage webhooks; listings and the sandbox state never show a secret."""
    denied = site.call(
        "POST",
        "/rest/webhooks/1.0/webhook",
        eve=True,
        json={"name": "x", "url": receiver.url, "events": ["jira:issue_updated"]},
    )
    assert denied.status_code == 403
    hook = register_hook(site, receiver, events=["jira:issue_updated"])
    hook_id = hook["self"].rsplit("/", 1)[1]
    listed = site.call("GET", "/rest/webhooks/1.0/webhook").json()
    assert [h["name"] for h in listed] == ["cxbridge"]
    state = json.dumps(site.backend.state())
    creds = site.backend.credentials()
    for secret in (
        SECRET,
        creds["api_token"],
        creds["engineer_api_token"],
        site.backend.integration_user.personal_access_token,
    ):
        assert secret not in json.dumps(listed)
        assert secret not in state
    assert site.call("DELETE", f"/rest/webhooks/1.0/webhook/{hook_id}").status_code == 204
    assert site.call("GET", "/rest/webhooks/1.0/webhook").json() == []
    bad_filter = site.call(
        "POST",
        "/rest/webhooks/1.0/webhook",
        json={"name": "x", "url": receiver.url, "events": [], "filters": {"issue-related-events-section": "bogus = 1"}},
    )
    assert bad_filter.status_code == 400


def test_data_center_webhooks_name_users_by_name(dc_site: Site, receiver: Receiver) -> None:
    """In Data Center mode payload users carry name/key, not accountId, and PATs authenticate."""
    register_hook(dc_site, receiver, events=["jira:issue_updated"])
    key = dc_site.create()
    dc_site.call("POST", f"/rest/api/2/issue/{key}/transitions", eve=True, json={"transition": {"id": "21"}})
    assert dc_site.backend.wait_for_webhooks(5)
    payload = receiver.payloads()[0]
    assert payload["user"]["name"] == "eve"
    assert "accountId" not in payload["user"]
    assert payload["issue"]["fields"]["reporter"]["name"] == "cxbridge"


# -- edits and changelog ------------------------------------------------------------------------------------


def test_edit_records_a_changelog_and_returns_204(site: Site, receiver: Receiver) -> None:
    """PUT issue sets fields and applies label operations; the changelog names each changed field."""
    register_hook(site, receiver, events=["jira:issue_updated"])
    key = site.create(labels=["a", "b"])
    edited = site.call(
        "PUT",
        f"/rest/api/2/issue/{key}",
        json={
            "fields": {"summary": "Checkout fails on Safari 17", "priority": {"id": "1"}, "customfield_10101": 3},
            "update": {"labels": [{"add": "c"}, {"remove": "a"}]},
        },
    )
    assert edited.status_code == 204
    issue = site.call("GET", f"/rest/api/3/issue/{key}", params={"expand": "changelog,names"}).json()
    assert issue["fields"]["labels"] == ["b", "c"]
    assert issue["fields"]["priority"]["name"] == "Highest"
    assert issue["names"]["customfield_10101"] == "Customers"
    items = {i["fieldId"]: i for i in issue["changelog"]["histories"][0]["items"]}
    assert items["labels"]["fromString"] == "a b"
    assert items["labels"]["toString"] == "b c"
    assert items["customfield_10101"] == {
        "field": "Customers",
        "fieldtype": "custom",
        "fieldId": "customfield_10101",
        "from": None,
        "fromString": None,
        "to": None,
        "toString": "3",
    }
    assert items["priority"]["toString"] == "Highest"
    unchanged = site.call(
        "PUT", f"/rest/api/2/issue/{key}", json={"fields": {"summary": "Checkout fails on Safari 17"}}
    )
    assert unchanged.status_code == 204
    returned = site.call(
        "PUT",
        f"/rest/api/2/issue/{key}",
        params={"returnIssue": "true"},
        json={"fields": {"customfield_10104": "Enterprise"}},
    )
    assert returned.status_code == 200
    assert returned.json()["fields"]["customfield_10104"] == "Enterprise"
    assert site.backend.wait_for_webhooks(5)
    assert [p["issue_event_type_name"] for p in receiver.payloads()] == ["issue_updated", "issue_updated"]
    bad = site.call("PUT", f"/rest/api/2/issue/{key}", json={"fields": {"status": {"name": "Done"}}})
    assert bad.status_code == 400
    assert bad.json()["errors"] == {
        "status": "Field 'status' cannot be set. It is not on the appropriate screen, or unknown."
    }


# -- JQL ------------------------------------------------------------------------------------------------------


def test_jql_parser_builds_a_tree_and_reports_errors_like_jira() -> None:
    """The parser handles AND/OR/NOT, IN lists, IS EMPTY, quoting and ORDER BY; errors use Jira's wording."""
    query = parse(
        'project = ENG AND (labels in (a, "b c") OR status != Done) AND resolution is EMPTY ORDER BY updated DESC, key'
    )
    assert query.bounded
    assert query.order == [("updated", True), ("key", False)]
    assert isinstance(query.where, And)
    assert query.where.items[0] == Clause("project", "=", ("ENG",))
    assert isinstance(query.where.items[1], Or)
    assert query.where.items[2] == Clause("resolution", "is", (Empty(),))
    assert parse('summary = "say \\"hi\\""').where == Clause("summary", "=", ('say "hi"',))
    assert not parse("ORDER BY key DESC").bounded
    assert not parse("").bounded
    for bad, fragment in [
        ("project = ", "before the end of the query"),
        ("labels in (a, b", "Expecting ')'"),
        ("project ENG", "Expecting operator"),
        ("a = b c", "Expecting either 'OR' or 'AND'"),
    ]:
        with pytest.raises(JqlError) as raised:
            parse(bad)
        assert raised.value.message.startswith("Error in the JQL Query:")
        assert fragment in raised.value.message


def test_jql_dates_absolute_and_relative() -> None:
    """Dates: yyyy-MM-dd[ HH:mm], yyyy/MM/dd, and periods relative to now."""
    now = 1_767_225_600.0
    assert parse_date("2026-01-01 00:00", now) == now
    assert parse_date("2026/01/01", now) == now
    assert parse_date("-5m", now) == now - 300
    assert parse_date("-1w 2d", now) == now - 9 * 86400
    with pytest.raises(JqlError):
        parse_date("yesterday", now)


def test_search_answers_the_jql_subset(site: Site, clock: Clock) -> None:
    """labels, project, key, status, updated (absolute and relative), custom fields and properties filter."""
    first = site.create(labels=["cxb-zd-1", "vip"], customfield_10100=50000)
    clock.now += 600
    second = site.create(labels=["cxb-zd-2"], customfield_10100=120000)
    clock.now += 600
    third = site.create()
    site.call("PUT", f"/rest/api/2/issue/{third}/properties/cxbridge", json={"zendesk": 4211})
    clock.now += 60
    site.call("POST", f"/rest/api/2/issue/{second}/transitions", json={"transition": {"id": "21"}})
    assert site.keys("labels = cxb-zd-1") == [first]
    assert set(site.keys("labels in (cxb-zd-1, cxb-zd-2)")) == {first, second}
    assert site.keys("project = ENG AND status = 'In Progress'") == [second]
    assert site.keys(f"key = {first}") == [first]
    assert site.keys("project = ENG ORDER BY key ASC") == [first, second, third]
    assert site.keys("project = ENG AND status != 'In Progress' ORDER BY key") == [first, third]
    assert site.keys("updated >= -5m ORDER BY key") == [second, third]
    assert site.keys('updated >= "2026-01-01 00:10" ORDER BY updated DESC') == [second, third]
    assert site.keys("project = ENG ORDER BY updated DESC")[0] == second
    assert site.keys("cf[10100] > 100000") == [second]
    assert site.keys('"ARR at stake" >= 50000 ORDER BY cf[10100] DESC') == [second, first]
    assert site.keys("labels is EMPTY") == [third]
    assert site.keys("issue.property[cxbridge].zendesk = 4211") == [third]
    assert site.keys("project = ENG AND NOT labels = vip ORDER BY key") == [second, third]
    assert site.keys("statusCategory = done") == []
    for jql, message in [
        ("bogus = 1", "Field 'bogus' does not exist or you do not have permission to view it."),
        ("status = Nope", "The value 'Nope' does not exist for the field 'status'."),
        ("key = ENG-99", "An issue with key 'ENG-99' does not exist for field 'key'."),
    ]:
        response = site.search(jql)
        assert response.status_code == 400
        assert response.json()["errorMessages"] == [message]


def test_search_expands_fields_and_properties(site: Site) -> None:
    """fields=*all, a minus exclusion and properties= shape each issue like getIssue does."""
    key = site.create(labels=["x"])
    site.call("PUT", f"/rest/api/2/issue/{key}/properties/cxbridge", json={"zendesk": 1})
    everything = site.call(
        "GET",
        "/rest/api/3/search/jql",
        params={"jql": "labels = x", "fields": "*all,-comment", "properties": "cxbridge"},
    ).json()["issues"][0]
    assert "comment" not in everything["fields"]
    assert everything["fields"]["summary"] == "Checkout fails"
    assert everything["properties"] == {"cxbridge": {"zendesk": 1}}
    navigable = site.call("GET", f"/rest/api/2/issue/{key}", params={"fields": "*navigable"}).json()["fields"]
    assert "comment" not in navigable
    assert "status" in navigable


# -- deployments, config, admin API -------------------------------------------------------------------------


def test_deployment_switches_through_the_admin_api(site: Site) -> None:
    """POST /_sandbox/deployment switches auth, serverInfo and search; reset returns to the constructor's."""
    cloud_auth = site.as_integration.auth
    assert requests.get(site.base + "/_sandbox/deployment", timeout=5).json() == {"deployment": "cloud"}
    switched = requests.post(site.base + "/_sandbox/deployment", json={"deployment": "datacenter"}, timeout=5)
    assert switched.json() == {"ok": True, "deployment": "datacenter"}
    info = requests.get(site.base + "/rest/api/2/serverInfo", timeout=5).json()
    assert info["deploymentType"] == "Server"
    assert requests.get(site.base + "/rest/api/2/myself", auth=cloud_auth, timeout=5).status_code == 401
    pat = site.backend.credentials()["personal_access_token"]
    me = requests.get(site.base + "/rest/api/2/myself", headers={"Authorization": f"Bearer {pat}"}, timeout=5)
    assert me.json()["name"] == "cxbridge"
    table = site.backend.config_table()
    assert set(table) == {"deployment", "personal_access_token", "project", "issue_type"}
    assert isinstance(table["personal_access_token"], SandboxSecret)
    refused = requests.post(site.base + "/_sandbox/deployment", json={"deployment": "mainframe"}, timeout=5)
    assert refused.status_code == 400
    assert requests.post(site.base + "/_sandbox/reset", timeout=5).status_code == 200
    assert site.backend.deployment == "cloud"
    assert site.backend.model.projects == {}


def test_seed_can_choose_the_deployment() -> None:
    """POST /_sandbox/seed {"name", "deployment"} seeds and switches in one call; the constructor can too."""
    backend = JiraBackend()
    with mock_vendors(backends={"jira": backend}) as vendors:
        base = vendors.base_url("jira")
        response = requests.post(base + "/_sandbox/seed", json={"name": "demo", "deployment": "dc"}, timeout=5)
        assert response.json() == {"ok": True, "deployment": "datacenter"}
        assert backend.model.project("ENG") is not None
        assert requests.post(base + "/_sandbox/seed", json={"name": "nope"}, timeout=5).status_code == 400
    assert JiraBackend(deployment="server").deployment == "datacenter"
    with pytest.raises(ValueError, match="unknown Jira deployment"):
        JiraBackend(deployment="hosted")


def test_config_table_writes_secrets_to_files(site: Site, tmp_path: Path) -> None:
    """The config keys the connector reads; the API token lands in a file, never inline."""
    table = site.backend.config_table()
    assert set(table) == {"deployment", "email", "api_token", "project", "issue_type"}
    assert (table["deployment"], table["email"], table["project"], table["issue_type"]) == (
        "cloud",
        "cxbridge@cxbridge.example",
        "ENG",
        "Bug",
    )
    path = write_config(Vendors({"jira": site.backend}), tmp_path / "cxbridge.toml")
    text = path.read_text(encoding="utf-8")
    token = site.backend.credentials()["api_token"]
    assert token not in text
    jira = tomllib.loads(text)["systems"]["jira"]
    assert (tmp_path / jira["api_token"]["file"]).read_text(encoding="utf-8") == token
    assert jira["deployment"] == "cloud"


def test_engineer_credentials_act_as_eve(site: Site) -> None:
    """The demo's engineer credentials authenticate as Eve; her comments carry her as author."""
    me = site.call("GET", "/rest/api/3/myself", eve=True).json()
    assert me["displayName"] == "Eve Engineer"
    key = site.create()
    comment = site.call("POST", f"/rest/api/2/issue/{key}/comment", eve=True, json={"body": "On it"}).json()
    assert comment["author"]["emailAddress"] == "eve@cxbridge.example"


def test_empty_seed_has_the_project_and_nothing_cxbridge_provisions() -> None:
    """``empty`` is a site before ``cxbridge setup``: the integration user and project ENG, no custom field,
    no webhook, no engineer."""
    backend = JiraBackend()
    with mock_vendors(backends={"jira": backend}, seed="empty") as vendors:
        creds = backend.credentials()
        assert "engineer_email" not in creds
        me = requests.get(
            vendors.base_url("jira") + "/rest/api/3/myself", auth=(creds["email"], creds["api_token"]), timeout=5
        )
        assert me.status_code == 200
        project = requests.get(
            vendors.base_url("jira") + "/rest/api/3/project/ENG", auth=(creds["email"], creds["api_token"]), timeout=5
        )
        assert project.status_code == 200
        state = backend.state()
        assert [f for f in state["fields"] if f["custom"]] == []
        assert state["webhooks"] == []


def test_injected_faults_use_jira_error_bodies(site: Site) -> None:
    """fail-next answers the chosen status with an ErrorCollection; a 429 carries Retry-After in seconds."""
    requests.post(site.base + "/_sandbox/fail-next", json={"status": 429, "retry_after": 2.5}, timeout=5)
    limited = site.call("GET", "/rest/api/3/myself")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert limited.headers["RateLimit-Reason"] == "jira-burst-based"
    Spec("jira").validate_schema("ErrorCollection", limited.json())
    assert site.call("GET", "/rest/api/3/myself").status_code == 200
    requests.post(site.base + "/_sandbox/rate-limit", json={"limit": "5/min"}, timeout=5)
    responses = [site.call("GET", "/rest/api/3/myself") for _ in range(5)]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["4", "3", "2", "1", "0"]
    assert "X-RateLimit-NearLimit" not in responses[0].headers
    assert responses[-1].headers["X-RateLimit-NearLimit"] == "true"


# -- ADF ------------------------------------------------------------------------------------------------------


def test_adf_to_wiki_renders_common_nodes() -> None:
    """Headings, marks, links, lists, code blocks and rules become wiki markup."""
    doc = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "heading", "attrs": {"level": 3}, "content": [{"type": "text", "text": "Impact"}]},
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "ARR ", "marks": [{"type": "em"}]},
                    {"type": "text", "text": "ticket", "marks": [{"type": "link", "attrs": {"href": "https://z/1"}}]},
                ],
            },
            {
                "type": "orderedList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {"type": "paragraph", "content": [{"type": "text", "text": "first"}]},
                            {
                                "type": "bulletList",
                                "content": [
                                    {
                                        "type": "listItem",
                                        "content": [
                                            {"type": "paragraph", "content": [{"type": "text", "text": "nested"}]}
                                        ],
                                    }
                                ],
                            },
                        ],
                    }
                ],
            },
            {"type": "codeBlock", "attrs": {"language": "python"}, "content": [{"type": "text", "text": "x = 1"}]},
            {"type": "rule"},
        ],
    }
    validate_adf(doc)
    assert adf_problem(doc) is None
    assert adf_to_wiki(doc) == (
        "h3. Impact\n\n_ARR _[ticket|https://z/1]\n\n# first\n** nested\n\n{code:python}\nx = 1\n{code}\n\n----"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "text",
        {"type": "doc", "version": 2, "content": []},
        {"type": "doc", "version": 1},
        {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}]},
        {"type": "doc", "version": 1, "content": [{"content": []}]},
    ],
)
def test_adf_problem_rejects_malformed_documents(bad: Any) -> None:
    """Not a doc, wrong version, no content, empty text or an untyped node: each is rejected."""
    assert adf_problem(bad) is not None


@given(
    st.lists(
        st.lists(
            st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), min_size=1),
            min_size=1,
            max_size=4,
        ),
        max_size=4,
    )
)
def test_text_to_adf_is_valid_and_round_trips(paragraphs: list[list[str]]) -> None:
    """Any v2 text becomes a valid ADF document that renders back to the same text."""
    text = "\n\n".join("\n".join(lines) for lines in paragraphs)
    doc = text_to_adf(text)
    validate_adf(doc)
    assert adf_to_wiki(doc) == text
