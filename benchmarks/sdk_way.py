"""The same jobs as cxbridge's, done with the vendors' official Python SDKs: a tuned script and a naive one.

zenpy (Zendesk), jira (pycontribs) and hubspot-api-client, pointed at the sandbox served on loopback, so that
every SDK call is a real HTTP request to the same emulators cxbridge talks to. Clients are built once (jira's
constructor reads ``serverInfo``; that call is made before any job is measured and is not counted).

**Tuned** (``escalate``, ``sync_transition``): what a competent integrator writes from each client's own
documentation, doing the same job as cxbridge (issue 16):

- the ticket with its requester and organization in one call, ``zenpy.tickets(id=, include=["users",
  "organizations"])`` (zenpy's cache, left on, then answers ``ticket.requester`` and ``ticket.organization``);
  a trigger carries no agent note, so the agent's latest internal note is read (``zenpy.tickets.comments``), as
  cxbridge does;
- the customer: ``crm.contacts.basic_api.get_by_id(email, id_property="email", associations=["companies"])``,
  ``crm.companies.basic_api.get_by_id(id, associations=["deals"])`` and one ``crm.deals.batch_api.read`` (only
  when there are deals);
- the issue through REST v3 (``JIRA(options={"rest_api_version": "3"})``) with an ADF description (customer,
  ticket, the agent's note, the customer-impact section) and the priority from the customer's tier and the
  ticket's priority (cxbridge's default table), ``create_issue(fields=..., prefetch=False)`` (no read back); to
  join, ``jira.issue(key, fields="description")`` and ``issue.update(description=...)`` with the impact section
  rewritten (pycontribs reloads the issue after an update: documented, not avoidable through its API);
  ``jira.add_remote_link(...)`` (pycontribs lists the application links once per client; not counted);
- the ticket: note, tag and issue key in one ``zenpy.tickets.update(ticket)``;
- the CRM note: ``crm.objects.notes.basic_api.create`` with its associations inline.

**Naive** (``escalate_naive``): the first way the docs show, without those choices (zenpy's cache off and no
sideloads, a contact search and v4 association pages, REST v2 plain text, ``create_issue`` with its default read
back, a fixed priority, no impact section). Kept to show what the choices are worth, not as the baseline.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

TAG = "escalated_to_engineering"


@dataclass
class Clients:
    """The three SDK clients on the served sandbox."""

    zenpy: Any
    jira: Any
    hubspot: Any
    issue_key_field_id: int
    zendesk_base: str


def build(vendors: Any, *, tuned: bool = True) -> Clients:
    """zenpy, pycontribs jira and hubspot-api-client pointed at the served emulators, as their docs say.

    Tuned: zenpy keeps its cache (sideloaded users and organizations land in it) and jira talks REST v3 (ADF).
    Naive: zenpy's cache off, jira on its default REST v2."""
    import hubspot
    from jira import JIRA
    from zenpy import Zenpy

    zd, jr, hs = vendors["zendesk"], vendors["jira"], vendors["hubspot"]
    # zenpy: "Custom Domains" (docs/zenpy.rst): ZENPY_FORCE_NETLOC / ZENPY_FORCE_SCHEME.
    os.environ["ZENPY_FORCE_NETLOC"] = urlsplit(zd.base_url).netloc
    os.environ["ZENPY_FORCE_SCHEME"] = "http"
    zcreds = zd.credentials()
    zenpy = Zenpy(
        subdomain="cxbridge-sandbox", email=zcreds["email"], token=zcreds["api_token"], disable_cache=not tuned
    )
    jcreds = jr.credentials()
    options = {"rest_api_version": "3"} if tuned else {}
    jira = JIRA(jr.base_url, basic_auth=(jcreds["email"], jcreds["api_token"]), options=options)
    client = hubspot.Client.create(access_token=hs.access_token, host=hs.base_url)
    return Clients(zenpy, jira, client, zd.issue_key_field_id, zd.base_url)


def _customer(c: Clients, email: str) -> dict[str, Any]:
    from hubspot.crm.contacts import Filter, FilterGroup, PublicObjectSearchRequest
    from hubspot.crm.deals import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

    hs = c.hubspot
    found = hs.crm.contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="email", operator="EQ", value=email)])],
            properties=["email", "firstname", "lastname", "lifecyclestage"],
            limit=1,
        )
    )
    if not found.results:
        return {}
    contact_id = found.results[0].id
    companies = hs.crm.associations.v4.basic_api.get_page("contacts", contact_id, "companies", limit=500)
    if not companies.results:
        return {"contact_id": contact_id}
    company_id = str(companies.results[0].to_object_id)
    company = hs.crm.companies.basic_api.get_by_id(
        company_id, properties=["name", "domain", "tier", "annualrevenue", "renewal_date", "hubspot_owner_id"]
    )
    deals = hs.crm.associations.v4.basic_api.get_page("companies", company_id, "deals", limit=500)
    deal_rows: list[Any] = []
    if deals.results:
        read = hs.crm.deals.batch_api.read(
            batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=str(d.to_object_id)) for d in deals.results],
                properties=["dealname", "dealstage", "amount", "closedate"],
                properties_with_history=[],
            )
        )
        deal_rows = list(read.results)
    return {"contact_id": contact_id, "company_id": company_id, "company": company.properties, "deals": deal_rows}


