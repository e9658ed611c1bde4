"""A breakdown, in-process: escalations per second of the engine alone, with the emulators behind ``responses``.

**Not an end-to-end figure, and no target is checked here**: the whole pipeline over loopback sockets, with the
emulators and ``cxbridge serve`` in their own processes, is ``bench_pipeline.py`` (issue 16 found this bench's
figures flattering: the ``responses`` mock costs less than sockets, and the emulators' wall time was subtracted
from the process's CPU time). This one stays to split an escalation's cost (``--profile``) and to compare
changes to the engine quickly.

The pipeline is the one a webhook takes: the Zendesk delivery for a ticket that gained the escalation tag is
verified (``verify_zendesk``, as the receiver does), committed to the inbox with its job
(``events.enqueue_event``), claimed by a worker (``worker.drain``) and routed (``events.handle_event``) to an
escalation (Jira issue, remote link, Zendesk note, HubSpot note; store intents, link and audit). The vendors
are the emulators in-process (``mock_vendors``): no network, so what is measured is cxbridge's own cost plus
the emulators'. The time spent inside the emulators' handlers is measured too and reported apart, so that
``engine only`` = wall time minus emulator time is cxbridge's overhead (HTTP layer and ``responses`` mock
included, which makes it an upper bound).

Figures: the escalation alone (``Escalation.run`` in a loop, no queue), the enqueue step, and the pipeline
with 1 worker and with several (threads sharing one Runtime and one SQLite store, durable commits).

    python benchmarks/bench_engine.py [--quick] [--count N] [--workers 1,2,4] [--profile] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common


def _rates(count: int, wall: float, emulator: float, cpu: float) -> dict[str, Any]:
    engine = max(wall - emulator, 1e-9)
    engine_cpu = max(cpu - emulator, 1e-9)
    return {
        "cpu_s": round(cpu, 3),
        "engine_cpu_per_s": round(count / engine_cpu, 1),
        "engine_cpu_ms_per_escalation": round(engine_cpu / count * 1000, 2),
        "escalations": count,
        "wall_s": round(wall, 3),
        "emulator_s": round(emulator, 3),
        "per_s": round(count / wall, 1),
        "engine_only_per_s": round(count / engine, 1),
        "ms_per_escalation": round(wall / count * 1000, 2),
        "engine_ms_per_escalation": round(engine / count * 1000, 2),
    }


def commit_latency_ms(where: Path, n: int = 200) -> float:
    """Mean time of one durable write transaction here (SQLite WAL, synchronous=FULL, like the store's)."""
    import sqlite3

    conn = sqlite3.connect(where / "commit-probe.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (x)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?)", (i,))
        conn.execute("COMMIT")
    spent = time.perf_counter() - start
    conn.close()
    return round(spent / n * 1000, 3)


class WriteCounter:
    """Counts the store's write transactions (wraps the SQLite store's ``_write``: measurement only)."""

    def __init__(self, store: Any) -> None:
        self.count = 0
        original = store._write

        def counted(*a: Any, **kw: Any) -> Any:
            self.count += 1
            return original(*a, **kw)

        store._write = counted


OTHER = "other (builtins and stdlib called from all of these)"
CATEGORIES = (
    ("emulators (sandbox)", ("cxbridge/sandbox/", "/sandbox/", "werkzeug")),
    ("store (SQLite, durable commits)", ("cxbridge/store/", "sqlite3")),
    (
        "requests + responses mock",
        ("requests/", "urllib3/", "responses/", "http/cookiejar", "email/", "urllib/", "<frozen os>"),
    ),
    ("cxbridge HTTP layer (retry, redaction)", ("cxbridge/http/", "tenacity/")),
    ("Markdown to ADF", ("markdown_it/", "cxbridge_jira/adf.py")),
    ("templates (Jinja2)", ("jinja2/", "cxbridge/handoff.py", "markupsafe")),
    ("workflow (escalate, impact, policy, once)", ("cxbridge/workflows/", "cxbridge/impact.py", "cxbridge/policy.py")),
    ("connectors", ("cxbridge_zendesk/", "cxbridge_hubspot/", "cxbridge_jira/")),
    ("json", ("json/",)),
)


def profile(count: int) -> dict[str, Any]:
    """Where an escalation's CPU goes: cProfile's own CPU time per area (indicative: profiling slows Python)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.process_time)  # CPU time: waits (fsync, locks) do not count
    alone(count, profiler)
    stats = pstats.Stats(profiler)
    shares: dict[str, float] = {}
    total = 0.0
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        total += own
        where = f"{filename} {name}"
        area = next((label for label, marks in CATEGORIES if any(m in where for m in marks)), OTHER)
        shares[area] = shares.get(area, 0.0) + own
    return {k: round(100 * v / total, 1) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}


def alone(count: int, profiler: Any = None) -> dict[str, Any]:
    """``Escalation.run`` for ``count`` fresh tickets, one after the other (no queue, no worker)."""
    from cxbridge.sandbox.modes import mock_vendors
    from cxbridge.workflows.escalate import Escalation, EscalationRequest

    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as vendors, _common.workdir() as where:
        tickets = _common.seed_tickets(vendors["zendesk"], count + 5, _common.EMAILS, tags=[_common.ESCALATION_TAG])
        rt = _common.make_runtime(vendors, where)
        for t in tickets[count:]:  # warm-up: templates compiled, connectors built
            Escalation(rt).run(EscalationRequest(ticket_id=str(t), note="warm-up"))
        clock = _common.EmulatorClock(vendors)
        writes = WriteCounter(rt.store)
        before = dict(rt.counter.by_system())
        if profiler is not None:
            profiler.enable()
        cpu = time.process_time()
        start = time.perf_counter()
        for t in tickets[:count]:
            Escalation(rt).run(EscalationRequest(ticket_id=str(t), note="Reproduced; export by month."))
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
        if profiler is not None:
            profiler.disable()
        calls = {k: v - before.get(k, 0) for k, v in rt.counter.by_system().items()}
        out = _rates(count, wall, clock.seconds, cpu)
        out["calls_per_escalation"] = round(sum(calls.values()) / count, 2)
        out["store_write_transactions_per_escalation"] = round(writes.count / count, 1)
        out["durable_commit_ms_here"] = commit_latency_ms(where)
        rt.close()
        return out


def pipeline(count: int, workers: int) -> dict[str, Any]:
    """``count`` tag deliveries verified and enqueued, then drained by ``workers`` worker threads."""
    from cxbridge.sandbox.modes import mock_vendors
    from cxbridge.worker import drain
    from cxbridge.workflows import events

    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as vendors, _common.workdir() as where:
        zd: Any = vendors["zendesk"]
        tickets = _common.seed_tickets(zd, count + 5, _common.EMAILS, tags=[_common.ESCALATION_TAG])
        rt = _common.make_runtime(vendors, where)
        warm = _common.zendesk_events(zd, tickets[count:])
        for event in warm:
            events.enqueue_event(rt, "zendesk", event)
        drain(rt, workers=1, timeout=60)
        jira: Any = vendors["jira"]
        issues_before = len(jira.model.issues) if hasattr(jira, "model") else None

        clock = _common.EmulatorClock(vendors)
        before = dict(rt.counter.by_system())
        start = time.perf_counter()
        batch = _common.zendesk_events(zd, tickets[:count])
        accepted = sum(1 for event in batch if events.enqueue_event(rt, "zendesk", event))
        enqueued = time.perf_counter()
        clock.reset()
        cpu = time.process_time()
        report = drain(rt, workers=workers, timeout=300)
        wall = time.perf_counter() - enqueued
        out = _rates(report.done, wall, clock.seconds, time.process_time() - cpu)
        calls = {k: v - before.get(k, 0) for k, v in rt.counter.by_system().items()}
        out.update(
            {
                "workers": workers,
                "calls_per_escalation": round(sum(calls.values()) / max(1, report.done), 2),
                "enqueue_s": round(enqueued - start, 3),
                "enqueue_per_s": round(count / (enqueued - start), 1),
                "accepted": accepted,
                "drain": {k: v for k, v in report.as_dict().items() if k in ("done", "retried", "dead", "ready")},
                "end_to_end_per_s": round(report.done / (time.perf_counter() - start), 1),
            }
        )
        if issues_before is not None:
            out["issues_created"] = len(jira.model.issues) - issues_before
        rt.close()
        return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    res = _common.result("engine", args.quick)
    count = args.count or (100 if args.quick else 500)
    sizes = [int(x) for x in str(args.workers).split(",") if x]
    figures = res["figures"]
    figures["alone"] = one = alone(count)
    print(
        f"escalation alone: {one['per_s']}/s wall ({one['ms_per_escalation']} ms each), "
        f"{one['engine_only_per_s']}/s engine only ({one['engine_ms_per_escalation']} ms each, "
        f"emulators {one['emulator_s']} s of {one['wall_s']} s), {one['engine_cpu_per_s']}/s of engine CPU "
        f"({one['engine_cpu_ms_per_escalation']} ms each); {one['calls_per_escalation']} calls each"
    )
    print(
        f"  store: {one['store_write_transactions_per_escalation']} write transactions per escalation; one durable "
        f"commit takes {one['durable_commit_ms_here']} ms on this disk"
    )
    if args.profile:
        figures["profile_shares_pct"] = shares = profile(max(20, count // 2))
        print("  profile (share of CPU time): " + ", ".join(f"{k} {v} %" for k, v in shares.items()))
    why = _common.missing_module("cxbridge.worker")
    if why is None:
        from cxbridge.workflows import events

        try:
            events.handle_event(None, None)  # type: ignore[arg-type]
        except NotImplementedError as exc:
            why = f"events.handle_event: {exc}"
        except Exception:  # noqa: S110 - anything but NotImplementedError means the router exists
            pass
    if why is not None:
        _common.unavailable(res, f"the pipeline (H2 worker, H3 router): {why}")
    else:
        figures["pipeline"] = {}
        for n in sizes:
            p = figures["pipeline"][str(n)] = pipeline(count, n)
            print(
                f"pipeline, {n} worker{'s' if n > 1 else ''}: {p['per_s']}/s wall, {p['engine_only_per_s']}/s engine "
                f"only, {p['engine_cpu_per_s']}/s of engine CPU; {p['calls_per_escalation']} calls each; "
                f"enqueue {p['enqueue_per_s']}/s; drain {p['drain']}"
            )
    res["notes"].append("a breakdown over the in-process mock, no target: the end-to-end figures are bench_pipeline's")
    return res


def arguments(p: argparse.ArgumentParser) -> None:
    """This bench's own arguments."""
    p.add_argument("--count", type=int, default=None, help="escalations per measurement (100 quick, 500 full)")
    p.add_argument("--workers", default="1,2,4", help="worker counts for the pipeline, comma separated")
    p.add_argument("--profile", action="store_true", help="also profile the escalation alone: time per area")


if __name__ == "__main__":
    _common.main_guard(run, __doc__ or "", arguments)
