"""Under a rate limit: sustained escalations per minute against the theoretical maximum, 429s, failed jobs.

The Zendesk emulator enforces a limit scaled down from Zendesk's (``POST /_sandbox/rate-limit``, fixed windows,
429 with ``Retry-After`` in whole seconds like Zendesk); HubSpot and Jira are not limited. A backlog of tag
deliveries (verified Zendesk Events, ``events.enqueue_event``) is drained by worker threads (``worker.drain``)
through the whole pipeline, in-process (``mock_vendors``).

Figures, over the full windows of the run (the last, partial window is left out): the share of the limit used
(successful Zendesk calls per window / limit), sustained escalations per minute against the theoretical maximum
(limit per minute / Zendesk calls per escalation, the latter measured), 429s received, and jobs that failed
(dead letters or not done).

    python benchmarks/bench_ratelimit.py [--quick] [--limit 36/8s] [--windows N] [--workers N] [--out FILE]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

TARGET_UTILIZATION = 95.0
TICKET_PUT = re.compile(r"^/api/v2/tickets/\d+(\.json)?$")


def run(args: argparse.Namespace) -> dict[str, Any]:
    res = _common.result("ratelimit", args.quick)
    why = _common.missing_module("cxbridge.worker") or _common.missing_module("cxbridge.workflows.syncback")
    if why:
        _common.unavailable(res, f"the pipeline (H2 worker, H3 router): {why}")
        _common.target(res, "share of the Zendesk rate limit used", None, ">=", TARGET_UTILIZATION, "%")
        return res
    import requests

    from cxbridge.sandbox import RateLimit
    from cxbridge.sandbox.modes import mock_vendors
    from cxbridge.worker import drain
    from cxbridge.workflows import events

    spec = args.limit or ("36/8s" if args.quick else "60/15s")
    windows = args.windows or (2 if args.quick else 5)
    limit = RateLimit.parse(spec)
    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as vendors, _common.workdir() as where:
        zd: Any = vendors["zendesk"]
        rt = _common.make_runtime(vendors, where)
        # warm-up without a limit: learns the integration user, compiles templates; gives calls per escalation
        warm = _common.seed_tickets(zd, 3, _common.EMAILS, tags=[_common.ESCALATION_TAG], subject="Warm-up")
        for event in _common.zendesk_events(zd, warm):
            events.enqueue_event(rt, "zendesk", event)
        before = len(zd.calls)
        drain(rt, workers=1, timeout=60)
        warm_calls = [c for c in zd.calls[before:] if "/users/me" not in c.path]
        per_escalation = len(warm_calls) / len(warm)
        theoretical_per_window = limit.limit / per_escalation
        jobs = int(theoretical_per_window * (windows + 1)) + 2
        tickets = _common.seed_tickets(zd, jobs, _common.EMAILS, tags=[_common.ESCALATION_TAG])
        for event in _common.zendesk_events(zd, tickets):
            events.enqueue_event(rt, "zendesk", event)

        requests.post(f"{zd.base_url}/_sandbox/rate-limit", json={"limit": spec}, timeout=5).raise_for_status()
        first = len(zd.calls)
        start = time.time()
        report = drain(rt, workers=args.workers, timeout=windows * limit.window * 3 + 60)
        elapsed = time.time() - start
        calls = zd.calls[first:]
        # the effects, read from the emulator: every ticket of the backlog should carry its issue key and a note
        field = zd.issue_key_field_id
        with zd.lock:
            finished = [
                tid
                for tid in tickets
                if zd.model.tickets[tid].custom_fields.get(field)
                and any(not c.public for c in zd.model.tickets[tid].comments)
            ]
        unfinished = sorted(set(tickets) - set(finished))
        rt.close()

    t0 = calls[0].at
    per_window: list[dict[str, int]] = []
    n_windows = int((calls[-1].at - t0) // limit.window)  # full windows only
    for i in range(n_windows):
        lo, hi = t0 + i * limit.window, t0 + (i + 1) * limit.window
        inside = [c for c in calls if lo <= c.at < hi]
        per_window.append(
            {
                "ok": sum(1 for c in inside if c.status < 400),
                "429": sum(1 for c in inside if c.status == 429),
                "escalations": sum(
                    1 for c in inside if c.method == "PUT" and c.status < 400 and TICKET_PUT.match(c.path)
                ),
            }
        )
    ok = sum(w["ok"] for w in per_window)
    done_in_windows = sum(w["escalations"] for w in per_window)
    span = n_windows * limit.window
    utilization = 100.0 * ok / (limit.limit * n_windows) if n_windows else None
    per_min = done_in_windows / span * 60 if span else None
    theoretical_per_min = limit.limit / limit.window * 60 / per_escalation
    failed = report.dead + report.ready + report.leased
    ok_calls = [c for c in calls if c.status < 400]
    # calls a re-queued job repeated: every successful call beyond the first of its kind on the same path
    repeated = len(ok_calls) - len({(c.method, c.path) for c in ok_calls})
    figures = res["figures"]
    figures.update(
        {
            "limit": spec,
            "workers": args.workers,
            "jobs": jobs,
            "zendesk_calls_per_escalation": round(per_escalation, 2),
            "theoretical_escalations_per_min": round(theoretical_per_min, 1),
            "sustained_escalations_per_min": round(per_min, 1) if per_min is not None else None,
            "escalation_utilization_pct": round(100 * per_min / theoretical_per_min, 1) if per_min else None,
            "limit_utilization_pct": round(utilization, 1) if utilization is not None else None,
            "full_windows": n_windows,
            "per_window": per_window,
            "zendesk_429s": sum(1 for c in calls if c.status == 429),
            "other_errors": sum(1 for c in calls if c.status >= 400 and c.status != 429),
            "successful_calls": len(ok_calls),
            "repeated_successful_calls": repeated,
            "drain": report.as_dict() | {"pending": len(report.pending)},
            "failed_jobs": failed,
            "tickets_fully_escalated": len(finished),
            "tickets_left_without_note_or_key": unfinished,
            "elapsed_s": round(elapsed, 1),
        }
    )
    print(
        f"limit {spec} on Zendesk, {per_escalation:.2f} Zendesk calls per escalation, {args.workers} workers, "
        f"{jobs} jobs in {elapsed:.1f} s"
    )
    print(
        f"over {n_windows} full windows: {figures['limit_utilization_pct']} % of the limit used, "
        f"{figures['sustained_escalations_per_min']} escalations/min of {figures['theoretical_escalations_per_min']} "
        f"theoretical; {figures['zendesk_429s']} 429s; {repeated} successful calls repeated by re-queued jobs; "
        f"failed jobs {failed}; tickets fully escalated {len(finished)} of {jobs}; per window {per_window}"
    )
    _common.target(
        res, "share of the Zendesk rate limit used", figures["limit_utilization_pct"], ">=", TARGET_UTILIZATION, "%"
    )
    _common.target(res, "escalations/min vs theoretical maximum", figures["escalation_utilization_pct"], ">=", 90, "%")
    _common.target(res, "failed jobs under the rate limit", failed, "<=", 0)
    _common.target(res, "jobs done whose ticket lacks its note or issue key", len(unfinished), "<=", 0)
    if unfinished:
        res["notes"].append(
            f"{len(unfinished)} of {jobs} tickets have no escalation note or issue key although their jobs are done "
            f"(tickets {unfinished[:10]}); look in the call logs for the step after which these jobs stopped "
            "(a job re-queued after the link must run the escalation to its end: escalate.escalation_complete)"
        )
    return res


def arguments(p: argparse.ArgumentParser) -> None:
    """This bench's own arguments."""
    p.add_argument("--limit", default=None, help="Zendesk limit (default 36/8s quick, 60/15s full)")
    p.add_argument("--windows", type=int, default=None, help="full windows to aim for (2 quick, 5 full)")
    p.add_argument("--workers", type=int, default=2, help="worker threads ([webhooks] workers default: 2)")


if __name__ == "__main__":
    _common.main_guard(run, __doc__ or "", arguments)