def _crm_note(c: Clients, customer: dict[str, Any], body: str) -> None:
    from hubspot.crm.objects.notes import (
        AssociationSpec,
        PublicAssociationsForObject,
        PublicObjectId,
        SimplePublicObjectInputForCreate,
    )

    associations = [
        PublicAssociationsForObject(
            to=PublicObjectId(id=customer[key]),
            types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)],
        )
        for key, type_id in (("contact_id", 202), ("company_id", 190))
        if customer.get(key)
    ]
    c.hubspot.crm.objects.notes.basic_api.create(
        simple_public_object_input_for_create=SimplePublicObjectInputForCreate(
            properties={"hs_timestamp": datetime.now(UTC).isoformat(), "hs_note_body": body},
            associations=associations,
        )
    )


def escalate_naive(
    c: Clients,
    ticket_id: int,
    *,
    note: str,
    link_key: str | None = None,
    on_note: Callable[[], None] | None = None,
) -> str:
    """One escalation (or a join of ``link_key``) the naive SDK way; returns the issue key.

    ``on_note`` is called as soon as the ticket's note is written (a benchmark's tag-to-note clock)."""
    from zenpy.lib.api_objects import Comment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ticket = c.zenpy.tickets(id=ticket_id)
        requester = c.zenpy.users(id=ticket.requester_id)
        org = c.zenpy.organizations(id=ticket.organization_id) if ticket.organization_id else None
        customer = _customer(c, requester.email)
        company = customer.get("company") or {}
        description = (
            f"Customer: {company.get('name') or (org.name if org else 'unknown')} "
            f"(tier {company.get('tier')}, ARR {company.get('annualrevenue')})\n"
            f"Open deals: {', '.join(d.properties.get('dealname') or '' for d in customer.get('deals', []))}\n\n"
            f"{ticket.description}\n\nAgent note: {note}\n\nTicket: {c.zendesk_base}/agent/tickets/{ticket_id}"
        )
        if link_key:
            issue = c.jira.issue(link_key)
            # the customer impact on the issue, as cxbridge writes it when a ticket joins (pycontribs reloads after)
            impact = f"Customer impact: + {company.get('name') or 'unknown'} (ARR {company.get('annualrevenue')})"
            issue.update(notify=False, description=f"{issue.fields.description or ''}\n\n{impact}")
        else:
            issue = c.jira.create_issue(
                fields={
                    "project": {"key": "ENG"},
                    "issuetype": {"name": "Bug"},
                    "summary": ticket.subject,
                    "description": description,
                    "labels": ["cxbridge"],
                    "priority": {"name": "High"},
                }
            )
        c.jira.add_remote_link(
            issue.key,
            {"url": f"{c.zendesk_base}/agent/tickets/{ticket_id}", "title": f"Zendesk #{ticket_id}: {ticket.subject}"},
            globalId=f"system={c.zendesk_base}&id={ticket_id}",
            application={"type": "com.zendesk", "name": "Zendesk"},
            relationship="escalated from",
        )
        ticket.comment = Comment(body=f"Escalated to engineering: {issue.key}\n\n{note}", public=False)
        ticket.tags = [*ticket.tags, TAG]
        ticket.custom_fields = [{"id": c.issue_key_field_id, "value": issue.key}]
        c.zenpy.tickets.update(ticket)
        if on_note is not None:
            on_note()
        if customer.get("contact_id"):
            _crm_note(c, customer, f"<p>Escalated Zendesk #{ticket_id} to engineering: {issue.key}</p>")
    return str(issue.key)


