"""Receivers killed -9 while signed deliveries stream in lose no delivery they acknowledged with a 2xx.

Real ``cxbridge serve`` processes (loopback, port 0, ``--workers 0`` so every accepted delivery's job stays queued
to be counted): two on one PostgreSQL store (two machines behind a load balancer), one on a SQLite file. Sender
threads post correctly signed Jira deliveries with unique ids; at seeded random points a receiver is killed -9
and started again while the senders keep going. Afterwards every delivery answered 2xx has its inbox row and its
job, exactly once, and the store already held it when the 2xx arrived (read at that moment from this process:
no answer runs ahead of its commit, batched or not); one that got no answer or a 5xx may be there or not (the
vendor retries it) but never twice; and re-sending every delivery, as the vendor's retries would, queues no
second job.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from cxbridge_jira.webhook import ID_HEADER, SIGNATURE_HEADER, sign

from cxbridge.sandbox.modes import mock_vendors, write_config
from cxbridge.store import Store, open_store

SECRET = "jira-hook-secret-for-kill-tests"
DELIVERIES = 400
SENDERS = 4
KILLS = 4


class Receiver:
    """One ``cxbridge serve`` process, started again after each kill (on a new port: the balancer follows)."""

    def __init__(self, config: Path, log_dir: Path, name: str) -> None:
        self.config = config
        self.log_dir = log_dir
        self.name = name
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.url: str | None = None
        self.lock = threading.Lock()

    def start(self) -> None:
        self.starts += 1
        out = self.log_dir / f"{self.name}-{self.starts}.out"
        err = self.log_dir / f"{self.name}-{self.starts}.err"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("CXBRIDGE_CONFIG", None)
        command = [sys.executable, "-m", "cxbridge", "--config", str(self.config), "serve"]
        command += ["--port", "0", "--workers", "0", "--threads", "4", "--system", "jira"]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            first = out.read_text(encoding="utf-8").splitlines()[:1]
            if first and first[0].startswith("Listening on http://127.0.0.1:"):
                with self.lock:
                    self.proc, self.url = proc, first[0].split()[2]
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        raise AssertionError(f"{self.name} did not start: {err.read_text(encoding='utf-8')[-2000:]}")

    def kill(self) -> int:
        """SIGKILL the process (wherever it is in a request) and wait for it; its return code."""
        with self.lock:
            proc, self.proc, self.url = self.proc, None, None
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=30)

    def endpoint(self) -> str | None:
        with self.lock:
            return f"{self.url}/webhooks/jira" if self.url else None

    def stop(self) -> None:
        with self.lock:
            proc, self.proc, self.url = self.proc, None, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def receivers(config: Path, log_dir: Path, count: int) -> Iterator[list[Receiver]]:
    started = [Receiver(config, log_dir, f"receiver{i}") for i in range(count)]
    try:
        for receiver in started:
            receiver.start()
        yield started
    finally:
        for receiver in started:
            receiver.stop()


def delivery(n: int) -> tuple[str, bytes, dict[str, str]]:
    """Delivery ``n``: a signed jira:issue_updated about its own issue, with a unique delivery id."""
    delivery_id = f"kill-{n:05d}"
    issue = {
        "id": str(20000 + n),
        "key": f"ENG-{n + 1}",
        "self": f"https://example.atlassian.net/rest/api/2/issue/{20000 + n}",
    }
    body = json.dumps({"timestamp": 1765100000000 + n, "webhookEvent": "jira:issue_updated", "issue": issue}).encode()
    return (
        delivery_id,
        body,
        {SIGNATURE_HEADER: sign(SECRET, body), ID_HEADER: delivery_id, "Content-Type": "application/json"},
    )


def post(url: str, body: bytes, headers: dict[str, str]) -> int | None:
    """The answer's status, or None when the connection was cut before one came (a killed receiver)."""
    try:
        return requests.post(url, data=body, headers=headers, timeout=15).status_code
    except requests.RequestException:
        return None


DEFAULT_SEED = 385939173
"""The kill points a run takes unless ``CXBRIDGE_KILL_SEED`` names others (fixed, so every run draws the same)."""


