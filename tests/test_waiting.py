"""Faults after the vendor acted: compare-and-set intents, no write after a lost lease (a worker paused before each
write of an escalation and of sync back), waiting is not failing."""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cxbridge.errors import EffectInFlight
from cxbridge.runtime import Runtime
from cxbridge.sandbox.base import WebhookTarget
from cxbridge.sandbox.modes import ServedVendors, Vendors, serve_vendors, write_config
from cxbridge.store import SQLiteStore
from cxbridge.testing import SandboxRuntimes, verify_deliveries
from cxbridge.worker import Handler, Worker, default_handlers
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.events import enqueue_event
from cxbridge.workflows.once import IN_FLIGHT_SECONDS, check_lease, lease_guard, write_once

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

ONE_OF_EACH = {"issues": 1, "remote_links": 1, "zendesk_notes": 1, "hubspot_notes": 1}
GRACE = 30


class Clock:
    """A virtual clock the store and the workers read."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def effects(vendors: Vendors) -> dict[str, int]:
    """The escalation's effects, counted in the emulators' own state."""
    jira = vendors["jira"].state()
    zendesk = vendors["zendesk"].state()
    return {
        "issues": len(jira["issues"]),
        "remote_links": sum(len(i["remoteLinks"]) for i in jira["issues"]),
        "zendesk_notes": sum(
            1
            for t in zendesk["tickets"]
            for c in t["comments"]
            if not c["public"] and "Escalated to engineering" in c["body"]
        ),
        "hubspot_notes": len(vendors["hubspot"].state()["objects"]["notes"]),
    }


def escalate_handler(rt: Runtime, payload: dict[str, Any]) -> str:
    """A job handler that escalates the payload's ticket."""
    return Escalation(rt).run(EscalationRequest(ticket_id=payload["ticket"])).issue_key


# --- compare-and-set --------------------------------------------------------------------------------------


def test_a_runner_on_another_host_holds_its_write_only_within_the_in_flight_window(tmp_path: Path) -> None:
    """A write another host is sending is left alone for IN_FLIGHT_SECONDS, then reconciled and taken over."""
    clock = Clock()
    store = SQLiteStore(tmp_path / "s.db", clock=clock)
    store.begin_intent("op", "helpdesk.note", business_key="t:1", payload={})
    won, _ = store.transition_intent("op", "sending", expect="pending", owner="elsewhere.example:4242:7")
    assert won
    sent: list[int] = []

    def write() -> dict[str, Any]:
        sent.append(1)
        return {"ref": "n1"}

    with pytest.raises(EffectInFlight, match="another runner"):
        write_once(store, "op", "helpdesk.note", "t:1", write, find=lambda: None)
    assert sent == []
    clock.now += IN_FLIGHT_SECONDS
    assert write_once(store, "op", "helpdesk.note", "t:1", write, find=lambda: None) == "written"
    assert sent == [1]
    intent = store.get_intent("op")
    assert intent is not None
    assert intent.state == "done"
    assert intent.attempts == 2
    store.close()


