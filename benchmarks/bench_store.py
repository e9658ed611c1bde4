"""The store under a steady load: its size once retention applies, and ``/healthz`` beside a million finished jobs.

**Size.** A SQLite store on a simulated clock takes ``--per-day`` deliveries a day (inbox row and job, as the
receiver commits them), each job claimed and completed, and the workers' housekeeping runs every simulated hour
with the default retentions (7 days for inbox rows and finished jobs). The file's used pages (page count minus the
free list) are recorded each day: they grow for the retention, then stay flat (freed pages are reused).

**/healthz.** A store holding ``--jobs`` finished jobs (written straight into the table, in one transaction)
answers ``GET /healthz`` through ``cxbridge serve``'s receiver on loopback; the queue depth comes from the counters
the store maintains, so the answer does not grow with the jobs table. Reported: p50 and p99 of 200 requests.

    python benchmarks/bench_store.py [--quick] [--per-day N] [--days N] [--jobs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

TARGET_HEALTHZ_MS = 2.0
FLAT_TOLERANCE = 1.10  # the last day's size within 10 % of the size when retention started to apply


class SimClock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


def used_bytes(store: Any) -> int:
    conn = store._conn()
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0]) - int(
        conn.execute("PRAGMA freelist_count").fetchone()[0]
    )
    return pages * int(conn.execute("PRAGMA page_size").fetchone()[0])


def steady(where: Path, per_day: int, days: int) -> dict[str, Any]:
    """Deliveries and jobs day after day on a simulated clock, housekeeping hourly; used bytes per day."""
    from cxbridge.store import SQLiteStore
    from cxbridge.store.base import INBOX_RETENTION_SECONDS, JOB_RETENTION_SECONDS

    clock = SimClock()
    store = SQLiteStore(where / "steady.db", clock=clock)
    payload = {"event": {"id": "x", "payload": {"ticket": {"id": 1, "description": "d" * 2000}}}}
    sizes: list[int] = []
    n = 0
    per_hour = max(1, per_day // 24)
    for _day in range(days):
        for _hour in range(24):
            for _ in range(per_hour):
                n += 1
                store.accept_delivery("zendesk", f"d{n}", payload={"id": n}, job_kind="event", job_payload=payload)
                job = store.claim("w", lease_seconds=60)
                assert job is not None
                store.complete(job.id, job.attempt)
            clock.now += 3600
            store.purge_inbox(INBOX_RETENTION_SECONDS)
            store.purge_jobs(JOB_RETENTION_SECONDS)
        sizes.append(used_bytes(store))
    depth = store.queue_depth()
    store.close()
    retention_days = int(JOB_RETENTION_SECONDS // 86400)
    at_retention = sizes[retention_days] if len(sizes) > retention_days else None
    return {
        "deliveries_per_day": per_hour * 24,
        "days": days,
        "used_mb_by_day": [round(s / 1e6, 2) for s in sizes],
        "growth_after_retention": round(sizes[-1] / at_retention, 3) if at_retention else None,
        "jobs_kept_at_the_end": depth,
    }


def healthz(where: Path, jobs: int) -> dict[str, Any]:
    """``GET /healthz`` on loopback beside ``jobs`` finished jobs."""
    import requests

    from cxbridge.store import SQLiteStore
    from cxbridge.webhooks.serve import serving

    path = where / "cxbridge.db"
    store = SQLiteStore(path)
    conn = store._conn()
    now = time.time()
    started = time.perf_counter()
    with store._write() as w:
        w.executemany(
            "INSERT INTO jobs (kind, payload, state, attempt, run_at, created_at, updated_at)"
            " VALUES ('event', '{}', 'done', 1, ?, ?, ?)",
            ((now, now, now) for _ in range(jobs)),
        )
    filled = time.perf_counter() - started
    counted = int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
    store.close()
    with _common.workdir() as cfg:
        from cxbridge.sandbox.modes import mock_vendors

        with mock_vendors(["zendesk", "hubspot", "jira"]) as vendors:
            rt = _common.make_runtime(vendors, cfg, cxbridge={"store": str(path)})
        try:
            with serving(rt, threads=2, systems=[]) as srv, requests.Session() as session:
                url = f"{srv.url}/healthz"
                answer = session.get(url, timeout=10).json()
                samples = []
                for _ in range(200):
                    start = time.perf_counter()
                    session.get(url, timeout=10).raise_for_status()
                    samples.append((time.perf_counter() - start) * 1000)
        finally:
            rt.close()
    return {
        "finished_jobs": counted,
        "fill_s": round(filled, 1),
        "queue": answer.get("queue"),
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(_common.percentile(samples, 99), 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    res = _common.result("store", args.quick)
    per_day = args.per_day or (480 if args.quick else 2400)
    days = args.days or 12
    jobs = args.jobs or (100_000 if args.quick else 1_000_000)
    with _common.workdir() as where:
        res["figures"]["steady"] = s = steady(where, per_day, days)
        print(f"used MB by day at {s['deliveries_per_day']}/day: {s['used_mb_by_day']}")
        res["figures"]["healthz"] = h = healthz(where, jobs)
        print(f"/healthz beside {h['finished_jobs']:,} finished jobs: p50 {h['p50_ms']} ms, p99 {h['p99_ms']} ms")
    _common.target(
        res,
        "store growth from the retention day to the last day",
        s["growth_after_retention"],
        "<=",
        FLAT_TOLERANCE,
        "x",
    )
    _common.target(res, f"/healthz p50 beside {jobs:,} finished jobs", h["p50_ms"], "<=", TARGET_HEALTHZ_MS, "ms")
    return res


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--per-day", type=int, default=None, help="deliveries a simulated day (2400; 480 quick)")
    p.add_argument("--days", type=int, default=None, help="simulated days (12)")
    p.add_argument("--jobs", type=int, default=None, help="finished jobs beside /healthz (1,000,000; 100,000 quick)")


if __name__ == "__main__":
    _common.main_guard(run, __doc__ or "", add_arguments)
