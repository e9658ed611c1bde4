"""Escalation end to end with HubSpot as the helpdesk (Zendesk, HubSpot and Jira emulated in process).

Moved from the HubSpot plugin's tests: it drives the core's escalation across three vendors, so it is a core test.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cxbridge_hubspot.sandbox.backend import HubSpotBackend

from cxbridge.models import Ref
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows.escalate import Escalation, EscalationRequest

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture
def runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime(vendors)


def grace_ticket(backend: HubSpotBackend) -> str:
    """The seeded ticket (Grace Hopper of Globex)."""
    [tid] = list(backend.portal.objects["tickets"])
    return tid


def ticket_notes(backend: HubSpotBackend, tid: str) -> list[dict[str, Any]]:
    """The notes associated with a ticket, as the emulator holds them."""
    ids = {to_id for to_id, _ in backend.portal.associated("tickets", tid, "notes")}
    return [n for n in backend.state()["objects"]["notes"] if n["id"] in ids]


def test_escalation_with_hubspot_as_the_helpdesk(vendors: Vendors, runtime: Runtime) -> None:
    """One Jira issue, the key in the ticket property, one note on the ticket; a rerun writes nothing."""
    hub = vendors["hubspot"]
    assert isinstance(hub, HubSpotBackend)
    tid = grace_ticket(hub)
    hub.ui_update("tickets", tid, {"cxbridge_escalate": "true"})  # the agent ticks the box
    assert runtime.helpdesk("hubspot") is runtime.crm()
    before = {name: len(b.calls) for name, b in vendors.backends.items()}
    result = Escalation(runtime).run(EscalationRequest(ticket_id=tid, helpdesk="hubspot"))
    calls = {name: len(b.calls) - before[name] for name, b in vendors.backends.items()}
    assert result.created
    assert result.ticket == Ref("hubspot", "ticket", tid)
    issues = vendors["jira"].state()["issues"]
    assert len(issues) == 1
    assert issues[0]["key"] == result.issue_key
    link = issues[0]["remoteLinks"][0]
    assert link["object"]["url"] == f"https://app.hubspot.com/contacts/{hub.portal_id}/record/0-5/{tid}"
    assert hub.portal.objects["tickets"][tid].properties["cxbridge_issue_key"] == result.issue_key
    [note] = ticket_notes(hub, tid)
    assert f"Escalated to engineering: {result.issue_key}" in note["properties"]["hs_note_body"]
    notes = hub.state()["objects"]["notes"]
    assert len(notes) == 2  # the ticket's note, and the CRM note on Grace's and Globex's timelines
    assert result.writes["ticket_note"] == "written"
    assert result.writes["crm_note"] == "written"
    assert calls["zendesk"] == 0
    print(f"\nHubSpot-helpdesk escalation calls: {calls}; hubspot by op: {runtime.counter.by_op('hubspot')}")
    # the account owner and the ticket pipelines are read once per process (names, not ids; is a stage closed)
    assert calls["hubspot"] == result.calls["hubspot"] <= 12
    assert runtime.counter.by_op("hubspot")["pipelines.tickets"] == 1
    assert "**status:** New" in result.handoff["issue_description"]  # the stage's label, not its id "1"

    state = {name: json.dumps(b.state(), sort_keys=True) for name, b in vendors.backends.items()}
    rerun = Escalation(runtime).run(EscalationRequest(ticket_id=tid, helpdesk="hubspot"))
    assert rerun.issue_key == result.issue_key
    assert rerun.writes["ticket_note"] == "unchanged"
    assert rerun.writes["crm_note"] == "unchanged"
    assert {name: json.dumps(b.state(), sort_keys=True) for name, b in vendors.backends.items()} == state
