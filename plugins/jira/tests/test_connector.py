"""The Jira connector against canned Jira answers (``responses``), for Cloud (REST v3) and Data Center (v2).

Every request body the connector sends and every canned answer is checked against Atlassian's published
description (``Spec("jira")``, REST v3). Data Center paths (``/rest/api/2``) are validated against the same
operations under ``/rest/api/3``: v2 and v3 share paths and shapes and differ only in rich text (wiki strings
instead of ADF documents), which the v3 description leaves open (``fields`` is a free object, ``Comment.body``
is untyped), so nothing is skipped except the ADF schema check, which applies to Cloud bodies only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
import urllib3.exceptions
from cxbridge_jira.connector import JiraConnector, jql_string

from cxbridge.sdk import (
    AmbiguousOutcome,
    AuthError,
    CallCounter,
    ConfigError,
    Conflict,
    IssueSpec,
    NotFound,
    RateLimited,
    Secret,
    SystemConfig,
    Unavailable,
    VendorError,
)
from cxbridge.testing import CannedVendor, Spec, SpecError, build_connector, validate_adf

SPEC = Spec("jira")
CLOUD_BASE = "https://acme.atlassian.net"
DC_BASE = "https://jira.example.org"
API_TOKEN = "cloud-api-token-4f9a1c"
PAT = "dc-personal-access-token-77b2"
EMAIL = "bot@example.com"

DEPLOYMENTS = ["cloud", "datacenter"]


def config(deployment: str = "cloud", **options: Any) -> SystemConfig:
    """A validated-looking system table for either deployment."""
    if deployment == "cloud":
        base = options.pop("base_url", CLOUD_BASE)
        opts: dict[str, Any] = {"deployment": "cloud", "email": EMAIL, "api_token": Secret(API_TOKEN)}
    else:
        base = options.pop("base_url", DC_BASE)
        opts = {"deployment": "datacenter", "personal_access_token": Secret(PAT)}
    opts.update({"project": "SUP", "issue_type": "Bug", "priorities": {"urgent": "Highest"}})
    opts.update(options)
    return SystemConfig(name="jira", plugin="jira", base_url=base, max_retries=2, options=opts)


def connector(deployment: str = "cloud", **options: Any) -> JiraConnector:
    """The connector with an HTTP client that never sleeps and counts into its own counter."""
    cfg = config(deployment, **options)
    return build_connector(JiraConnector, cfg)


class JiraApi(CannedVendor):
    """Canned Jira answers that validate each request body and each answer against the Jira description."""

    def __init__(self, mock: responses.RequestsMock, deployment: str) -> None:
        super().__init__(mock)
        self.deployment = deployment
        self.base = CLOUD_BASE if deployment == "cloud" else DC_BASE
        self.v = "3" if deployment == "cloud" else "2"

    def api_path(self, rest: str) -> str:
        """``/rest/api/{v}`` + rest, for the deployment under test."""
        return f"/rest/api/{self.v}{rest}"

    def add(
        self,
        method: str,
        rest: str,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        error: Exception | None = None,
    ) -> None:
        """Answer ``method /rest/api/{v}{rest}`` once with ``status`` and ``body`` (or raise ``error``)."""
        path = self.api_path(rest)
        template = SPEC.match_path(method, "/rest/api/3" + rest)
        if error is None:
            self._check_answer(method, template, status, body)

        def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
            if request.body:
                self.check_request(method, template, json.loads(request.body))
            if error is not None:
                raise error
            return (
                status,
                {"Content-Type": "application/json", **(headers or {})},
                ("" if body is None else json.dumps(body)),
            )

        self.rsps.add_callback(method, self.base + path, callback=callback)

    @staticmethod
    def _check_answer(method: str, template: str, status: int, body: Any) -> None:
        responses_doc = SPEC.doc["paths"][template][method.lower()]["responses"]
        content = responses_doc.get(str(status), {}).get("content", {})
        documented = any("schema" in media for media in content.values())
        if documented:
            SPEC.validate_response(method, template, status, body)
        elif body is not None:  # error answers the description lists without a body: Jira's ErrorCollection
            SPEC.validate_schema("ErrorCollection", body)

    def check_request(self, method: str, template: str, body: Any) -> None:
        """The request body matches the v3 operation; rich text is ADF on Cloud and a string on DC."""
        SPEC.validate_request(method, template, body)
        for doc in rich_texts(template, body):
            if self.deployment == "cloud":
                validate_adf(doc)
            else:
                assert isinstance(doc, str)

    def json(self, n: int) -> Any:
        """The JSON body of the n-th request (which must have one)."""
        body = self.sent(n)
        assert body is not None
        return body


def rich_texts(template: str, body: Any) -> list[Any]:
    """The rich-text values in a request body (issue description, comment body)."""
    if not isinstance(body, dict):
        return []
    if template.endswith(("/comment", "/comment/{id}")):
        return [body["body"]]
    fields = body.get("fields")
    if isinstance(fields, dict) and "description" in fields:
        return [fields["description"]]
    return []


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    """Every request must be answered by a registered canned answer; unused answers fail the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture(params=DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api(mock: responses.RequestsMock, deployment: str) -> JiraApi:
    return JiraApi(mock, deployment)


@pytest.fixture
def jira(deployment: str) -> JiraConnector:
    return connector(deployment)


def issue_bean(issue_id: str = "10002", key: str = "SUP-7", base: str = CLOUD_BASE, **fields: Any) -> dict[str, Any]:
    """An IssueBean as getIssue / search return it with the fields the connector asks for."""
    values: dict[str, Any] = {
        "summary": "Checkout fails for EU customers",
        "status": {
            "self": f"{base}/rest/api/3/status/3",
            "name": "In Progress",
            "id": "3",
            "statusCategory": {
                "self": f"{base}/rest/api/3/statuscategory/4",
                "id": 4,
                "key": "indeterminate",
                "colorName": "yellow",
                "name": "In Progress",
            },
        },
        "priority": {"self": f"{base}/rest/api/3/priority/2", "name": "High", "id": "2"},
        "labels": ["escalated", "cxb-abc123"],
        "fixVersions": [
            {
                "self": f"{base}/rest/api/3/version/10100",
                "id": "10100",
                "name": "2.4.1",
                "released": False,
                "archived": False,
            }
        ],
        "updated": "2024-05-02T10:11:12.000+0000",
        "assignee": {
            "self": f"{base}/rest/api/3/user?accountId=5b10a2844c20165700ede21g",
            "accountId": "5b10a2844c20165700ede21g",
            "displayName": "Mia Krystof",
            "active": True,
        },
    }
    values.update(fields)
    return {"id": issue_id, "key": key, "self": f"{base}/rest/api/3/issue/{issue_id}", "fields": values}


def read_timeout() -> Exception:
    return requests.exceptions.ReadTimeout(
        urllib3.exceptions.ReadTimeoutError(None, CLOUD_BASE, "Read timed out. (read timeout=30)")  # type: ignore[arg-type]
    )


# -- configuration ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deployment", "base_url", "accepted"),
    [
        ("cloud", "https://acme.atlassian.net", True),
        ("cloud", "https://api.atlassian.com/ex/jira/11223344-a1b2-3b33-c444-def123456789", True),
        ("cloud", "https://jira.example.org", False),
        ("cloud", "https://acme.atlassian.net.evil.com", False),
        ("cloud", "http://acme.atlassian.net", False),
        ("datacenter", "https://jira.example.org", True),
        ("datacenter", "https://jira.internal.corp", True),
        ("datacenter", "http://jira.example.org", False),
        ("datacenter", "https://10.0.0.5", False),
        ("datacenter", "https://user:pw@jira.example.org", False),
    ],
)
def test_from_config_restricts_cloud_hosts_but_not_data_center(deployment: str, base_url: str, accepted: bool) -> None:
    """Cloud base URLs must be on Atlassian's domains; Data Center accepts the admin's own https host."""
    cfg = config(deployment, base_url=base_url)
    if accepted:
        jira = JiraConnector.from_config(cfg, counter=CallCounter())
        assert jira.http.base_url == base_url
        assert jira.api == ("/rest/api/3" if deployment == "cloud" else "/rest/api/2")
    else:
        with pytest.raises(ConfigError):
            JiraConnector.from_config(cfg, counter=CallCounter())


