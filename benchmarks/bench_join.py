"""Joins: what one more ticket joining an issue costs when the issue has 1 linked ticket and when it has many.

The emulators run in their own process (``_vendor_server.py``); this process runs cxbridge's escalations over
loopback HTTP: one ticket creates the issue, then ``--tickets`` - 1 more join it one after the other (requesters
cycle through the demo's three customers). For the first and the last ``--sample`` joins it records the wall
time, this process's CPU time (cxbridge's own share: the emulators are elsewhere) and the vendor calls; at the
end, the size of the issue's description as Jira returns it. The target (issue 16): a join at 400 tickets costs
at most 1.2 times a join at 1, and the description's size is bounded.

    python benchmarks/bench_join.py [--quick] [--tickets N] [--sample N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 1.2
JIRA_TEXT_LIMIT = 32767  # characters in a Jira text field (the description)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cxbridge.config import load_config
    from cxbridge.plugins import build_plugins
    from cxbridge.runtime import Runtime
    from cxbridge.workflows.escalate import Escalation, EscalationRequest

    res = _common.result("join", args.quick)
    count = args.tickets or (60 if args.quick else 400)
    sample = min(args.sample, max(1, (count - 1) // 2))
    with _common.workdir() as where:
        cmd = [sys.executable, str(HERE / "_vendor_server.py"), "--tickets", str(count)]
        cmd += ["--tagged-every", "0", "--dir", str(where)]
        vendors = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert vendors.stdout is not None
            line = vendors.stdout.readline().split()
            if not line or line[0] != "READY":
                raise RuntimeError(f"the vendor server did not start: {line}")
            config_path, first = Path(line[1]), int(line[6])
            plugins = build_plugins()
            rt = Runtime(load_config(config_path, plugins=plugins), plugins)
            tickets = list(range(first, first + count))
            key = Escalation(rt).run(EscalationRequest(ticket_id=str(tickets[0]), note="Seen.")).issue_key
            joins: list[dict[str, Any]] = []
            for n, ticket in enumerate(tickets[1:], start=1):
                before = sum(rt.counter.by_system().values())
                cpu, wall = time.process_time(), time.perf_counter()
                Escalation(rt).run(EscalationRequest(ticket_id=str(ticket), link_key=key, note="Same."))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if n <= sample or n > count - 1 - sample:
                    calls = sum(rt.counter.by_system().values()) - before
                    joins.append({"linked_before": n, "wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "calls": calls})
            issue = rt.tracker().get_issue(key)
            description = issue.description
            rt.close()
        finally:
            if vendors.stdin is not None:
                vendors.stdin.close()
            vendors.wait(timeout=30)
    early, late = joins[:sample], joins[-sample:]

    def med(rows: list[dict[str, Any]], k: str) -> float:
        return round(statistics.median(r[k] for r in rows), 2)

    size = len(description if isinstance(description, str) else json.dumps(description))
    figures = {
        "tickets": count,
        "sample": sample,
        "join_at_1": {k: med(early, k) for k in ("wall_ms", "cpu_ms", "calls")},
        f"join_at_{count - 1}": {k: med(late, k) for k in ("wall_ms", "cpu_ms", "calls")},
        "description_chars": size,
        "joins": joins,
    }
    figures["cpu_ratio"] = round(med(late, "cpu_ms") / med(early, "cpu_ms"), 3)
    figures["wall_ratio"] = round(med(late, "wall_ms") / med(early, "wall_ms"), 3)
    res["figures"] = figures
    print(
        f"join with 1 linked: {figures['join_at_1']}; with {count - 1}: {figures[f'join_at_{count - 1}']}; "
        f"CPU ratio {figures['cpu_ratio']}, wall ratio {figures['wall_ratio']}; description {size} characters"
    )
    _common.target(res, f"join CPU at {count - 1} linked / at 1", figures["cpu_ratio"], "<=", TARGET_RATIO, "x")
    _common.target(res, f"description size after {count} tickets", size, "<=", JIRA_TEXT_LIMIT, "chars")
    return res


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tickets", type=int, default=None, help="tickets on the issue (default 400, 60 quick)")
    p.add_argument("--sample", type=int, default=5, help="joins measured at each end (default 5)")


if __name__ == "__main__":
    _common.main_guard(run, __doc__ or "", add_arguments)
