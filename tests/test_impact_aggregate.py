"""Running aggregates of the customer impact (issue 16, item 5): after any sequence of changes, an issue's kept
aggregate equals the one recomputed from every link, and the block, fields and labels it renders equal those the
rollup over every link renders; a join at steady state reads no link."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cxbridge.handoff import Handoff
from cxbridge.models import Customer, Link, Ref
from cxbridge.runtime import Runtime
from cxbridge.testing import FAKE_CRM, FAKE_HELPDESK, FakeWorld, fake_runtime
from cxbridge.workflows import impact
from cxbridge.workflows.escalate import Escalation, EscalationRequest

EMAILS = (
    "ada@acme.example",
    "bob@acme.example",
    "grace@globex.example",
    "ivy@initech.example",
    "eve@euro.example",
    "nobody@unknown.example",  # no CRM contact: a ticket without a company
)
OPENED = tuple(datetime(2026, 11, day, 9, 0, tzinfo=UTC) for day in (3, 1, 2, 1))  # ties on purpose
STATUSES = ("open", "pending", "solved", "closed", "hold")
LIMIT = 2  # [impact] tickets_per_customer: small, so the shown lists are cut


def _world() -> FakeWorld:
    world = FakeWorld()
    world.add_customer("ada@acme.example", company="Acme", tier="strategic", arr=480000, renewal_date="2027-01-31")
    world.add_customer("bob@acme.example", company="Acme")
    world.add_customer("grace@globex.example", company="Globex", tier="enterprise", arr=150000)
    world.add_customer("ivy@initech.example", company="Initech", tier="growth")
    world.add_customer("eve@euro.example", company="Euro", tier="growth", arr=90000, currency="EUR")
    return world


def _runtime(where: Path, world: FakeWorld) -> Runtime:
    extra = {"impact": {"tickets_per_customer": LIMIT, "top_customers": 2}}
    return fake_runtime(where, world, extra=extra)


def _issues(rt: Runtime, world: FakeWorld) -> list[Ref]:
    return [Ref("fake-tracker", "issue", i.id) for i in world.issues.values()]


def check(rt: Runtime, world: FakeWorld) -> int:
    """Every issue: a kept aggregate equals the recomputation, and what it renders equals the full rollup's.
    Returns how many issues kept an aggregate."""
    kept_count = 0
    for issue in {link.issue for link in rt.store.all_links()} | set(_issues(rt, world)):
        links = rt.store.links_for_issue(issue)
        full = impact.aggregate(links, impact.ticket_snapshots(rt, links), limit=LIMIT)
        kept = rt.store.get_aggregate(issue)
        if kept.data is not None:
            kept_count += 1
            assert kept.data == full, issue
        assert impact.desired(rt, impact.issue_rollup(rt, issue)) == impact.desired(rt, impact.load_rollup(rt, links))
    return kept_count


OPS = st.one_of(
    st.tuples(st.just("ticket"), st.integers(0, len(EMAILS) - 1), st.integers(0, len(OPENED) - 1)),
    st.tuples(st.just("create"), st.integers(0, 20)),
    st.tuples(st.just("join"), st.integers(0, 20), st.integers(0, 5)),
    st.tuples(st.just("unlink"), st.integers(0, 20), st.integers(0, 5)),
    st.tuples(st.just("handover"), st.integers(0, 5), st.integers(0, 5)),
    st.tuples(st.just("status"), st.integers(0, 20), st.sampled_from(STATUSES), st.booleans()),
    st.tuples(
        st.just("company"),
        st.integers(0, 3),
        st.sampled_from((None, 1000, 480000, 990000)),
        st.sampled_from(("strategic", "growth", None)),
    ),
    st.tuples(st.just("refresh"), st.integers(0, 5)),
)


class Scenario:
    """A fake world, a runtime on it and the operations a sequence draws, each done as cxbridge does it."""

    def __init__(self, where: Path) -> None:
        self.world = _world()
        self.rt = _runtime(where, self.world)
        self.tickets: list[str] = []

    def ticket(self, n: int) -> str | None:
        return self.tickets[n % len(self.tickets)] if self.tickets else None

    def key(self, n: int) -> str | None:
        keys = sorted(self.world.issues.values(), key=lambda i: int(i.id))
        return keys[n % len(keys)].key if keys else None

    def apply(self, op: tuple[Any, ...]) -> None:
        rt, world = self.rt, self.world
        name = op[0]
        if name == "ticket":
            tid = world.add_ticket(f"bug {len(self.tickets)}", requester_email=EMAILS[op[1]])
            world.tickets[tid].created_at = OPENED[op[2]]
            self.tickets.append(tid)
        elif name == "create" and (tid := self.ticket(op[1])):
            Escalation(rt).run(EscalationRequest(ticket_id=tid))
        elif name == "join" and (tid := self.ticket(op[1])) and (key := self.key(op[2])):
            Escalation(rt).run(EscalationRequest(ticket_id=tid, link_key=key))  # a replay when linked already
        elif name == "unlink" and (tid := self.ticket(op[1])) and (key := self.key(op[2])):
            ref = Ref(FAKE_HELPDESK, "ticket", tid)
            if any(link.issue_key == key for link in rt.store.links_for_ticket(ref)):
                impact.unlink(rt, ref, key)
        elif name == "handover" and (source := self.key(op[1])) and (target := self.key(op[2])) and source != target:
            # an issue closed as a duplicate hands its tickets over (duplicates.carry_over): join, then unlink
            for link in rt.store.links_for_issue_key(source):
                Escalation(rt).run(EscalationRequest(ticket_id=link.ticket.id, link_key=target))
                if link in rt.store.links_for_ticket(link.ticket):  # (a key typed on the ticket may have moved it)
                    impact.unlink(rt, link.ticket, source, actor=f"duplicate of {target}")
        elif name == "status" and (tid := self.ticket(op[1])):
            world.tickets[tid].status = op[2]
            # as a webhook (with the status) or a poll of cxbridge sync (read from the helpdesk) delivers it
            impact.ticket_state_changed(rt, Ref(FAKE_HELPDESK, "ticket", tid), op[2] if op[3] else None)
        elif name == "company":
            company_id = sorted(world.companies)[op[1] % len(world.companies)]
            world.change_company(company_id, arr=op[2], tier=op[3])
            impact.customer_changed(rt, Ref(FAKE_CRM, "company", company_id))
        elif name == "refresh" and (key := self.key(op[1])):
            impact.refresh_customers(rt, rt.store.links_for_issue_key(key))  # cxbridge impact --refresh


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    s = Scenario(tmp_path)
    yield s
    s.rt.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=5, max_size=30))
def test_random_changes_leave_every_aggregate_equal_to_the_recomputation(ops: list[tuple[Any, ...]]) -> None:
    """Joins, replays, unlinks, duplicates handing tickets over, tickets solved and reopened (webhook or poll),
    companies' ARR and tier changed, impact --refresh, in any order: after each, every kept aggregate equals the
    recomputation from every link, and the issue's block, fields and labels equal the full rollup's."""
    with tempfile.TemporaryDirectory() as where:
        scenario = Scenario(Path(where))
        try:
            for n in range(4):  # a few tickets and one issue to start from
                scenario.apply(("ticket", n, n))
            scenario.apply(("create", 0))
            for op in ops:
                scenario.apply(op)
                check(scenario.rt, scenario.world)
        finally:
            scenario.rt.close()


def test_a_join_at_steady_state_folds_without_reading_any_link(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once an issue keeps its aggregate, a join folds its link in and refreshes the impact from the aggregate and
    the customer snapshots: no store read of the issue's links; the issue shows what the recomputation shows."""
    for n in range(8):
        scenario.apply(("ticket", n % 5, n % 4))
    scenario.apply(("create", 0))
    for n in (1, 2):
        scenario.apply(("join", n, 0))  # the first join recomputes (no aggregate yet) and keeps it
    store = scenario.rt.store
    reads: list[str] = []
    for name in ("links_for_issue", "links_for_issue_key", "all_links"):
        real = getattr(store, name)
        monkeypatch.setattr(store, name, lambda *a, _n=name, _r=real: reads.append(_n) or _r(*a))
    for n in range(3, 8):
        scenario.apply(("join", n, 0))
    assert reads == []
    monkeypatch.undo()
    [issue] = scenario.world.issues.values()
    ref = Ref("fake-tracker", "issue", issue.id)
    assert store.get_aggregate(ref).data is not None
    assert check(scenario.rt, scenario.world) == 1
    want = impact.desired(scenario.rt, impact.load_rollup(scenario.rt, store.links_for_issue(ref)))
    assert want.block.markdown.strip() in issue.description
    assert "8 tickets" in want.block.markdown


