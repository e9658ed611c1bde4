"""The metrics of one ``cxbridge serve`` (or ``cxbridge worker``) process, in the Prometheus text format (0.0.4).

Built on ``prometheus_client`` with a registry of its own per ``Metrics`` (never the library's global one, so
that several servers in one process, or an embedding application, do not mix their series). The receiver counts
and times deliveries (``delivery``, ``observe_delivery``), the workers count and time jobs (``job``); at each
scrape a collector reads what the store and the HTTP layer know at that moment:

==============================================  =============================================================
family                                          what it says
==============================================  =============================================================
``cxbridge_webhook_deliveries_total``           deliveries answered, by system and result
``cxbridge_webhook_delivery_seconds``           histogram: time to read, verify and store one delivery
``cxbridge_jobs_total``                         jobs the workers of this process settled, by outcome
``cxbridge_job_duration_seconds``               histogram: time a job's handler ran, by kind and outcome
``cxbridge_store_up``                           1 when the store answered the scrape
``cxbridge_queue_jobs``                         jobs in the queue, by state
``cxbridge_queue_oldest_ready_age_seconds``     how long the oldest due job has waited (0 when none waits)
``cxbridge_last_successful_poll_timestamp_seconds``  when ``cxbridge sync`` last finished a stream without error
``cxbridge_api_calls_total``                    vendor API attempts, by system and HTTP status
``cxbridge_api_rate_limited_total``             429 answers, by system
``process_*``, ``python_*``                     the process (CPU, memory, open files) and the interpreter
==============================================  =============================================================

The scrape-time reads are cheap: the queue's counts, one indexed ``min(run_at)``, and one row per polled stream.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import Histogram as PromHistogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from ..runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of the Prometheus text exposition format."""

DELIVERY_RESULTS = ("accepted", "duplicate", "rejected_401", "rejected_400", "rejected_408", "too_large", "error")
"""What the receiver did with a delivery: stored new events, only duplicates, refused, or could not store it."""

JOB_OUTCOMES = ("done", "retried", "dead")
"""What a worker did with a claimed job."""

DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: a delivery is read, verified and committed in milliseconds; 10 s is the request timeout."""
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds: a job makes a few vendor calls (an escalation up to a dozen), bounded by the lease."""


