"""The one path every outside change takes once it is queued, from a webhook or from polling.

Two kinds of jobs reach it:

- ``event``: a verified webhook delivery's ``Event``, as the receiver queued it (and as every earlier version
  queued polled changes). When the job runs, the plugin of the system it came from interprets it
  (``Connector.interpret``) into neutral signals; the inbox rows and the jobs keep the vendor's own payload,
  so what was queued before an upgrade still runs and replays.
- ``signal``: a neutral signal the reconciler made from a polled record (``enqueue_signal``).

CONTRACT (the receiver, the reconciler and the workers rely on these):
- ``lock_key_for(event)`` / a signal's subject: the entity the job acts on (``zendesk:ticket:4``), so that the
  store runs one job per entity at a time.
- ``handle_event(rt, event, system=None)`` and ``handle_signal(rt, signal, system=..., origin=...)``: route and
  return a short outcome for logs and metrics. ``system`` is the ``[systems.<name>]`` table the change came from
  (the job payload's ``system``); without it, the one configured system of the event's plugin is used. Raises
  ``VendorError`` subclasses (and ``EscalationPending``) for the worker to retry or dead-letter.

Routing: ``EscalationRequested`` escalates the ticket unless its escalation is complete; ``DecisionRequested``
applies or refuses the decision a tag asks for (``tagdecisions``); ``TicketCommentAdded`` goes to the relay
(support to engineering, ``relay.py``); ``IssueStateObserved``, ``IssueCommentPosted`` and ``VersionReleased`` go
to sync back (unless ``[sync] to_helpdesk`` is off); ``TicketStateObserved`` sets the linked issues' remote links'
resolved flag and refreshes their impact; ``CustomerChanged`` refreshes the impact of the open issues the
company is linked to. Echo suppression comes first: a change whose
actor is one of cxbridge's integration users (``[sync] integration_users``, system -> id or list of ids;
otherwise learned once per process from the connector's ``integration_user_id()``) is dropped, and so is a
ticket comment whose text matches a note cxbridge wrote (fingerprints recorded by sync back before each write).

Echoes known at ingress do not become jobs: ``enqueue_event`` records such a delivery in the inbox (so a
duplicate is still recognised) without a job, when the actor is an integration user already known in this
process (configured, or learned by an earlier job: no vendor is called) or the plugin's signals are an echo by the
same rules. An echo not yet recognisable at ingress is dropped when its job runs, as before.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import ConfigError, NotFound
from ..models import Ref, Ticket, event_from_dict, event_to_dict
from ..signals import (
    CustomerChanged,
    DecisionRequested,
    EscalationRequested,
    IssueCommentPosted,
    IssueStateObserved,
    Signal,
    TicketCommentAdded,
    TicketStateObserved,
    Triggers,
    VersionReleased,
    signal_from_dict,
    signal_to_dict,
)
from . import duplicates, impact, notices, relay, syncback
from .escalate import Escalation, EscalationRequest, completed_escalation, ticket_record
from .tagdecisions import decide_from_tag

if TYPE_CHECKING:
    from ..models import Event
    from .context import Context

log = logging.getLogger(__name__)

JOB_KIND = "event"
SIGNAL_JOB_KIND = "signal"

_learned: weakref.WeakKeyDictionary[Context, dict[str, frozenset[str]]] = weakref.WeakKeyDictionary()
_learned_lock = threading.Lock()


def lock_key_for(event: Event) -> str | None:
    """The entity the event's job acts on (its subject)."""
    return str(event.subject)


def subject_of(signal: Signal) -> Ref:
    """The record a signal is about (its job's lock key)."""
    if isinstance(signal, EscalationRequested | DecisionRequested | TicketCommentAdded | TicketStateObserved):
        return signal.ticket
    if isinstance(signal, CustomerChanged):
        return signal.company
    if isinstance(signal, IssueStateObserved | IssueCommentPosted):
        return signal.issue
    if isinstance(signal, VersionReleased):
        return Ref(signal.tracker, "version", signal.version_id)
    raise TypeError(f"not a routable signal: {signal!r}")


