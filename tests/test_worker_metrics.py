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


def test_log_fields_name_the_outcome_and_the_records() -> None:
    """What a job's log line carries: the handler's own outcome word, the ticket or issue, the issue key."""
    from cxbridge.worker import JobResult, log_fields

    joined = JobResult(
        3,
        "event",
        2,
        "done",
        "escalated: zendesk:ticket:2 joined ENG-1",
        seconds=0.25,
        system="zendesk",
        subject="zendesk:ticket:2",
    )
    fields = log_fields(joined)
    assert (fields["outcome"], fields["ticket"], fields["issue_key"], fields["attempt"]) == (
        "joined",
        "zendesk:ticket:2",
        "ENG-1",
        2,
    )
    created = JobResult(4, "event", 1, "done", "escalated: zendesk:ticket:5 created ENG-9", subject="zendesk:ticket:5")
    assert (log_fields(created)["outcome"], log_fields(created)["issue_key"]) == ("escalated", "ENG-9")
    synced = JobResult(5, "signal", 1, "done", "synced: ENG-9 comment 7: 2 note(s)", subject="jira:issue:10009")
    assert (log_fields(synced)["outcome"], log_fields(synced)["issue"]) == ("synced", "jira:issue:10009")
    dead = JobResult(6, "event", 8, "dead", "NotFound: gone")
    assert log_fields(dead)["outcome"] == "dead-lettered"
    assert "issue_key" not in log_fields(dead)
    retried = JobResult(7, "event", 1, "retried", "Unavailable: 503", run_at=12.5)
    assert (log_fields(retried)["outcome"], log_fields(retried)["run_at"]) == ("retried", 12.5)
    secret = JobResult(8, "event", 1, "dead", "AuthError: sent Authorization: Bearer abcdef0123456789abcdef")
    assert "abcdef0123456789abcdef" not in log_fields(secret)["detail"]


def test_job_metrics_look_up_each_label_set_once_and_count_every_job() -> None:
    """``Metrics.job`` finds a labelled child once per label set (``labels()`` costs more than the increment),
    and the exposition still counts and times every job under its own labels."""
    metrics = Metrics(process=False)
    lookups: list[tuple[str, ...]] = []
    for family in (metrics._jobs, metrics._job_seconds):
        original = family.labels

        def counted(*values: str, _original: object = original) -> object:
            lookups.append(values)
            return _original(*values)  # type: ignore[operator]

        family.labels = counted  # type: ignore[method-assign]
    for _ in range(3):
        metrics.job("done", kind="event", seconds=0.01)
    metrics.job("retried", kind="notice", seconds=0.02)
    metrics.job("done", kind="event")
    assert sorted(lookups) == [("done",), ("event", "done"), ("notice", "retried"), ("retried",)]
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render())
        for s in family.samples
    }
    assert found[("cxbridge_jobs_total", (("outcome", "done"),))] == 4
    assert found[("cxbridge_jobs_total", (("outcome", "retried"),))] == 1
    assert found[("cxbridge_job_duration_seconds_count", (("kind", "event"), ("outcome", "done")))] == 3
    assert found[("cxbridge_job_duration_seconds_count", (("kind", "notice"), ("outcome", "retried")))] == 1
    assert metrics.jobs() == {"done": 4, "retried": 1, "dead": 0}