def escape_label(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _ScrapeTime(Collector):
    """What the store and the HTTP layer know at scrape time (the Runtime is the one bound to ``Metrics``)."""

    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self._runtime()
        if rt is None:
            return
        store_up = GaugeMetricFamily("cxbridge_store_up", "1 when the store answered this scrape, else 0.")
        queue = GaugeMetricFamily("cxbridge_queue_jobs", "Jobs in the queue, by state.", labels=["state"])
        oldest = GaugeMetricFamily(
            "cxbridge_queue_oldest_ready_age_seconds",
            "Seconds the oldest due job has waited to run (0 when none is due).",
        )
        polls = GaugeMetricFamily(
            "cxbridge_last_successful_poll_timestamp_seconds",
            "When cxbridge sync last read a stream to its end without an error (Unix time), by system and stream.",
            labels=["system", "stream"],
        )
        try:
            store = rt.store
            depth = store.queue_depth()
            now = float(store.clock())
            ready_at = store.oldest_ready_at(now)
            last = _last_polls(rt)
        except Exception:  # the store is down: say so rather than fail the scrape
            store_up.add_metric([], 0)
            yield store_up
            return
        store_up.add_metric([], 1)
        for state, count in sorted(depth.items()):
            queue.add_metric([state], count)
        oldest.add_metric([], 0.0 if ready_at is None else max(0.0, now - ready_at))
        for (system, stream), at in sorted(last.items()):
            polls.add_metric([system, stream], at)
        yield from (store_up, queue, oldest, polls)

        calls: Counter[tuple[str, str]] = Counter()
        limited: Counter[str] = Counter()
        for (system, _op, status), count in rt.counter.snapshot().items():
            calls[(system, status)] += count
            limited[system] += count if status == "429" else 0
        api = CounterMetricFamily(
            "cxbridge_api_calls",
            "Vendor API attempts made by this process, by system and HTTP status (error: no answer).",
            labels=["system", "status"],
        )
        for (system, status), count in sorted(calls.items()):
            api.add_metric([system, status], count)
        throttled = CounterMetricFamily(
            "cxbridge_api_rate_limited",
            "Vendor answers 429 (rate limited) to this process, by system.",
            labels=["system"],
        )
        for system in sorted(set(limited) | set(rt.config.systems)):
            throttled.add_metric([system], limited.get(system, 0))
        yield from (api, throttled)


def _last_polls(rt: Runtime) -> dict[tuple[str, str], float]:
    from ..workflows.reconcile import last_successful_polls

    return last_successful_polls(rt)


class Metrics:
    """Thread-safe counters and histograms of webhook deliveries and worker jobs, shared by the receiver and the
    workers of one process; ``render`` writes them with the scrape-time figures of the bound Runtime."""

    def __init__(self, systems: Iterable[str] = (), *, process: bool = True) -> None:
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._rt: Runtime | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self._deliveries = PromCounter(
            "cxbridge_webhook_deliveries",
            "Webhook deliveries answered, by system and result.",
            ["system", "result"],
            registry=self.registry,
        )
        self._delivery_seconds = PromHistogram(
            "cxbridge_webhook_delivery_seconds",
            "Time to read, verify and store one webhook delivery, by system.",
            ["system"],
            buckets=DELIVERY_BUCKETS,
            registry=self.registry,
        )
        self._jobs = PromCounter(
            "cxbridge_jobs",
            "Jobs the workers of this process finished, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self._job_seconds = PromHistogram(
            "cxbridge_job_duration_seconds",
            "Time a job's handler ran, by job kind and outcome.",
            ["kind", "outcome"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        for outcome in JOB_OUTCOMES:
            self._jobs.labels(outcome)
        self._delivery_counts: Counter[tuple[str, str]] = Counter()
        # the labelled children, looked up once per label set: a ``labels()`` call costs more than the increment
        self._delivery_children: dict[tuple[str, str], Any] = {}
        self._seconds_children: dict[str, Any] = {}
        self._job_counts: Counter[str] = Counter()
        self._job_children: dict[str, Any] = {}
        self._job_seconds_children: dict[tuple[str, str], Any] = {}
        self.registry.register(_ScrapeTime(lambda: self._rt))
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self.register_systems(systems)

    def bind(self, rt: Runtime) -> None:
        """The Runtime whose store and API counters the scrape reads (the receiver's, or the worker's)."""
        self._rt = rt

    def register_systems(self, systems: Iterable[str]) -> None:
        """Systems whose delivery counters are shown even at zero (the ones the receiver serves)."""
        for system in systems:
            for result in DELIVERY_RESULTS:
                self._deliveries.labels(system, result)

    def delivery(self, system: str, result: str) -> None:
        """Count one delivery answered for ``system``; ``result`` is one of ``DELIVERY_RESULTS``."""
        if result not in DELIVERY_RESULTS:
            raise ValueError(f"unknown delivery result {result!r} (known: {', '.join(DELIVERY_RESULTS)})")
        key = (system, result)
        with self._lock:
            self._delivery_counts[key] += 1
            child = self._delivery_children.get(key)
            if child is None:
                child = self._delivery_children[key] = self._deliveries.labels(system, result)
            child.inc()

    def observe_delivery(self, system: str, seconds: float) -> None:
        """Time one delivery took to answer (read, verified, stored, or refused)."""
        child = self._seconds_children.get(system)
        if child is None:
            child = self._seconds_children.setdefault(system, self._delivery_seconds.labels(system))
        child.observe(max(0.0, seconds))

    def job(self, outcome: str, *, kind: str = "event", seconds: float | None = None) -> None:
        """Count one job a worker finished: ``"done"``, ``"retried"`` or ``"dead"``; ``seconds`` its handler's run."""
        if outcome not in JOB_OUTCOMES:
            raise ValueError(f"unknown job outcome {outcome!r} (known: {', '.join(JOB_OUTCOMES)})")
        with self._lock:
            self._job_counts[outcome] += 1
            child = self._job_children.get(outcome)
            if child is None:
                child = self._job_children[outcome] = self._jobs.labels(outcome)
            child.inc()
        if seconds is not None:
            key = (kind, outcome)
            timer = self._job_seconds_children.get(key)
            if timer is None:
                timer = self._job_seconds_children.setdefault(key, self._job_seconds.labels(kind, outcome))
            timer.observe(max(0.0, seconds))

    def deliveries(self) -> dict[tuple[str, str], int]:
        """A copy of the delivery counts, keyed ``(system, result)``."""
        with self._lock:
            return dict(self._delivery_counts)

    def jobs(self) -> dict[str, int]:
        """A copy of the job counts by outcome (every outcome present)."""
        with self._lock:
            return {outcome: self._job_counts[outcome] for outcome in JOB_OUTCOMES}

    def render(self, rt: Runtime | None = None) -> str:
        """Every metric in the Prometheus text format; a store that does not answer shows as ``cxbridge_store_up 0``."""
        with self._render_lock:
            if rt is not None:
                self._rt = rt
            return generate_latest(self.registry).decode("utf-8")


class MetricsServer:
    """``/metrics`` of a ``cxbridge worker`` process on its own port (loopback unless told otherwise)."""

    def __init__(self, metrics: Metrics, rt: Runtime, *, host: str = "127.0.0.1", port: int = 0) -> None:
        from prometheus_client import start_http_server

        metrics.bind(rt)
        self._server, self._thread = start_http_server(port, addr=host, registry=metrics.registry)
        self.host = host
        self.port = int(self._server.server_port)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)