def enqueue_event(rt: Context, system: str, event: Event) -> bool:
    """Commit an event to the inbox with its job, in one transaction; False when it was delivered before.

    ``system`` is the ``[systems.<name>]`` table the event came from (the receiver queues through this). An echo
    of cxbridge's own change known at ingress (``echo_at_ingress``) is recorded in the inbox without a job.
    """
    record = event_to_dict(event)
    echo = echo_at_ingress(rt, system, event)
    if echo is not None:
        log.debug("%s: delivery %s recorded without a job (%s)", system, event.id, echo)
        return rt.store.accept_delivery(system, event.id, payload=record, job_kind=None, job_payload=None)
    return rt.store.accept_delivery(
        system,
        event.id,
        payload=record,
        job_kind=JOB_KIND,
        job_payload={"event": record, "system": system},
        lock_key=lock_key_for(event),
    )


def echo_at_ingress(rt: Context, system: str, event: Event) -> str | None:
    """Why an event is an echo of cxbridge's own change, when that is known without calling a vendor; else None.

    The same rules as the job's (``handle_event``, ``route``), with only the integration users already known in
    this process (configured, or learned by an earlier job): an unknown one is never asked for here.
    """
    if system not in rt.config.systems:
        return None
    known = known_integration_user_ids(rt, system)
    if event.actor is not None and str(event.actor) in known:
        return f"made by cxbridge's integration user on {system}"
    try:
        signals = rt.connector(system).interpret(event, triggers(rt))
        for signal in signals:
            if signal.actor is not None and str(signal.actor) in known:
                return f"made by cxbridge's integration user on {system}"
            if isinstance(signal, TicketCommentAdded) and syncback.is_own_note(rt, signal.ticket, signal.text):
                return f"{signal.ticket} comment is a note cxbridge wrote"
    except Exception:  # anything unexpected: not known to be an echo, so the job decides (and reports it)
        log.debug("%s: could not tell at ingress whether %s is an echo", system, event.id, exc_info=True)
    return None


def enqueue_signal(rt: Context, system: str, delivery_id: str, signal: Signal) -> bool:
    """Commit a signal (a polled change) to the inbox under ``delivery_id`` with its job; False when seen before."""
    record = signal_to_dict(signal)
    return rt.store.accept_delivery(
        system,
        delivery_id,
        payload={"id": delivery_id, "signal": record},
        job_kind=SIGNAL_JOB_KIND,
        job_payload={"signal": record, "system": system, "origin": delivery_id},
        lock_key=str(subject_of(signal)),
    )


def triggers(rt: Context) -> Triggers:
    """What the configuration says asks for an escalation, for the plugins' interpretation."""
    return Triggers(
        escalation_tag=str(rt.config.section("escalation").get("tag") or ""),
        decision_tag_prefix=str(rt.config.section("decisions").get("tag_prefix") or ""),
    )


def handle_event(rt: Context, event: Event, *, system: str | None = None) -> str:
    """Act on one event: its plugin says what it means, then the signals are routed; returns what was done."""
    name = system or system_name(rt, event)
    if is_integration_user(rt, name, event.actor):
        return f"echo: made by cxbridge's integration user on {name}"
    signals = rt.connector(name).interpret(event, triggers(rt))
    if not signals:
        return f"ignored: {event.kind}"
    return route(rt, name, signals, origin=event.id)


def escalation_requested_by(rt: Context, payload: dict[str, object]) -> tuple[str, EscalationRequested] | None:
    """The system and escalation request a queued ``event`` or ``signal`` job carries, if it asks for one (its
    plugin interprets an event again: interpretation reads only the delivery)."""
    system = payload.get("system")
    record = payload.get("signal")
    if isinstance(record, dict):
        signal = signal_from_dict(record)
        return (system, signal) if isinstance(signal, EscalationRequested) and isinstance(system, str) else None
    record = payload.get("event")
    if not isinstance(record, dict):
        return None
    event = event_from_dict(record)
    name = system if isinstance(system, str) else system_name(rt, event)
    for found in rt.connector(name).interpret(event, triggers(rt)):
        if isinstance(found, EscalationRequested):
            return name, found
    return None


