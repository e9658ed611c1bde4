"""Operable logs: a long-running command logs at ``[cxbridge] log_level`` with timestamps, or one JSON object per
line, and ``--debug`` opens cxbridge's and the HTTP stack's loggers only. Run as real processes: the logging set-up
of the command line is what is under test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cxbridge.models import Event, Ref, event_to_dict
from cxbridge.sandbox.modes import mock_vendors, write_config
from cxbridge.store import SQLiteStore

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 [A-Z]+ [\w.]+: ")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A sandbox configuration whose store holds one queued delivery that means nothing (no vendor is called)."""
    secrets = {}
    for name in ("zendesk", "jira", "hubspot"):
        (tmp_path / f"{name}.secret").write_text(f"{name}-signing-secret-for-tests", encoding="utf-8")
        secrets[name] = [{"file": f"{name}.secret"}]
    with mock_vendors(["zendesk", "jira", "hubspot"], seed="demo") as vendors:
        path = write_config(vendors, tmp_path / "cxbridge.toml", extra={"webhooks": {"secrets": secrets}})
    event = Event(
        id="delivery-1",
        system="zendesk",
        kind="ticket.updated",
        subject=Ref("zendesk", "ticket", "1"),
        payload={"ticket": {"id": 1, "tags": []}},
        received_at=datetime.now(UTC),
    )
    store = SQLiteStore(tmp_path / "cxbridge.db")
    store.enqueue("event", {"event": event_to_dict(event), "system": "zendesk"}, lock_key="zendesk:ticket:1")
    store.close()
    return path


def worker(config: Path, *options: str) -> list[str]:
    """``cxbridge [options] worker --drain`` in its own process; its stderr lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXBRIDGE_")}
    done = subprocess.run(
        [sys.executable, "-m", "cxbridge", "--config", str(config), *options, "worker", "--drain"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stderr.splitlines() if line.strip()]


def test_the_worker_logs_each_job_outcome_at_info_with_a_timestamp(config: Path) -> None:
    """With the default ``log_level = "INFO"``, the job's outcome is one timestamped INFO line."""
    lines = worker(config)
    outcome = [line for line in lines if "done: ignored" in line]
    assert len(outcome) == 1
    assert STAMP.match(outcome[0])
    assert " INFO cxbridge.worker: " in outcome[0]
    assert all(STAMP.match(line) for line in lines)


def test_json_log_lines_parse(config: Path) -> None:
    """``--log-format json``: every line is a JSON object with time, level, logger and message."""
    records = [json.loads(line) for line in worker(config, "--log-format", "json")]
    assert records
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    [outcome] = [r for r in records if r["level"] == "INFO" and "done: ignored" in r["message"]]
    assert outcome["logger"] == "cxbridge.worker"
    assert outcome["job"] == 1
    assert outcome["kind"] == "event"
    assert outcome["system"] == "zendesk"
    assert outcome["ticket"] == "zendesk:ticket:1"
    assert outcome["outcome"] == "ignored"
    assert outcome["attempt"] == 1
    assert isinstance(outcome["duration"], float)
    assert outcome["detail"] == "ignored: ticket.updated"


def test_serve_with_the_default_config_logs_each_job_outcome(config: Path) -> None:
    """``cxbridge serve`` (the default config: log_level INFO, one worker) writes the job's outcome as one
    timestamped INFO line, and as a JSON object with its fields under ``--log-format json``."""
    for options, check in (
        ((), lambda line: bool(STAMP.match(line)) and " INFO cxbridge.worker: " in line),
        (("--log-format", "json"), lambda line: json.loads(line)["outcome"] == "ignored"),
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CXBRIDGE_")}
        command = [sys.executable, "-m", "cxbridge", "--config", str(config), *options, "serve", "--port", "0"]
        with subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env) as proc:
            try:
                assert proc.stderr is not None
                seen: list[str] = []
                for line in proc.stderr:
                    seen.append(line)
                    if "done: ignored" in line:
                        break
                assert seen, "serve wrote nothing"
                assert "done: ignored" in seen[-1], seen
                assert check(seen[-1].strip()), seen[-1]
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        store = SQLiteStore(config.parent / "cxbridge.db")  # the next run has a job to log again
        first = store.job(1)
        assert first is not None
        store.enqueue("event", first.payload, lock_key="zendesk:ticket:1")
        store.close()


def test_debug_opens_only_cxbridge_and_the_http_stack(config: Path) -> None:
    """``--debug`` adds DEBUG lines from cxbridge's loggers; no third-party library logs below WARNING."""
    lines = worker(config, "--debug")
    loggers = {line.split(" ", 3)[2].rstrip(":") for line in lines if STAMP.match(line)}
    levels = {line.split(" ", 3)[1] for line in lines if STAMP.match(line)}
    assert "cxbridge.worker" in loggers
    assert "DEBUG" in levels or "INFO" in levels
    third_party_debug = [
        line
        for line in lines
        if STAMP.match(line)
        and line.split(" ", 3)[1] in ("DEBUG", "INFO")
        and not line.split(" ", 3)[2].startswith(("cxbridge", "urllib3"))
    ]
    assert third_party_debug == []
    # and with a third-party library that does log at DEBUG (the Markdown parser logs every rule)
    probe = (
        "import logging; from cxbridge.cli.logs import setup_logging; setup_logging(debug=True); "
        "logging.getLogger('markdown_it.rules').debug('parser-rule'); "
        "logging.getLogger('cxbridge.probe').debug('own-debug'); logging.getLogger('urllib3.pool').debug('http-debug')"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert "own-debug" in done.stderr
    assert "http-debug" in done.stderr
    assert "parser-rule" not in done.stderr


def test_log_level_warning_keeps_the_worker_quiet(config: Path) -> None:
    """``[cxbridge] log_level = "WARNING"``: the outcome line is not written."""
    text = config.read_text(encoding="utf-8")
    assert "[cxbridge]\n" in text
    config.write_text(text.replace("[cxbridge]\n", '[cxbridge]\nlog_level = "WARNING"\n', 1), encoding="utf-8")
    assert not any("done: ignored" in line for line in worker(config))
