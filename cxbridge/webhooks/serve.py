"""The webhook receiver on waitress, with worker threads draining the queue (``cxbridge serve`` runs it).

``start_server`` / ``serving`` run the same server in-process on a background thread (tests, the demo, the
benchmarks); ``run_server`` blocks until a stop event (the command sets it on SIGINT/SIGTERM).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import CxbridgeError
from ..worker import start_workers
from ..workflows.events import warm_up
from .metrics import Metrics
from .receiver import MAX_BODY, WEBHOOK_PREFIX, Receiver

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_THREADS = 8
READ_TIMEOUT_SECONDS = 10
"""Connections idle this long are closed (``[webhooks] idle_timeout_seconds``)."""
REQUEST_TIMEOUT_SECONDS = 10
"""A request's headers and body must all arrive within this (``[webhooks] request_timeout_seconds``), else 408."""
CONNECTION_LIMIT = 2000
"""Open connections served at once (``[webhooks] connection_limit``); more wait in the listen backlog."""
CLEANUP_INTERVAL_SECONDS = 1
"""How often idle and overdue connections are looked for (the deadlines' granularity)."""
CROWDED_SHARE = 0.9
"""Past this share of ``connection_limit`` open, idle connections are closed early (``CROWDED_IDLE_SECONDS``)."""
CROWDED_IDLE_SECONDS = 1.0
_FD_MARGIN = 64
"""File descriptors kept for the store, the logs and the workers' HTTP clients beside the connections."""
_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
    b'Content-Length: 46\r\n\r\n{"error":"the request did not arrive in time"}'
)
QUEUE_REPORT_SECONDS = 60.0
"""How often, at most, a line says the receiver's threads were all busy (``QueueDepthLog``)."""
SERVER_BODY_LIMIT = MAX_BODY + 64 * 1024
"""waitress's own cap: bodies a little over ``MAX_BODY`` reach the app (answered 413 and counted); far larger
ones are cut off by waitress while it reads them, so a 50 MB upload is never buffered."""


