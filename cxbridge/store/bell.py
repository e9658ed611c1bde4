"""The work bell: how a store wakes this process's idle workers when jobs become due, one worker per job.

SQLite rings it after a commit that queued jobs or freed an entity a job waits for (an in-process ``NOTIFY``, one
bell per database file); PostgreSQL's listener rings it once per notification it receives (one per job queued or
freed, by any process). A worker records the bell's ``generation`` when its claim begins and, finding nothing,
waits on the bell with it.
"""

from __future__ import annotations

import collections
import threading
import time


class WorkBell:
    """Wakes one idle worker for each job rung: ``generation`` counts the rings.

    A ring leaves one ticket per job (stamped with its generation), and wakes as many waiters; a waiter takes one
    ticket and claims. Two jobs wake two idle workers, one job one, and the others sleep on (before, every ring
    woke every idle worker, and all but one claimed nothing). A waiter takes only a ticket rung after its own claim
    began (``seen``): a ring before that was for a job that claim could already see, so when it found nothing
    that job was taken, and the ticket is dropped. A ticket no worker takes is at worst a later empty claim; a job
    whose ticket went to a worker that claimed another job is found by that worker's next claim or its idle poll
    (``Worker.run``).
    """

    WAIT_SLICE = 0.05
    """How often a waiting worker looks at its ``stop`` event (a ring wakes it at once)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.generation = 0
        self.waiting = 0
        self._tickets: collections.deque[int] = collections.deque(maxlen=64)

    def ring(self, jobs: int = 1) -> None:
        """``jobs`` became due: one ticket, and one waiter woken, for each."""
        with self.cond:
            self.generation += 1
            self._tickets.extend([self.generation] * jobs)
            self.cond.notify(jobs)

    def ring_all(self) -> None:
        """Wake every waiting worker (jobs may have been queued while nothing could tell: a listener reconnected)."""
        with self.cond:
            self.generation += 1
            self._tickets.extend([self.generation] * max(1, self.waiting))
            self.cond.notify_all()

    def wait(self, seen: int, timeout: float, stop: threading.Event | None) -> bool:
        """Wait until this waiter takes a ring after ``seen``, ``stop``, or ``timeout``; True when it took one."""
        deadline = time.monotonic() + timeout
        tickets = self._tickets
        with self.cond:
            self.waiting += 1
            try:
                while True:
                    while tickets and tickets[0] <= seen:  # rung before this waiter's claim: that claim saw the job
                        tickets.popleft()
                    if tickets:
                        tickets.popleft()
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or (stop is not None and stop.is_set()):
                        return False
                    self.cond.wait(min(remaining, self.WAIT_SLICE))
            finally:
                self.waiting -= 1
