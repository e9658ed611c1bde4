"""The webhook receiver on waitress, with worker threads draining the queue (``cxbridge serve`` runs it).

``start_server`` / ``serving`` run the same server in-process on a background thread (tests, the demo, the
benchmarks); ``run_server`` blocks until a stop event (the command sets it on SIGINT/SIGTERM).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import CxbridgeError
from ..worker import start_workers
from .metrics import Metrics
from .receiver import MAX_BODY, WEBHOOK_PREFIX, Receiver

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_THREADS = 8
READ_TIMEOUT_SECONDS = 10
"""Connections idle this long are closed (a slow sender cannot hold a thread)."""
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
) -> RunningServer:
    """Serve the receiver on ``host:port`` (0 picks a free port) from a background thread, with ``workers``.

    The server stops on ``stop()`` and, at the latest, when the interpreter exits.
    """
    import waitress

    metrics = metrics if metrics is not None else Metrics()
    receiver = Receiver(rt, metrics=metrics, clock=clock, systems=systems, require_secrets=require_secrets)
    stop_event = stop_event if stop_event is not None else threading.Event()
    try:
        server = waitress.create_server(
            receiver,
            host=host,
            port=port,
            threads=threads,
            ident="cxbridge",
            max_request_body_size=SERVER_BODY_LIMIT,
            channel_timeout=READ_TIMEOUT_SECONDS,
            cleanup_interval=5,
            clear_untrusted_proxy_headers=True,
        )
    except OSError as exc:
        raise CxbridgeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    worker_threads: list[threading.Thread] = []
    if workers > 0:
        try:
            worker_threads = list(start_workers(rt, workers, stop_event, metrics=metrics))
        except BaseException:
            _close_all(server)
            server.task_dispatcher.shutdown()
            raise
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
    try:
        echo(f"Listening on {running.url} ({workers} worker thread{'s' if workers != 1 else ''})")
        for name in sorted(running.receiver.endpoints):
            echo(f"  {name:10} {running.webhook_url(name)}")
        echo(f"  {'health':10} {running.url}/healthz")
        echo(f"  {'metrics':10} {running.url}/metrics")
        if not running.receiver.endpoints:
            echo("No system has a webhook verifier: only /healthz and /metrics are served.")
        echo("Ctrl-C to stop.")
        while not stop_event.wait(0.5):
            pass
    finally:
        running.stop()
        atexit.unregister(running.stop)
