"""``cxbridge escalate`` and ``cxbridge links`` from the command line, on the in-process sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cxbridge.cli import cli
from cxbridge.sandbox.modes import mock_vendors, write_config

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as vendors:
        yield write_config(vendors, tmp_path / "cxbridge.toml")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_escalate_json_reports_issue_outcome_and_calls(config: Path) -> None:
    code, out, err = run("--config", str(config), "escalate", "1", "--json", "--note", "Reproduced.")
    assert code == 0, err
    data = json.loads(out)
    assert data["outcome"] == "created"
    assert data["issue_key"] == "ENG-1"
    assert data["issue_url"].endswith("/browse/ENG-1")
    assert data["calls"] == {"zendesk": 2, "hubspot": 5, "jira": 4}  # owner and create screen read once
    code, out, err = run("--config", str(config), "escalate", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["outcome"] == "linked"


def test_escalate_link_joins_and_links_lists_both(config: Path) -> None:
    assert run("--config", str(config), "escalate", "1")[0] == 0
    code, out, err = run("--config", str(config), "escalate", "2", "--link", "ENG-1")
    assert code == 0, err
    assert "linked to ENG-1" in out
    code, out, _ = run("--config", str(config), "links", "ENG-1", "--json")
    assert code == 0
    assert sorted(link["ticket"] for link in json.loads(out)) == ["zendesk:ticket:1", "zendesk:ticket:2"]
    code, out, _ = run("--config", str(config), "links", "2")
    assert code == 0
    assert "ENG-1" in out


def test_dry_run_prints_handoff_and_plan(config: Path) -> None:
    code, out, err = run("--config", str(config), "escalate", "1", "--dry-run")
    assert code == 0, err
    assert "--- issue_description ---" in out
    assert "calls it would make" in out
    code, out, _ = run("--config", str(config), "links", "1")
    assert code != 0


def test_missing_ticket_is_one_line_on_stderr(config: Path) -> None:
    code, _out, err = run("--config", str(config), "escalate", "424242")
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "zendesk: 404" in lines[0]
    assert "Traceback" not in err


def test_a_ticket_id_the_helpdesk_cannot_hold_is_one_clear_line(config: Path) -> None:
    """``escalate abc`` on a helpdesk whose ticket ids are numbers: exit 1 and one line naming the bad id."""
    code, _out, err = run("--config", str(config), "escalate", "abc")
    assert code == 1
    assert [line for line in err.splitlines() if line.strip()] == ["Error: not a Zendesk ticket id: 'abc'"]
