"""Webhook ingest: deliveries per second accepted by ``cxbridge serve`` at a fixed rate, open loop, while its
default workers escalate; latency and none lost.

Three processes: the emulators (``_vendor_server.py``), ``cxbridge serve`` with its default worker threads on a
durable store (SQLite WAL, ``synchronous = FULL``: every accepted delivery's inbox row and job are on disk before
the 200), and this load generator. The deliveries are signed Zendesk trigger deliveries, each with its own event
id, for ``--tickets`` tickets that exist in the emulators: the workers escalate each ticket on its first delivery
and route the rest (the ticket is linked already) while the deliveries keep coming. The bodies are what the
Zendesk emulator emits for a ticket that gains the escalation tag (``webhook_body``), signed like Zendesk.

Open loop: delivery *n* is due at ``n / rate`` seconds, whatever the answers so far (``--senders`` threads with
keep-alive sessions send them); a delivery's latency runs from its due time to its answer, so a server that falls
behind is charged for the wait too. Afterwards the store is opened and the inbox rows counted against the 2xx
answers (none lost).

A warm-up comes first and is not counted: ``--warm-s`` (0.5 s) of deliveries at the same rate, from the same
sessions, about 5 tickets of their own, then a wait until the workers have finished every job (the senders'
connections, the receiver's first deliveries, the workers' first escalations: what a process pays once). The
measured schedule's own tickets are fresh, so the workers escalate them while it runs. Besides the whole run's
p50/p99, the p99 of each second of the schedule shows where the slow answers come from.

The rate figure is the rate the receiver kept up with: 2xx answers divided by the
schedule's length (``count / rate``), or, when the last answer came later than the latency bound (50 ms) after the
last due time, by the time from the first due time to the last answer less that bound. A receiver that keeps up
scores the offered rate; one that falls behind scores its own drain rate (its queue grows, and so does its p99).
The bench offers the target rate by default (500/s); ``--rate 600`` shows the headroom above it.

    python benchmarks/bench_ingest.py [--quick] [--rate PER_S] [--count N] [--warm-s S] [--senders N]
                                      [--threads N] [--workers N] [--out FILE]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
from bench_latency import cpu_seconds, jobs

TARGET_RATE, TARGET_P99_MS = 500, 50.0
OFFERED_RATE = 500
"""Deliveries per second offered by default: the target rate."""
QUICK_SECONDS = 5
"""The quick run's schedule (the full run's: 20 s)."""
WARM_SECONDS, WARM_TICKETS = 0.5, 5
"""The warm-up before the measured schedule, at the same rate about tickets of its own."""


def settle(store: Path, timeout: float) -> None:
    """Wait until no job of ``cxbridge serve``'s store is ready or running."""
    deadline = time.monotonic() + timeout
    while (depth := jobs(store)).get("ready", 0) or depth.get("leased", 0):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not finish the warm-up's jobs within {timeout} s: {depth}")
        time.sleep(0.02)


def deliveries(
    count: int, tickets: int, base_url: str, secret: str, first: int, *, tagged: bool = False, skip: int = 0
) -> list[tuple[bytes, dict[str, str]]]:
    """``count`` signed Zendesk trigger deliveries (each its own event id) over ``tickets`` tickets, the first
    ``skip`` seeded tickets left out.

    Built by an emulator seeded like ``_vendor_server.py`` (the demo, then the tickets: ``--tagged-every 0``, or
    ``1`` with ``tagged``), so the ids match the served emulator's, whose base URL the bodies carry."""
    from cxbridge_zendesk.sandbox.backend import ZendeskBackend

    backend = ZendeskBackend(base_url)
    backend.seed("demo")
    tags = [_common.ESCALATION_TAG] if tagged else None
    subject = "Tagged" if tagged else "Untagged"
    ids = _common.seed_tickets(backend, skip + tickets, _common.EMAILS, subject=subject, tags=tags, spread=0.0)
    if ids[0] != first:
        raise RuntimeError(f"the tickets' ids differ from the served emulator's ({ids[0]} != {first})")
    out = _common.zendesk_deliveries(backend, [ids[skip + n % tickets] for n in range(count)], secret)
    backend.close()
    return out


