"""``cxbridge worker --drain`` and ``cxbridge sync`` run the long-running worker's retention once per run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cxbridge.cli import cli
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.testing.tools import Clock
from cxbridge.workflows.syncback import ECHO_KIND

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

DAY = 86400.0


def seed(rt: Runtime, clock: Clock) -> None:
    """An inbox row and an echo fingerprint from eight days ago, and fresh ones now."""
    now = clock.now
    clock.now = now - 8 * DAY
    rt.store.accept_delivery("helpdesk", "old", payload={}, job_kind="not-a-kind", job_payload={})
    rt.store.put_snapshot(ECHO_KIND, "old-echo", {"at": "then"})
    clock.now = now
    rt.store.accept_delivery("helpdesk", "new", payload={}, job_kind="not-a-kind", job_payload={})
    rt.store.put_snapshot(ECHO_KIND, "new-echo", {"at": "now"})


def run(config: Path, *args: str) -> None:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args", [("worker", "--drain", "--timeout", "0"), ("sync", "--no-drain"), ("sync",)], ids=" ".join
)
def test_a_run_purges_old_inbox_rows_and_echo_fingerprints(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, args: tuple[str, ...]
) -> None:
    """A cron-only run deletes the inbox row and echo fingerprint past their retention and keeps the fresh ones."""
    config = sandbox_runtime.config(vendors)
    clock = Clock(time.time())
    rt = sandbox_runtime.load(config, clock=clock)
    seed(rt, clock)
    assert rt.store.inbox_row("helpdesk", "old") is not None

    run(config, *args)

    assert rt.store.inbox_row("helpdesk", "old") is None
    assert rt.store.inbox_row("helpdesk", "new") is not None
    assert rt.store.get_snapshot(ECHO_KIND, "old-echo") is None
    assert rt.store.get_snapshot(ECHO_KIND, "new-echo") is not None
