"""The one path every outside event takes once it is queued, from a webhook or from polling.

CONTRACT (the receiver, the reconciler and the workers rely on these):
- ``lock_key_for(event)``: the entity an event's job acts on (``zendesk:ticket:4``, ``jira:issue:10001``), so that
  the store runs one job per entity at a time; None when the event touches no single entity.
- ``handle_event(rt, event)``: route the event (escalation trigger, sync back, echo dropped...) and return a short
  outcome for logs and metrics. Raises ``VendorError`` subclasses for the worker to retry or dead-letter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..models import event_to_dict

if TYPE_CHECKING:
    from ..models import Event
    from ..runtime import Runtime

JOB_KIND = "event"


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


def handle_event(rt: Runtime, event: Event) -> str:
    """Act on one event; returns what was done, in a few words."""
    raise NotImplementedError("event routing is being built (issue 5)")
