"""Contract suites for connectors: ``ConnectorContract`` and the role suites ``HelpdeskContract``, ``CRMContract``,
``TrackerContract`` (what ``cxbridge/connectors.py`` promises the core, checked on a live connector).

A plugin's tests subclass one or more role suites (name the class ``Test...``), implement ``make_connector()``
and the seeding hooks the suite names, and set up whatever backs the connector (an emulator, the fakes) in an
autouse fixture of their own, which runs before the suite's ``connector`` fixture::

    class TestAcmeHelpdesk(HelpdeskContract):
        @pytest.fixture(autouse=True)
        def emulator(self, sandbox_runtimes: SandboxRuntimes) -> Iterator[None]:
            with mock_vendors(["acme"]) as vendors:
                self.rt = sandbox_runtimes(vendors)
                yield

        def make_connector(self) -> Connector:
            return self.rt.connector("acme")

        def seed_ticket(self, connector, *, subject, description, requester_email, requester_name) -> str:
            ...  # create the ticket in the backing system, return its id

Optional role methods are checked only when the class ``supports()`` them; a property that needs a hook the
subclass did not implement (``seed_issue_done``...) is skipped, saying which hook.
"""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import pytest

from ...connectors import (
    CRM,
    ROLES,
    ChangedCompany,
    ConfigKey,
    Connector,
    Helpdesk,
    IssueSpec,
    ManagedBlock,
    Page,
    TicketLink,
    Tracker,
)
from ...errors import NotFound
from ...models import Customer, Event, Ref
from ...signals import DONE, Triggers, VersionReleased

MAX_PAGES = 1000
"""A scan longer than this is a pagination loop."""


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _role_methods(cls: type[Connector]) -> set[str]:
    """The methods the base classes of the connector's roles declare (abstract and optional)."""
    names: set[str] = set()
    for base in (Connector, Helpdesk, CRM, Tracker):
        if issubclass(cls, base):
            names |= {n for n, v in vars(base).items() if inspect.isfunction(v) and not n.startswith("_")}
    return names


def check_paging(scan: Callable[[dict[str, Any] | None], Iterable[Page]], system: str) -> None:
    """A polling scan's pages carry a dict cursor and records of ``system``, end with ``done`` (only the last),
    and a scan resumed from the last cursor ends with ``done`` too."""
    pages: list[Page] = []
    for page in scan(None):
        pages.append(page)
        assert isinstance(page.cursor, dict)
        assert all(record.ref.system == system for record in page.items)
        if page.done or len(pages) >= MAX_PAGES:
            break
    assert pages
    assert pages[-1].done
    assert not any(p.done for p in pages[:-1])
    resumed = list(scan(pages[-1].cursor or None))
    assert resumed
    assert resumed[-1].done