def handle_signal(rt: Context, signal: Signal, *, system: str, origin: str | None = None) -> str:
    """Act on one queued signal (a polled change)."""
    return route(rt, system, [signal], origin=origin)


def handle_signal_job(rt: Context, payload: dict[str, object]) -> str:
    """The handler of ``signal`` jobs."""
    record = payload["signal"]
    if not isinstance(record, dict):
        raise ValueError("a signal job without its signal")
    origin = payload.get("origin")
    return handle_signal(
        rt, signal_from_dict(record), system=str(payload["system"]), origin=origin if isinstance(origin, str) else None
    )


def route(rt: Context, system: str, signals: list[Signal], *, origin: str | None) -> str:
    """Route the signals of one change; an echo of cxbridge's own change drops them all."""
    for signal in signals:
        if is_integration_user(rt, system, signal.actor):
            return f"echo: made by cxbridge's integration user on {system}"
        if isinstance(signal, TicketCommentAdded) and syncback.is_own_note(rt, signal.ticket, signal.text):
            return f"echo: {signal.ticket} comment is a note cxbridge wrote"
    outcomes = [_route_one(rt, system, signal, origin) for signal in signals]
    acted = [o for o in outcomes if not o.startswith("ignored")]
    return "; ".join(acted or outcomes)


def _route_one(rt: Context, system: str, signal: Signal, origin: str | None) -> str:
    if isinstance(signal, EscalationRequested):
        return _escalate(rt, system, signal, origin)
    if isinstance(signal, DecisionRequested):
        return decide_from_tag(rt, system, signal, origin)
    if isinstance(signal, TicketCommentAdded):
        return relay.Relay(rt).comment_added(system, signal, origin)
    if isinstance(signal, TicketStateObserved):
        return impact.ticket_state_changed(rt, Ref(system, "ticket", signal.ticket.id), signal.status)
    if isinstance(signal, CustomerChanged):
        return impact.customer_changed(rt, Ref(system, "company", signal.company.id))
    if not rt.config.section("sync")["to_helpdesk"]:
        carried = duplicates.carry_over(rt, signal, origin) if isinstance(signal, IssueStateObserved) else None
        return carried or f"ignored: {signal.kind} ([sync] to_helpdesk is off)"
    sync = syncback.SyncBack(rt)
    if isinstance(signal, IssueStateObserved):
        outcome = sync.issue_changed(system, signal, origin)
        carried = duplicates.carry_over(rt, signal, origin)
        return f"{outcome}; {carried}" if carried else outcome
    if isinstance(signal, IssueCommentPosted):
        return sync.comment_added(system, signal, origin)
    if isinstance(signal, VersionReleased):
        return sync.version_released(system, signal, origin)
    return f"ignored: no route for {signal.kind}"


# -- which system, and who is cxbridge there --------------------------------------------------------------------
def system_name(rt: Context, event: Event) -> str:
    """The ``[systems.<name>]`` table of an event's plugin: the table named like the plugin, else the only one."""
    systems = rt.config.systems
    if event.system in systems and systems[event.system].plugin == event.system:
        return event.system
    found = [name for name, sc in systems.items() if sc.plugin == event.system and sc.enabled]
    if len(found) == 1:
        return found[0]
    raise ConfigError(
        f"cannot tell which [systems.*] table a {event.system} event belongs to "
        f"({'several: ' + ', '.join(sorted(found)) if found else 'none is configured'}); pass the job's system"
    )


def _known_ids(rt: Context, system: str) -> frozenset[str] | None:
    """The configured or already learned integration user ids of a system; None when not known yet."""
    configured = rt.config.section("sync")["integration_users"]
    plugin = rt.config.systems[system].plugin if system in rt.config.systems else system
    for key in (system, plugin):
        if key in configured:
            value = configured[key]
            values = value if isinstance(value, list) else [value]
            return frozenset(str(v) for v in values if v is not None and str(v))
    with _learned_lock:
        return _learned.get(rt, {}).get(system)


