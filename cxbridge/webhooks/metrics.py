"""Counters of one ``cxbridge serve`` process, rendered in the Prometheus text exposition format (0.0.4).

The receiver counts deliveries (``delivery(system, result)``), the workers count jobs (``job(outcome)``);
``render(rt)`` adds what the store and the HTTP layer know at that moment: the queue depth and the API calls.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runtime import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of the Prometheus text exposition format."""

DELIVERY_RESULTS = ("accepted", "duplicate", "rejected_401", "rejected_400", "rejected_408", "too_large", "error")
"""What the receiver did with a delivery: stored new events, only duplicates, refused, or could not store it."""

JOB_OUTCOMES = ("done", "retried", "dead")
"""What a worker did with a claimed job."""


def escape_label(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """Thread-safe counters of webhook deliveries and worker jobs, shared by the receiver and the workers."""

    def __init__(self, systems: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._deliveries: Counter[tuple[str, str]] = Counter()
        self._jobs: Counter[str] = Counter()
        self._systems: set[str] = set(systems)

    def register_systems(self, systems: Iterable[str]) -> None:
        """Systems whose delivery counters are shown even at zero (the ones the receiver serves)."""
        with self._lock:
            self._systems.update(systems)

    def delivery(self, system: str, result: str) -> None:
        """Count one delivery answered for ``system``; ``result`` is one of ``DELIVERY_RESULTS``."""
        if result not in DELIVERY_RESULTS:
            raise ValueError(f"unknown delivery result {result!r} (known: {', '.join(DELIVERY_RESULTS)})")
        with self._lock:
            self._deliveries[(system, result)] += 1

    def job(self, outcome: str) -> None:
        """Count one job a worker finished: ``"done"``, ``"retried"`` or ``"dead"``."""
        if outcome not in JOB_OUTCOMES:
            raise ValueError(f"unknown job outcome {outcome!r} (known: {', '.join(JOB_OUTCOMES)})")
        with self._lock:
            self._jobs[outcome] += 1

    def deliveries(self) -> dict[tuple[str, str], int]:
        """A copy of the delivery counts, keyed ``(system, result)``."""
        with self._lock:
            return dict(self._deliveries)

    def jobs(self) -> dict[str, int]:
        """A copy of the job counts by outcome (every outcome present)."""
        with self._lock:
            return {outcome: self._jobs[outcome] for outcome in JOB_OUTCOMES}

    def render(self, rt: Runtime) -> str:
        """Every metric in the Prometheus text format; a store that does not answer shows as ``cxbridge_store_up 0``."""
        with self._lock:
            deliveries = dict(self._deliveries)
            jobs = dict(self._jobs)
            systems = set(self._systems) | {system for system, _ in deliveries}
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        family(
            "cxbridge_webhook_deliveries_total",
            "counter",
            "Webhook deliveries answered, by system and result.",
        )
        for system in sorted(systems):
            for result in DELIVERY_RESULTS:
                count = deliveries.get((system, result), 0)
                lines.append(f"cxbridge_webhook_deliveries_total{_labels(system=system, result=result)} {count}")

        depth: dict[str, int] | None
        try:
            depth = rt.store.queue_depth()
        except Exception:  # the store is down: say so rather than fail the scrape
            depth = None
        family("cxbridge_store_up", "gauge", "1 when the store answered this scrape, else 0.")
        lines.append(f"cxbridge_store_up {0 if depth is None else 1}")
        family("cxbridge_queue_jobs", "gauge", "Jobs in the queue, by state.")
        for state, count in sorted((depth or {}).items()):
            lines.append(f"cxbridge_queue_jobs{_labels(state=state)} {count}")

        family("cxbridge_jobs_total", "counter", "Jobs the workers of this process finished, by outcome.")
        for outcome in JOB_OUTCOMES:
            lines.append(f"cxbridge_jobs_total{_labels(outcome=outcome)} {jobs.get(outcome, 0)}")

        calls: Counter[tuple[str, str]] = Counter()
        for (system, _op, status), count in rt.counter.snapshot().items():
            calls[(system, status)] += count
        family(
            "cxbridge_api_calls_total",
            "counter",
            "Vendor API attempts made by this process, by system and HTTP status (error: no answer).",
        )
        for (system, status), count in sorted(calls.items()):
            lines.append(f"cxbridge_api_calls_total{_labels(system=system, status=status)} {count}")
        return "\n".join(lines) + "\n"