class RunningServer:
    """A receiver served by waitress on a background thread, with its worker threads; ``stop()`` ends both."""

    def __init__(
        self,
        server: Any,
        receiver: Receiver,
        stop_event: threading.Event,
        workers: list[threading.Thread],
    ) -> None:
        self.server = server
        self.receiver = receiver
        self.metrics = receiver.metrics
        self.stop_event = stop_event
        self.workers = workers
        host = str(server.effective_host)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{server.effective_port}"
        self.deadline: RequestDeadline | None = getattr(server, "maintenance", None)
        self._thread = threading.Thread(target=self._run, name="cxbridge-serve", daemon=True)
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The port the server listens on (the one picked when 0 was asked)."""
        return int(self.server.effective_port)

    def webhook_url(self, name: str) -> str:
        """Where ``[systems.<name>]``'s vendor should deliver (the public URL when configured)."""
        endpoint = self.receiver.endpoints.get(name)
        if endpoint is not None and endpoint.public_url:
            return endpoint.public_url
        base = self.receiver.public_url.rstrip("/") or self.url
        return f"{base}{WEBHOOK_PREFIX}{name}"

    def start(self) -> None:
        """Run the server's loop on its background thread."""
        self._thread.start()

    def _run(self) -> None:
        try:
            self.server.run()
        except Exception as exc:  # pragma: no cover - waitress's loop ends by closing its sockets
            log.error("the webhook server stopped: %s: %s", type(exc).__name__, exc)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting requests, let the workers finish their job, close every socket. Idempotent."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        server = self.server
        if self._thread.is_alive():
            # Close the sockets inside the server's own loop thread, then wait for that loop to end.
            with contextlib.suppress(OSError):  # a trigger already gone means the loop is ending anyway
                server.trigger.pull_trigger(lambda: _close_all(server))
            self._thread.join(timeout)
        if self._thread.is_alive() or server._map:
            _close_all(server)
        server.task_dispatcher.shutdown(timeout=timeout)
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.workers:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("worker thread %s did not stop within %.0f s", thread.name, timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class QueueDepthLog:
    """Stands in for waitress's queue logger: one line a ``QUEUE_REPORT_SECONDS`` when requests wait for a thread.

    waitress warns ``Task queue depth is N`` for every request that arrives while all its threads are busy, and
    does so holding the lock its threads take their next request under. While the threads wait for a durable
    commit they are all busy for a moment: in ``bench_ingest`` (500/s) that made 965 lines for 3,000 deliveries,
    each formatted, redacted and written to stderr under that lock.
    Here the first such request logs, and later ones only count (their deepest queue too) until the interval
    has passed; the delivery latency histogram (``/metrics``) shows the waits in full.
    """

    def __init__(
        self, threads: int, *, interval: float = QUEUE_REPORT_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threads = threads
        self.interval = interval
        self.clock = clock
        self.held = 0
        """Busy moments seen since the last line (not logged yet)."""
        self.deepest = 0
        self._next = float("-inf")

    def warning(self, msg: str, *args: Any) -> None:
        """waitress's call (``"Task queue depth is %d", depth``): logged now, or counted for the next line."""
        depth = args[0] if args and isinstance(args[0], int) else 0
        self.deepest = max(self.deepest, depth)
        now = self.clock()
        if now < self._next:
            self.held += 1
            return
        self._next = now + self.interval
        held, deepest = self.held, self.deepest
        self.held = self.deepest = 0
        log.warning(
            "all %d receiver threads were busy: up to %d requests waited for one (%d more such moments since this"
            " was last logged; at most one line a %.0f s)",
            self.threads,
            deepest,
            held,
            self.interval,
        )


class RequestDeadline:
    """Closes, with a 408, every connection whose request has not fully arrived within ``seconds`` of its start.

    waitress closes only *idle* channels (``channel_timeout``): a client sending one byte a second is never idle,
    so 120 of them held every connection slot and signed deliveries waited for a minute. This runs in waitress's
    loop thread at each channel cleanup (``cleanup_interval``): a request first seen in progress is timed from
    then; past the deadline its channel gets a 408 and is closed once that is flushed. Channels whose request is
    complete (being answered by a thread) are left alone: the app answers them. When the connections fill
    ``CROWDED_SHARE`` of ``connection_limit``, connections idle for ``CROWDED_IDLE_SECONDS`` are closed too, so
    those waiting in the listen backlog (a vendor's delivery among them) get a slot within seconds.
    """

    def __init__(self, server: Any, seconds: float) -> None:
        self.server = server
        self.seconds = seconds
        self.closed = 0
        self.shed = 0
        self._seen: dict[int, tuple[int, float]] = {}  # channel fileno -> (id of its request in progress, first seen)
        self._maintenance = server.maintenance

    def __call__(self, now: float) -> None:
        self._maintenance(now)
        crowded = len(self.server._map) >= self.server.adj.connection_limit * CROWDED_SHARE
        seen: dict[int, tuple[int, float]] = {}
        for fileno, channel in list(self.server.active_channels.items()):
            if channel.requests or channel.will_close or channel.close_when_flushed:
                continue
            request = getattr(channel, "request", None)
            if request is None:
                if crowded and not channel.total_outbufs_len and now - channel.last_activity >= CROWDED_IDLE_SECONDS:
                    channel.will_close = True  # an idle connection gives its slot to one waiting in the backlog
                    self.shed += 1
                continue
            marker, started = self._seen.get(fileno, (id(request), now))
            if marker != id(request):
                marker, started = id(request), now
            if now - started >= self.seconds:
                self._expire(channel)
                continue
            seen[fileno] = (marker, started)
        self._seen = seen

    def _expire(self, channel: Any) -> None:
        with channel.outbuf_lock:
            channel.outbufs[-1].append(_TIMEOUT_408)
            channel.current_outbuf_count += len(_TIMEOUT_408)
            channel.total_outbufs_len += len(_TIMEOUT_408)
        channel.request = None
        channel.close_when_flushed = True
        self.closed += 1


def connections_possible(wanted: int) -> int:
    """How many connections this process can hold open: ``wanted``, raising the soft file limit when needed.

    Where the hard limit is lower, fewer (with a warning): a server out of file descriptors fails every accept
    instead of leaving new connections waiting in the backlog.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX: the OS decides
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + _FD_MARGIN
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        possible = max(1, int(soft) - _FD_MARGIN)
        log.warning(
            "[webhooks] connection_limit %d is above what the open-file limit allows; serving %d", wanted, possible
        )
        return possible
    return wanted


def _close_all(server: Any) -> None:
    from waitress import wasyncore

    wasyncore.close_all(server._map)


def start_server(
    rt: Runtime,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    workers: int = 0,
    threads: int = DEFAULT_THREADS,
    metrics: Metrics | None = None,
    stop_event: threading.Event | None = None,
    systems: Iterable[str] | None = None,
    clock: Callable[[], float] = time.time,
    require_secrets: bool = True,
    request_timeout: float | None = None,
    idle_timeout: float | None = None,
    connection_limit: int | None = None,
) -> RunningServer:
    """Serve the receiver on ``host:port`` (0 picks a free port) from a background thread, with ``workers``.

    ``request_timeout``, ``idle_timeout`` and ``connection_limit`` default to ``[webhooks]``'s
    ``request_timeout_seconds``, ``idle_timeout_seconds`` and ``connection_limit``. Slow and idle clients cannot
    starve signed deliveries: waitress reads every connection in one loop (poll, not select, so past 1,024
    sockets) and hands a request to a thread only once it has fully arrived; a request still arriving after
    ``request_timeout`` is answered 408 and closed (``RequestDeadline``), an idle connection is closed after
    ``idle_timeout``, and beyond ``connection_limit`` new connections wait in the listen backlog until those
    deadlines free a slot. The server stops on ``stop()`` and, at the latest, when the interpreter exits.
    """
    import waitress

    section = rt.config.section("webhooks")
    systems = None if systems is None else list(systems)
    if request_timeout is None:
        request_timeout = float(section.get("request_timeout_seconds", REQUEST_TIMEOUT_SECONDS))
    if idle_timeout is None:
        idle_timeout = float(section.get("idle_timeout_seconds", READ_TIMEOUT_SECONDS))
    if connection_limit is None:
        connection_limit = int(section.get("connection_limit", CONNECTION_LIMIT))
    metrics = metrics if metrics is not None else Metrics()
    receiver = Receiver(
        rt,
        metrics=metrics,
        clock=clock,
        systems=systems,
        require_secrets=require_secrets,
        request_timeout=request_timeout,
    )
    stop_event = stop_event if stop_event is not None else threading.Event()
    try:
        server = waitress.create_server(
            receiver,
            host=host,
            port=port,
            threads=threads,
            ident="cxbridge",
            max_request_body_size=SERVER_BODY_LIMIT,
            channel_timeout=max(1, round(idle_timeout)),
            cleanup_interval=CLEANUP_INTERVAL_SECONDS,
            connection_limit=connections_possible(connection_limit),
            asyncore_use_poll=True,
            clear_untrusted_proxy_headers=True,
        )
    except OSError as exc:
        raise CxbridgeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.maintenance = RequestDeadline(server, request_timeout)
    server.task_dispatcher.queue_logger = QueueDepthLog(threads)
    worker_threads: list[threading.Thread] = []
    if workers > 0:
        try:
            worker_threads = list(start_workers(rt, workers, stop_event, metrics=metrics))
        except BaseException:
            _close_all(server)
            server.task_dispatcher.shutdown()
            raise
    if workers > 0:  # the connections and the integration users the first jobs need, while no delivery waits
        threading.Thread(target=warm_up, args=(rt, systems), name="cxbridge-warm-up", daemon=True).start()
    running = RunningServer(server, receiver, stop_event, worker_threads)
    running.start()
    atexit.register(running.stop)
    return running


@contextlib.contextmanager
def serving(
    rt: Runtime,
    host: str = "127.0.0.1",
    port: int = 0,
    workers: int = 0,
    **kwargs: Any,
) -> Iterator[RunningServer]:
    """``start_server`` as a context manager: the running server inside, stopped on leaving."""
    running = start_server(rt, host=host, port=port, workers=workers, **kwargs)
    try:
        yield running
    finally:
        running.stop()
        atexit.unregister(running.stop)


def run_server(
    rt: Runtime,
    host: str,
    port: int,
    workers: int,
    threads: int,
    stop_event: threading.Event,
    *,
    systems: Iterable[str] | None = None,
    echo: Callable[[str], None],
) -> None:
    """Serve until ``stop_event`` is set; print the listening URL and each system's webhook URL first."""
    running = start_server(
        rt, host=host, port=port, workers=workers, threads=threads, stop_event=stop_event, systems=systems
    )
    # what starting made (modules, plugins, the configuration) lives as long as the process: out of the
    # collector's generations, a full collection no longer walks it (about 30 ms each time here)
    gc.freeze()
    try:
        echo(f"Listening on {running.url} ({workers} worker thread{'s' if workers != 1 else ''})")
        for name in sorted(running.receiver.endpoints):
            echo(f"  {name:10} {running.webhook_url(name)}")
        echo(f"  {'health':10} {running.url}/healthz")
        echo(f"  {'metrics':10} {running.url}/metrics")
        if running.receiver.agent_api.enabled:
            echo(f"  {'agent app':10} {running.url}/agent/app (and /agent/tickets/<id>)")
        if not running.receiver.endpoints:
            echo("No system has a webhook verifier: only /healthz and /metrics are served.")
        echo("Ctrl-C to stop.")
        while not stop_event.wait(0.5):
            pass
    finally:
        running.stop()
        atexit.unregister(running.stop)
