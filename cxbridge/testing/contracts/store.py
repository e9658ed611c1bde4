"""The store contract suite: ``StoreContract``, what every ``Store`` backend promises the core
(``cxbridge/store/base.py``), checked on a live store.
SQLite and PostgreSQL run it unchanged (``tests/test_store_contract.py``).

A backend's tests subclass it (name the class ``Test...``) and give the ``location`` fixture: a fresh, empty store
location (a file path, a database URL) for each test. ``open`` opens a location with the suite's virtual clock
(``open_store`` by default); the ``store`` fixture is one open store, closed after the test::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def location(self, tmp_path: Path) -> str:
            return f"mystore://{tmp_path}/db"
"""

# The suite's tests state properties in their docstrings; their bodies are the checks.

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from ...errors import EffectInFlight
from ...models import Link, Ref
from ...secrets import Secret
from ...store import (
    Aggregate,
    AlreadyReplayed,
    AuditRow,
    FollowUp,
    Intent,
    IntentStateError,
    NotFoundInStore,
    Store,
    StoreError,
    open_store,
)
from ...workflows.once import write_once

T0 = 1_750_000_000.0
"""The virtual clock's start (epoch seconds)."""

TICKET = Ref("helpdesk", "ticket", "4211")
TICKET2 = Ref("helpdesk", "ticket", "4212")
ISSUE = Ref("tracker", "issue", "10042")
ISSUE2 = Ref("tracker", "issue", "10043")
COMPANY = Ref("crm", "company", "99")


