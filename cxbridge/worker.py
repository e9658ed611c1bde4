"""Workers that drain the durable job queue: lease, heartbeat, run, then complete fenced by attempt.

A ``Worker`` claims one due job at a time from the store (``claim`` leases it and bumps its attempt), runs the
handler for its kind while a heartbeat thread keeps the lease alive, and then settles the job with the same
attempt number, so that a worker whose lease lapsed (it was paused, or the machine stalled) can never
complete, retry or dead-letter the newer attempt another worker holds (RELIABILITY.md, Q1).

Failures are classified (RELIABILITY.md section 4):

=========================================================  ===============================================
error                                                      what happens
=========================================================  ===============================================
``RateLimited``                                            ready again at now + Retry-After (capped); the
                                                           worker never sleeps for it; given up only when
                                                           the job is older than ``max_age``
``EscalationPending`` (with ``retry_at``)                  ready again when the create's search grace has
                                                           passed; a wait, not a failure: it spends none of
                                                           the ``max_attempts`` budget
``LeaseLost``                                              nothing: another worker holds the job now (stale)
``Unavailable``, ``AmbiguousOutcome``, ``EffectInFlight``,  ready again after a capped full-jitter
``requests.ConnectionError``, ``requests.Timeout``,         exponential backoff; dead after ``max_attempts``
``StoreBusy`` (the store locked, or its server unreachable)
``AuthError``, ``NotFound``, ``ConfigError``,               dead letter at once (permanent)
``TemplateError``, ``PolicyRefused``, ``Conflict``,
any other exception
=========================================================  ===============================================

The error kept with a retried job or a dead letter is one redacted line (the store redacts again): never a
traceback. While a handler runs, every external write checks first that the attempt still holds its lease
(``workflows.once.lease_guard``), so a worker paused past its lease writes nothing. ``start_workers`` runs
worker threads inside ``cxbridge serve``; ``drain`` runs the queue empty for the demo, ``cxbridge sync``,
``cxbridge worker --drain`` and the benchmarks.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import requests

from .errors import AmbiguousOutcome, CxbridgeError, EffectInFlight, LeaseLost, RateLimited, Unavailable
from .http.redact import escape_crlf, one_line, redact
from .http.retry import RETRY_AFTER_CAP
from .models import event_from_dict
from .signals import signal_from_dict
from .store.base import AuditRow, FollowUp, StoreBusy
from .workflows import events, notices
from .workflows.escalate import EscalationPending
from .workflows.once import audit_done, job_audit, lease_guard
from .workflows.syncback import ECHO_KIND

if TYPE_CHECKING:
    from .runtime import Runtime
    from .store import Job, Store

log = logging.getLogger("cxbridge.worker")

Handler = Callable[["Runtime", dict[str, Any]], str]
"""A job handler: gets the Runtime and the job's payload, returns a short outcome for the log."""

Outcome = Literal["done", "retried", "dead", "stale"]

DEFAULT_MAX_AGE: Final[float] = 86400.0
"""Seconds: a rate-limited job older than this is dead-lettered instead of waiting again."""

ERROR_LIMIT: Final[int] = 500
"""Characters: the longest error line kept with a job or a dead letter."""


class JobMetrics(Protocol):
    """What a worker reports to (``cxbridge.webhooks.metrics``): one call per settled job."""

    def job(self, outcome: str, *, kind: str = "event", seconds: float | None = None) -> None:
        """Count a job that ended ``done``, was ``retried`` or went ``dead``; ``seconds`` its handler's run time."""


@dataclass(frozen=True)
class JobResult:
    """How one claimed job ended: ``outcome``, the attempt, the next run time of a retry, and a short detail.

    ``seconds`` is how long the handler ran; ``system`` and ``subject`` name where the job came from and the
    record it acts on (its lock key, ``zendesk:ticket:4``), when the job says so."""

    job_id: int
    kind: str
    attempt: int
    outcome: Outcome
    detail: str
    run_at: float | None = None
    seconds: float = 0.0
    system: str | None = None
    subject: str | None = None


