"""The sync-back part of ``bench_calls``: one Jira transition synced back to N linked tickets, both ways.

For each N: an issue is escalated from one ticket and joined by N - 1 more (cxbridge for cxbridge's issue, the
SDK way for the SDK's issue; requesters cycle through three customers, so min(N, 3) companies). Then Eve, the
sandbox's engineer, moves each issue to Done through Jira's REST API; the Jira emulator emits the signed
``jira:issue_updated`` webhook Jira would send. cxbridge's cost is ``events.handle_event`` on the verified Event
(what a worker runs); the SDK way's is ``sdk_way.sync_transition``. Neither counts the webhook itself.
"""

from __future__ import annotations

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
