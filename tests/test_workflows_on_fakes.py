"""The real workflows (escalation, sync back, impact rollup) on the in-memory fakes: no HTTP, state asserted on the
fakes' records, and exactly-once when a fault strikes after the vendor applied a write."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cxbridge.runtime import Runtime
from cxbridge.sdk import AmbiguousOutcome, EscalationRequested, IssueStateObserved, Ref
from cxbridge.testing import FAKE_HELPDESK, FAKE_TRACKER, FakeWorld, fake_runtime
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.events import handle_signal

TAG = "escalated_to_engineering"


@pytest.fixture
def world() -> FakeWorld:
    w = FakeWorld()
    w.add_customer("ada@acme.example", company="Acme", tier="strategic", arr=480000, renewal_date="2027-01-31")
    w.add_customer("grace@globex.example", company="Globex", tier="enterprise", arr=150000)
    return w


@pytest.fixture
def rt(tmp_path: Path, world: FakeWorld) -> Iterator[Runtime]:
    runtime = fake_runtime(
        tmp_path,
        world,
        extra={
            "sync": {"status_map": {"done": "solved"}},
            "impact": {"fields": {"arr": "arr_field", "customers": "customers_field"}},
        },
    )
    yield runtime
    runtime.close()


def _ticket(world: FakeWorld, email: str = "ada@acme.example") -> str:
    return world.add_ticket("CSV exports fail", description="Every export ends with a 500.", requester_email=email)


def _escalate(rt: Runtime, ticket_id: str) -> str:
    return handle_signal(rt, EscalationRequested(ticket=Ref(FAKE_HELPDESK, "ticket", ticket_id)), system=FAKE_HELPDESK)


def test_an_escalation_writes_each_effect_once(rt: Runtime, world: FakeWorld) -> None:
    """One issue, one remote link, note + tag + key on the ticket, one CRM note; replaying the signal adds nothing."""
    tid = _ticket(world)
    assert _escalate(rt, tid).startswith("escalated:")
    assert _escalate(rt, tid).startswith("unchanged:")
    (issue,) = world.issues.values()
    assert [link.ticket.id for link in issue.links.values()] == [tid]
    ticket = world.tickets[tid]
    assert TAG in ticket.tags
    assert ticket.custom_fields["issue_key"] == issue.key
    assert [c.public for c in ticket.comments] == [True, False]
    assert len(world.notes) == 1
    assert len(world.calls_to("create_issue")) == 1


def test_an_unconfirmed_create_is_found_not_repeated(rt: Runtime, world: FakeWorld) -> None:
    """The tracker creates the issue but the answer is lost (AmbiguousOutcome): the label finds it, no second one."""
    tid = _ticket(world)
    world.fail_next("create_issue", AmbiguousOutcome, after_write=True)
    result = Escalation(rt).run(EscalationRequest(ticket_id=tid))
    assert result.created
    assert len(world.issues) == 1
    assert len(world.calls_to("create_issue")) == 1
    (issue,) = world.issues.values()
    assert result.issue_key == issue.key
    assert len(issue.links) == 1


def test_a_lost_answer_on_the_ticket_update_leaves_one_note(rt: Runtime, world: FakeWorld) -> None:
    """The ticket update is applied but unconfirmed: the rerun sees tag and key there and writes no second note."""
    tid = _ticket(world)
    world.fail_next("record_escalation", AmbiguousOutcome, after_write=True)
    with pytest.raises(AmbiguousOutcome):
        _escalate(rt, tid)
    assert _escalate(rt, tid).startswith("escalated:")
    assert len(world.issues) == 1
    assert [c.public for c in world.tickets[tid].comments] == [True, False]
    assert len(world.notes) == 1


def test_a_status_change_syncs_back_once(rt: Runtime, world: FakeWorld) -> None:
    """The issue moving to done puts one note on the ticket and solves it (one update), and one CRM note."""
    tid = _ticket(world)
    _escalate(rt, tid)
    (issue,) = world.issues.values()
    world.move_issue(issue.key, "Done")
    signal = IssueStateObserved(
        issue=Ref(FAKE_TRACKER, "issue", issue.id),
        key=issue.key,
        summary=issue.summary,
        status="Done",
        category="done",
        updated=datetime.now(UTC),
    )
    assert handle_signal(rt, signal, system=FAKE_TRACKER).startswith("synced:")
    assert handle_signal(rt, signal, system=FAKE_TRACKER).startswith(("unchanged:", "stale:"))
    ticket = world.tickets[tid]
    assert ticket.status == "solved"
    assert [c.public for c in ticket.comments] == [True, False, False]
    assert len(world.calls_to("add_note_with_status")) == 1
    assert len(world.notes) == 2


def test_the_impact_rollup_counts_every_linked_customer(rt: Runtime, world: FakeWorld) -> None:
    """A second customer's ticket joining the issue rolls both companies into its fields, labels and one block."""
    first, second = _ticket(world), _ticket(world, "grace@globex.example")
    key = Escalation(rt).run(EscalationRequest(ticket_id=first)).issue_key
    assert not Escalation(rt).run(EscalationRequest(ticket_id=second, link_key=key)).created
    issue = world.issue(key)
    assert issue.fields["customers_field"] == 2
    assert issue.fields["arr_field"] == 630000
    assert {"cxb-tier-strategic", "cxb-tier-enterprise"} <= set(issue.labels)
    assert issue.description.count("## Customer impact") == 1
    assert len(issue.links) == 2
    assert len(world.calls_to("write_impact")) == 1
