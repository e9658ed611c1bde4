"""How the tracker priority of an escalation is chosen: customer tier by ticket priority."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Rows: customer tier; columns: the helpdesk's ticket priority. Strategic customers' urgent tickets go first.
DEFAULT_TABLE: dict[str, dict[str, str]] = {
    "strategic": {"urgent": "Highest", "high": "Highest", "normal": "High", "low": "Medium"},
    "enterprise": {"urgent": "Highest", "high": "High", "normal": "Medium", "low": "Low"},
    "standard": {"urgent": "High", "high": "Medium", "normal": "Low", "low": "Lowest"},
}
DEFAULT_TICKET_PRIORITY = "normal"


@dataclass(frozen=True)
class Priority:
    """The chosen tracker priority and, in words, why."""

    value: str
    reason: str


def choose_priority(
    tier: str | None,
    ticket_priority: str | None,
    *,
    table: Mapping[str, Mapping[str, str]] | None = None,
    default_tier: str = "standard",
) -> Priority:
    """Look the pair up in the admin's table (over the default one) and say which cell decided."""
    merged: dict[str, dict[str, str]] = {k: dict(v) for k, v in DEFAULT_TABLE.items()}
    for row_name, cells in (table or {}).items():
        merged.setdefault(row_name.lower(), {}).update({k.lower(): v for k, v in cells.items()})
    tier_key = (tier or "").lower()
    tier_note = f"customer tier {tier}"
    if tier_key not in merged:
        tier_note = f"customer tier {tier or 'unknown'}, treated as {default_tier}"
        tier_key = default_tier.lower()
    row: dict[str, str] = merged.get(tier_key, merged["standard"])
    prio_key = (ticket_priority or DEFAULT_TICKET_PRIORITY).lower()
    prio_note = (
        f"ticket priority {ticket_priority}" if ticket_priority else f"no ticket priority, treated as {prio_key}"
    )
    if prio_key not in row:
        prio_note = f"ticket priority {ticket_priority}, treated as {DEFAULT_TICKET_PRIORITY}"
        prio_key = DEFAULT_TICKET_PRIORITY
    value: str = row.get(prio_key) or DEFAULT_TABLE["standard"][DEFAULT_TICKET_PRIORITY]
    return Priority(value=value, reason=f"{tier_note} and {prio_note} give {value} in the priority table")
