"""A breakdown, no target: what the stack under ``cxbridge serve`` costs at the least, per piece of an escalation.

``bench_pipeline.py`` measures the CPU of ``cxbridge serve`` per escalation (issue 16's target: at most 8 ms). This
bench measures the pieces that figure is made of when cxbridge itself does nothing else, each in the process that
pays it, over loopback as in the pipeline:

- **A vendor call**: ``GET /api/v2/tickets/{id}`` on the Zendesk emulator (its own process), authenticated, the
  connection kept alive, the JSON answer decoded: the CPU of this process per call, through cxbridge's
  ``HttpClient`` (requests' adapter underneath), beside plain ``requests.Session``, ``urllib3`` and ``http.client``
  doing the same call. The last two show what a client below requests could save.
- **A webhook delivery**: waitress, with ``cxbridge serve``'s thread count, serving an application that only reads
  the body and answers ``{}``, in its own process; this process posts a 600-byte body at ``--rate`` per second
  (40: the pipeline's two deliveries per escalation at 20 escalations a second), open loop, on a kept-alive
  connection; the CPU of the server's process per request (``/proc``).
- **A durable store write**: one audit row written through cxbridge's SQLite store (WAL, ``synchronous = FULL``),
  the CPU of this process per transaction.

It then adds them up as an escalation uses them (``--calls``, ``--deliveries``, ``--transactions``: 8.67 calls,
2 deliveries and 11 write transactions, as ``bench_engine.py`` and ``bench_pipeline.py`` count them): the CPU an
escalation costs on this stack before cxbridge renders a template, decides a priority or routes an event.

    python benchmarks/bench_floor.py [--quick] [--rate PER_S] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common
from bench_latency import cpu_seconds

BODY = b'{"event": "tag_added", "ticket": {"id": "1", "tags": "' + b"x" * 560 + b'"}}'


def own_cpu() -> float:
    """User + system CPU of this process so far, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_call_us(call: Callable[[], Any], count: int, rounds: int = 3) -> float:
    """The lowest of ``rounds`` measurements of this process's CPU per ``call()``, in microseconds (after a warm-up)."""
    for _ in range(max(10, count // 20)):
        call()
    best = float("inf")
    for _ in range(rounds):
        start = own_cpu()
        for _ in range(count):
            call()
        best = min(best, (own_cpu() - start) * 1e6 / count)
    return round(best, 1)


def vendor_call(count: int) -> dict[str, float]:
    """CPU per authenticated, kept-alive ticket read on the Zendesk emulator, by client."""
    import http.client
    from urllib.parse import urlsplit

    import requests
    import urllib3

    from cxbridge.config import load_config
    from cxbridge.plugins import build_plugins
    from cxbridge.runtime import Runtime

    with _common.workdir() as where:
        proc, line = _common.start_vendor_server(where, 10, tagged_every=0)
        try:
            plugins = build_plugins()
            rt = Runtime(load_config(Path(line[1]), plugins=plugins), plugins)
            client = rt.helpdesk().http
            path = f"/api/v2/tickets/{int(line[6])}"
            url = client.base_url + path
            prepared = requests.Request("GET", url, auth=client.auth).prepare()
            headers = {"Authorization": str(prepared.headers["Authorization"]), "Accept": "application/json"}
            session = requests.Session()
            session.headers.update(headers)
            pool = urllib3.PoolManager()
            parts = urlsplit(client.base_url)
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)

            def plain() -> Any:
                conn.request("GET", path, headers=headers)
                answer = conn.getresponse()
                if answer.status != 200:
                    raise RuntimeError(f"http.client: {answer.status}")
                return json.loads(answer.read())

            def checked(response: Any) -> Any:
                status = getattr(response, "status_code", None) or getattr(response, "status", None)
                if status != 200:
                    raise RuntimeError(f"{url}: {status}, not 200")
                return response

            out = {
                "cxbridge_http_client_us": per_call_us(lambda: client.get(path, op="ticket.get").json(), count),
                "requests_session_us": per_call_us(lambda: checked(session.get(url)).json(), count),
                "urllib3_us": per_call_us(
                    lambda: json.loads(checked(pool.request("GET", url, headers=headers)).data), count
                ),
                "http_client_us": per_call_us(plain, count),
            }
            conn.close()
            rt.close()
            return out
        finally:
            _common.stop_vendor_server(proc)


def serve_trivial(port: int, threads: int) -> None:
    """The server side of ``webhook_delivery``: waitress and an application that reads the body and answers ``{}``."""
    from waitress import serve

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]

    serve(app, host="127.0.0.1", port=port, threads=threads, _quiet=True)


