"""Finding the customer when no CRM contact has the requester's email: the company by the email's domain, then by
the helpdesk organization's domain or name, in the configured order; the handoff says how it was found; the owner
is shown by name."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from cxbridge_jira.signals import plain_text

from cxbridge.cli import cli
from cxbridge.demo import DEMO_SETTINGS
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows.escalate import Escalation, EscalationRequest

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

FIELDS: dict[str, str] = DEMO_SETTINGS["impact"]["fields"]


def new_ticket(
    vendors: Vendors, email: str, *, organization: str | None = None, domains: list[str] | None = None
) -> str:
    """A ticket from a new end user (no HubSpot contact), in an organization of the Zendesk emulator."""
    model: Any = vendors["zendesk"].model  # type: ignore[attr-defined]
    org_id = None
    if organization is not None:
        org = model.organization_by_name(organization) or model.add_organization(
            organization, domain_names=domains or []
        )
        org_id = org.id
    user = model.add_user(email.split("@")[0].title(), email, "end-user", organization_id=org_id)
    body = {"ticket": {"subject": "Dashboard is blank", "comment": {"body": "Since today."}, "priority": "high"}}
    ticket, _, _ = model.create_ticket(body, user, comment_author_id=user.id)
    return str(ticket.id)


def description(vendors: Vendors, key: str) -> str:
    issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)
    return plain_text(issue["fields"]["description"])


def hubspot_calls(vendors: Vendors, start: int) -> list[str]:
    return [f"{c.method} {c.path.split('?')[0]}" for c in vendors["hubspot"].calls[start:]]


def test_bob_at_acme_is_found_by_his_email_domain(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    runtime = sandbox_runtime(vendors, extra={"impact": {"fields": FIELDS}})
    tid = new_ticket(vendors, "bob@acme.example", organization="Acme Corp")
    start = len(vendors["hubspot"].calls)
    result = Escalation(runtime).run(EscalationRequest(ticket_id=tid, note="Blank for Bob."))
    customer = result.customer
    assert (customer.name, customer.tier, customer.arr, customer.owner) == (
        "Acme Corp",
        "strategic",
        480000,
        "Olivia Owner",
    )
    assert customer.owner_email == "olivia.owner@cxbridge.example"
    assert customer.match == "email_domain"
    assert customer.contact_ref is None
    text = description(vendors, result.issue_key)
    assert "*Found in the CRM by:* the requester's email domain (acme.example)" in text
    assert "*Account owner:* Olivia Owner (olivia.owner@cxbridge.example)" in text
    assert "Found by the requester's email domain (acme.example)" in result.handoff["helpdesk_note"]
    calls = hubspot_calls(vendors, start)
    assert calls[:2] == ["GET /crm/v3/objects/contacts/bob@acme.example", "POST /crm/v3/objects/companies/search"]
    assert "GET /crm/v3/owners/41920001" in calls
    # the impact counts Acme with its ARR
    issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == result.issue_key)
    assert issue["fields"][FIELDS["arr"]] == 480000
    assert issue["fields"][FIELDS["customers"]] == 1
    # the CRM note goes on Acme's timeline
    assert result.writes["crm_note"] == "written"


def test_free_mail_falls_back_to_the_organization_domain(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    runtime = sandbox_runtime(vendors)
    tid = new_ticket(vendors, "bob.acme@gmail.com", organization="Acme Corp")
    start = len(vendors["hubspot"].calls)
    result = Escalation(runtime).run(EscalationRequest(ticket_id=tid, note="n"))
    assert (result.customer.name, result.customer.match) == ("Acme Corp", "organization_domain")
    sent = [c for c in hubspot_calls(vendors, start) if c.endswith("/companies/search")]
    assert len(sent) == 1  # gmail.com was never searched for
    assert "Found by the helpdesk organization's domain (acme.example)." in result.handoff["helpdesk_note"]


def test_organization_name_when_it_has_no_domain(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    runtime = sandbox_runtime(vendors)
    tid = new_ticket(vendors, "pat@gmail.com", organization="Globex", domains=[])
    result = Escalation(runtime).run(EscalationRequest(ticket_id=tid, note="n"))
    assert (result.customer.name, result.customer.match) == ("Globex", "organization_domain")
    other = new_ticket(vendors, "sam@yahoo.com", organization="Initech Europe", domains=[])
    model: Any = vendors["zendesk"].model  # type: ignore[attr-defined]
    model.organization_by_name("Initech Europe").name = "Initech"  # renamed in Zendesk: no domain, the name matches
    assert Escalation(runtime).run(EscalationRequest(ticket_id=other, note="n"), dry_run=True).customer.match == (
        "organization_name"
    )


def test_the_order_is_configurable_and_a_way_can_be_left_out(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    runtime = sandbox_runtime(vendors, extra={"escalation": {"customer_match": ["email"]}})
    tid = new_ticket(vendors, "bob@acme.example", organization="Acme Corp")
    result = Escalation(runtime).run(EscalationRequest(ticket_id=tid, note="n"), dry_run=True)
    assert not result.customer.known
    assert "unknown to the CRM" in result.handoff["issue_description"]


def test_a_known_contact_still_matches_by_email(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    runtime = sandbox_runtime(vendors)
    result = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="n"), dry_run=True)
    assert (result.customer.name, result.customer.match, result.customer.owner) == (
        "Acme Corp",
        "email",
        "Olivia Owner",
    )
    assert result.customer.contact_ref is not None


def test_links_name_the_company(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    """``cxbridge links`` shows the linked company by name (from the store), not only by its reference."""
    path = sandbox_runtime.config(vendors)
    runtime = sandbox_runtime.load(path)
    key = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="n")).issue_key
    runtime.close()
    out = CliRunner().invoke(cli, ["--config", str(path), "links", key])
    assert out.exit_code == 0, out.output
    assert "customer Acme Corp (hubspot:company:" in out.output
    rows = json.loads(CliRunner().invoke(cli, ["--config", str(path), "links", key, "--json"]).output)
    assert rows[0]["customer_name"] == "Acme Corp"