@pytest.mark.parametrize(
    ("deployment", "missing", "named"),
    [
        ("cloud", "api_token", "api_token"),
        ("cloud", "email", "email"),
        ("datacenter", "personal_access_token", "personal_access_token"),
    ],
)
def test_missing_credentials_name_the_key(deployment: str, missing: str, named: str) -> None:
    """A missing credential is a ConfigError naming the key, never a request without auth."""
    cfg = config(deployment)
    del cfg.options[missing]
    with pytest.raises(ConfigError, match=named):
        JiraConnector.from_config(cfg)


def test_unknown_deployment_is_a_config_error() -> None:
    """Only cloud and datacenter are deployments."""
    cfg = config("cloud")
    cfg.options["deployment"] = "server"
    with pytest.raises(ConfigError, match="deployment"):
        JiraConnector.from_config(cfg)


def test_cloud_uses_basic_auth_and_data_center_a_bearer_pat(mock: responses.RequestsMock) -> None:
    """Cloud sends Basic email:api_token; Data Center sends Authorization: Bearer <PAT>."""
    seen: list[str] = []
    for dep in DEPLOYMENTS:
        api = JiraApi(mock, dep)
        api.add("GET", "/myself", 200, {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Support Bot"})
        JiraConnector.from_config(config(dep), counter=CallCounter()).check()
        seen.append(api.calls[-1].request.headers["Authorization"])
    assert seen[0] == "Basic " + base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()
    assert seen[1] == f"Bearer {PAT}"


def test_site_url_gives_browse_links_behind_the_oauth_gateway() -> None:
    """Behind api.atlassian.com, browse links use the configured site URL."""
    jira = connector("cloud", base_url="https://api.atlassian.com/ex/jira/1122", site_url="https://acme.atlassian.net")
    assert jira.issue_url("SUP-7") == "https://acme.atlassian.net/browse/SUP-7"
    with pytest.raises(ConfigError, match=r"systems\.jira\.site_url: host 'evil\.example\.com'"):
        connector("cloud", site_url="https://evil.example.com")


# -- check --------------------------------------------------------------------------------------------------------


def test_check_says_who_we_are(api: JiraApi, jira: JiraConnector) -> None:
    """check() calls /myself of the deployment's API version and names the user."""
    api.add(
        "GET",
        "/myself",
        200,
        {
            "accountId": "5b10ac8d82e05b22cc7d4ef5",
            "displayName": "Support Bot",
            "active": True,
            "accountType": "atlassian",
        },
    )
    assert jira.check() == "authenticated as Support Bot"
    assert api.path(0) == api.api_path("/myself")


def test_check_401_is_an_auth_error_without_the_secret(api: JiraApi, jira: JiraConnector) -> None:
    """A refused credential is an AuthError with one line naming the system, and no secret in it."""
    api.add(
        "GET",
        "/myself",
        401,
        {"errorMessages": ["Client must be authenticated to access this resource."], "errors": {}},
    )
    with pytest.raises(AuthError) as info:
        jira.check()
    text = str(info.value)
    assert text.startswith("jira: 401")
    assert "Client must be authenticated" in text
    assert "\n" not in text
    for secret in (API_TOKEN, PAT, base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()):
        assert secret not in text
    assert jira.http.counter.total() == 1


# -- create -------------------------------------------------------------------------------------------------------


def spec(**overrides: Any) -> IssueSpec:
    values: dict[str, Any] = {
        "project": "SUP",
        "issue_type": "Bug",
        "summary": "Checkout fails\nfor EU customers\x07",
        "description": "## Customer\n\n**Acme** (tier *gold*)\n\n- ARR: 120k\n- Renewal: 2025-01-01\n\n"
        "[Ticket](https://acme.zendesk.com/agent/tickets/4211)\n\n```\nstack trace {code}\n```",
        "priority": "urgent",
        "labels": ["escalated", "cxb-abc123"],
        "properties": {"cxbridge": {"tickets": ["zendesk:ticket:4211"], "op_id": "abc"}},
        "fields": {"customfield_10010": 3},
    }
    values.update(overrides)
    return IssueSpec(**values)


def test_create_issue_is_one_post_with_fields_and_properties(api: JiraApi, jira: JiraConnector) -> None:
    """One POST carries fields, labels, mapped priority, custom fields and properties; no read-back."""
    api.add("POST", "/issue", 201, {"id": "10002", "key": "SUP-7", "self": f"{api.base}/rest/api/{api.v}/issue/10002"})
    issue = jira.create_issue(spec())

    assert jira.http.counter.total() == 1
    assert str(issue.ref) == "jira:issue:10002"
    assert issue.key == "SUP-7"
    assert issue.url == f"{api.base}/browse/SUP-7"
    assert issue.summary == "Checkout fails for EU customers"
    assert issue.labels == ["escalated", "cxb-abc123"]

    sent = api.json(0)
    fields = sent["fields"]
    assert fields["project"] == {"key": "SUP"}
    assert fields["issuetype"] == {"name": "Bug"}
    assert fields["summary"] == "Checkout fails for EU customers"
    assert fields["priority"] == {"name": "Highest"}
    assert fields["labels"] == ["escalated", "cxb-abc123"]
    assert fields["customfield_10010"] == 3
    assert sent["properties"] == [{"key": "cxbridge", "value": {"tickets": ["zendesk:ticket:4211"], "op_id": "abc"}}]
    description = fields["description"]
    if api.deployment == "cloud":
        assert description["type"] == "doc"
        assert "https://acme.zendesk.com/agent/tickets/4211" in json.dumps(description)
    else:
        assert "h2. Customer" in description
        assert "[Ticket|https://acme.zendesk.com/agent/tickets/4211]" in description
        assert "{noformat}\nstack trace {code}\n{noformat}" in description


def test_create_issue_summary_is_one_line_of_at_most_255(api: JiraApi, jira: JiraConnector) -> None:
    """A long, multi-line summary is flattened and cut to Jira's 255 characters."""
    api.add("POST", "/issue", 201, {"id": "10003", "key": "SUP-8", "self": f"{api.base}/rest/api/3/issue/10003"})
    jira.create_issue(spec(summary="word\r\n" * 200, priority=None, properties={}, labels=["two words"]))
    fields = api.json(0)["fields"]
    assert len(fields["summary"]) <= 255
    assert "\n" not in fields["summary"]
    assert "\r" not in fields["summary"]
    assert "priority" not in fields
    assert fields["labels"] == ["two_words"]
    assert "properties" not in api.json(0)


def test_create_issue_unmapped_priority_is_sent_as_is(api: JiraApi, jira: JiraConnector) -> None:
    """A priority the table does not list is sent under its own name."""
    api.add("POST", "/issue", 201, {"id": "10004", "key": "SUP-9", "self": f"{api.base}/rest/api/3/issue/10004"})
    jira.create_issue(spec(priority="Medium"))
    assert api.json(0)["fields"]["priority"] == {"name": "Medium"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"errorMessages": ["Field 'priority' is required"], "errors": {}}, "Field 'priority' is required"),
        (
            {"errorMessages": [], "errors": {"summary": "You must specify a summary of the issue."}},
            "summary: You must specify a summary of the issue.",
        ),
    ],
)
def test_create_issue_400_is_one_line_with_jiras_words(
    api: JiraApi, jira: JiraConnector, body: dict[str, Any], expected: str
) -> None:
    """A 400 names the system and carries Jira's own message on one line; it is not retried."""
    api.add("POST", "/issue", 400, body)
    with pytest.raises(VendorError) as info:
        jira.create_issue(spec())
    assert str(info.value) == f"jira: 400 Bad Request: {expected}"
    assert info.value.vendor_message == expected
    assert info.value.status == 400
    assert jira.http.counter.total() == 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"error": read_timeout()}, AmbiguousOutcome),
        ({"status": 500, "body": {"errorMessages": ["Internal server error"], "errors": {}}}, AmbiguousOutcome),
        ({"status": 502}, AmbiguousOutcome),
        ({"status": 503}, AmbiguousOutcome),
        ({"status": 504}, AmbiguousOutcome),
    ],
)
def test_create_issue_unknown_outcome_is_ambiguous_and_never_retried(
    api: JiraApi, jira: JiraConnector, answer: dict[str, Any], error: type[VendorError]
) -> None:
    """A read timeout or 5xx after a create may have created the issue: AmbiguousOutcome, one attempt only."""
    api.add("POST", "/issue", answer.get("status", 201), answer.get("body"), error=answer.get("error"))
    with pytest.raises(error):
        jira.create_issue(spec())
    assert jira.http.counter.total() == 1


