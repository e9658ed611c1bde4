"""Counts of HTTP attempts per system, operation and outcome, for benchmarks, metrics and tests; and the calls of
one workflow run (``tallying_calls``), whichever threads it ran them on."""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, Protocol, TypeVar

ERROR = "error"
"""The outcome recorded for an attempt that got no HTTP answer (connect error, timeout, reset)."""


class CallCounter:
    """Thread-safe counts of every HTTP attempt (retries included) keyed by ``(system, op, outcome)``.

    ``outcome`` is the HTTP status as a string (``"200"``, ``"429"``) or ``"error"`` when no answer came.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def record(self, system: str, op: str, outcome: int | str) -> None:
        """Count one attempt, here and in the tallies open in the calling context (``tallying_calls``)."""
        self._count(system, op, str(outcome))
        for tally in _TALLIES.get():
            tally._count(system, op, str(outcome))

    def _count(self, system: str, op: str, outcome: str) -> None:
        with self._lock:
            self._counts[(system, op, outcome)] += 1

    def total(self, system: str | None = None, op: str | None = None) -> int:
        """Attempts overall, or for one system and/or one operation."""
        with self._lock:
            return sum(
                n
                for (s, o, _), n in self._counts.items()
                if (system is None or s == system) and (op is None or o == op)
            )

    def by_system(self) -> dict[str, int]:
        """Attempts per system."""
        out: Counter[str] = Counter()
        with self._lock:
            for (s, _, _), n in self._counts.items():
                out[s] += n
        return dict(out)

    def by_op(self, system: str | None = None) -> dict[str, int]:
        """Attempts per operation name, for one system or summed across all systems."""
        out: Counter[str] = Counter()
        with self._lock:
            for (s, o, _), n in self._counts.items():
                if system is None or s == system:
                    out[o] += n
        return dict(out)

    def by_outcome(self, system: str | None = None, op: str | None = None) -> dict[str, int]:
        """Attempts per outcome (``"200"``, ``"503"``, ``"error"``), optionally for one system and/or op."""
        out: Counter[str] = Counter()
        with self._lock:
            for (s, o, outcome), n in self._counts.items():
                if (system is None or s == system) and (op is None or o == op):
                    out[outcome] += n
        return dict(out)

    def snapshot(self) -> dict[tuple[str, str, str], int]:
        """A copy of every count, keyed ``(system, op, outcome)``."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counts.clear()

    def __repr__(self) -> str:
        return f"CallCounter(total={self.total()})"


default_counter = CallCounter()
"""The process-wide counter used by clients built without one."""


_TALLIES: ContextVar[tuple[CallCounter, ...]] = ContextVar("cxbridge_call_tallies", default=())
"""The tallies open in this context, outermost first: a run inside another counts in both."""


@contextmanager
def tallying_calls() -> Iterator[CallCounter]:
    """Inside: every HTTP attempt of this context, and of the contexts copied from it (``side_by_side`` runs its
    helpers in such a copy), is counted in the tally too: one workflow run's calls, whichever threads made them,
    and no other run's, although every run of the process counts into the same client counter."""
    tally = CallCounter()
    token = _TALLIES.set((*_TALLIES.get(), tally))
    try:
        yield tally
    finally:
        _TALLIES.reset(token)


class _HasCalls(Protocol):
    calls: dict[str, int]


P = ParamSpec("P")
R = TypeVar("R", bound=_HasCalls)


def tallies_calls(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorates a workflow whose result has a ``calls`` field: it is set to the calls this run made, per system."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with tallying_calls() as tally:
            result = fn(*args, **kwargs)
        result.calls = tally.by_system()
        return result

    return run
