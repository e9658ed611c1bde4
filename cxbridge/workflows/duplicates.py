"""An issue closed as a duplicate of another hands its tickets over (``[sync] carry_duplicates``, default on).

When an issue with linked tickets is observed in the done category, the tracker is asked what it duplicates
(``Tracker.duplicate_of``: Jira's resolution Duplicate and its "duplicates" issue link; one read). Each ticket then
joins the surviving issue as an agent's join would (remote link, store link, impact, the note on the ticket with
the new key, the CRM note) and leaves the duplicate (its remote link, store link and impact there). Joining comes
first, so a run cut short is finished by a replay (the duplicate still lists the ticket) and nothing is repeated
(the join and the unlink are idempotent). Choice: on by default, because a customer waiting on a duplicate would
otherwise never hear about the fix; ``carry_duplicates = false`` leaves the tickets where they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..signals import DONE, IssueStateObserved
from . import impact
from .escalate import Escalation, EscalationRequest

if TYPE_CHECKING:
    from .context import Context

CHECKED = "duplicate_check"
"""Snapshot kind: for an issue, the done state (when it changed category) last asked about, and the answer."""


def carry_over(rt: Context, signal: IssueStateObserved, origin: str | None) -> str | None:
    """Move the tickets of a done duplicate to the issue it duplicates; what was done, or None (nothing to do)."""
    if signal.category != DONE or not rt.config.section("sync").get("carry_duplicates", True):
        return None
    links = rt.store.links_for_issue(signal.issue) or rt.store.links_for_issue_key(signal.key)
    if not links:
        return None
    tracker = rt.tracker()
    if not tracker.supports("duplicate_of"):
        return None
    when = signal.category_changed or signal.updated
    seen = rt.store.get_snapshot(CHECKED, str(signal.issue))
    if when is not None and seen is not None and seen.get("at") == when.isoformat():
        return None  # this done state was looked at already (a replay, a poll of the same state)
    target = tracker.duplicate_of(signal.key)
    if when is not None:
        rt.store.put_snapshot(CHECKED, str(signal.issue), {"at": when.isoformat(), "duplicates": target})
    if not target or target == signal.key:
        return None
    moved = []
    for link in links:
        Escalation(rt).run(
            EscalationRequest(
                ticket_id=link.ticket.id, link_key=target, helpdesk=link.ticket.system, origin_event=origin
            )
        )
        # an issue key typed on the ticket may have made the join a move, off the duplicate already
        if any(kept.issue == link.issue for kept in rt.store.links_for_ticket(link.ticket)):
            impact.unlink(rt, link.ticket, signal.key, actor=f"duplicate of {target}")
        moved.append(str(link.ticket))
    return f"duplicate: {signal.key} duplicates {target}; moved {', '.join(moved)}"
