"""Calls per job: API calls per system, and wall time, for cxbridge beside the SDK scripts, on one sandbox.

The baseline is the tuned SDK script (``sdk_way.escalate``: sideloads, associations, ``prefetch=False``, ADF
through v3, priority from tier, the impact section); the naive one (``sdk_way.escalate_naive``) is measured
beside it to show what those choices are worth. Targets (issue 16): cxbridge never makes more calls than the
tuned script for the same job, and fewer on joins, sync back and replays, where its store knows more.

Jobs: a new escalation (with the agent's note), joining an existing issue (with a note), and syncing one Jira
transition back to N linked tickets (N = 1, 3, 10). cxbridge's calls are read from its ``CallCounter`` and
checked against the emulators' own call logs (what ``GET /_sandbox/calls`` returns); the SDK way
(``sdk_way.py``: zenpy, pycontribs jira, hubspot-api-client) is counted from the emulators' call logs. Both
talk real HTTP to the same emulators served on loopback (``serve_vendors``), in the same run.

Each escalation job runs ``rounds`` times on fresh tickets; the table shows the calls (identical every round,
else the maximum) and the median wall time. One warm-up escalation each way runs first and is not counted
(template compilation, first connections).

    python benchmarks/bench_calls.py [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
import sdk_way

NOTE = "Reproduced on a 2M-row report; workaround: export by month."
SYNC_SIZES = (1, 3, 10)
NEW_BUDGET, JOIN_BUDGET = 8, 9


class Meter:
    """Calls per system between two points: from cxbridge's counter and from the emulators' call logs."""

    def __init__(self, vendors: Any, counter: Any | None = None) -> None:
        self.vendors = vendors
        self.counter = counter

    def _logs(self) -> dict[str, int]:
        return {name: len(self.vendors[name].calls) for name in self.vendors}

    def measure(self, job: Callable[[], Any]) -> dict[str, Any]:
        logs = self._logs()
        counted = dict(self.counter.by_system()) if self.counter is not None else {}
        start = time.perf_counter()
        value = job()
        wall = time.perf_counter() - start
        after_logs = self._logs()
        by_log = {k: after_logs[k] - logs[k] for k in after_logs if after_logs[k] - logs[k]}
        requests = [
            f"{name} {c.method} {c.path.split('?')[0]} {c.status}"
            for name in self.vendors
            for c in self.vendors[name].calls[logs[name] : after_logs[name]]
        ]
        out: dict[str, Any] = {
            "calls": by_log,
            "total": sum(by_log.values()),
            "wall_ms": wall * 1000,
            "value": value,
            "requests": requests,
        }
        if self.counter is not None:
            now = self.counter.by_system()
            out["counter"] = {k: v - counted.get(k, 0) for k, v in now.items() if v - counted.get(k, 0)}
        return out


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Calls (max over rounds, per system) and the median wall time of repeated runs of one job."""
    systems: dict[str, int] = {}
    for s in samples:
        for k, v in s["calls"].items():
            systems[k] = max(systems.get(k, 0), v)
    totals = [s["total"] for s in samples]
    out: dict[str, Any] = {
        "calls": systems,
        "total": max(totals),
        "stable": len(set(totals)) == 1,
        "wall_ms_median": statistics.median(s["wall_ms"] for s in samples),
        "rounds": len(samples),
        "requests": samples[-1]["requests"],
    }
    if "counter" in samples[0]:
        out["counter_agrees"] = all(s["counter"] == s["calls"] for s in samples)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cxbridge.sandbox.modes import serve_vendors
    from cxbridge.workflows.escalate import Escalation, EscalationRequest

    res = _common.result("calls", args.quick)
    rounds = 3 if args.quick else 7
    figures = res["figures"]
    with serve_vendors(["zendesk", "hubspot", "jira"], seed="demo") as vendors, _common.workdir() as where:
        zd = vendors["zendesk"]
        # per round: cxbridge new (Acme: contact, company, 1 open deal), cxbridge join (Globex, 1 deal), same for SDK
        emails = ["ada@acme.example", "grace@globex.example"]
        tickets = _common.seed_tickets(zd, 6 * rounds + 6, emails)
        rt = _common.make_runtime(vendors, where)
        clients = sdk_way.build(vendors)  # jira's constructor reads serverInfo here, before anything is measured
        naive = sdk_way.build(vendors, tuned=False)
        meter_cx, meter_sdk = Meter(vendors, rt.counter), Meter(vendors)

        def cx(ticket: int, link: str | None = None, note: str | None = NOTE) -> str:
            return str(Escalation(rt).run(EscalationRequest(ticket_id=str(ticket), link_key=link, note=note)).issue_key)

        warm = tickets[-4:]
        key = cx(warm[0])
        cx(warm[1], key)
        key = sdk_way.escalate(clients, warm[2], note=NOTE)
        sdk_way.escalate(clients, warm[3], note=NOTE, link_key=key)
        key = sdk_way.escalate_naive(naive, tickets[-5], note=NOTE)
        sdk_way.escalate_naive(naive, tickets[-6], note=NOTE, link_key=key)

        ways: dict[str, Callable[..., Any]] = {
            "cx": cx,
            "sdk": partial(sdk_way.escalate, clients, note=NOTE),
            "naive": partial(sdk_way.escalate_naive, naive, note=NOTE),
        }
        samples: dict[str, list[dict[str, Any]]] = {f"{w}_{j}": [] for w in ways for j in ("new", "join")}
        for r in range(rounds):
            row = iter(tickets[6 * r : 6 * r + 6])
            # paired A/B: the order of the ways turns every round, so each meets the same machine load
            order = list(ways)[r % 3 :] + list(ways)[: r % 3]
            for way in order:
                meter = meter_cx if way == "cx" else meter_sdk
                job = ways[way]
                new = meter.measure(partial(job, next(row)))
                samples[f"{way}_new"].append(new)
                link = (
                    partial(job, next(row), link_key=new["value"])
                    if way != "cx"
                    else partial(cx, next(row), new["value"])
                )
                samples[f"{way}_join"].append(meter.measure(link))
        extra = _common.seed_tickets(zd, 1, emails[:1], subject="No note")
        no_note = meter_cx.measure(partial(cx, extra[0], note=None))

        for job in ("new", "join"):
            ours, theirs = summarise(samples[f"cx_{job}"]), summarise(samples[f"sdk_{job}"])
            figures[f"escalation_{job}"] = {
                "cxbridge": ours,
                "sdk": theirs,
                "sdk_naive": summarise(samples[f"naive_{job}"]),
                "call_ratio_sdk_over_cxbridge": round(theirs["total"] / ours["total"], 3),
                "time_ratio_sdk_over_cxbridge": round(theirs["wall_ms_median"] / ours["wall_ms_median"], 3),
            }
        figures["escalation_new_without_note"] = {"cxbridge": summarise([no_note])}
        print_escalations(figures)
        sync_back(res, vendors, rt, clients, zd, emails)
        rt.close()

    new, join = figures["escalation_new"], figures["escalation_join"]
    _common.target(res, "calls, new escalation (cxbridge, with --note)", new["cxbridge"]["total"], "<=", NEW_BUDGET)
    _common.target(res, "calls, join an issue (cxbridge, with --note)", join["cxbridge"]["total"], "<=", JOIN_BUDGET)
    more = "calls, cxbridge minus tuned SDK script"
    _common.target(res, f"{more}, new escalation", new["cxbridge"]["total"] - new["sdk"]["total"], "<=", 0)
    _common.target(res, f"{more}, join (fewer)", join["cxbridge"]["total"] - join["sdk"]["total"], "<=", -1)
    for n, fig in sorted(figures.get("sync_back", {}).items(), key=lambda kv: int(kv[0])):
        delta = fig["cxbridge"]["total"] - fig["sdk"]["total"]
        _common.target(res, f"{more}, sync back to {n} tickets (fewer)", delta, "<=", -1)
    return res


