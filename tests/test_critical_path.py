"""The escalation's critical path: the requester's email a request carries (the Zendesk trigger's
``{{ticket.requester.email}}``) starts the CRM lookup of the customer beside the ticket read; the ticket stays the
truth (another requester there redoes the lookup), the CRM is asked nothing twice, and a request without the email
escalates as before (the lookup after the ticket). A join reads the issue it joins beside the customer, and writes
the ticket's and the CRM's notes beside the issue's impact edit.

Each "beside" is shown without timing: one call waits (up to a minute) for the other to be asked, which can
happen only when both are out together."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cxbridge.errors import Unavailable
from cxbridge.models import Event, Ref
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.events import handle_event

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

TAG = "escalated_to_engineering"


def ticket_from(vendors: Vendors, email: str, *, organization: str | None = None) -> str:
    """A new ticket whose requester has ``email`` (a new end user unless Zendesk knows the address)."""
    model: Any = vendors["zendesk"].model  # type: ignore[attr-defined]
    user = model.user_by_email(email)
    if user is None:
        org = model.organization_by_name(organization) if organization else None
        user = model.add_user(email.split("@")[0].title(), email, "end-user", organization_id=org.id if org else None)
    body = {"ticket": {"subject": "Exports fail", "comment": {"body": "Since today."}, "priority": "high"}}
    ticket, _, _ = model.create_ticket(body, user, comment_author_id=user.id)
    return str(ticket.id)


def hubspot_reads(vendors: Vendors, start: int) -> list[str]:
    """The HubSpot reads since ``start`` (method and path, without the query)."""
    return [f"{c.method} {c.path.split('?')[0]}" for c in vendors["hubspot"].calls[start:] if c.method == "GET"]


def test_the_hint_starts_the_customer_lookup_beside_the_ticket_read_and_asks_nothing_twice(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ticket read waits (up to a minute) for the CRM's contact lookup to be asked: it is, so the two went out
        together. The escalation finds what it finds without the hint, with the same calls on every system (after a
    first escalation has read what is read once per process)."""
    runtime = sandbox_runtime(vendors)
    helpdesk, crm = runtime.helpdesk(), runtime.crm()
    assert crm is not None
    asked = threading.Event()
    seen_before_ticket: list[bool] = []
    find_customer, get_ticket = crm.find_customer, helpdesk.get_ticket

    def finding(email: str) -> Any:
        asked.set()
        return find_customer(email)

    def reading(ticket_id: str) -> Any:
        seen_before_ticket.append(asked.wait(60))
        return get_ticket(ticket_id)

    Escalation(runtime).run(EscalationRequest(ticket_id=ticket_from(vendors, "ada@acme.example")))  # warm-up
    monkeypatch.setattr(crm, "find_customer", finding)
    monkeypatch.setattr(helpdesk, "get_ticket", reading)
    hinted = Escalation(runtime).run(
        EscalationRequest(ticket_id=ticket_from(vendors, "ada@acme.example"), requester_hint="ada@acme.example")
    )
    assert seen_before_ticket == [True]
    monkeypatch.setattr(helpdesk, "get_ticket", get_ticket)
    start = len(vendors["hubspot"].calls)
    plain = Escalation(runtime).run(EscalationRequest(ticket_id=ticket_from(vendors, "ada@acme.example")))
    plain_reads = hubspot_reads(vendors, start)
    assert (hinted.customer.name, hinted.customer.match) == (plain.customer.name, plain.customer.match)
    assert (hinted.customer.name, hinted.customer.match) == ("Acme Corp", "email")
    assert hinted.customer.contact_ref == plain.customer.contact_ref
    assert hinted.customer.arr == plain.customer.arr
    assert hinted.calls == plain.calls
    assert "GET /crm/v3/objects/contacts/ada@acme.example" in plain_reads
    assert (hinted.writes["ticket_note"], hinted.writes["crm_note"]) == ("written", "written")