def webhook_delivery(count: int, rate: float, threads: int) -> dict[str, float]:
    """Server CPU per POST to waitress serving a trivial application, sent at ``rate`` per second, open loop."""
    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_floor; "
    code += f"bench_floor.serve_trivial({port}, {threads})"
    server = subprocess.Popen([sys.executable, "-c", code])
    try:
        url = f"http://127.0.0.1:{port}/webhooks/zendesk"
        session = requests.Session()
        deadline = time.monotonic() + 30
        while True:
            try:
                session.post(url, data=BODY, timeout=5).raise_for_status()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        for _ in range(50):
            session.post(url, data=BODY, timeout=5)
        before = cpu_seconds(server.pid)
        start = time.perf_counter()
        for n in range(count):
            wait = start + n / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            session.post(url, data=BODY, headers={"Content-Type": "application/json"}, timeout=5).raise_for_status()
        after = cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    if before is None or after is None:
        return {}
    return {"waitress_trivial_app_us": round((after - before) * 1e6 / count, 1), "rate_per_s": rate}


def store_write(count: int) -> dict[str, float]:
    """CPU per durable write transaction (one audit row) through cxbridge's SQLite store."""
    from cxbridge.store import SQLiteStore

    with _common.workdir() as where:
        store = SQLiteStore(where / "floor.db")
        try:
            us = per_call_us(lambda: store.audit(actor="bench", action="floor", target="t", result="ok"), count)
        finally:
            store.close()
    return {"sqlite_write_transaction_us": us}


def run(args: argparse.Namespace) -> dict[str, Any]:
    res = _common.result("floor", args.quick)
    calls_n = 500 if args.quick else 3000
    figures = res["figures"]
    figures["vendor_call"] = call = vendor_call(calls_n)
    print(
        "a vendor call (GET a Zendesk ticket, kept alive, JSON decoded), CPU of the calling process: "
        + ", ".join(f"{k.removesuffix('_us')} {v} us" for k, v in call.items())
    )
    figures["webhook_delivery"] = hook = webhook_delivery(200 if args.quick else 1000, args.rate, args.threads)
    print(
        f"a webhook delivery: waitress ({args.threads} threads) serving a trivial app at {args.rate}/s: "
        f"{hook.get('waitress_trivial_app_us')} us of the server's CPU per request"
    )
    figures["store"] = txn = store_write(200 if args.quick else 1000)
    print(f"a durable write transaction through cxbridge's SQLite store: {txn['sqlite_write_transaction_us']} us CPU")
    floor = {
        "calls": args.calls,
        "deliveries": args.deliveries,
        "transactions": args.transactions,
    }
    pieces = {
        "calls_ms": args.calls * call["cxbridge_http_client_us"] / 1000,
        "deliveries_ms": args.deliveries * float(hook.get("waitress_trivial_app_us") or 0.0) / 1000,
        "transactions_ms": args.transactions * txn["sqlite_write_transaction_us"] / 1000,
    }
    floor.update({k: round(v, 2) for k, v in pieces.items()})
    floor["total_ms"] = round(sum(pieces.values()), 2)
    floor["calls_ms_if_http_client"] = round(args.calls * call["http_client_us"] / 1000, 2)
    figures["escalation_floor"] = floor
    print(
        f"an escalation's floor on this stack: {args.calls} calls {floor['calls_ms']} ms + {args.deliveries} "
        f"deliveries {floor['deliveries_ms']} ms + {args.transactions} write transactions "
        f"{floor['transactions_ms']} ms = {floor['total_ms']} ms of CPU before cxbridge's own work (the calls "
        f"through http.client alone: "
        f"{floor['calls_ms_if_http_client']} ms)"
    )
    res["notes"].append("a breakdown, no target: what bench_pipeline's CPU per escalation is made of at the least")
    return res


def arguments(p: argparse.ArgumentParser) -> None:
    """This bench's own arguments."""
    p.add_argument("--rate", type=float, default=40.0, help="deliveries per second to waitress (default 40)")
    p.add_argument("--threads", type=int, default=8, help="waitress threads, as cxbridge serve's default (8)")
    p.add_argument("--calls", type=float, default=8.67, help="vendor calls per escalation (default 8.67)")
    p.add_argument("--deliveries", type=float, default=2, help="webhook deliveries per escalation (default 2)")
    p.add_argument("--transactions", type=float, default=11, help="store write transactions per escalation (11)")


if __name__ == "__main__":
    _common.main_guard(run, __doc__ or "", arguments)
