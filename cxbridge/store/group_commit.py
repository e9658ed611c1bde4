"""Group commit: requests that arrive together share one durable transaction (leader/follower batching).

A caller enqueues its request and waits. The first caller that finds no batch running becomes the leader: it
takes the store's write lock, then drains every request pending by then (its own among them, and all that
arrived while it waited for the lock) and runs them through ``run`` in one transaction, each in its own
savepoint, committed once. Each caller then gets its own result or its own exception: ``run`` reports one
request's failure for that request only, while a failure of the transaction as a whole (the commit, or a
storage error that ends the transaction) reaches every caller of the batch. A caller returns only after the
commit that holds its request, so an acknowledgement sent after it is never ahead of the disk.

Each caller keeps its own wait budget (``Store.write_budget``): one still pending (not yet taken into a batch)
when its deadline passes leaves the queue with ``StoreBusy``; a leader that cannot get the write lock in its
budget fails alone and the next pending caller leads.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .base import StoreBusy, StoreError

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[R]):
    """What one request of a batch came to: its value, or the exception it raised (its savepoint rolled back)."""

    value: R | None = None
    error: BaseException | None = None


@dataclass
class _Request(Generic[T, R]):
    item: T
    deadline: float | None
    taken: bool = False
    done: bool = False
    outcome: Outcome[R] = field(default_factory=Outcome)
    shared_error: bool = False
    """The error is the whole batch's (one exception for several callers): each caller raises its own copy."""


@dataclass(frozen=True)
class GroupStats:
    """How the requests were grouped so far: batches committed, requests in them, the largest batch."""

    batches: int
    requests: int
    largest: int


class GroupCommit(Generic[T, R]):
    """Runs requests from many threads in shared transactions; ``submit`` returns each its own result.

    ``lock(deadline)`` is the write lock (raising ``StoreBusy`` when ``deadline``, a ``time.monotonic`` value or
    None, passes first); ``run(items)`` runs a batch in one transaction and returns one ``Outcome`` per item in
    order, or raises when the transaction as a whole fails (nothing of the batch was committed).
    """

    def __init__(
        self,
        lock: Callable[[float | None], AbstractContextManager[object]],
        run: Callable[[Sequence[T]], list[Outcome[R]]],
    ) -> None:
        self._lock = lock
        self._run = run
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Request[T, R]] = []
        self._leading = False
        self._batches = self._requests = self._largest = 0
        self.pid = os.getpid()
        """The process this batcher belongs to (its locks mean nothing in a forked child)."""

    def stats(self) -> GroupStats:
        """Batches and requests so far."""
        with self._cond:
            return GroupStats(self._batches, self._requests, self._largest)

    def pending(self) -> int:
        """Requests waiting to be taken into a batch (tests wait on it to line a batch up)."""
        with self._cond:
            return len(self._pending)

    def submit(self, item: T, deadline: float | None) -> R:
        """Run ``item`` in the next batch and return its result once that batch is committed (or raise)."""
        req: _Request[T, R] = _Request(item, deadline)
        with self._cond:
            self._pending.append(req)
            while not req.done:
                if not self._leading:
                    self._leading = True
                    break
                if req.taken:  # in the running batch: it ends with the commit (or the store's busy timeout)
                    self._cond.wait()
                    continue
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self._pending.remove(req)
                    raise StoreBusy("the store is busy: the delivery waited past its budget for a commit")
                self._cond.wait(remaining)
        if not req.done:
            self._lead(req)
        return _result(req)

    def _lead(self, mine: _Request[T, R]) -> None:
        batch: list[_Request[T, R]] = []
        try:
            with self._lock(mine.deadline):
                with self._cond:
                    batch, self._pending = self._pending, []
                    for req in batch:
                        req.taken = True
                try:
                    outcomes = self._run([req.item for req in batch])
                    if len(outcomes) != len(batch):  # pragma: no cover - a broken run function
                        raise StoreError(f"a batch of {len(batch)} came back with {len(outcomes)} outcomes")
                except BaseException as exc:  # the transaction failed as a whole: every caller of it is told
                    shared = len(batch) > 1
                    for req in batch:
                        req.outcome, req.shared_error = Outcome(error=exc), shared
                else:
                    for req, outcome in zip(batch, outcomes, strict=True):
                        req.outcome = outcome
        except BaseException as exc:  # the write lock was not had: only the leader's own request fails
            with self._cond:
                if mine in self._pending:
                    self._pending.remove(mine)
            if not batch:
                mine.outcome = Outcome(error=exc)
        finally:
            with self._cond:
                for req in batch:
                    req.done = True
                mine.done = True
                if batch:
                    self._batches += 1
                    self._requests += len(batch)
                    self._largest = max(self._largest, len(batch))
                self._leading = False
                self._cond.notify_all()


def _result(req: _Request[T, R]) -> R:
    error = req.outcome.error
    if error is None:
        return req.outcome.value  # type: ignore[return-value]  # R itself may include None
    if req.shared_error:  # one exception object raised in several threads would mix their tracebacks
        try:
            own = copy.copy(error).with_traceback(None)
        except Exception:  # an exception type that cannot be copied: raise the shared one
            raise error from None
        raise own from error
    raise error
