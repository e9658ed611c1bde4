"""The whole pipeline over loopback HTTP: agent's tag -> emulator webhook -> ``cxbridge serve`` -> workers.

Three processes: the emulators (``_vendor_server.py``, no added latency), ``cxbridge serve`` with its default
worker threads on a durable SQLite store, and this one, which only adds the escalation tag to fresh tickets
through the Zendesk API, as an agent would (``PUT /api/v2/tickets/{id}``), at a fixed rate (open loop: each tag
at its planned time, whatever the answers), then waits until every job is finished and every ticket escalated.

Reported per escalation: the CPU time of the ``cxbridge serve`` process (receiver, queue, workers, and the jobs
the emulators' echo deliveries make) and of the emulators' process (which also answers the tags), read from
``/proc``; the jobs queued; and the rate, escalations finished over the time from the first tag to the last
job. The rate follows the load; the CPU per escalation is the figure to compare (the target: at most 8 ms, so
at least 125 escalations/s per core for cxbridge's own share).

    python benchmarks/bench_pipeline.py [--quick] [--count N] [--rate PER_S] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
from bench_latency import cpu_seconds, jobs

AGENT = "alex@cxbridge.example"
TARGET_CPU_MS, TARGET_JOBS = 8.0, 1.0


def links(store: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM links").fetchone()[0])
    finally:
        conn.close()


def settle(store: Path, expected_links: int, timeout: float) -> float:
    """Wait until no job of ``cxbridge serve``'s store is ready or running and ``expected_links`` tickets are linked,
    for half a second (the echo deliveries have come and gone); when it became quiet (``perf_counter``)."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        depth = jobs(store)
        idle = depth.get("ready", 0) == 0 and depth.get("leased", 0) == 0
        if idle and links(store) >= expected_links:
            quiet_since = quiet_since or time.perf_counter()
            if time.perf_counter() - quiet_since >= 0.5:
                return quiet_since
        else:
            quiet_since = None
        time.sleep(0.01)
    raise RuntimeError(f"the pipeline did not settle within {timeout} s: {jobs(store)}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import requests

    res = _common.result("pipeline", args.quick)
    count = args.count or (60 if args.quick else 300)
    rate = args.rate
    warm = 3
    with _common.workdir() as where, _common.served(where, count + warm, tagged_every=0, workers=args.workers) as up:
        base, store = up.base, up.store
        token = up.secret("zendesk.api_token")
        tickets = list(range(up.first, up.first + count + warm))
        local = threading.local()

        def tag(ticket_id: int) -> None:
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
                session.auth = (f"{AGENT}/token", token)
            put = f"{base['zendesk']}/api/v2/tickets/{ticket_id}"
            session.put(put, json={"ticket": {"tags": [_common.ESCALATION_TAG]}}, timeout=30).raise_for_status()

        for t in tickets[:warm]:
            tag(t)
        settle(store, warm, 60)
        jobs_before = sum(jobs(store).values())
        cpu_serve, cpu_vendors = cpu_seconds(up.serve.pid), cpu_seconds(up.vendors.pid)
        start = time.perf_counter()
        late = open_loop(tag, tickets[warm:], rate)
        sent = time.perf_counter()
        done = settle(store, warm + count, 300)
        cpu_serve_after, cpu_vendors_after = cpu_seconds(up.serve.pid), cpu_seconds(up.vendors.pid)
        jobs_after = jobs(store)
        escalated = links(store) - warm
    wall = done - start
    figures: dict[str, Any] = {
        "escalations": escalated,
        "planned_rate_per_s": rate,
        "tags_sent_s": round(sent - start, 3),
        "tags_late_over_100ms": late,
        "wall_s": round(wall, 3),
        "escalations_per_s": round(escalated / wall, 1),
        "jobs_per_escalation": round((sum(jobs_after.values()) - jobs_before) / count, 2),
        "jobs_by_state": jobs_after,
        "workers": args.workers,
    }
    if cpu_serve is not None and cpu_serve_after is not None and cpu_vendors is not None and cpu_vendors_after:
        serve_ms = (cpu_serve_after - cpu_serve) * 1000 / count
        figures["cxbridge_cpu_ms_per_escalation"] = round(serve_ms, 2)
        figures["emulators_cpu_ms_per_escalation"] = round((cpu_vendors_after - cpu_vendors) * 1000 / count, 2)
        figures["cxbridge_escalations_per_cpu_s"] = round(1000 / serve_ms, 1) if serve_ms else None
    res["figures"] = figures
    print(
        f"{escalated} escalations in {wall:.2f} s ({figures['escalations_per_s']}/s, tags at {rate}/s); "
        f"cxbridge serve {figures.get('cxbridge_cpu_ms_per_escalation')} ms CPU each, emulators "
        f"{figures.get('emulators_cpu_ms_per_escalation')} ms; {figures['jobs_per_escalation']} jobs each"
    )
    _common.target(res, "escalations finished", escalated, ">=", count)
    _common.target(
        res,
        "cxbridge CPU per escalation, whole pipeline",
        figures.get("cxbridge_cpu_ms_per_escalation"),
        "<=",
        TARGET_CPU_MS,
        "ms",
    )
    _common.target(res, "jobs per escalation", figures["jobs_per_escalation"], "<=", TARGET_JOBS)
    return res


def open_loop(send: Any, items: list[int], rate: float, senders: int = 8) -> int:
    """Send each item at its planned time (``rate`` per second) from ``senders`` threads; how many went late."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    late = 0
    with ThreadPoolExecutor(max_workers=senders) as pool:
        futures = []
        for n, item in enumerate(items):
            due = start + n / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif wait < -0.1:
                late += 1
            futures.append(pool.submit(send, item))
        for f in futures:
            f.result()
    return late


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, default=None, help="escalations (default 300, 60 with --quick)")
    p.add_argument("--rate", type=float, default=20.0, help="tags per second, open loop (default 20)")
    p.add_argument("--workers", type=int, default=2, help="cxbridge serve's worker threads (default 2)")


if __name__ == "__main__":
    _common.main_guard(run, __doc__ or "", add_arguments)
