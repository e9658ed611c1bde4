"""A new helpdesk is a plugin, never a core edit: AcmeDesk, an invented helpdesk, installed like a third-party plugin.

``tests/acmedesk/`` is the plugin's distribution (connector, webhook verifier, emulator) and ``scenario.py`` the
story it runs. The module fixture installs the distribution with pip into a temporary folder outside the
repository and runs the scenario in a subprocess whose ``PYTHONPATH`` is that folder, so cxbridge can only find the
plugin through its ``cxbridge`` entry point. The scenario escalates AcmeDesk tickets from a signed webhook (through
the real receiver and ``drain``), from a poll, and by a typed issue key; syncs a Jira transition and a support
comment back; and reads the customer impact. The assertions are the emulators' and the store's state it reports.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PLUGIN_SOURCE = Path(__file__).parent / "acmedesk"
PACKAGE = PLUGIN_SOURCE / "cxbridge_acmedesk"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed with pip into ``<tmp>/site`` (from a copy of its source outside the repository)."""
    base = tmp_path_factory.mktemp("acmedesk")
    source = base / "acmedesk"
    shutil.copytree(PLUGIN_SOURCE, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    site = base / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"pip could not install the plugin:\n{done.stdout}\n{done.stderr}"
    assert (site / "cxbridge_acmedesk" / "plugin.py").is_file()
    return site


@pytest.fixture(scope="module")
def report(installed: Path) -> dict[str, Any]:
    """What the scenario saw, run in a subprocess that finds the plugin only in the pip target folder."""
    base = installed.parent
    script = base / "scenario.py"  # beside the site folder, not the plugin's source: nothing imports it from there
    shutil.copyfile(PLUGIN_SOURCE / "scenario.py", script)
    env = {k: v for k, v in os.environ.items() if k not in ("CXBRIDGE_CONFIG", "CXBRIDGE_LOAD_PLUGINS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(installed)
    done = subprocess.run(
        [sys.executable, str(script), str(base / "work")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=base,
        env=env,
        check=False,
    )
    assert done.returncode == 0, f"the scenario failed:\n{done.stderr[-6000:]}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the scenario printed no result:\n{done.stdout}\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    result["site"] = str(installed)
    return result


def test_the_plugin_imports_only_the_sdk_from_cxbridge() -> None:
    """Every module of the plugin imports ``cxbridge.sdk`` and nothing else of cxbridge."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name == "cxbridge" or name.startswith("cxbridge."):
                    found.setdefault(path.name, set()).add(name)
    assert found, "the plugin imports nothing from cxbridge?"
    assert {name for names in found.values() for name in names} == {"cxbridge.sdk"}, found
    assert {"connector.py", "webhook.py", "sandbox.py", "plugin.py"} <= set(found)


def test_cxbridge_finds_the_installed_plugin_through_its_entry_point(report: dict[str, Any]) -> None:
    """The plugin loads as a third-party distribution from the pip target folder, and names the acme system."""
    plugin = report["plugin"]
    assert plugin["loaded"]
    assert plugin["error"] is None
    assert plugin["builtin"] is False
    assert plugin["distribution"] == "cxbridge-acmedesk"
    assert plugin["module_file"].startswith(report["site"])
    assert report["config_systems"] == {"acme": "acmedesk", "hubspot": "hubspot", "jira": "jira"}


def test_a_signed_webhook_escalates_once(report: dict[str, Any]) -> None:
    """Alex's tag reaches the receiver signed; one Jira issue with Ada's company, one note + tag + key, one CRM note;
    cxbridge's own note comes back as a webhook and is an echo; a redelivery is a duplicate and changes nothing."""
    a = report["steps"]["a"]
    assert a["issues"] == ["ENG-1"]
    assert a["description_has_customer"] is True  # the handoff carries the HubSpot context (Acme Corp)
    assert a["remote_links"] == ["https://cxbridge-sandbox.acmedesk.example/tickets/1"]
    assert a["ticket_tags"] == ["escalated_to_engineering"]
    assert a["ticket_issue_key"] == "ENG-1"
    assert a["notes"] == {"1": 1, "2": 0, "3": 0}
    assert a["notes_with_key"] == {"1": 1, "2": 0, "3": 0}
    assert a["crm_notes_with_key"] == 1
    assert a["audit"] == ["escalate.create"]
    assert a["deliveries"] == ["ticket.tag_added", "comment.created"]  # the tag, then cxbridge's note (echo)
    assert a["note_actors"] == [901, 900]  # Alex, then cxbridge's integration user...
    assert a["integration_user"] == ["900"]  # ...whom the core learned through integration_user_id()
    assert a["jobs"]["dead"] == 0
    assert report["steps"]["a_duplicate"] == {"answer": {"accepted": 0, "duplicates": 1}, "unchanged": True}


def test_a_poll_escalates_a_ticket_no_webhook_announced(report: dict[str, Any]) -> None:
    """Grace's ticket was tagged (with the key typed) while webhooks were lost: the reconciler's poll of
    ``changed_tickets`` finds it and it joins ENG-1; polling again finds nothing new on AcmeDesk."""
    b = report["steps"]["b"]
    assert b["before_poll"]["done"] == 0
    assert b["streams"]["acme/tickets"] == [1, None]
    assert all(error is None for _, error in b["streams"].values())
    assert b["issues"] == ["ENG-1"]
    assert b["notes_with_key"] == {"1": 1, "2": 1, "3": 0}
    assert b["crm_notes_with_key"] == 2
    assert b["repoll"]["acme/tickets"] == 0


def test_a_typed_issue_key_joins_the_same_issue(report: dict[str, Any]) -> None:
    """Ada's second ticket names ENG-1: it joins it (no second issue) and the issue's impact counts 2 customers."""
    c = report["steps"]["c"]
    assert c["issues"] == ["ENG-1"]
    assert c["remote_links"] == 3
    assert c["linked"] == ["acme:ticket:1", "acme:ticket:2", "acme:ticket:3"]
    assert c["notes_with_key"] == {"1": 1, "2": 1, "3": 1}
    assert c["crm_notes_with_key"] == 3
    assert c["impact_fields"]["customers"] == 2
    assert c["impact_fields"]["tickets"] == 3
    assert c["impact_fields"]["arr"] == 630000


def test_jira_moves_sync_back_to_every_acme_ticket(report: dict[str, Any]) -> None:
    """Done puts one note on each linked ticket and solves it (``status_map``), one CRM note per company; a
    ``[support]`` comment is one note on each, an engineering comment none; Jira's redelivery changes nothing."""
    d = report["steps"]["d"]
    assert d["status_notes"] == {"1": 1, "2": 1, "3": 1}
    assert d["statuses"] == {"1": "solved", "2": "solved", "3": "solved"}
    assert d["crm_notes_added"] == 2  # Acme and Globex
    assert d["comment_notes"] == {"1": 1, "2": 1, "3": 1}
    assert d["support_text"] == {"1": 1, "2": 1, "3": 1}
    assert d["engineering_text"] == {"1": 0, "2": 0, "3": 0}
    assert d["duplicate"] == {"answer": {"accepted": 0, "duplicates": 1}, "unchanged": True}


def test_the_impact_rollup_counts_the_acme_customers(report: dict[str, Any]) -> None:
    """Two companies (Acme once for its two tickets), three tickets, ARR 480,000 + 150,000; nothing dead-lettered."""
    e = report["steps"]["e"]
    assert e["customers"] == 2
    assert e["tickets"] == 3
    assert e["arr"] == {"USD": "630000"}
    assert e["companies"] == ["Acme Corp", "Globex"]
    assert e["issue_fields"]["customers"] == 2
    assert e["issue_fields"]["arr"] == 630000
    assert e["issue_fields"]["tier"] == "strategic"
    assert report["steps"]["queue"]["dead"] == 0
    assert report["steps"]["queue"]["ready"] == 0