def test_a_changed_ticket_or_an_unlink_drops_the_aggregate_and_the_next_refresh_keeps_it_again(
    scenario: Scenario,
) -> None:
    """A linked ticket solved, or a ticket unlinked, drops the issue's aggregate (rare changes are recomputed);
    the refresh that follows recomputes and keeps it, equal to the recomputation."""
    for n in range(4):
        scenario.apply(("ticket", n, n))
    scenario.apply(("create", 0))
    scenario.apply(("join", 1, 0))
    scenario.apply(("join", 2, 0))
    [issue] = scenario.world.issues.values()
    ref = Ref("fake-tracker", "issue", issue.id)
    store = scenario.rt.store
    seq = store.get_aggregate(ref).seq
    scenario.world.tickets[scenario.tickets[1]].status = "solved"
    impact.ticket_state_changed(scenario.rt, Ref(FAKE_HELPDESK, "ticket", scenario.tickets[1]), "solved")
    after = store.get_aggregate(ref)
    assert after.seq > seq
    assert after.data is not None  # dropped, then recomputed by the refresh of the issue's impact
    assert [t["status"] for g in after.data["groups"].values() for t in g["shown"]].count("solved") == 1
    impact.unlink(scenario.rt, Ref(FAKE_HELPDESK, "ticket", scenario.tickets[2]), issue.key)
    assert store.get_aggregate(ref).data is not None
    assert store.get_aggregate(ref).data["tickets"] == 2  # type: ignore[index]
    assert check(scenario.rt, scenario.world) == 1


