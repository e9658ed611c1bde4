"""Customer impact end to end on the in-process sandbox: escalations and joins keep the Jira issue current.

The demo seeds have one ticket per company; a second ticket from Acme (Ada again) is created in the Zendesk
emulator by each test, so that three tickets come from two companies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from cxbridge_jira.signals import plain_text

from cxbridge.cli import cli
from cxbridge.demo import DEMO_SETTINGS
from cxbridge.models import Ref
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors, mock_vendors
from cxbridge.testing import SandboxRuntimes, validate_adf
from cxbridge.workflows import impact
from cxbridge.workflows.escalate import Escalation, EscalationRequest

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

FIELDS: dict[str, str] = DEMO_SETTINGS["impact"]["fields"]  # the demo seed's Jira custom fields


@pytest.fixture
def config_path(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Path:
    return sandbox_runtime.config(vendors, extra={"impact": {"fields": FIELDS}})


@pytest.fixture
def runtime(config_path: Path, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime.load(config_path)


def second_acme_ticket(vendors: Vendors) -> str:
    """A new ticket from Ada (Acme), created in the Zendesk emulator as if she had written in."""
    model: Any = vendors["zendesk"].model  # type: ignore[attr-defined]
    ada = model.user_by_email("ada@acme.example")
    body = {"ticket": {"subject": "CSV export still failing", "comment": {"body": "Again today."}, "priority": "high"}}
    ticket, _, _ = model.create_ticket(body, ada, comment_author_id=ada.id)
    return str(ticket.id)


def issue_fields(vendors: Vendors, key: str) -> dict[str, Any]:
    issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)
    fields: dict[str, Any] = issue["fields"]
    return fields


def impact_values(vendors: Vendors, key: str) -> dict[str, Any]:
    fields = issue_fields(vendors, key)
    return {name: fields.get(fid) for name, fid in FIELDS.items()}


def remote_links(vendors: Vendors, key: str) -> list[str]:
    issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)
    return [link["globalId"] for link in issue["remoteLinks"]]


def test_three_tickets_from_two_companies_then_unlink(vendors: Vendors, runtime: Runtime, config_path: Path) -> None:
    """2 customers, 3 tickets, ARR summed once per company, soonest renewal; unlinking one updates them."""
    third = second_acme_ticket(vendors)
    first = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced."))
    assert first.calls == {
        "zendesk": 2,
        "hubspot": 5,
        "jira": 4,
    }  # the create carries the impact; the owner and the create screen are read once
    key = first.issue_key
    opened = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == 1)["created_at"]
    assert (
        impact_values(vendors, key)
        == {
            "arr": 480000.0,
            "customers": 1.0,
            "tickets": 1.0,
            "renewal": "2027-01-31",
            "tier": "strategic",
            "tier_rank": 4.0,  # a number field: sorts strategic above enterprise above growth above standard
            "oldest": opened[:10],  # the day ticket 1 was opened
        }
    )
    second = Escalation(runtime).run(EscalationRequest(ticket_id="2", link_key=key, note="Same bug."))
    assert sum(second.calls.values()) <= 9
    assert second.calls == {"zendesk": 2, "hubspot": 4, "jira": 3}
    assert second.writes["impact"] == "written"
    joined = Escalation(runtime).run(EscalationRequest(ticket_id=third, link_key=key, note="Acme again."))
    assert joined.writes["impact"] == "written"

    values = impact_values(vendors, key)
    assert values["customers"] == 2
    assert values["tickets"] == 3
    assert values["arr"] == 480000 + 150000  # Acme once, although it has two tickets
    assert values["renewal"] == "2027-01-31"
    assert values["tier"] == "strategic"
    labels = issue_fields(vendors, key)["labels"]
    assert {"cxb-tier-strategic", "cxb-tier-enterprise", "cxbridge"} <= set(labels)

    # the block is in the description once, valid ADF as Jira Cloud returns it
    issue = runtime.tracker().get_issue(key)
    validate_adf(issue.description)
    assert sum(1 for n in issue.description["content"] if plain_text(n) == impact.BLOCK_TITLE) == 1
    assert "2 customers, 3 tickets" in plain_text(issue.description)
    assert "Reproduced." in plain_text(issue.description)  # the handoff above the block is kept

    # a replay writes nothing
    before = len(vendors["jira"].calls)
    assert impact.refresh_by_key(runtime, key) is False
    assert [c.method for c in vendors["jira"].calls[before:]] == ["GET"]

    # `cxbridge impact --json` agrees with the issue
    out = CliRunner().invoke(cli, ["--config", str(config_path), "impact", key, "--json"])
    assert out.exit_code == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["customers"] == 2
    assert report["tickets"] == 3
    assert report["arr"] == {"USD": "630000"}
    for fid, value in report["fields"].items():
        assert impact.same_value(value, issue_fields(vendors, key).get(fid)), fid

    # unlink Globex's ticket: the remote link goes, the values and the tier label follow
    assert len(remote_links(vendors, key)) == 3
    result = impact.unlink(runtime, Ref("zendesk", "ticket", "2"), key, actor="sam@cxbridge.example")
    assert result.remote_link == "deleted"
    assert result.impact == "written"
    assert result.calls == {"jira": 3}
    assert len(remote_links(vendors, key)) == 2
    assert not any(g.endswith("&id=2") for g in remote_links(vendors, key))
    values = impact_values(vendors, key)
    assert values["customers"] == 1
    assert values["tickets"] == 2
    assert values["arr"] == 480000
    assert "cxb-tier-enterprise" not in issue_fields(vendors, key)["labels"]
    assert "cxb-tier-strategic" in issue_fields(vendors, key)["labels"]
    assert [e.action for e in runtime.store.audit_entries(issue_key=key)][-1] == "unlink"
    assert [str(link.ticket) for link in runtime.store.links_for_issue_key(key)] == [
        "zendesk:ticket:1",
        f"zendesk:ticket:{third}",
    ]

    out = CliRunner().invoke(cli, ["--config", str(config_path), "impact", key, "--json"])
    report = json.loads(out.stdout)
    assert (report["customers"], report["tickets"], report["arr"]) == (1, 2, {"USD": "480000"})


def test_refresh_picks_up_arr_changed_in_the_crm(vendors: Vendors, runtime: Runtime, config_path: Path) -> None:
    """`impact KEY --refresh` re-reads the companies and writes the new ARR; a second refresh writes nothing."""
    first = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="x"))
    Escalation(runtime).run(EscalationRequest(ticket_id="2", link_key=first.issue_key, note="y"))
    acme = runtime.store.links_for_ticket(Ref("zendesk", "ticket", "1"))[0].customer
    assert acme is not None
    hubspot = vendors["hubspot"]
    changed = requests.patch(
        f"{hubspot.base_url}/crm/v3/objects/companies/{acme.id}",
        headers={"Authorization": f"Bearer {hubspot.credentials()['access_token']}"},
        json={"properties": {"annualrevenue": "500000.50", "renewal_date": "2026-12-31"}},
        timeout=5,
    )
    assert changed.status_code == 200, changed.text
    out = CliRunner().invoke(cli, ["--config", str(config_path), "impact", first.issue_key, "--refresh", "--json"])
    assert out.exit_code == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["written"] is True
    assert report["arr"] == {"USD": "650000.50"}
    values = impact_values(vendors, first.issue_key)
    assert values["arr"] == 650000.5
    assert values["renewal"] == "2026-12-31"
    before = len(vendors["jira"].calls)
    again = CliRunner().invoke(cli, ["--config", str(config_path), "impact", first.issue_key, "--refresh", "--json"])
    assert json.loads(again.stdout)["written"] is False
    assert "PUT" not in [c.method for c in vendors["jira"].calls[before:]]


def test_data_center_gets_the_block_as_wiki_text(sandbox_runtime: SandboxRuntimes) -> None:
    """On Jira Data Center the block is wiki markup, spliced in place: a join replaces it, never adds one."""
    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as vendors:
        vendors["jira"].set_deployment("datacenter")  # type: ignore[attr-defined]
        rt = sandbox_runtime(vendors, extra={"impact": {"fields": FIELDS}})
        try:
            first = Escalation(rt).run(EscalationRequest(ticket_id="1", note="x"))
            Escalation(rt).run(EscalationRequest(ticket_id="2", link_key=first.issue_key, note="y"))
            issue = rt.tracker().get_issue(first.issue_key)
            assert isinstance(issue.description, str)
            assert issue.description.count("h2. Customer impact") == 1
            assert "2 customers, 2 tickets" in issue.description
            before = len(vendors["jira"].calls)
            assert impact.refresh_by_key(rt, first.issue_key) is False
            assert [c.method for c in vendors["jira"].calls[before:]] == ["GET"]
        finally:
            rt.close()
