"""Several processes standing for several machines, each with its own store connections (a pool on PostgreSQL):
workers draining one queue (some killed -9 mid-job, some losing their connections), processes migrating a new
database together, and sync run from several processes at once. The effects are counted in a ledger written
through the intent protocol (``cxbridge.testing.drain``): every job's effect exactly once is the guarantee.
"""

from __future__ import annotations

import json
import signal
import signal as signal_module
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cxbridge.sandbox.modes import ServedVendors, Vendors, serve_vendors
from cxbridge.store import open_store
from cxbridge.testing import SandboxRuntimes
from cxbridge.testing.drain import ledger_counts
from cxbridge.workflows.reconcile import reconcile

N_JOBS = 240
WORKERS = 8


def wait(what: str, done: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


class Fleet:
    """Drain processes, one per name, each standing for a machine; ``close()`` kills any still running."""

    def __init__(self, location: str, ledger: Path, **options: Any) -> None:
        self.argv = [sys.executable, "-m", "cxbridge.testing.drain", location, str(ledger)]
        for key, value in options.items():
            self.argv += [f"--{key.replace('_', '-')}", str(value)]
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, *names: str) -> None:
        for name in names:
            self.procs[name] = subprocess.Popen(
                [*self.argv, "--worker-id", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL

    def finish(self) -> list[dict[str, Any]]:
        """Wait for every process to exit 0 once the queue is empty; their figures."""
        figures = []
        for proc in self.procs.values():
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err
            figures.append(json.loads(out.strip().splitlines()[-1]))
        return figures

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)


@contextmanager
def fleet(location: str, ledger: Path, **options: Any) -> Iterator[Fleet]:
    running = Fleet(location, ledger, **options)
    try:
        yield running
    finally:
        running.close()


def assert_each_effect_once(ledger: Path, location: str) -> None:
    counts = ledger_counts(ledger)
    with open_store(location) as store:
        depth = store.queue_depth()
        letters = [letter.error for letter in store.dead_letters()]
    missing = [n for n in range(N_JOBS) if str(n) not in counts]
    repeated = {line: c for line, c in counts.items() if c != 1}
    assert (missing, repeated, letters) == ([], {}, [])  # nothing lost, nothing repeated, nothing dead
    assert depth == {"ready": 0, "leased": 0, "done": N_JOBS, "dead": 0}


def test_eight_worker_processes_drain_each_job_once_with_two_killed_mid_job(
    store_location: str, tmp_path: Path
) -> None:
    """Eight processes drain one queue; two are killed -9 at the worst moment (their job's effect written, not yet
    recorded) and two new ones start: every job runs to done, and every effect exists exactly once."""
    ledger = tmp_path / "ledger"
    hang = tmp_path / "hang"
    hang.mkdir()
    with open_store(store_location) as store:
        # jobs 0 and 1 hang their worker right after the effect; every entity carries several jobs in turn
        ids = [
            store.enqueue("work", {"n": n, "hang_after_write": n < 2}, lock_key=f"e:{n % 40}") for n in range(N_JOBS)
        ]
    hanging = [job_id for job_id in ids[:2] if job_id is not None]
    with fleet(store_location, ledger, lease=2.0, work_ms=2, hang_dir=hang) as machines:
        machines.start(*(f"m{i}" for i in range(WORKERS)))
        wait("two workers hanging after their write", lambda: len(list(hang.iterdir())) == 2)
        with open_store(store_location) as store:
            hung = [store.job(job_id) for job_id in hanging]
        victims = sorted({str(job.worker_id) for job in hung if job is not None})
        assert len(victims) == 2
        for name in victims:
            machines.kill(name)
        machines.start("restarted-0", "restarted-1")
        figures = machines.finish()
    assert sum(f["done"] for f in figures) == N_JOBS  # the killed workers completed none of their jobs' records
    assert_each_effect_once(ledger, store_location)
    with open_store(store_location) as store:
        taken_over = [store.job(job_id) for job_id in hanging]
    assert [job.attempt for job in taken_over if job is not None] == [2, 2]  # taken over once each


def test_dropped_connections_lose_nothing_and_repeat_nothing(pg_url: str, tmp_path: Path) -> None:
    """While four worker processes drain the queue, the server terminates their connections again and again
    (pg_terminate_backend): each reconnects, no job is lost, none is completed twice, no effect is repeated."""
    import psycopg

    ledger = tmp_path / "ledger"
    location = f"{pg_url}&application_name=cxb-drop-test"
    with open_store(location) as store:
        for n in range(N_JOBS):
            store.enqueue("work", {"n": n})
    terminated = 0
    with (
        fleet(location, ledger, lease=2.0, work_ms=3) as machines,
        psycopg.connect(pg_url.split("?")[0], autocommit=True) as admin,
    ):
        machines.start(*(f"m{i}" for i in range(4)))
        wait("the first effect", lambda: ledger.exists())
        for _ in range(6):
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'cxb-drop-test' AND datname = current_database()"
            ).fetchall()
            terminated += len(rows)
            time.sleep(0.3)
        figures = machines.finish()
    assert terminated > 0  # connections were cut while the workers drained
    assert sum(f["done"] for f in figures) <= N_JOBS  # no job recorded done twice (a cut-off answer is not counted)
    assert_each_effect_once(ledger, location)


