"""Named data sets for the HubSpot emulator: ``empty`` and ``demo``.

Seeds go through the same ``Portal`` rules as API calls (so they cannot hold what HubSpot would refuse), are
idempotent (loading ``demo`` twice adds nothing the second time) and emit no webhooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .models import OBJECT_TYPES, CrmObject, Portal

OLIVIA_OWNER_ID = "41920001"

DEMO_COMPANIES: tuple[dict[str, str], ...] = (
    {
        "name": "Acme Corp",
        "domain": "acme.example",
        "tier": "strategic",
        "annualrevenue": "480000",
        "renewal_date": "2027-01-31",
        "hubspot_owner_id": OLIVIA_OWNER_ID,
        "lifecyclestage": "customer",
    },
    {
        "name": "Globex",
        "domain": "globex.example",
        "tier": "enterprise",
        "annualrevenue": "150000",
        "renewal_date": "2027-03-15",
        "hubspot_owner_id": OLIVIA_OWNER_ID,
        "lifecyclestage": "customer",
    },
    {
        "name": "Initech",
        "domain": "initech.example",
        "tier": "standard",
        "annualrevenue": "12000",
        "renewal_date": "2027-06-30",
        "lifecyclestage": "customer",
    },
)

DEMO_CONTACTS: tuple[tuple[dict[str, str], str], ...] = (
    (
        {
            "email": "ada@acme.example",
            "firstname": "Ada",
            "lastname": "Lovelace",
            "jobtitle": "CTO",
            "company": "Acme Corp",
            "lifecyclestage": "customer",
        },
        "acme.example",
    ),
    (
        {
            "email": "grace@globex.example",
            "firstname": "Grace",
            "lastname": "Hopper",
            "jobtitle": "Head of Data",
            "company": "Globex",
            "lifecyclestage": "customer",
        },
        "globex.example",
    ),
    (
        {
            "email": "linus@initech.example",
            "firstname": "Linus",
            "lastname": "Torvalds",
            "jobtitle": "Engineer",
            "company": "Initech",
            "lifecyclestage": "customer",
        },
        "initech.example",
    ),
)

DEMO_DEALS: tuple[tuple[dict[str, str], str, str], ...] = (
    (
        {
            "dealname": "Acme expansion 2027",
            "pipeline": "default",
            "dealstage": "contractsent",
            "amount": "120000",
            "closedate": "2026-12-15T00:00:00.000Z",
            "hubspot_owner_id": OLIVIA_OWNER_ID,
        },
        "acme.example",
        "ada@acme.example",
    ),
    (
        {
            "dealname": "Globex renewal",
            "pipeline": "default",
            "dealstage": "qualifiedtobuy",
            "amount": "150000",
            "closedate": "2027-03-15T00:00:00.000Z",
            "hubspot_owner_id": OLIVIA_OWNER_ID,
        },
        "globex.example",
        "grace@globex.example",
    ),
)

DEMO_TICKETS: tuple[tuple[dict[str, str], str, str], ...] = (
    (
        {
            "subject": "CSV export times out on large reports",
            "hs_pipeline": "0",
            "hs_pipeline_stage": "1",
            "hs_ticket_priority": "HIGH",
            "content": "Exporting the monthly usage report to CSV times out once it holds more than 50,000 rows.",
        },
        "grace@globex.example",
        "globex.example",
    ),
)


def _by(portal: Portal, type_name: str, prop: str, value: str) -> CrmObject | None:
    for obj in portal.live(OBJECT_TYPES[type_name]):
        if obj.properties.get(prop, "").lower() == value.lower():
            return obj
    return None


def _ensure(portal: Portal, type_name: str, key: str, props: Mapping[str, str]) -> CrmObject:
    existing = _by(portal, type_name, key, props[key])
    if existing is not None:
        return existing
    return portal.create(OBJECT_TYPES[type_name], dict(props))


def seed_empty(portal: Portal) -> None:
    """A portal before ``cxbridge setup``: HubSpot's standard properties only, no custom property, no app
    webhook subscription or target URL."""
    portal.remove_custom_properties()


def seed_demo(portal: Portal) -> None:
    """Three customer companies with a contact each, two open deals and one support ticket from Grace."""
    if OLIVIA_OWNER_ID not in portal.owners:
        portal.add_owner(OLIVIA_OWNER_ID, "Olivia", "Owner", "olivia.owner@cxbridge.example")
    companies = {c["domain"]: _ensure(portal, "companies", "domain", c) for c in DEMO_COMPANIES}
    contacts: dict[str, CrmObject] = {}
    for props, domain in DEMO_CONTACTS:
        contact = _ensure(portal, "contacts", "email", props)
        contacts[props["email"]] = contact
        portal.associate("contacts", contact.id, "companies", companies[domain].id, [1])
    for props, domain, email in DEMO_DEALS:
        deal = _ensure(portal, "deals", "dealname", props)
        portal.associate("deals", deal.id, "companies", companies[domain].id, [5])
        portal.associate("deals", deal.id, "contacts", contacts[email].id, [3])
    for props, email, domain in DEMO_TICKETS:
        ticket = _ensure(portal, "tickets", "subject", props)
        portal.associate("tickets", ticket.id, "contacts", contacts[email].id, [16])
        portal.associate("tickets", ticket.id, "companies", companies[domain].id, [26])
    portal.take_changes()


SEEDS: dict[str, Callable[[Portal], None]] = {"empty": seed_empty, "demo": seed_demo}


def load(portal: Portal, name: str) -> None:
    """Load a named seed on top of the portal's state, or a ValueError naming the known ones."""
    try:
        loader = SEEDS[name]
    except KeyError:
        raise ValueError(f"no HubSpot seed named {name!r} (known: {', '.join(sorted(SEEDS))})") from None
    loader(portal)
    portal.take_changes()


def summary(portal: Portal) -> dict[str, Any]:
    """How many live records of each type the portal holds."""
    return {name: len(portal.live(otype)) for name, otype in OBJECT_TYPES.items()}
