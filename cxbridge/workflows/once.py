"""Write to another system at most once per operation id: the intent protocol the workflows share.

An intent row keyed by a deterministic ``op_id`` is committed before the write and marked ``done`` after it,
so a rerun after the write makes no call. When an earlier attempt may have written without being confirmed
(state ``sending`` or ``ambiguous``: a crash, a timeout), a ``find`` callable looks for the effect by the
marker it carries before anything is written again.

Runners race for a write by compare-and-set: the move to ``sending`` succeeds for one runner only (the store
checks the state and the attempt count it read, in one transaction), and only that runner writes. A loser
writes nothing: the effect is done (``unchanged``), or another live runner is writing it (``EffectInFlight``).
A ``sending`` intent whose runner is gone (a crash) is reconciled by ``find`` and then taken over.

A worker hands the workflows a lease guard (``lease_guard``): every write checks it right before sending, so
a worker that lost its job's lease raises ``LeaseLost`` and writes nothing.

Independent writes (to different systems, each under its own intent) may go out side by side
(``side_by_side``): each runs in a helper thread with the caller's context (the lease guard included), under a
runner id of its own for that one call, and the caller waits for all of them. Helper threads are kept for the
next calls (with their store connections) and end after a while idle. Many writes to the same systems (sync
back to N tickets, a comment relayed to N issues) go out through ``by_system``: the systems side by side, at
most a few calls of one system at a time, on ``side_by_side``'s threads.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import itertools
import os
import queue
import socket
import threading
import uuid
from collections.abc import Callable, Hashable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from ..errors import AmbiguousOutcome, EffectInFlight, VendorError

if TYPE_CHECKING:
    from ..connectors import CRM
    from ..models import Customer, Ref
    from ..store import AuditRow, Intent, Store

NAMESPACE = uuid.UUID("6f1c2d7e-9a4b-5c3d-8e2f-0a1b2c3d4e5f")
_NAMESPACE_BYTES: Final[bytes] = NAMESPACE.bytes


@functools.lru_cache(maxsize=1024)
def op_id(business_key: str, operation: str) -> str:
    """The deterministic id of one external write (``business_key`` names what it is about).

    ``str(uuid.uuid5(NAMESPACE, f"{business_key}|{operation}"))``, spelled out (the SHA-1 with the version and
    variant bits set, formatted), without building a ``UUID``; the last ids asked for are kept (a job asks for the
    same one several times)."""
    digest = bytearray(
        hashlib.sha1(_NAMESPACE_BYTES + f"{business_key}|{operation}".encode(), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


IN_FLIGHT_SECONDS: Final[float] = 300.0
"""How long a ``sending`` intent counts as in flight while its runner lives (or cannot be seen: another host).

