"""``once.side_by_side``: independent writes of an escalation go out together, within the intent protocol."""

from __future__ import annotations

import threading

import pytest

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