def test_create_issue_429_waits_and_retries(api: JiraApi, jira: JiraConnector) -> None:
    """429 means the create was not processed: it is retried after Retry-After."""
    api.add("POST", "/issue", 429, None, headers={"Retry-After": "1", "RateLimit-Reason": "jira-burst-based"})
    api.add("POST", "/issue", 201, {"id": "10002", "key": "SUP-7", "self": f"{api.base}/rest/api/3/issue/10002"})
    assert jira.create_issue(spec()).key == "SUP-7"
    assert jira.http.counter.total() == 2


def test_429_with_a_long_retry_after_is_raised_for_requeueing(api: JiraApi, jira: JiraConnector) -> None:
    """A Retry-After longer than the inline wait raises RateLimited at once with retry_after set."""
    api.add("GET", "/issue/SUP-7", 429, None, headers={"Retry-After": "120"})
    with pytest.raises(RateLimited) as info:
        jira.get_issue("SUP-7")
    assert info.value.retry_after == 120
    assert jira.http.counter.total() == 1


def test_reads_retry_5xx_then_give_up(api: JiraApi, jira: JiraConnector) -> None:
    """A read is retried on 5xx (max_retries=2 -> 3 attempts) and then raises Unavailable."""
    for _ in range(3):
        api.add("GET", "/issue/SUP-7", 503, {"errorMessages": ["Service Unavailable"], "errors": {}})
    with pytest.raises(Unavailable):
        jira.get_issue("SUP-7")
    assert jira.http.counter.total() == 3


