"""The queue: ``serve`` receives webhooks and ``sync`` polls (both queue jobs), ``worker`` runs the jobs,
``dead-letters`` shows and replays the jobs that failed for good."""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import click

from ..errors import CxbridgeError
from ..http.redact import escape_crlf, one_line
from ..runtime import Runtime
from ..store import AlreadyReplayed, NotFoundInStore
from ..store.preflight import check_store
from ..webhooks.metrics import Metrics, MetricsServer
from ..webhooks.serve import DEFAULT_THREADS, run_server
from ..worker import Worker, start_workers
from ..worker import drain as drain_queue
from ..workflows.reconcile import StreamReport, parse_since, reconcile
from .context import cli_context, load_runtime


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _housekeeping(runtime: Runtime) -> None:
    """The long-running worker's retention, once: inbox rows past 7 days, echo fingerprints past a day.

    A cron-only deployment (``worker --drain``, ``sync``) runs no long-lived worker, so without this its inbox
    would grow without bound. A failure (a busy store) is a warning: the next run tries again.
    """
    try:
        Worker(runtime).housekeeping()
    except Exception as exc:
        click.echo(f"warning: housekeeping failed (the next run tries again): {one_line(str(exc))}", err=True)


@click.command()
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker threads.")
@click.option("--drain", is_flag=True, help="Stop when no job is left to run (jobs retried later stay queued).")
@click.option(
    "--lease",
    "lease_seconds",
    type=click.FloatRange(min=1.0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a claimed job is held before another worker may take it over (renewed while it runs).",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Attempts before a job that keeps failing transiently becomes a dead letter.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="With --drain: the longest to wait for retries that come due.",
)
@click.option("--json", "as_json", is_flag=True, help="With --drain: print the report as JSON.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    metavar="PORT",
    help="Serve Prometheus /metrics of this process on PORT (0 picks a free one); off by default.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="The address /metrics listens on (loopback unless you open it).",
)
@click.pass_context
def worker(
    ctx: click.Context,
    workers: int,
    drain: bool,
    lease_seconds: float,
    max_attempts: int,
    timeout: float,
    as_json: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run the jobs queued by 'cxbridge serve' and 'cxbridge sync' (webhook and polled events).

    Several worker processes may share one store: each job runs once at a time, one job per ticket or issue
    at a time, and a worker that dies leaves its job to be taken over when its lease lapses.
    """
    runtime = load_runtime(ctx)
    cli_context(ctx).apply_log_level()
    check_store(runtime.config.store_location(), runtime.config.store_password())
    metrics: Metrics | None = None
    exposed: MetricsServer | None = None
    if metrics_port is not None:
        metrics = Metrics(runtime.config.systems)
        try:
            exposed = MetricsServer(metrics, runtime, host=metrics_host, port=metrics_port)
        except OSError as exc:
            runtime.close()
            raise click.ClickException(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc}") from None
        click.echo(f"metrics on {exposed.url}", err=True)
    try:
        if drain:
            _housekeeping(runtime)
            report = drain_queue(
                runtime,
                workers=workers,
                timeout=timeout,
                lease_seconds=lease_seconds,
                max_attempts=max_attempts,
                metrics=metrics,
            )
            if as_json:
                click.echo(json.dumps(report.as_dict(), indent=2))
                return
            line = f"done {report.done}, retried {report.retried}, dead {report.dead}"
            if report.stale:
                line += f", stale {report.stale}"
            click.echo(line)
            if report.pending:
                nxt = min(run_at for _, run_at in report.pending)
                click.echo(f"{len(report.pending)} job(s) wait for a retry; the next at {_when(nxt)}")
            if report.ready or report.leased:
                click.echo(f"left in the queue: {report.ready} ready, {report.leased} running elsewhere")
            if report.dead:
                click.echo("see 'cxbridge dead-letters list'")
            return
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        try:
            previous: Any = signal.signal(signal.SIGTERM, on_signal)
        except ValueError:  # not the main thread (an embedding program): it stops us itself
            previous = None
        threads = start_workers(
            runtime, workers, stop, lease_seconds=lease_seconds, max_attempts=max_attempts, metrics=metrics
        )
        click.echo(f"{workers} worker(s) running; Ctrl-C to stop.", err=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            stop.set()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            for thread in threads:
                thread.join()
        click.echo("workers stopped.", err=True)
    finally:
        if exposed is not None:
            exposed.stop()
        runtime.close()


@click.group("dead-letters")
def dead_letters() -> None:
    """Jobs that failed for good (permanently, or too often), with their redacted error; replay one."""


def _letter_dict(letter: Any) -> dict[str, Any]:
    return {
        "id": letter.id,
        "job_id": letter.job_id,
        "kind": letter.kind,
        "key": letter.key,
        "attempt": letter.attempt,
        "error": letter.error,
        "created_at": _when(letter.created_at),
        "replayed_at": _when(letter.replayed_at) if letter.replayed_at is not None else None,
        "replay_job_id": letter.replay_job_id,
        "payload": letter.payload,
    }


def _subject(payload: dict[str, Any]) -> str:
    event = payload.get("event")
    if isinstance(event, dict):
        return f"{event.get('kind', '?')} {event.get('subject', '?')}"
    return ""


@dead_letters.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the letters as JSON.")
@click.pass_context
def list_letters(ctx: click.Context, as_json: bool) -> None:
    """Every dead letter, oldest first (replayed ones marked)."""
    runtime = load_runtime(ctx)
    try:
        letters = runtime.store.dead_letters()
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps([_letter_dict(x) for x in letters], indent=2))
        return
    if not letters:
        click.echo("no dead letters")
        return
    for letter in letters:
        state = f"replayed as job {letter.replay_job_id}" if letter.replayed else "not replayed"
        subject = _subject(letter.payload)
        subject = f" {escape_crlf(subject)}" if subject else ""
        click.echo(
            f"{letter.id:>4}  job {letter.job_id} {letter.kind}{subject}  attempt {letter.attempt}"
            f"  {_when(letter.created_at)}  {state}"
        )
        click.echo(f"      {escape_crlf(one_line(letter.error, 200))}")


def _get_letter(ctx: click.Context, letter_id: int) -> dict[str, Any]:
    runtime = load_runtime(ctx)
    try:
        letter = runtime.store.dead_letter(letter_id)
    finally:
        runtime.close()
    if letter is None:
        raise CxbridgeError(f"no dead letter with id {letter_id} (see 'cxbridge dead-letters list')")
    return _letter_dict(letter)


@dead_letters.command("show")
@click.argument("letter_id", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the letter as JSON.")
@click.pass_context
def show_letter(ctx: click.Context, letter_id: int, as_json: bool) -> None:
    """One dead letter: its job, attempts, error and payload."""
    data = _get_letter(ctx, letter_id)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key in ("id", "job_id", "kind", "key", "attempt", "created_at", "replayed_at", "replay_job_id", "error"):
        value = data[key]
        if value is not None:
            click.echo(f"{key + ':':15}{escape_crlf(str(value))}")
    click.echo("payload:")
    click.echo(json.dumps(data["payload"], indent=2))


@dead_letters.command("replay")
@click.argument("letter_id", metavar="ID", type=int)
@click.pass_context
def replay_letter(ctx: click.Context, letter_id: int) -> None:
    """Queue a dead letter's job again (once); prints the new job's id."""
    runtime = load_runtime(ctx)
    try:
        try:
            job_id = runtime.store.replay_dead_letter(letter_id)
        except NotFoundInStore:
            raise CxbridgeError(f"no dead letter with id {letter_id} (see 'cxbridge dead-letters list')") from None
        except AlreadyReplayed as exc:
            raise CxbridgeError(str(exc)) from None
    finally:
        runtime.close()
    click.echo(f"dead letter {letter_id} queued again as job {job_id}")


# ----------------------------------------------------------------------------------------------------------
# serve and sync: what queues jobs
# ----------------------------------------------------------------------------------------------------------


@click.command()
@click.option("--host", default=None, help="Address to listen on (default: [webhooks] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default: [webhooks] port, 8787).")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Worker threads draining the queue (default: [webhooks] workers; 0 to run 'cxbridge worker' apart).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1, max=256),
    default=None,
    help=f"HTTP threads answering deliveries (default: [webhooks] threads, {DEFAULT_THREADS}).",
)
@click.option(
    "--system",
    "systems",
    multiple=True,
    metavar="NAME",
    help="Serve only this [systems.<name>]'s webhooks (repeatable; default: every system with a verifier).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int | None,
    systems: tuple[str, ...],
) -> None:
    """Receive the vendors' webhooks: verify, deduplicate, queue; worker threads act on the queue.

    POST /webhooks/<system> for each configured system, GET /healthz and GET /metrics (Prometheus).
    Every served system needs a signing secret in [webhooks] secrets.<system>; unsigned deliveries are refused.
    With [agent_api] app_public_keys, also the helpdesk sidebar app's page (/agent/app) and its agent API.
    Stops cleanly on Ctrl-C or SIGTERM.
    """
    rt = load_runtime(ctx)
    cli_context(ctx).apply_log_level()
    check_store(
        rt.config.store_location(), rt.config.store_password()
    )  # before "Listening": a store it cannot write is refused at start
    section = rt.config.section("webhooks")
    stop_event = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_event.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        run_server(
            rt,
            host if host is not None else str(section["host"]),
            port if port is not None else int(section["port"]),
            workers if workers is not None else int(section["workers"]),
            threads if threads is not None else int(section.get("threads", DEFAULT_THREADS)),
            stop_event,
            systems=list(systems) or None,
            echo=click.echo,
        )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        rt.close()
        click.echo("Stopped.")


class _Counter:
    """A one-line progress counter on stderr (only on a terminal)."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, figures: StreamReport) -> None:
        line = (
            f"{figures.system} {figures.stream}: {figures.pages} pages, {figures.records} records, "
            f"{figures.enqueued} events"
        )
        click.echo(f"\r{line}\033[K", err=True, nl=False)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            click.echo("", err=True)


@click.command()
@click.option("--since", metavar="ISO", help="Scan from this time (ISO-8601), not from the saved checkpoints.")
@click.option("--system", "systems", multiple=True, metavar="NAME", help="Only this [systems.*] name (repeatable).")
@click.option("--drain/--no-drain", default=True, show_default=True, help="Run the queued jobs afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def sync(ctx: click.Context, since: str | None, systems: tuple[str, ...], drain: bool, as_json: bool) -> None:
    """Catch up on changes the webhooks missed: poll each system since its checkpoint and queue what matters.

    Safe to run from cron while 'cxbridge serve' runs. Exits 1 when a system could not be scanned (the others
    are still scanned, and its checkpoint keeps the last page handled).
    """
    start = parse_since(since) if since else None
    runtime = load_runtime(ctx)
    cli_context(ctx).apply_log_level()
    counter = None if as_json or not sys.stderr.isatty() else _Counter()
    try:
        report = reconcile(runtime, systems=list(systems) or None, since=start, progress=counter)
        if counter is not None:
            counter.close()
        if drain:
            report.jobs = drain_queue(runtime).as_dict()
        _housekeeping(runtime)
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for s in report.streams:
            if s.skipped:
                click.echo(f"{s.system} {s.stream}: skipped (another process is polling it now)")
                continue
            state = f"error: {s.error}" if s.error else ("up to date" if s.done else "more to come")
            click.echo(
                f"{s.system} {s.stream}: {s.pages} pages, {s.records} records, {s.calls} calls, "
                f"{s.enqueued} events queued, {s.duplicates} seen before ({state})"
            )
        if report.jobs is not None:
            jobs = report.jobs
            click.echo(
                f"jobs: {jobs.get('done', 0)} done, {jobs.get('retried', 0)} retried, {jobs.get('dead', 0)} dead"
            )
    if report.failed:
        ctx.exit(1)
