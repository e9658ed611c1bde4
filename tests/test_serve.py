"""``cxbridge serve``: the in-process server's lifecycle and workers, the command, and the sandbox wiring."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from cxbridge.cli import cli
from cxbridge.config import load_config
from cxbridge.plugins import build_plugins
from cxbridge.runtime import Runtime
from cxbridge.sandbox import WebhookTarget
from cxbridge.sandbox.modes import mock_vendors, serve_vendors, write_config
from cxbridge.webhooks.metrics import Metrics
from cxbridge.webhooks.serve import serving

JIRA_SECRET = "jira-hook-secret"
ZD_SECRET = "zendesk-hook-secret"


def write_test_config(tmp_path: Path, secrets: dict[str, str]) -> Path:
    """A sandbox-written config (vendors' real base URLs) with the given [webhooks] secrets in files."""
    files = {}
    for name, value in secrets.items():
        (tmp_path / f"hook-{name}.secret").write_text(value, encoding="utf-8")
        files[name] = [{"file": f"hook-{name}.secret"}]
    with mock_vendors(["zendesk", "jira", "hubspot"]) as vendors:
        return write_config(vendors, tmp_path / "cxbridge.toml", extra={"webhooks": {"secrets": files}})


def runtime_for(path: Path) -> Runtime:
    plugins = build_plugins()
    return Runtime(load_config(path, plugins=plugins), plugins)


def jira_delivery(delivery: str = "serve-1", secret: str = JIRA_SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"id": "10001", "key": "ENG-1"}}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": delivery}


