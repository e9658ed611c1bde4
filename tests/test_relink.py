"""Correct links: the issue key typed on a ticket wins over an older escalation of it, and moving a ticket from one
issue to another updates the store, both issues' remote links and both impacts (Zendesk and HubSpot tickets)."""

from __future__ import annotations

from typing import Any

import pytest
from cxbridge_hubspot.sandbox.backend import HubSpotBackend
from cxbridge_hubspot.sandbox.models import OBJECT_TYPES

from cxbridge.demo import DEMO_SETTINGS
from cxbridge.models import Ref
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors
from cxbridge.signals import EscalationRequested
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows import events, impact
from cxbridge.workflows.escalate import Escalation, EscalationRequest

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

FIELDS: dict[str, str] = DEMO_SETTINGS["impact"]["fields"]


@pytest.fixture
def runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime(vendors, extra={"impact": {"fields": FIELDS}})


def jira_issue(vendors: Vendors, key: str) -> dict[str, Any]:
    return next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)


def linked_urls(vendors: Vendors, key: str) -> list[str]:
    return [link["object"]["url"] for link in jira_issue(vendors, key)["remoteLinks"]]


def tickets_field(vendors: Vendors, key: str) -> Any:
    return jira_issue(vendors, key)["fields"].get(FIELDS["tickets"])


def type_key(vendors: Vendors, runtime: Runtime, ticket_id: int, key: str) -> None:
    """The agent types a key into the Zendesk ticket's issue-key field (as the Zendesk UI would)."""
    model: Any = vendors["zendesk"].model  # type: ignore[attr-defined]
    model.tickets[ticket_id].custom_fields[runtime.config.system("zendesk").get("issue_key_field_id")] = key


def zendesk_key_field(vendors: Vendors, runtime: Runtime, ticket_id: int) -> Any:
    model: Any = vendors["zendesk"].model  # type: ignore[attr-defined]
    return model.tickets[ticket_id].custom_fields.get(runtime.config.system("zendesk").get("issue_key_field_id"))


def test_unlink_then_retag_with_another_key_links_the_typed_issue(vendors: Vendors, runtime: Runtime) -> None:
    """The issue's scenario: ``unlink 3 ENG-2``, key field set to ENG-1, tagged again: everything says ENG-1."""
    eng1 = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    eng2 = Escalation(runtime).run(EscalationRequest(ticket_id="3", note="Invoices.")).issue_key
    assert eng1 != eng2
    ticket3 = Ref("zendesk", "ticket", "3")
    url3 = runtime.helpdesk("zendesk").ticket_url("3")
    impact.unlink(runtime, ticket3, eng2)
    type_key(vendors, runtime, 3, eng1)

    outcome = events.handle_signal(runtime, EscalationRequested(ticket=ticket3, fresh=True), system="zendesk")

    assert outcome == f"escalated: {ticket3} joined {eng1}"
    assert zendesk_key_field(vendors, runtime, 3) == eng1
    assert [link.issue_key for link in runtime.store.links_for_ticket(ticket3)] == [eng1]
    assert url3 in linked_urls(vendors, eng1)
    assert url3 not in linked_urls(vendors, eng2)
    assert tickets_field(vendors, eng1) == 2
    assert tickets_field(vendors, eng2) == 0
    # a replay changes nothing
    again = events.handle_signal(runtime, EscalationRequested(ticket=ticket3, fresh=True), system="zendesk")
    assert again.startswith("unchanged")
    assert len(linked_urls(vendors, eng1)) == 2