Longer than any single write takes (HTTP timeouts and inline retries); past it the runner is taken to have
stopped writing, and the effect is reconciled by its marker and taken over."""

_HOST = socket.gethostname()
_guard: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("cxbridge_lease_guard", default=None)


def side_by_side(*calls: Callable[[], Any]) -> list[Any]:
    """Run independent calls concurrently and return their results in order; the first failure (in call order)
    is raised once every call has finished, so no write is left running behind the caller.

    The first call runs in the calling thread, each other one in a helper thread (``_HelperThreads``: kept and
    reused) under a runner id of its own for that call (``host:pid:sideN``, never reused, whichever thread runs
    it): an intent's runner is then alive exactly while its call runs, as the in-flight check expects. Every
    call runs in a copy of the caller's context, so the worker's lease guard is checked before each write. Calls
    should reach different systems (or be reads): each system's client keeps its own rate-limit hold.
    """
    if len(calls) <= 1:
        return [call() for call in calls]
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)

    def run(n: int) -> None:
        try:
            results[n] = calls[n]()
        except BaseException as exc:  # re-raised by the caller after every call finished
            errors[n] = exc

    aside = _Latch(len(calls) - 1)

    def run_aside(n: int) -> None:
        try:
            with own_runner():
                run(n)
        finally:
            aside.arrive()

    for n in range(1, len(calls)):
        _helpers.submit(contextvars.copy_context().run, run_aside, n)
    run(0)
    aside.wait()  # the last helper to finish wakes the caller (if it is waiting by then): one wake, not one each
    for error in errors:
        if error is not None:
            raise error
    return results


def by_system(calls: Sequence[tuple[Hashable, Callable[[], Any]]], *, limit: int) -> list[Any]:
    """Run ``(system, call)`` pairs: every system's calls side by side with the others', at most ``limit`` of one
    system's at a time (in list order within a system); results in call order.

    The calls run on ``side_by_side``'s threads (the caller's context, so the lease guard, in each): one lane of
    ``min(limit, n)`` runners per system, each taking the system's next call when its last one returns. A system
    whose call raised starts none of its remaining calls (the job's retry makes them; what was written is
    skipped by its intent); the first failure in call order is raised once every started call has finished.
    Within a lane, the HTTP client's rate-limit hold is shared: a 429 with Retry-After on one call holds the
    system's next calls until the vendor's time (``cxbridge.http``), as it does for calls one after the other.
    """
    size = max(1, int(limit))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)
    lanes: dict[Hashable, list[int]] = {}
    for n, (system, _) in enumerate(calls):
        lanes.setdefault(system, []).append(n)

    def lane(todo: Iterator[int], stop: threading.Event, lock: threading.Lock) -> None:
        while True:
            with lock:
                n = None if stop.is_set() else next(todo, None)
            if n is None:
                return
            try:
                with own_runner():  # whichever thread runs it, a write's runner lives exactly while it runs
                    results[n] = calls[n][1]()
            except BaseException as exc:  # raised below, once every lane is done
                errors[n] = exc
                stop.set()

    runners: list[Callable[[], Any]] = []
    for indices in lanes.values():
        todo, stop, lock = iter(indices), threading.Event(), threading.Lock()
        runners.extend(partial(lane, todo, stop, lock) for _ in range(min(size, len(indices))))
    side_by_side(*runners)
    for error in errors:
        if error is not None:
            raise error
    return results


class _Latch:
    """Counts ``n`` helpers down; ``wait`` returns once every one arrived (at once when they all had)."""

    __slots__ = ("_done", "_guard", "_left")

    def __init__(self, n: int) -> None:
        self._left = n
        self._guard = threading.Lock()
        self._done = threading.Lock()
        self._done.acquire()

    def arrive(self) -> None:
        """One helper is done (the last one releases the waiter)."""
        with self._guard:
            self._left -= 1
            last = self._left == 0
        if last:
            self._done.release()

    def wait(self) -> None:
        """Block until every helper arrived."""
        self._done.acquire()


class _HelperThreads:
    """The helper threads of ``side_by_side``: an idle one takes the next call, a new one starts when none is idle.

    Never bounded (a call may itself call ``side_by_side``: a bounded pool could wait on itself); a thread idle
    for ``idle_seconds`` ends, and at most ``keep_idle`` wait at once. Reusing a thread saves its start and its
    store connection (SQLite opens one per thread) on every escalation. A runner id belongs to one call, never to
    a thread, so a reused thread never makes an ended call look alive.
    """

    def __init__(self, idle_seconds: float = 30.0, keep_idle: int = 8) -> None:
        self.idle_seconds = idle_seconds
        self.keep_idle = keep_idle
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]]] = []
        self._started = itertools.count(1)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in a helper thread; ``fn`` tells its caller when it is done, and keeps its own outcome
        (an exception escaping it is dropped here: the helper thread carries on)."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            name = f"cxbridge-side-{next(self._started)}"
            threading.Thread(target=self._serve, args=(inbox,), name=name, daemon=True).start()
        inbox.put((fn, args))

    def _serve(self, inbox: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]]) -> None:
        while True:
            try:
                fn, args = inbox.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:  # nobody took this thread meanwhile: it ends
                        self._idle.remove(inbox)
                        return
                continue  # a caller took it just now: its call is on the way
            with contextlib.suppress(BaseException):  # fn keeps its own outcome (side_by_side's run_aside)
                fn(*args)
            del fn, args  # no call's objects kept alive while idle
            with self._lock:
                if len(self._idle) >= self.keep_idle:
                    return
                self._idle.append(inbox)

    def forget(self) -> None:
        """In a forked child: the parent's helper threads do not exist there."""
        self._lock = threading.Lock()
        self._idle = []


_helpers = _HelperThreads()
os.register_at_fork(after_in_child=_helpers.forget)
_RUNNER_PREFIX = [f"{_HOST}:{os.getpid()}:"]
"""``host:pid:`` of this process's runner ids (the fork hook below keeps the pid current: ``os.getpid`` is a
system call, asked before every write)."""