def test_concurrent_escalations_in_threads_make_one_of_each(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    """Four threads escalate one ticket at once: one issue, one link, one note each; losers say so."""
    rt = sandbox_runtime(vendors)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def run() -> None:
        barrier.wait()
        try:
            result = Escalation(rt).run(EscalationRequest(ticket_id="1"))
            outcomes.append(result.issue_key)
        except EffectInFlight as exc:
            outcomes.append("in flight" if "another run" in str(exc) else str(exc))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 4
    assert set(outcomes) <= {"in flight", "ENG-1"}
    assert effects(vendors) == ONE_OF_EACH
    Escalation(rt).run(EscalationRequest(ticket_id="1"))  # whatever a loser skipped, a rerun leaves as is
    assert effects(vendors) == ONE_OF_EACH


@pytest.fixture
def served() -> Iterator[ServedVendors]:
    """The three emulators on loopback ports, so that separate processes share them."""
    with serve_vendors(("zendesk", "hubspot", "jira"), seed="demo") as running:
        yield running


def test_concurrent_escalate_commands_make_one_of_each_and_exit_0(served: ServedVendors, tmp_path: Path) -> None:
    """Four `cxbridge escalate` processes on one ticket: one issue and one note each; every one exits 0."""
    config = write_config(served, tmp_path / "cxbridge.toml")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cxbridge", "--config", str(config), "escalate", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        for _ in range(4)
    ]
    results = [(p.wait(120), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, (out, err)
        assert "already being escalated" in out or "created" in out or "linked to" in out, out
        assert "cannot become" not in out + err
    assert effects(served) == ONE_OF_EACH


# --- leases -----------------------------------------------------------------------------------------------


def test_a_worker_paused_past_its_lease_writes_nothing_after_losing_it(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    """Worker A stalls after the create, B takes the job: A sends no write after that, and B finishes once."""
    clock = Clock()
    rt = sandbox_runtime(vendors, clock=clock)
    rt.store.enqueue("escalate", {"ticket": "1"}, lock_key="ticket:1")
    seen: dict[str, Any] = {}

    def stalled(run_rt: Runtime, payload: dict[str, Any]) -> str:
        def pause(point: str) -> None:
            if point == "link" and "taken" not in seen:
                clock.now += 61  # A's lease (60 s) lapses while it is stalled ...
                seen["taken"] = run_rt.store.claim("worker-b", lease_seconds=60)  # ... and B takes the job
                seen["calls"] = vendors.calls()

        return Escalation(run_rt, crash_hook=pause).run(EscalationRequest(ticket_id=payload["ticket"])).issue_key

    a = Worker(rt, worker_id="worker-a", lease_seconds=60, handlers={"escalate": stalled})
    result = a.process_one()
    assert result is not None
    assert result.outcome == "stale"
    assert "LeaseLost" in result.detail
    assert seen["taken"] is not None
    assert seen["taken"].attempt == 2
    assert vendors.calls() == seen["calls"]  # A sent nothing after it lost the lease
    assert effects(vendors) == {"issues": 1, "remote_links": 0, "zendesk_notes": 0, "hubspot_notes": 0}
    clock.now += 61  # B's attempt lapses too; C runs the job to its end
    c = Worker(rt, worker_id="worker-c", lease_seconds=60, handlers={"escalate": escalate_handler})
    finished = c.process_one()
    assert finished is not None
    assert finished.outcome == "done"
    assert effects(vendors) == ONE_OF_EACH


ESCALATION_WRITES = ["tracker create", "remote link", "ticket note+tag+key", "crm note"]
"""The escalation's writes in the order it makes them one at a time (each checks the lease right before it is
sent); the last three go out side by side in production (``one_write_at_a_time`` lines them up)."""
SYNC_WRITES = ["ticket note", "crm note"]
"""Sync back of a move to Done: the note on the linked ticket, then the note on the customer's CRM timeline."""


def paused_before(write: int, pause: Callable[[], None], work: Handler) -> Handler:
    """A handler that runs ``work`` and pauses right before its ``write``-th write (at the lease check), then
    checks the worker's own lease as it would have."""

    def handler(rt: Runtime, payload: dict[str, Any]) -> str:
        worker_guard = contextvars.copy_context()  # holds the worker's lease check
        checks = {"n": 0}

        def check() -> None:
            checks["n"] += 1
            if checks["n"] == write:
                pause()
            worker_guard.run(check_lease)

        with lease_guard(check):
            return str(work(rt, payload))

    return handler


def b_takes_over(
    rt: Runtime, clock: Clock, vendors: Vendors, kind: str, handler: Handler, seen: dict[str, Any]
) -> Callable[[], None]:
    """While A is paused: its lease lapses, and worker B (another thread) takes the job and runs it to its end."""

    def pause() -> None:
        seen["at_pause"] = effects(vendors)
        clock.now += 61
        b = Worker(rt, worker_id="worker-b", lease_seconds=60, handlers={kind: handler})
        thread = threading.Thread(target=lambda: seen.setdefault("b", b.process_one()))
        thread.start()
        thread.join(60)
        seen["after_b"] = vendors.calls()

    return pause


def a_then_b(rt: Runtime, clock: Clock, vendors: Vendors, kind: str, write: int, work: Handler) -> dict[str, Any]:
    """Worker A runs the job and pauses before its ``write``-th write while B finishes it; what was seen then."""
    seen: dict[str, Any] = {}
    pause = b_takes_over(rt, clock, vendors, kind, work, seen)
    a = Worker(rt, worker_id="worker-a", lease_seconds=60, handlers={kind: paused_before(write, pause, work)})
    result = a.process_one()
    assert result is not None
    assert "b" in seen, result
    assert (seen["b"].outcome, seen["b"].attempt) == ("done", 2)
    assert vendors.calls() == seen["after_b"]  # A sent nothing after it resumed without its lease
    assert (result.outcome, "LeaseLost" in result.detail) == ("stale", True)
    return seen


@pytest.fixture
def one_write_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The escalation's independent writes one after the other, in call order, as ``once.side_by_side`` lists them
    (and sync back's, as ``once.by_system`` gets them).

    These tests pause a worker before its n-th write, which names a write only when the writes go out in a fixed
    order; side by side, each write's lease check is the same (``tests/test_side_by_side.py`` shows every helper
    thread checks the caller's lease)."""
    import cxbridge.workflows.escalate as escalate_module
    import cxbridge.workflows.syncback as syncback_module

    monkeypatch.setattr(escalate_module, "side_by_side", lambda *calls: [call() for call in calls])
    monkeypatch.setattr(syncback_module, "by_system", lambda calls, limit: [call() for _, call in calls])


@pytest.mark.usefixtures("one_write_at_a_time")
@pytest.mark.parametrize("write", ESCALATION_WRITES)
def test_a_worker_paused_before_each_escalation_write_leaves_one_effect(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, write: str
) -> None:
    """A pauses right before a write past its lease, B takes the job and finishes: one of each, A writes nothing."""
    clock = Clock()
    rt = sandbox_runtime(vendors, clock=clock)
    rt.store.enqueue("escalate", {"ticket": "1"}, lock_key="ticket:1")
    index = ESCALATION_WRITES.index(write)
    seen = a_then_b(rt, clock, vendors, "escalate", index + 1, escalate_handler)
    # A paused with the writes before this one made, and this one and the later ones not
    assert seen["at_pause"] == {name: int(i < index) for i, name in enumerate(ONE_OF_EACH)}
    assert effects(vendors) == ONE_OF_EACH


JOIN_WRITES = ["remote link", "ticket note+tag+key", "crm note"]
"""A join's writes under an intent, in order (its impact edit is a desired-state write: a replay changes nothing)."""


def join_handler(rt: Runtime, payload: dict[str, Any]) -> str:
    """A job handler that joins the payload's ticket to the payload's issue."""
    return Escalation(rt).run(EscalationRequest(ticket_id=payload["ticket"], link_key=payload["link"])).issue_key


@pytest.mark.usefixtures("one_write_at_a_time")
@pytest.mark.parametrize("write", JOIN_WRITES)
def test_a_worker_paused_before_each_join_write_leaves_one_effect(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, write: str
) -> None:
    """Ticket 2 joins ticket 1's issue; A pauses before a join write past its lease, B finishes: one of each."""
    clock = Clock()
    rt = sandbox_runtime(vendors, clock=clock)
    key = Escalation(rt).run(EscalationRequest(ticket_id="1")).issue_key
    rt.store.enqueue("join", {"ticket": "2", "link": key}, lock_key="ticket:2")
    index = JOIN_WRITES.index(write)
    seen = a_then_b(rt, clock, vendors, "join", index + 1, join_handler)
    first = dict(ONE_OF_EACH)
    joined = {"issues": 1, "remote_links": 2, "zendesk_notes": 2, "hubspot_notes": 2}
    assert seen["at_pause"] == {
        name: first[name] + int(name != "issues" and i - 1 < index) for i, name in enumerate(ONE_OF_EACH)
    }
    assert effects(vendors) == joined


@pytest.mark.usefixtures("one_write_at_a_time")
@pytest.mark.parametrize("write", SYNC_WRITES)
def test_a_worker_paused_before_each_sync_back_write_leaves_one_effect(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, write: str
) -> None:
    """The issue moves to Done; A pauses before a sync-back note past its lease, B finishes: one note each."""
    from cxbridge_jira.webhook import verify_jira

    clock = Clock(time.time())  # the tracker stamps its deliveries with the real time: the store's clock starts there
    rt = sandbox_runtime(vendors, clock=clock)
    vendors["jira"].webhook_targets = [WebhookTarget(url="http://127.0.0.1:9/webhooks/jira", secret="whsec-w")]
    key = Escalation(rt).run(EscalationRequest(ticket_id="1")).issue_key
    start = len(vendors["jira"].webhooks_sent)
    jira = vendors["jira"]
    creds = jira.credentials()
    auth = (creds["engineer_email"], creds["engineer_api_token"])
    url = f"{jira.base_url}/rest/api/2/issue/{key}/transitions"
    done = next(t for t in requests.get(url, auth=auth, timeout=5).json()["transitions"] if t["to"]["name"] == "Done")
    assert requests.post(url, json={"transition": {"id": done["id"]}}, auth=auth, timeout=5).status_code < 300
    [event] = [
        e
        for e in verify_deliveries(verify_jira, jira.webhooks_sent[start:], "whsec-w")
        if e.kind == "jira:issue_updated"
    ]
    assert enqueue_event(rt, "jira", event)
    seen = a_then_b(rt, clock, vendors, "event", SYNC_WRITES.index(write) + 1, default_handlers()["event"])
    assert seen["at_pause"] == ONE_OF_EACH  # (the escalation's own effects: no sync-back note counted there)
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == 1)
    assert sum(1 for c in ticket["comments"] if not c["public"] and f"{key} moved to Done" in c["body"]) == 1
    crm = vendors["hubspot"].state()["objects"]["notes"]
    assert sum(1 for n in crm if f"{key}</a> moved to Done" in n["properties"]["hs_note_body"]) == 1


# --- waiting is not failing -------------------------------------------------------------------------------


def lose_first_create(vendors: Vendors) -> dict[str, int]:
    """Make the tracker's first create time out before it reaches the tracker (nothing is created)."""
    jira = vendors["jira"]
    original = jira.handle
    count = {"creates": 0}

    def handle(request: Any) -> Any:
        if request.method == "POST" and request.path.endswith("/issue"):
            count["creates"] += 1
            if count["creates"] == 1:
                raise requests.exceptions.ReadTimeout("read timed out")
        return original(request)

    jira.handle = handle  # type: ignore[method-assign]
    return count


def run_until_settled(worker: Worker, rt: Runtime, clock: Clock, job_id: int, limit: int = 50) -> list[str]:
    """Run the job on the virtual clock, jumping to each retry's due time; the outcomes in order."""
    outcomes: list[str] = []
    for _ in range(limit):
        job = rt.store.job(job_id)
        assert job is not None
        if job.state in ("done", "dead"):
            return outcomes
        clock.now = max(clock.now, job.run_at)
        result = worker.process_one()
        assert result is not None
        outcomes.append(result.outcome)
    raise AssertionError(f"job {job_id} did not settle: {outcomes}")


def test_an_unconfirmed_create_becomes_one_issue_after_the_grace_by_itself(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    """A create that never reached the tracker waits out the grace (no budget spent) and ends as one issue."""
    clock = Clock()
    rt = sandbox_runtime(vendors, clock=clock, extra={"escalation": {"search_grace_seconds": GRACE}})
    count = lose_first_create(vendors)
    job_id = rt.store.enqueue("escalate", {"ticket": "1"}, lock_key="ticket:1")
    assert job_id is not None
    started = clock.now
    worker = Worker(rt, lease_seconds=60, max_attempts=2, backoff_cap=1.0, handlers={"escalate": escalate_handler})
    outcomes = run_until_settled(worker, rt, clock, job_id)
    assert outcomes[-1] == "done"
    assert "dead" not in outcomes
    assert count["creates"] == 2
    assert effects(vendors) == ONE_OF_EACH
    assert rt.store.dead_letters() == []
    assert clock.now >= started + GRACE
    job = rt.store.job(job_id)
    assert job is not None
    assert job.waits >= 1


def test_a_dead_letter_replayed_within_the_grace_waits_instead_of_dying(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    """An escalation dead-lettered after an unconfirmed create, replayed at once, waits out the grace and ends."""
    clock = Clock()
    rt = sandbox_runtime(vendors, clock=clock, extra={"escalation": {"search_grace_seconds": GRACE}})
    lose_first_create(vendors)
    job_id = rt.store.enqueue("escalate", {"ticket": "1"}, lock_key="ticket:1")
    assert job_id is not None
    worker = Worker(rt, lease_seconds=60, max_attempts=1, handlers={"escalate": escalate_handler})
    result = worker.process_one()
    assert result is not None
    assert result.outcome == "dead"
    (letter,) = rt.store.dead_letters()
    replayed = rt.store.replay_dead_letter(letter.id)
    first = worker.process_one()
    assert first is not None
    assert first.outcome == "retried"
    assert first.run_at is not None
    assert first.run_at >= clock.now + GRACE - 1
    assert run_until_settled(worker, rt, clock, replayed)[-1] == "done"
    assert effects(vendors) == ONE_OF_EACH
    assert len(rt.store.dead_letters()) == 1
