"""``cxbridge worker --metrics-port``: the worker process's own /metrics, on loopback, moved by the jobs it ran."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from cxbridge.config import load_config
from cxbridge.models import Event, Ref, event_to_dict
from cxbridge.plugins import build_plugins
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import mock_vendors, write_config
from cxbridge.webhooks.metrics import Metrics, MetricsServer
from cxbridge.worker import drain


def queue_one(rt: Runtime) -> None:
    event = Event(
        id="delivery-1",
        system="zendesk",
        kind="ticket.updated",
        subject=Ref("zendesk", "ticket", "1"),
        payload={"ticket": {"id": 1, "tags": []}},
        received_at=datetime.now(UTC),
    )
    rt.store.enqueue("event", {"event": event_to_dict(event), "system": "zendesk"}, lock_key="zendesk:ticket:1")


def test_worker_metrics_server_serves_the_jobs_it_ran(tmp_path: Path) -> None:
    """A drain with a MetricsServer: /metrics on 127.0.0.1 parses and counts and times the job."""
    with mock_vendors(["zendesk", "jira", "hubspot"], seed="demo") as vendors:
        path = write_config(vendors, tmp_path / "cxbridge.toml")
    plugins = build_plugins()
    rt = Runtime(load_config(path, plugins=plugins), plugins)
    metrics = Metrics(rt.config.systems)
    server = MetricsServer(metrics, rt)
    try:
        assert server.host == "127.0.0.1"
        queue_one(rt)
        report = drain(rt, metrics=metrics, timeout=10)
        assert report.done == 1
        text = requests.get(server.url, timeout=10).text
        found = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert found[("cxbridge_jobs_total", (("outcome", "done"),))] == 1
        assert found[("cxbridge_job_duration_seconds_count", (("kind", "event"), ("outcome", "done")))] == 1
        assert found[("cxbridge_queue_jobs", (("state", "done"),))] == 1
        assert found[("cxbridge_store_up", ())] == 1
        assert found[("process_open_fds", ())] > 0
    finally:
        server.stop()
        rt.close()


def test_worker_command_announces_its_metrics_on_loopback(tmp_path: Path) -> None:
    """``cxbridge worker --drain --metrics-port 0`` says where /metrics listens (127.0.0.1 by default)."""
    with mock_vendors(["zendesk", "jira", "hubspot"], seed="demo") as vendors:
        path = write_config(vendors, tmp_path / "cxbridge.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXBRIDGE_")}
    done = subprocess.run(
        [sys.executable, "-m", "cxbridge", "--config", str(path), "worker", "--drain", "--metrics-port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"metrics on http://127\.0\.0\.1:\d+/metrics", done.stderr), done.stderr
