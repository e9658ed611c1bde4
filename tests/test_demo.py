"""``cxbridge demo``: the story runs on the sandbox and what it prints matches the emulators' final state."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from cxbridge.cli import cli
from cxbridge.demo import run_demo, summarize

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def test_demo_output_matches_the_emulators_final_state() -> None:
    lines: list[str] = []
    report = run_demo(lines.append)
    text = "\n".join(lines)
    state = report.final_state
    issues = state["jira"]["issues"]
    assert len(issues) == 1
    key = issues[0]["key"]
    assert f"{key} created in Jira" in text
    assert f"linked to {key}" in text
    counts = summarize(state)
    assert counts == {"issues": 1, "remote_links": 2, "zendesk_notes": 2, "hubspot_notes": 2}
    assert f"Jira issues: {counts['issues']}; remote links: {counts['remote_links']}" in text
    assert f"Zendesk internal notes from cxbridge: {counts['zendesk_notes']}" in text
    assert f"HubSpot notes: {counts['hubspot_notes']}" in text
    calls = re.search(r"API calls per system: (.*)", text)
    assert calls is not None
    printed = dict(item.split(" ") for item in calls.group(1).split(", "))
    assert {k: int(v) for k, v in printed.items()} == report.calls
    tagged = [t for t in state["zendesk"]["tickets"] if key in t["custom_fields"].values()]
    assert len(tagged) == 2


def test_demo_command_exits_zero() -> None:
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    assert "Summary (read back from the emulators)" in result.output