# -- get / search -------------------------------------------------------------------------------------------------


def test_get_issue_reads_status_category_and_friends(api: JiraApi, jira: JiraConnector) -> None:
    """get_issue asks for exactly the fields it maps and reads status, category, versions and dates."""
    api.add("GET", "/issue/SUP-7", 200, issue_bean(base=api.base))
    issue = jira.get_issue("SUP-7")
    assert api.query(0)["fields"] == ["summary,status,resolution,priority,labels,fixVersions,updated,assignee"]
    assert str(issue.ref) == "jira:issue:10002"
    assert issue.key == "SUP-7"
    assert issue.url == f"{api.base}/browse/SUP-7"
    assert issue.status == "In Progress"
    assert issue.status_category == "indeterminate"
    assert issue.priority == "High"
    assert issue.assignee == "Mia Krystof"
    assert issue.labels == ["escalated", "cxb-abc123"]
    assert issue.fix_versions == ["2.4.1"]
    assert issue.updated_at == datetime(2024, 5, 2, 10, 11, 12, tzinfo=UTC)


def test_get_issue_with_empty_fields(api: JiraApi, jira: JiraConnector) -> None:
    """Unassigned issues without priority or versions map to None and empty lists."""
    api.add(
        "GET",
        "/issue/10002",
        200,
        issue_bean(base=api.base, assignee=None, priority=None, fixVersions=[], labels=[], updated=None),
    )
    issue = jira.get_issue("10002")
    assert (issue.assignee, issue.priority, issue.fix_versions, issue.labels, issue.updated_at) == (
        None,
        None,
        [],
        [],
        None,
    )