def test_a_hint_naming_someone_else_is_redone_from_the_ticket(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    """The request says Grace (Globex); the ticket's requester is Bob, found at Acme by his email's domain: the
    escalation is Acme's, as the ticket says, and Grace's lookup was only wasted reads."""
    runtime = sandbox_runtime(vendors)
    tid = ticket_from(vendors, "bob@acme.example", organization="Acme Corp")
    start = len(vendors["hubspot"].calls)
    result = Escalation(runtime).run(EscalationRequest(ticket_id=tid, requester_hint="grace@globex.example"))
    assert (result.customer.name, result.customer.match, result.customer.contact_ref) == (
        "Acme Corp",
        "email_domain",
        None,
    )
    reads = hubspot_reads(vendors, start)
    assert "GET /crm/v3/objects/contacts/grace@globex.example" in reads
    assert "GET /crm/v3/objects/contacts/bob@acme.example" in reads
    assert "Acme Corp" in result.handoff["issue_description"]
    assert "Globex" not in result.handoff["issue_description"]


def test_a_crm_failure_on_a_wrong_hint_does_not_fail_the_escalation(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = sandbox_runtime(vendors)
    crm = runtime.crm()
    assert crm is not None
    find_customer = crm.find_customer

    def finding(email: str) -> Any:
        if email == "nobody@elsewhere.example":
            raise Unavailable("hubspot", "503 Service Unavailable")
        return find_customer(email)

    monkeypatch.setattr(crm, "find_customer", finding)
    tid = ticket_from(vendors, "ada@acme.example")
    result = Escalation(runtime).run(EscalationRequest(ticket_id=tid, requester_hint="nobody@elsewhere.example"))
    assert (result.customer.name, result.customer.match) == ("Acme Corp", "email")


def test_with_the_organization_first_the_hint_asks_nothing_before_the_ticket(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    """``customer_match`` puts the organization's domain first: only the ticket can tell it, so the lookup from the
    hint stops before asking anything, and the escalation makes the calls it makes without the hint."""
    runtime = sandbox_runtime(vendors, extra={"escalation": {"customer_match": ["organization_domain", "email"]}})
    warm_up = EscalationRequest(ticket_id=ticket_from(vendors, "ada@acme.example"), note="n")
    Escalation(runtime).run(warm_up, dry_run=True)
    hinted = Escalation(runtime).run(
        EscalationRequest(
            ticket_id=ticket_from(vendors, "ada@acme.example"), note="n", requester_hint="ada@acme.example"
        ),
        dry_run=True,
    )
    plain = Escalation(runtime).run(
        EscalationRequest(ticket_id=ticket_from(vendors, "ada@acme.example"), note="n"), dry_run=True
    )
    assert (hinted.customer.name, hinted.customer.match) == ("Acme Corp", "organization_domain")
    assert hinted.calls == plain.calls


@pytest.mark.parametrize("with_email", [True, False])
def test_a_trigger_delivery_escalates_with_or_without_the_requesters_email(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, with_email: bool
) -> None:
    """The body ``cxbridge setup`` provisions now carries the email; the one earlier versions provisioned does
    not: both escalate the ticket for the customer the ticket names."""
    runtime = sandbox_runtime(vendors)
    tid = ticket_from(vendors, "grace@globex.example")
    ticket: dict[str, Any] = {"id": int(tid), "tags": TAG}
    if with_email:
        ticket["requester"] = {"email": "grace@globex.example"}
    payload = {"event": "tag_added", "ticket": ticket, "current_user": {"id": 5, "name": "Sam", "email": "s@x.example"}}
    event = Event(
        id=f"d-{with_email}", system="zendesk", kind="ticket.tag_added", subject=Ref("zendesk", "ticket", tid)
    )
    event.payload = payload
    outcome = handle_event(runtime, event)
    assert outcome.startswith(f"escalated: zendesk:ticket:{tid} created ")
    (link,) = runtime.store.links_for_ticket(Ref("zendesk", "ticket", tid))
    assert link.customer is not None
    companies = vendors["hubspot"].state()["objects"]["companies"]  # type: ignore[attr-defined]
    (company,) = [c for c in companies if c["id"] == link.customer.id]
    assert company["properties"]["name"] == "Globex"


def test_a_join_reads_its_issue_beside_the_customer_and_notes_beside_the_impact_edit(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = sandbox_runtime(vendors)
    key = Escalation(runtime).run(EscalationRequest(ticket_id=ticket_from(vendors, "ada@acme.example"))).issue_key
    tracker, crm, helpdesk = runtime.tracker(), runtime.crm(), runtime.helpdesk()
    assert crm is not None
    customer_asked, note_sent = threading.Event(), threading.Event()
    seen: dict[str, bool] = {}
    find_customer, get_issue = crm.find_customer, tracker.get_issue
    write_impact, record_escalation = tracker.write_impact, helpdesk.record_escalation

    def finding(email: str) -> Any:
        customer_asked.set()
        return find_customer(email)

    def reading(issue_key: str) -> Any:
        seen.setdefault("customer asked before the issue read", customer_asked.wait(60))
        return get_issue(issue_key)

    def writing_impact(*args: Any, **kwargs: Any) -> Any:
        seen["ticket note sent before the impact edit"] = note_sent.wait(60)
        return write_impact(*args, **kwargs)

    def recording(*args: Any, **kwargs: Any) -> Any:
        note_sent.set()
        return record_escalation(*args, **kwargs)

    monkeypatch.setattr(crm, "find_customer", finding)
    monkeypatch.setattr(tracker, "get_issue", reading)
    monkeypatch.setattr(tracker, "write_impact", writing_impact)
    monkeypatch.setattr(helpdesk, "record_escalation", recording)
    result = Escalation(runtime).run(
        EscalationRequest(ticket_id=ticket_from(vendors, "grace@globex.example"), link_key=key)
    )
    assert seen == {"customer asked before the issue read": True, "ticket note sent before the impact edit": True}
    assert (result.created, result.issue_key) == (False, key)
    assert {k: result.writes[k] for k in ("impact", "remote_link", "ticket_note", "crm_note")} == {
        "impact": "written",
        "remote_link": "written",
        "ticket_note": "written",
        "crm_note": "written",
    }


def test_a_join_naming_no_issue_is_refused_before_any_write(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    """The issue read goes out beside the customer lookup; its refusal still comes before anything is written."""
    from cxbridge.workflows.escalate import IssueKeyRejected

    runtime = sandbox_runtime(vendors)
    tid = ticket_from(vendors, "ada@acme.example")
    before = {n: len(vendors[n].calls) for n in ("zendesk", "hubspot", "jira")}
    with pytest.raises(IssueKeyRejected):
        Escalation(runtime).run(EscalationRequest(ticket_id=tid, link_key="ENG-999"))
    sent = [c for n in before for c in vendors[n].calls[before[n] :] if c.method != "GET"]
    assert [c for c in sent if not c.path.endswith(("/batch/read", "/search"))] == []
    assert runtime.store.links_for_ticket(Ref("zendesk", "ticket", tid)) == []


def test_serve_learns_each_systems_integration_user_before_the_first_delivery(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    """With workers, ``serve`` learns the integration users at once (the call each system's first job would make,
    which also opens its kept-alive connection); a system that does not answer is left to learn later."""
    import time

    from cxbridge.sandbox import Fault
    from cxbridge.webhooks.serve import serving
    from cxbridge.workflows.events import known_integration_user_ids, warm_up

    runtime = sandbox_runtime(vendors)
    vendors["jira"].faults.append(Fault(status=503, count=20, path=r"/myself"))
    assert warm_up(runtime) == ["zendesk", "hubspot"]  # HubSpot cannot tell (no call): known as no one
    assert known_integration_user_ids(runtime, "zendesk")
    assert known_integration_user_ids(runtime, "jira") == frozenset()
    other = sandbox_runtime(vendors)
    with serving(other, workers=1, require_secrets=False, systems=["zendesk"]):
        deadline = time.monotonic() + 60
        while not known_integration_user_ids(other, "zendesk") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert known_integration_user_ids(other, "zendesk") == known_integration_user_ids(runtime, "zendesk")
        assert known_integration_user_ids(other, "jira") == frozenset()  # not served here: not asked
