"""``[escalation.fields]``: fill tracker fields on create from constants, the ticket, its custom fields, the CRM
customer and the agent, with a lookup table and a default.

```toml
[escalation.fields.components]
value = ["Exports"]                       # a constant
[escalation.fields.customfield_10107]
from = "customer.tier"                    # the CRM customer's tier
map = { strategic = "Sev 1", enterprise = "Sev 2" }
default = "Sev 3"
[escalation.fields.assignee]
from = "customer.owner_email"             # a user by email (the tracker looks the user up)
```

``resolve`` returns field id -> a vendor-neutral value (text, number, bool, or a list of them) for every field
that has one; an empty source with no default leaves the field out (the tracker's create check then names it
when it is required). The tracker turns the values into its own form (``Tracker.prepare_create``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import ConfigError
from ..models import Customer, Person, Ticket

TICKET_ATTRS = ("subject", "priority", "status", "tags", "organization")
CUSTOMER_ATTRS = (
    "name",
    "domain",
    "tier",
    "arr",
    "currency",
    "owner",
    "owner_email",
    "renewal_date",
    "lifecycle_stage",
)


def source_value(source: str, ticket: Ticket, customer: Customer, agent: Person | None) -> Any:
    """The value a ``from`` names (None when absent); ``ConfigError`` for a source cxbridge does not know."""
    parts = source.strip().split(".")
    head, rest = parts[0], parts[1:]
    if head == "ticket" and len(rest) == 2 and rest[0] == "custom":
        return ticket.custom_fields.get(rest[1])
    if head == "ticket" and rest == ["requester_email"]:
        return ticket.requester.email if ticket.requester else None
    if head == "ticket" and rest == ["type"]:
        return ticket.raw.get("type") if ticket.raw else None
    if head == "ticket" and len(rest) == 1 and rest[0] in TICKET_ATTRS:
        return getattr(ticket, rest[0])
    if head == "customer" and len(rest) == 1 and rest[0] in CUSTOMER_ATTRS:
        return getattr(customer, rest[0]) if customer.known else None
    if head == "agent" and rest in (["email"], ["name"]):
        return getattr(agent, rest[0]) if agent else None
    raise ConfigError(f"escalation.fields: unknown source {source!r} (see the key's help: cxbridge config schema)")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def resolve_one(
    field_id: str, rule: Mapping[str, Any], ticket: Ticket, customer: Customer, agent: Person | None
) -> Any:
    """One field's value under its rule (None: nothing to set)."""
    if ("value" in rule) == ("from" in rule):
        raise ConfigError(f"escalation.fields.{field_id}: give exactly one of 'value' and 'from'")
    value = rule["value"] if "value" in rule else _plain(source_value(str(rule["from"]), ticket, customer, agent))
    table = rule.get("map")
    if table is not None and not _empty(value):
        lookup = {str(k).lower(): v for k, v in table.items()}
        if isinstance(value, list):
            value = [lookup[str(v).lower()] for v in value if str(v).lower() in lookup]
        else:
            value = lookup.get(str(value).lower())
    if _empty(value):
        value = rule.get("default")
    return None if _empty(value) else value


def resolve(
    rules: Mapping[str, Any], ticket: Ticket, customer: Customer, agent: Person | None = None
) -> dict[str, Any]:
    """Field id -> value for every ``[escalation.fields]`` rule that gives one."""
    out: dict[str, Any] = {}
    for field_id, rule in rules.items():
        if not isinstance(rule, Mapping):
            raise ConfigError(f"escalation.fields.{field_id}: expected a table (value, from, map, default)")
        value = resolve_one(str(field_id), rule, ticket, customer, agent)
        if value is not None:
            out[str(field_id)] = value
    return out
