"""``cxbridge setup`` end to end, on loopback: emulators that hold only the accounts (``--seed empty``) ->
``setup --plan`` lists every object -> ``setup --apply`` creates them and writes the config -> a second plan has
nothing to do and a second apply writes nothing at any vendor -> ``cxbridge serve`` with that config receives a
tagged ticket through the trigger and webhook setup registered, and escalates it; solving the ticket then reaches
the issue's remote link through the status trigger."""

from __future__ import annotations

import socket
import stat
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from cxbridge.cli import cli
from cxbridge.config import load_config
from cxbridge.plugins import build_plugins
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import ServedVendors, serve_vendors, write_config
from cxbridge.webhooks.serve import serving

TAG = "escalated_to_engineering"
ADMIN_NOTE = "# Our own note: keep this comment.\n"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def vendors() -> Iterator[ServedVendors]:
    with serve_vendors(("zendesk", "jira", "hubspot"), seed="empty") as served:
        yield served


@pytest.fixture
def config(tmp_path: Path, vendors: ServedVendors) -> tuple[Path, int]:
    """A config pointing at the bare emulators, with a public URL, and an admin's comments in it."""
    port = free_port()
    path = write_config(
        vendors,
        tmp_path / "cxbridge.toml",
        extra={"webhooks": {"public_url": f"http://127.0.0.1:{port}", "port": port}},
    )
    text = path.read_text(encoding="utf-8").replace("[systems.jira]", "[systems.jira]\n# Jira: ask Eve first.")
    path.write_text(ADMIN_NOTE + text, encoding="utf-8")
    return path, port


def run(path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(path), "setup", *args])


def writes(vendors: ServedVendors) -> int:
    return sum(1 for b in vendors.backends.values() for c in b.calls if c.method in WRITES)