# --- classification -----------------------------------------------------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """True for an error worth retrying after a backoff (the remote may recover; nothing says otherwise)."""

    transient = (
        Unavailable,
        AmbiguousOutcome,
        requests.ConnectionError,
        requests.Timeout,
        EscalationPending,
        EffectInFlight,
        StoreBusy,
    )
    return isinstance(exc, transient)


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff (AWS): uniform in [0, min(cap, base * 2**(attempt - 1))]."""
    exponent = min(max(attempt - 1, 0), 62)
    ceiling = min(cap, base * float(2**exponent))
    return rng.uniform(0.0, max(ceiling, 0.0))


def error_line(exc: BaseException) -> str:
    """One redacted line naming the error: ``Type: message`` (no traceback, CR/LF collapsed)."""
    text = str(exc).strip()
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return one_line(redact(line), ERROR_LIMIT)


def _shown(text: str) -> str:
    return escape_crlf(redact(text))


_DONE_WORDS = ("escalated", "decided", "relayed", "ignored", "echo", "unchanged", "synced", "stale", "told")
_ISSUE_IN_DETAIL = re.compile(r"\b(?:created|joined|linked to) ([^\s;]+)")


def outcome_word(result: JobResult) -> str:
    """The outcome a log line and its ``outcome`` field name: for a job done, what the handler said it did
    (``escalated``, ``joined``, ``synced``, ``unchanged``, ``ignored``, ``echo``...), else ``retried``,
    ``dead-lettered`` or ``stale``."""
    if result.outcome == "dead":
        return "dead-lettered"
    if result.outcome != "done":
        return result.outcome
    word = result.detail.split(":", 1)[0].strip()
    if word == "escalated" and " joined " in result.detail:
        return "joined"
    return word if word in _DONE_WORDS else "done"


def job_subject(payload: Mapping[str, Any]) -> str | None:
    """The record a queued job acts on (``zendesk:ticket:4``), as its event or signal names it; None if neither."""
    event = payload.get("event")
    if isinstance(event, dict) and isinstance(event.get("subject"), str):
        return str(event["subject"])
    signal = payload.get("signal")
    if isinstance(signal, dict):
        try:
            return str(events.subject_of(signal_from_dict(signal)))
        except (TypeError, ValueError, KeyError):
            return None
    return None


def log_fields(result: JobResult) -> dict[str, Any]:
    """The ``extra=`` fields of a job's log line (``--log-format json`` writes them): job, kind, system, the
    ticket or issue it is about, outcome, attempt, duration in seconds, and the reason (redacted, one line)."""
    fields: dict[str, Any] = {
        "job": result.job_id,
        "kind": result.kind,
        "system": result.system,
        "outcome": outcome_word(result),
        "attempt": result.attempt,
        "duration": round(result.seconds, 3),
        "detail": _shown(result.detail),
    }
    subject = result.subject or ""
    parts = subject.split(":")
    if len(parts) == 3 and parts[1] in ("ticket", "issue"):
        fields[parts[1]] = subject
    found = _ISSUE_IN_DETAIL.search(result.detail)
    if found and result.outcome == "done":
        fields["issue_key"] = found.group(1)
    if result.run_at is not None:
        fields["run_at"] = round(result.run_at, 3)
    return fields


# --- the worker ---------------------------------------------------------------------------------------------


def _handle_event_job(rt: Runtime, payload: dict[str, Any]) -> str:
    """The handler of ``event`` jobs: route the queued Event through ``workflows.events.handle_event``."""

    system = payload.get("system")
    event = event_from_dict(payload["event"])
    return events.handle_event(rt, event, system=system if isinstance(system, str) else None)


def _handle_signal_job(rt: Runtime, payload: dict[str, Any]) -> str:
    """The handler of ``signal`` jobs: route a polled change's neutral signal."""

    return events.handle_signal_job(rt, payload)


def _handle_notice_job(rt: Runtime, payload: dict[str, Any]) -> str:
    """The handler of ``notice`` jobs: the note telling an agent their escalation failed for good."""

    return notices.handle_notice_job(rt, payload)


