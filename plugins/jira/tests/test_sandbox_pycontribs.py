"""The real pycontribs ``jira`` client works against the Jira emulator, in Cloud and in Data Center mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cxbridge_jira.sandbox.backend import JiraBackend
from jira import JIRA, JIRAError
from jira.resources import Issue

from cxbridge.testing import ServedVendors, serve_vendors

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def served() -> Iterator[ServedVendors]:
    with serve_vendors(["jira"]) as vendors:
        yield vendors


@pytest.fixture(params=["cloud", "datacenter"])
def deployment(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def prepare(served: ServedVendors, deployment: str) -> JiraBackend:
    """Reset the served emulator and seed ``demo`` in the wanted deployment (through the admin API)."""
    served.reset()
    response = requests.post(
        served.base_url("jira") + "/_sandbox/seed", json={"name": "demo", "deployment": deployment}, timeout=5
    )
    assert response.json() == {"ok": True, "deployment": deployment}
    backend = served.jira
    assert isinstance(backend, JiraBackend)
    return backend


@pytest.fixture
def site(served: ServedVendors, deployment: str) -> JiraBackend:
    """A fresh demo site, once per deployment."""
    return prepare(served, deployment)


@pytest.fixture
def cloud_site(served: ServedVendors) -> JiraBackend:
    return prepare(served, "cloud")


@pytest.fixture
def dc_site(served: ServedVendors) -> JiraBackend:
    return prepare(served, "datacenter")


def client(site: JiraBackend, **kwargs: Any) -> JIRA:
    """pycontribs with the sandbox credentials for the site's deployment, no retries (tests stay fast)."""
    creds = site.credentials()
    options: dict[str, Any] = {"max_retries": 0, **kwargs}
    if creds["deployment"] == "cloud":
        return JIRA(site.base_url, basic_auth=(creds["email"], creds["api_token"]), **options)
    return JIRA(site.base_url, token_auth=creds["personal_access_token"], **options)


def new_issue(jira: JIRA, **fields: Any) -> Issue:
    return jira.create_issue(
        fields={
            "project": {"key": "ENG"},
            "issuetype": {"name": "Bug"},
            "summary": "Checkout fails on Safari",
            **fields,
        }
    )


def test_client_detects_the_deployment(site: JiraBackend, deployment: str) -> None:
    """pycontribs reads serverInfo first and switches to its Cloud code paths only for deploymentType Cloud."""
    jira = client(site)
    assert jira._is_cloud is (deployment == "cloud")
    assert jira.myself()["emailAddress"] == "cxbridge@cxbridge.example"


def test_create_read_transition_comment(site: JiraBackend, deployment: str) -> None:
    """create_issue, issue(), transitions + transition_issue('Done'), add_comment and comments() round-trip."""
    jira = client(site)
    issue = new_issue(
        jira,
        description="Steps:\n\nOpen checkout",
        labels=["cxb-zd-4211"],
        priority={"name": "High"},
        customfield_10100=120000.0,
    )
    assert issue.key == "ENG-1"
    again = jira.issue(issue.key)
    assert again.fields.summary == "Checkout fails on Safari"
    assert again.fields.description == "Steps:\n\nOpen checkout"
    assert again.fields.labels == ["cxb-zd-4211"]
    assert again.fields.priority.name == "High"
    assert again.fields.customfield_10100 == 120000.0
    assert again.fields.status.name == "To Do"
    if deployment == "cloud":
        assert again.fields.reporter.accountId == site.integration_user.account_id
    else:
        assert again.fields.reporter.name == "cxbridge"
    assert sorted(t["name"] for t in jira.transitions(issue)) == ["Done", "In Progress"]
    jira.transition_issue(issue, "Done")
    done = jira.issue(issue.key)
    assert done.fields.status.name == "Done"
    assert done.fields.status.statusCategory.key == "done"
    assert done.fields.resolution.name == "Done"
    comment = jira.add_comment(issue, "Fixed in 4.2, shipping Friday")
    assert comment.body == "Fixed in 4.2, shipping Friday"
    assert [c.body for c in jira.comments(issue.key)] == ["Fixed in 4.2, shipping Friday"]
    with pytest.raises(JIRAError) as raised:
        jira.transition_issue(issue, "Done")
    assert "Invalid transition name" in str(raised.value.text)


def test_remote_link_with_the_same_global_id_is_one_link(site: JiraBackend) -> None:
    """add_remote_link twice with one globalId updates the link instead of adding a second."""
    jira = client(site)
    issue = new_issue(jira)
    url = "https://acme.zendesk.com/agent/tickets/4211"
    first = jira.add_remote_link(
        issue.key,
        {"url": url, "title": "ZD-4211"},
        globalId="zendesk:4211",
        application={"type": "com.zendesk", "name": "Zendesk"},
    )
    second = jira.add_remote_link(
        issue.key,
        {"url": url, "title": "ZD-4211 solved"},
        globalId="zendesk:4211",
        application={"type": "com.zendesk", "name": "Zendesk"},
    )
    assert first.id == second.id
    links = jira.remote_links(issue.key)
    assert [(link.globalId, link.object.title) for link in links] == [("zendesk:4211", "ZD-4211 solved")]
    jira.add_remote_link(issue.key, {"url": url + "2", "title": "ZD-42112"}, globalId="zendesk:42112")
    assert len(jira.remote_links(issue.key)) == 2


