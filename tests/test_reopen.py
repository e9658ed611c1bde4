"""An agent with the right to reopen a done issue joins it and reopens it at once; without it, nothing is written."""

from __future__ import annotations

from typing import Any

import pytest

from cxbridge.models import Person, Ref
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.policy import PolicyRefused, parse_action

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SAM = Person(email="sam@cxbridge.example")
LEE = Person(email="lee@cxbridge.example")
POLICIES: dict[str, Any] = {
    "rules": [{"name": "leads-reopen", "when": "agent.role == 'lead'", "grant": {"reopen": True}}],
    "agents": {SAM.email: {"role": "agent"}, LEE.email: {"role": "lead"}},
}


@pytest.fixture
def runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime(vendors, extra={"policies": POLICIES})


def status(vendors: Vendors, key: str) -> dict[str, Any]:
    issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)
    found: dict[str, Any] = issue["fields"]["status"]
    return found


def close(runtime: Runtime, key: str) -> None:
    tracker: Any = runtime.tracker()
    tracker.transition_by_name(key, "Done")


def test_a_lead_reopens_the_done_issue_a_customer_hits_again(vendors: Vendors, runtime: Runtime) -> None:
    key = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    close(runtime, key)
    assert status(vendors, key)["statusCategory"]["key"] == "done"
    req = EscalationRequest(
        ticket_id="2", link_key=key, note="Back again.", agent=LEE, actions=[parse_action("reopen", None)]
    )
    result = Escalation(runtime).run(req)
    assert result.writes["reopen"] == "written"
    assert status(vendors, key)["statusCategory"]["key"] != "done"
    rows = [e for e in runtime.store.audit_entries(issue_key=key) if e.action == "decision.reopen"]
    assert [(e.actor, e.result, e.policy) for e in rows] == [("lee@cxbridge.example", "granted", "leads-reopen")]
    # a rerun finds the issue open again and reopens nothing
    reopened = status(vendors, key)
    assert "reopen" not in Escalation(runtime).run(req).writes
    assert status(vendors, key) == reopened


def test_an_agent_without_the_right_is_refused_and_nothing_is_written(vendors: Vendors, runtime: Runtime) -> None:
    key = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    close(runtime, key)
    before = {name: vendors[name].state() for name in ("zendesk", "jira", "hubspot")}
    req = EscalationRequest(ticket_id="2", link_key=key, agent=SAM, actions=[parse_action("reopen", None)])
    with pytest.raises(PolicyRefused, match="leads-reopen"):
        Escalation(runtime).run(req)
    assert {name: vendors[name].state() for name in ("zendesk", "jira", "hubspot")} == before
    assert runtime.store.links_for_ticket(Ref("zendesk", "ticket", "2")) == []
    assert status(vendors, key)["statusCategory"]["key"] == "done"
    # the refusal is in the audit trail, with the rule that would have allowed it
    rows = [e for e in runtime.store.audit_entries(ticket=Ref("zendesk", "ticket", "2")) if e.result == "refused"]
    assert [(e.action, e.actor) for e in rows] == [("decision.reopen", "sam@cxbridge.example")]
    assert "leads-reopen" in rows[0].details["reason"]