def default_handlers() -> dict[str, Handler]:
    """The job kinds a worker runs by default: ``event`` (webhooks, and polled changes queued by earlier
    versions), ``signal`` (polled changes) and ``notice`` (an agent told of a failed escalation)."""
    return {"event": _handle_event_job, "signal": _handle_signal_job, notices.JOB_KIND: _handle_notice_job}


TOLD_KINDS: Final = ("event", "signal")
"""Job kinds whose dead letter tells the agent, when the job asked for an escalation (``workflows.notices``)."""


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Heartbeat:
    """Extends the lease of the job its worker runs every ``every`` seconds (the first beat ``every`` after the job
    began), until the worker lets the job go, or until the attempt is fenced out.

    One thread per worker, not per job: it waits for the next job between jobs, and ends after ``IDLE_SECONDS``
    without one (``watch`` starts it again). A beat still running when its job is let go changes nothing (the
    store fences it by attempt and state) and is not reported as a lost lease.
    """

    IDLE_SECONDS = 10.0
    """How long the thread waits for its worker's next job before it ends."""

    def __init__(self, store: Store, lease_seconds: float, every: float, name: str = "heartbeat") -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.every = every
        self.name = name
        self.lost = False
        """Whether the job watched (now or last) lost its lease."""
        self._cond = threading.Condition(threading.Lock())
        self._job: Job | None = None
        self._due = 0.0
        self._thread: threading.Thread | None = None

    def watch(self, job: Job) -> None:
        """Keep ``job``'s lease alive from now on (the first beat in ``every`` seconds)."""
        with self._cond:
            self._job, self._due, self.lost = job, time.monotonic() + self.every, False
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            elif self.every < self.IDLE_SECONDS:  # the thread may be waiting for a job: it has one
                self._cond.notify()

    def release(self) -> None:
        """Stop extending the job's lease (it is settled, or being settled)."""
        with self._cond:
            self._job = None

    def __enter__(self) -> _Heartbeat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _next(self) -> Job | None:
        """Wait until a beat is due; the job to beat, or None when the thread ends (idle too long)."""
        with self._cond:
            idle_since: float | None = None
            while True:
                now = time.monotonic()
                job = self._job
                if job is None:
                    idle_since = idle_since or now
                    if now - idle_since >= self.IDLE_SECONDS:
                        self._thread = None  # the next watch starts another
                        return None
                    self._cond.wait(self.IDLE_SECONDS - (now - idle_since))
                    continue
                idle_since = None
                if now >= self._due:
                    self._due = now + self.every
                    return job
                self._cond.wait(self._due - now)

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            try:
                alive = self.store.heartbeat(job.id, job.attempt, self.lease_seconds)
            except Exception as exc:  # a busy store now and then must not stop the heartbeat
                log.warning("job %d: heartbeat failed: %s", job.id, _shown(error_line(exc)))
                continue
            if alive:
                continue
            with self._cond:
                if self._job is not job:  # settled meanwhile: its lease ended with it, nothing was lost
                    continue
                # logged before ``lost`` is set: whoever sees it set finds the warning written
                log.warning("job %d attempt %d: lease lost (another worker holds a newer attempt)", job.id, job.attempt)
                self._job, self.lost = None, True


HOUSEKEEPING_SECONDS = 3600.0
ECHO_RETENTION_SECONDS = 86400.0
"""How long the fingerprint of a note cxbridge wrote is kept to recognise its webhook as an echo."""
"""How often a running worker purges expired inbox rows."""
ANNOUNCED_POLL_SECONDS = 2.0
"""An idle worker on a store that announces queued jobs (PostgreSQL) still polls this often: delayed retries
coming due are not announced, and a notification may be lost while the listener reconnects."""
INLINE_WAIT = 1.0
"""The longest a worker's API call sleeps for a Retry-After; a longer wait re-queues the job (RELIABILITY R2)."""


