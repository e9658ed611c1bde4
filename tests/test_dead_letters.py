"""Dead letters (RELIABILITY.md Q6): permanent errors after one attempt, transient ones after max attempts, no
secret in a letter, replay once; and the ``cxbridge dead-letters`` and ``cxbridge worker`` commands."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from cxbridge.cli import cli
from cxbridge.errors import Unavailable, VendorError
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors, mock_vendors
from cxbridge.secrets import Secret
from cxbridge.store import AlreadyReplayed
from cxbridge.testing import SandboxRuntimes
from cxbridge.worker import Worker

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

NOTE = "Engineering shipped the fix (from a queued job)."


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with mock_vendors(["zendesk"], seed="demo") as v:
        yield v


@pytest.fixture
def config(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Path:
    # the worker retries, not the client
    return sandbox_runtime.config(vendors, systems={"zendesk": {"max_retries": 0}})


@pytest.fixture
def rt(config: Path, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime.load(config)


def get_ticket(rt: Runtime, payload: dict[str, Any]) -> str:
    return rt.helpdesk("zendesk").get_ticket(str(payload["ticket"])).subject


def add_note(rt: Runtime, payload: dict[str, Any]) -> str:
    rt.helpdesk("zendesk").add_internal_note(str(payload["ticket"]), payload["body"])
    return "noted"


HANDLERS = {"get": get_ticket, "note": add_note}


def worker(rt: Runtime, **kw: Any) -> Worker:
    kw.setdefault("rng", random.Random(5))
    kw.setdefault("backoff_base", 0.0)  # due again at once: no sleeping in tests
    return Worker(rt, handlers=HANDLERS, **kw)


def run_all(w: Worker) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    while w.run_once():
        assert w.last is not None
        seen.append((w.last.outcome, w.last.attempt))
    return seen


def fail_next(vendors: Vendors, **body: Any) -> None:
    r = requests.post(f"{vendors.base_url('zendesk')}/_sandbox/fail-next", json=body)
    assert r.json()["ok"]


def notes(vendors: Vendors, ticket: int, body: str) -> int:
    [t] = [t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket]
    return sum(1 for c in t["comments"] if body in str(c.get("body", "")) and not c.get("public", True))


# --- Q6 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"), [(400, "VendorError"), (401, "AuthError"), (403, "AuthError"), (422, "VendorError")]
)
def test_permanent_4xx_is_dead_after_one_attempt(rt: Runtime, vendors: Vendors, status: int, error: str) -> None:
    fail_next(vendors, status=status, count=1)
    job = rt.store.enqueue("get", {"ticket": 1})
    assert run_all(worker(rt)) == [("dead", 1)]
    [letter] = rt.store.dead_letters()
    assert letter.job_id == job
    assert letter.attempt == 1
    assert letter.error.startswith(f"{error}: zendesk: {status}")
    assert [c.status for c in vendors["zendesk"].calls] == [status]


def test_unknown_record_is_dead_after_one_attempt(rt: Runtime, vendors: Vendors) -> None:
    rt.store.enqueue("get", {"ticket": 424242})
    assert run_all(worker(rt)) == [("dead", 1)]
    [letter] = rt.store.dead_letters()
    assert letter.error.startswith("NotFound: zendesk: 404")
    assert len(vendors["zendesk"].calls) == 1


def test_transient_past_max_attempts_is_dead_and_replay_gives_one_effect(rt: Runtime, vendors: Vendors) -> None:
    fail_next(vendors, status=500, count=4, method="PUT")
    job = rt.store.enqueue("note", {"ticket": 1, "body": NOTE})
    assert run_all(worker(rt, max_attempts=4)) == [("retried", 1), ("retried", 2), ("retried", 3), ("dead", 4)]
    [letter] = rt.store.dead_letters()
    assert letter.job_id == job
    assert letter.attempt == 4
    assert not letter.replayed
    assert letter.error.startswith("gave up after 4 attempts: AmbiguousOutcome: zendesk: 500")
    assert [c.status for c in vendors["zendesk"].calls] == [500] * 4
    assert notes(vendors, 1, NOTE) == 0

    new_job = rt.store.replay_dead_letter(letter.id)
    assert new_job != job
    replayed = rt.store.dead_letter(letter.id)
    assert replayed is not None
    assert replayed.replayed
    assert replayed.replay_job_id == new_job
    with pytest.raises(AlreadyReplayed):
        rt.store.replay_dead_letter(letter.id)
    assert run_all(worker(rt, max_attempts=4)) == [("done", 1)]
    assert notes(vendors, 1, NOTE) == 1
    assert rt.store.queue_depth() == {"ready": 0, "leased": 0, "done": 1, "dead": 1}


def test_a_replayed_job_keeps_its_entity_lock(rt: Runtime) -> None:
    rt.store.enqueue("get", {"ticket": 424242}, lock_key="zendesk:ticket:424242")
    assert run_all(worker(rt)) == [("dead", 1)]
    [letter] = rt.store.dead_letters()
    rt.store.enqueue("other", {}, lock_key="zendesk:ticket:424242")
    running = rt.store.claim("elsewhere", lease_seconds=60, kinds=["other"])
    assert running is not None
    replayed = rt.store.replay_dead_letter(letter.id)
    assert rt.store.claim("here", lease_seconds=60) is None  # the ticket is busy: the replay waits
    assert rt.store.complete(running.id, running.attempt)
    claimed = rt.store.claim("here", lease_seconds=60)
    assert claimed is not None
    assert claimed.id == replayed


def test_dead_letters_and_logs_hold_no_secret(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    value = "sk-live-9f8e7d6c5b4a39281706"
    Secret(value, "env:TEST_WORKER_SECRET")

    def leaky(rt: Runtime, payload: dict[str, Any]) -> str:
        if payload["kind"] == "transient":
            raise Unavailable("jira", f"jira: 503 while sending token={value}")
        raise VendorError("jira", f"jira: 400 Bad Request: header\nAuthorization: Bearer {value} rejected")

    transient = rt.store.enqueue("leaky", {"kind": "transient"})
    permanent = rt.store.enqueue("leaky", {"kind": "permanent"})
    w = Worker(rt, handlers={"leaky": leaky}, rng=random.Random(1), backoff_base=1000.0)
    with caplog.at_level(logging.DEBUG, logger="cxbridge"):
        assert w.run_once()
        assert w.run_once()
    retried = rt.store.job(transient or 0)
    dead = rt.store.job(permanent or 0)
    assert retried is not None
    assert retried.state == "ready"
    assert retried.last_error is not None
    assert dead is not None
    assert dead.state == "dead"
    assert dead.last_error is not None
    [letter] = rt.store.dead_letters()
    for text in (letter.error, retried.last_error, dead.last_error, caplog.text):
        assert value not in text
        assert value[:12] not in text
    assert "***" in letter.error
    assert "\n" not in letter.error
    assert letter.error.startswith("VendorError: jira: 400 Bad Request: header Authorization: ***")


# --- the commands -----------------------------------------------------------------------------------------------


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_dead_letters_commands_list_show_replay(config: Path, rt: Runtime) -> None:
    code, out, err = run(config, "dead-letters", "list")
    assert code == 0, err
    assert out.strip() == "no dead letters"

    rt.store.enqueue("get", {"ticket": 424242})
    rt.store.enqueue("event", {"event": {"kind": "ticket.updated", "subject": "zendesk:ticket:9"}, "system": "zd"})
    w = Worker(rt, handlers={"get": get_ticket, "event": lambda rt, p: get_ticket(rt, {"ticket": 4242})})
    assert run_all(w) == [("dead", 1), ("dead", 1)]
    rt.close()

    code, out, err = run(config, "dead-letters", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["1", "job", "1", "get"]
    assert "not replayed" in lines[0]
    assert lines[1].strip().startswith("NotFound: zendesk: 404")
    assert "ticket.updated zendesk:ticket:9" in lines[2]

    code, out, err = run(config, "dead-letters", "list", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [(d["id"], d["job_id"], d["kind"], d["attempt"]) for d in data] == [(1, 1, "get", 1), (2, 2, "event", 1)]
    assert data[0]["payload"] == {"ticket": 424242}
    assert data[0]["replayed_at"] is None

    code, out, err = run(config, "dead-letters", "show", "1")
    assert code == 0, err
    assert "job_id:" in out
    assert "error:" in out
    assert "NotFound: zendesk: 404" in out
    assert json.loads(out[out.index("payload:") + len("payload:") :]) == {"ticket": 424242}

    code, out, err = run(config, "dead-letters", "show", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["payload"]["event"]["subject"] == "zendesk:ticket:9"

    code, out, err = run(config, "dead-letters", "show", "99")
    assert code != 0
    assert "no dead letter with id 99" in one_line(err)

    code, out, err = run(config, "dead-letters", "replay", "1")
    assert code == 0, err
    assert out.strip() == "dead letter 1 queued again as job 3"

    code, out, err = run(config, "dead-letters", "replay", "1")
    assert code != 0
    line = one_line(err)
    assert "dead letter 1 was replayed already (as job 3)" in line

    code, out, err = run(config, "dead-letters", "replay", "99")
    assert code != 0
    assert "no dead letter with id 99" in one_line(err)

    code, out, err = run(config, "dead-letters", "list")
    assert "replayed as job 3" in out.splitlines()[0]

    # the replayed job is of a kind the default worker does not run: a drain leaves it ready
    code, out, err = run(config, "worker", "--drain", "--json", "--timeout", "5")
    assert code == 0, err
    report = json.loads(out)
    assert (report["done"], report["dead"], report["ready"], report["leased"]) == (0, 0, 1, 0)
    code, out, err = run(config, "worker", "--drain", "--timeout", "5")
    assert code == 0, err
    assert out.splitlines()[0] == "done 0, retried 0, dead 0"
    assert "left in the queue: 1 ready" in out


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_worker_command_runs_until_sigterm(config: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cxbridge", "--config", str(config), "worker", "--workers", "2", "--lease", "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "2 worker(s) running" in first
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "workers stopped." in err
