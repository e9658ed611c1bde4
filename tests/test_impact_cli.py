"""``cxbridge impact`` (one issue, or the open issues ranked by ARR) and ``cxbridge unlink`` on the sandbox."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cxbridge.cli import cli
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows.escalate import Escalation, EscalationRequest

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

FIELDS = {"arr": "customfield_10100", "customers": "customfield_10101", "tickets": "customfield_10102"}


@pytest.fixture
def config(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Path:
    return sandbox_runtime.config(vendors, extra={"impact": {"fields": FIELDS}})


@pytest.fixture
def issues(config: Path, sandbox_runtime: SandboxRuntimes) -> dict[str, str]:
    """One issue for Acme and Globex (630,000 USD), one for Initech (12,000 USD)."""
    rt = sandbox_runtime.load(config)
    one = Escalation(rt).run(EscalationRequest(ticket_id="1", note="a"))
    Escalation(rt).run(EscalationRequest(ticket_id="2", link_key=one.issue_key, note="b"))
    two = Escalation(rt).run(EscalationRequest(ticket_id="3", note="c"))
    return {"big": one.issue_key, "small": two.issue_key}


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def test_ranking_lists_open_issues_by_arr_at_stake(config: Path, issues: dict[str, str]) -> None:
    code, out, err = run(config, "impact", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["issue"] for r in rows] == [issues["big"], issues["small"]]
    assert rows[0]["arr"] == {"USD": "630000"}
    assert rows[0]["customers"] == 2
    assert rows[1]["arr"] == {"USD": "12000"}
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))


def test_done_issues_leave_the_ranking(config: Path, issues: dict[str, str], sandbox_runtime: SandboxRuntimes) -> None:
    """Which issues are open comes from the tracker (status category), not from the store."""
    rt = sandbox_runtime.load(config)
    try:
        rt.tracker().transition_by_name(issues["small"], "Done")  # type: ignore[attr-defined]
    finally:
        rt.close()
    code, out, err = run(config, "impact", "--json")
    assert code == 0, err
    assert [r["issue"] for r in json.loads(out)] == [issues["big"]]


def test_top_csv_and_table(config: Path, issues: dict[str, str]) -> None:
    code, out, _ = run(config, "impact", "--top", "1", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 1
    assert rows[0]["issue"] == issues["big"]
    assert rows[0]["arr"] == "630000 USD"
    assert rows[0]["customers"] == "2"
    assert rows[0]["tickets"] == "2"
    code, out, _ = run(config, "impact")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["#", "issue", "customers", "tickets"]
    assert lines[1].split()[:5] == ["1", issues["big"], "2", "2", "630000"]


def test_one_issue_shows_its_customers_and_tickets(config: Path, issues: dict[str, str]) -> None:
    code, out, err = run(config, "impact", issues["big"])
    assert code == 0, err
    assert f"{issues['big']}: 2 customers, 2 tickets" in out
    assert "Acme Corp" in out
    assert "Globex" in out
    assert "zendesk:ticket:1" in out
    assert "zendesk:ticket:2" in out


def test_errors_are_one_line(config: Path, issues: dict[str, str]) -> None:
    code, _, err = run(config, "impact", "NOPE-1")
    assert code == 1
    assert "nothing is linked to NOPE-1" in err
    code, _, err = run(config, "impact", "--json", "--csv")
    assert code == 2
    assert "exclusive" in err
    code, _, err = run(config, "unlink", "3", issues["big"])
    assert code == 1
    assert "zendesk:ticket:3 is not linked to" in err


def test_unlink_from_the_command_line(vendors: Vendors, config: Path, issues: dict[str, str]) -> None:
    code, out, err = run(config, "unlink", "zendesk:ticket:2", issues["big"], "--json", "--agent", "sam@x.example")
    assert code == 0, err
    data = json.loads(out)
    assert data["remote_link"] == "deleted"
    assert data["impact"] == "written"
    issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == issues["big"])
    assert [link["globalId"].rsplit("&id=", 1)[1] for link in issue["remoteLinks"]] == ["1"]
    assert issue["fields"]["customfield_10101"] == 1
    code, out, _ = run(config, "impact", issues["big"], "--json")
    assert json.loads(out)["customers"] == 1
    code, out, err = run(config, "links", issues["big"], "--json")
    assert [link["ticket"] for link in json.loads(out)] == ["zendesk:ticket:1"]


def test_unlinking_the_last_ticket_clears_the_values(vendors: Vendors, config: Path, issues: dict[str, str]) -> None:
    """No ticket left: 0 customers and tickets, and the ARR field cleared (unknown), not 0; the tier label goes."""
    code, _, err = run(config, "unlink", "3", issues["small"])
    assert code == 0, err
    issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == issues["small"])
    assert issue["fields"]["customfield_10101"] == 0
    assert issue["fields"]["customfield_10102"] == 0
    assert issue["fields"].get("customfield_10100") is None
    assert not [label for label in issue["fields"]["labels"] if label.startswith("cxb-tier-")]
    assert "0 customers, 0 tickets" in issue["fields"]["description"]
    code, out, _ = run(config, "impact", "--json")
    assert [r["issue"] for r in json.loads(out)] == [issues["big"]]