def load(url: str, items: list[tuple[bytes, dict[str, str]]], rate: float, sessions: list[Any]) -> dict[str, Any]:
    """Send delivery n at ``n / rate`` s (open loop) from one thread per session (keep-alive, left open); each
    latency runs from the due time to the answer."""
    import queue

    import requests

    lock = threading.Lock()
    latencies: list[tuple[int, float]] = []  # (delivery, latency)
    answered: list[float] = []  # each sender's last answer
    statuses: dict[int | str, int] = {}
    due: queue.Queue[tuple[float, int] | None] = queue.Queue()

    def sender(session: Any) -> None:
        mine: list[tuple[int, float]] = []
        counts: dict[int | str, int] = {}
        last = 0.0
        while (item := due.get()) is not None:
            at, i = item
            body, headers = items[i]
            try:
                outcome: int | str = session.post(url, data=body, headers=headers, timeout=30).status_code
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            last = time.perf_counter()
            mine.append((i, last - at))
            counts[outcome] = counts.get(outcome, 0) + 1
        with lock:
            answered.append(last)
            latencies.extend(mine)
            for k, v in counts.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=sender, args=(session,)) for session in sessions]
    for t in threads:
        t.start()
    start = time.perf_counter()
    behind = 0
    for i in range(len(items)):
        at = start + i / rate
        wait = at - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        elif wait < -0.05:
            behind += 1
        due.put((at, i))
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join()
    elapsed = max(answered, default=start) - start  # first due time to the last answer
    schedule = len(items) / rate  # first due time to the end of the last delivery's slot
    span = max(schedule, elapsed - TARGET_P99_MS / 1000)  # a last answer within the latency bound keeps up
    return {
        "sent": len(latencies),
        "elapsed": elapsed,
        "span": span,
        "latencies": [latency for _, latency in sorted(latencies)],  # in the schedule's order
        "statuses": statuses,
        "behind": behind,
    }


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
    rate = args.rate
    count = args.count or int(rate * (QUICK_SECONDS if args.quick else 20))
    warm_count = int(rate * args.warm_s)
    with _common.workdir() as where:
        with _common.served(
            where, WARM_TICKETS + args.tickets, tagged_every=0, workers=args.workers, threads=args.threads, echoes=False
        ) as up:
            import requests

            secret, zendesk = up.secret("zendesk.webhook"), up.base["zendesk"]
            warm_items = deliveries(warm_count, WARM_TICKETS, zendesk, secret, up.first)
            items = deliveries(count, args.tickets, zendesk, secret, up.first, skip=WARM_TICKETS)
            url = f"{up.url}/webhooks/zendesk"
            sessions = [requests.Session() for _ in range(args.senders)]
            # warm-up, not counted: the senders' connections, the receiver's and the workers' first deliveries and
            # jobs (escalations of their own tickets); then the workers finish every job
            if warm_items:
                warm = load(url, warm_items, rate, sessions)
                if warm["statuses"].get(200, 0) != warm_count:
                    raise RuntimeError(f"the receiver refused valid deliveries: {warm['statuses']}")
                settle(up.store, 120)
            cpu_before = cpu_seconds(up.serve.pid)
            run_ = load(url, items, rate, sessions)
            cpu_after = cpu_seconds(up.serve.pid)
            depth_at_end = jobs(up.store)
            for session in sessions:
                session.close()
        rows = count_rows(up.store)
    lat = run_["latencies"]
    ok = run_["statuses"].get(200, 0)
    accepted_total = ok + warm_count
    figures = res["figures"]
    figures.update(
        {
            "deliveries_sent": run_["sent"],
            "accepted_200": ok,
            "statuses": {str(k): v for k, v in sorted(run_["statuses"].items(), key=str)},
            "elapsed_s": round(run_["elapsed"], 3),
            "accepted_per_s": round(ok / run_["span"], 1) if run_["span"] else None,
            "latency_ms": {
                "p50": round(_common.percentile(lat, 50) * 1000, 2),
                "p90": round(_common.percentile(lat, 90) * 1000, 2),
                "p99": round(_common.percentile(lat, 99) * 1000, 2),
                "max": round(max(lat) * 1000, 2),
                "p99_each_second": [
                    round(_common.percentile(lat[n : n + int(rate)], 99) * 1000, 2)
                    for n in range(0, len(lat), int(rate))
                ],
            },
            "offered_rate_per_s": rate,
            "warm_up": f"{warm_count} deliveries at the rate about {WARM_TICKETS} other tickets, then idle workers;"
            " not counted",
            "rate_measured_as": "2xx answers / max(count / rate, last answer - first due time - 50 ms)",
            "server_cpu_ms_per_delivery": (
                None
                if cpu_before is None or cpu_after is None
                else round((cpu_after - cpu_before) * 1000 / max(1, run_["sent"]), 3)
            ),
            "sends_behind_schedule_over_50ms": run_["behind"],
            "senders": args.senders,
            "server_threads": args.threads,
            "workers": args.workers,
            "jobs_by_state_when_the_load_ended": depth_at_end,
            "store": rows,
            "lost": accepted_total - rows["inbox_rows"],
            "durability": "SQLite WAL, synchronous=FULL, inbox row + job in one BEGIN IMMEDIATE transaction",
        }
    )
    print(
        f"sent {run_['sent']} deliveries in {run_['elapsed']:.2f} s offered at {rate}/s, open loop, "
        f"{args.workers} workers: {figures['accepted_per_s']}/s kept up with, p50 {figures['latency_ms']['p50']} ms, "
        f"p99 {figures['latency_ms']['p99']} ms; statuses {figures['statuses']}; "
        f"cxbridge serve's CPU (receiver and workers) {figures['server_cpu_ms_per_delivery']} ms a delivery"
    )
    print(f"store: {rows['inbox_rows']} inbox rows, {rows['jobs']} jobs for {accepted_total} accepted")
    _common.target(res, "webhook deliveries accepted per second", figures["accepted_per_s"], ">=", TARGET_RATE, "/s")
    _common.target(res, "webhook p99 latency", figures["latency_ms"]["p99"], "<=", TARGET_P99_MS, "ms")
    _common.target(res, "deliveries lost (2xx without an inbox row)", figures["lost"], "<=", 0)
    return res


def arguments(p: argparse.ArgumentParser) -> None:
    """This bench's own arguments."""
    p.add_argument("--rate", type=float, default=float(OFFERED_RATE), help="deliveries per second offered, open loop")
    p.add_argument("--count", type=int, default=None, help="deliveries to send (default 20 s of the rate, 5 quick)")
    p.add_argument(
        "--warm-s", type=float, default=WARM_SECONDS, help=f"warm-up at the rate, not counted (default {WARM_SECONDS})"
    )
    p.add_argument("--tickets", type=int, default=50, help="tickets the deliveries are about")
    p.add_argument("--senders", type=int, default=16, help="sender threads (each a keep-alive session)")
    p.add_argument("--threads", type=int, default=8, help="waitress threads of cxbridge serve")
    p.add_argument("--workers", type=int, default=2, help="worker threads of cxbridge serve (its default: 2)")


if __name__ == "__main__":
    _common.main_guard(run, __doc__ or "", arguments)