def inbox_rows(rt: Runtime) -> list[tuple[str, str]]:
    assert rt.store is not None  # opened (and migrated) on first use
    with contextlib.closing(sqlite3.connect(rt.config.store_path())) as conn:
        return [(str(s), str(d)) for s, d in conn.execute("SELECT system, delivery_id FROM inbox ORDER BY 1, 2")]


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = runtime_for(write_test_config(tmp_path, {"jira": JIRA_SECRET, "zendesk": ZD_SECRET}))
    yield runtime
    runtime.close()


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def test_serving_binds_loopback_and_stops(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """serving() listens on 127.0.0.1 on a free port, starts the workers with the shared Metrics, and stops both."""
    started: dict[str, Any] = {}

    def fake_start_workers(
        runtime: Runtime, n: int, stop: threading.Event, *, metrics: Metrics | None = None
    ) -> list[threading.Thread]:
        started.update(rt=runtime, n=n, stop=stop, metrics=metrics)
        threads = [threading.Thread(target=stop.wait, name=f"fake-worker-{i}", daemon=True) for i in range(n)]
        for thread in threads:
            thread.start()
        return threads

    monkeypatch.setattr("cxbridge.webhooks.serve.start_workers", fake_start_workers)
    with serving(rt, workers=3, systems=["jira"]) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        assert srv.webhook_url("jira") == f"{srv.url}/webhooks/jira"
        assert started["rt"] is rt
        assert started["n"] == 3
        assert started["metrics"] is srv.metrics
        body, headers = jira_delivery()
        assert requests.post(srv.webhook_url("jira"), data=body, headers=headers, timeout=10).status_code == 200
        assert requests.post(f"{srv.url}/webhooks/zendesk", data=b"{}", timeout=10).status_code == 404
        workers = srv.workers
        assert all(t.is_alive() for t in workers)
        port = srv.port
    assert started["stop"].is_set()
    assert not any(t.is_alive() for t in workers)
    assert refused(port)
    assert inbox_rows(rt) == [("jira", "serve-1")]


def test_real_workers_drain_what_the_receiver_queued(rt: Runtime) -> None:
    """With worker threads (cxbridge.worker), a queued delivery's job is claimed and finished by a worker."""
    pytest.importorskip("cxbridge.worker")
    with serving(rt, workers=1) as srv:
        body, headers = jira_delivery("drained")
        assert requests.post(srv.webhook_url("jira"), data=body, headers=headers, timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while sum(srv.metrics.jobs().values()) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(srv.metrics.jobs().values()) >= 1
        assert "cxbridge_jobs_total{outcome=" in requests.get(f"{srv.url}/metrics", timeout=10).text
    assert not any(t.is_alive() for t in srv.workers)


def test_serve_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    """W8: `cxbridge serve` with a served system lacking a secret exits 1 with one line naming the key."""
    path = write_test_config(tmp_path, {"jira": JIRA_SECRET})
    result = CliRunner().invoke(cli, ["--config", str(path), "serve", "--port", "0", "--workers", "0"])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "[webhooks] secrets.zendesk" in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_command_runs_until_sigterm(tmp_path: Path) -> None:
    """The command prints its URLs, accepts a signed delivery, and stops cleanly (exit 0) on SIGTERM."""
    path = write_test_config(tmp_path, {"jira": JIRA_SECRET, "zendesk": ZD_SECRET})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("CXBRIDGE_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cxbridge", "--config", str(path), "serve", "--port", "0", "--workers", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Listening on http://127.0.0.1:"), first + (proc.stderr.read() if proc.stderr else "")
        url = first.split()[2]
        shown = [proc.stdout.readline() for _ in range(5)]
        assert any(f"{url}/webhooks/jira" in line for line in shown), shown
        assert any(f"{url}/webhooks/zendesk" in line for line in shown), shown
        assert any(f"{url}/webhooks/hubspot" in line for line in shown), shown  # its app secret, from the sandbox
        assert requests.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"
        body, headers = jira_delivery("cli-1")
        r = requests.post(f"{url}/webhooks/jira", data=body, headers=headers, timeout=10)
        assert (r.status_code, r.json()) == (200, {"accepted": 1, "duplicates": 0})
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "Stopped." in out
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    rt = runtime_for(path)
    try:
        assert inbox_rows(rt) == [("jira", "cli-1")]
    finally:
        rt.close()


def test_sandbox_config_carries_the_emulators_webhook_secrets(tmp_path: Path) -> None:
    """write_config records each emulator's signing secrets, so the receiver verifies what the sandbox sends."""
    vendors = serve_vendors(["jira", "hubspot"], seed="demo")
    try:
        target = WebhookTarget(url="http://127.0.0.1:9/unset", secret="sandbox-jira-secret")
        vendors["jira"].webhook_targets = [target]
        path = write_config(vendors, tmp_path / "cxbridge.toml")
        text = path.read_text(encoding="utf-8")
        assert "sandbox-jira-secret" not in text
        rt = runtime_for(path)
        secrets = rt.config.section("webhooks")["secrets"]
        assert [s.reveal() for s in secrets["jira"]] == ["sandbox-jira-secret"]
        assert [s.reveal() for s in secrets["hubspot"]] == [vendors["hubspot"].credentials()["client_secret"]]
        try:
            with serving(rt) as srv:
                target.url = srv.webhook_url("jira")
                creds = vendors["jira"].credentials()
                fields = {"project": {"key": "ENG"}, "issuetype": {"name": "Bug"}, "summary": "Checkout fails"}
                created = requests.post(
                    f"{vendors.base_url('jira')}/rest/api/2/issue",
                    json={"fields": fields},
                    auth=(creds["email"], creds["api_token"]),
                    timeout=10,
                )
                assert created.status_code == 201, created.text
                assert vendors["jira"].wait_for_webhooks(10)
                assert srv.metrics.deliveries().get(("jira", "accepted")) == 1, srv.metrics.deliveries()
            assert [system for system, _ in inbox_rows(rt)] == ["jira"]
        finally:
            rt.close()
    finally:
        vendors.stop()


class _Blocking:
    """A waitress task that holds its thread until released."""

    def __init__(self, release: threading.Event, started: threading.Event | None = None) -> None:
        self.release = release
        self.started = started

    def service(self) -> None:
        if self.started is not None:
            self.started.set()
        self.release.wait(10)

    def cancel(self) -> None:
        self.release.set()


def test_requests_waiting_for_a_busy_thread_log_one_line_an_interval(
    rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """waitress logs "Task queue depth" for every request queued behind busy threads; serve logs one line, then
    only counts them (the deepest queue among them) until the interval has passed."""
    from cxbridge.webhooks.serve import QueueDepthLog

    now = [100.0]
    with serving(rt, threads=1) as running:
        dispatcher = running.server.task_dispatcher
        queue_log = dispatcher.queue_logger
        assert isinstance(queue_log, QueueDepthLog)
        queue_log.clock = lambda: now[0]
        release, started = threading.Event(), threading.Event()
        caplog.set_level("WARNING")
        try:
            dispatcher.add_task(_Blocking(release, started))
            assert started.wait(10)  # the only thread is busy from here on
            for _ in range(5):
                dispatcher.add_task(_Blocking(release))
            busy = [r.getMessage() for r in caplog.records if "busy" in r.getMessage() or "queue" in r.getMessage()]
            assert busy == [
                "all 1 receiver threads were busy: up to 1 requests waited for one (0 more such moments "
                "since this was last logged; at most one line a 60 s)"
            ]
            now[0] += 60.0
            dispatcher.add_task(_Blocking(release))
            busy = [r.getMessage() for r in caplog.records if "busy" in r.getMessage() or "queue" in r.getMessage()]
            assert busy[1:] == [
                "all 1 receiver threads were busy: up to 6 requests waited for one (4 more such "
                "moments since this was last logged; at most one line a 60 s)"
            ]
        finally:
            release.set()