class ConnectorContract:
    """What every connector class declares, and how it reads events. Implement ``make_connector()``; override
    ``sample_events()`` with a few of the vendor's own events that carry signals."""

    def make_connector(self) -> Connector:
        """The connector under test (a configured instance)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_connector()")

    def sample_events(self, connector: Connector) -> list[Event]:
        """Events of this system that mean something (each should give at least one signal)."""
        return []

    @pytest.fixture
    def connector(self) -> Any:
        """The connector under test, from ``make_connector()``."""
        return self.make_connector()

    def test_system_is_a_key(self, connector: Connector) -> None:
        """``system`` is a non-empty key without whitespace."""
        system = type(connector).system
        assert isinstance(system, str)
        assert system
        assert system == system.strip()
        assert " " not in system

    def test_roles_are_known(self, connector: Connector) -> None:
        """``roles`` is non-empty, among ``ROLES``, and matches the role classes the connector subclasses."""
        cls = type(connector)
        assert cls.roles
        assert set(cls.roles) <= set(ROLES)
        for role, base in (("helpdesk", Helpdesk), ("crm", CRM), ("tracker", Tracker)):
            assert (role in cls.roles) == issubclass(cls, base), role

    def test_primary_roles_are_roles(self, connector: Connector) -> None:
        """``primary_roles`` is a subset of ``roles``."""
        cls = type(connector)
        assert set(cls.primary_roles) <= set(cls.roles)

    def test_config_keys_are_config_keys(self, connector: Connector) -> None:
        """Every value of ``config_keys`` is a ``ConfigKey`` under a string name."""
        for name, key in type(connector).config_keys.items():
            assert isinstance(name, str)
            assert name
            assert isinstance(key, ConfigKey), name

    def test_no_abstract_method_is_left(self, connector: Connector) -> None:
        """Every abstract method of the roles is implemented."""
        cls = type(connector)
        assert not inspect.isabstract(cls), sorted(getattr(cls, "__abstractmethods__", ()))

    def test_supported_methods_are_callable(self, connector: Connector) -> None:
        """Every role method the class claims to ``supports()`` is callable on an instance."""
        cls = type(connector)
        for name in sorted(_role_methods(cls)):
            if cls.supports(name):
                assert callable(getattr(connector, name)), name

    def test_interpret_ignores_events_of_another_kind(self, connector: Connector) -> None:
        """``interpret`` never raises on an event it does not know, from elsewhere or from its own system."""
        for system in ("elsewhere", connector.name):
            event = Event(
                id=_unique("evt-"),
                system=system,
                kind="cxbridge.contract.unknown",
                subject=Ref(system, "thing", "1"),
                payload={"unexpected": [1, None, {"x": "y"}]},
            )
            signals = connector.interpret(event, Triggers(escalation_tag="escalated_to_engineering"))
            assert isinstance(signals, list)

    def test_signals_name_the_configured_system(self, connector: Connector) -> None:
        """Every reference in the signals of the sample events names the configured system (``connector.name``)."""
        events = self.sample_events(connector)
        if not events:
            pytest.skip("no sample_events() given")
        for event in events:
            signals = connector.interpret(event, Triggers(escalation_tag="escalated_to_engineering"))
            assert signals, f"{event.kind} gave no signal"
            for signal in signals:
                for f in dataclasses.fields(signal):
                    value = getattr(signal, f.name)
                    if isinstance(value, Ref):
                        assert value.system == connector.name, (signal.kind, f.name, value)
                if isinstance(signal, VersionReleased):
                    assert signal.tracker == connector.name


class HelpdeskContract(ConnectorContract):
    """The Helpdesk role. Implement ``seed_ticket``; set ``statuses`` to two statuses ``set_status`` accepts
    (when supported) and ``unknown_ticket_id`` to an id the system does not hold."""

    escalation_tag: ClassVar[str] = "escalated_to_engineering"
    issue_key: ClassVar[str] = "ENG-42"
    statuses: ClassVar[tuple[str, str]] = ("pending", "open")
    unknown_ticket_id: ClassVar[str] = "987654321"

    def seed_ticket(
        self, connector: Helpdesk, *, subject: str, description: str, requester_email: str, requester_name: str
    ) -> str:
        """Create a ticket in the backing system from that requester; return its id."""
        raise NotImplementedError(f"{type(self).__name__} must implement seed_ticket()")

    @pytest.fixture
    def ticket_id(self, connector: Helpdesk) -> str:
        """A new ticket of the connector's system."""
        return self.seed_ticket(
            connector,
            subject="Exports fail with a 500",
            description="Every export of the Q2 report ends with an error page.",
            requester_email="ada@acme.example",
            requester_name="Ada Lovelace",
        )

    def test_get_ticket_has_the_requester(self, connector: Helpdesk, ticket_id: str) -> None:
        """``get_ticket`` returns the ticket (its ref, URL and subject) with its requester's email."""
        ticket = connector.get_ticket(ticket_id)
        assert ticket.ref == connector.ticket_ref(ticket_id)
        assert ticket.ref.system == connector.name
        assert ticket.url == connector.ticket_url(ticket_id)
        assert ticket.subject == "Exports fail with a 500"
        assert ticket.requester is not None
        assert ticket.requester.email == "ada@acme.example"

    def test_get_ticket_of_an_unknown_id_is_not_found(self, connector: Helpdesk) -> None:
        """A ticket the system does not hold raises ``NotFound`` (the impact refresh relies on it)."""
        with pytest.raises(NotFound):
            connector.get_ticket(self.unknown_ticket_id)

    def test_internal_note_is_a_non_public_comment(self, connector: Helpdesk, ticket_id: str) -> None:
        """``add_internal_note`` adds a comment that ``list_comments`` returns as not public."""
        connector.add_internal_note(ticket_id, "Reproduced on staging.")
        notes = [c for c in connector.list_comments(ticket_id) if "Reproduced on staging." in c.body]
        assert len(notes) == 1
        assert notes[0].public is False

    def test_comments_come_oldest_first(self, connector: Helpdesk, ticket_id: str) -> None:
        """``list_comments`` returns the comments oldest first."""
        connector.add_internal_note(ticket_id, "first note")
        connector.add_internal_note(ticket_id, "second note")
        bodies = [c.body for c in connector.list_comments(ticket_id)]
        first = next(i for i, b in enumerate(bodies) if "first note" in b)
        second = next(i for i, b in enumerate(bodies) if "second note" in b)
        assert first < second
        times = [c.created_at for c in connector.list_comments(ticket_id) if c.created_at is not None]
        assert times == sorted(times)

    def test_record_escalation_writes_once(self, connector: Helpdesk, ticket_id: str) -> None:
        """``record_escalation`` writes the note, the tag and the key, and returns False (writing nothing) the
        second time, once the ticket carries them."""
        ticket = connector.get_ticket(ticket_id)
        note = "Escalated to ENG-42 by the contract suite."
        kwargs: dict[str, Any] = {"note": note, "tag": self.escalation_tag, "issue_key": self.issue_key}
        assert connector.record_escalation(ticket, issue_url="https://t.example/ENG-42", first_attempt=True, **kwargs)
        after = connector.get_ticket(ticket_id)
        assert connector.wants_escalation(after, Triggers(escalation_tag=self.escalation_tag))
        if connector.supports("requested_issue_key"):
            assert connector.requested_issue_key(after) == self.issue_key
        assert not connector.record_escalation(after, issue_url="https://t.example/ENG-42", **kwargs)
        written = [c for c in connector.list_comments(ticket_id) if note in c.body]
        assert len(written) == 1
        assert written[0].public is False

    def test_a_fresh_ticket_asks_for_nothing(self, connector: Helpdesk, ticket_id: str) -> None:
        """A new ticket neither wants an escalation nor names an issue key."""
        ticket = connector.get_ticket(ticket_id)
        assert not connector.wants_escalation(ticket, Triggers(escalation_tag=self.escalation_tag))
        assert connector.requested_issue_key(ticket) is None

    def test_set_status_is_false_when_already_there(self, connector: Helpdesk, ticket_id: str) -> None:
        """``set_status`` moves the ticket and returns False (writing nothing) when it is there already."""
        if not connector.supports("set_status"):
            pytest.skip("set_status is not supported")
        first, second = self.statuses
        connector.set_status(ticket_id, first)
        assert connector.set_status(ticket_id, first) is False
        assert connector.set_status(ticket_id, second) is True
        assert connector.get_ticket(ticket_id).status == second

    def test_note_with_status_is_one_update(self, connector: Helpdesk, ticket_id: str) -> None:
        """``add_note_with_status`` leaves an internal note and the ticket in that status."""
        if not connector.supports("add_note_with_status"):
            pytest.skip("add_note_with_status is not supported")
        connector.add_note_with_status(ticket_id, "Fixed in the next release.", self.statuses[0])
        assert connector.get_ticket(ticket_id).status == self.statuses[0]
        notes = [c for c in connector.list_comments(ticket_id) if "Fixed in the next release." in c.body]
        assert len(notes) == 1
        assert notes[0].public is False

    def test_public_reply_is_public_and_found_by_its_marker(self, connector: Helpdesk, ticket_id: str) -> None:
        """``add_public_reply`` adds one public comment without its marker in the text; ``has_public_reply``
        finds it by the marker (and not by another)."""
        if not connector.supports("add_public_reply"):
            pytest.skip("add_public_reply is not supported")
        connector.add_public_reply(ticket_id, "The fix is live.", marker="cxb-c0ffee000001")
        replies = [c for c in connector.list_comments(ticket_id) if "The fix is live." in c.body]
        assert [c.public for c in replies] == [True]
        assert "cxb-c0ffee000001" not in replies[0].body
        assert connector.has_public_reply(ticket_id, "cxb-c0ffee000001") is True
        assert connector.has_public_reply(ticket_id, "cxb-c0ffee000002") is False

    def test_note_removing_tag_keeps_the_other_tags(self, connector: Helpdesk, ticket_id: str) -> None:
        """``add_note_removing_tag`` writes one internal note and removes that tag only."""
        if not connector.supports("add_note_removing_tag"):
            pytest.skip("add_note_removing_tag is not supported")
        ticket = connector.get_ticket(ticket_id)
        connector.record_escalation(
            ticket, note="tagged", tag=self.escalation_tag, issue_key=self.issue_key, issue_url="https://t.example/1"
        )
        before = set(connector.get_ticket(ticket_id).tags)
        assert self.escalation_tag in before
        connector.add_note_removing_tag(ticket_id, "Decision taken.", self.escalation_tag)
        assert set(connector.get_ticket(ticket_id).tags) == before - {self.escalation_tag}
        notes = [c for c in connector.list_comments(ticket_id) if "Decision taken." in c.body]
        assert [c.public for c in notes] == [False]

    def test_changed_tickets_pages_end_and_carry_a_cursor(self, connector: Helpdesk, ticket_id: str) -> None:
        """``changed_tickets`` pages hold tickets of this system, carry a dict cursor, and end with ``done``."""
        if not connector.supports("changed_tickets"):
            pytest.skip("changed_tickets is not supported")
        check_paging(lambda cursor: connector.changed_tickets(cursor, since=0.0), connector.name)


