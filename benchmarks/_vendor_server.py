"""Serve the sandbox emulators from their own process, seeded with many Zendesk tickets, for a bench to scan.

Run by ``bench_reconcile`` so that the emulators' memory (100,000 tickets) is not counted in the measured
process. Seeds the ``demo`` data, then ``--tickets`` tickets straight into the Zendesk model (one in
``--tagged-every`` carries the escalation tag; 0: none does; 1: every one, the requesters cycling as in
``--tagged-every 0``), writes a cxbridge config into ``--dir`` and prints
``READY <config path> <oldest ticket time> <seconds seeding> <tagged> <untagged> <first ticket id>``; it serves
until its stdin closes. With ``--webhooks`` each emulator gets a webhook signing secret (written beside the
config, which verifies it); its target URL is set later through ``POST /_sandbox/webhooks``.

    python benchmarks/_vendor_server.py --tickets 100000 --tagged-every 100 --dir /tmp/x
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tickets", type=int, required=True)
    p.add_argument("--tagged-every", type=int, default=100)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--webhooks", action="store_true", help="give each emulator a webhook signing secret")
    args = p.parse_args()
    _common.quiet()
    import secrets

    from cxbridge.sandbox import WebhookTarget
    from cxbridge.sandbox.modes import serve_vendors, write_config

    with serve_vendors(["zendesk", "hubspot", "jira"], seed="demo") as vendors:
        if args.webhooks:
            for name in vendors:
                secret = secrets.token_urlsafe(24)
                vendors[name].webhook_targets = [WebhookTarget(url="http://127.0.0.1:9/", secret=secret)]
        zd: Any = vendors["zendesk"]
        start = time.perf_counter()
        every = max(1, args.tagged_every)
        tagged = 0
        # interleave: one tagged ticket in every ``every``, spread over the export's order (one second apart)
        ids: list[int] = []
        oldest = zd.model.now() - 3600 - args.tickets
        if args.tagged_every == 0:
            ids = _common.seed_tickets(zd, args.tickets, _common.EMAILS, subject="Untagged", spread=0.0)
        if args.tagged_every == 1:
            tag = [_common.ESCALATION_TAG]
            ids = _common.seed_tickets(zd, args.tickets, _common.EMAILS, subject="Tagged", tags=tag, spread=0.0)
            tagged = len(ids)
        for block in range(0, args.tickets if args.tagged_every > 1 else 0, every):
            size = min(every, args.tickets - block)
            ids += _common.seed_tickets(zd, size - 1, _common.EMAILS, subject="Scan", spread=0.0)
            ids += _common.seed_tickets(zd, 1, _common.EMAILS, subject="Scan tagged", tags=[_common.ESCALATION_TAG])
            tagged += 1
        # spread the change times evenly, oldest first (the export orders by change time, then id)
        with zd.lock:
            for n, tid in enumerate(ids):
                ticket = zd.model.tickets[tid]
                ticket.created_at = ticket.updated_ts = oldest + n
        seeded = time.perf_counter() - start
        config = write_config(vendors, args.dir / "cxbridge.toml")
        first = ids[0] if ids else 0
        print(f"READY {config} {int(oldest) - 1} {seeded:.2f} {tagged} {len(ids) - tagged} {first}", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
