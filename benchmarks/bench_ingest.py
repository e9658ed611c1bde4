"""Webhook ingest: deliveries per second accepted by ``cxbridge serve``, latency, and none lost.

``cxbridge serve --workers 0`` runs as its own process (waitress, its default 8 HTTP threads) on a store with
durable commits (SQLite WAL, ``synchronous = FULL``: every accepted delivery's inbox row and job are on disk
before the 200). A bounded load generator in this process (``--clients`` threads, each with its own
keep-alive ``requests.Session``) posts signed Zendesk trigger deliveries, each with its own event id, until
``--count`` deliveries are sent or ``--seconds`` have passed. The bodies are what the Zendesk emulator emits
for a ticket that gains the escalation tag (``webhook_body``), signed like Zendesk (base64 HMAC-SHA256 of
timestamp + body). Afterwards the store is opened and the inbox rows and queued jobs are counted: every 2xx must
have its row (none lost).

    python benchmarks/bench_ingest.py [--quick] [--count N] [--clients N] [--threads N] [--seconds S]
                                      [--out FILE]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

TARGET_RATE, TARGET_P99_MS = 500, 50.0
SECRET = _common.BENCH_SECRET


def deliveries(count: int, tickets: int = 50) -> list[tuple[bytes, dict[str, str]]]:
    """``count`` signed Zendesk trigger deliveries (each its own event id) over ``tickets`` tickets."""
    from cxbridge_zendesk.sandbox.backend import ZendeskBackend

    backend = ZendeskBackend()
    backend.seed("demo")
    ids = _common.seed_tickets(backend, tickets, ["ada@acme.example", "grace@globex.example"])
    out = _common.zendesk_deliveries(backend, [ids[n % tickets] for n in range(count)])
    backend.close()
    return out


def write_config(where: Path) -> Path:
    """A config whose systems point at the (unused) in-process emulators, with the Zendesk signing secret."""
    from cxbridge.sandbox.modes import mock_vendors, write_config

    (where / "zendesk.bench.secret").write_text(SECRET, encoding="utf-8")
    with mock_vendors(["zendesk", "hubspot", "jira"]) as vendors:
        return write_config(
            vendors,
            where / "cxbridge.toml",
            extra={"webhooks": {"secrets": {"zendesk": [{"file": "zendesk.bench.secret"}]}}},
        )


def load(url: str, items: list[tuple[bytes, dict[str, str]]], clients: int, seconds: float) -> dict[str, Any]:
    """Post the deliveries from ``clients`` threads until all are sent or time is up; latencies and statuses."""
    import requests

    lock = threading.Lock()
    cursor = {"next": 0}
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    deadline = time.monotonic() + seconds

    def client() -> None:
        session = requests.Session()
        mine: list[float] = []
        counts: dict[int | str, int] = {}
        while time.monotonic() < deadline:
            with lock:
                i = cursor["next"]
                if i >= len(items):
                    break
                cursor["next"] = i + 1
            body, headers = items[i]
            start = time.perf_counter()
            try:
                response = session.post(url, data=body, headers=headers, timeout=10)
                outcome: int | str = response.status_code
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            mine.append(time.perf_counter() - start)
            counts[outcome] = counts.get(outcome, 0) + 1
        session.close()
        with lock:
            latencies.extend(mine)
            for k, v in counts.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"sent": len(latencies), "elapsed": elapsed, "latencies": latencies, "statuses": statuses}


def count_rows(store: Path) -> dict[str, Any]:
    """Inbox rows and jobs in the store after the run (read-only)."""
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        inbox = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
        jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
        sync = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    return {"inbox_rows": int(inbox), "jobs": int(jobs), "journal_mode": str(sync)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    res = _common.result("ingest", args.quick)
    why = _common.missing_module("cxbridge.webhooks.serve") or _common.missing_module("cxbridge.webhooks.receiver")
    if why:
        _common.unavailable(res, f"cxbridge serve (H1, issue 5): {why}")
        _common.target(res, "webhook deliveries accepted per second", None, ">=", TARGET_RATE, "/s")
        return res
    count = args.count or (2000 if args.quick else 10000)
    seconds = args.seconds or (15.0 if args.quick else 40.0)
    items = deliveries(count)
    with _common.workdir() as where:
        config = write_config(where)
        proc, base = _common.start_serve(config, workers=0, threads=args.threads, systems=["zendesk"])
        try:
            import requests

            url = f"{base}/webhooks/zendesk"
            warm = requests.post(url, data=items[0][0], headers=items[0][1], timeout=10)  # not counted
            if warm.status_code != 200:
                raise RuntimeError(f"the receiver refused a valid delivery: {warm.status_code} {warm.text[:200]}")
            run_ = load(url, items[1:], args.clients, seconds)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        rows = count_rows(where / "cxbridge.db")
    lat = run_["latencies"]
    ok = run_["statuses"].get(200, 0)
    accepted_total = ok + 1  # the warm-up delivery
    figures = res["figures"]
    figures.update(
        {
            "deliveries_sent": run_["sent"],
            "accepted_200": ok,
            "statuses": {str(k): v for k, v in sorted(run_["statuses"].items(), key=str)},
            "elapsed_s": round(run_["elapsed"], 3),
            "accepted_per_s": round(ok / run_["elapsed"], 1) if run_["elapsed"] else None,
            "latency_ms": {
                "p50": round(_common.percentile(lat, 50) * 1000, 2),
                "p90": round(_common.percentile(lat, 90) * 1000, 2),
                "p99": round(_common.percentile(lat, 99) * 1000, 2),
                "max": round(max(lat) * 1000, 2),
            },
            "clients": args.clients,
            "server_threads": args.threads,
            "store": rows,
            "lost": accepted_total - rows["inbox_rows"],
            "durability": "SQLite WAL, synchronous=FULL, inbox row + job in one BEGIN IMMEDIATE transaction",
        }
    )
    print(
        f"sent {run_['sent']} deliveries in {run_['elapsed']:.2f} s from {args.clients} clients: "
        f"{figures['accepted_per_s']}/s accepted, p50 {figures['latency_ms']['p50']} ms, "
        f"p99 {figures['latency_ms']['p99']} ms; statuses {figures['statuses']}"
    )
    print(f"store: {rows['inbox_rows']} inbox rows, {rows['jobs']} jobs for {accepted_total} accepted")
    _common.target(res, "webhook deliveries accepted per second", figures["accepted_per_s"], ">=", TARGET_RATE, "/s")
    _common.target(res, "webhook p99 latency", figures["latency_ms"]["p99"], "<=", TARGET_P99_MS, "ms")
    _common.target(res, "deliveries lost (2xx without an inbox row)", figures["lost"], "<=", 0)
    return res


def arguments(p: argparse.ArgumentParser) -> None:
    """This bench's own arguments."""
    p.add_argument("--count", type=int, default=None, help="deliveries to send (default 2000 quick, 10000 full)")
    p.add_argument("--clients", type=int, default=8, help="concurrent sender threads")
    p.add_argument("--threads", type=int, default=8, help="waitress threads of cxbridge serve")
    p.add_argument("--seconds", type=float, default=None, help="stop sending after this long")


if __name__ == "__main__":
    _common.main_guard(run, __doc__ or "", arguments)
