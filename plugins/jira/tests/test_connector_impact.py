"""The Jira connector's impact methods: the issue read with description and fields, the one-edit impact write,
and deleting a remote link by globalId; every request checked against Atlassian's description (REST v3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from cxbridge_jira.adf import markdown_to_adf
from cxbridge_jira.connector import JiraConnector

from cxbridge.sdk import Secret, SystemConfig
from cxbridge.testing import Spec, build_connector, validate_adf

SPEC = Spec("jira")
BASES = {"cloud": "https://acme.atlassian.net", "datacenter": "https://jira.example.org"}


def connector(deployment: str) -> JiraConnector:
    if deployment == "cloud":
        opts: dict[str, Any] = {"deployment": "cloud", "email": "bot@example.com", "api_token": Secret("t-1")}
    else:
        opts = {"deployment": "datacenter", "personal_access_token": Secret("pat-1")}
    cfg = SystemConfig(
        name="jira", plugin="jira", base_url=BASES[deployment], max_retries=0, options={**opts, "project": "SUP"}
    )
    return build_connector(JiraConnector, cfg)


@pytest.fixture(params=["cloud", "datacenter"])
def deployment(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def api(deployment: str) -> str:
    return BASES[deployment] + ("/rest/api/3" if deployment == "cloud" else "/rest/api/2")


def test_get_issue_asks_for_the_wanted_fields_and_keeps_them(mock: responses.RequestsMock, deployment: str) -> None:
    """After ``want_fields``, one GET returns the description (raw form) and the custom fields in ``Issue.fields``."""
    description = markdown_to_adf("Hello") if deployment == "cloud" else "Hello"
    bean = {
        "id": "10002",
        "key": "SUP-7",
        "self": f"{api(deployment)}/issue/10002",
        "fields": {
            "summary": "S",
            "labels": ["cxb-tier-growth"],
            "description": description,
            "customfield_10100": 12.5,
        },
    }
    SPEC.validate_response("GET", "/rest/api/3/issue/{issueIdOrKey}", 200, bean)
    mock.get(f"{api(deployment)}/issue/SUP-7", json=bean)
    jira = connector(deployment)
    jira.want_fields(["description", "customfield_10100"])
    jira.want_fields(["customfield_10100"])  # asking twice asks once
    issue = jira.get_issue("SUP-7")
    fields = parse_qs(urlsplit(str(mock.calls[0].request.url)).query)["fields"][0].split(",")
    assert fields[-2:] == ["description", "customfield_10100"]
    assert fields.count("customfield_10100") == 1
    assert issue.description == description
    assert issue.fields["customfield_10100"] == 12.5
    assert issue.labels == ["cxb-tier-growth"]


def test_write_impact_is_one_valid_edit(mock: responses.RequestsMock, deployment: str) -> None:
    """Fields, the description in the deployment's form and label add/remove go in ONE editIssue call (204)."""
    seen: list[requests.PreparedRequest] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        seen.append(request)
        return 204, {}, ""

    mock.add_callback("PUT", f"{api(deployment)}/issue/SUP-7", callback=answer)
    jira = connector(deployment)
    jira.write_impact(
        "SUP-7",
        fields={"customfield_10100": 630000, "customfield_10103": "2027-01-31", "customfield_10104": "strategic"},
        description=jira.rich_text("## Customer impact\n\n**2 customers**"),
        add_labels=["cxb-tier-strategic"],
        remove_labels=["cxb-tier-standard"],
    )
    assert len(seen) == 1
    assert parse_qs(urlsplit(str(seen[0].url)).query)["notifyUsers"] == ["false"]
    body = json.loads(seen[0].body or b"{}")
    SPEC.validate_request("PUT", "/rest/api/3/issue/{issueIdOrKey}", body)
    assert body["update"] == {"labels": [{"add": "cxb-tier-strategic"}, {"remove": "cxb-tier-standard"}]}
    assert body["fields"]["customfield_10100"] == 630000
    if deployment == "cloud":
        validate_adf(body["fields"]["description"])
    else:
        assert body["fields"]["description"].startswith("h2. Customer impact")


def test_write_impact_without_description_or_labels_sends_only_fields(mock: responses.RequestsMock) -> None:
    mock.put(f"{api('cloud')}/issue/SUP-7", status=204)
    connector("cloud").write_impact("SUP-7", fields={"customfield_10101": 2})
    assert json.loads(mock.calls[0].request.body or b"{}") == {"fields": {"customfield_10101": 2}}


def test_delete_remote_link_by_global_id(mock: responses.RequestsMock, deployment: str) -> None:
    """deleteRemoteIssueLinkByGlobalId: the globalId travels URL-encoded as a query parameter; 404 is False."""
    global_id = "system=https://acme.zendesk.com&id=12"
    url = f"{api(deployment)}/issue/SUP-7/remotelink"
    mock.delete(url, status=204, match=[responses.matchers.query_param_matcher({"globalId": global_id})])
    mock.delete(
        url,
        status=404,
        json={"errorMessages": ["No remote link"], "errors": {}},
        match=[responses.matchers.query_param_matcher({"globalId": global_id})],
    )
    jira = connector(deployment)
    assert jira.delete_remote_link("SUP-7", global_id) is True
    assert "globalId=system%3Dhttps%3A%2F%2Facme.zendesk.com%26id%3D12" in (mock.calls[0].request.url or "")
    assert (
        SPEC.match_path("DELETE", "/rest/api/3/issue/SUP-7/remotelink") == "/rest/api/3/issue/{issueIdOrKey}/remotelink"
    )
    assert jira.delete_remote_link("SUP-7", global_id) is False
    with pytest.raises(ValueError, match="globalId"):
        jira.delete_remote_link("SUP-7", "x" * 256)