def _forked() -> None:
    _RUNNER_PREFIX[0] = f"{_HOST}:{os.getpid()}:"


os.register_at_fork(after_in_child=_forked)
_side = threading.local()
_live_side_runners: set[int] = set()
_side_numbers = itertools.count(1)
_side_lock = threading.Lock()


@contextlib.contextmanager
def own_runner() -> Iterator[None]:
    """Run the block under a runner id of its own, ``host:pid:sideN`` with N never reused in the process, alive
    exactly while the block runs (an intent it leaves ``sending`` is then reconciled, not waited for, once it
    ended, whichever thread looks next)."""
    with _side_lock:
        number = next(_side_numbers)
        _live_side_runners.add(number)
    previous = getattr(_side, "number", None)
    _side.number = number
    try:
        yield
    finally:
        _side.number = previous
        with _side_lock:
            _live_side_runners.discard(number)


def runner_id() -> str:
    """Who is running this write: ``host:pid:thread``, recorded on the intent it moves to ``sending``.

    A call run by ``side_by_side`` in a helper thread is ``host:pid:sideN`` instead, N never reused in the
    process: a thread's ident is reused by the next thread, which would make an ended runner look alive."""
    side = getattr(_side, "number", None)
    if side is not None:
        return f"{_RUNNER_PREFIX[0]}side{side}"
    return f"{_RUNNER_PREFIX[0]}{threading.get_ident()}"


def _runner_alive(owner: str) -> bool | None:
    """Whether the runner ``owner`` is running now (not this very runner); None when this host cannot tell."""
    parts = owner.rsplit(":", 2)
    if len(parts) == 3 and parts[0] == _HOST and parts[1] == str(os.getpid()) and parts[2].startswith("side"):
        number = parts[2][4:]
        if number.isdigit():
            if getattr(_side, "number", None) == int(number):
                return False  # this very runner's earlier run ended
            with _side_lock:
                return int(number) in _live_side_runners
    if len(parts) == 3 and parts[2].startswith("side") and parts[2][4:].isdigit():
        parts[2] = "0"  # another process's helper thread: that process alive is what can be told
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    host, pid, thread = parts[0], int(parts[1]), int(parts[2])
    if host != _HOST:
        return None
    if pid == os.getpid():
        if thread == threading.get_ident():
            return False  # this thread's earlier run ended (it crashed or raised) before it finished
        return any(t.ident == thread for t in threading.enumerate())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists under another user
        return True
    return True


def in_flight_elsewhere(intent: Intent, now: float) -> bool:
    """True when ``intent`` is being sent by another runner that is still running (so this one must not send)."""
    if intent.state != "sending" or not intent.owner or intent.sent_at is None:
        return False
    if now - intent.sent_at >= IN_FLIGHT_SECONDS:
        return False
    return _runner_alive(intent.owner) is not False  # unknown (another host): trusted within the window


_job_audit: contextvars.ContextVar[list[AuditRow] | None] = contextvars.ContextVar("cxbridge_job_audit", default=None)


@contextlib.contextmanager
def job_audit() -> Iterator[list[AuditRow]]:
    """Run a job's handler: the rows it hands to ``audit_done`` are kept in the list given, for the worker to write
    with the job's completion (``Store.complete(audit=)``: one transaction, and none by an attempt that lost the
    job). A job that fails after handing rows has them written before it is settled (what was done stays
    recorded), unless it lost its lease (the attempt that took the job over runs the work and records it)."""
    rows: list[AuditRow] = []
    token = _job_audit.set(rows)
    try:
        yield rows
    finally:
        _job_audit.reset(token)


def audit_done(store: Store, rows: Sequence[AuditRow]) -> None:
    """Record what a finished piece of work did: the rows are appended now, or, inside a worker's job
    (``job_audit``), kept for the job's completion, which writes them in its own transaction.

    Only for the last step of a piece of work (the escalation's audit); a reader in the same job that asks whether
    the work was audited looks at ``audit_kept`` too."""
    kept = _job_audit.get()
    if kept is not None:
        kept.extend(rows)
        return
    for row in rows:  # an AuditRow's fields are Store.audit's keyword arguments
        store.audit(**{f.name: getattr(row, f.name) for f in dataclasses.fields(row)})


