"""What every benchmark shares: arguments, the machine description, a runtime on the sandbox, JSON output.

A benchmark is a script that measures and prints figures and writes them as JSON; it asserts nothing. Each
result is a dict::

    {"bench": "calls", "quick": true, "machine": {...}, "available": true,
     "figures": {...},                      # every number measured, nested as the bench likes
     "targets": [{"figure": "...", "value": 7, "target": "<= 8", "met": true}, ...],
     "notes": ["..."]}

``available`` is false (and ``notes`` says why) when a part of cxbridge the bench needs does not exist yet:
such a bench prints ``not available: <why>`` and reports no figure for that part, never an invented one.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"


def machine() -> dict[str, Any]:
    """The machine the figures were measured on: cores, CPU model, Python, OS."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every bench takes: ``--quick`` and ``--out``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smaller sizes, so that run.py --quick fits in 2 minutes")
    p.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    return p


def result(bench: str, quick: bool) -> dict[str, Any]:
    """An empty result for a bench."""
    return {
        "bench": bench,
        "quick": quick,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "available": True,
        "figures": {},
        "targets": [],
        "notes": [],
    }


def target(res: dict[str, Any], figure: str, value: float | None, op: str, bound: float, unit: str = "") -> None:
    """Record a figure against its target (``op`` is ``<=`` or ``>=``); a missing value is not met."""
    met: bool | None
    if value is None:
        met = None
    elif op == "<=":
        met = value <= bound
    else:
        met = value >= bound
    res["targets"].append(
        {"figure": figure, "value": value, "target": f"{op} {bound:g}{(' ' + unit) if unit else ''}", "met": met}
    )


def shown(value: float | None) -> str:
    """A figure as the summaries print it."""
    return "-" if value is None else (f"{value:.3g}" if isinstance(value, float) else str(value))


def unavailable(res: dict[str, Any], why: str) -> None:
    """Mark (a part of) a bench as not measurable yet, and say why."""
    res["available"] = False
    res["notes"].append(f"not available: {why}")
    print(f"not available: {why}")


def finish(res: dict[str, Any], out: Path | None) -> dict[str, Any]:
    """Print the targets and write the JSON."""
    for t in res["targets"]:
        state = {True: "met", False: "NOT MET", None: "n/a"}[t["met"]]
        print(f"  {t['figure']:<58} {shown(t['value']):>10}  target {t['target']:<14} {state}")
    for note in res["notes"]:
        print(f"  note: {note}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2, default=str) + "\n", encoding="utf-8")
    return res


@contextmanager
def workdir() -> Iterator[Path]:
    """A temporary folder for a config, its secret files and the store."""
    with tempfile.TemporaryDirectory(prefix="cxbridge-bench-") as d:
        yield Path(d)


def quiet() -> None:
    """Keep library logs (retries, werkzeug lines) from drowning the figures."""
    logging.basicConfig(level=logging.ERROR)
    for name in ("werkzeug", "cxbridge", "urllib3", "jira", "zenpy", "waitress"):
        logging.getLogger(name).setLevel(logging.ERROR)


def make_runtime(vendors: Any, where: Path, **extra: Any) -> Any:
    """A cxbridge Runtime whose systems point at the running emulators (config written into ``where``)."""
    from cxbridge.config import load_config
    from cxbridge.plugins import build_plugins
    from cxbridge.runtime import Runtime
    from cxbridge.sandbox.modes import write_config

    path = write_config(vendors, where / "cxbridge.toml", extra=extra)
    plugins = build_plugins()
    return Runtime(load_config(path, plugins=plugins), plugins)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and its wall time in seconds."""
    gc.collect()
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def missing_module(name: str) -> str | None:
    """None when ``name`` imports, else why not (one line)."""
    import importlib

    try:
        importlib.import_module(name)
    except Exception as exc:  # any import failure means the piece is not usable yet
        return f"{name} cannot be imported ({type(exc).__name__}: {exc})"
    return None


def main_guard(
    run: Callable[[argparse.Namespace], dict[str, Any]],
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse the arguments (``add_arguments`` adds a bench's own), run the bench, write the JSON (default
    ``benchmarks/results/<bench>.json``)."""
    quiet()
    p = parser(description)
    if add_arguments is not None:
        add_arguments(p)
    args = p.parse_args()
    res = run(args)
    finish(res, args.out or RESULTS_DIR / f"{res['bench']}.json")
    sys.stdout.flush()


def start_serve(config: Path, *, workers: int, threads: int = 8, systems: list[str] | None = None) -> tuple[Any, str]:
    """``cxbridge serve`` as its own process on a free loopback port; returns the process and its URL."""
    import re
    import subprocess
    import threading

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "cxbridge", "--config", str(config), "serve", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--workers", str(workers), "--threads", str(threads)]
    for system in systems or []:
        cmd += ["--system", system]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 30
    seen: list[str] = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip())
        m = re.search(r"Listening on (http://\S+)", line)
        if m:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
            return proc, m.group(1)
    proc.kill()
    raise RuntimeError("cxbridge serve did not start: " + " | ".join(seen[-5:]))