class CRMContract(ConnectorContract):
    """The CRM role. Implement ``seed_customer`` (a contact with a company)."""

    def seed_customer(self, connector: CRM, *, email: str, company: str) -> None:
        """Create a contact with that email, whose company is named ``company``, in the backing system."""
        raise NotImplementedError(f"{type(self).__name__} must implement seed_customer()")

    @pytest.fixture
    def customer(self, connector: CRM) -> Customer:
        """A seeded contact with its company, as ``find_customer`` returns it."""
        email = f"{_unique('grace')}@globex.example"
        self.seed_customer(connector, email=email, company="Globex Contract")
        return connector.find_customer(email)

    def test_an_unknown_email_is_an_unknown_customer(self, connector: CRM) -> None:
        """``find_customer`` for an email the CRM does not hold returns ``Customer.unknown()``."""
        found = connector.find_customer(f"{_unique('nobody')}@nowhere.example")
        assert found == Customer.unknown()

    def test_find_customer_returns_contact_and_company(self, connector: CRM, customer: Customer) -> None:
        """``find_customer`` returns a known customer with its contact and company, named by this system."""
        assert customer.known
        assert customer.contact_ref is not None
        assert customer.contact_ref.system == connector.name
        assert customer.company_ref is not None
        assert customer.company_ref.system == connector.name
        assert customer.name == "Globex Contract"

    def test_a_note_is_found_by_its_marker(self, connector: CRM, customer: Customer) -> None:
        """``add_note`` then ``find_note(marker)`` finds that very note."""
        marker = _unique("cxb-")
        ref = connector.add_note(customer, "<p>Escalated to ENG-42.</p>", marker=marker)
        assert ref.system == connector.name
        assert connector.find_note(customer, marker) == ref

    def test_an_unknown_marker_finds_nothing(self, connector: CRM, customer: Customer) -> None:
        """``find_note`` for a marker no note carries returns None."""
        connector.add_note(customer, "<p>Another note.</p>", marker=_unique("cxb-"))
        assert connector.find_note(customer, _unique("cxb-")) is None

    def test_changed_companies_pages_end_and_carry_a_cursor(self, connector: CRM, customer: Customer) -> None:
        """``changed_companies`` pages hold ``ChangedCompany`` of this system, carry a dict cursor, end with
        ``done``; restricted to one company, they name only that company."""
        if not connector.supports("changed_companies"):
            pytest.skip("changed_companies is not supported")
        check_paging(lambda cursor: connector.changed_companies(cursor, since=0.0), connector.name)
        assert customer.company_ref is not None
        only = customer.company_ref.id
        found = [c for page in connector.changed_companies(None, since=0.0, company_ids=[only]) for c in page.items]
        assert found
        assert all(isinstance(c, ChangedCompany) and c.ref.id == only for c in found)

    def test_get_customer_reads_the_company(self, connector: CRM, customer: Customer) -> None:
        """``get_customer`` returns the company by reference, as ``find_customer`` saw it."""
        if not connector.supports("get_customer"):
            pytest.skip("get_customer is not supported")
        assert customer.company_ref is not None
        company = connector.get_customer(customer.company_ref)
        assert company.known
        assert company.company_ref == customer.company_ref
        assert company.name == customer.name


