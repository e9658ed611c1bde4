"""Granted decisions carried out for real on the in-process sandbox (issue 15, item 1).

``reopen`` moves the linked Jira issue out of done through the workflow's own transition, ``priority`` changes
it after the escalation, ``public_reply`` posts exactly one public comment, ``credit`` is handed to plugins; each
is audited and announced once (ticket, issue, CRM), also when the same request id runs again; the same for a
HubSpot ticket while Zendesk is the helpdesk. Everything is counted in the emulators' own state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cxbridge_hubspot.sandbox.backend import HubSpotBackend

from cxbridge.cli import cli
from cxbridge.errors import CxbridgeError
from cxbridge.hookspecs import hookimpl
from cxbridge.models import Person, Ref
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.policy import ActResult, PolicyRefused, act_on_ticket, parse_action

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SAM = Person(email="sam@cxbridge.example")
LEE = Person(email="lee@cxbridge.example")
ZD = Ref("zendesk", "ticket", "1")


@pytest.fixture
def grants(policies: dict[str, Any]) -> dict[str, Any]:
    """The shared policies, with public replies granted to leads."""
    policies["rules"][1]["grant"]["public_reply"] = True
    return policies


@pytest.fixture
def runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes, grants: dict[str, Any]) -> Runtime:
    return sandbox_runtime(vendors, extra={"policies": grants})


def issue_of(vendors: Vendors, key: str) -> dict[str, Any]:
    return next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)


def issue_comments(vendors: Vendors, key: str, text: str) -> int:
    return sum(text in str(c["body"]) for c in issue_of(vendors, key)["fields"]["comment"]["comments"])


def zendesk_comments(vendors: Vendors, ticket_id: int, *, public: bool) -> list[str]:
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)
    return [c["body"] for c in ticket["comments"] if c["public"] is public]


def crm_notes(vendors: Vendors, text: str) -> int:
    return sum(text in n["properties"]["hs_note_body"] for n in vendors["hubspot"].state()["objects"]["notes"])


def audit(runtime: Runtime, action: str, ticket: Ref = ZD) -> list[tuple[str, str, str | None]]:
    rows = [e for e in runtime.store.audit_entries(ticket=ticket) if e.action == f"act.{action}"]
    return [(e.actor, e.result, e.policy) for e in rows]


def escalated(runtime: Runtime, ticket_id: str = "1", helpdesk: str | None = None) -> str:
    req = EscalationRequest(ticket_id=ticket_id, note="Reproduced.", helpdesk=helpdesk)
    return Escalation(runtime).run(req).issue_key


def twice(work: Any) -> tuple[ActResult, ActResult]:
    """The request, then the same request again (same request id), as a retry or a double click would."""
    return work(), work()


def test_reopen_moves_the_done_issue_out_of_done_once(vendors: Vendors, runtime: Runtime) -> None:
    key = escalated(runtime)
    runtime.tracker().transition_by_name(key, "Done")  # type: ignore[attr-defined]
    assert issue_of(vendors, key)["fields"]["status"]["statusCategory"]["key"] == "done"
    first, again = twice(lambda: act_on_ticket(runtime, "1", parse_action("reopen"), LEE, request_id="r-1"))
    status = issue_of(vendors, key)["fields"]["status"]
    # the workflow's own way back from Done ("Reopen", not a global transition) was taken
    assert (status["name"], status["statusCategory"]["key"]) == ("To Do", "new")
    assert first.writes[f"reopen {key}"] == "written"
    assert f"{key} reopened: now To Do." in first.outcome
    assert {v for k, v in again.writes.items() if k != "plugins"} == {"unchanged"}
    assert issue_comments(vendors, key, "Reopen the done issue granted by lee@cxbridge.example") == 1
    assert sum("Reopen the done issue granted" in n for n in zendesk_comments(vendors, 1, public=False)) == 1
    assert crm_notes(vendors, "Reopen the done issue") == 1
    assert audit(runtime, "reopen") == [("lee@cxbridge.example", "granted", "team-lead-credits")]
    rows = [e for e in runtime.store.audit_entries(issue_key=key) if e.action == "act.reopen"]
    assert len(rows) == 1


def test_priority_changes_the_issue_after_escalation(vendors: Vendors, runtime: Runtime) -> None:
    key = escalated(runtime)
    runtime.tracker().set_priority(key, "Low")  # engineering triaged it down
    first, again = twice(lambda: act_on_ticket(runtime, "1", parse_action("priority", "High"), SAM, request_id="p-1"))
    assert issue_of(vendors, key)["fields"]["priority"]["name"] == "High"
    assert first.writes[f"priority {key}"] == "written"
    assert f"{key} priority set to High." in first.outcome
    assert again.writes[f"priority {key}"] == "unchanged"
    assert issue_comments(vendors, key, "Priority High granted by sam@cxbridge.example") == 1
    assert sum("Priority High granted" in n for n in zendesk_comments(vendors, 1, public=False)) == 1
    assert crm_notes(vendors, "Priority High</strong> granted by sam@cxbridge.example") == 1
    assert audit(runtime, "priority") == [("sam@cxbridge.example", "granted", "tier1-credits")]


def test_a_tracker_decision_on_a_ticket_without_an_issue_decides_nothing(vendors: Vendors, runtime: Runtime) -> None:
    before = {name: vendors[name].state() for name in ("zendesk", "hubspot", "jira")}
    with pytest.raises(CxbridgeError, match="linked to no issue"):
        act_on_ticket(runtime, "1", parse_action("priority", "High"), SAM)
    assert {name: vendors[name].state() for name in ("zendesk", "hubspot", "jira")} == before
    assert audit(runtime, "priority") == []


def test_public_reply_posts_exactly_one_public_comment(vendors: Vendors, runtime: Runtime) -> None:
    public_before = len(zendesk_comments(vendors, 1, public=True))
    words = "We found the cause and a fix ships this week."

    def reply() -> ActResult:
        return act_on_ticket(runtime, "1", parse_action("public_reply"), LEE, reply=words, request_id="q-1")

    first, again = twice(reply)
    public = zendesk_comments(vendors, 1, public=True)
    assert len(public) == public_before + 1
    assert words in public[-1]
    assert "cxb-" not in public[-1]
    assert "rule" not in public[-1]
    assert (first.writes["public_reply"], again.writes["public_reply"]) == ("written", "unchanged")
    assert sum("Public reply without review granted" in n for n in zendesk_comments(vendors, 1, public=False)) == 1
    assert audit(runtime, "public_reply") == [("lee@cxbridge.example", "granted", "team-lead-credits")]


def test_a_refusal_names_the_rule_and_who_holds_it_and_is_audited_once(vendors: Vendors, runtime: Runtime) -> None:
    for _ in range(2):
        with pytest.raises(PolicyRefused, match=r"rule team-lead-credits .* held by lee@cxbridge\.example"):
            act_on_ticket(runtime, "1", parse_action("public_reply"), SAM, reply="Hi", request_id="s-1")
    assert audit(runtime, "public_reply") == [("sam@cxbridge.example", "refused", None)]
    assert all("Hi" not in c for c in zendesk_comments(vendors, 1, public=True))


def test_a_credit_is_handed_to_plugins_once_and_again_after_a_failure(runtime: Runtime) -> None:
    received: list[dict[str, Any]] = []

    class Billing:
        fail = True

        @hookimpl
        def decision_applied(self, decision: dict[str, Any]) -> None:
            received.append(decision)
            if self.fail:
                raise RuntimeError("billing is down")

    billing = Billing()
    runtime.plugins.pm.register(billing, name="billing")
    first = act_on_ticket(runtime, "1", parse_action("credit", "50"), SAM, request_id="c-1")
    assert first.writes["plugins"].startswith("failed: plugin billing: decision_applied failed: RuntimeError")
    billing.fail = False
    again = act_on_ticket(runtime, "1", parse_action("credit", "50"), SAM, request_id="c-1")
    assert again.writes["plugins"] == "handed over"
    assert act_on_ticket(runtime, "1", parse_action("credit", "50"), SAM, request_id="c-1").writes["plugins"] == (
        "unchanged"
    )
    assert [(d["action"], d["amount"], d["currency"], d["agent"], d["rule"]) for d in received] == [
        ("credit", "50", "USD", "sam@cxbridge.example", "tier1-credits")
    ] * 2
    assert received[0]["key"] == received[1]["key"]  # the plugin's idempotency key is stable
    assert audit(runtime, "credit") == [("sam@cxbridge.example", "granted", "tier1-credits")]


def hubspot_ticket(vendors: Vendors) -> tuple[HubSpotBackend, str]:
    hub = vendors["hubspot"]
    assert isinstance(hub, HubSpotBackend)
    [tid] = list(hub.portal.objects["tickets"])  # Grace Hopper's (Globex)
    return hub, tid


def notes_on_hubspot_ticket(hub: HubSpotBackend, tid: str, text: str) -> int:
    on_ticket = {to_id for to_id, _ in hub.portal.associated("tickets", tid, "notes")}
    notes = hub.state()["objects"]["notes"]
    return sum(1 for n in notes if n["id"] in on_ticket and text in n["properties"]["hs_note_body"])


def test_the_same_decisions_on_a_hubspot_ticket_while_zendesk_is_the_helpdesk(
    vendors: Vendors, runtime: Runtime
) -> None:
    hub, tid = hubspot_ticket(vendors)
    ref = Ref("hubspot", "ticket", tid)
    key = escalated(runtime, tid, helpdesk="hubspot")
    runtime.tracker().transition_by_name(key, "Done")  # type: ignore[attr-defined]
    twice(lambda: act_on_ticket(runtime, tid, parse_action("reopen"), LEE, helpdesk="hubspot", request_id="h-1"))
    assert issue_of(vendors, key)["fields"]["status"]["statusCategory"]["key"] == "new"
    twice(
        lambda: act_on_ticket(
            runtime, tid, parse_action("priority", "Highest"), LEE, helpdesk="hubspot", request_id="h-2"
        )
    )
    assert issue_of(vendors, key)["fields"]["priority"]["name"] == "Highest"
    # HubSpot is the ticket's helpdesk and the CRM: one note, on the ticket and the customer's timeline
    assert notes_on_hubspot_ticket(hub, tid, "Reopen the done issue</strong> granted by lee@cxbridge.example") == 1
    assert notes_on_hubspot_ticket(hub, tid, "Priority Highest</strong> granted by lee@cxbridge.example") == 1
    assert issue_comments(vendors, key, "Priority Highest granted") == 1
    assert [r[1] for r in audit(runtime, "reopen", ref) + audit(runtime, "priority", ref)] == ["granted", "granted"]
    # HubSpot has no API that sends a reply the customer sees: refused before anything is decided or written
    before = hub.state()
    with pytest.raises(CxbridgeError, match="no API that sends a reply the customer sees"):
        act_on_ticket(runtime, tid, parse_action("public_reply"), LEE, helpdesk="hubspot")
    assert hub.state() == before
    assert audit(runtime, "public_reply", ref) == []


def test_act_addresses_a_hubspot_ticket_by_its_system(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, grants: dict[str, Any]
) -> None:
    config: Path = sandbox_runtime.config(vendors, extra={"policies": grants})
    hub, tid = hubspot_ticket(vendors)
    runner = CliRunner()
    args = ["--config", str(config), "act", f"hubspot:{tid}", "--action", "credit", "--value", "40"]
    result = runner.invoke(cli, [*args, "--agent", LEE.email or "", "--request-id", "cli-1"])
    assert result.exit_code == 0, result.stderr
    assert "Credit of 40 USD granted by lee@cxbridge.example under rule tier1-credits." in result.stdout
    assert notes_on_hubspot_ticket(hub, tid, "Credit of 40 USD</strong> granted") == 1
    mismatch = runner.invoke(cli, [*args, "--agent", LEE.email or "", "--helpdesk", "zendesk"])
    assert mismatch.exit_code != 0
    assert "names 'hubspot' but --helpdesk says 'zendesk'" in mismatch.stderr


def test_policy_check_explains_a_hubspot_ticket(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, grants: dict[str, Any]
) -> None:
    config: Path = sandbox_runtime.config(vendors, extra={"policies": grants})
    _, tid = hubspot_ticket(vendors)
    args = ["--config", str(config), "policy", "check", "--ticket", tid, "--helpdesk", "hubspot"]
    result = CliRunner().invoke(cli, [*args, "--action", "reopen", "--agent", SAM.email or ""])
    assert result.exit_code == 0, result.stderr
    assert f"REFUSED: Reopen the done issue refused for sam@cxbridge.example on hubspot:ticket:{tid}" in result.stdout
    assert "held by lee@cxbridge.example" in result.stdout
