"""``cxbridge policy check``, ``cxbridge act`` and ``cxbridge audit`` on the in-process sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cxbridge.cli import cli
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SAM = "sam@cxbridge.example"
LEE = "lee@cxbridge.example"


@pytest.fixture
def sandbox(vendors: Vendors, sandbox_runtime: SandboxRuntimes, policies: dict[str, Any]) -> tuple[Vendors, Path]:
    return vendors, sandbox_runtime.config(vendors, extra={"policies": policies})


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def notes_on(vendors: Vendors, ticket_id: int) -> list[str]:
    """The internal notes on a ticket, from the Zendesk emulator's own state."""
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)
    return [c["body"] for c in ticket["comments"] if not c["public"]]


def test_check_explains_rule_by_rule_and_writes_nothing(sandbox: tuple[Vendors, Path]) -> None:
    vendors, config = sandbox
    before = {name: vendors[name].state() for name in ("zendesk", "hubspot", "jira")}
    code, out, err = run(
        config, "policy", "check", "--ticket", "1", "--action", "credit", "--value", "150", "--agent", SAM
    )
    assert code == 0, err
    assert "1. tier1-credits" in out
    assert "condition true" in out
    assert "credit up to 100 USD, not 150 USD" in out
    assert "2. team-lead-credits" in out
    assert "condition false" in out
    assert "REFUSED: Credit of 150 USD refused" in out
    assert "rule team-lead-credits" in out
    assert "API calls: hubspot" in out
    assert "zendesk 1" in out
    code, out, err = run(
        config, "policy", "check", "--ticket", "1", "--action", "credit", "--value", "80", "--agent", SAM, "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["decision"]["granted"]
    assert data["decision"]["rule"] == "tier1-credits"
    assert [r["condition"] for r in data["rules"]] == ["true", "false"]
    assert data["calls"]["zendesk"] == 1  # the ticket with its requester and organization, one call
    assert {name: vendors[name].state() for name in ("zendesk", "hubspot", "jira")} == before
    code, out, err = run(config, "audit", "--json")
    assert code == 0, err
    assert json.loads(out) == []


def test_act_granted_applies_at_once_refused_exits_nonzero(sandbox: tuple[Vendors, Path]) -> None:
    """80 under tier1-credits: note on the ticket, CRM note, audit row. 150: refused, audited, nothing else."""
    vendors, config = sandbox
    before = len(vendors["hubspot"].state()["objects"]["notes"])
    code, out, err = run(
        config,
        "act",
        "1",
        "--action",
        "credit",
        "--value",
        "80",
        "--agent",
        SAM,
        "--note",
        "Sorry for the month-end trouble.",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["decision"]["granted"]
    assert data["writes"]["ticket_note"] == "written"
    notes = [n for n in notes_on(vendors, 1) if "Credit of 80 USD" in n]
    assert len(notes) == 1
    assert notes[0].startswith(f"Credit of 80 USD granted by {SAM} under rule tier1-credits")
    assert "Sorry for the month-end trouble." in notes[0]
    assert len(vendors["hubspot"].state()["objects"]["notes"]) == before + 1

    code, out, err = run(config, "act", "1", "--action", "credit", "--value", "150", "--agent", SAM)
    assert code != 0
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "Credit of 150 USD refused" in lines[0]
    assert "rule team-lead-credits" in lines[0]
    assert len([n for n in notes_on(vendors, 1) if "Credit of" in n]) == 1
    assert len(vendors["hubspot"].state()["objects"]["notes"]) == before + 1

    code, out, err = run(config, "audit", "--ticket", "1", "--json")
    assert code == 0, err
    rows = [r for r in json.loads(out) if r["action"] == "act.credit"]
    assert [(r["actor"], r["result"], r["policy"]) for r in rows] == [
        (SAM, "granted", "tier1-credits"),
        (SAM, "refused", None),
    ]
    assert rows[0]["details"]["value"] == "80 USD"
    assert rows[1]["details"]["would_allow"] == "team-lead-credits"
    code, out, err = run(config, "audit", "--ticket", "zendesk:ticket:1")
    assert code == 0, err
    assert "act.credit" in out
    assert "granted" in out
    assert "tier1-credits" in out
    assert "refused" in out


def test_act_with_the_same_request_id_repeats_no_write(sandbox: tuple[Vendors, Path]) -> None:
    vendors, config = sandbox
    args = ("act", "2", "--action", "credit", "--value", "80", "--agent", SAM, "--request-id", "r-1", "--json")
    code, out, err = run(config, *args)
    assert code == 0, err
    code, out, err = run(config, *args)
    assert code == 0, err
    assert set(json.loads(out)["writes"].values()) == {"unchanged"}
    assert len([n for n in notes_on(vendors, 2) if "Credit of 80 USD" in n]) == 1
    assert len(vendors["hubspot"].state()["objects"]["notes"]) == 1
    code, out, _ = run(config, "audit", "--ticket", "2", "--json")
    assert len([r for r in json.loads(out) if r["action"] == "act.credit"]) == 1


def test_the_lead_may_credit_150(sandbox: tuple[Vendors, Path]) -> None:
    vendors, config = sandbox
    code, out, err = run(config, "act", "1", "--action", "credit", "--value", "150", "--agent", LEE)
    assert code == 0, err
    assert f"Credit of 150 USD granted by {LEE} under rule team-lead-credits" in out
    assert len([n for n in notes_on(vendors, 1) if "Credit of 150 USD" in n]) == 1


def test_bad_requests_are_one_line_errors(sandbox: tuple[Vendors, Path]) -> None:
    _, config = sandbox
    code, _, err = run(config, "act", "1", "--action", "refund", "--value", "5", "--agent", SAM)
    assert code != 0
    assert "unknown action 'refund'" in err
    code, _, err = run(config, "audit", "--ticket", "1", "--issue", "ENG-1")
    assert code != 0
    assert "not both" in err
    code, out, err = run(config, "audit")
    assert code == 0
    assert "no audit rows" in out


def test_escalate_with_decisions_from_the_command_line(sandbox: tuple[Vendors, Path]) -> None:
    """``--priority``/``--action`` are checked against the policies; a refusal is one line and writes nothing."""
    vendors, config = sandbox
    notes_before = notes_on(vendors, 2)
    code, out, err = run(config, "escalate", "2", "--agent", SAM, "--priority", "Highest", "--note", "x")
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert "Priority Highest refused" in err
    assert "rule team-lead-credits" in err
    assert vendors["jira"].state()["issues"] == []
    assert notes_on(vendors, 2) == notes_before
    assert vendors["hubspot"].state()["objects"]["notes"] == []
    code, out, err = run(config, "escalate", "2", "--agent", LEE, "--action", "priority=highest", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["priority"]["value"] == "Highest"
    assert data["priority"]["reason"].startswith(f"decided by {LEE} under rule team-lead-credits")
    code, out, err = run(config, "audit", "--issue", data["issue_key"])
    assert code == 0, err
    assert "decision.priority" in out
    assert "Priority Highest" in out


def test_rules_lists_what_each_rule_grants(sandbox: tuple[Vendors, Path]) -> None:
    vendors, config = sandbox
    calls = vendors.calls()
    code, out, err = run(config, "policy", "rules")
    assert code == 0, err
    assert "1. tier1-credits" in out
    assert "grants priority up to High, credit up to 100 USD, skip triage" in out
    code, out, err = run(config, "policy", "rules", "--json")
    assert [r["name"] for r in json.loads(out)["rules"]] == ["tier1-credits", "team-lead-credits"]
    assert vendors.calls() == calls
