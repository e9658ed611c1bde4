"""The one path every outside event takes once it is queued, from a webhook or from polling.

CONTRACT (the receiver, the reconciler and the workers rely on these):
- ``lock_key_for(event)``: the entity an event's job acts on (``zendesk:ticket:4``, ``jira:issue:10001``), so that
  the store runs one job per entity at a time; None when the event touches no single entity.
- ``handle_event(rt, event, system=None)``: route the event (escalation trigger, sync back, echo dropped...) and
  return a short outcome for logs and metrics. ``system`` is the ``[systems.<name>]`` table the event came from
  (the job payload's ``system``); without it, the one configured system of the event's plugin is used. Raises
  ``VendorError`` subclasses (and ``EscalationPending``) for the worker to retry or dead-letter.

What the router reads, so that polled events can be shaped like webhook ones:
- every event: ``actor`` (the user who made the change; cxbridge's own integration users are echoes);
- Zendesk ``ticket.*``: ``payload.ticket.tags`` (or ``payload.detail.tags``, ``payload.tags_added``),
  ``payload.current_user`` ``{name, email}`` for the agent, ``payload.comment.body`` on ``ticket.comment_added``;
- HubSpot ``ticket.propertyChange``: ``payload.propertyName``, ``payload.propertyValue`` (escalates when the
  connector's ``escalate_property`` takes its ``escalate_value``, or any non-empty value without one);
- Jira ``jira:issue_updated``: ``payload.issue`` ``{id, key, fields: {status: {name, statusCategory: {key}},
  updated, statuscategorychangedate?, summary}}``, ``payload.user.displayName`` (a polled event carries no
  changelog: it is compared with the last applied state like any other); ``comment_created``: ``payload.issue``
  and ``payload.comment`` ``{id, body, author, visibility}``; ``jira:version_released``: ``payload.version``.

Echo suppression comes first: events whose actor is one of cxbridge's integration users (``[sync]
integration_users``, system -> id or list of ids; otherwise learned once per process from the connector's
``integration_user_id()``) are dropped, and so is a helpdesk comment whose text matches a note cxbridge wrote
(fingerprints recorded by sync back before each write).
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..models import Person, Ref, event_to_dict
from . import syncback
from .escalate import Escalation, EscalationRequest, completed_escalation

if TYPE_CHECKING:
    from ..models import Event
    from ..runtime import Runtime

log = logging.getLogger(__name__)

JOB_KIND = "event"

FALSE_VALUES = frozenset({"", "false", "0", "no", "off", "none", "null"})
"""Property values that do not ask for an escalation (a HubSpot checkbox unticked, a cleared field)."""

_learned: weakref.WeakKeyDictionary[Runtime, dict[str, frozenset[str]]] = weakref.WeakKeyDictionary()
_learned_lock = threading.Lock()


def lock_key_for(event: Event) -> str | None:
    """The entity the event's job acts on (its subject)."""
    return str(event.subject)


def enqueue_event(rt: Runtime, system: str, event: Event) -> bool:
    """Commit an event to the inbox with its job, in one transaction; False when it was delivered before.

    ``system`` is the ``[systems.<name>]`` table the event came from. The receiver and the reconciler both use this.
    """
    record = event_to_dict(event)
    return rt.store.accept_delivery(
        system,
        event.id,
        payload=record,
        job_kind=JOB_KIND,
        job_payload={"event": record, "system": system},
        lock_key=lock_key_for(event),
    )


def handle_event(rt: Runtime, event: Event, *, system: str | None = None) -> str:
    """Act on one event; returns what was done, in a few words."""
    name = system or system_name(rt, event)
    if is_integration_user(rt, name, event.actor):
        return f"echo: made by cxbridge's integration user on {name}"
    plugin = event.system
    if plugin == "zendesk":
        return _zendesk(rt, name, event)
    if plugin == "hubspot":
        return _hubspot(rt, name, event)
    if plugin == "jira":
        return _jira(rt, name, event)
    return f"ignored: no route for {plugin} events"


# -- which system, and who is cxbridge there --------------------------------------------------------------------
def system_name(rt: Runtime, event: Event) -> str:
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


def integration_user_ids(rt: Runtime, system: str) -> frozenset[str]:
    """The ids cxbridge acts as on a system: ``[sync] integration_users``, else asked once per process."""
    configured = rt.config.section("sync")["integration_users"]
    plugin = rt.config.systems[system].plugin if system in rt.config.systems else system
    for key in (system, plugin):
        if key in configured:
            value = configured[key]
            values = value if isinstance(value, list) else [value]
            return frozenset(str(v) for v in values if v is not None and str(v))
    with _learned_lock:
        known = _learned.setdefault(rt, {})
        if system in known:
            return known[system]
    learned: frozenset[str] = frozenset()
    connector = rt.connector(system)
    ask = getattr(connector, "integration_user_id", None)
    if callable(ask):
        ident = ask()  # one call per process and system; a failure raises and is retried, not cached
        learned = frozenset({str(ident)}) if ident else frozenset()
        log.info("%s: learned the integration user id (echo suppression)", system)
    with _learned_lock:
        _learned.setdefault(rt, {})[system] = learned
    return learned


