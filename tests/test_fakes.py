"""The in-memory fakes (``cxbridge.testing.fakes``) keep the connector contracts, and their own promises: shared
state through the plugin, a call log, and faults injected before or after a write."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cxbridge.sdk import CRM, AmbiguousOutcome, Event, Helpdesk, IssueSpec, Ref, Tracker, Unavailable
from cxbridge.testing import (
    FAKE_CRM,
    FAKE_HELPDESK,
    FAKE_TRACKER,
    CRMContract,
    FakeCRM,
    FakeHelpdesk,
    FakeTracker,
    FakeWorld,
    HelpdeskContract,
    TrackerContract,
    fake_runtime,
)


class TestFakeHelpdesk(HelpdeskContract):
    def make_connector(self) -> Helpdesk:
        self.world = FakeWorld()
        return FakeHelpdesk.build(self.world)

    def seed_ticket(
        self, connector: Helpdesk, *, subject: str, description: str, requester_email: str, requester_name: str
    ) -> str:
        return self.world.add_ticket(
            subject, description=description, requester_email=requester_email, requester_name=requester_name
        )

    def sample_events(self, connector: Helpdesk) -> list[Event]:
        subject = Ref(connector.name, "ticket", "7")
        return [
            Event("e1", FAKE_HELPDESK, "ticket.tagged", subject, payload={"tags": ["escalated_to_engineering"]}),
            Event("e2", FAKE_HELPDESK, "ticket.comment", subject, payload={"text": "hi", "public": True}),
        ]


class TestFakeCRM(CRMContract):
    def make_connector(self) -> CRM:
        self.world = FakeWorld()
        return FakeCRM.build(self.world)

    def seed_customer(self, connector: CRM, *, email: str, company: str) -> None:
        self.world.add_customer(email, company=company, tier="enterprise", arr=120000)


class TestFakeTracker(TrackerContract):
    project = "FAKE"

    def make_connector(self) -> Tracker:
        self.world = FakeWorld()
        return FakeTracker.build(self.world, name="tracker-eu")

    def seed_issue_done(self, connector: Tracker, key: str) -> None:
        self.world.move_issue(key, "Done")

    def seed_fix_version(self, connector: Tracker, key: str) -> str:
        return self.world.add_version("1.2.0", issues=[key])

    def count_ticket_links(self, connector: Tracker, key: str) -> int | None:
        return len(self.world.issue(key).links)

    def sample_events(self, connector: Tracker) -> list[Event]:
        issue = Ref(connector.name, "issue", "10001")
        return [
            Event("e1", FAKE_TRACKER, "issue.status", issue, payload={"key": "FAKE-1", "category": "done"}),
            Event("e2", FAKE_TRACKER, "issue.comment", issue, payload={"key": "FAKE-1", "comment_id": "9"}),
            Event("e3", FAKE_TRACKER, "version.released", Ref(connector.name, "version", "3"), payload={"name": "1"}),
        ]


def test_the_runtime_builds_the_fakes_through_the_plugin_over_the_test_world(tmp_path: Path) -> None:
    """A Runtime on the fakes fills the three roles with the fakes, all over the test's world."""
    world = FakeWorld()
    rt = fake_runtime(tmp_path, world)
    try:
        helpdesk, crm, tracker = rt.helpdesk(), rt.crm(), rt.tracker()
        assert (helpdesk.name, getattr(crm, "name", None), tracker.name) == (FAKE_HELPDESK, FAKE_CRM, FAKE_TRACKER)
        assert isinstance(helpdesk, FakeHelpdesk)
        assert isinstance(crm, FakeCRM)
        assert isinstance(tracker, FakeTracker)
        assert helpdesk.world is world
        assert tracker.world is world
        assert rt.plugins.infos["fakes"].loaded
        tid = world.add_ticket("Seeded by the test", requester_email="ada@acme.example")
        assert helpdesk.get_ticket(tid).subject == "Seeded by the test"
        assert [c.method for c in world.calls] == ["get_ticket"]
    finally:
        rt.close()