class Worker:
    """Claims due jobs from the Runtime's store and runs them, one at a time, with leases and fencing.

    ``clock`` gives the time used for ``run_at`` of retries; by default the store's own clock (so a test's
    virtual clock moves both), else ``time.time``. ``rng`` draws the backoff jitter (seed it in tests).
    ``heartbeat_every`` defaults to a third of the lease. ``max_age`` bounds how long a rate-limited job keeps
    waiting for the vendor. Several workers (threads or processes) may share one store.
    """

    def __init__(
        self,
        rt: Runtime,
        *,
        worker_id: str | None = None,
        lease_seconds: float = 60.0,
        max_attempts: int = 8,
        clock: Callable[[], float] | None = None,
        handlers: Mapping[str, Handler] | None = None,
        metrics: JobMetrics | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        rng: random.Random | None = None,
        heartbeat_every: float | None = None,
        max_age: float = DEFAULT_MAX_AGE,
        retry_after_cap: float = RETRY_AFTER_CAP,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.rt = rt
        rt.limit_inline_waits(INLINE_WAIT)
        self.worker_id = worker_id or _default_worker_id()
        self.lease_seconds = float(lease_seconds)
        self.max_attempts = int(max_attempts)
        self._clock = clock
        self.handlers: dict[str, Handler] = dict(handlers) if handlers is not None else default_handlers()
        self.metrics = metrics
        self.backoff_base = float(backoff_base)
        self.backoff_cap = float(backoff_cap)
        self.rng = rng if rng is not None else random.Random()
        self.heartbeat_every = float(heartbeat_every) if heartbeat_every is not None else self.lease_seconds / 3
        self.max_age = float(max_age)
        self.retry_after_cap = float(retry_after_cap)
        self.counts: dict[str, int] = {"done": 0, "retried": 0, "dead": 0, "stale": 0}
        self.last: JobResult | None = None
        self._heartbeat: _Heartbeat | None = None

    def now(self) -> float:
        """The current time on the clock the store's ``run_at`` values use."""
        if self._clock is not None:
            return self._clock()
        return float(self.rt.store.clock())

    # --- one job ------------------------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Claim one due job and run it to an outcome; False when no job was due."""
        return self.process_one() is not None

    def process_one(self) -> JobResult | None:
        """Like ``run_once``, returning how the job ended (None when no job was due)."""
        store = self.rt.store
        job = store.claim(
            self.worker_id,
            lease_seconds=self.lease_seconds,
            kinds=list(self.handlers),
            max_attempts=self.max_attempts,
        )
        if job is None:
            return None
        handler = self.handlers[job.kind]
        error: Exception | None = None
        detail = ""
        started = time.monotonic()

        def still_held() -> None:
            if not store.hold_lease(job.id, job.attempt, self.lease_seconds):
                raise LeaseLost(f"job {job.id} attempt {job.attempt}: the lease was lost; not writing")

        heartbeat = self._heartbeat
        if heartbeat is None or heartbeat.store is not store:
            name = f"cxbridge-heartbeat-{self.worker_id}"
            heartbeat = self._heartbeat = _Heartbeat(store, self.lease_seconds, self.heartbeat_every, name=name)
        heartbeat.watch(job)
        with heartbeat, lease_guard(still_held), job_audit() as audit:
            try:
                detail = str(handler(self.rt, job.payload))
            except Exception as exc:  # classified below; BaseException (interrupts) ends the worker
                error = exc
        if error is None:
            result = self._complete(job, detail, audit)
        else:
            if audit and not isinstance(error, LeaseLost):  # what the job finished stays recorded
                try:
                    audit_done(store, audit)
                except Exception as exc:  # not recorded: the retry runs the work again (writing nothing twice)
                    log.warning("job %s: its audit rows were not written: %s", job.id, _shown(error_line(exc)))
            result = self._settle_failure(job, error)
        system = job.payload.get("system")
        result = replace(
            result,
            seconds=time.monotonic() - started,
            system=system if isinstance(system, str) else None,
            subject=job_subject(job.payload),
        )
        self._record(result)
        return result

    def _complete(self, job: Job, detail: str, audit: list[AuditRow]) -> JobResult:
        if self.rt.store.complete(job.id, job.attempt, audit=audit):
            return JobResult(job.id, job.kind, job.attempt, "done", one_line(detail, ERROR_LIMIT))
        return JobResult(job.id, job.kind, job.attempt, "stale", "finished after its lease lapsed")

    def _settle_failure(self, job: Job, exc: Exception) -> JobResult:
        store = self.rt.store
        line = error_line(exc)
        now = self.now()
        run_at: float | None = None
        if isinstance(exc, LeaseLost):  # another attempt owns the job: leave it alone, write nothing
            return JobResult(job.id, job.kind, job.attempt, "stale", line)
        if isinstance(exc, EscalationPending) and exc.retry_at is not None:
            # waiting for the create's grace is not failing: due when it has passed, no retry budget spent
            run_at = max(float(exc.retry_at), now)
            if store.retry_later(job.id, job.attempt, run_at=run_at, error=line, waiting=True):
                return JobResult(job.id, job.kind, job.attempt, "retried", line, run_at)
            return JobResult(job.id, job.kind, job.attempt, "stale", f"failed after its lease lapsed: {line}")
        if isinstance(exc, RateLimited):
            if now - job.created_at >= self.max_age:
                line = f"gave up after {job.attempt} attempts and {now - job.created_at:.0f}s: {line}"
            else:
                wait = exc.retry_after
                if wait is None:
                    wait = backoff_delay(job.attempt, base=self.backoff_base, cap=self.backoff_cap, rng=self.rng)
                run_at = now + min(max(float(wait), 0.0), self.retry_after_cap)
        elif is_transient(exc):
            if job.attempt - job.waits >= self.max_attempts:
                line = f"gave up after {job.attempt - job.waits} attempts: {line}"
            else:
                delay = backoff_delay(job.attempt, base=self.backoff_base, cap=self.backoff_cap, rng=self.rng)
                run_at = now + delay
        if run_at is not None:
            if store.retry_later(job.id, job.attempt, run_at=run_at, error=line):
                return JobResult(job.id, job.kind, job.attempt, "retried", line, run_at)
        elif store.fail(job.id, job.attempt, error=line, then=self._agent_notice(job, exc)):
            return JobResult(job.id, job.kind, job.attempt, "dead", line)
        return JobResult(job.id, job.kind, job.attempt, "stale", f"failed after its lease lapsed: {line}")

    def _agent_notice(self, job: Job, exc: Exception) -> FollowUp | None:
        """The note that tells the agent their escalation failed for good: a ``notice`` job, queued by
        ``Store.fail`` in the dead letter's own transaction (a crash cannot keep one without the other), written
        once by the intent protocol; its key keeps a second copy of the same failure out of the queue."""
        if job.kind not in TOLD_KINDS or notices.JOB_KIND not in self.handlers:
            return None
        try:
            requested = events.escalation_requested_by(self.rt, job.payload)
            if requested is None:
                return None
            system, signal = requested
            payload = notices.failure_notice(system, signal, exc, job_id=job.id, transient=is_transient(exc))
            return FollowUp(notices.JOB_KIND, payload, key=payload["op_id"], lock_key=payload["ticket"])
        except Exception as failure:  # the dead letter stands; the admin still sees it
            log.warning("job %d: the agent could not be told: %s", job.id, _shown(error_line(failure)))
            return None

    def _record(self, result: JobResult) -> None:
        self.last = result
        self.counts[result.outcome] += 1
        fields = log_fields(result)
        where = f"job {result.job_id} ({result.kind}"
        where += f", {result.subject})" if result.subject else ")"
        where += f" attempt {result.attempt}"
        detail = fields["detail"]  # _shown(result.detail), redacted once for the message and its field
        if result.outcome == "done":
            log.info("%s done: %s (%.2fs)", where, detail, result.seconds, extra=fields)
        elif result.outcome == "retried":
            log.warning(
                "%s retried at %.3f (in %.2fs): %s",
                where,
                result.run_at or 0.0,
                (result.run_at or 0.0) - self.now(),
                detail,
                extra=fields,
            )
        elif result.outcome == "dead":
            log.error("%s dead-lettered: %s", where, detail, extra=fields)
        else:
            log.info("%s is stale, nothing recorded: %s", where, detail, extra=fields)
        if self.metrics is not None and result.outcome != "stale":
            try:
                self.metrics.job(result.outcome, kind=result.kind, seconds=result.seconds)
            except Exception as exc:  # metrics must never break the queue
                log.warning("metrics failed: %s", _shown(error_line(exc)))

    # --- loops --------------------------------------------------------------------------------------------

    def housekeeping(self) -> int:
        """Delete inbox rows past their retention (``[cxbridge] inbox_retention_days``, 7 by default: longer than
        any vendor's retry horizon), finished jobs past theirs (``job_retention_days``, 7), both in small batches,
        and echo fingerprints of cxbridge's own notes past a day (their webhooks arrive within minutes); returns
        how many rows went."""
        section = self.rt.config.section("cxbridge")
        purged = self.rt.store.purge_inbox(float(section["inbox_retention_days"]) * 86400)
        jobs = self.rt.store.purge_jobs(float(section["job_retention_days"]) * 86400)
        echoes = self.rt.store.purge_snapshots(ECHO_KIND, ECHO_RETENTION_SECONDS)
        if purged or jobs or echoes:
            log.info(
                "worker %s: purged %d inbox rows, %d finished jobs and %d echo fingerprints",
                self.worker_id,
                purged,
                jobs,
                echoes,
            )
        return purged + jobs + echoes

    def run(self, stop: threading.Event, idle_sleep: float = 0.2) -> None:
        """Run jobs until ``stop`` is set; when no job is due, waits ``idle_sleep`` or until the store announces one.

        Housekeeping (the inbox purge) runs when the worker starts and every ``HOUSEKEEPING_SECONDS`` after.
        """
        next_housekeeping = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_housekeeping:
                next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
                try:
                    self.housekeeping()
                except Exception as exc:  # a busy store: try again next time
                    log.warning("worker %s: housekeeping failed: %s", self.worker_id, _shown(error_line(exc)))
            try:
                busy = self.run_once()
            except Exception as exc:  # the store was busy or failed: the lease expires and the job comes back
                log.error("worker %s: %s", self.worker_id, _shown(error_line(exc)))
                busy = False
            if not busy:  # idle: a poll, or sooner when the store announces a queued job (PostgreSQL's NOTIFY)
                store = self.rt.store
                wait = max(idle_sleep, ANNOUNCED_POLL_SECONDS) if store.announces_work else idle_sleep
                try:
                    store.wait_for_work(wait, stop)
                except Exception as exc:  # the store is unreachable: poll again after the idle sleep
                    log.warning("worker %s: %s", self.worker_id, _shown(error_line(exc)))
                    stop.wait(idle_sleep)


def start_workers(
    rt: Runtime,
    n: int,
    stop: threading.Event,
    *,
    metrics: JobMetrics | None = None,
    idle_sleep: float = 0.2,
    **worker_kwargs: Any,
) -> list[threading.Thread]:
    """Start ``n`` daemon worker threads on the Runtime's store; they stop when ``stop`` is set."""
    threads: list[threading.Thread] = []
    base_id = worker_kwargs.pop("worker_id", None) or _default_worker_id()
    for i in range(n):
        worker = Worker(rt, worker_id=f"{base_id}/{i}", metrics=metrics, **worker_kwargs)
        thread = threading.Thread(target=worker.run, args=(stop, idle_sleep), name=f"cxbridge-worker-{i}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads


# --- drain --------------------------------------------------------------------------------------------------


@dataclass
class DrainReport:
    """What a drain did: jobs done, retried, dead and stale, and what is left.

    ``pending`` lists ``(job id, run_at)`` of jobs this drain retried into a time past its end; ``ready`` counts
    every ready job left (other not-yet-due jobs included) and ``leased`` the jobs other workers still hold.
    """

    done: int = 0
    retried: int = 0
    dead: int = 0
    stale: int = 0
    pending: list[tuple[int, float]] = field(default_factory=list)
    ready: int = 0
    leased: int = 0
    timed_out: bool = False
    elapsed: float = 0.0
    dead_jobs: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when nothing is left waiting or running."""
        return self.ready == 0 and self.leased == 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "done": self.done,
            "retried": self.retried,
            "dead": self.dead,
            "stale": self.stale,
            "pending": [{"job": j, "run_at": r} for j, r in self.pending],
            "ready": self.ready,
            "leased": self.leased,
            "timed_out": self.timed_out,
            "elapsed": round(self.elapsed, 3),
            "dead_jobs": list(self.dead_jobs),
        }


class _DrainState:
    def __init__(self, rt: Runtime, now: Callable[[], float], deadline: float) -> None:
        self.rt = rt
        self.now = now
        self.deadline = deadline
        self.lock = threading.Lock()
        self.busy = 0
        self.retried_jobs: set[int] = set()
        self.report = DrainReport()

    def record(self, result: JobResult) -> None:
        report = self.report
        if result.outcome == "done":
            report.done += 1
        elif result.outcome == "retried":
            report.retried += 1
            self.retried_jobs.add(result.job_id)
        elif result.outcome == "dead":
            report.dead += 1
            report.dead_jobs.append(result.job_id)
        else:
            report.stale += 1

    def finished(self) -> bool:
        """True when no job runs here, none is leased anywhere, and none of ours comes due before the end."""
        with self.lock:
            if self.busy:
                return False
            store = self.rt.store
            if store.queue_depth()["leased"]:
                return False
            horizon = self.now() + max(0.0, self.deadline - time.monotonic())
            for job_id in sorted(self.retried_jobs):
                job = store.job(job_id)
                if job is None or job.state != "ready":
                    self.retried_jobs.discard(job_id)
                elif job.run_at <= horizon:
                    return False
            return True


def drain(
    rt: Runtime,
    *,
    workers: int = 1,
    timeout: float = 60.0,
    idle_sleep: float = 0.05,
    metrics: JobMetrics | None = None,
    **worker_kwargs: Any,
) -> DrainReport:
    """Run jobs until none is ready, leased, or retried to a time within ``timeout``; report what happened.

    Jobs retried to a time beyond the timeout are left for later and listed in ``report.pending``. Waiting
    for a retry that comes due within the timeout sleeps ``idle_sleep`` at a time (real time).
    """
    started = time.monotonic()
    deadline = started + float(timeout)
    base_id = worker_kwargs.pop("worker_id", None) or _default_worker_id()
    pool = [Worker(rt, worker_id=f"{base_id}/{i}", metrics=metrics, **worker_kwargs) for i in range(max(1, workers))]
    state = _DrainState(rt, pool[0].now, deadline)
    stop = threading.Event()
    errors: list[str] = []

    def loop(worker: Worker) -> None:
        while not stop.is_set():
            with state.lock:
                state.busy += 1
            result: JobResult | None = None
            try:
                result = worker.process_one()
            except Exception as exc:  # a store failure: stop this drain, report it
                errors.append(error_line(exc))
                stop.set()
                return
            finally:
                with state.lock:
                    state.busy -= 1
                    if result is not None:
                        state.record(result)
            if result is not None:
                continue
            if state.finished():
                stop.set()
                return
            if time.monotonic() >= deadline:
                state.report.timed_out = True
                stop.set()
                return
            stop.wait(idle_sleep)

    if len(pool) == 1:
        loop(pool[0])
    else:
        threads = [
            threading.Thread(target=loop, args=(w,), name=f"cxbridge-drain-{i}", daemon=True)
            for i, w in enumerate(pool)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    report = state.report
    if errors:
        raise CxbridgeError(f"the queue could not be drained: {errors[0]}")
    store = rt.store
    depth = store.queue_depth()
    report.ready = depth["ready"]
    report.leased = depth["leased"]
    for job_id in sorted(state.retried_jobs):
        job = store.job(job_id)
        if job is not None and job.state == "ready":
            report.pending.append((job_id, job.run_at))
    report.elapsed = time.monotonic() - started
    return report