def run_stream(
    pool: list[Receiver], seed: int, witness: Store
) -> tuple[dict[str, list[int | None]], list[int], list[str]]:
    """Send every delivery from ``SENDERS`` threads through the live receivers while a chaos thread kills -9 one
    at seeded random points and starts it again; each delivery's answers, the killed processes' codes, and the
    deliveries answered 2xx that ``witness`` (the store opened by this process) did not hold at that moment."""
    rng = random.Random(seed)
    kill_points = sorted(rng.sample(range(DELIVERIES // 8, DELIVERIES * 7 // 8), KILLS))
    victims = [rng.randrange(len(pool)) for _ in range(KILLS)]
    answers: dict[str, list[int | None]] = {}
    answers_lock = threading.Lock()
    sent = 0
    progress = threading.Condition()
    next_index = iter(range(DELIVERIES))
    codes: list[int] = []
    early: list[str] = []

    def sender(worker: int) -> None:
        nonlocal sent
        turn = worker
        while True:
            with progress:
                n = next(next_index, None)
            if n is None:
                return
            delivery_id, body, headers = delivery(n)
            url = None
            deadline = time.monotonic() + 60
            while url is None and time.monotonic() < deadline:  # the balancer skips a receiver that is down
                url = pool[turn % len(pool)].endpoint()
                turn += 1
                if url is None and turn % len(pool) == 0:
                    time.sleep(0.02)  # every receiver down: wait for one to be back, as the balancer does
            status = post(url, body, headers) if url else None
            if status is not None and status < 300 and witness.inbox_row("jira", delivery_id) is None:
                early.append(delivery_id)  # answered before the commit that holds it
            with answers_lock:
                answers.setdefault(delivery_id, []).append(status)
            with progress:
                sent += 1
                progress.notify_all()

    def chaos() -> None:
        for point, victim in zip(kill_points, victims, strict=True):
            with progress:
                progress.wait_for(lambda: sent >= point, timeout=120)  # noqa: B023 (waited for here, in the loop)
            codes.append(pool[victim].kill())
            pool[victim].start()

    threads = [threading.Thread(target=sender, args=(i,), name=f"sender-{i}") for i in range(SENDERS)]
    killer = threading.Thread(target=chaos, name="chaos")
    for thread in [*threads, killer]:
        thread.start()
    for thread in [*threads, killer]:
        thread.join(300)
    return answers, codes, early


def stored_jobs(store_location: str, deliveries: set[str], why: str) -> dict[str, int]:
    """The deliveries among ``deliveries`` the store holds, each with its job's id, after checking that each has
    exactly one job of its own and that the queue holds no other job (so no delivery queued two)."""
    found: dict[str, int] = {}
    with open_store(store_location) as store:
        for delivery_id in sorted(deliveries):
            row = store.inbox_row("jira", delivery_id)
            if row is None:
                continue
            assert row.job_id is not None, f"{delivery_id}: accepted without its job {why}"
            job = store.job(row.job_id)
            assert job is not None, f"{delivery_id}: its job is missing {why}"
            assert job.payload["event"]["id"] == delivery_id, why
            found[delivery_id] = row.job_id
        assert len(set(found.values())) == len(found), f"two deliveries share a job {why}"
        assert sum(store.queue_depth().values()) == len(found), f"a delivery queued a second job {why}"
    return found


def test_receivers_killed_mid_stream_lose_no_acknowledged_delivery(store_location: str, tmp_path: Path) -> None:
    """Kill -9 receivers at seeded random points of a signed stream (SQLite: one receiver; PostgreSQL: two on one
    store), start them again, keep sending: every 2xx is stored once; a vendor's retry of all queues no second job.
    """
    (tmp_path / "hook-jira.secret").write_text(SECRET, encoding="utf-8")
    extra = {"webhooks": {"secrets": {"jira": [{"file": "hook-jira.secret"}]}}}
    with mock_vendors(["zendesk", "jira", "hubspot"]) as vendors:
        config = write_config(vendors, tmp_path / "cxbridge.toml", extra=extra, store=store_location)
    seed = int(os.environ.get("CXBRIDGE_KILL_SEED") or DEFAULT_SEED)
    why = f"(seed {seed}; CXBRIDGE_KILL_SEED={seed} repeats the kill points)"
    count = 2 if store_location.startswith("postgresql://") else 1  # one SQLite file: one machine

    with receivers(config, tmp_path, count) as pool, open_store(store_location) as witness:
        answers, codes, early = run_stream(pool, seed, witness)
        assert codes == [-signal.SIGKILL] * KILLS, why
        assert not early, f"answered 2xx before the delivery was committed: {len(early)}, first {early[:10]} {why}"
        assert len(answers) == DELIVERIES, why
        statuses = [s for answered in answers.values() for s in answered]
        assert all(s is None or 200 <= s < 300 or s >= 500 for s in statuses), f"{Counter(statuses)} {why}"
        acknowledged = {d for d, answered in answers.items() if any(s is not None and s < 300 for s in answered)}
        assert len(acknowledged) > DELIVERIES // 2, why  # the stream really flowed around the kills

        present = stored_jobs(store_location, set(answers), why)
        lost = sorted(acknowledged - set(present))
        assert not lost, f"acknowledged with a 2xx but not stored: {len(lost)}, first {lost[:10]} {why}"

        # the vendor retries every delivery (what it never heard back about, and what it did: harmless)
        for n in range(DELIVERIES):
            delivery_id, body, headers = delivery(n)
            url = pool[n % count].endpoint()
            assert url is not None
            response = requests.post(url, data=body, headers=headers, timeout=15)
            assert response.status_code == 200, why
            expected = {"accepted": 0, "duplicates": 1} if delivery_id in present else {"accepted": 1, "duplicates": 0}
            assert response.json() == expected, f"{delivery_id}: {response.json()} {why}"

    after = stored_jobs(store_location, set(answers), why)
    assert set(after) == set(answers), why
    assert {d: after[d] for d in present} == present, f"a retry replaced a delivery's job {why}"
