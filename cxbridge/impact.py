"""Customer impact on the engineering issue: who a bug hurts, and how much revenue is at stake.

CONTRACT (the escalation calls these; the impact module fills them in):
- ``save_customer(rt, customer)``: keep a snapshot of the customer (no API call), so an issue's rollup can be
  computed from the store for every linked ticket.
- ``for_new_issue(rt, ticket, customer)`` -> ``NewIssueImpact``: the Markdown block to append to a new issue's
  description and the fields and labels to set in the create call itself (so a new escalation costs no
  extra call).
- ``refresh_issue(rt, issue)``: after a link is added or removed, write the rollup to an existing issue
  (one edit, splicing the managed block into ``issue.description`` as read); returns whether it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Customer, Issue, Ticket
    from .runtime import Runtime


@dataclass
class NewIssueImpact:
    """What a new issue carries from birth: the impact section and the sortable values."""

    block: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)


def save_customer(rt: Runtime, customer: Customer) -> None:
    """Remember what the CRM said about a customer (the rollup reads these snapshots)."""


def for_new_issue(rt: Runtime, ticket: Ticket, customer: Customer) -> NewIssueImpact:
    """The impact block, fields and labels for an issue about to be created for this ticket."""
    return NewIssueImpact()


def refresh_issue(rt: Runtime, issue: Issue) -> bool:
    """Write the current rollup of an existing issue's links to it; False when nothing changed."""
    return False
