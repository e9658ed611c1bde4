"""``cxbridge demo``: the whole story on the built-in sandbox, with no accounts and no setup.

It starts the three emulators on free loopback ports with the demo data set, writes a configuration and a
temporary SQLite store, and plays the story: an agent tags a ticket and it is escalated with its handoff; a
second customer's ticket about the same bug joins that issue. It prints each step and a summary that it
reads back from the emulators' own state.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .config import load_config
from .plugins import build_plugins
from .runtime import Runtime
from .sandbox import SandboxSecret, serve_vendors, write_config
from .sandbox.modes import ServedVendors
from .workflows.escalate import Escalation, EscalationRequest, EscalationResult

DEMO_SYSTEMS = ("zendesk", "hubspot", "jira")
FIRST_TICKET = "1"
SECOND_TICKET = "2"


@dataclass
class DemoReport:
    """What the demo did and what the emulators held at the end (read from their state)."""

    results: list[EscalationResult] = field(default_factory=list)
    final_state: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    config_path: Path | None = None


def _short(text: str, lines: int = 12) -> str:
    """The first lines of a rendered Markdown handoff, shown without its escaping backslashes."""
    plain = re.sub(r"\\(.)", r"\1", text)
    kept = [line for line in plain.strip().splitlines() if line.strip()][:lines]
    return "\n".join("    " + line for line in kept)


def _agent_session(vendors: ServedVendors) -> tuple[requests.Session, str]:
    backend = vendors["zendesk"]
    table = backend.config_table()
    token = table["api_token"].value if isinstance(table["api_token"], SandboxSecret) else str(table["api_token"])
    session = requests.Session()
    session.auth = (f"{table['email']}/token", token)
    return session, backend.base_url


def summarize(state: dict[str, Any]) -> dict[str, Any]:
    """Counts the story cares about, read from the emulators' final state."""
    jira = state.get("jira", {})
    issues = jira.get("issues", [])
    issues = list(issues.values()) if isinstance(issues, dict) else issues
    zendesk = state.get("zendesk", {})
    tickets = zendesk.get("tickets", [])
    tickets = list(tickets.values()) if isinstance(tickets, dict) else tickets
    notes = state.get("hubspot", {}).get("objects", {}).get("notes", [])
    notes = list(notes.values()) if isinstance(notes, dict) else notes
    internal = sum(
        1
        for t in tickets
        for c in t.get("comments", [])
        if not c.get("public", True) and "Escalated to engineering" in c.get("body", "")
    )
    remote_links = sum(len(i.get("remoteLinks", [])) for i in issues)
    return {
        "issues": len(issues),
        "remote_links": remote_links,
        "zendesk_notes": internal,
        "hubspot_notes": len(notes),
    }


def run_demo(
    out: Callable[[str], None] = print, *, keep_running: bool = False, workdir: Path | None = None
) -> DemoReport:
    """Play the story; raises on any failed step (the CLI turns that into a non-zero exit)."""
    started = time.monotonic()
    report = DemoReport()
    tmp = tempfile.TemporaryDirectory(prefix="cxbridge-demo-") if workdir is None else None
    base = Path(tmp.name) if tmp is not None else Path(workdir)  # type: ignore[arg-type]
    vendors = serve_vendors(DEMO_SYSTEMS, seed="demo")
    runtime: Runtime | None = None
    try:
        out("cxbridge demo: the sandbox is up")
        for name in DEMO_SYSTEMS:
            out(f"  {name:8} {vendors.base_url(name)}")
        config_path = write_config(vendors, base / "cxbridge.toml")
        report.config_path = config_path
        plugins = build_plugins()
        config = load_config(config_path, plugins=plugins)
        runtime = Runtime(config, plugins)
        escalation = Escalation(runtime)
        tag = config.section("escalation")["tag"]

        out("")
        out(f"1. Sam Agent tags Zendesk ticket #{FIRST_TICKET} with '{tag}'")
        session, zendesk_url = _agent_session(vendors)
        response = session.get(f"{zendesk_url}/api/v2/tickets/{FIRST_TICKET}", timeout=10)
        response.raise_for_status()
        tags = response.json()["ticket"]["tags"]
        response = session.put(
            f"{zendesk_url}/api/v2/tickets/{FIRST_TICKET}",
            json={"ticket": {"tags": [*tags, tag]}},
            timeout=10,
        )
        response.raise_for_status()
        out(f"   cxbridge escalates ticket #{FIRST_TICKET}")
        first = escalation.run(EscalationRequest(ticket_id=FIRST_TICKET))
        report.results.append(first)
        out(f"   {first.issue_key} created in Jira ({first.issue_url}), priority {first.priority.value}")
        out(f"   customer: {first.customer.name}, tier {first.customer.tier}, ARR {first.customer.arr}")
        out("   handoff (description, first lines):")
        out(_short(first.handoff["jira_description"]))
        out(f"   writes: {json.dumps(first.writes)}; calls: {json.dumps(first.calls)}")

        out("")
        out(f"2. Ticket #{SECOND_TICKET} from another customer is about the same bug: it joins {first.issue_key}")
        second = escalation.run(EscalationRequest(ticket_id=SECOND_TICKET, link_key=first.issue_key))
        report.results.append(second)
        out(f"   linked to {second.issue_key}; customer: {second.customer.name}, tier {second.customer.tier}")
        out(f"   writes: {json.dumps(second.writes)}; calls: {json.dumps(second.calls)}")

        report.final_state = {name: vendors[name].state() for name in DEMO_SYSTEMS}
        report.calls = vendors.calls()
        summary = summarize(report.final_state)
        links = runtime.store.links_for_issue_key(first.issue_key)
        report.elapsed = time.monotonic() - started
        out("")
        out("Summary (read back from the emulators):")
        out(f"  Jira issues: {summary['issues']}; remote links: {summary['remote_links']}")
        out(f"  links in the store for {first.issue_key}: {len(links)}")
        out(f"  Zendesk internal notes from cxbridge: {summary['zendesk_notes']}")
        out(f"  HubSpot notes: {summary['hubspot_notes']}")
        out("  API calls per system: " + ", ".join(f"{k} {v}" for k, v in sorted(report.calls.items())))
        out(f"  elapsed: {report.elapsed:.2f} s")
        if keep_running:
            out("")
            out(f"Still running (Ctrl-C to stop). Config: {config_path}")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return report
    finally:
        if runtime is not None:
            runtime.close()
        vendors.stop()
        if tmp is not None:
            tmp.cleanup()
