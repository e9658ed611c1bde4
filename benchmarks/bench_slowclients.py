"""Slow and idle clients against ``cxbridge serve``'s receiver: is a signed delivery still accepted, and how fast?

The fault campaign's figures: 120 connections sending one byte a second (never idle, so waitress's own
``channel_timeout`` never closes them) beside 1,000 idle connections, all on loopback. The receiver runs
in-process (waitress, ``[webhooks]`` defaults unless given) on a temporary store; then ``--deliveries`` signed
Jira deliveries are posted one after another and each one's status and latency are printed. A second round
repeats it with ``--limit`` connection slots (fewer than the crowd), where only the request deadline
(``--request-timeout``) frees slots.

    python benchmarks/bench_slowclients.py [--slow 120] [--idle 1000] [--deliveries 6] [--limit 500]
                                           [--request-timeout 10] [--check]

``--check`` exits 1 unless every delivery of both rounds was accepted (200) within the client timeout (30 s).
Loopback only; the crowd stops after each round.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SECRET = "bench-slowclients-secret"  # noqa: S105 - a loopback benchmark's signing key
CLIENT_TIMEOUT = 30.0
REQUEST = b"POST /webhooks/jira HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000


def runtime(where: Path) -> Any:
    from cxbridge.config import load_config
    from cxbridge.plugins import build_plugins
    from cxbridge.runtime import Runtime
    from cxbridge.sandbox.modes import mock_vendors, write_config

    (where / "jira.secret").write_text(SECRET, encoding="utf-8")
    extra = {"webhooks": {"secrets": {"jira": [{"file": "jira.secret"}]}}}
    with mock_vendors(["zendesk", "jira", "hubspot"]) as vendors:
        path = write_config(vendors, where / "cxbridge.toml", extra=extra)
    plugins = build_plugins()
    return Runtime(load_config(path, plugins=plugins), plugins)


def crowd(port: int, slow: int, idle: int, stop: threading.Event) -> tuple[list[socket.socket], threading.Thread]:
    """Open the connections (slow ones first) and start the one-byte-a-second sender."""
    slow_socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(slow)]
    idle_socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(idle)]

    def trickle() -> None:
        offset = 0
        while not stop.is_set() and offset < len(REQUEST):
            for sock in slow_socks:
                with contextlib.suppress(OSError):
                    sock.send(REQUEST[offset : offset + 1])
            offset += 1
            stop.wait(1.0)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    return slow_socks + idle_socks, thread


def deliver(url: str, n: int) -> tuple[int, float]:
    import requests

    body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"id": str(10000 + n), "key": "ENG-1"}})
    signature = "sha256=" + hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": f"slow-{time.time_ns()}-{n}"}
    start = time.monotonic()
    try:
        status = requests.post(url, data=body, headers=headers, timeout=CLIENT_TIMEOUT).status_code
    except requests.RequestException:
        status = 0
    return status, time.monotonic() - start


def round_(rt: Any, args: argparse.Namespace, limit: int | None) -> list[tuple[int, float]]:
    from cxbridge.webhooks.serve import serving

    kwargs: dict[str, Any] = {"request_timeout": args.request_timeout}
    if limit is not None:
        kwargs["connection_limit"] = limit
    stop = threading.Event()
    with serving(rt, systems=["jira"], **kwargs) as srv:
        socks, thread = crowd(srv.port, args.slow, args.idle, stop)
        try:
            time.sleep(1.0)  # let the server accept what it will
            return [deliver(srv.webhook_url("jira"), n) for n in range(args.deliveries)]
        finally:
            stop.set()
            thread.join(5)
            for sock in socks:
                sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=120)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--deliveries", type=int, default=6)
    parser.add_argument("--limit", type=int, default=500, help="connection slots in the second round")
    parser.add_argument("--request-timeout", type=float, default=10.0)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.slow + args.idle > 5000 or args.deliveries > 100:
        parser.error("bounded: at most 5,000 connections and 100 deliveries")
    ok = True
    with tempfile.TemporaryDirectory() as where:
        rt = runtime(Path(where))
        try:
            for label, limit in (("default connection_limit", None), (f"connection_limit {args.limit}", args.limit)):
                results = round_(rt, args, limit)
                accepted = sum(1 for status, _ in results if status == 200)
                worst = max(seconds for _, seconds in results)
                print(
                    f"{args.slow} slow + {args.idle} idle, {label}: {accepted}/{len(results)} signed deliveries "
                    f"accepted; slowest {worst:.2f} s; statuses {[status for status, _ in results]}"
                )
                ok = ok and accepted == len(results)
        finally:
            rt.close()
    if args.check and not ok:
        print("FAIL: a signed delivery was not accepted beside slow and idle clients")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