def test_get_issue_404_is_not_found(api: JiraApi, jira: JiraConnector) -> None:
    """A missing issue is NotFound with Jira's words."""
    api.add(
        "GET",
        "/issue/SUP-404",
        404,
        {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}},
    )
    with pytest.raises(NotFound, match="Issue does not exist"):
        jira.get_issue("SUP-404")


def test_issue_keys_are_one_path_segment(api: JiraApi, jira: JiraConnector) -> None:
    """A key is percent-encoded so it can never add path segments or a query."""
    api.add("GET", "/issue/SUP-7%2F..%2Fmyself%3Fx", 404, {"errorMessages": ["Issue does not exist"], "errors": {}})
    with pytest.raises(NotFound):
        jira.get_issue("SUP-7/../myself?x")
    with pytest.raises(ValueError, match="path segment"):
        jira.get_issue("..")


def test_search_by_label_follows_pagination(mock: responses.RequestsMock, deployment: str) -> None:
    """Cloud follows nextPageToken until isLast; Data Center follows startAt until total."""
    api = JiraApi(mock, deployment)
    jira = connector(deployment)
    beans = [issue_bean(str(10000 + n), f"SUP-{n}", base=api.base) for n in range(1, 4)]
    if deployment == "cloud":
        api.add("POST", "/search/jql", 200, {"issues": beans[:2], "nextPageToken": "page-2", "isLast": False})
        api.add("POST", "/search/jql", 200, {"issues": beans[2:], "isLast": True})
    else:
        api.add("GET", "/search", 200, {"startAt": 0, "maxResults": 2, "total": 3, "issues": beans[:2]})
        api.add("GET", "/search", 200, {"startAt": 2, "maxResults": 2, "total": 3, "issues": beans[2:]})

    found = jira.search_by_label("cxb-abc123")

    assert [i.key for i in found] == ["SUP-1", "SUP-2", "SUP-3"]
    assert [str(i.ref) for i in found] == ["jira:issue:10001", "jira:issue:10002", "jira:issue:10003"]
    assert found[0].status_category == "indeterminate"
    jql = 'labels = "cxb-abc123" ORDER BY created ASC'
    if deployment == "cloud":
        first, second = api.json(0), api.json(1)
        assert first["jql"] == jql
        assert first["fields"] == [
            "summary",
            "status",
            "resolution",
            "priority",
            "labels",
            "fixVersions",
            "updated",
            "assignee",
        ]
        assert "nextPageToken" not in first
        assert second["nextPageToken"] == "page-2"
    else:
        assert api.query(0)["jql"] == [jql]
        assert [api.query(n)["startAt"] for n in (0, 1)] == [["0"], ["2"]]
        assert api.query(0)["fields"] == ["summary,status,resolution,priority,labels,fixVersions,updated,assignee"]


def test_search_with_no_hits(api: JiraApi, jira: JiraConnector) -> None:
    """No issue carries the label: an empty list after one call."""
    if api.deployment == "cloud":
        api.add("POST", "/search/jql", 200, {"issues": [], "isLast": True})
    else:
        api.add("GET", "/search", 200, {"startAt": 0, "maxResults": 100, "total": 0, "issues": []})
    assert jira.search_by_label("cxb-none") == []
    assert jira.http.counter.total() == 1


def test_search_stops_on_a_repeated_page_token(mock: responses.RequestsMock) -> None:
    """A server that hands back the same token again does not loop forever."""
    api = JiraApi(mock, "cloud")
    jira = connector("cloud")
    api.add("POST", "/search/jql", 200, {"issues": [issue_bean()], "nextPageToken": "same", "isLast": False})
    api.add("POST", "/search/jql", 200, {"issues": [issue_bean()], "nextPageToken": "same", "isLast": False})
    assert len(jira.search_by_label("cxb-abc123")) == 2
    assert jira.http.counter.total() == 2


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ('cxb-"x" OR project = SECRET', '"cxb-\\"x\\" OR project = SECRET"'),
        ("a\\b", '"a\\\\b"'),
        ("line\nbreak", '"line\\nbreak"'),
    ],
)
def test_jql_strings_cannot_break_out(value: str, literal: str) -> None:
    """Quotes, backslashes and newlines in a value stay inside the JQL string literal."""
    assert jql_string(value) == literal


def test_search_label_with_a_quote_is_escaped(mock: responses.RequestsMock) -> None:
    """A label value cannot extend the JQL query."""
    api = JiraApi(mock, "cloud")
    api.add("POST", "/search/jql", 200, {"issues": [], "isLast": True})
    connector("cloud").search_by_label('x" OR labels is EMPTY OR labels = "y')
    assert api.json(0)["jql"] == 'labels = "x\\"_OR_labels_is_EMPTY_OR_labels_=_\\"y" ORDER BY created ASC'