# -- the tuned script ----------------------------------------------------------------------------------------
def _customer_tuned(c: Clients, email: str) -> dict[str, Any]:
    """The contact by email with its companies, the company with its deals, the deals in one batch read."""
    from hubspot.crm.contacts.exceptions import NotFoundException
    from hubspot.crm.deals import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

    hs = c.hubspot
    try:
        contact = hs.crm.contacts.basic_api.get_by_id(
            email, id_property="email", properties=["email", "firstname", "lastname"], associations=["companies"]
        )
    except NotFoundException:
        return {}
    companies = (contact.associations or {}).get("companies")
    if not companies or not companies.results:
        return {"contact_id": contact.id}
    company = hs.crm.companies.basic_api.get_by_id(
        companies.results[0].id,
        properties=["name", "domain", "tier", "annualrevenue", "renewal_date", "hubspot_owner_id"],
        associations=["deals"],
    )
    deal_ids = [d.id for d in ((company.associations or {}).get("deals") or _Empty()).results]
    deals: list[Any] = []
    if deal_ids:
        read = hs.crm.deals.batch_api.read(
            batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=d) for d in deal_ids],
                properties=["dealname", "dealstage", "amount", "closedate"],
                properties_with_history=[],
            )
        )
        deals = [d for d in read.results if d.properties.get("dealstage") not in ("closedwon", "closedlost")]
    return {"contact_id": contact.id, "company_id": company.id, "company": company.properties, "deals": deals}


class _Empty:
    results: list[Any] = []