def is_integration_user(rt: Runtime, system: str, actor: str | None) -> bool:
    """Whether ``actor`` is cxbridge itself on ``system`` (its changes are never synced back)."""
    if actor is None or system not in rt.config.systems:
        return False
    return str(actor) in integration_user_ids(rt, system)


# -- Zendesk: the escalation tag --------------------------------------------------------------------------------
def _ticket_tags(payload: dict[str, Any]) -> set[str]:
    tags: set[str] = set()
    for node, key in ((payload.get("ticket"), "tags"), (payload.get("detail"), "tags"), (payload, "tags_added")):
        values = node.get(key) if isinstance(node, dict) else None
        if isinstance(values, str):
            values = values.split()
        if isinstance(values, list):
            tags.update(str(v) for v in values if isinstance(v, str | int))
    return tags


def _agent(payload: dict[str, Any]) -> Person | None:
    user = payload.get("current_user")
    if not isinstance(user, dict):
        return None
    name, email = user.get("name"), user.get("email")
    if not isinstance(name, str) and not isinstance(email, str):
        return None
    return Person(name=name if isinstance(name, str) else None, email=email if isinstance(email, str) else None)


def _zendesk(rt: Runtime, name: str, event: Event) -> str:
    if event.subject.kind != "ticket" or not event.kind.startswith("ticket."):
        return f"ignored: {event.kind} is not a ticket event"
    ticket = Ref(name, "ticket", event.subject.id)
    comment = event.payload.get("comment")
    if isinstance(comment, dict) and syncback.is_own_note(rt, ticket, comment.get("body")):
        return f"echo: {ticket} comment is a note cxbridge wrote"
    tag = rt.config.section("escalation")["tag"]
    if tag not in _ticket_tags(event.payload):
        return f"ignored: {event.kind} on {ticket} without the escalation tag"
    return _escalate(rt, name, ticket, event, _agent(event.payload))


def _escalate(rt: Runtime, name: str, ticket: Ref, event: Event, agent: Person | None) -> str:
    """Escalate a ticket unless its escalation is complete (a replay, or an escalation done by other means).

    A ticket linked by an escalation that did not finish (re-queued after a rate limit on the ticket update) runs
    the escalation again: it is idempotent, so it writes only what is missing.
    """
    done = completed_escalation(rt.store, ticket)
    if done is not None:
        return f"unchanged: {ticket} is linked to {done.issue_key} already"
    result = Escalation(rt).run(
        EscalationRequest(ticket_id=ticket.id, origin_event=event.id, helpdesk=name, agent=agent)
    )
    return f"escalated: {ticket} {'created' if result.created else 'joined'} {result.issue_key}"


# -- HubSpot: the escalation property ---------------------------------------------------------------------------
def _hubspot(rt: Runtime, name: str, event: Event) -> str:
    if event.kind != "ticket.propertyChange" or event.subject.kind != "ticket":
        return f"ignored: {event.kind} is not a ticket property change"
    connector = rt.connector(name)
    wanted = getattr(connector, "escalate_property", None) or connector.config.get("escalate_property")
    if not wanted:
        return f"ignored: systems.{name} names no escalate_property"
    if event.payload.get("propertyName") != wanted:
        return f"ignored: {event.payload.get('propertyName')!r} is not the escalation property"
    value = event.payload.get("propertyValue")
    expected = getattr(connector, "escalate_value", None) or connector.config.get("escalate_value")
    text = "" if value is None else str(value).strip().lower()
    if (expected and text != str(expected).strip().lower()) or (not expected and text in FALSE_VALUES):
        return f"ignored: {wanted} is {value!r}, not the value that escalates"
    return _escalate(rt, name, Ref(name, "ticket", event.subject.id), event, None)


# -- Jira: sync back ----------------------------------------------------------------------------------------------
def _jira(rt: Runtime, name: str, event: Event) -> str:
    sync = syncback.SyncBack(rt)
    if event.kind == "jira:issue_updated":
        return sync.issue_changed(name, event)
    if event.kind == "comment_created":
        return sync.comment_added(name, event)
    if event.kind == "jira:version_released":
        return sync.version_released(name, event)
    return f"ignored: {event.kind}"