# -- remote links, comments, transitions, fields, properties --------------------------------------------------------


@pytest.mark.parametrize("status", [201, 200])
def test_upsert_remote_link(api: JiraApi, jira: JiraConnector, status: int) -> None:
    """201 (created) and 200 (updated the link with this globalId) both return the link id."""
    api.add(
        "POST",
        "/issue/SUP-7/remotelink",
        status,
        {"id": 10000, "self": f"{api.base}/rest/api/{api.v}/issue/SUP-7/remotelink/10000"},
    )
    link_id = jira.upsert_remote_link(
        "SUP-7",
        global_id="system=https://acme.zendesk.com&id=4211",
        url="https://acme.zendesk.com/agent/tickets/4211",
        title="zendesk #4211: Checkout fails",
        summary="Acme Corp",
        resolved=True,
    )
    assert link_id == "10000"
    assert api.json(0) == {
        "globalId": "system=https://acme.zendesk.com&id=4211",
        "application": {"type": "io.cxbridge", "name": "cxbridge"},
        "relationship": "customer ticket",
        "object": {
            "url": "https://acme.zendesk.com/agent/tickets/4211",
            "title": "zendesk #4211: Checkout fails",
            "summary": "Acme Corp",
            "status": {"resolved": True},
        },
    }


def test_remote_link_without_summary_and_with_application_name(api: JiraApi, jira: JiraConnector) -> None:
    """No summary key when there is none; the application name can name the helpdesk."""
    api.add("POST", "/issue/SUP-7/remotelink", 201, {"id": 10001, "self": f"{api.base}/rest/api/3/x"})
    jira.upsert_remote_link(
        "SUP-7", global_id="g", url="https://acme.zendesk.com/agent/tickets/1", title="t", application_name="Zendesk"
    )
    sent = api.json(0)
    assert "summary" not in sent["object"]
    assert sent["object"]["status"] == {"resolved": False}
    assert sent["application"]["name"] == "Zendesk"


def test_remote_link_global_id_limit(jira: JiraConnector) -> None:
    """A globalId longer than Jira's 255 characters is refused before any call."""
    with pytest.raises(ValueError, match="255"):
        jira.upsert_remote_link("SUP-7", global_id="x" * 256, url="https://x.zendesk.com/1", title="t")
    assert jira.http.counter.total() == 0


def test_remote_link_400_names_the_field(api: JiraApi, jira: JiraConnector) -> None:
    """The spec's own 400 example comes out as ``title: 'title' is required.``."""
    api.add("POST", "/issue/SUP-7/remotelink", 400, {"errorMessages": [], "errors": {"title": "'title' is required."}})
    with pytest.raises(VendorError, match=r"title: 'title' is required\."):
        jira.upsert_remote_link("SUP-7", global_id="g", url="https://x.zendesk.com/1", title="t")


def test_add_comment(api: JiraApi, jira: JiraConnector) -> None:
    """A Markdown comment goes out as ADF (Cloud) or wiki text (DC); the new id comes back."""
    body = {
        "id": "10010",
        "self": f"{api.base}/rest/api/{api.v}/issue/10002/comment/10010",
        "body": {"type": "doc", "version": 1, "content": []} if api.deployment == "cloud" else "x",
        "created": "2024-05-02T10:11:12.000+0000",
        "updated": "2024-05-02T10:11:12.000+0000",
    }
    api.add("POST", "/issue/SUP-7/comment", 201, body)
    assert (
        jira.add_comment("SUP-7", "**Customer update:** see [ticket](https://acme.zendesk.com/agent/tickets/1)")
        == "10010"
    )
    sent = api.json(0)["body"]
    if api.deployment == "cloud":
        assert sent["content"][0]["content"][0] == {
            "type": "text",
            "text": "Customer update:",
            "marks": [{"type": "strong"}],
        }
    else:
        assert sent == "*Customer update:* see [ticket|https://acme.zendesk.com/agent/tickets/1]"


def test_add_comment_is_not_retried_on_an_unknown_outcome(api: JiraApi, jira: JiraConnector) -> None:
    """Adding a comment is not idempotent: a 502 is AmbiguousOutcome after one attempt."""
    api.add("POST", "/issue/SUP-7/comment", 502)
    with pytest.raises(AmbiguousOutcome):
        jira.add_comment("SUP-7", "hello")
    assert jira.http.counter.total() == 1


def test_update_comment(api: JiraApi, jira: JiraConnector) -> None:
    """update_comment replaces the body with the converted Markdown."""
    api.add(
        "PUT",
        "/issue/SUP-7/comment/10010",
        200,
        {"id": "10010", "body": {"type": "doc", "version": 1, "content": []} if api.deployment == "cloud" else "y"},
    )
    jira.update_comment("SUP-7", "10010", "Impact: _3 customers_")
    sent = api.json(0)["body"]
    assert sent == (
        {
            "type": "doc",
            "version": 1,
            "content": [
                {
                    "type": "paragraph",
                    "content": [
                        {"type": "text", "text": "Impact: "},
                        {"type": "text", "text": "3 customers", "marks": [{"type": "em"}]},
                    ],
                }
            ],
        }
        if api.deployment == "cloud"
        else "Impact: _3 customers_"
    )