def _text(text: str, *, strong: bool = False, href: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": text}
    marks = ([{"type": "strong"}] if strong else []) + ([{"type": "link", "attrs": {"href": href}}] if href else [])
    if marks:
        node["marks"] = marks
    return node


def _para(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(nodes)}


def _heading(text: str) -> dict[str, Any]:
    return {"type": "heading", "attrs": {"level": 2}, "content": [_text(text)]}


def _bullets(*items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "bulletList", "content": [{"type": "listItem", "content": [_para(*i)]} for i in items]}


IMPACT = "Customer impact"


def _impact_item(company: dict[str, Any], ticket_url: str, ticket_id: int) -> list[dict[str, Any]]:
    return [
        _text(company.get("name") or "unknown customer", strong=True),
        _text(
            f" (tier {company.get('tier') or 'none'}, ARR {company.get('annualrevenue') or 'unknown'}, "
            f"renewal {company.get('renewal_date') or 'none'}): "
        ),
        _text(f"Zendesk #{ticket_id}", href=ticket_url),
    ]


def _description(ticket: Any, customer: dict[str, Any], note: str, url: str, priority: str) -> dict[str, Any]:
    """The issue's ADF description: customer, ticket, the agent's note, priority, the customer-impact section."""
    company = customer.get("company") or {}
    deals = customer.get("deals") or []
    return {
        "type": "doc",
        "version": 1,
        "content": [
            _heading("Customer"),
            _bullets(
                [_text("Company: ", strong=True), _text(company.get("name") or "unknown")],
                [_text("Tier: ", strong=True), _text(company.get("tier") or "none recorded")],
                [_text("ARR: ", strong=True), _text(str(company.get("annualrevenue") or "unknown"))],
                [_text("Renewal date: ", strong=True), _text(company.get("renewal_date") or "none recorded")],
                [
                    _text("Open deals: ", strong=True),
                    _text(
                        ", ".join(f"{d.properties.get('dealname')} ({d.properties.get('amount')})" for d in deals)
                        or "none"
                    ),
                ],
            ),
            _heading("Ticket"),
            _para(_text(f"Zendesk #{ticket.id}: {ticket.subject}", href=url)),
            _heading("In the customer's words"),
            {"type": "blockquote", "content": [_para(_text(ticket.description or "(empty)"))]},
            _heading("Support's summary"),
            _para(_text(note or "Support left no summary.")),
            _heading("Priority"),
            _para(
                _text(priority, strong=True),
                _text(f": tier {company.get('tier') or 'standard'}, ticket priority {ticket.priority or 'normal'}"),
            ),
            _heading(IMPACT),
            _bullets(_impact_item(company, url, ticket.id)),
        ],
    }


def _priority(tier: str | None, ticket_priority: str | None) -> str:
    """The tracker priority from the customer's tier and the ticket's priority (cxbridge's default table)."""
    from cxbridge.workflows.priority import DEFAULT_TABLE

    row = DEFAULT_TABLE.get((tier or "standard").lower(), DEFAULT_TABLE["standard"])
    return row.get((ticket_priority or "normal").lower(), row["normal"])


def _with_impact(description: dict[str, Any], item: list[dict[str, Any]]) -> dict[str, Any]:
    """The description with one more customer in its impact section (added when the issue has none)."""
    content = list(description.get("content") or [])
    for n, node in enumerate(content):
        is_impact = node.get("type") == "heading" and node.get("content", [{}])[0].get("text") == IMPACT
        if is_impact and n + 1 < len(content) and content[n + 1].get("type") == "bulletList":
            content[n + 1]["content"].append({"type": "listItem", "content": [_para(*item)]})
            return {**description, "content": content}
    return {**description, "content": [*content, _heading(IMPACT), _bullets(item)]}


def escalate(
    c: Clients,
    ticket_id: int,
    *,
    note: str,
    link_key: str | None = None,
    on_note: Callable[[], None] | None = None,
) -> str:
    """One escalation (or a join of ``link_key``) by the tuned SDK script; returns the issue key.

    ``note`` empty: a trigger, so the agent's latest internal note is read. ``on_note`` is called as soon as the
    ticket's note is written (a benchmark's tag-to-note clock)."""
    from zenpy.lib.api_objects import Comment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ticket = c.zenpy.tickets(id=ticket_id, include=["users", "organizations"])
        requester = ticket.requester  # from zenpy's cache: the sideload filled it
        if not note:
            internal = [x for x in c.zenpy.tickets.comments(ticket=ticket_id) if not x.public]
            note = internal[-1].body if internal else ""
        customer = _customer_tuned(c, requester.email)
        company = customer.get("company") or {}
        url = f"{c.zendesk_base}/agent/tickets/{ticket_id}"
        if link_key:
            issue = c.jira.issue(link_key, fields="description")
            description = _with_impact(
                issue.raw["fields"].get("description") or {"type": "doc", "version": 1, "content": []},
                _impact_item(company, url, ticket_id),
            )
            issue.update(notify=False, fields={"description": description})
            key = link_key
        else:
            priority = _priority(company.get("tier"), ticket.priority)
            created = c.jira.create_issue(
                fields={
                    "project": {"key": "ENG"},
                    "issuetype": {"name": "Bug"},
                    "summary": f"[{company.get('name') or 'unknown'}] {ticket.subject}",
                    "description": _description(ticket, customer, note, url, priority),
                    "labels": ["cxbridge"],
                    "priority": {"name": priority},
                },
                prefetch=False,
            )
            key = str(created.key)
        c.jira.add_remote_link(
            key,
            {"url": url, "title": f"Zendesk #{ticket_id}: {ticket.subject}"},
            globalId=f"system={c.zendesk_base}&id={ticket_id}",
            application={"type": "com.zendesk", "name": "Zendesk"},
            relationship="escalated from",
        )
        ticket.comment = Comment(body=f"Escalated to engineering: {key}\n\n{note}", public=False)
        ticket.tags = [*ticket.tags, TAG]
        ticket.custom_fields = [{"id": c.issue_key_field_id, "value": key}]
        c.zenpy.tickets.update(ticket)
        if on_note is not None:
            on_note()
        if customer.get("contact_id"):
            _crm_note(c, customer, f"<p>Escalated Zendesk #{ticket_id} to engineering: {key}</p>")
    return key


def sync_transition(c: Clients, issue_key: str, status: str) -> int:
    """Sync one transition back the tuned SDK way: a note on every linked ticket, one CRM note per company.

    The webhook carries the issue's new status, so the issue is not read again. Without cxbridge's store the
    linked tickets are found from the issue's remote links (``jira.remote_links``); each ticket is read with its
    requester sideloaded (``include=["users"]``) and gets its internal note through a ticket update (zenpy's
    documented way to comment); each distinct requester's company is found (contact by email with its companies)
    and gets one note. Returns the number of tickets noted.
    """
    from zenpy.lib.api_objects import Comment

    noted = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        links = c.jira.remote_links(issue_key)
        prefix = f"{c.zendesk_base}/agent/tickets/"
        linked = [str(link.object.url)[len(prefix) :] for link in links if str(link.object.url).startswith(prefix)]
        emails: dict[str, None] = {}
        for tid in linked:
            ticket = c.zenpy.tickets(id=int(tid), include=["users"])
            ticket.comment = Comment(body=f"Engineering moved {issue_key} to {status}.", public=False)
            c.zenpy.tickets.update(ticket)
            noted += 1
            emails[ticket.requester.email] = None
        companies: dict[str, dict[str, Any]] = {}
        for email in emails:
            customer = _customer_light(c, email)
            if customer.get("company_id"):
                companies.setdefault(customer["company_id"], customer)
        for customer in companies.values():
            _crm_note(c, {"company_id": customer["company_id"]}, f"<p>{issue_key} moved to {status}</p>")
    return noted


def _customer_light(c: Clients, email: str) -> dict[str, Any]:
    """The contact and its company only (no deals): what a note needs; one call."""
    from hubspot.crm.contacts.exceptions import NotFoundException

    try:
        contact = c.hubspot.crm.contacts.basic_api.get_by_id(
            email, id_property="email", properties=["email"], associations=["companies"]
        )
    except NotFoundException:
        return {}
    companies = (contact.associations or {}).get("companies")
    company_id = str(companies.results[0].id) if companies and companies.results else None
    return {"contact_id": contact.id, "company_id": company_id}