# -- the pure functions: ties, tickets of unknown opening time, tickets without snapshots ----------------------

ISSUE = Ref("jira", "issue", "1")
COMPANIES = [Ref("hubspot", "company", str(n)) for n in range(1, 5)]
CUSTOMERS = {
    str(COMPANIES[0]): Customer(COMPANIES[0], None, name="Acme", tier="strategic", arr=Decimal(500), currency="USD"),
    str(COMPANIES[1]): Customer(COMPANIES[1], None, name="Globex", tier="growth", arr=Decimal(500), currency="USD"),
    str(COMPANIES[2]): Customer(COMPANIES[2], None, name="Euro", arr=Decimal(70), currency="EUR"),
}  # the fourth company has no snapshot

TICKET_FACTS = st.one_of(
    st.none(),
    st.builds(
        lambda status, day: (status, day),
        st.sampled_from((None, "open", "solved", "closed", "pending")),
        st.sampled_from((None, 1, 2, 2, 3)),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 3), TICKET_FACTS), max_size=40), st.integers(1, 4), st.integers(1, 4))
def test_the_aggregate_renders_what_the_rollup_over_every_link_renders(
    tickets: list[tuple[int, tuple[str | None, int | None] | None]], limit: int, top: int
) -> None:
    """Whatever the links (companies with or without a snapshot, tickets without a company or without facts, ties
    and unknown opening times for the oldest open ticket), the rollup read from the aggregate renders the same
    template context and field values as ``compute`` over every link."""
    links, facts = [], {}
    for n, (company, known) in enumerate(tickets):
        ref = Ref("zendesk", "ticket", str(n))
        links.append(Link(ref, ISSUE, "ENG-1", customer=COMPANIES[company] if company >= 0 else None))
        if known is not None:
            status, day = known
            opened = datetime(2026, 11, day, tzinfo=UTC) if day else None
            facts[str(ref)] = impact.TicketFacts(
                ref, url=f"https://z/{n}", subject=f"t{n}", status=status, opened=opened
            )
    full = impact.compute(links, CUSTOMERS, facts)
    kept = impact.from_aggregate(impact.aggregate(links, facts, limit=limit), CUSTOMERS)
    for rollup in (full, kept):
        assert rollup.ticket_count == len(links)
    assert impact.template_context(kept, top_customers=top, tickets_per_customer=limit) == impact.template_context(
        full, top_customers=top, tickets_per_customer=limit
    )
    assert impact.values(kept) == impact.values(full)
    assert kept.tiers == full.tiers
    block = Handoff().render(impact.TEMPLATE, {"impact": impact.template_context(kept, tickets_per_customer=limit)})
    assert block == Handoff().render(
        impact.TEMPLATE, {"impact": impact.template_context(full, tickets_per_customer=limit)}
    )