def audit_kept() -> list[AuditRow]:
    """The rows the running job kept for its completion so far (``audit_done``); empty outside a job."""
    return list(_job_audit.get() or ())


@contextlib.contextmanager
def lease_guard(check: Callable[[], None]) -> Iterator[None]:
    """Run the block with ``check`` called right before every external write (it raises ``LeaseLost``)."""
    token = _guard.set(check)
    try:
        yield
    finally:
        _guard.reset(token)


def check_lease() -> None:
    """Raise ``LeaseLost`` when the worker running this code no longer holds its job's lease (no-op outside one)."""
    check = _guard.get()
    if check is not None:
        check()


def claim_send(store: Store, intent: Intent, *, what: str) -> Intent | None:
    """Win the move of ``intent`` to ``sending`` (compare-and-set), after checking the lease; the intent to send
    under, or None when it turned out ``done``. Raises ``EffectInFlight`` when another runner won it."""
    check_lease()
    won, current = store.transition_intent(
        intent.op_id, "sending", expect=intent.state, attempts=intent.attempts, owner=runner_id()
    )
    if won:
        return current
    if current.state == "done":
        return None
    raise EffectInFlight(f"{what} is being written by another runner; nothing was written here")


def _now(store: Store) -> float:
    return float(store.clock())


Write = Callable[[], dict[str, Any]]
Find = Callable[[], dict[str, Any] | None]


def marker_for(oid: str) -> str:
    """The short marker an effect carries so that it can be found again (``cxb-`` and 12 hex digits)."""
    return "cxb-" + oid[:13].replace("-", "")


def write_once(
    store: Store,
    oid: str,
    kind: str,
    business_key: str,
    write: Write,
    *,
    find: Find | None = None,
    point: Callable[[str], None] | None = None,
    payload: dict[str, Any] | None = None,
) -> str:
    """Run ``write`` once for ``oid``; returns ``written``, or ``unchanged`` when it was done (or found) before.

    A first write begins its intent already ``sending`` (``Store.begin_sending``: one commit, before the write);
    an intent begun before goes through the in-flight check, the ``find`` and the compare-and-set claim.

    ``point`` is called with ``<kind>.sent`` right after the write (tests crash there).
    """
    check_lease()
    won, intent = store.begin_sending(oid, kind, business_key=business_key, payload=payload or {}, owner=runner_id())
    if not won:  # begun before: done, in flight elsewhere, or left by an attempt that may have written
        if intent.state == "done":
            return "unchanged"
        what = f"{kind} for {business_key}"
        if in_flight_elsewhere(intent, _now(store)):
            raise EffectInFlight(f"{what} is being written by another runner; nothing was written here")
        if intent.state in ("sending", "ambiguous") and find is not None:
            found = find()
            if found is not None:
                store.mark_intent(oid, "done", result=found)
                return "unchanged"
        if claim_send(store, intent, what=what) is None:
            return "unchanged"
    try:
        outcome = write()
    except AmbiguousOutcome:
        store.mark_intent(oid, "ambiguous", error=f"{kind} not confirmed")
        raise
    except VendorError as exc:
        store.mark_intent(oid, "failed", error=str(exc))
        raise
    except BaseException:  # unknown whether it was sent: the next runner reconciles by the marker
        store.mark_intent(oid, "ambiguous", error=f"{kind} interrupted")
        raise
    if point is not None:
        point(f"{kind}.sent")
    store.mark_intent(oid, "done", result=outcome)
    return "written"


def crm_note_once(
    store: Store,
    crm: CRM,
    customer: Customer,
    oid: str,
    business_key: str,
    render: Callable[[], str],
    *,
    ticket: Ref | None = None,
    point: Callable[[str], None] | None = None,
) -> str:
    """One note on the customer's CRM timeline (and ``ticket``'s, when given) per ``oid``, found again by its marker.

    ``render`` is called only when the note is about to be written.
    """
    marker = marker_for(oid)

    def write() -> dict[str, Any]:
        return {"ref": str(crm.add_note(customer, render(), marker=marker, ticket=ticket))}

    def find() -> dict[str, Any] | None:
        ref = crm.find_note(customer, marker)
        return None if ref is None else {"ref": str(ref)}

    return write_once(store, oid, "crm.note", business_key, write, find=find, point=point, payload={"marker": marker})
