"""``cxbridge import-links``: the links of Zendesk's own Jira integration become cxbridge links (remote links, the
store's links, the impact), idempotently, with ``--dry-run``; against the Zendesk and Jira emulators."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from cxbridge.cli import cli
from cxbridge.connectors import IssueSpec
from cxbridge.demo import DEMO_SETTINGS
from cxbridge.models import Ref
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows.escalate import Escalation, EscalationRequest, completed_escalation
from cxbridge.workflows.imports import import_links

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

FIELDS: dict[str, str] = DEMO_SETTINGS["impact"]["fields"]
ADMIN = "agent@cxbridge.example"


def zendesk_api(vendors: Vendors, method: str, path: str, **kwargs: Any) -> requests.Response:
    zendesk = vendors["zendesk"]
    return requests.request(
        method,
        f"{zendesk.base_url}{path}",
        auth=(f"{ADMIN}/token", zendesk.credentials()["api_token"]),
        timeout=10,
        **kwargs,
    )


def integration_link(vendors: Vendors, ticket_id: int, issue_id: str, issue_key: str) -> dict[str, Any]:
    """What Zendesk's Jira integration recorded when an agent linked the ticket in the Jira app."""
    answer = zendesk_api(
        vendors,
        "POST",
        "/api/v2/jira/links",
        json={"link": {"ticket_id": ticket_id, "issue_id": issue_id, "issue_key": issue_key}},
    )
    assert answer.status_code == 201, answer.text
    link: dict[str, Any] = answer.json()["link"]
    return link


def jira_issue(vendors: Vendors, key: str) -> dict[str, Any]:
    return next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)


def test_the_emulator_keeps_the_links_as_documented(vendors: Vendors) -> None:
    first = integration_link(vendors, 1, "10050", "ENG-50")
    second = integration_link(vendors, 2, "10050", "ENG-50")
    assert set(first) == {"id", "ticket_id", "issue_id", "issue_key", "url", "created_at", "updated_at"}
    assert (first["ticket_id"], first["issue_id"]) == (1, "10050")
    duplicate = zendesk_api(
        vendors, "POST", "/api/v2/jira/links", json={"link": {"ticket_id": 1, "issue_id": "10050", "issue_key": "X-1"}}
    )
    assert duplicate.status_code == 422
    missing = zendesk_api(
        vendors, "POST", "/api/v2/jira/links", json={"link": {"ticket_id": 999, "issue_id": "1", "issue_key": "X-1"}}
    )
    assert missing.status_code == 422
    page = zendesk_api(vendors, "GET", "/api/v2/jira/links", params={"page[size]": 1}).json()
    assert ([link["id"] for link in page["links"]], page["total"]) == ([first["id"]], 2)
    after = zendesk_api(vendors, "GET", "/api/v2/jira/links", params={"page[size]": 1, "page[after]": first["id"]})
    assert [link["id"] for link in after.json()["links"]] == [second["id"]]
    by_ticket = zendesk_api(vendors, "GET", "/api/v2/jira/links", params={"filter[ticket_id]": 2}).json()
    assert [link["id"] for link in by_ticket["links"]] == [second["id"]]
    assert zendesk_api(vendors, "DELETE", f"/api/v2/jira/links/{first['id']}").status_code == 204
    assert zendesk_api(vendors, "DELETE", f"/api/v2/jira/links/{first['id']}").status_code == 404
    assert zendesk_api(vendors, "GET", "/api/v2/jira/links").json()["total"] == 1
    end_user = requests.get(
        f"{vendors['zendesk'].base_url}/api/v2/jira/links",
        auth=("alex@cxbridge.example/token", vendors["zendesk"].credentials()["api_token"]),
        timeout=10,
    )
    assert end_user.status_code == 403  # admins only


def test_import_links_dry_run_then_import_then_again(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    path = sandbox_runtime.config(vendors, extra={"impact": {"fields": FIELDS}})
    runtime = sandbox_runtime.load(path)
    eng1 = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    legacy = runtime.tracker().create_issue(
        IssueSpec(project="ENG", issue_type="Bug", summary="Invoice address cannot be changed", description="Old.")
    )
    eng1_id = jira_issue(vendors, eng1)["id"]
    integration_link(vendors, 1, eng1_id, eng1)  # linked by both: already a cxbridge link
    integration_link(vendors, 2, legacy.ref.id, legacy.key)
    integration_link(vendors, 3, legacy.ref.id, legacy.key)
    jira_state = json.dumps(vendors["jira"].state(), sort_keys=True)

    planned = import_links(runtime, dry_run=True)
    assert [row["outcome"] for row in planned.links] == ["already linked", "planned", "planned"]
    assert json.dumps(vendors["jira"].state(), sort_keys=True) == jira_state
    assert runtime.store.links_for_issue_key(legacy.key) == []

    done = import_links(runtime)
    assert [row["outcome"] for row in done.links] == ["already linked", "imported", "imported"]
    assert [row.get("customer") for row in done.links[1:]] == ["Globex", "Initech"]
    assert done.impact == {eng1: "unchanged", legacy.key: "written"}
    issue = jira_issue(vendors, legacy.key)
    urls = [link["object"]["url"] for link in issue["remoteLinks"]]
    assert urls == [runtime.helpdesk("zendesk").ticket_url(t) for t in ("2", "3")]
    assert (issue["fields"][FIELDS["customers"]], issue["fields"][FIELDS["tickets"]]) == (2, 2)
    assert issue["fields"][FIELDS["arr"]] == 150000 + 12000
    ticket2 = Ref("zendesk", "ticket", "2")
    assert [link.issue_key for link in runtime.store.links_for_ticket(ticket2)] == [legacy.key]
    assert completed_escalation(runtime.store, ticket2) is not None  # a later event does not escalate it again
    assert [e.action for e in runtime.store.audit_entries(ticket=ticket2)] == ["import.link"]

    writes = [c for c in vendors["jira"].calls if c.method != "GET"]
    again = import_links(runtime)
    assert [row["outcome"] for row in again.links] == ["already linked"] * 3
    assert [c for c in vendors["jira"].calls if c.method != "GET"] == writes
    assert len(jira_issue(vendors, legacy.key)["remoteLinks"]) == 2
    runtime.close()

    out = CliRunner().invoke(cli, ["--config", str(path), "import-links", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "3 links found; would import 0, 3 already linked" in out.output


def test_pages_are_followed(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a page of one link, each page asks for the links after the last id."""
    import cxbridge_zendesk.connector as zendesk_connector

    monkeypatch.setattr(zendesk_connector, "JIRA_LINKS_PAGE", 1)
    runtime = sandbox_runtime(vendors)
    for ticket_id in (1, 2, 3):
        integration_link(vendors, ticket_id, f"100{ticket_id}", f"ENG-{ticket_id}")
    start = len(vendors["zendesk"].calls)
    found = list(runtime.helpdesk("zendesk").integration_links())  # type: ignore[attr-defined]
    assert [link.ticket_id for link in found] == ["1", "2", "3"]
    asked = [c.path for c in vendors["zendesk"].calls[start:]]
    assert len(asked) == 4  # three full pages and an empty one
    assert "page%5Bafter%5D" in asked[1]
