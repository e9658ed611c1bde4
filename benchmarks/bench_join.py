"""Joins: what one more ticket joining an issue costs when the issue has 1 linked ticket and when it has many.

The emulators run in their own process (``_vendor_server.py``); this process runs cxbridge's escalations over
loopback HTTP (requesters cycle through the demo's three customers). Not measured: one ticket creates the big
issue and more join it until it has ``--tickets`` - ``--pairs`` linked; one issue with a single ticket is created
per pair. Then measured, in ``--pairs`` paired rounds: a join at 1 (a ticket joining one of the single-ticket
issues) beside a join at the big issue (one more ticket each round, so the last round joins at ``--tickets`` - 1
linked), the order alternating, so that both sides meet the same machine (CPU time per join moves by 1.5x with
what else the machine does, and consecutive joins move together) and both run warm. For each join it records the
wall time, this process's CPU time (cxbridge's own share: the emulators are elsewhere) and the vendor calls; at
the end, the size of the big issue's description as Jira returns it (and a single-ticket issue's). The figure is
the median CPU at many over the median at 1. The target (issue 16): a join at 400 tickets costs at most 1.2 times
a join at 1, and the description's size is bounded.

    python benchmarks/bench_join.py [--quick] [--tickets N] [--pairs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

TARGET_RATIO = 1.2
JIRA_TEXT_LIMIT = 32767  # characters in a Jira text field (the description)
QUICK_TICKETS, QUICK_PAIRS = 400, 9


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cxbridge.config import load_config
    from cxbridge.plugins import build_plugins
    from cxbridge.runtime import Runtime
    from cxbridge.workflows.escalate import Escalation, EscalationRequest

    res = _common.result("join", args.quick)
    count = args.tickets or (QUICK_TICKETS if args.quick else 400)
    pairs = max(1, min(args.pairs or (QUICK_PAIRS if args.quick else 15), count - 2))
    with _common.workdir() as where:
        vendors, line = _common.start_vendor_server(where, count + 2 * pairs, tagged_every=0)
        try:
            config_path, first = Path(line[1]), int(line[6])
            plugins = build_plugins()
            rt = Runtime(load_config(config_path, plugins=plugins), plugins)
            tickets = [str(t) for t in range(first, first + count + 2 * pairs)]
            big, small, lone = tickets[:count], tickets[count : count + pairs], tickets[count + pairs :]

            def escalate(ticket: str, key: str | None = None) -> str:
                request = EscalationRequest(ticket_id=ticket, link_key=key, note="Same." if key else "Seen.")
                return str(Escalation(rt).run(request).issue_key)

            def join(ticket: str, key: str, linked_before: int) -> dict[str, Any]:
                before = sum(rt.counter.by_system().values())
                cpu, wall = time.process_time(), time.perf_counter()
                escalate(ticket, key)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                calls = sum(rt.counter.by_system().values()) - before
                return {"linked_before": linked_before, "wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "calls": calls}

            # not measured: the issue with count - pairs linked tickets, and one issue with 1 ticket per pair
            key = escalate(big[0])
            for ticket in big[1 : count - pairs]:
                escalate(ticket, key)
            singles = [escalate(ticket) for ticket in lone]
            # measured, paired: a join at 1 (its own issue) beside a join at count - pairs + r, order alternating
            at_1: list[dict[str, Any]] = []
            at_n: list[dict[str, Any]] = []
            for r in range(pairs):
                n = count - pairs + r
                for side in ("1", "n") if r % 2 == 0 else ("n", "1"):
                    if side == "1":
                        at_1.append(join(small[r], singles[r], 1))
                    else:
                        at_n.append(join(big[n], key, n))
            description = rt.tracker().get_issue(key).description
            description_at_1 = rt.tracker().get_issue(singles[0]).description
            rt.close()
        finally:
            _common.stop_vendor_server(vendors)

    def med(rows: list[dict[str, Any]], k: str) -> float:
        return round(statistics.median(r[k] for r in rows), 2)

    def chars(text: Any) -> int:
        return len(text if isinstance(text, str) else json.dumps(text))

    size = chars(description)
    ratios = [b["cpu_ms"] / a["cpu_ms"] for a, b in zip(at_1, at_n, strict=True)]
    figures = {
        "tickets": count,
        "pairs": pairs,
        "method": "paired: each round a join at 1 (a fresh issue) and a join at the big issue, order alternating",
        "join_at_1": {k: med(at_1, k) for k in ("wall_ms", "cpu_ms", "calls")},
        f"join_at_{count - 1}": {k: med(at_n, k) for k in ("wall_ms", "cpu_ms", "calls")},
        "description_chars": size,
        "description_chars_at_1": chars(description_at_1),
        "joins": [row for pair in zip(at_1, at_n, strict=True) for row in pair],
        "cpu_ratio_per_pair_median": round(statistics.median(ratios), 3),
        "cpu_ratio_per_pair_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
    }
    figures["cpu_ratio"] = round(med(at_n, "cpu_ms") / med(at_1, "cpu_ms"), 3)
    figures["wall_ratio"] = round(med(at_n, "wall_ms") / med(at_1, "wall_ms"), 3)
    res["figures"] = figures
    print(
        f"join with 1 linked: {figures['join_at_1']}; with {count - 1}: {figures[f'join_at_{count - 1}']}; "
        f"CPU ratio {figures['cpu_ratio']}, wall ratio {figures['wall_ratio']}; description {size} characters"
    )
    _common.target(res, f"join CPU at {count - 1} linked / at 1", figures["cpu_ratio"], "<=", TARGET_RATIO, "x")
    _common.target(res, f"description size after {count} tickets", size, "<=", JIRA_TEXT_LIMIT, "chars")
    return res


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tickets", type=int, default=None, help=f"tickets on the issue (default 400, {QUICK_TICKETS} quick)"
    )
    p.add_argument("--pairs", type=int, default=None, help=f"paired joins measured (default 15, {QUICK_PAIRS} quick)")


if __name__ == "__main__":
    _common.main_guard(run, __doc__ or "", add_arguments)
