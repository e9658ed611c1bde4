"""The same jobs as cxbridge's, done "the usual way": the vendors' official Python SDKs, as their docs show them.

zenpy (Zendesk), jira (pycontribs) and hubspot-api-client, pointed at the sandbox served on loopback, so that
every SDK call is a real HTTP request to the same emulators cxbridge talks to. Clients are built once (jira's
constructor reads ``serverInfo``; that call is made before any job is measured and is not counted).

What each job does mirrors cxbridge's effects (the same issue, remote link, ticket note with tag and issue
key, CRM note), with the calls the SDKs' documentation suggests:

- read the ticket: ``zenpy.tickets(id=)``, then its requester ``zenpy.users(id=)`` and organization
  ``zenpy.organizations(id=)`` (zenpy's documented reads; the Ticket API sideloads are not exposed by
  ``tickets(id=)``);
- the customer: ``crm.contacts.search_api.do_search`` (email EQ), the contact's companies through
  ``crm.associations.v4.basic_api.get_page``, ``crm.companies.basic_api.get_by_id``, the company's deals
  through ``get_page`` again and one ``crm.deals.batch_api.read`` (only when there are deals);
- the issue: ``jira.create_issue(fields=...)`` (which reads the issue back: prefetch) with the customer in the
  description, or, to join, ``jira.issue(key)`` and ``issue.update(description=...)`` adding the customer's impact
  (cxbridge refreshes the issue's impact on a join; pycontribs reloads the issue after an update);
  ``jira.add_remote_link(...)`` (which lists application links the first time; pycontribs caches them);
- the ticket: note, tag and issue key in one ``zenpy.tickets.update(ticket)`` (comment via ticket update);
- the CRM note: ``crm.objects.notes.basic_api.create`` with its associations to contact and company inline
  (the cheaper of the two documented ways; the other creates the note, then each association).
"""

from __future__ import annotations

import os
import warnings
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


def build(vendors: Any) -> Clients:
    """zenpy, pycontribs jira and hubspot-api-client pointed at the served emulators, as their docs say."""
    import hubspot
    from jira import JIRA
    from zenpy import Zenpy

    zd, jr, hs = vendors["zendesk"], vendors["jira"], vendors["hubspot"]
    # zenpy: "Custom Domains" (docs/zenpy.rst): ZENPY_FORCE_NETLOC / ZENPY_FORCE_SCHEME.
    os.environ["ZENPY_FORCE_NETLOC"] = urlsplit(zd.base_url).netloc
    os.environ["ZENPY_FORCE_SCHEME"] = "http"
    zcreds = zd.credentials()
    zenpy = Zenpy(subdomain="cxbridge-sandbox", email=zcreds["email"], token=zcreds["api_token"], disable_cache=True)
    jcreds = jr.credentials()
    jira = JIRA(jr.base_url, basic_auth=(jcreds["email"], jcreds["api_token"]))
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


def escalate(c: Clients, ticket_id: int, *, note: str, link_key: str | None = None) -> str:
    """One escalation (or a join of ``link_key``) the SDK way; returns the issue key."""
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
        if customer.get("contact_id"):
            _crm_note(c, customer, f"<p>Escalated Zendesk #{ticket_id} to engineering: {issue.key}</p>")
    return str(issue.key)


def sync_transition(c: Clients, issue_key: str, status: str) -> int:
    """Sync one transition back the SDK way: a note on every linked ticket, one CRM note per company.

    The webhook carries the issue's new status, so the issue is not read again. Without cxbridge's store the
    linked tickets are found from the issue's remote links (``jira.remote_links``); each ticket is read and gets
    its internal note through a ticket update (zenpy's documented way to comment); the CRM company of each
    distinct requester is found (``users(id=)``, contact search, its company association) and gets one note.
    Returns the number of tickets noted.
    """
    from zenpy.lib.api_objects import Comment

    noted = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        links = c.jira.remote_links(issue_key)
        prefix = f"{c.zendesk_base}/agent/tickets/"
        linked = [str(link.object.url)[len(prefix) :] for link in links if str(link.object.url).startswith(prefix)]
        requesters: dict[int, None] = {}
        for tid in linked:
            ticket = c.zenpy.tickets(id=int(tid))
            ticket.comment = Comment(body=f"Engineering moved {issue_key} to {status}.", public=False)
            c.zenpy.tickets.update(ticket)
            noted += 1
            requesters[ticket.requester_id] = None
        companies: dict[str, dict[str, Any]] = {}
        for requester_id in requesters:
            customer = _customer_light(c, c.zenpy.users(id=requester_id).email)
            if customer.get("company_id"):
                companies.setdefault(customer["company_id"], customer)
        for customer in companies.values():
            _crm_note(c, {"company_id": customer["company_id"]}, f"<p>{issue_key} moved to {status}</p>")
    return noted


def _customer_light(c: Clients, email: str) -> dict[str, Any]:
    """The contact and its company only (no deals): what a note needs."""
    from hubspot.crm.contacts import Filter, FilterGroup, PublicObjectSearchRequest

    hs = c.hubspot
    found = hs.crm.contacts.search_api.do_search(
        public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="email", operator="EQ", value=email)])],
            properties=["email"],
            limit=1,
        )
    )
    if not found.results:
        return {}
    contact_id = found.results[0].id
    companies = hs.crm.associations.v4.basic_api.get_page("contacts", contact_id, "companies", limit=500)
    company_id = str(companies.results[0].to_object_id) if companies.results else None
    return {"contact_id": contact_id, "company_id": company_id}