def start_vendor_server(
    where: Path, tickets: int, *, tagged_every: int, webhooks: bool = False
) -> tuple[Any, list[str]]:
    """``_vendor_server.py`` (the emulators in their own process) seeded with ``tickets``, its config in ``where``;
    the process and the fields of its ``READY`` line (config path, oldest ticket time, seconds seeding, tagged,
    untagged, first ticket id). Stop it with ``stop_vendor_server``."""
    import subprocess

    cmd = [sys.executable, str(ROOT / "benchmarks" / "_vendor_server.py"), "--tickets", str(tickets)]
    cmd += ["--tagged-every", str(tagged_every), "--dir", str(where)] + (["--webhooks"] if webhooks else [])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        stop_vendor_server(proc)
        raise RuntimeError(f"the vendor server did not start: {line}")
    return proc, line


def stop_vendor_server(proc: Any) -> None:
    """Stop ``_vendor_server.py`` (it serves until its stdin closes)."""
    import subprocess

    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # a server that does not stop is killed
        proc.kill()
        proc.wait(timeout=30)


SYSTEMS = ("zendesk", "hubspot", "jira")


@dataclass
class Served:
    """The emulators' process and ``cxbridge serve`` that ``served`` started: what a bench drives them with."""

    vendors: Any
    """The emulators' process (``_vendor_server.py``)."""
    serve: Any
    """The ``cxbridge serve`` process."""
    url: str
    """``cxbridge serve``'s base URL (its receiver is ``{url}/webhooks/<system>``)."""
    where: Path
    """The folder holding the config, its secret files and the store."""
    config_path: Path
    config: dict[str, Any]
    """The config, parsed."""
    base: dict[str, str]
    """Each system's emulator base URL."""
    first: int
    """The first seeded ticket's id."""

    @property
    def store(self) -> Path:
        """``cxbridge serve``'s SQLite store."""
        return self.where / "cxbridge.db"

    def secret(self, name: str) -> str:
        """A secret file the emulators' process wrote beside the config (e.g. ``zendesk.webhook.secret``)."""
        return (self.where / f"{name}.secret").read_text(encoding="utf-8")


def subscription(system: str) -> dict[str, Any]:
    """The ``extra`` a bench gives its webhook target on ``system``'s emulator: what the webhook ``cxbridge setup``
    registers subscribes to, so that a bench receives what a set-up install receives.

    Jira's: setup's events (``cxbridge_jira.setup.EVENTS``), which leave out ``jira:issue_created``, so Jira does not
    echo the issues cxbridge creates (an admin target without ``events`` gets every event). The Zendesk emulator's
    admin targets already send what cxbridge's provisioned triggers send, and HubSpot delivers what its app's
    subscriptions name."""
    if system == "jira":
        from cxbridge_jira.setup import EVENTS

        return {"events": list(EVENTS)}
    return {}


@contextmanager
def served(
    where: Path, tickets: int, *, tagged_every: int, workers: int, threads: int = 8, echoes: bool = True
) -> Iterator[Served]:
    """The emulators in their own process seeded with ``tickets`` (``start_vendor_server``) and ``cxbridge serve``
    with ``workers`` worker threads on their config (``start_serve``); with ``echoes`` each emulator delivers its
    webhooks (the echoes of cxbridge's own writes among them) to the receiver, subscribed as ``cxbridge setup``
    subscribes (``subscription``). Both processes stop on exit."""
    import tomllib

    import requests

    vendors, line = start_vendor_server(where, tickets, tagged_every=tagged_every, webhooks=True)
    serve = None
    try:
        config_path, first = Path(line[1]), int(line[6])
        config = tomllib.loads(config_path.read_text(encoding="utf-8"))
        base = {name: str(config["systems"][name]["base_url"]) for name in SYSTEMS}
        serve, url = start_serve(config_path, workers=workers, threads=threads)
        ready = Served(vendors, serve, url, where, config_path, config, base, first)
        for name in SYSTEMS if echoes else ():
            target = {"url": f"{url}/webhooks/{name}", "secret": ready.secret(f"{name}.webhook")}
            target["extra"] = subscription(name)
            requests.post(f"{base[name]}/_sandbox/webhooks", json={"targets": [target]}, timeout=10).raise_for_status()
        yield ready
    finally:
        if serve is not None:
            stop_serve(serve)
        stop_vendor_server(vendors)