def test_two_worlds_share_nothing() -> None:
    """Fakes over two worlds see only their own records."""
    first, second = FakeWorld(), FakeWorld()
    first.add_issue("only in the first")
    assert FakeTracker.build(first).search_by_label("x") == []
    assert len(first.issues) == 1
    assert not second.issues
    assert first.bind(FakeTracker) is not second.bind(FakeTracker)


def test_a_fault_before_the_write_changes_nothing(fake_world: FakeWorld) -> None:
    """``fail_next`` without ``after_write`` raises before the write: nothing is created."""
    tracker = FakeTracker.build(fake_world)
    fake_world.fail_next("create_issue", Unavailable)
    with pytest.raises(Unavailable):
        tracker.create_issue(IssueSpec("FAKE", "Bug", "s", "d", labels=["cxb-1"]))
    assert not fake_world.issues
    tracker.create_issue(IssueSpec("FAKE", "Bug", "s", "d", labels=["cxb-1"]))
    assert len(fake_world.issues) == 1


def test_a_fault_after_the_write_keeps_the_write(fake_world: FakeWorld) -> None:
    """``fail_next(after_write=True)`` applies the write, then raises (an ambiguous outcome)."""
    tracker = FakeTracker.build(fake_world)
    fake_world.fail_next("create_issue", AmbiguousOutcome, after_write=True)
    with pytest.raises(AmbiguousOutcome):
        tracker.create_issue(IssueSpec("FAKE", "Bug", "s", "d", labels=["cxb-1"]))
    assert [i.key for i in tracker.search_by_label("cxb-1")] == ["FAKE-1"]
    assert len(fake_world.calls_to("create_issue")) == 1


def test_changed_tickets_resume_after_the_cursor(fake_world: FakeWorld) -> None:
    """A scan resumed from its last cursor returns only what changed since."""
    helpdesk = FakeHelpdesk.build(fake_world)
    first = fake_world.add_ticket("one")
    pages = list(helpdesk.changed_tickets(None, since=datetime(2020, 1, 1, tzinfo=UTC).timestamp()))
    assert [t.ref.id for p in pages for t in p.items] == [first]
    helpdesk.add_internal_note(first, "touched")
    second = fake_world.add_ticket("two")
    again = list(helpdesk.changed_tickets(pages[-1].cursor, since=0.0))
    assert [t.ref.id for p in again for t in p.items] == [first, second]


def test_decisions_are_carried_out_on_the_fakes(tmp_path: Path) -> None:
    """A plugin author's world: a granted priority and public reply land once in the fakes, also on a rerun."""
    from cxbridge.models import Person
    from cxbridge.workflows.escalate import Escalation, EscalationRequest
    from cxbridge.workflows.policy import act_on_ticket, parse_action

    world = FakeWorld()
    policies = {
        "rules": [{"name": "all", "when": "true", "grant": {"priority_max": "Highest", "public_reply": True}}],
        "agents": {"sam@acme.example": {"team": "t1"}},
    }
    rt = fake_runtime(tmp_path, world, extra={"policies": policies})
    try:
        tid = world.add_ticket("Exports fail", requester_email="ada@acme.example")
        key = Escalation(rt).run(EscalationRequest(ticket_id=tid, note="Reproduced.")).issue_key
        sam = Person(email="sam@acme.example")
        for _ in range(2):
            act_on_ticket(rt, tid, parse_action("priority", "Highest"), sam, request_id="p")
            act_on_ticket(rt, tid, parse_action("public_reply"), sam, reply="Fixed.", request_id="r")
        assert world.issue(key).priority == "Highest"
        assert sum("Priority Highest granted" in body for _, body in world.issue(key).comments) == 1
        public = [c.body for c in world.tickets[tid].comments if c.public and "Fixed." in c.body]
        assert len(public) == 1
        assert [c.method for c in world.calls].count("set_priority") == 1
    finally:
        rt.close()