def test_setup_then_serve_escalates_a_tagged_ticket(vendors: ServedVendors, config: tuple[Path, int]) -> None:
    path, port = config
    # 1. the plan lists every object, changes nothing, and says something is pending
    before = writes(vendors)
    planned = run(path, "--plan")
    assert planned.exit_code == 0, planned.output
    out = planned.output
    assert "+ create ticket field 'Jira issue key'" in out
    assert "+ create webhook 'cxbridge'" in out
    for title in (
        "cxbridge: escalate",
        "cxbridge: public comment",
        "cxbridge: internal comment",
        "cxbridge: status changed",
    ):
        assert f"+ create trigger '{title}'" in out
    for name in ("ARR at stake", "Customers", "Tickets", "Soonest renewal", "Highest tier", "Oldest open ticket"):
        assert f"+ create custom field '{name}'" in out
    assert "! manual create and edit screens 'project ENG, issue type Bug'" in out
    assert "+ create property 'companies.tier'" in out
    assert "+ create property 'companies.renewal_date'" in out
    assert "= ok     property 'companies.annualrevenue'" in out
    assert "Plan: 15 to create, 0 to update, 0 to prune (with --prune), 1 manual, 2 already right." in out
    assert run(path, "--plan", "--detailed-exitcode").exit_code == 2
    assert writes(vendors) == before

    # 2. apply creates them and writes ids and secrets into the config, keeping the comments
    applied = run(path, "--apply")
    assert applied.exit_code == 0, applied.output
    zd, jira = vendors["zendesk"].state(), vendors["jira"].state()
    assert [f["title"] for f in zd["ticket_fields"] if f["type"] == "text"] == ["Jira issue key"]
    assert [w["endpoint"] for w in zd["webhooks"]] == [f"http://127.0.0.1:{port}/webhooks/zendesk"]
    assert len(zd["triggers"]) == 4
    assert [h["url"] for h in jira["webhooks"]] == [f"http://127.0.0.1:{port}/webhooks/jira"]
    assert len([f for f in jira["fields"] if f["custom"]]) == 6
    hubspot = vendors["hubspot"].portal.schema["companies"]  # type: ignore[attr-defined]
    assert (hubspot["tier"].kind, hubspot["renewal_date"].kind, hubspot["tier"].group) == ("string", "date", "cxbridge")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(ADMIN_NOTE)
    assert "# Jira: ask Eve first." in text
    written = tomllib.loads(text)
    field_id = written["systems"]["zendesk"]["issue_key_field_id"]
    assert field_id == next(f["id"] for f in zd["ticket_fields"] if f["title"] == "Jira issue key")
    assert set(written["impact"]["fields"]) == {"arr", "customers", "tickets", "renewal", "tier", "oldest"}
    for system in ("zendesk", "jira"):
        (ref,) = written["webhooks"]["secrets"][system]
        secret_file = path.parent / ref["file"]
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert secret_file.read_text(encoding="utf-8") not in applied.output  # secrets are never printed
    assert "1 manual step(s) left" in applied.output

    # the admin does what the manual item says: the impact fields onto ENG's screens
    project = vendors["jira"].model.project("ENG")  # type: ignore[attr-defined]
    project.off_create_screen.difference_update(written["impact"]["fields"].values())
    project.off_edit_screen.difference_update(written["impact"]["fields"].values())

    # 3. a second plan has nothing to do; a second apply writes nothing at any vendor nor in the config
    again = run(path, "--plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "Nothing to do: 18 objects already right." in again.output
    before, text_before = writes(vendors), path.read_text(encoding="utf-8")
    second = run(path, "--apply")
    assert second.exit_code == 0, second.output
    assert writes(vendors) == before
    assert path.read_text(encoding="utf-8") == text_before
    doctor = CliRunner().invoke(cli, ["--config", str(path), "doctor"])
    assert doctor.exit_code == 0, doctor.output
    assert {line[:2] for line in doctor.output.splitlines()} <= {"✓ ", "- "}, doctor.output
    assert "✓ zendesk setup: 6 objects as cxbridge needs them" in doctor.output.splitlines()

    # 4. serve with that config: an agent tags a ticket; the trigger calls the webhook; the ticket is escalated
    plugins = build_plugins()
    rt = Runtime(load_config(path, plugins=plugins), plugins)
    try:
        with serving(rt, port=port, workers=1):
            zd_api = requests.Session()
            creds = vendors["zendesk"].credentials()
            zd_api.auth = (f"{creds['email']}/token", creds["api_token"])
            base = vendors.base_url("zendesk")
            made = zd_api.post(
                f"{base}/api/v2/tickets",
                json={
                    "ticket": {
                        "subject": "Exports time out",
                        "comment": {"body": "Every CSV export fails."},
                        "requester": {"email": "ada@acme.example", "name": "Ada"},
                        "priority": "high",
                    }
                },
                timeout=10,
            )
            ticket_id = made.json()["ticket"]["id"]
            agent = requests.Session()  # another agent than the one cxbridge acts as (its own changes are echoes)
            agent.auth = ("alex@cxbridge.example/token", creds["api_token"])
            agent.put(f"{base}/api/v2/tickets/{ticket_id}/tags", json={"tags": [TAG]}, timeout=10)
            issues = wait_for(lambda: vendors["jira"].state()["issues"])
            ticket = wait_for(lambda: escalated(vendors, ticket_id, field_id))
            # the remote link goes out beside the ticket's note (side by side), so it may land a moment later
            wait_for(lambda: link_resolved(vendors) == [False])
            # 5. the agent solves the ticket: the status trigger setup created tells cxbridge, the link follows
            solved = agent.put(f"{base}/api/v2/tickets/{ticket_id}", json={"ticket": {"status": "solved"}}, timeout=10)
            assert solved.status_code == 200, solved.text
            wait_for(lambda: link_resolved(vendors) == [True])
    finally:
        rt.close()
    assert [i["fields"]["project"]["key"] for i in issues] == ["ENG"]
    assert ticket["custom_fields"][str(field_id)] == issues[0]["key"]
    assert any(not c["public"] and issues[0]["key"] in c["body"] for c in ticket["comments"])
    delivered = [w for w in vendors["zendesk"].webhooks_sent if w["url"].endswith("/webhooks/zendesk")]
    assert delivered, "the escalation arrived through the webhook setup registered"
    assert any('"status_changed"' in str(w.get("body")) and '"Solved"' in str(w.get("body")) for w in delivered)


def link_resolved(vendors: ServedVendors) -> list[bool]:
    """The ``resolved`` flag of each remote link on the site's issues."""
    issues = vendors["jira"].state()["issues"]
    return [link["object"]["status"]["resolved"] for i in issues for link in i["remoteLinks"]]


def escalated(vendors: ServedVendors, ticket_id: int, field_id: int) -> dict[str, object] | None:
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)
    return ticket if ticket["custom_fields"].get(str(field_id)) else None