def stop_serve(proc: Any) -> None:
    """Stop ``cxbridge serve`` (SIGTERM; killed when it does not stop within 30 s)."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


ESCALATION_TAG = "escalated_to_engineering"
EMAILS = ["ada@acme.example", "grace@globex.example", "linus@initech.example"]  # the demo seed's requesters
BENCH_SECRET = "bench-zendesk-signing-secret-0123456789"  # noqa: S105 - a throwaway sandbox signing secret


def seed_tickets(
    backend: Any,
    count: int,
    emails: list[str],
    *,
    subject: str = "Bench ticket",
    tags: list[str] | None = None,
    spread: float = 1.0,
) -> list[int]:
    """``count`` new tickets straight in the Zendesk emulator's model (requesters cycling through ``emails``).

    The model's own ``create_ticket`` applies Zendesk's rules; nothing goes through HTTP, so seeding 100,000
    tickets takes about a second. Tickets are ``spread`` seconds apart, the newest an hour ago.
    """
    model = backend.model
    ids: list[int] = []
    with backend.lock:
        requesters = [model.user_by_email(e) for e in emails]
        now = model.now() - 3600 - count * spread
        for i in range(count):
            requester = requesters[i % len(requesters)]
            ticket, _, _ = model.create_ticket(
                {
                    "ticket": {
                        "subject": f"{subject} {i}: CSV export times out",
                        "comment": {"body": "Every CSV export fails after 30 seconds with a timeout.", "public": True},
                        "requester_id": requester.id,
                        "priority": "high",
                        "status": "open",
                        "tags": list(tags or []),
                    }
                },
                requester,
                at=now + i * spread,
                comment_author_id=requester.id,
            )
            ids.append(ticket.id)
    return ids


_INVOCATIONS = itertools.count(8_350_205_001)
"""Zendesk's invocation ids, unique per delivery (the verifier deduplicates by them: the body has no id)."""


def zendesk_deliveries(
    backend: Any, ticket_ids: list[int], secret: str = BENCH_SECRET
) -> list[tuple[bytes, dict[str, str]]]:
    """For each ticket, the signed delivery the Zendesk emulator sends when an agent adds the escalation tag.

    The body is the emulator's own ``webhook_body`` for a ``tag_added`` change by the second sandbox agent (not
    cxbridge's integration user, so no echo suppression applies); headers as the emulator signs them.
    """
    from cxbridge_zendesk.sandbox.models import Change, iso
    from cxbridge_zendesk.sandbox.routes import sign

    agent = backend.model.user_by_email("alex@cxbridge.example")
    out: list[tuple[bytes, dict[str, str]]] = []
    with backend.lock:
        for tid in ticket_ids:
            change = Change("tag_added", tid, agent.id, tags_added=[ESCALATION_TAG])
            body = backend.webhook_body(change, backend.base_url).encode("utf-8")
            stamp = iso(time.time())
            out.append(
                (
                    body,
                    {
                        "Content-Type": "application/json; charset=utf-8",
                        "User-Agent": "Zendesk Webhook",
                        "X-Zendesk-Webhook-Id": "01JBENCH",
                        "X-Zendesk-Webhook-Invocation-Id": str(next(_INVOCATIONS)),
                        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
                        "X-Zendesk-Webhook-Signature": sign(secret, stamp, body),
                    },
                )
            )
    return out


def zendesk_events(backend: Any, ticket_ids: list[int]) -> list[Any]:
    """The Events the Zendesk verifier makes of ``zendesk_deliveries`` (what the receiver would enqueue)."""
    from cxbridge_zendesk.webhook import verify_zendesk

    from cxbridge.secrets import Secret

    secret = Secret(BENCH_SECRET)
    events: list[Any] = []
    for body, headers in zendesk_deliveries(backend, ticket_ids):
        events.extend(
            verify_zendesk(
                method="POST",
                url="http://127.0.0.1/webhooks/zendesk",
                headers=headers,
                body=body,
                secrets=[secret],
                now=time.time(),
            )
        )
    return events


class EmulatorClock:
    """Wraps each emulator's ``handle`` to add up the time spent answering inside the emulators."""

    def __init__(self, vendors: Any) -> None:
        import threading

        self.seconds = 0.0
        self.calls = 0
        self._lock = threading.Lock()
        for name in vendors:
            backend = vendors[name]
            original = backend.handle

            def timed_handle(request: Any, _original: Any = original) -> Any:
                start = time.perf_counter()
                try:
                    return _original(request)
                finally:
                    spent = time.perf_counter() - start
                    with self._lock:
                        self.seconds += spent
                        self.calls += 1

            backend.handle = timed_handle

    def reset(self) -> None:
        with self._lock:
            self.seconds = 0.0
            self.calls = 0