# -- two workers joining one issue at once -------------------------------------------------------------------------

WORKER_JOINS = 25


def _join_many(location: str, worker: int) -> None:
    """A worker process: joins its tickets to one issue, each folded into the aggregate as an escalation does."""
    from cxbridge.store import open_store

    with open_store(location) as store:
        for n in range(WORKER_JOINS):
            ticket = Ref("zendesk", "ticket", f"{worker}-{n}")
            link = Link(ticket, ISSUE, "ENG-1", customer=COMPANIES[n % 3] if n % 4 else None)
            known = impact.TicketFacts(ticket, url=f"https://z/{ticket.id}", status="open", opened=OPENED[n % 4])

            def fold(data: dict[str, Any], link: Link = link, known: impact.TicketFacts = known) -> dict[str, Any]:
                return impact.fold_link(data, link, known)

            assert store.add_link(link, fold=fold)


def test_two_worker_processes_joining_one_issue_keep_the_aggregate_exact(store_location: str) -> None:
    """Two processes join 25 tickets each to one issue at once (SQLite file, PostgreSQL schema): every fold is a
    read-modify-write in the link's transaction, so the aggregate equals the recomputation from the 51 links."""
    import multiprocessing

    from cxbridge.store import open_store

    with open_store(store_location) as store:
        first = Link(Ref("zendesk", "ticket", "0"), ISSUE, "ENG-1", customer=COMPANIES[0])
        store.add_link(first)
        kept = store.get_aggregate(ISSUE)
        assert store.put_aggregate(ISSUE, impact.aggregate([first], {}, limit=LIMIT), seq=kept.seq)
        fork = multiprocessing.get_context("fork")  # each child opens its own store
        workers = [fork.Process(target=_join_many, args=(store_location, w)) for w in (1, 2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
            assert worker.exitcode == 0
        links = store.links_for_issue(ISSUE)
        assert len(links) == 1 + 2 * WORKER_JOINS
        facts = {
            str(lk.ticket): impact.TicketFacts(
                lk.ticket,
                url=f"https://z/{lk.ticket.id}",
                status="open",
                opened=OPENED[int(lk.ticket.id.split("-")[1]) % 4],
            )
            for lk in links[1:]
        }
        kept_after = store.get_aggregate(ISSUE)
        assert kept_after.seq == kept.seq + 2 * WORKER_JOINS
        assert kept_after.data == impact.aggregate(links, facts, limit=LIMIT)