TRANSITIONS = {
    "transitions": [
        {
            "id": "11",
            "name": "Start progress",
            "hasScreen": False,
            "isAvailable": True,
            "to": {"id": "3", "name": "In Progress", "statusCategory": {"id": 4, "key": "indeterminate"}},
        },
        {
            "id": "31",
            "name": "Resolve",
            "hasScreen": False,
            "isAvailable": True,
            "to": {"id": "5", "name": "Done", "statusCategory": {"id": 3, "key": "done"}},
        },
    ]
}


@pytest.mark.parametrize(("name", "transition_id"), [("Resolve", "31"), ("resolve", "31"), ("In Progress", "11")])
def test_transition_by_name(api: JiraApi, jira: JiraConnector, name: str, transition_id: str) -> None:
    """The transition is found by its name or its target status, then posted by id (204)."""
    api.add("GET", "/issue/SUP-7/transitions", 200, TRANSITIONS)
    api.add("POST", "/issue/SUP-7/transitions", 204)
    assert jira.transition_by_name("SUP-7", name) == transition_id
    assert api.json(1) == {"transition": {"id": transition_id}}


def test_transition_unknown_names_the_available_ones(api: JiraApi, jira: JiraConnector) -> None:
    """No matching transition: an error listing what is available, and no POST."""
    api.add("GET", "/issue/SUP-7/transitions", 200, TRANSITIONS)
    with pytest.raises(
        VendorError, match=r"no transition 'Reopen' available for SUP-7 \(available: Resolve, Start progress\)"
    ):
        jira.transition_by_name("SUP-7", "Reopen")
    assert jira.http.counter.total() == 1


def test_edit_fields(api: JiraApi, jira: JiraConnector) -> None:
    """edit_fields PUTs the fields (204)."""
    api.add("PUT", "/issue/SUP-7", 204)
    jira.edit_fields("SUP-7", {"customfield_10020": 3, "labels": ["escalated"]})
    assert api.json(0) == {"fields": {"customfield_10020": 3, "labels": ["escalated"]}}


def test_edit_fields_409_is_a_conflict(api: JiraApi, jira: JiraConnector) -> None:
    """A conflicting update is Conflict and is not retried."""
    api.add("PUT", "/issue/SUP-7", 409, {"errorMessages": ["The issue was updated by someone else."], "errors": {}})
    with pytest.raises(Conflict):
        jira.edit_fields("SUP-7", {"customfield_10020": 3})
    assert jira.http.counter.total() == 1


@pytest.mark.parametrize(("status", "created"), [(201, True), (200, False)])
def test_set_property(api: JiraApi, jira: JiraConnector, status: int, created: bool) -> None:
    """set_property PUTs the JSON value; 201 is created, 200 updated."""
    api.add("PUT", "/issue/SUP-7/properties/cxbridge.workflows.impact", status)
    assert jira.set_property("SUP-7", "cxbridge.workflows.impact", {"customers": 3}) is created
    assert api.json(0) == {"customers": 3}


def test_set_property_refuses_empty_or_oversized_values(jira: JiraConnector) -> None:
    """Jira wants non-empty JSON of at most 32,768 bytes: refused before any call."""
    for value in (None, "", "x" * 40000):
        with pytest.raises(ValueError, match="32768"):
            jira.set_property("SUP-7", "k", value)
    assert jira.http.counter.total() == 0


def test_get_property(api: JiraApi, jira: JiraConnector) -> None:
    """get_property returns the value, or None when the property is absent."""
    api.add("GET", "/issue/SUP-7/properties/cxbridge", 200, {"key": "cxbridge", "value": {"tickets": ["z:t:1"]}})
    api.add(
        "GET",
        "/issue/SUP-7/properties/missing",
        404,
        {"errorMessages": ["The property with key 'missing' does not exist."], "errors": {}},
    )
    assert jira.get_property("SUP-7", "cxbridge") == {"tickets": ["z:t:1"]}
    assert jira.get_property("SUP-7", "missing") is None


# -- error bodies and the harness itself --------------------------------------------------------------------------


class _Response(requests.Response):
    def __init__(self, body: bytes, content_type: str = "application/json") -> None:
        super().__init__()
        self._content = body
        self.status_code = 400
        self.headers["Content-Type"] = content_type


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"errorMessages":["A","B"],"errors":{"summary":"required","priority":"bad"}}',
            "A; B; summary: required; priority: bad",
        ),
        (b'{"errorMessages":[],"errors":{}}', None),
        (b'{"message":"Unauthorized; scope does not match"}', "Unauthorized; scope does not match"),
        (b'{"errorMessages":["line one\\nline two"]}', "line one line two"),
        (b"<html>oops</html>", None),
        (b"[1,2]", None),
    ],
)
def test_error_message(body: bytes, expected: str | None) -> None:
    """ErrorCollection messages and field errors become one line; anything else is None."""
    assert JiraConnector.error_message(_Response(body)) == expected