def test_issue_property_round_trip(site: JiraBackend) -> None:
    """add_issue_property creates (201) then replaces (200); issue_property reads it back."""
    jira = client(site)
    issue = new_issue(jira)
    assert jira.add_issue_property(issue.key, "cxbridge", {"tickets": [4211]}).status_code == 201
    assert jira.add_issue_property(issue.key, "cxbridge", {"tickets": [4211, 4212]}).status_code == 200
    assert jira.issue_property(issue.key, "cxbridge").value.tickets == [4211, 4212]


def test_search_pages_on_cloud_by_token(cloud_site: JiraBackend) -> None:
    """Cloud: search_issues pages through /search/jql with nextPageToken; maxResults=0 fetches every page."""
    site = cloud_site
    jira = client(site)
    created = {new_issue(jira, labels=["batch"]).key for _ in range(5)}
    new_issue(jira, labels=["other"])
    first = jira.search_issues("labels = batch ORDER BY key ASC", maxResults=2)
    keys = [i.key for i in first]
    token = first.nextPageToken
    while token:
        page = jira.enhanced_search_issues("labels = batch ORDER BY key ASC", nextPageToken=token, maxResults=2)
        keys += [i.key for i in page]
        token = page.nextPageToken
    assert keys == sorted(created, key=lambda k: int(k.split("-")[1]))
    session = requests.Session()
    session.auth = (site.credentials()["email"], site.credentials()["api_token"])
    for n in range(101):
        response = session.post(
            site.base_url + "/rest/api/2/issue",
            timeout=5,
            json={
                "fields": {
                    "project": {"key": "ENG"},
                    "issuetype": {"name": "Task"},
                    "summary": f"bulk {n}",
                    "labels": ["bulk"],
                }
            },
        )
        assert response.status_code == 201
    calls_before = len([c for c in site.calls if "/search/jql" in c.path])
    everything = jira.search_issues("labels = bulk", maxResults=0)
    assert len({i.key for i in everything}) == 101
    assert len([c for c in site.calls if "/search/jql" in c.path]) - calls_before == 2


def test_search_pages_on_data_center_by_offset(dc_site: JiraBackend) -> None:
    """DC: search_issues pages through /rest/api/2/search with startAt until total."""
    site = dc_site
    jira = client(site, default_batch_sizes={Issue: 2})
    created = {new_issue(jira, labels=["batch"]).key for _ in range(5)}
    calls_before = len([c for c in site.calls if c.path.startswith("/rest/api/2/search")])
    found = jira.search_issues("labels = batch", maxResults=False)
    assert {i.key for i in found} == created
    assert found.total == 5
    assert len([c for c in site.calls if c.path.startswith("/rest/api/2/search")]) - calls_before == 3


def test_missing_issue_raises_404(site: JiraBackend) -> None:
    """A missing issue surfaces as JIRAError 404 with Jira's message."""
    jira = client(site)
    with pytest.raises(JIRAError) as raised:
        jira.issue("ENG-404")
    assert raised.value.status_code == 404
    assert raised.value.text == "Issue does not exist or you do not have permission to see it."


def test_wrong_credentials_raise_401(site: JiraBackend, deployment: str) -> None:
    """Wrong credentials fail the constructor's serverInfo call with JIRAError 401, as on Jira."""
    wrong: dict[str, Any] = (
        {"basic_auth": ("cxbridge@cxbridge.example", "wrong")} if deployment == "cloud" else {"token_auth": "wrong"}
    )
    with pytest.raises(JIRAError) as raised:
        JIRA(site.base_url, max_retries=0, **wrong)
    assert raised.value.status_code == 401
    lazy = JIRA(site.base_url, token_auth="wrong", max_retries=0, get_server_info=False)
    with pytest.raises(JIRAError) as raised:
        lazy.issue("ENG-1")
    assert raised.value.status_code == 401


def test_fail_next_and_rate_limit_reach_the_client(site: JiraBackend) -> None:
    """An injected 503 fails one call only; an enforced limit answers 429 with Jira's rate-limit headers."""
    jira = client(site)
    admin = site.base_url + "/_sandbox/"
    requests.post(admin + "fail-next", json={"status": 503, "path": "/issue$", "method": "POST"}, timeout=5)
    with pytest.raises(JIRAError) as raised:
        new_issue(jira)
    assert raised.value.status_code == 503
    assert new_issue(jira).key == "ENG-1"
    requests.post(admin + "rate-limit", json={"limit": "2/min"}, timeout=5)
    jira.issue("ENG-1")
    jira.issue("ENG-1")
    with pytest.raises(JIRAError) as raised:
        jira.issue("ENG-1")
    response = raised.value.response
    assert raised.value.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Limit"] == "2"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Reason"] == "jira-burst-based"
    assert response.headers["X-RateLimit-Reset"].endswith("Z")
    requests.post(admin + "rate-limit", json={}, timeout=5)
    assert jira.issue("ENG-1").key == "ENG-1"
