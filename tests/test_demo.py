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
    assert key == report.issue_key
    assert f"a worker escalated the ticket: {key}" in text
    assert f"joined {key}" in text
    counts = summarize(state)
    # two escalation notes and two sync-back notes (one per ticket), four CRM notes (2 escalations, 2 companies)
    assert counts == {"issues": 1, "remote_links": 2, "zendesk_notes": 2, "sync_notes": 2, "hubspot_notes": 4}
    assert f"Jira issues: {counts['issues']}; remote links: {counts['remote_links']}" in text
    assert (
        f"Zendesk internal notes from cxbridge: {counts['zendesk_notes']} escalation, {counts['sync_notes']} sync back"
    ) in text
    assert f"HubSpot notes: {counts['hubspot_notes']}" in text
    assert issues[0]["fields"]["status"]["statusCategory"]["key"] == "done"
    # the impact the demo prints is the one on the issue
    assert "2 customers, 2 tickets, ARR at stake 630000 USD" in text
    assert issues[0]["fields"]["customfield_10101"] == 2
    assert issues[0]["fields"]["customfield_10100"] == 630000
    calls = re.search(r"API calls per system: (.*)", text)
    assert calls is not None
    printed = dict(item.split(" ") for item in calls.group(1).split(", "))
    assert {k: int(v) for k, v in printed.items()} == report.calls
    tagged = [t for t in state["zendesk"]["tickets"] if key in t["custom_fields"].values()]
    assert len(tagged) == 2
    # every sync write the demo lists is in the audit, and the notes came through the webhook path
    assert report.sync_writes == len(re.findall(r"^   - sync\.", text, flags=re.M))


def test_demo_command_exits_zero() -> None:
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    assert "Summary (read back from the emulators)" in result.output
    assert "Jira issues: 1; remote links: 2" in result.output