def test_the_harness_rejects_bodies_the_spec_does_not_allow(mock: responses.RequestsMock) -> None:
    """The spec check is real: an unknown search key fails validation."""
    api = JiraApi(mock, "cloud")
    with pytest.raises(SpecError):
        api.check_request("POST", "/rest/api/3/search/jql", {"jql": "x", "startAt": 0})
    with pytest.raises(SpecError):
        api.add("POST", "/issue", 201, {"id": "1", "key": "A-1", "unexpected": True})
    with pytest.raises(SpecError):
        validate_adf({"type": "doc", "version": 1, "content": [{"type": "text", "text": ""}]})


def test_connector_does_not_import_the_sandbox() -> None:
    """The connector and its emulator share no code (both answer to the vendor's description instead)."""
    import cxbridge_jira.connector as module

    source = Path(module.__file__).read_text(encoding="utf-8")
    assert "sandbox" not in "".join(line for line in source.splitlines() if line.startswith(("import", "from")))


def _to(tid: str, name: str, status: str, category: str) -> dict[str, Any]:
    key_ids = {"new": 2, "indeterminate": 4, "done": 3}
    return {
        "id": tid,
        "name": name,
        "hasScreen": False,
        "isAvailable": True,
        "to": {"id": tid + "0", "name": status, "statusCategory": {"id": key_ids[category], "key": category}},
    }


@pytest.mark.parametrize(
    ("offered", "chosen", "status"),
    [
        # the workflow's own reopen transition first, whatever its target category
        ([_to("11", "Back to do", "To Do", "new"), _to("41", "Reopen issue", "Reopened", "new")], "41", "Reopened"),
        # then one to an in-progress status, then one to a new status
        (
            [_to("11", "Back to do", "To Do", "new"), _to("21", "Work", "In Progress", "indeterminate")],
            "21",
            "In Progress",
        ),
        ([_to("31", "Close", "Closed", "done"), _to("11", "Back to do", "To Do", "new")], "11", "To Do"),
    ],
)
def test_reopen_takes_the_transition_out_of_done_by_category(
    api: JiraApi, jira: JiraConnector, offered: list[dict[str, Any]], chosen: str, status: str
) -> None:
    """Reopen posts the offered transition whose target is not in the done category, by the documented rule."""
    api.add("GET", "/issue/SUP-7/transitions", 200, {"transitions": offered})
    api.add("POST", "/issue/SUP-7/transitions", 204)
    assert jira.reopen("SUP-7") == status
    assert api.json(1) == {"transition": {"id": chosen}}


def test_reopen_without_a_way_out_of_done_posts_nothing(api: JiraApi, jira: JiraConnector) -> None:
    api.add("GET", "/issue/SUP-7/transitions", 200, {"transitions": [_to("31", "Close", "Closed", "done")]})
    with pytest.raises(VendorError, match="no transition reopens SUP-7"):
        jira.reopen("SUP-7")
    assert jira.http.counter.total() == 1


def test_set_priority_compares_before_it_writes(api: JiraApi, jira: JiraConnector) -> None:
    """One read; an edit of the priority by name only when it differs (204), nothing when it is there already."""
    api.add("GET", "/issue/SUP-7", 200, issue_bean(priority={"id": "3", "name": "Medium"}))
    api.add("PUT", "/issue/SUP-7", 204)
    assert jira.set_priority("SUP-7", "High") is True
    assert api.json(1) == {"fields": {"priority": {"name": "High"}}}
    api.add("GET", "/issue/SUP-7", 200, issue_bean(priority={"id": "2", "name": "High"}))
    assert jira.set_priority("SUP-7", "High") is False
    assert jira.http.counter.total() == 3


def test_find_comment_reads_pages_newest_first(api: JiraApi, jira: JiraConnector) -> None:
    body = jira.rich_text("Priority High granted.\n\n(cxbridge cxb-0123456789ab)")
    other = jira.rich_text("Unrelated.")

    def page(start: int, comments: list[tuple[str, Any]], total: int) -> dict[str, Any]:
        return {
            "startAt": start,
            "maxResults": 100,
            "total": total,
            "comments": [{"id": cid, "body": b} for cid, b in comments],
        }

    api.add("GET", "/issue/SUP-7/comment", 200, page(0, [("10", other)], 2))
    api.add("GET", "/issue/SUP-7/comment", 200, page(1, [("9", body)], 2))
    assert jira.find_comment("SUP-7", "cxb-0123456789ab") == "9"
    assert "orderBy=-created" in (api.rsps.calls[0].request.url or "")
    api.add("GET", "/issue/SUP-7/comment", 200, page(0, [("10", other)], 1))
    assert jira.find_comment("SUP-7", "cxb-0123456789ab") is None