def print_escalations(figures: dict[str, Any]) -> None:
    print(f"{'job':<28}{'way':<10}{'zendesk':>8}{'hubspot':>8}{'jira':>6}{'total':>7}{'median ms':>11}")
    for job in ("new", "join"):
        for way in ("cxbridge", "sdk", "sdk_naive"):
            f = figures[f"escalation_{job}"][way]
            c = f["calls"]
            print(
                f"{'escalation ' + job:<28}{way:<10}{c.get('zendesk', 0):>8}{c.get('hubspot', 0):>8}"
                f"{c.get('jira', 0):>6}{f['total']:>7}{f['wall_ms_median']:>11.1f}"
            )
        print(
            f"{'':<28}{'ratio':<10}{'':>22}"
            f"{figures[f'escalation_{job}']['call_ratio_sdk_over_cxbridge']:>7.2f}"
            f"{figures[f'escalation_{job}']['time_ratio_sdk_over_cxbridge']:>11.2f}"
        )
    f = figures["escalation_new_without_note"]["cxbridge"]
    c = f["calls"]
    print(
        f"{'escalation new, no note':<28}{'cxbridge':<10}{c.get('zendesk', 0):>8}{c.get('hubspot', 0):>8}"
        f"{c.get('jira', 0):>6}{f['total']:>7}{f['wall_ms_median']:>11.1f}"
    )


def sync_back(res: dict[str, Any], vendors: Any, rt: Any, clients: Any, zd: Any, emails: list[str]) -> None:
    """Calls to sync one transition back to N linked tickets, cxbridge (``handle_event``) beside the SDK way."""
    why = _common.missing_module("cxbridge.workflows.syncback")
    if why is not None:
        _common.unavailable(res, f"sync back (H3, issue 5): {why}")
        return
    import sync_bench

    sync_bench.measure(res, vendors, rt, clients, zd, emails, SYNC_SIZES, Meter)


if __name__ == "__main__":
    _common.main_guard(run, __doc__ or "")