def wait_for(probe: object, timeout: float = 30.0) -> object:
    """Poll ``probe()`` until it returns something truthy (the escalation runs in the server's worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()  # type: ignore[operator]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the escalation")


AGENT = "alex@cxbridge.example"
CREDIT_TAG = "cxb_decide_credit_50"
MACRO_TITLE = "cxbridge: Credit of 50"


@pytest.fixture
def decisions_config(tmp_path: Path, vendors: ServedVendors) -> tuple[Path, int]:
    """A config listing two decision macros, and a policy that grants credits up to 100 USD to tier 1."""
    port = free_port()
    path = write_config(
        vendors,
        tmp_path / "cxbridge.toml",
        extra={
            "webhooks": {"public_url": f"http://127.0.0.1:{port}", "port": port},
            "decisions": {"macros": ["credit_50", "credit_500"]},
            "policies": {
                "rules": [
                    {
                        "name": "tier1-credits",
                        "when": "agent.team == 'tier1'",
                        "grant": {"credit_max": 100, "currency": "USD"},
                    }
                ],
                "agents": {AGENT: {"team": "tier1"}},
            },
        },
    )
    return path, port


def test_setup_provisions_the_decide_trigger_and_a_macro_whose_tag_is_decided_by_serve(
    vendors: ServedVendors, decisions_config: tuple[Path, int]
) -> None:
    """setup creates the decide trigger and the macro of the granted credit (the ungranted one is a manual step);
    doctor names a missing macro; an agent applying the macro leads, through the provisioned trigger and webhook,
    to the decision applied by serve and its worker: an audit row, one internal note, the tag removed."""
    path, port = decisions_config
    planned = run(path, "--plan")
    assert planned.exit_code == 0, planned.output
    assert "+ create trigger 'cxbridge: decide'" in planned.output
    assert f"+ create macro '{MACRO_TITLE}'" in planned.output
    assert "! manual macro 'cxb_decide_credit_500'" in planned.output
    applied = run(path, "--apply")
    assert applied.exit_code == 0, applied.output
    zd = vendors["zendesk"].state()
    [decide] = [t for t in zd["triggers"] if t["title"] == "cxbridge: decide"]
    assert decide["conditions"]["all"][0]["value"] == f"{CREDIT_TAG} cxb_decide_credit_500"
    assert [(m["title"], m["actions"]) for m in zd["macros"]] == [
        (MACRO_TITLE, [{"field": "current_tags", "value": CREDIT_TAG}])
    ]
    again = run(path, "--plan")
    assert "= ok     trigger 'cxbridge: decide'" in again.output
    assert f"= ok     macro '{MACRO_TITLE}'" in again.output

    # doctor reads the same plan: a macro an admin deleted is named, with the fix
    macro_id = zd["macros"][0]["id"]
    backend = vendors["zendesk"]
    with backend.lock:  # type: ignore[attr-defined]
        kept = backend.model.macros.pop(macro_id)  # type: ignore[attr-defined]
    doctor = CliRunner().invoke(cli, ["--config", str(path), "doctor"])
    assert f"zendesk macro '{MACRO_TITLE}': missing" in doctor.output, doctor.output
    with backend.lock:  # type: ignore[attr-defined]
        backend.model.macros[macro_id] = kept  # type: ignore[attr-defined]

    plugins = build_plugins()
    rt = Runtime(load_config(path, plugins=plugins), plugins)
    try:
        with serving(rt, port=port, workers=1):
            creds = vendors["zendesk"].credentials()
            base = vendors.base_url("zendesk")
            admin = requests.Session()
            admin.auth = (f"{creds['email']}/token", creds["api_token"])
            made = admin.post(
                f"{base}/api/v2/tickets",
                json={
                    "ticket": {
                        "subject": "Billed twice",
                        "comment": {"body": "We were charged twice this month."},
                        "requester": {"email": "ada@acme.example", "name": "Ada"},
                    }
                },
                timeout=10,
            )
            ticket_id = made.json()["ticket"]["id"]
            # the agent applies the macro: the agent workspace reads it and updates the ticket with its actions
            agent = requests.Session()
            agent.auth = (f"{AGENT}/token", creds["api_token"])
            listed = agent.get(f"{base}/api/v2/macros", params={"active": "true"}, timeout=10).json()["macros"]
            [macro] = [m for m in listed if m["title"] == MACRO_TITLE]
            tags = [a["value"] for a in macro["actions"] if a["field"] == "current_tags"]
            url = f"{base}/api/v2/tickets/{ticket_id}"
            current = agent.get(url, timeout=10).json()["ticket"]["tags"]
            agent.put(url, json={"ticket": {"tags": [*current, *tags]}}, timeout=10).raise_for_status()
            ticket = wait_for(lambda: decided(vendors, ticket_id))
    finally:
        audit = [(e.actor, e.result, e.policy) for e in rt.store.audit_entries() if e.action == "act.credit"]
        rt.close()
    assert audit == [(AGENT, "granted", "tier1-credits")]
    assert isinstance(ticket, dict)
    assert CREDIT_TAG not in ticket["tags"]
    outcome = [c for c in ticket["comments"] if not c["public"] and CREDIT_TAG in c["body"]]
    assert len(outcome) == 1
    assert f"granted by {AGENT} under rule tier1-credits" in outcome[0]["body"]
    delivered = [w for w in vendors["zendesk"].webhooks_sent if w["url"].endswith("/webhooks/zendesk")]
    assert any('"event": "decision_requested"' in str(w["body"]) for w in delivered)


def decided(vendors: ServedVendors, ticket_id: int) -> dict[str, object] | None:
    """The ticket once cxbridge removed the decision tag and wrote its outcome note."""
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)
    noted = any(CREDIT_TAG in c["body"] and not c["public"] for c in ticket["comments"])
    return ticket if noted and CREDIT_TAG not in ticket["tags"] else None


def test_a_decision_macro_the_tag_parser_cannot_read_stops_the_plan_with_its_name(
    vendors: ServedVendors, tmp_path: Path
) -> None:
    path = write_config(vendors, tmp_path / "cxbridge.toml", extra={"decisions": {"macros": ["credit_lots"]}})
    before = writes(vendors)
    planned = run(path, "--plan")
    assert planned.exit_code != 0
    assert "[decisions] macros: 'credit_lots'" in planned.output
    assert "is not an amount" in planned.output
    assert writes(vendors) == before
