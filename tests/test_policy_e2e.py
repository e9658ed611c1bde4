"""Decisions end to end on the in-process sandbox: in the escalation's handoff, the audit, and ``act`` retries."""

from __future__ import annotations

from typing import Any

import pytest

from cxbridge.errors import AmbiguousOutcome
from cxbridge.models import Person
from cxbridge.runtime import Runtime
from cxbridge.sandbox import Fault
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.policy import SKIP_TRIAGE_LABEL, PolicyRefused, act_on_ticket, parse_action

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SAM = Person(email="sam@cxbridge.example")
LEE = Person(email="lee@cxbridge.example")


@pytest.fixture
def runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes, policies: dict[str, Any]) -> Runtime:
    return sandbox_runtime(vendors, extra={"policies": policies})


def internal_notes(vendors: Vendors, ticket_id: int) -> list[str]:
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)
    return [c["body"] for c in ticket["comments"] if not c["public"]]


def test_granted_priority_is_decided_by_the_agent_in_every_handoff(vendors: Vendors, runtime: Runtime) -> None:
    """Lee (a lead) raises Globex's ticket to Highest: the issue, the Zendesk and HubSpot notes say who and why."""
    req = EscalationRequest(ticket_id="2", note="Reproduced.", agent=LEE, actions=[parse_action("priority", "Highest")])
    result = Escalation(runtime).run(req)
    assert result.priority.value == "Highest"  # the table alone gives High for an enterprise customer's high ticket
    expected = "decided by lee@cxbridge.example under rule team-lead-credits"
    assert expected in result.priority.reason
    issue = vendors["jira"].state()["issues"][0]
    assert issue["fields"]["priority"]["name"] == "Highest"
    assert expected in issue["fields"]["description"]
    assert "Priority Highest" in issue["fields"]["description"]
    assert any(expected in n and "Escalated to engineering" in n for n in internal_notes(vendors, 2))
    hubspot_notes = vendors["hubspot"].state()["objects"]["notes"]
    assert len(hubspot_notes) == 1
    assert expected in hubspot_notes[0]["properties"]["hs_note_body"]
    rows = [e for e in runtime.store.audit_entries(issue_key=result.issue_key) if e.action == "decision.priority"]
    assert [(e.actor, e.result, e.policy, e.details["value"]) for e in rows] == [
        ("lee@cxbridge.example", "granted", "team-lead-credits", "Highest")
    ]
    assert SKIP_TRIAGE_LABEL not in issue["fields"]["labels"]


def test_granted_skip_triage_labels_the_created_issue(vendors: Vendors, runtime: Runtime) -> None:
    req = EscalationRequest(ticket_id="1", note="Reproduced.", agent=SAM, actions=[parse_action("skip-triage")])
    Escalation(runtime).run(req)
    issue = vendors["jira"].state()["issues"][0]
    assert SKIP_TRIAGE_LABEL in issue["fields"]["labels"]
    assert "Skip triage" in issue["fields"]["description"]


def test_a_refused_decision_stops_the_escalation_before_any_write(vendors: Vendors, runtime: Runtime) -> None:
    """Sam may raise priority only up to High: Highest is refused, naming the lead rule; nothing is written."""
    notes_before = internal_notes(vendors, 2)
    req = EscalationRequest(ticket_id="2", note="x", agent=SAM, actions=[parse_action("priority", "Highest")])
    with pytest.raises(PolicyRefused) as info:
        Escalation(runtime).run(req)
    assert "rule team-lead-credits" in str(info.value)
    assert info.value.decision.action == "priority"
    assert not info.value.decision.granted
    assert vendors["jira"].state()["issues"] == []
    assert internal_notes(vendors, 2) == notes_before
    assert vendors["hubspot"].state()["objects"]["notes"] == []
    assert runtime.store.all_links() == []
    with pytest.raises(PolicyRefused, match="--agent"):
        Escalation(runtime).run(EscalationRequest(ticket_id="2", actions=[parse_action("skip-triage")]))


def test_act_grants_80_and_refuses_150_in_the_emulators_state(vendors: Vendors, runtime: Runtime) -> None:
    result = act_on_ticket(runtime, "1", parse_action("credit", "80"), SAM)
    assert result.decision.granted
    assert result.writes == {
        "ticket_note": "written",
        "crm_note": "written",
        "audit": "written",
        "plugins": "handed over",
    }
    assert any(
        n.startswith("Credit of 80 USD granted by sam@cxbridge.example under rule tier1-credits")
        for n in internal_notes(vendors, 1)
    )
    with pytest.raises(PolicyRefused, match="rule team-lead-credits"):
        act_on_ticket(runtime, "1", parse_action("credit", "150"), SAM)
    assert sum("Credit of" in n for n in internal_notes(vendors, 1)) == 1
    assert len(vendors["hubspot"].state()["objects"]["notes"]) == 1  # the refusal wrote no CRM note either
    rows = [e for e in runtime.store.audit_entries() if e.action == "act.credit"]
    assert [(e.result, e.policy) for e in rows] == [("granted", "tier1-credits"), ("refused", None)]


def test_act_after_an_unconfirmed_note_finds_it_instead_of_writing_twice(vendors: Vendors, runtime: Runtime) -> None:
    """The note reached Zendesk but the answer was lost: the retry (same request id) finds it by its marker."""
    helpdesk = runtime.helpdesk()
    real = helpdesk.add_internal_note

    def lost_answer(ticket_id: str, body: str) -> None:
        real(ticket_id, body)
        raise AmbiguousOutcome("zendesk", "read timeout after the note was sent")

    helpdesk.add_internal_note = lost_answer  # type: ignore[method-assign]
    with pytest.raises(AmbiguousOutcome):
        act_on_ticket(runtime, "1", parse_action("credit", "80"), SAM, request_id="req-9")
    helpdesk.add_internal_note = real  # type: ignore[method-assign]
    again = act_on_ticket(runtime, "1", parse_action("credit", "80"), SAM, request_id="req-9")
    assert again.writes["ticket_note"] == "unchanged"
    assert again.writes["crm_note"] == "written"
    assert again.writes["audit"] == "written"
    assert sum("Credit of 80 USD" in n for n in internal_notes(vendors, 1)) == 1
    assert len(vendors["hubspot"].state()["objects"]["notes"]) == 1


def test_act_after_a_failed_note_writes_it_on_the_retry(vendors: Vendors, runtime: Runtime) -> None:
    """A 500 before Zendesk applied anything: the retry with the same id searches, finds nothing, writes once."""
    vendors["zendesk"].faults.append(Fault(status=500, path=r"/api/v2/tickets/1", method="PUT"))
    with pytest.raises(AmbiguousOutcome):
        act_on_ticket(runtime, "1", parse_action("credit", "80"), SAM, request_id="req-10")
    again = act_on_ticket(runtime, "1", parse_action("credit", "80"), SAM, request_id="req-10")
    assert again.writes["ticket_note"] == "written"
    assert sum("Credit of 80 USD" in n for n in internal_notes(vendors, 1)) == 1
    assert len(vendors["hubspot"].state()["objects"]["notes"]) == 1
    assert len([e for e in runtime.store.audit_entries() if e.action == "act.credit"]) == 1
