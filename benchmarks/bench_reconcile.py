"""Reconciliation: a scan of 100,000 Zendesk tickets by ``cxbridge.workflows.reconcile`` — calls, time, memory.

The emulators run in their own process (``_vendor_server.py``, served on loopback) holding the tickets, seeded
straight into the Zendesk model (not through 100,000 API calls); one ticket in ``--tagged-every`` carries the
escalation tag, so the scan has escalation requests to find and enqueue (inbox row + job, durable commits).
This process only runs cxbridge: ``reconcile(rt, systems=["zendesk"], since=<before the oldest ticket>)``, i.e.
the Zendesk incremental cursor export from the start, page by page (1,000 tickets a page).

Memory, two ways, both of this (scanning) process only:
- ``maxrss``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the process's peak resident set (interpreter, every
  imported library and the scan) after the scan, next to the same value before it;
- ``tracemalloc`` peak: Python allocations made during a second, identical scan (into a fresh store), traced
  from its start; the first scan, untraced, gives the time and the calls.

``--quick`` measures the same way (100,000 tickets, the untraced scan's maxrss, then the traced one): tracing the
measured scan would add tracemalloc's own memory to its maxrss (about 9 MB here), so a quick figure would not
mean what the full one means.

    python benchmarks/bench_reconcile.py [--quick] [--tickets N] [--tagged-every K] [--out FILE]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

HERE = Path(__file__).resolve().parent
TARGET_CALLS, TARGET_MB = 101, 60.0


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


class _HttpTimer:
    """Adds up the time the connector's HTTP requests take (network, emulator, reading the answer)."""

    def __init__(self, connector: Any) -> None:
        self.seconds = 0.0
        session = connector.http.session
        original = session.request

        def timed(*a: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                self.seconds += time.perf_counter() - start

        session.request = timed


def run(args: argparse.Namespace) -> dict[str, Any]:
    res = _common.result("reconcile", args.quick)
    tickets = args.tickets or 100_000
    why = _common.missing_module("cxbridge.workflows.reconcile")
    if why is None:
        from cxbridge_zendesk.connector import ZendeskConnector

        from cxbridge.connectors import Helpdesk

        if getattr(ZendeskConnector, "changed_tickets", None) is getattr(Helpdesk, "changed_tickets", None):
            why = "the Zendesk connector has no changed_tickets (incremental export)"
    if why:
        _common.unavailable(res, f"reconciliation (H4, issue 5): {why}")
        _common.target(res, f"Zendesk calls to scan {tickets:,} tickets", None, "<=", TARGET_CALLS)
        _common.target(res, "peak memory of the scanning process (maxrss)", None, "<=", TARGET_MB, "MB")
        return res

    from cxbridge.config import load_config
    from cxbridge.plugins import build_plugins
    from cxbridge.runtime import Runtime
    from cxbridge.store import open_store
    from cxbridge.workflows.reconcile import reconcile

    with _common.workdir() as where:
        cmd = [sys.executable, str(HERE / "_vendor_server.py"), "--tickets", str(tickets)]
        cmd += ["--tagged-every", str(args.tagged_every), "--dir", str(where)]
        server = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            line = server.stdout.readline().split()
            if not line or line[0] != "READY":
                raise RuntimeError(f"the vendor server did not start: {line}")
            config_path, since, seeded_s, tagged = Path(line[1]), float(line[2]), float(line[3]), int(line[4])
            plugins = build_plugins()
            rt = Runtime(load_config(config_path, plugins=plugins), plugins)
            rt.store  # noqa: B018 - open (and migrate) the store before measuring
            http = _HttpTimer(rt.connector("zendesk"))
            rss_before = _maxrss_mb()
            start = time.perf_counter()
            report = reconcile(rt, systems=["zendesk"], since=since)  # untraced: its maxrss is the figure
            elapsed = time.perf_counter() - start
            rss_after = _maxrss_mb()
            calls = rt.counter.by_op("zendesk")
            outcomes = rt.counter.by_outcome("zendesk")
            stream = report.streams[0]
            depth = rt.store.queue_depth()
            rt.close()
            # the same scan again into a fresh store, traced (after the maxrss was read)
            rt2 = Runtime(load_config(config_path, plugins=plugins), plugins, store=open_store(where / "traced.db"))
            tracemalloc.start()
            t2 = time.perf_counter()
            report2 = reconcile(rt2, systems=["zendesk"], since=since)
            traced: dict[str, Any] = {"same_scan": False, "s": round(time.perf_counter() - t2, 2)}
            traced["records"] = report2.streams[0].records
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rt2.close()
        finally:
            if server.stdin:
                server.stdin.close()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()

    figures = res["figures"]
    figures.update(
        {
            "tickets": tickets,
            "tagged": tagged,
            "seed_s": seeded_s,
            "records_scanned": stream.records,
            "pages": stream.pages,
            "zendesk_calls": sum(calls.values()),
            "calls_by_op": calls,
            "outcomes": outcomes,
            "enqueued": stream.enqueued,
            "queue_ready": depth.get("ready"),
            "done": stream.done,
            "error": stream.error,
            "scan_s": round(elapsed, 2),
            "http_wait_s": round(http.seconds, 2),
            "cxbridge_s": round(elapsed - http.seconds, 2),
            "tickets_per_s": round(stream.records / elapsed) if elapsed else None,
            "maxrss_mb_before_scan": round(rss_before, 1),
            "maxrss_mb_after_scan": round(rss_after, 1),
            "tracemalloc_peak_mb": round(peak / 2**20, 1),
            "traced_scan": traced,
        }
    )
    print(
        f"scanned {stream.records:,} of {tickets:,} tickets in {elapsed:.1f} s ({figures['tickets_per_s']}/s; "
        f"{http.seconds:.1f} s waiting for the emulator, {elapsed - http.seconds:.1f} s in cxbridge), "
        f"{figures['zendesk_calls']} Zendesk calls ({stream.pages} pages), enqueued {stream.enqueued} of {tagged} "
        f"tagged; maxrss {rss_before:.0f} -> {rss_after:.0f} MB; tracemalloc peak {figures['tracemalloc_peak_mb']} MB"
    )
    _common.target(res, f"Zendesk calls to scan {tickets:,} tickets", figures["zendesk_calls"], "<=", TARGET_CALLS)
    _common.target(res, "peak memory of the scanning process (maxrss)", round(rss_after, 1), "<=", TARGET_MB, "MB")
    peak_mb = figures["tracemalloc_peak_mb"]
    _common.target(res, "peak Python allocations during the scan", peak_mb, "<=", TARGET_MB, "MB")
    _common.target(res, "tagged tickets found and enqueued", stream.enqueued, ">=", tagged)
    return res


def arguments(p: argparse.ArgumentParser) -> None:
    """This bench's own arguments."""
    p.add_argument("--tickets", type=int, default=None, help="tickets to seed and scan (default 100,000)")
    p.add_argument("--tagged-every", type=int, default=100, help="one ticket in K carries the escalation tag")


if __name__ == "__main__":
    _common.main_guard(run, __doc__ or "", arguments)
