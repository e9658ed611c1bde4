"""The one path every outside event takes once it is queued, from a webhook or from polling.

CONTRACT (the receiver, the reconciler and the workers rely on these):
- ``lock_key_for(event)``: the entity an event's job acts on (``zendesk:ticket:4``, ``jira:issue:10001``), so that
  the store runs one job per entity at a time; None when the event touches no single entity.
- ``handle_event(rt, event)``: route the event (escalation trigger, sync back, echo dropped...) and return a short
  outcome for logs and metrics. Raises ``VendorError`` subclasses for the worker to retry or dead-letter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models import Event
    from ..runtime import Runtime


def lock_key_for(event: Event) -> str | None:
    """The entity the event's job acts on (its subject)."""
    return str(event.subject)


def handle_event(rt: Runtime, event: Event) -> str:
    """Act on one event; returns what was done, in a few words."""
    raise NotImplementedError("event routing is being built (issue 5)")