# --- migrations and sync from several processes -------------------------------------------------------------

OPENER = """
import sys
sys.stdin.readline()
from cxbridge.store import open_store
store = open_store(sys.argv[1])
print(store.enqueue("opened", {}), flush=True)
store.close()
"""


def test_processes_starting_together_migrate_a_new_database_once(pg_url: str) -> None:
    """Four processes opening a new PostgreSQL schema at the same moment apply each migration exactly once."""
    import psycopg

    from cxbridge.store.migrations import MIGRATIONS_TABLE, migrations

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, pg_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(0.5)  # let every interpreter start, so that they open the store together
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outputs.append(int(out.strip()))
    assert sorted(outputs) == [1, 2, 3, 4]
    schema = pg_url.rsplit("%3D", 1)[1]
    with psycopg.connect(pg_url.split("?")[0]) as conn:
        rows = conn.execute(
            f"SELECT migration_set, version FROM {schema}.{MIGRATIONS_TABLE} ORDER BY 1, 2"  # noqa: S608
        ).fetchall()
    assert rows == [(migrations.name, m.version) for m in migrations.all()]


HOLDER = """
import sys
from cxbridge.store import open_store
store = open_store(sys.argv[1])
with store.exclusive(sys.argv[2]) as held:
    print("held" if held else "refused", flush=True)
    sys.stdin.readline()
store.close()
"""


@pytest.fixture
def sync_vendors() -> Iterator[Vendors]:
    from cxbridge.sandbox.modes import mock_vendors

    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as v:
        yield v


def test_sync_from_several_processes_polls_each_stream_once(
    store_location: str, sandbox_runtimes: SandboxRuntimes, sync_vendors: Vendors
) -> None:
    """While another process (another machine's timer) polls the helpdesk's tickets, this process's sync skips that
    stream and makes no call for it, and polls the others; once the other is done, the next run resumes from the
    shared checkpoint."""
    sandbox_runtimes.store = store_location
    rt = sandbox_runtimes(sync_vendors)
    rt.store  # noqa: B018 -- create and migrate it before the other process opens it
    other = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store_location, "sync:zendesk:tickets"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "held"
        report = reconcile(rt)
        streams = {(s.system, s.stream): s for s in report.streams}
        tickets = streams[("zendesk", "tickets")]
        assert tickets.skipped
        assert (tickets.pages, tickets.calls) == (0, 0)
        issues = streams[("jira", "issues")]
        assert not issues.skipped
        assert issues.pages >= 1
    finally:
        assert other.stdin is not None
        other.stdin.write("done\n")
        other.stdin.flush()
        other.communicate(timeout=30)
    assert other.returncode == 0
    again = {(s.system, s.stream): s for s in reconcile(rt).streams}
    assert not again[("zendesk", "tickets")].skipped
    assert again[("zendesk", "tickets")].pages >= 1
    assert rt.store.get_checkpoint("zendesk", "tickets") is not None


# --- real escalations on the emulators, workers killed -9 -------------------------------------------------------


@pytest.fixture
def served() -> Iterator[ServedVendors]:
    """The three emulators on loopback ports, so that separate processes share them."""
    with serve_vendors(("zendesk", "hubspot", "jira"), seed="demo") as running:
        yield running


def escalation_effects(vendors: ServedVendors) -> dict[str, int]:
    """The escalations' effects, counted in the emulators' own state."""
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


def test_worker_processes_killed_mid_escalation_leave_one_of_each(
    pg_url: str, served: ServedVendors, sandbox_runtimes: SandboxRuntimes, tmp_path: Path
) -> None:
    """Three `cxbridge worker --drain` processes on a PostgreSQL store escalate three tickets against the served
    emulators; one is killed -9 as soon as the first issue exists and another starts: every ticket ends with one
    issue, one remote link, one helpdesk note and one CRM note (the emulators' state), no job dead."""
    from cxbridge.models import Ref
    from cxbridge.signals import EscalationRequested
    from cxbridge.workflows.events import enqueue_signal

    sandbox_runtimes.store = pg_url
    config = sandbox_runtimes.config(served)
    rt = sandbox_runtimes.load(config)
    tickets = [t["id"] for t in served["zendesk"].state()["tickets"] if t["status"] not in ("solved", "closed")][:3]
    for ticket in tickets:
        signal = EscalationRequested(ticket=Ref("zendesk", "ticket", str(ticket)))
        assert enqueue_signal(rt, "zendesk", f"test:escalate:{ticket}", signal)
    argv = [sys.executable, "-m", "cxbridge", "--config", str(config), "worker", "--drain", "--lease", "2"]

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)

    procs = [start() for _ in range(3)]
    try:
        wait("the first issue", lambda: escalation_effects(served)["issues"] >= 1, timeout=120)
        victim = procs.pop(0)
        victim.send_signal(signal_module.SIGKILL)
        victim.communicate(timeout=30)
        procs.append(start())
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, (out, err)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    # a job the killed worker held comes back after its lease: drain what is left here
    from cxbridge.worker import drain as drain_queue

    drain_queue(rt, timeout=60)
    n = len(tickets)
    assert escalation_effects(served) == {"issues": n, "remote_links": n, "zendesk_notes": n, "hubspot_notes": n}
    assert rt.store.queue_depth()["dead"] == 0
