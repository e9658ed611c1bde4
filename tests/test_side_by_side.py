"""``once.side_by_side``: independent writes of an escalation go out together, within the intent protocol."""

from __future__ import annotations

import threading
import uuid
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cxbridge.errors import LeaseLost
from cxbridge.workflows import once


def test_results_come_back_in_call_order_from_concurrent_calls() -> None:
    """Each call runs in its own thread (the first in the caller's), all at once: none waits for another."""
    barrier = threading.Barrier(3, timeout=10)  # would break if the calls ran one after the other
    threads: list[int] = []

    def call(value: str) -> str:
        threads.append(threading.get_ident())
        barrier.wait()
        return value

    assert once.side_by_side(lambda: call("a"), lambda: call("b"), lambda: call("c")) == ["a", "b", "c"]
    assert len(set(threads)) == 3
    assert threading.get_ident() in threads
    assert once.side_by_side(lambda: 1) == [1]
    assert once.side_by_side() == []


def test_the_first_failure_is_raised_after_every_call_finished() -> None:
    finished: list[str] = []

    def fails(name: str) -> None:
        raise RuntimeError(name)

    def slow() -> str:
        finished.append("slow")
        return "done"

    with pytest.raises(RuntimeError, match="second"):
        once.side_by_side(slow, lambda: fails("second"), lambda: fails("third"), slow)
    assert finished == ["slow", "slow"]


def test_each_call_checks_the_callers_lease_and_its_runner_ends_with_it() -> None:
    """The lease guard (a context variable) reaches every thread; a helper thread's runner id is not alive
    after the call, so an intent it left ``sending`` is reconciled, not waited for."""
    owners: list[str] = []

    def write() -> None:
        once.check_lease()  # what every write does right before sending
        owners.append(once.runner_id())

    def lost() -> None:
        raise LeaseLost("the job's lease was taken over")

    with once.lease_guard(lost), pytest.raises(LeaseLost):
        once.side_by_side(lambda: None, write)
    assert owners == []  # the helper thread saw the caller's guard and wrote nothing
    once.side_by_side(lambda: None, write)  # no guard outside a worker: the write goes out
    assert len(owners) == 1
    assert owners[0] != once.runner_id()
    assert owners[0].rsplit(":", 1)[1].startswith("side")  # a runner id of its own, never reused
    assert once._runner_alive(owners[0]) is False  # its call ended
    # while a helper runs, another thread sees it alive; the helper asking about itself does not
    seen: dict[str, bool | None] = {}
    inside = threading.Event()
    release = threading.Event()

    def helper() -> None:
        seen["self"] = once._runner_alive(once.runner_id())
        seen["id"] = once.runner_id()  # type: ignore[assignment]
        inside.set()
        release.wait(10)

    def caller() -> None:
        inside.wait(10)
        seen["other"] = once._runner_alive(str(seen["id"]))
        release.set()

    once.side_by_side(caller, helper)
    assert (seen["self"], seen["other"]) == (False, True)
    assert once._runner_alive(str(seen["id"])) is False


# -- by_system: many calls to a few systems, bounded per system ------------------------------------------------------
def test_by_system_runs_each_systems_calls_at_most_limit_at_a_time_and_the_systems_together() -> None:
    """Six calls to one system and two to another, limit 3: three of the first and both of the second are in flight
    together (a barrier of five would break if fewer ran at once), never more than three of one system."""
    barrier = threading.Barrier(5, timeout=10)
    lock = threading.Lock()
    running: dict[str, int] = {"a": 0, "b": 0}
    peak: dict[str, int] = {"a": 0, "b": 0}

    def call(system: str, n: int) -> str:
        with lock:
            running[system] += 1
            peak[system] = max(peak[system], running[system])
        if n < 3 or system == "b":
            barrier.wait()  # the first wave: three calls of a, both of b
        with lock:
            running[system] -= 1
        return f"{system}{n}"

    calls = [("a", partial(call, "a", n)) for n in range(6)] + [("b", partial(call, "b", n)) for n in range(2)]
    assert once.by_system(calls, limit=3) == [f"a{n}" for n in range(6)] + ["b0", "b1"]
    assert peak == {"a": 3, "b": 2}
    assert once.by_system([], limit=3) == []


def test_by_system_one_at_a_time_keeps_the_order_and_a_failure_stops_only_its_system() -> None:
    started: list[str] = []

    def call(name: str) -> str:
        started.append(name)
        if name == "a1":
            raise RuntimeError(name)
        return name

    calls = [("a", partial(call, f"a{n}")) for n in range(4)] + [("b", partial(call, f"b{n}")) for n in range(3)]
    with pytest.raises(RuntimeError, match="a1"):
        once.by_system(calls, limit=1)
    assert [s for s in started if s.startswith("a")] == ["a0", "a1"]  # a's calls after the failure never started
    assert [s for s in started if s.startswith("b")] == ["b0", "b1", "b2"]  # b went on


def test_by_system_gives_every_call_a_runner_of_its_own_that_ends_with_it() -> None:
    """Whichever thread runs a call (the caller's included), its intent's runner is its own and is not alive after
    it: a write one call left ``sending`` is reconciled by the next run, not taken to be in flight."""
    owners: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        with lock:
            owners.append(once.runner_id())
        assert once._runner_alive(once.runner_id()) is False  # asking about itself

    once.by_system([("a", call)] * 5 + [("b", call)] * 2, limit=2)
    assert len(set(owners)) == 7
    assert all(o.rsplit(":", 1)[1].startswith("side") for o in owners)
    assert not any(once._runner_alive(o) for o in owners)
    assert once.runner_id().rsplit(":", 1)[1].isdigit()  # the caller's own id is back


def test_the_caller_returns_whether_the_helpers_finish_before_or_after_its_own_call() -> None:
    """The caller waits for every helper: those done before its own call ends, and those still running then."""
    release = threading.Event()
    order: list[str] = []

    def quick() -> str:
        order.append("quick")
        return "quick"

    def late() -> str:
        assert release.wait(10)
        order.append("late")
        return "late"

    def first() -> str:
        release.set()
        return "first"

    assert once.side_by_side(first, quick, late) == ["first", "quick", "late"]
    assert sorted(order) == ["late", "quick"]
    for _ in range(50):  # many small rounds on the kept helper threads: none is lost or left waiting
        assert once.side_by_side(lambda: 0, lambda: 1, lambda: 2) == [0, 1, 2]


@given(st.text(max_size=60), st.sampled_from(["tracker.create", "crm.note", "helpdesk.record", ""]))
@settings(max_examples=300, deadline=None)
def test_op_id_is_the_uuid5_of_the_business_key_and_operation(business_key: str, operation: str) -> None:
    """``op_id`` spells out ``uuid5(NAMESPACE, "<business key>|<operation>")``: the ids intents were stored under."""
    try:
        expected = str(uuid.uuid5(once.NAMESPACE, f"{business_key}|{operation}"))
    except UnicodeEncodeError:  # a lone surrogate: no id either way
        with pytest.raises(UnicodeEncodeError):
            once.op_id(business_key, operation)
        return
    assert once.op_id(business_key, operation) == expected
    assert once.op_id(business_key, operation) == expected  # asked again: the same id, kept


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python 3.12 warns on fork with threads
def test_a_forked_child_runs_under_its_own_process_id() -> None:
    """A runner id names the process that runs the write: a forked child's ids carry the child's pid."""
    import os

    parent = once.runner_id()
    assert parent.split(":")[1] == str(os.getpid())
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if once.runner_id().split(":")[1] == str(os.getpid()) != parent.split(":")[1] else 2
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
