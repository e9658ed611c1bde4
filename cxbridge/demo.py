"""``cxbridge demo``: the whole story on the built-in sandbox, with no accounts and no setup.

It starts the three emulators on free loopback ports with the demo data set, writes a configuration and a
temporary SQLite store, starts the webhook receiver with two workers, and plays the story the way it happens
in production: an agent tags a ticket, Zendesk's signed webhook reaches the receiver and a worker escalates it
with its handoff; a second customer's ticket about the same bug joins that issue through its issue-key field,
and the issue shows the customer impact; an engineer moves the issue to Done, Jira's webhook comes back, and
both tickets and the CRM hear about it, once. It prints each step and a summary read back from the
emulators' own state.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .config import load_config
from .errors import CxbridgeError
from .models import Ref
from .plugins import build_plugins
from .runtime import Runtime
from .sandbox import SandboxSecret
from .sandbox.base import WebhookTarget
from .sandbox.modes import ServedVendors, serve_vendors, write_config
from .webhooks.serve import serving
from .workflows.escalate import EscalationResult
from .workflows.impact import load_rollup

DEMO_SYSTEMS = ("zendesk", "hubspot", "jira")
FIRST_TICKET = "1"
SECOND_TICKET = "2"
DEMO_AGENT = "alex@cxbridge.example"
"""The agent who tags tickets (not cxbridge's own integration user, whose changes are echoes)."""
WAIT_SECONDS = 30.0
DEMO_SETTINGS: dict[str, Any] = {
    "sync": {"status_map": {"done": "open"}, "draft_reply_on": ["done"]},
    "impact": {
        "fields": {
            "arr": "customfield_10100",
            "customers": "customfield_10101",
            "tickets": "customfield_10102",
            "renewal": "customfield_10103",
            "tier": "customfield_10104",
            "oldest": "customfield_10105",
            "tier_rank": "customfield_10106",
        }
    },
}


@dataclass
class DemoReport:
    """What the demo did and what the emulators held at the end (read from their state)."""

    results: list[EscalationResult] = field(default_factory=list)
    issue_key: str = ""
    sync_writes: int = 0
    final_state: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    """Every API call the emulators answered (the people in the story and cxbridge)."""
    cxbridge_calls: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    config_path: Path | None = None


def _agent_session(vendors: ServedVendors, email: str) -> tuple[requests.Session, str]:
    """A Zendesk API session of an agent (any active agent may use the account's API token)."""
    backend = vendors["zendesk"]
    table = backend.config_table()
    token = table["api_token"].value if isinstance(table["api_token"], SandboxSecret) else str(table["api_token"])
    session = requests.Session()
    session.auth = (f"{email}/token", token)
    return session, backend.base_url


def _engineer_session(vendors: ServedVendors) -> tuple[requests.Session, str]:
    """A Jira API session of Eve Engineer, the demo's engineer."""
    backend = vendors["jira"]
    creds = backend.credentials()
    session = requests.Session()
    session.auth = (creds["engineer_email"], creds["engineer_api_token"])
    return session, backend.base_url


def _wait(what: str, done: Callable[[], bool], timeout: float = WAIT_SECONDS) -> None:
    """Poll until ``done()`` holds; the receiver and the workers run in the background."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise CxbridgeError(f"demo: {what} did not happen within {timeout:.0f} s")
        time.sleep(0.05)


def _settled(vendors: ServedVendors, runtime: Runtime) -> bool:
    """Every webhook delivered and every job finished."""
    if not all(vendors[name].wait_for_webhooks(timeout=0.01) for name in DEMO_SYSTEMS):
        return False
    depth = runtime.store.queue_depth()
    return depth["ready"] == 0 and depth["leased"] == 0


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
    synced = sum(
        1
        for t in tickets
        for c in t.get("comments", [])
        if not c.get("public", True) and " moved to " in c.get("body", "")
    )
    remote_links = sum(len(i.get("remoteLinks", [])) for i in issues)
    return {
        "issues": len(issues),
        "remote_links": remote_links,
        "zendesk_notes": internal,
        "sync_notes": synced,
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
            # each emulator signs its webhooks with its own secret; the receiver's URL is known once it listens
            vendors[name].webhook_targets = [WebhookTarget(url="http://127.0.0.1:9/", secret=secrets.token_urlsafe(24))]
        config_path = write_config(vendors, base / "cxbridge.toml", extra=DEMO_SETTINGS)
        report.config_path = config_path
        plugins = build_plugins()
        config = load_config(config_path, plugins=plugins)
        runtime = Runtime(config, plugins)
        rt = runtime
        tag = config.section("escalation")["tag"]
        key_field = config.system("zendesk").get("issue_key_field_id")
        with serving(runtime, workers=2) as server:
            for name in DEMO_SYSTEMS:
                vendors[name].webhook_targets[0].url = server.webhook_url(name)
            out(f"  receiver {server.url} (webhooks from all three, 2 workers)")
            agent, zendesk_url = _agent_session(vendors, DEMO_AGENT)

            def ticket_ref(ticket_id: str) -> Ref:
                return Ref("zendesk", "ticket", ticket_id)

            def tag_ticket(ticket_id: str, fields: dict[str, Any] | None = None) -> None:
                url = f"{zendesk_url}/api/v2/tickets/{ticket_id}"
                current = agent.get(url, timeout=10)
                current.raise_for_status()
                update: dict[str, Any] = {"tags": [*current.json()["ticket"]["tags"], tag]}
                if fields:
                    update["custom_fields"] = [{"id": k, "value": v} for k, v in fields.items()]
                agent.put(url, json={"ticket": update}, timeout=10).raise_for_status()

            def escalation_of(ticket_id: str) -> dict[str, Any]:
                entries = rt.store.audit_entries(ticket=ticket_ref(ticket_id))
                found = [e for e in entries if e.action.startswith("escalate.")]
                return {"action": found[-1].action, **found[-1].details, "issue_key": found[-1].issue_key}

            out("")
            out(f"1. Alex Support tags Zendesk ticket #{FIRST_TICKET} with '{tag}'")
            tag_ticket(FIRST_TICKET)
            _wait("the first escalation", lambda: bool(rt.store.links_for_ticket(ticket_ref(FIRST_TICKET))))
            _wait("the first escalation's last write", lambda: _settled(vendors, rt))
            first = escalation_of(FIRST_TICKET)
            key = str(first["issue_key"])
            issue = rt.tracker().get_issue(key)
            out(f"   Zendesk's webhook reached the receiver; a worker escalated the ticket: {key} ({issue.url})")
            out(f"   priority {first['priority']}; writes: {json.dumps(first['writes'])}")

            out("")
            out(f"2. Ticket #{SECOND_TICKET} from another customer is the same bug: Alex types {key} in its")
            out("   'Jira issue' field and tags it")
            tag_ticket(SECOND_TICKET, {key_field: key} if key_field else None)
            _wait("the join of the second ticket", lambda: bool(rt.store.links_for_ticket(ticket_ref(SECOND_TICKET))))
            _wait("the join's last write", lambda: _settled(vendors, rt))
            second = escalation_of(SECOND_TICKET)
            out(f"   joined {second['issue_key']}; writes: {json.dumps(second['writes'])}")
            rollup = load_rollup(rt, rt.store.links_for_issue_key(key))
            arr = ", ".join(f"{amount} {currency}" for currency, amount in sorted(rollup.arr.items()))
            out(
                f"   customer impact on {key}: {rollup.customers} customers, {len(rollup.tickets)} tickets, "
                f"ARR at stake {arr}, soonest renewal {rollup.renewal}, highest tier {rollup.tier}"
            )

            out("")
            out(f"3. Eve Engineer fixes the bug and moves {key} to Done in Jira")
            eve, jira_url = _engineer_session(vendors)
            path = f"{jira_url}/rest/api/3/issue/{key}/transitions"
            transitions = eve.get(path, timeout=10)
            transitions.raise_for_status()
            done = next(t for t in transitions.json()["transitions"] if t["to"]["statusCategory"]["key"] == "done")
            eve.post(path, json={"transition": {"id": done["id"]}}, timeout=10).raise_for_status()
            _wait(
                "the sync back to both tickets",
                lambda: summarize({"zendesk": vendors["zendesk"].state()})["sync_notes"] >= 2 and _settled(vendors, rt),
            )
            synced = [e for e in rt.store.audit_entries(issue_key=key) if e.action.startswith("sync.")]
            out(f"   Jira's webhook reached the receiver; sync back wrote {len(synced)} times:")
            for entry in synced:
                out(f"   - {entry.action} {entry.target}: {entry.result}")
            report.sync_writes = len(synced)

        report.final_state = {name: vendors[name].state() for name in DEMO_SYSTEMS}
        report.calls = vendors.calls()
        report.cxbridge_calls = runtime.calls()
        summary = summarize(report.final_state)
        links = runtime.store.links_for_issue_key(key)
        report.issue_key = key
        report.elapsed = time.monotonic() - started
        out("")
        out("Summary (read back from the emulators):")
        out(f"  Jira issues: {summary['issues']}; remote links: {summary['remote_links']}")
        out(f"  links in the store for {key}: {len(links)}")
        out(
            f"  Zendesk internal notes from cxbridge: {summary['zendesk_notes']} escalation, "
            f"{summary['sync_notes']} sync back"
        )
        out(f"  HubSpot notes: {summary['hubspot_notes']}")
        out("  API calls made by cxbridge: " + ", ".join(f"{k} {v}" for k, v in sorted(report.cxbridge_calls.items())))
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