def test_changing_the_key_moves_the_ticket_between_issues(vendors: Vendors, runtime: Runtime) -> None:
    """Without an unlink: the ticket leaves ENG-2 (remote link, store, impact) and joins ENG-1, once."""
    eng1 = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    eng2 = Escalation(runtime).run(EscalationRequest(ticket_id="3", note="Invoices.")).issue_key
    ticket3 = Ref("zendesk", "ticket", "3")
    url3 = runtime.helpdesk("zendesk").ticket_url("3")
    assert url3 in linked_urls(vendors, eng2)
    assert tickets_field(vendors, eng2) == 1
    type_key(vendors, runtime, 3, eng1)

    plan = Escalation(runtime).run(EscalationRequest(ticket_id="3"), dry_run=True).planned
    assert any(f"off {eng2}" in line for line in plan)
    outcome = events.handle_signal(runtime, EscalationRequested(ticket=ticket3, fresh=True), system="zendesk")

    assert outcome == f"escalated: {ticket3} joined {eng1}"
    assert [link.issue_key for link in runtime.store.links_for_ticket(ticket3)] == [eng1]
    assert url3 in linked_urls(vendors, eng1)
    assert url3 not in linked_urls(vendors, eng2)
    assert (tickets_field(vendors, eng1), tickets_field(vendors, eng2)) == (2, 0)
    assert [e.action for e in runtime.store.audit_entries(ticket=ticket3)][-2:] == ["unlink", "escalate.link"]
    assert events.handle_signal(runtime, EscalationRequested(ticket=ticket3, fresh=True), system="zendesk").startswith(
        "unchanged"
    )
    assert len(linked_urls(vendors, eng1)) == 2


def test_a_link_option_naming_another_issue_adds_a_link_without_moving(vendors: Vendors, runtime: Runtime) -> None:
    """``escalate 3 --link ENG-1`` on a ticket linked to ENG-2 whose field says ENG-2 links it to both."""
    eng1 = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    eng2 = Escalation(runtime).run(EscalationRequest(ticket_id="3", note="Invoices.")).issue_key
    Escalation(runtime).run(EscalationRequest(ticket_id="3", link_key=eng1, note="Same bug too."))
    keys = {link.issue_key for link in runtime.store.links_for_ticket(Ref("zendesk", "ticket", "3"))}
    assert keys == {eng1, eng2}


@pytest.fixture
def hub_runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime(vendors, extra={"impact": {"fields": FIELDS}})


def new_hubspot_ticket(hub: HubSpotBackend, subject: str) -> str:
    """A second HubSpot ticket from Grace (Globex), as if created in the HubSpot app."""
    contact = next(c for c in hub.portal.live(OBJECT_TYPES["contacts"]) if c.properties["email"].startswith("grace"))
    ticket = hub.portal.create(
        OBJECT_TYPES["tickets"],
        {"subject": subject, "hs_pipeline": "0", "hs_pipeline_stage": "1", "content": "It broke."},
    )
    hub.portal.associate("tickets", ticket.id, "contacts", contact.id, [16])
    return str(ticket.id)


def test_hubspot_ticket_moves_to_the_typed_issue(vendors: Vendors, hub_runtime: Runtime) -> None:
    hub = vendors["hubspot"]
    assert isinstance(hub, HubSpotBackend)
    first = next(iter(hub.portal.objects["tickets"]))
    second = new_hubspot_ticket(hub, "Dashboard is blank")
    eng1 = Escalation(hub_runtime).run(EscalationRequest(ticket_id=first, helpdesk="hubspot", note="A")).issue_key
    eng2 = Escalation(hub_runtime).run(EscalationRequest(ticket_id=second, helpdesk="hubspot", note="B")).issue_key
    ref = Ref("hubspot", "ticket", second)
    url = hub_runtime.helpdesk("hubspot").ticket_url(second)
    assert hub.portal.objects["tickets"][second].properties["cxbridge_issue_key"] == eng2
    hub.ui_update("tickets", second, {"cxbridge_issue_key": eng1})

    outcome = events.handle_signal(hub_runtime, EscalationRequested(ticket=ref, fresh=True), system="hubspot")

    assert outcome == f"escalated: {ref} joined {eng1}"
    assert [link.issue_key for link in hub_runtime.store.links_for_ticket(ref)] == [eng1]
    assert url in linked_urls(vendors, eng1)
    assert url not in linked_urls(vendors, eng2)
    assert (tickets_field(vendors, eng1), tickets_field(vendors, eng2)) == (2, 0)
    assert hub.portal.objects["tickets"][second].properties["cxbridge_issue_key"] == eng1
