"""Bring over the ticket-issue links of the helpdesk's own tracker integration (``cxbridge import-links``).

Teams that used the helpdesk's built-in tracker integration (Zendesk's Jira integration) already have links.
``import_links`` reads them (``Helpdesk.integration_links``) and records each as a cxbridge link, as a join by
an agent would: the customer found in the CRM, the store's link, a remote link from the issue to the ticket
(through the intent protocol, the same operation as an escalation's), an audit row (``import.link``, which
counts as a complete escalation, so a later event on the ticket does not escalate it again), and the impact of
every issue concerned written once at the end.

Idempotent: a link the store holds already is not recorded again and writes nothing; a run cut short is
finished by the next (the remote link is written before the store's link, and every issue's impact is
re-checked, writing only where it differs). ``dry_run`` reads the links and writes nothing.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, NotFound
from ..http.counter import tallies_calls
from ..models import Link
from . import impact
from .escalate import Escalation
from .once import op_id, write_once

if TYPE_CHECKING:
    from ..connectors import TicketLink, Tracker
    from .context import Context

log = logging.getLogger(__name__)

IMPORT_ACTION = "import.link"
"""The audit action of an imported link."""


@dataclass
class ImportReport:
    """What ``import_links`` found and did, link by link (``outcome``: imported, already linked, planned, or why
    it was skipped), and the impacts it wrote."""

    helpdesk: str
    dry_run: bool
    links: list[dict[str, Any]] = field(default_factory=list)
    impact: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        """How many links ended with this outcome."""
        return sum(1 for row in self.links if row["outcome"] == outcome)

    def as_dict(self) -> dict[str, Any]:
        return {
            "helpdesk": self.helpdesk,
            "dry_run": self.dry_run,
            "links": self.links,
            "impact": self.impact,
            "calls": self.calls,
        }


@tallies_calls
def import_links(
    rt: Context, *, helpdesk: str | None = None, dry_run: bool = False, actor: str = "cli"
) -> ImportReport:
    """Record the helpdesk integration's links as cxbridge links (see the module docstring)."""
    desk = rt.helpdesk(helpdesk)
    if not desk.supports("integration_links"):
        raise ConfigError(f"import-links: {desk.name} has no tracker integration whose links cxbridge can read")
    tracker = rt.tracker()
    report = ImportReport(helpdesk=desk.name, dry_run=dry_run)
    issues: dict[str, None] = {}  # the keys of the issues concerned, in order
    escalation = Escalation(rt)
    for found in desk.integration_links():
        ticket_ref = desk.ticket_ref(found.ticket_id)
        row: dict[str, Any] = {
            "ticket": str(ticket_ref),
            "issue_key": found.issue_key,
            "issue_id": found.issue_id,
            "link_id": found.link_id,
        }
        report.links.append(row)
        linked = [
            link
            for link in rt.store.links_for_ticket(ticket_ref)
            if link.issue.id == found.issue_id or link.issue_key == found.issue_key
        ]
        if linked:
            row["outcome"] = "already linked"
            if not dry_run:
                issues[linked[0].issue_key] = None
            continue
        if dry_run:
            row["outcome"] = "planned"
            continue
        try:
            ticket = desk.get_ticket(found.ticket_id)
        except NotFound:
            row["outcome"] = "skipped: the ticket no longer exists"
            continue
        try:
            issue = tracker.get_issue(found.issue_id)
        except NotFound:
            row["outcome"] = "skipped: the issue no longer exists"
            continue
        customer = escalation.customer_for(ticket)
        impact.save_customer(rt, customer)
        impact.save_ticket(rt, ticket, customer)
        business_key = str(ticket.ref)
        remote = impact.ticket_link(
            rt,
            ticket.ref,
            url=ticket.url,
            title=impact.link_title(ticket.ref, ticket.subject),
            summary=customer.name if customer.known else None,
            resolved=desk.ticket_closed(ticket.status),
        )
        write_once(
            rt.store,
            op_id(f"{business_key}|{issue.ref}", "tracker.remotelink"),
            "tracker.remotelink",
            business_key,
            functools.partial(_link_once, tracker, issue.key, remote),
        )
        rt.store.add_link(
            Link(
                ticket=ticket.ref,
                issue=issue.ref,
                issue_key=issue.key,
                customer=customer.company_ref if customer.known else None,
                linked_by=f"import-links ({desk.name} integration)",
                origin_event=f"{desk.name}:integration-link:{found.link_id}" if found.link_id else None,
            )
        )
        rt.store.audit(
            actor=actor,
            action=IMPORT_ACTION,
            target=str(issue.ref),
            result="ok",
            ticket=ticket.ref,
            issue_key=issue.key,
            details={"link_id": found.link_id, "customer": customer.name, "match": customer.match},
        )
        row["outcome"] = "imported"
        row["customer"] = customer.name if customer.known else None
        issues[issue.key] = None
    for key in issues:
        report.impact[key] = "written" if impact.refresh_by_key(rt, key) else "unchanged"
    return report


def _link_once(tracker: Tracker, issue_key: str, remote: TicketLink) -> dict[str, Any]:
    """The remote link write, as ``write_once`` records its result."""
    return {"id": tracker.link_ticket(issue_key, remote)}