class TrackerContract(ConnectorContract):
    """The Tracker role. Set ``project`` (and ``issue_type``); implement ``seed_issue_done`` (move an issue to a
    status of the done category) and ``seed_fix_version`` (put an issue into a version, return its id) to check
    ``reopen``, ``open_issues`` and ``issues_with_fix_version``; ``count_ticket_links`` to count links as the
    backing system holds them."""

    project: ClassVar[str] = "ENG"
    issue_type: ClassVar[str] = "Bug"
    unknown_issue_key: ClassVar[str] = "NOPE-987654"
    helpdesk_origin: ClassVar[str] = "https://help.example.com"

    def seed_issue_done(self, connector: Tracker, key: str) -> None:
        """Move the issue to a status of the done category in the backing system."""
        pytest.skip("seed_issue_done() is not implemented")

    def seed_fix_version(self, connector: Tracker, key: str) -> str:
        """Add the issue to a (new) fix version in the backing system; return the version's id."""
        pytest.skip("seed_fix_version() is not implemented")

    def count_ticket_links(self, connector: Tracker, key: str) -> int | None:
        """How many links to tickets the issue has in the backing system (None: cannot tell)."""
        return None

    def spec(self, label: str, description: str = "The export fails.") -> IssueSpec:
        """An issue to create, carrying ``label``."""
        return IssueSpec(
            project=self.project,
            issue_type=self.issue_type,
            summary="Exports fail with a 500",
            description=description,
            labels=[label],
        )

    def link(self, ticket_id: str = "4211", title: str = "Ticket 4211") -> TicketLink:
        """A link to a ticket of a helpdesk at ``helpdesk_origin``."""
        return TicketLink(
            ticket=Ref("helpdesk", "ticket", ticket_id),
            url=f"{self.helpdesk_origin}/tickets/{ticket_id}",
            title=title,
            origin=self.helpdesk_origin,
        )

    def test_created_issue_is_read_back(self, connector: Tracker) -> None:
        """``create_issue`` returns the issue, and ``get_issue`` reads it by key and by id."""
        created = connector.create_issue(self.spec(_unique("cxb-")))
        assert created.ref.system == connector.name
        assert created.key
        assert created.url == connector.issue_url(created.key)
        for key_or_id in (created.key, created.ref.id):
            read = connector.get_issue(key_or_id)
            assert (read.key, read.ref) == (created.key, created.ref)
            assert read.summary == "Exports fail with a 500"

    def test_an_unknown_issue_is_not_found(self, connector: Tracker) -> None:
        """``get_issue`` of a key the tracker does not hold raises ``NotFound``."""
        with pytest.raises(NotFound):
            connector.get_issue(self.unknown_issue_key)

    def test_search_by_label_finds_the_created_issue(self, connector: Tracker) -> None:
        """``search_by_label`` finds the issue created with that label, and only it."""
        label = _unique("cxb-")
        created = connector.create_issue(self.spec(label))
        found = connector.search_by_label(label)
        assert [i.key for i in found] == [created.key]
        assert connector.search_by_label(_unique("cxb-")) == []

    def test_linking_a_ticket_twice_leaves_one_link(self, connector: Tracker) -> None:
        """``link_ticket`` for the same ticket again updates the link (same id) instead of adding one."""
        issue = connector.create_issue(self.spec(_unique("cxb-")))
        first = connector.link_ticket(issue.key, self.link())
        second = connector.link_ticket(issue.key, self.link(title="Ticket 4211 (renamed)"))
        assert isinstance(first, str)
        assert first
        assert first == second
        other = connector.link_ticket(issue.key, self.link("4212"))
        assert other != first
        count = self.count_ticket_links(connector, issue.key)
        if count is not None:
            assert count == 2

    def test_unlink_removes_the_link_once(self, connector: Tracker) -> None:
        """``unlink_ticket`` removes the ticket's link (True), and finds none the second time (False)."""
        if not connector.supports("unlink_ticket"):
            pytest.skip("unlink_ticket is not supported")
        issue = connector.create_issue(self.spec(_unique("cxb-")))
        connector.link_ticket(issue.key, self.link())
        assert connector.unlink_ticket(issue.key, self.link()) is True
        assert connector.unlink_ticket(issue.key, self.link()) is False
        count = self.count_ticket_links(connector, issue.key)
        if count is not None:
            assert count == 0

    def test_add_comment_returns_an_id(self, connector: Tracker) -> None:
        """``add_comment`` returns the new comment's id, a different one for each comment."""
        issue = connector.create_issue(self.spec(_unique("cxb-")))
        first = connector.add_comment(issue.key, "Looking into it.")
        second = connector.add_comment(issue.key, "**Fixed** on main.")
        assert isinstance(first, str)
        assert first
        assert first != second

    def test_replace_block_is_idempotent(self, connector: Tracker) -> None:
        """``replace_block`` adds the block once: replacing it again with the same block changes nothing."""
        connector.want_fields(["description"])
        issue = connector.create_issue(self.spec(_unique("cxb-")))
        description = connector.get_issue(issue.key).description
        block = ManagedBlock(title="Customer impact", body="- 2 customers", end="Kept current by cxbridge.")
        once, changed = connector.replace_block(description, block)
        assert changed is True
        twice, changed_again = connector.replace_block(once, block)
        assert changed_again is False
        assert twice == once
        _, changed_body = connector.replace_block(once, ManagedBlock(block.title, "- 3 customers", block.end))
        assert changed_body is True

    def test_write_impact_round_trips(self, connector: Tracker) -> None:
        """``write_impact`` writes the description and labels: read back, the block is there and unchanged."""
        if not connector.supports("write_impact"):
            pytest.skip("write_impact is not supported")
        connector.want_fields(["description"])
        keep = _unique("cxb-")
        issue = connector.create_issue(self.spec(keep))
        block = ManagedBlock(title="Customer impact", body="- 1 customer", end="Kept current by cxbridge.")
        description, _ = connector.replace_block(connector.get_issue(issue.key).description, block)
        connector.write_impact(issue.key, fields={}, description=description, add_labels=["cxb-tier-enterprise"])
        read = connector.get_issue(issue.key)
        assert {keep, "cxb-tier-enterprise"} <= set(read.labels)
        assert connector.replace_block(read.description, block)[1] is False
        connector.write_impact(issue.key, fields={}, remove_labels=["cxb-tier-enterprise"])
        assert set(connector.get_issue(issue.key).labels) == {keep}

    def test_open_issues_leaves_out_done_ones(self, connector: Tracker) -> None:
        """``open_issues`` returns the issues among the refs that are not done, by ref."""
        if not connector.supports("open_issues"):
            pytest.skip("open_issues is not supported")
        open_one = connector.create_issue(self.spec(_unique("cxb-")))
        done_one = connector.create_issue(self.spec(_unique("cxb-")))
        self.seed_issue_done(connector, done_one.key)
        found = connector.open_issues([open_one.ref, done_one.ref])
        assert set(found) == {open_one.ref}
        assert found[open_one.ref].key == open_one.key

    def test_set_priority_is_false_when_already_there(self, connector: Tracker) -> None:
        """``set_priority`` sets the priority (read back) and returns False the second time."""
        if not connector.supports("set_priority"):
            pytest.skip("set_priority is not supported")
        issue = connector.create_issue(self.spec(_unique("cxb-")))
        assert connector.set_priority(issue.key, "Highest") is True
        assert connector.set_priority(issue.key, "Highest") is False
        assert connector.get_issue(issue.key).priority == "Highest"

    def test_find_comment_finds_a_marker(self, connector: Tracker) -> None:
        """``find_comment`` returns the id of the comment holding a marker, None for another marker."""
        if not connector.supports("find_comment"):
            pytest.skip("find_comment is not supported")
        issue = connector.create_issue(self.spec(_unique("cxb-")))
        connector.add_comment(issue.key, "Unrelated.")
        cid = connector.add_comment(issue.key, "Priority High granted.\n\n(cxbridge cxb-c0ffee000003)")
        assert connector.find_comment(issue.key, "cxb-c0ffee000003") == cid
        assert connector.find_comment(issue.key, "cxb-c0ffee000004") is None

    def test_reopen_moves_a_done_issue_out_of_done(self, connector: Tracker) -> None:
        """``reopen`` moves a done issue to a status outside the done category and names it."""
        if not connector.supports("reopen"):
            pytest.skip("reopen is not supported")
        issue = connector.create_issue(self.spec(_unique("cxb-")))
        self.seed_issue_done(connector, issue.key)
        assert connector.get_issue(issue.key).status_category == DONE
        status = connector.reopen(issue.key)
        read = connector.get_issue(issue.key)
        assert read.status_category != DONE
        assert read.status == status

    def test_issues_with_fix_version(self, connector: Tracker) -> None:
        """``issues_with_fix_version`` lists the issues in the version, and no other."""
        if not connector.supports("issues_with_fix_version"):
            pytest.skip("issues_with_fix_version is not supported")
        fixed = connector.create_issue(self.spec(_unique("cxb-")))
        connector.create_issue(self.spec(_unique("cxb-")))
        version = self.seed_fix_version(connector, fixed.key)
        assert [i.key for i in connector.issues_with_fix_version(version)] == [fixed.key]

    def test_changed_issues_pages_end_and_carry_a_cursor(self, connector: Tracker) -> None:
        """``changed_issues`` pages hold issues of this system, carry a dict cursor, and end with ``done``."""
        if not connector.supports("changed_issues"):
            pytest.skip("changed_issues is not supported")
        connector.create_issue(self.spec(_unique("cxb-")))
        check_paging(lambda cursor: connector.changed_issues(cursor, since=0.0), connector.name)


__all__ = ["CRMContract", "ConnectorContract", "HelpdeskContract", "TrackerContract"]