class FakeClock:
    """A clock the test moves by hand (epoch seconds)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


class StoreContract:
    """Every property of the ``Store`` interface; subclass it and give the ``location`` fixture."""

    @pytest.fixture
    def location(self) -> Any:
        """A fresh, empty store location for one test (a subclass overrides it)."""
        raise NotImplementedError("a StoreContract subclass gives the location fixture")

    def open(self, location: Any, clock: FakeClock) -> Store:
        """Open the store at ``location`` on the suite's clock."""
        return open_store(location, clock=clock)

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def store(self, location: Any, clock: FakeClock) -> Iterator[Store]:
        s = self.open(location, clock)
        yield s
        s.close()

    # ---- hooks a backend's subclass may give (the batch properties use them) -------------------------

    @contextmanager
    def lined_up(self, store: Store, count: int) -> Iterator[None]:
        """Deliveries started inside reach the store together: a backend that groups commits holds its writes
        until ``count`` callers wait, then lets them go at once, so they share a batch. By default nothing is
        held (the callers still start together, from a barrier)."""
        yield

    def refuse_delivery(self, location: Any, delivery_id: str) -> None:
        """Make the store at ``location`` fail the insert of the delivery ``delivery_id`` (a database error inside
        its transaction). A subclass that can overrides it; by default the test that needs it is skipped."""
        pytest.skip(f"{type(self).__name__} gives no way to fail one delivery inside the store (refuse_delivery)")

    def refuse_commits(self, location: Any) -> None:
        """Make every later transaction that stores a delivery at ``location`` fail when it commits. A subclass that
        can overrides it; by default the test that needs it is skipped."""
        pytest.skip(f"{type(self).__name__} gives no way to make a commit fail (refuse_commits)")

    def deliver_together(
        self,
        store: Store,
        location: Any,
        deliveries: list[tuple[str, dict[str, Any]]],
        *,
        reaching: int | None = None,
    ) -> list[bool | BaseException]:
        """Call ``accept_delivery`` for each ``(delivery_id, payload)`` from its own thread, all at once (lined up,
        ``reaching`` of them expected to reach the store); each call's result or exception, in order. A caller
        that is told True checks at once, through a second store on the same location, that the delivery and its
        job are committed: the answer never runs ahead of the commit."""
        outcomes: list[bool | BaseException] = [False] * len(deliveries)
        barrier = threading.Barrier(len(deliveries))
        witness = self.open(location, FakeClock())

        def deliver(n: int, delivery_id: str, payload: dict[str, Any]) -> None:
            barrier.wait()
            try:
                got = store.accept_delivery(
                    "helpdesk", delivery_id, payload=payload, job_kind="event", job_payload={"id": delivery_id}
                )
            except Exception as exc:
                outcomes[n] = exc
                return
            outcomes[n] = got
            if got:
                row = witness.inbox_row("helpdesk", delivery_id)
                if row is None or row.job_id is None or witness.job(row.job_id) is None:
                    outcomes[n] = AssertionError(f"{delivery_id}: accepted before its row and job were committed")

        threads = [
            threading.Thread(target=deliver, args=(n, d, payload), name=f"deliver-{n}")
            for n, (d, payload) in enumerate(deliveries)
        ]
        try:
            with self.lined_up(store, len(deliveries) if reaching is None else reaching):
                for t in threads:
                    t.start()
            for t in threads:
                t.join(60)
        finally:
            witness.close()
        return outcomes

    # ---- lifecycle ----------------------------------------------------------------------------------

    def test_a_closed_store_refuses_use(self, location: Any, clock: FakeClock) -> None:
        """After close() every call raises StoreError instead of reopening silently."""
        s = self.open(location, clock)
        s.close()
        with pytest.raises(StoreError, match="closed"):
            s.enqueue("x", {})

    def test_what_was_committed_survives_reopening(self, location: Any, clock: FakeClock) -> None:
        """Intents, links, jobs, snapshots and checkpoints committed before a stop are there after reopening."""
        with self.open(location, clock) as s:
            s.begin_intent("op-4", "k", business_key="bk", payload={"x": [1, 2]})
            s.mark_intent("op-4", "sending")
            s.add_link(Link(TICKET, ISSUE, "ENG-7"))
            job_id = s.enqueue("work", {"n": 1}, lock_key="e:1")
            s.put_snapshot("customer", "c:1", {"arr": "200.00"})
            s.set_checkpoint("helpdesk", "tickets", {"cursor": "abc"})
        with self.open(location, clock) as s:
            got = s.get_intent("op-4")
            assert got is not None
            assert (got.state, got.attempts, got.payload) == ("sending", 1, {"x": [1, 2]})
            assert [lk.issue for lk in s.links_for_ticket(TICKET)] == [ISSUE]
            job = s.job(job_id or 0)
            assert job is not None
            assert (job.kind, job.payload, job.state) == ("work", {"n": 1}, "ready")
            assert s.get_snapshot("customer", "c:1") == {"arr": "200.00"}
            assert s.get_checkpoint("helpdesk", "tickets") == {"cursor": "abc"}

    # ---- cross-process locks ------------------------------------------------------------------------

    def test_exclusive_has_one_holder_at_a_time(self, store: Store) -> None:
        """While one holder has a named lock a second is refused at once; another name is free; released after."""
        with store.exclusive("sync:helpdesk:tickets") as first:
            assert first is True
            with store.exclusive("sync:helpdesk:tickets") as second:
                assert second is False
            with store.exclusive("sync:tracker:issues") as other:
                assert other is True
        with store.exclusive("sync:helpdesk:tickets") as again:
            assert again is True

    def test_exclusive_excludes_another_thread(self, store: Store) -> None:
        """A thread cannot take a lock another thread holds (never a per-thread or re-entrant lock)."""
        got: list[bool] = []
        with store.exclusive("stream") as held:
            assert held

            def other() -> None:
                with store.exclusive("stream") as theirs:
                    got.append(theirs)

            thread = threading.Thread(target=other)
            thread.start()
            thread.join(30)
        assert got == [False]

    # ---- concurrency inside one process -------------------------------------------------------------

    @staticmethod
    def _exactly_one_of_sixteen_wins(store: Store, op: str, move: Callable[[], tuple[bool, Intent]]) -> None:
        """Sixteen threads run ``move`` at once: exactly one wins, and the intent ``op`` was sent once."""
        barrier = threading.Barrier(16)
        wins: list[bool] = []

        def race() -> None:
            barrier.wait()
            won, _ = move()
            wins.append(won)

        threads = [threading.Thread(target=race) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(wins) == [False] * 15 + [True]
        intent = store.get_intent(op)
        assert intent is not None
        assert (intent.state, intent.attempts) == ("sending", 1)

    def test_only_one_of_many_threads_wins_the_move_to_sending(self, store: Store) -> None:
        """Sixteen threads race to mark one pending intent sending: the store lets exactly one win."""
        store.begin_intent("op", "note", business_key="t:1", payload={})
        self._exactly_one_of_sixteen_wins(
            store, "op", lambda: store.transition_intent("op", "sending", expect="pending", owner="x")
        )

    def test_a_done_intent_never_moves_and_the_loser_is_told_so(self, store: Store) -> None:
        """A compare-and-set on a done intent loses and returns the done row, instead of raising."""
        store.begin_intent("op", "note", business_key="t:1", payload={})
        store.mark_intent("op", "done", result={"ref": "n1"})
        won, current = store.transition_intent("op", "sending", expect=("pending", "done"))
        assert not won
        assert current.state == "done"
        assert current.result == {"ref": "n1"}

    def test_a_loser_never_writes_while_the_winner_is_sending(self, store: Store) -> None:
        """While one thread's write is in flight, seven others racing for the same write write nothing."""
        sent: list[str] = []
        in_write = threading.Event()
        release = threading.Event()

        def write() -> dict[str, Any]:
            sent.append(threading.current_thread().name)
            in_write.set()
            release.wait(10)
            return {"ref": "n1"}

        outcomes: list[str] = []

        def run() -> None:
            try:
                outcomes.append(write_once(store, "op", "helpdesk.note", "t:1", write, find=lambda: None))
            except EffectInFlight:
                outcomes.append("in flight")

        winner = threading.Thread(target=run, name="winner")
        winner.start()
        assert in_write.wait(10)
        losers = [threading.Thread(target=run, name=f"loser-{i}") for i in range(7)]
        for t in losers:
            t.start()
        for t in losers:
            t.join()
        release.set()
        winner.join()
        assert sent == ["winner"]
        assert sorted(outcomes) == ["in flight"] * 7 + ["written"]
        assert write_once(store, "op", "helpdesk.note", "t:1", write) == "unchanged"

    def test_threads_claim_each_job_once_and_one_entity_at_a_time(self, store: Store) -> None:
        """Eight threads drain 80 jobs on 4 entities: each job is claimed once, and no two jobs of one entity are
        ever leased together."""
        ids = {store.enqueue("work", {"n": n}, lock_key=f"e:{n % 4}") or 0 for n in range(80)}
        claimed: list[int] = []
        running: dict[str, int] = {}
        overlaps: list[str] = []
        guard = threading.Lock()

        def drain(name: str) -> None:
            while True:
                job = store.claim(name, lease_seconds=600)
                if job is None:
                    if store.queue_depth()["ready"] == 0:
                        return
                    continue
                entity = f"e:{job.payload['n'] % 4}"
                with guard:
                    if running.get(entity):
                        overlaps.append(entity)
                    running[entity] = running.get(entity, 0) + 1
                    claimed.append(job.id)
                with guard:
                    running[entity] -= 1
                assert store.complete(job.id, job.attempt)

        threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert overlaps == []
        assert sorted(claimed) == sorted(ids)
        assert store.queue_depth() == {"ready": 0, "leased": 0, "done": 80, "dead": 0}

    def test_oldest_ready_at_is_the_longest_waiting_due_job(self, store: Store, clock: FakeClock) -> None:
        """The run_at of the due ready job that waited longest; a leased or a not-yet-due job does not count."""
        assert store.oldest_ready_at(clock.now) is None
        first = store.enqueue("work", {"n": 1})
        clock.advance(5)
        store.enqueue("work", {"n": 2})
        store.enqueue("work", {"n": 3}, run_at=clock.now + 60)
        assert store.oldest_ready_at(clock.now) == T0
        job = store.claim("w", lease_seconds=30)
        assert job is not None
        assert job.id == first
        assert store.oldest_ready_at(clock.now) == T0 + 5
        clock.advance(120)
        assert store.oldest_ready_at(clock.now) == T0 + 5
        assert store.oldest_ready_at(T0) is None

    # ---- the properties every backend shares (links, intents, inbox, queue, letters, audit...) ----------

    def test_links(self, store: Store, clock: FakeClock) -> None:
        """Links are unique per ticket and issue, found from either side or by key, and removable."""
        when = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
        first = Link(TICKET, ISSUE, "ENG-7", customer=COMPANY, linked_by="agent:5", linked_at=when, origin_event="e1")
        assert store.add_link(first) is True
        assert store.add_link(Link(TICKET, ISSUE, "ENG-7")) is False
        clock.advance(10)
        assert store.add_link(Link(TICKET2, ISSUE, "ENG-7")) is True
        clock.advance(10)
        assert store.add_link(Link(TICKET, ISSUE2, "ENG-8")) is True

        assert store.links_for_ticket(TICKET) == [first, Link(TICKET, ISSUE2, "ENG-8", linked_at=_at(clock.now))]
        assert [lk.ticket for lk in store.links_for_issue(ISSUE)] == [TICKET, TICKET2]
        assert [lk.ticket for lk in store.links_for_issue_key("ENG-7")] == [TICKET, TICKET2]
        assert store.links_for_issue_key("ENG-99") == []
        assert len(store.all_links()) == 3
        got = store.links_for_issue(ISSUE)[1]
        assert got.customer is None
        assert got.linked_at == _at(T0 + 10)
        assert got.linked_at is not None
        assert got.linked_at.tzinfo is not None

        assert store.remove_link(TICKET, ISSUE) is True
        assert store.remove_link(TICKET, ISSUE) is False
        assert [lk.ticket for lk in store.links_for_issue(ISSUE)] == [TICKET2]

    # ---- aggregates: kept beside the links, changed in the links' own transactions -------------------------

    @staticmethod
    def _append(ticket: Ref) -> Any:
        """A fold that appends the ticket to the aggregate's list (and counts how often it ran)."""

        def fold(data: dict[str, Any]) -> dict[str, Any] | None:
            return {**data, "tickets": [*data["tickets"], str(ticket)]}

        return fold

    def test_a_join_folds_into_the_aggregate_once_in_the_links_transaction(
        self, location: Any, clock: FakeClock
    ) -> None:
        """add_link(fold=) changes a kept aggregate with the new link (seq + 1); the same pair linked again changes
        nothing and does not run the fold; the folded aggregate survives reopening."""
        with self.open(location, clock) as store:
            none = store.get_aggregate(ISSUE)
            assert (none.seq, none.data) == (0, None)
            store.add_link(Link(TICKET, ISSUE, "ENG-7"))
            kept = store.get_aggregate(ISSUE)
            assert (kept.seq, kept.data) == (1, None)  # a link without a kept aggregate: nothing to fold
            assert store.put_aggregate(ISSUE, {"tickets": [str(TICKET)]}, seq=kept.seq) is True
            clock.advance(1)
            ran: list[str] = []

            def fold(data: dict[str, Any]) -> dict[str, Any] | None:
                ran.append("x")
                return {**data, "tickets": [*data["tickets"], str(TICKET2)]}

            assert store.add_link(Link(TICKET2, ISSUE, "ENG-7"), fold=fold) is True
            assert store.add_link(Link(TICKET2, ISSUE, "ENG-7"), fold=fold) is False
            assert ran == ["x"]
        with self.open(location, clock) as store:
            after = store.get_aggregate(ISSUE)
            assert (after.seq, after.data) == (2, {"tickets": [str(TICKET), str(TICKET2)]})

    def test_put_aggregate_is_compare_and_set_against_every_change(self, store: Store, clock: FakeClock) -> None:
        """put_aggregate writes only at the seq read: a link added (without a fold) or removed, or a linked ticket's
        snapshot saved with linked_ticket=, drops the aggregate and refuses a recomputation begun before it; a
        snapshot of a ticket not linked there, or saved without linked_ticket, leaves it."""
        store.add_link(Link(TICKET, ISSUE, "ENG-7"))
        store.add_link(Link(TICKET, ISSUE2, "ENG-8"))
        for change in (
            lambda: store.add_link(Link(TICKET2, ISSUE, "ENG-7")),
            lambda: store.remove_link(TICKET2, ISSUE),
            lambda: store.put_snapshot("ticket", str(TICKET), {"status": "solved"}, linked_ticket=TICKET),
        ):
            before = store.get_aggregate(ISSUE)
            assert store.put_aggregate(ISSUE, {"n": 1}, seq=before.seq) is True
            assert store.put_aggregate(ISSUE, {"n": 2}, seq=before.seq) is True  # no change between: same seq
            assert store.get_aggregate(ISSUE).data == {"n": 2}
            clock.advance(1)
            change()
            now = store.get_aggregate(ISSUE)
            assert now.seq > before.seq
            assert now.data is None
            assert store.put_aggregate(ISSUE, {"n": 3}, seq=before.seq) is False
            assert store.get_aggregate(ISSUE).data is None
        # the ticket's snapshot dropped its other issue's aggregate too; unrelated saves drop nothing
        assert store.get_aggregate(ISSUE2).data is None
        seq = store.get_aggregate(ISSUE2).seq
        assert store.put_aggregate(ISSUE2, {"n": 4}, seq=seq) is True
        store.put_snapshot("ticket", str(TICKET2), {"status": "open"}, linked_ticket=TICKET2)  # not linked to ISSUE2
        store.put_snapshot("ticket", str(TICKET), {"status": "open"})
        assert store.get_aggregate(ISSUE2) == Aggregate(ISSUE2, seq, {"n": 4})

    def test_a_fold_that_declines_or_a_link_out_of_order_drops_the_aggregate(
        self, store: Store, clock: FakeClock
    ) -> None:
        """A fold answering None drops the aggregate; so does a link stamped before the last one linked (it would not
        come last: the fold is not run)."""
        store.add_link(Link(TICKET, ISSUE, "ENG-7"))
        assert store.put_aggregate(ISSUE, {"tickets": []}, seq=store.get_aggregate(ISSUE).seq)
        assert store.add_link(Link(TICKET2, ISSUE, "ENG-7"), fold=lambda data: None) is True
        assert store.get_aggregate(ISSUE).data is None
        assert store.put_aggregate(ISSUE, {"tickets": []}, seq=store.get_aggregate(ISSUE).seq)
        early = Link(Ref("helpdesk", "ticket", "1"), ISSUE, "ENG-7", linked_at=_at(T0 - 3600))
        assert store.add_link(early, fold=self._append(early.ticket)) is True
        assert store.get_aggregate(ISSUE).data is None
        assert store.links_for_issue(ISSUE)[0].ticket == early.ticket

    def test_joins_to_one_issue_from_many_threads_fold_one_after_the_other(self, store: Store) -> None:
        """16 threads link 16 tickets to one issue at once (the clock standing still): every fold sees the one
        before it, and the aggregate lists the tickets in the issue's link order."""
        store.add_link(Link(TICKET, ISSUE, "ENG-7"))
        assert store.put_aggregate(ISSUE, {"tickets": [str(TICKET)]}, seq=store.get_aggregate(ISSUE).seq)
        tickets = [Ref("helpdesk", "ticket", str(5000 + n)) for n in range(16)]
        start = threading.Barrier(len(tickets))

        def join(ticket: Ref) -> None:
            start.wait()
            assert store.add_link(Link(ticket, ISSUE, "ENG-7"), fold=self._append(ticket)) is True

        threads = [threading.Thread(target=join, args=(t,)) for t in tickets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        kept = store.get_aggregate(ISSUE)
        assert kept.data is not None
        assert kept.data["tickets"] == [str(lk.ticket) for lk in store.links_for_issue(ISSUE)]
        assert sorted(kept.data["tickets"]) == sorted(map(str, [TICKET, *tickets]))

    def test_begin_intent_is_idempotent(self, store: Store, clock: FakeClock) -> None:
        """begin_intent inserts once; a second call returns the stored row untouched (payload included)."""
        assert store.get_intent("op-1") is None
        first = store.begin_intent("op-1", "tracker.create", business_key="helpdesk:ticket:4211", payload={"a": 1})
        assert (first.state, first.attempts, first.payload, first.sent_at) == ("pending", 0, {"a": 1}, None)
        assert first.created_at == T0
        store.mark_intent("op-1", "sending")
        clock.advance(5)
        again = store.begin_intent("op-1", "tracker.create", business_key="other", payload={"a": 2})
        assert again.state == "sending"
        assert again.payload == {"a": 1}
        assert again.business_key == "helpdesk:ticket:4211"
        assert again == store.get_intent("op-1")

    def test_begin_sending_takes_only_a_fresh_intent(self, store: Store, clock: FakeClock) -> None:
        """begin_sending inserts an intent already sending (owner, one attempt, sent_at), or takes a pending one
        never tried; any other row comes back untouched and not won, so the caller's checks and claim run."""
        won, intent = store.begin_sending("op-s", "crm.note", business_key="bk", payload={"m": 1}, owner="me")
        assert won
        assert (intent.state, intent.attempts, intent.sent_at, intent.owner) == ("sending", 1, T0, "me")
        assert intent.payload == {"m": 1}
        assert intent == store.get_intent("op-s")
        clock.advance(5)
        won, again = store.begin_sending("op-s", "crm.note", business_key="bk", payload={"m": 2}, owner="other")
        assert not won
        assert again == intent
        store.mark_intent("op-s", "done", result={"ref": "n1"})
        won, done = store.begin_sending("op-s", "crm.note", business_key="bk", payload={}, owner="other")
        assert not won
        assert (done.state, done.result) == ("done", {"ref": "n1"})
        store.begin_intent("op-p", "crm.note", business_key="bk", payload={"m": 3})
        won, taken = store.begin_sending("op-p", "crm.note", business_key="bk", payload={}, owner="me")
        if won:  # a store may take a pending intent never tried; else it is left to the caller's claim
            assert (taken.state, taken.attempts, taken.owner, taken.payload) == ("sending", 1, "me", {"m": 3})
        else:
            assert (taken.state, taken.attempts, taken.payload) == ("pending", 0, {"m": 3})

    def test_done_and_linked_records_the_outcome_and_the_link(self, store: Store, clock: FakeClock) -> None:
        """done_and_linked marks the intent done with its result and adds the link (its fold run on a kept
        aggregate); again, the intent keeps its first result and the link is not added twice (the fold not run)."""
        store.begin_sending("op-c", "tracker.create", business_key="bk", payload={}, owner="me")
        store.add_link(Link(TICKET2, ISSUE, "ENG-7"))
        assert store.put_aggregate(ISSUE, {"n": 1}, seq=store.get_aggregate(ISSUE).seq) is True
        clock.advance(1)
        ran: list[int] = []

        def fold(data: dict[str, Any]) -> dict[str, Any] | None:
            ran.append(1)
            return {"n": data["n"] + 1}

        intent, added = store.done_and_linked("op-c", {"key": "ENG-7"}, Link(TICKET, ISSUE, "ENG-7"), fold=fold)
        assert (intent.state, intent.result, added) == ("done", {"key": "ENG-7"}, True)
        assert [str(link.ticket) for link in store.links_for_issue(ISSUE)] == [str(TICKET2), str(TICKET)]
        assert store.get_aggregate(ISSUE).data == {"n": 2}
        again, added = store.done_and_linked("op-c", {"key": "ENG-8"}, Link(TICKET, ISSUE, "ENG-7"), fold=fold)
        assert (again.state, again.result, added) == ("done", {"key": "ENG-7"}, False)
        assert ran == [1]
        with pytest.raises(NotFoundInStore):
            store.done_and_linked("op-none", {}, Link(TICKET, ISSUE2, "ENG-9"))

    def test_begin_sending_is_won_once_under_a_race(self, store: Store) -> None:
        """Sixteen threads begin the same write: exactly one is told it moved the intent to sending."""
        self._exactly_one_of_sixteen_wins(
            store, "op-r", lambda: store.begin_sending("op-r", "crm.note", business_key="bk", payload={}, owner="x")
        )

    def test_intent_lifecycle(self, store: Store, clock: FakeClock) -> None:
        """sending counts attempts and stamps sent_at; done keeps its first result and is final."""
        store.begin_intent("op-2", "tracker.create", business_key="bk", payload={})
        clock.advance(1)
        sent = store.mark_intent("op-2", "sending")
        assert (sent.state, sent.attempts, sent.sent_at) == ("sending", 1, T0 + 1)
        clock.advance(1)
        amb = store.mark_intent("op-2", "ambiguous", error="read timeout")
        assert (amb.state, amb.error, amb.attempts, amb.sent_at) == ("ambiguous", "read timeout", 1, T0 + 1)
        clock.advance(300)
        resent = store.mark_intent("op-2", "sending")
        assert (resent.attempts, resent.sent_at) == (2, T0 + 302)
        done = store.mark_intent("op-2", "done", result={"key": "ENG-1", "id": "10001"})
        assert done.state == "done"
        assert done.result == {"key": "ENG-1", "id": "10001"}
        assert done.error is None
        assert done.updated_at == T0 + 302

        assert store.mark_intent("op-2", "done", result={"key": "ENG-2"}).result == {
            "key": "ENG-1",
            "id": "10001",
        }
        with pytest.raises(IntentStateError):
            store.mark_intent("op-2", "sending")
        assert store.get_intent("op-2") == done

    def test_mark_intent_rejects_unknown_state_and_op(self, store: Store) -> None:
        """An unknown state is a ValueError; an unknown op_id is NotFoundInStore."""
        store.begin_intent("op-3", "k", business_key="bk", payload={})
        with pytest.raises(ValueError, match="unknown intent state"):
            store.mark_intent("op-3", "sent")
        with pytest.raises(NotFoundInStore):
            store.mark_intent("nope", "done")

    def test_accept_delivery_dedupes(self, store: Store) -> None:
        """The same delivery id twice gives one inbox row and one job; another account is another delivery."""
        kw: dict[str, Any] = {"payload": {"ticket": 1}, "job_kind": "escalate", "job_payload": {"ticket": "1"}}
        assert store.accept_delivery("helpdesk", "d-1", **kw) is True
        assert store.accept_delivery("helpdesk", "d-1", **kw) is False
        assert store.queue_depth()["ready"] == 1
        row = store.inbox_row("helpdesk", "d-1")
        assert row is not None
        assert row.payload == {"ticket": 1}
        assert row.received_at == T0
        job = store.job(row.job_id or 0)
        assert job is not None
        assert (job.kind, job.payload, job.state) == ("escalate", {"ticket": "1"}, "ready")

        assert store.accept_delivery("helpdesk", "d-1", account="acme2", **kw) is True
        assert store.accept_delivery("tracker", "d-1", **kw) is True
        assert store.inbox_row("helpdesk", "d-1", account="acme2") is not None
        assert store.inbox_row("tracker", "d-1") is not None
        assert store.queue_depth()["ready"] == 3

    def test_accept_delivery_without_a_job_records_the_row_only(self, store: Store) -> None:
        """``job_kind=None``: an echo recognised at ingress is kept (and deduplicated) but queues nothing."""
        kw: dict[str, Any] = {"payload": {"id": "echo-1"}, "job_kind": None, "job_payload": None}
        assert store.accept_delivery("helpdesk", "echo-1", **kw) is True
        assert store.accept_delivery("helpdesk", "echo-1", **kw) is False
        row = store.inbox_row("helpdesk", "echo-1")
        assert row is not None
        assert (row.payload, row.job_id) == ({"id": "echo-1"}, None)
        assert store.queue_depth() == {"ready": 0, "leased": 0, "done": 0, "dead": 0}

    def test_accept_delivery_with_dedupe_key_shares_the_waiting_job(self, store: Store) -> None:
        """Two deliveries of one business event record both, queue one job, and a later one queues again."""
        kw: dict[str, Any] = {
            "payload": {},
            "job_kind": "sync",
            "job_payload": {"issue": "10042"},
            "dedupe_key": "sync:10042",
        }
        assert store.accept_delivery("tracker", "a", **kw) is True
        assert store.accept_delivery("tracker", "b", **kw) is True
        a, b = store.inbox_row("tracker", "a"), store.inbox_row("tracker", "b")
        assert a is not None
        assert b is not None
        assert a.job_id is not None
        assert a.job_id == b.job_id
        assert store.queue_depth()["ready"] == 1

        job = store.claim("w", lease_seconds=30)
        assert job is not None
        assert store.accept_delivery("tracker", "c", **kw) is True
        assert store.queue_depth() == {"ready": 0, "leased": 1, "done": 0, "dead": 0}
        assert store.complete(job.id, job.attempt)
        assert store.accept_delivery("tracker", "d", **kw) is True
        d = store.inbox_row("tracker", "d")
        assert d is not None
        assert d.job_id not in (None, job.id)
        assert store.queue_depth()["ready"] == 1

    # ---- deliveries arriving together (group commit) -------------------------------------------------

    def test_deliveries_from_many_threads_are_each_committed_before_their_answer(
        self, store: Store, location: Any
    ) -> None:
        """Sixteen deliveries at once: each is told True only once its row and job are committed (a second store
        sees them at that moment), and all sixteen are there, each with its own job."""
        ids = [f"g-{n}" for n in range(16)]
        outcomes = self.deliver_together(store, location, [(d, {"n": n}) for n, d in enumerate(ids)])
        assert outcomes == [True] * 16
        rows = [store.inbox_row("helpdesk", d) for d in ids]
        assert all(row is not None and row.job_id is not None for row in rows)
        assert len({row.job_id for row in rows if row is not None}) == 16
        assert store.queue_depth()["ready"] == 16

    def test_the_same_delivery_from_many_threads_at_once_is_stored_once(self, store: Store, location: Any) -> None:
        """Twelve copies of one delivery at once (and of a second one): one of each is told True, the rest False;
        one row and one job each."""
        outcomes = self.deliver_together(store, location, [("twin", {"n": 1})] * 6 + [("other", {"n": 2})] * 6)
        assert sorted(o is True for o in outcomes[:6]) == [False] * 5 + [True]
        assert sorted(o is True for o in outcomes[6:]) == [False] * 5 + [True]
        assert all(isinstance(o, bool) for o in outcomes)
        assert store.queue_depth()["ready"] == 2

    def test_a_delivery_that_cannot_be_serialised_fails_alone(self, store: Store, location: Any) -> None:
        """One of eight deliveries at once carries a value no store can serialise: its caller gets the error,
        the seven others are stored and the bad one is not."""
        deliveries: list[tuple[str, dict[str, Any]]] = [(f"s-{n}", {"n": n}) for n in range(8)]
        deliveries[3] = ("s-3", {"unserialisable": object()})
        outcomes = self.deliver_together(store, location, deliveries, reaching=7)
        assert isinstance(outcomes[3], TypeError | ValueError | StoreError)
        assert outcomes[:3] + outcomes[4:] == [True] * 7
        assert store.inbox_row("helpdesk", "s-3") is None
        assert store.queue_depth()["ready"] == 7

    def test_a_delivery_the_database_refuses_fails_alone(self, store: Store, location: Any) -> None:
        """One of eight deliveries at once fails inside the database (its insert raises): its caller gets the
        error, the seven others (maybe in the same transaction) are stored; the refused one can come again."""
        self.refuse_delivery(location, "r-5")
        outcomes = self.deliver_together(store, location, [(f"r-{n}", {"n": n}) for n in range(8)])
        assert isinstance(outcomes[5], Exception)
        assert not isinstance(outcomes[5], AssertionError), outcomes[5]
        assert outcomes[:5] + outcomes[6:] == [True] * 7
        assert store.inbox_row("helpdesk", "r-5") is None
        assert store.queue_depth()["ready"] == 7

    def test_a_failed_commit_reaches_every_caller(self, store: Store, location: Any) -> None:
        """When the commit fails, every delivery of it is told so (an exception: the vendor gets a 5xx and
        retries) and none is stored; none is told True."""
        assert store.accept_delivery("helpdesk", "before", payload={}, job_kind="event", job_payload={})
        self.refuse_commits(location)
        outcomes = self.deliver_together(store, location, [(f"c-{n}", {"n": n}) for n in range(8)])
        assert all(isinstance(o, Exception) and not isinstance(o, AssertionError) for o in outcomes), outcomes
        assert all(store.inbox_row("helpdesk", f"c-{n}") is None for n in range(8))
        assert store.queue_depth()["ready"] == 1

    def test_purge_inbox(self, store: Store, clock: FakeClock) -> None:
        """Inbox rows older than the retention go; younger ones stay and still deduplicate."""
        kw: dict[str, Any] = {"payload": {}, "job_kind": "k", "job_payload": {}}
        store.accept_delivery("helpdesk", "old", **kw)
        clock.advance(6 * 86400 + 23 * 3600)
        store.accept_delivery("helpdesk", "young", **kw)
        assert store.purge_inbox() == 0
        assert store.accept_delivery("helpdesk", "old", **kw) is False
        clock.advance(3601)
        assert store.purge_inbox() == 1
        assert store.inbox_row("helpdesk", "old") is None
        assert store.inbox_row("helpdesk", "young") is not None
        assert store.purge_inbox(older_than_seconds=60) == 1
        assert store.inbox_row("helpdesk", "young") is None

    def test_purge_jobs_deletes_done_jobs_past_the_retention_in_batches(self, store: Store, clock: FakeClock) -> None:
        """Done jobs older than the retention go, in batches (dead ones stay with their letters); the counts
        follow; a delivery whose job went keeps its inbox row."""
        for n in range(5):
            assert store.accept_delivery("helpdesk", f"p{n}", payload={}, job_kind="k", job_payload={"n": n})
        for _ in range(5):
            job = store.claim("w", lease_seconds=60)
            assert job is not None
            if job.payload["n"] == 4:
                assert store.fail(job.id, job.attempt, error="broken")
            else:
                assert store.complete(job.id, job.attempt)
        clock.advance(2 * 86400 + 1)
        assert store.enqueue("k", {"n": 5}) is not None
        assert store.purge_jobs(2 * 86400, batch=3) == 4
        assert store.queue_depth() == {"ready": 1, "leased": 0, "done": 0, "dead": 1}
        row = store.inbox_row("helpdesk", "p0")
        assert row is not None
        assert row.job_id is None
        assert len(store.dead_letters()) == 1
        assert store.purge_jobs(2 * 86400, batch=3) == 0
        assert store.purge_inbox(86400, batch=2) == 5
        with pytest.raises(ValueError, match="at least one row"):
            store.purge_jobs(batch=0)

    def test_enqueue_with_key_and_run_at(self, store: Store, clock: FakeClock) -> None:
        """A key holds one waiting job at a time; run_at delays the claim."""
        first = store.enqueue("reconcile", {"n": 1}, key="reconcile:tracker", run_at=T0 + 60)
        assert first is not None
        assert store.enqueue("reconcile", {"n": 2}, key="reconcile:tracker") is None
        assert store.enqueue("reconcile", {"n": 3}) is not None  # no key, no dedupe
        job = store.claim("w", lease_seconds=30)
        assert job is not None
        assert job.payload == {"n": 3}
        assert store.claim("w", lease_seconds=30) is None
        assert store.complete(job.id, job.attempt)
        clock.advance(60)
        job = store.claim("w", lease_seconds=30)
        assert job is not None
        assert (job.id, job.key) == (first, "reconcile:tracker")
        assert store.enqueue("reconcile", {}, key="reconcile:tracker") is None  # leased still holds the key
        assert store.complete(job.id, job.attempt)
        assert store.enqueue("reconcile", {}, key="reconcile:tracker") is not None

    def test_claim_takes_oldest_due_job_and_filters_kinds(self, store: Store, clock: FakeClock) -> None:
        """claim leases the oldest due job of the wanted kinds and counts the attempt."""
        a = store.enqueue("escalate", {"i": 1})
        clock.advance(1)
        b = store.enqueue("sync", {"i": 2})
        clock.advance(1)
        job = store.claim("w1", lease_seconds=30, kinds=["sync"])
        assert job is not None
        assert (job.id, job.state, job.attempt, job.worker_id, job.lease_until) == (b, "leased", 1, "w1", T0 + 32)
        assert store.claim("w1", lease_seconds=30, kinds=[]) is None
        assert store.claim("w1", lease_seconds=30, kinds=["sync"]) is None
        job = store.claim("w2", lease_seconds=30)
        assert job is not None
        assert job.id == a
        assert store.claim("w2", lease_seconds=30) is None
        assert store.queue_depth() == {"ready": 0, "leased": 2, "done": 0, "dead": 0}

    def test_fencing_stale_worker_changes_nothing(self, store: Store, clock: FakeClock) -> None:
        """After a lease lapses and another worker claims attempt 2, the first worker's calls all return False."""
        job_id = store.enqueue("escalate", {"ticket": "4211"})
        assert job_id is not None
        first = store.claim("A", lease_seconds=30)
        assert first is not None
        assert first.attempt == 1
        assert store.claim("B", lease_seconds=30) is None  # still leased
        clock.advance(31)
        second = store.claim("B", lease_seconds=30)
        assert second is not None
        assert (second.id, second.attempt, second.worker_id) == (job_id, 2, "B")
        before = store.job(job_id)

        assert store.heartbeat(job_id, 1, 30) is False
        assert store.complete(job_id, 1) is False
        assert store.retry_later(job_id, 1, run_at=T0 + 1000, error="x") is False
        assert store.fail(job_id, 1, error="boom") is False
        assert store.job(job_id) == before
        assert store.dead_letters() == []

        assert store.complete(job_id, 2) is True
        done = store.job(job_id)
        assert done is not None
        assert (done.state, done.attempt, done.lease_until) == ("done", 2, None)
        assert store.complete(job_id, 2) is False  # not leased any more
        assert store.heartbeat(job_id, 2, 30) is False

    def test_complete_writes_its_audit_rows_only_for_the_current_attempt(self, store: Store, clock: FakeClock) -> None:
        """complete(audit=) appends the rows (redacted) with the completion; a stale attempt's rows are not written."""
        secret = Secret("s3cr3t-token-value-1234")
        job_id = store.enqueue("escalate", {})
        assert job_id is not None
        assert store.claim("A", lease_seconds=30) is not None
        clock.advance(31)
        assert store.claim("B", lease_seconds=30) is not None
        stale = [AuditRow("A", "escalate.create", "tracker:issue:1", "ok", ticket=TICKET)]
        assert store.complete(job_id, 1, audit=stale) is False
        assert store.audit_entries(ticket=TICKET) == []
        rows = [
            AuditRow("B", "escalate.create", "tracker:issue:1", "ok", ticket=TICKET, issue_key="ENG-7"),
            AuditRow("B", "decision.priority", str(TICKET), f"granted {secret.reveal()}", ticket=TICKET),
        ]
        assert store.complete(job_id, 2, audit=rows) is True
        entries = store.audit_entries(ticket=TICKET)
        assert [(e.actor, e.action, e.issue_key) for e in entries] == [
            ("B", "escalate.create", "ENG-7"),
            ("B", "decision.priority", None),
        ]
        assert secret.reveal() not in entries[1].result
        assert all(e.at == clock.now for e in entries)

    def test_heartbeat_extends_the_lease(self, store: Store, clock: FakeClock) -> None:
        """A heartbeat keeps the job from being reaped past its first lease."""
        store.enqueue("k", {})
        job = store.claim("A", lease_seconds=30)
        assert job is not None
        clock.advance(25)
        assert store.heartbeat(job.id, job.attempt, 30) is True
        clock.advance(25)
        assert store.claim("B", lease_seconds=30) is None
        clock.advance(6)
        reaped = store.claim("B", lease_seconds=30)
        assert reaped is not None
        assert reaped.attempt == 2

    def test_hold_lease_writes_only_near_expiry_and_catches_a_take_over(self, store: Store, clock: FakeClock) -> None:
        """hold_lease far from expiry leaves the lease as it is, extends it once less than half is left, and
        answers False for an attempt another worker took over (its lease untouched)."""
        store.enqueue("k", {})
        job = store.claim("A", lease_seconds=30)
        assert job is not None
        clock.advance(10)
        assert store.hold_lease(job.id, job.attempt, 30) is True
        held = store.job(job.id)
        assert held is not None
        assert held.lease_until == T0 + 30  # 20 s of 30 left: nothing written
        clock.advance(6)
        assert store.hold_lease(job.id, job.attempt, 30) is True
        renewed = store.job(job.id)
        assert renewed is not None
        assert renewed.lease_until == T0 + 46  # 14 s left: extended to now + 30
        clock.advance(47)
        second = store.claim("B", lease_seconds=30)
        assert second is not None
        assert second.attempt == 2
        assert store.hold_lease(job.id, job.attempt, 30) is False
        assert store.hold_lease(second.id, second.attempt, 30) is True
        taken = store.job(job.id)
        assert taken is not None
        assert (taken.attempt, taken.worker_id, taken.lease_until) == (2, "B", T0 + 93)

    def test_retry_later(self, store: Store, clock: FakeClock) -> None:
        """retry_later makes the job ready again at run_at with the redacted error; next claim is attempt 2."""
        secret = Secret("tok-retry-" + "9" * 12)
        store.enqueue("k", {})
        job = store.claim("A", lease_seconds=30)
        assert job is not None
        assert store.retry_later(job.id, job.attempt, run_at=T0 + 120, error=f"503 with {secret.reveal()}") is True
        waiting = store.job(job.id)
        assert waiting is not None
        assert (waiting.state, waiting.run_at, waiting.lease_until, waiting.worker_id) == (
            "ready",
            T0 + 120,
            None,
            None,
        )
        assert waiting.last_error is not None
        assert secret.reveal() not in waiting.last_error
        assert store.claim("A", lease_seconds=30) is None
        clock.advance(120)
        again = store.claim("A", lease_seconds=30)
        assert again is not None
        assert again.attempt == 2

    def test_max_attempts_dead_letters_a_job_that_keeps_expiring(self, store: Store, clock: FakeClock) -> None:
        """With max_attempts, an expired lease on the last attempt becomes a dead letter instead of a claim."""
        job_id = store.enqueue("poison", {"p": 1})
        for _ in range(2):
            assert store.claim("w", lease_seconds=10, max_attempts=2) is not None
            clock.advance(11)
        assert store.claim("w", lease_seconds=10, max_attempts=2) is None
        job = store.job(job_id or 0)
        assert job is not None
        assert job.state == "dead"
        [letter] = store.dead_letters()
        assert (letter.job_id, letter.attempt) == (job_id, 2)
        assert "lease expired" in letter.error

    def test_fail_queues_its_follow_up_in_the_same_transaction(self, store: Store, clock: FakeClock) -> None:
        """fail's ``then`` is queued with the dead letter, never without it: a stale attempt queues nothing, and a
        follow-up that cannot be written leaves the job as it was (no dead letter either)."""
        store.enqueue("event", {"ticket": "1"})
        job = store.claim("w", lease_seconds=30)
        assert job is not None
        broken = FollowUp("notice", {"unserialisable": object()}, key="notice:1")
        with pytest.raises((TypeError, ValueError, StoreError)):  # each backend's serialisation error
            store.fail(job.id, job.attempt, error="boom", then=broken)
        still = store.job(job.id)
        assert still is not None
        assert still.state == "leased"
        assert store.dead_letters() == []
        follow = FollowUp("notice", {"ticket": "1"}, key="notice:1", lock_key="t:1")
        assert store.fail(job.id, job.attempt + 1, error="stale", then=follow) is False
        assert store.queue_depth() == {"ready": 0, "leased": 1, "done": 0, "dead": 0}
        assert store.fail(job.id, job.attempt, error="boom", then=follow) is True
        assert [d.job_id for d in store.dead_letters()] == [job.id]
        notice = store.claim("w2", lease_seconds=30)
        assert notice is not None
        assert (notice.kind, notice.payload, notice.key) == ("notice", {"ticket": "1"}, "notice:1")

    def test_fail_dead_letters_and_replay_once(self, store: Store, clock: FakeClock) -> None:
        """fail writes a redacted dead letter; replay queues a new job once, and a second replay is refused."""
        secret = Secret("sk_live_" + "a1b2c3d4e5f6g7h8")
        job_id = store.enqueue("escalate", {"ticket": "4211"}, key="esc:4211")
        job = store.claim("w", lease_seconds=30)
        assert job is not None
        error = (
            f"401 for token {secret.reveal()} / {quote(secret.reveal())} / "
            + base64.b64encode(secret.reveal().encode()).decode()
        )
        clock.advance(3)
        assert store.fail(job.id, job.attempt, error=error) is True
        buried = store.job(job.id)
        assert buried is not None
        assert buried.state == "dead"
        assert store.queue_depth() == {"ready": 0, "leased": 0, "done": 0, "dead": 1}

        [letter] = store.dead_letters()
        assert (letter.job_id, letter.kind, letter.payload, letter.key) == (
            job_id,
            "escalate",
            {"ticket": "4211"},
            "esc:4211",
        )
        assert (letter.attempt, letter.created_at, letter.replayed) == (1, T0 + 3, False)
        assert letter.error.startswith("401 for token ")
        assert secret.reveal() not in letter.error
        assert quote(secret.reveal()) not in letter.error
        assert base64.b64encode(secret.reveal().encode()).decode() not in letter.error
        assert store.dead_letter(letter.id) == letter

        clock.advance(1)
        new_id = store.replay_dead_letter(letter.id)
        assert new_id != job_id
        new_job = store.job(new_id)
        assert new_job is not None
        assert (new_job.kind, new_job.payload, new_job.state, new_job.attempt) == (
            "escalate",
            {"ticket": "4211"},
            "ready",
            0,
        )
        replayed = store.dead_letter(letter.id)
        assert replayed is not None
        assert (replayed.replayed, replayed.replayed_at, replayed.replay_job_id) == (True, T0 + 4, new_id)

        with pytest.raises(AlreadyReplayed, match="replayed already"):
            store.replay_dead_letter(letter.id)
        assert store.queue_depth()["ready"] == 1
        with pytest.raises(NotFoundInStore):
            store.replay_dead_letter(999)
        assert store.dead_letter(999) is None

    def test_replay_when_the_key_is_already_waiting(self, store: Store) -> None:
        """Replaying a letter whose key a waiting job holds points at that job instead of queueing a second."""
        store.enqueue("escalate", {}, key="esc:1")
        job = store.claim("w", lease_seconds=30)
        assert job is not None
        store.fail(job.id, job.attempt, error="boom")
        waiting = store.enqueue("escalate", {}, key="esc:1")
        [letter] = store.dead_letters()
        assert store.replay_dead_letter(letter.id) == waiting
        assert store.queue_depth()["ready"] == 1

    def test_audit(self, store: Store, clock: FakeClock) -> None:
        """Audit rows keep who, what, policy, origin and result, are filterable, and hold no secrets."""
        secret = Secret("audit-secret-" + "x" * 10)
        first = store.audit(
            actor="agent:5",
            action="tracker.create",
            target="tracker:issue:10042",
            result="ok",
            policy="tier1-priority",
            origin_event="helpdesk:d-1",
            ticket=TICKET,
            issue_key="ENG-7",
            details={"priority": "High", "note": f"auth {secret.reveal()}"},
        )
        clock.advance(1)
        second = store.audit(actor="cxbridge", action="helpdesk.note", target=str(TICKET2), result="ok", ticket=TICKET2)
        store.audit(actor="cxbridge", action="crm.note", target="crm:company:99", result="ok", issue_key="ENG-7")
        assert second == first + 1

        entries = store.audit_entries(ticket=TICKET)
        assert [e.id for e in entries] == [first]
        e = entries[0]
        assert (e.at, e.actor, e.action, e.target, e.result) == (
            T0,
            "agent:5",
            "tracker.create",
            "tracker:issue:10042",
            "ok",
        )
        assert (e.policy, e.origin_event, e.ticket, e.issue_key) == (
            "tier1-priority",
            "helpdesk:d-1",
            TICKET,
            "ENG-7",
        )
        assert e.details["priority"] == "High"
        assert secret.reveal() not in e.details["note"]
        assert [x.action for x in store.audit_entries(issue_key="ENG-7")] == ["tracker.create", "crm.note"]
        assert [x.id for x in store.audit_entries(ticket=TICKET, issue_key="ENG-8")] == []
        assert len(store.audit_entries()) == 3
        assert store.audit_entries(ticket=TICKET2)[0].details == {}

    def test_checkpoints(self, store: Store) -> None:
        """A checkpoint is None before the first save, then the last mapping saved, per system and stream."""
        assert store.get_checkpoint("helpdesk", "tickets") is None
        store.set_checkpoint("helpdesk", "tickets", {"cursor": "abc", "end_of_stream": False})
        store.set_checkpoint("helpdesk", "users", {"cursor": "u"})
        assert store.get_checkpoint("helpdesk", "tickets") == {"cursor": "abc", "end_of_stream": False}
        store.set_checkpoint("helpdesk", "tickets", {"cursor": "def"})
        assert store.get_checkpoint("helpdesk", "tickets") == {"cursor": "def"}
        assert store.get_checkpoint("helpdesk", "users") == {"cursor": "u"}
        assert store.get_checkpoint("tracker", "tickets") is None

    def test_queue_depth_lists_every_state(self, store: Store) -> None:
        """queue_depth always has ready, leased, done and dead."""
        assert store.queue_depth() == {"ready": 0, "leased": 0, "done": 0, "dead": 0}
        store.enqueue("a", {})
        store.enqueue("b", {})
        job = store.claim("w", lease_seconds=5)
        assert job is not None
        store.complete(job.id, job.attempt)
        assert store.queue_depth() == {"ready": 1, "leased": 0, "done": 1, "dead": 0}

    def test_a_locked_entity_runs_one_job_at_a_time(self, store: Store, clock: FakeClock) -> None:
        first = store.enqueue("event", {"n": 1}, lock_key="tracker:issue:1")
        second = store.enqueue("event", {"n": 2}, lock_key="tracker:issue:1")
        other = store.enqueue("event", {"n": 3}, lock_key="tracker:issue:2")
        a = store.claim("w1", lease_seconds=30)
        assert a is not None
        assert a.id == first
        # the second job of the same entity waits; the other entity's job goes ahead
        b = store.claim("w2", lease_seconds=30)
        assert b is not None
        assert b.id == other
        assert store.claim("w3", lease_seconds=30) is None
        assert store.complete(a.id, a.attempt)
        c = store.claim("w3", lease_seconds=30)
        assert c is not None
        assert c.id == second

    def test_an_expired_lease_releases_the_lock(self, store: Store, clock: FakeClock) -> None:
        first = store.enqueue("event", {}, lock_key="helpdesk:ticket:1")
        second = store.enqueue("event", {}, lock_key="helpdesk:ticket:1")
        a = store.claim("w1", lease_seconds=30)
        assert a is not None
        assert a.id == first
        clock.advance(31)
        # the lapsed job is due again and comes first (older); its newer attempt holds the lock
        again = store.claim("w2", lease_seconds=30)
        assert again is not None
        assert again.id == first
        assert again.attempt == a.attempt + 1
        assert store.claim("w3", lease_seconds=30) is None
        assert not store.complete(a.id, a.attempt)  # the stale attempt is fenced out
        assert store.complete(again.id, again.attempt)
        b = store.claim("w3", lease_seconds=30)
        assert b is not None
        assert b.id == second

    def test_a_delivery_carries_its_lock(self, store: Store) -> None:
        assert store.accept_delivery(
            "tracker", "d1", payload={}, job_kind="event", job_payload={"n": 1}, lock_key="tracker:issue:7"
        )
        assert store.accept_delivery(
            "tracker", "d2", payload={}, job_kind="event", job_payload={"n": 2}, lock_key="tracker:issue:7"
        )
        a = store.claim("w1", lease_seconds=30)
        assert a is not None
        assert a.payload == {"n": 1}
        assert store.claim("w2", lease_seconds=30) is None
        assert store.complete(a.id, a.attempt)
        b = store.claim("w2", lease_seconds=30)  # the second delivery's job was queued; it waited for the lock
        assert b is not None
        assert b.payload == {"n": 2}

    def test_unlocked_jobs_run_side_by_side(self, store: Store) -> None:
        first = store.enqueue("event", {"n": 1})
        second = store.enqueue("event", {"n": 2})
        a = store.claim("w1", lease_seconds=30)
        b = store.claim("w2", lease_seconds=30)
        assert a is not None
        assert b is not None
        assert (a.id, b.id) == (first, second)

    def test_snapshots_never_hold_a_secret(self, store: Store) -> None:
        secret = Secret("s3cr3t-snapshot-value", source="test")
        store.put_snapshot("customer", "x", {"note": f"token {secret.reveal()}"})
        snapshot = store.get_snapshot("customer", "x")
        assert snapshot is not None  # stored, with the value redacted
        assert snapshot["note"].startswith("token ")
        assert secret.reveal() not in str(snapshot)

    def test_forget_intent_lets_an_undone_write_be_redone(self, store: Store) -> None:
        store.begin_intent("op-1", "tracker.remotelink", business_key="helpdesk:ticket:1", payload={})
        store.mark_intent("op-1", "sending")
        store.mark_intent("op-1", "done", result={"id": "10"})
        assert store.forget_intent("op-1")
        assert store.get_intent("op-1") is None
        assert not store.forget_intent("op-1")
        again = store.begin_intent("op-1", "tracker.remotelink", business_key="helpdesk:ticket:1", payload={})
        assert again.state == "pending"

    def test_snapshots_put_together_are_all_saved_when_the_block_ends(self, store: Store, clock: FakeClock) -> None:
        """In ``snapshots_together`` the block's own reads see its snapshots; when it ends all are saved (a linked
        ticket's facts dropping its issues' aggregates, as ``put_snapshot`` does); a block that raises keeps what
        it put; blocks nest."""
        store.add_link(Link(TICKET, ISSUE, "ENG-7"))
        assert store.put_aggregate(ISSUE, {"tickets": 1}, seq=store.get_aggregate(ISSUE).seq)
        before = store.get_aggregate(ISSUE)
        secret = Secret("tok-together-" + "7" * 12)
        with store.snapshots_together():
            store.put_snapshot("customer", "c:1", {"arr": "200.00", "note": f"token {secret.reveal()}"})
            with store.snapshots_together():
                store.put_snapshot("ticket", str(TICKET), {"status": "solved"}, linked_ticket=TICKET)
            store.put_snapshot("customer", "c:1", {"arr": "300.00"})
            assert store.get_snapshot("customer", "c:1") == {"arr": "300.00"}  # the block's latest
            assert store.get_snapshot("ticket", str(TICKET)) == {"status": "solved"}
        assert store.get_snapshot("customer", "c:1") == {"arr": "300.00"}
        assert store.get_snapshot("ticket", str(TICKET)) == {"status": "solved"}
        after = store.get_aggregate(ISSUE)
        assert (after.seq, after.data) == (before.seq + 1, None)

        def failing_block() -> None:
            with store.snapshots_together():
                store.put_snapshot("customer", "c:2", {"note": f"token {secret.reveal()}"})
                raise RuntimeError("the block failed after its put")

        with pytest.raises(RuntimeError):
            failing_block()
        kept = store.get_snapshot("customer", "c:2")
        assert kept is not None
        assert secret.reveal() not in str(kept)  # redacted as put_snapshot always does

    def test_purge_snapshots_deletes_only_old_rows_of_one_kind(self, store: Store, clock: FakeClock) -> None:
        store.put_snapshot("echo", "old", {})
        store.put_snapshot("customer", "old", {})
        clock.advance(100)
        store.put_snapshot("echo", "new", {})
        assert store.purge_snapshots("echo", 50) == 1
        assert store.get_snapshot("echo", "old") is None
        assert store.get_snapshot("echo", "new") is not None
        assert store.get_snapshot("customer", "old") is not None
