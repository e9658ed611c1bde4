"""The sync-back part of ``bench_calls``: one Jira transition synced back to N linked tickets, both ways.

For each N: an issue is escalated from one ticket and joined by N - 1 more (cxbridge for cxbridge's issue, the
SDK way for the SDK's issue; requesters cycle through three customers, so min(N, 3) companies). Then Eve, the
sandbox's engineer, moves each issue to Done through Jira's REST API; the Jira emulator emits the signed
``jira:issue_updated`` webhook Jira would send. cxbridge's cost is ``events.handle_event`` on the verified Event
(what a worker runs); the SDK way's is ``sdk_way.sync_transition``. Neither counts the webhook itself.

Then the wall time of one transition synced back to 10 tickets (3 companies) with 150 ms per vendor call
(``Latency`` on every emulator): ``SyncBack`` with ``concurrency=1`` (the tickets one after the other; the CRM's
notes still beside them, as they reach another system) beside the default ``[sync] concurrency`` (4 per system),
each on its own freshly linked issue, the order turning every round (paired A/B). Before ``once.by_system`` every
write went one after the other: 13 calls of 150 ms, at least 1.95 s. Both run the same path: the delivery
interpreted by the Jira plugin, then ``SyncBack.issue_changed``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import _common
import sdk_way

HOOK_SECRET = "bench-jira-webhook-secret-0123456789"  # noqa: S105 - a throwaway sandbox signing secret
DEAD_URL = "http://127.0.0.1:9/jira"
"""Where the emulator "delivers" (nothing listens: the bench reads the signed delivery from its outbox log)."""


def _transition(vendors: Any, key: str) -> Any:
    """Move ``key`` to Done as the engineer, and return the Event of the webhook Jira sends for it."""
    import requests
    from cxbridge_jira.webhook import verify_jira

    from cxbridge.secrets import Secret

    jira = vendors["jira"]
    creds = jira.credentials()
    sent_before = len(jira.webhooks_sent)
    response = requests.post(
        f"{jira.base_url}/rest/api/3/issue/{key}/transitions",
        json={"transition": {"id": "31"}},
        auth=(creds["engineer_email"], creds["engineer_api_token"]),
        timeout=10,
    )
    response.raise_for_status()
    for sent in jira.webhooks_sent[sent_before:]:
        if '"jira:issue_updated"' in sent["body"]:
            return verify_jira(
                method="POST",
                url=DEAD_URL,
                headers=sent["headers"],
                body=sent["body"].encode("utf-8"),
                secrets=[Secret(HOOK_SECRET)],
                now=time.time(),
            )[0]
    raise RuntimeError(f"the Jira emulator sent no jira:issue_updated webhook for {key}")


def measure(
    res: dict[str, Any],
    vendors: Any,
    rt: Any,
    clients: Any,
    zd: Any,
    emails: list[str],
    sizes: tuple[int, ...],
    meter_class: Any,
) -> None:
    """Fill ``res["figures"]["sync_back"]`` with calls and wall time per N, both ways."""
    import requests

    from cxbridge.workflows import events
    from cxbridge.workflows.escalate import Escalation, EscalationRequest

    requests.post(
        f"{vendors['jira'].base_url}/_sandbox/webhooks",
        json={"targets": [{"url": DEAD_URL, "secret": HOOK_SECRET, "extra": {"events": ["jira:issue_updated"]}}]},
        timeout=10,
    ).raise_for_status()
    three = ["ada@acme.example", "grace@globex.example", "linus@initech.example"]
    meter_cx, meter_sdk = meter_class(vendors, rt.counter), meter_class(vendors)
    figures: dict[str, Any] = {}

    # warm-up: the router learns cxbridge's integration user ids once per process (one call per system)
    warm = _common.seed_tickets(zd, 1, three, subject="Sync warm-up")
    key = Escalation(rt).run(EscalationRequest(ticket_id=str(warm[0]), note="warm-up")).issue_key
    events.handle_event(rt, _transition(vendors, key), system="jira")

    for n in sizes:
        ours = _common.seed_tickets(zd, n, three, subject=f"Sync {n} cx")
        theirs = _common.seed_tickets(zd, n, three, subject=f"Sync {n} sdk")
        key = Escalation(rt).run(EscalationRequest(ticket_id=str(ours[0]), note="Seen.")).issue_key
        for t in ours[1:]:
            Escalation(rt).run(EscalationRequest(ticket_id=str(t), link_key=key, note="Same."))
        sdk_key = sdk_way.escalate(clients, theirs[0], note="Seen.")
        for t in theirs[1:]:
            sdk_way.escalate(clients, t, note="Same.", link_key=sdk_key)

        event = _transition(vendors, key)
        cx = meter_cx.measure(lambda e=event: events.handle_event(rt, e, system="jira"))
        sdk_event = _transition(vendors, sdk_key)
        status = sdk_event.payload["issue"]["fields"]["status"]["name"]
        sdk = meter_sdk.measure(lambda k=sdk_key, s=status: sdk_way.sync_transition(clients, k, s))
        replay = meter_cx.measure(lambda e=event: events.handle_event(rt, e, system="jira"))
        figures[str(n)] = {
            "tickets": n,
            "companies": min(n, 3),
            "cxbridge": {k: v for k, v in cx.items() if k != "value"},
            "cxbridge_outcome": cx["value"],
            "sdk": {k: v for k, v in sdk.items() if k != "value"},
            "sdk_tickets_noted": sdk["value"],
            "replay_of_the_same_event_calls": replay["total"],
            "call_ratio_sdk_over_cxbridge": round(sdk["total"] / cx["total"], 3) if cx["total"] else None,
            "time_ratio_sdk_over_cxbridge": round(sdk["wall_ms"] / cx["wall_ms"], 3) if cx["wall_ms"] else None,
        }
        f = figures[str(n)]
        print(
            f"sync back to {n:>2} tickets: cxbridge {cx['calls']} = {cx['total']} calls {cx['wall_ms']:.1f} ms; "
            f"SDK {sdk['calls']} = {sdk['total']} calls {sdk['wall_ms']:.1f} ms; "
            f"ratio {f['call_ratio_sdk_over_cxbridge']}"
            f"; replay {replay['total']} calls"
        )
    res["figures"]["sync_back"] = figures
    wall_at_latency(res, vendors, rt, zd, three, rounds=1 if res.get("quick") else 3)


def wall_at_latency(res: dict[str, Any], vendors: Any, rt: Any, zd: Any, emails: list[str], *, rounds: int) -> None:
    """Sync back to 10 tickets at 150 ms per call: one ticket at a time beside ``[sync] concurrency`` at once."""
    from cxbridge.sandbox import Latency
    from cxbridge.workflows.escalate import Escalation, EscalationRequest
    from cxbridge.workflows.events import triggers
    from cxbridge.workflows.syncback import SyncBack

    size, latency_ms = 10, 150.0
    default = int(rt.config.section("sync")["concurrency"])
    walls: dict[str, list[float]] = {"one_at_a_time": [], "side_by_side": []}
    for r in range(rounds):
        order = ["one_at_a_time", "side_by_side"] if r % 2 == 0 else ["side_by_side", "one_at_a_time"]
        for way in order:
            tickets = _common.seed_tickets(zd, size, emails, subject=f"Sync wall {r} {way}")
            key = Escalation(rt).run(EscalationRequest(ticket_id=str(tickets[0]), note="Seen.")).issue_key
            for t in tickets[1:]:
                Escalation(rt).run(EscalationRequest(ticket_id=str(t), link_key=key, note="Same."))
            event = _transition(vendors, key)
            [signal] = rt.connector("jira").interpret(event, triggers(rt))
            sync = SyncBack(rt, concurrency=1 if way == "one_at_a_time" else default)
            for name in vendors:
                vendors[name].latency = Latency(fixed=latency_ms / 1000)
            try:
                start = time.perf_counter()
                outcome = sync.issue_changed("jira", signal, event.id)
                walls[way].append((time.perf_counter() - start) * 1000)
            finally:
                for name in vendors:
                    vendors[name].latency = None
            assert outcome.startswith("synced"), outcome
    figure = {
        "tickets": size,
        "companies": min(size, len(emails)),
        "latency_ms_per_call": latency_ms,
        "concurrency": default,
        "rounds": rounds,
        "one_at_a_time_ms_median": statistics.median(walls["one_at_a_time"]),
        "side_by_side_ms_median": statistics.median(walls["side_by_side"]),
        "samples_ms": walls,
    }
    figure["speedup"] = round(figure["one_at_a_time_ms_median"] / figure["side_by_side_ms_median"], 2)
    res["figures"]["sync_back_wall_at_150ms"] = figure
    print(
        f"sync back to {size} tickets at {latency_ms:g} ms per call: one ticket at a time "
        f"{figure['one_at_a_time_ms_median']:.0f} ms, side by side (concurrency {default}) "
        f"{figure['side_by_side_ms_median']:.0f} ms ({figure['speedup']}x)"
    )