def known_integration_user_ids(rt: Context, system: str) -> frozenset[str]:
    """The integration user ids known without a call (configured, or learned earlier in this process)."""
    return _known_ids(rt, system) or frozenset()


def integration_user_ids(rt: Context, system: str) -> frozenset[str]:
    """The ids cxbridge acts as on a system: ``[sync] integration_users``, else asked once per process."""
    known = _known_ids(rt, system)
    if known is not None:
        return known
    ident = rt.connector(system).integration_user_id()  # one call per process and system; a failure is retried
    learned = frozenset({str(ident)}) if ident else frozenset()
    log.info("%s: learned the integration user id (echo suppression)", system)
    with _learned_lock:
        _learned.setdefault(rt, {})[system] = learned
    return learned


def warm_up(rt: Context, systems: Iterable[str] | None = None) -> list[str]:
    """Learn the integration user of each enabled system (``systems``: those only) now, as its first job would: one
    call per system and process that is made anyway, made before the first delivery arrives. It opens each
    system's kept-alive connection, so the first escalation after a start waits for neither, and the echoes of
    its writes are recognised at ingress. A system that does not answer is left to learn later; returns the
    systems learned."""
    learned = []
    for name in systems if systems is not None else list(rt.config.systems):
        system = rt.config.systems.get(name)
        if system is None or not system.enabled:
            continue
        try:
            integration_user_ids(rt, name)
        except Exception as exc:  # learned by the first job that needs it, as before
            log.debug("%s: the integration user is not known yet: %s", name, exc)
            continue
        learned.append(name)
    return learned


def is_integration_user(rt: Context, system: str, actor: str | None) -> bool:
    """Whether ``actor`` is cxbridge itself on ``system`` (its changes are never synced back)."""
    if actor is None or system not in rt.config.systems:
        return False
    return str(actor) in integration_user_ids(rt, system)


# -- escalation -------------------------------------------------------------------------------------------------
def _escalate(rt: Context, system: str, signal: EscalationRequested, origin: str | None) -> str:
    """Escalate a ticket unless its escalation is complete (a replay, or an escalation done by other means).

    A complete escalation runs again when a fresh request (the tag just added again) comes with an issue key typed
    in the ticket that names an issue the ticket is not linked to (the agent moves it: one read of the ticket
    tells). A ticket linked by an escalation that did not finish (re-queued after a rate limit on the ticket update)
    runs the escalation again: it is idempotent, so it writes only what is missing.
    """
    ticket = Ref(system, "ticket", signal.ticket.id)
    done = completed_escalation(rt.store, ticket)
    if done is not None and not (signal.fresh and _key_changed(rt, system, ticket, signal.issue_key, signal.record)):
        return f"unchanged: {ticket} is linked to {done.issue_key} already"
    result = Escalation(rt).run(
        EscalationRequest(
            ticket_id=ticket.id,
            origin_event=origin,
            helpdesk=system,
            agent=signal.agent,
            link_key=signal.issue_key,
            requester_hint=signal.requester_email,
            ticket=signal.record,
        )
    )
    told = notices.recovered(
        rt, system, ticket, issue_key=result.issue_key, issue_url=result.issue_url, created=result.created
    )
    after = "; the agent's earlier failure note is followed up" if told == "written" else ""
    return f"escalated: {ticket} {'created' if result.created else 'joined'} {result.issue_key}{after}"


def _key_changed(rt: Context, system: str, ticket: Ref, event_key: str | None, record: Ticket | None = None) -> bool:
    """Whether the ticket's issue-key field names an issue it is not linked to (one read of the ticket, unless the
    event's own key is one of its links or a poll's complete ``record`` of it is at hand)."""
    keys = {link.issue_key for link in rt.store.links_for_ticket(ticket)}
    if event_key and event_key in keys:
        return False
    helpdesk = rt.helpdesk(system)
    try:
        typed = helpdesk.requested_issue_key(ticket_record(helpdesk, ticket.id, record))
    except NotFound:  # the ticket is gone (deleted, merged): nothing to move
        return False
    return bool(typed) and typed not in keys
