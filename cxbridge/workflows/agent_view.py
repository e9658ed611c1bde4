"""What an agent sees from a ticket, in one answer: links, issues, customer, impact, failure, grants, audit.

The agent API (``cxbridge serve``'s ``/agent/...``) answers a sidebar app with ``ticket_view``; the decisions
it offers come from ``grants_for``, which evaluates the configured rules for each action the way
``Policies.decide`` does, without a value: what the agent may decide at once, up to what, under which rule, or
why not and which rule would allow it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import CxbridgeError
from ..models import Customer, Issue, Person, Ticket
from .context import Context
from .impact import load_rollup
from .policy import ACTIONS, PRIORITY_ORDER, Policies, audit_rows, policies_for, rule_context

RECENT_AUDIT = 20
"""How many of the ticket's latest audit rows the view carries."""


@dataclass(frozen=True)
class ActionGrant:
    """What one agent may decide for one action on one ticket: allowed, up to what, under which rule, or why not."""

    action: str
    allowed: bool
    summary: str
    rule: str | None = None
    credit_max: str | None = None
    currency: str | None = None
    priorities: tuple[str, ...] = ()
    why_not: str | None = None
    would_allow: str | None = None
    rules: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (amounts as exact strings)."""
        return {
            "action": self.action,
            "allowed": self.allowed,
            "summary": self.summary,
            "rule": self.rule,
            "credit_max": self.credit_max,
            "currency": self.currency,
            "priorities": list(self.priorities),
            "why_not": self.why_not,
            "would_allow": self.would_allow,
        }


def grants_for(policies: Policies, ticket: Ticket, customer: Customer, agent: Person) -> list[ActionGrant]:
    """For each action, the widest grant among the rules whose condition holds for this agent, ticket and customer.

    A credit is the largest ``credit_max`` (of the first such rule's currency); a priority, the highest
    ``priority_max`` with the names up to it; a switch, whether any applying rule grants it. When no applying
    rule grants an action, ``why_not`` names the first rule that grants it and why its condition did not hold.
    """
    context = rule_context(ticket, customer, policies.agent_context(agent.email, agent.name))
    outcomes = [(rule, rule.evaluate(context)) for rule in policies.rules]
    grants: list[ActionGrant] = []
    for action in ACTIONS:
        granting = [rule for rule, outcome in outcomes if outcome.applies and rule.grant.grants(action)]
        if not granting:
            candidate = next(((r, o) for r, o in outcomes if r.grant.grants(action)), None)
            words = action.replace("_", " ")
            if candidate is None:
                why, would = f"no rule grants {words}", None
            else:
                rule, outcome = candidate
                state = {"false": "its condition is false", "undefined": "its condition is undefined"}.get(
                    outcome.state, "its condition failed"
                )
                why, would = f"rule {rule.name} ({rule.grant.describe(action)}) would allow it, but {state}", rule.name
            grants.append(ActionGrant(action, False, f"no {words}", why_not=why, would_allow=would))
            continue
        if action == "credit":
            currency = granting[0].grant.currency
            same = [r for r in granting if r.grant.currency == currency]
            best = max(same, key=lambda r: r.grant.credit_max or 0)
            grants.append(
                ActionGrant(
                    action,
                    True,
                    best.grant.describe(action),
                    rule=best.name,
                    credit_max=f"{best.grant.credit_max:f}" if best.grant.credit_max is not None else None,
                    currency=currency,
                    rules=tuple(r.name for r in granting),
                )
            )
        elif action == "priority":
            best = max(granting, key=lambda r: PRIORITY_ORDER.index(r.grant.priority_max or "Lowest"))
            top = PRIORITY_ORDER.index(best.grant.priority_max or "Lowest")
            grants.append(
                ActionGrant(
                    action,
                    True,
                    best.grant.describe(action),
                    rule=best.name,
                    priorities=PRIORITY_ORDER[: top + 1],
                    rules=tuple(r.name for r in granting),
                )
            )
        else:
            first = granting[0]
            grants.append(
                ActionGrant(
                    action, True, first.grant.describe(action), rule=first.name, rules=tuple(r.name for r in granting)
                )
            )
    return grants


def _issue_dict(issue: Issue | None, key: str, error: str | None) -> dict[str, Any]:
    if issue is None:
        return {"key": key, "url": None, "status": None, "error": error}
    return {
        "key": issue.key,
        "url": issue.url,
        "summary": issue.summary,
        "status": issue.status,
        "status_category": issue.status_category,
        "priority": issue.priority,
        "assignee": issue.assignee,
        "fix_versions": list(issue.fix_versions),
        "error": None,
    }


def letter_subject(payload: Mapping[str, Any]) -> str | None:
    """The record a dead job was about: its signal's ticket or issue, or its event's subject (``system:kind:id``)."""
    signal = payload.get("signal")
    if isinstance(signal, Mapping):
        subject = signal.get("ticket") or signal.get("issue")
        return str(subject) if subject else None
    event = payload.get("event")
    if isinstance(event, Mapping) and event.get("subject"):
        return str(event["subject"])
    return None


def last_failure(rt: Context, ticket_key: str) -> dict[str, Any] | None:
    """The latest dead letter of a ticket's jobs not replayed since (an escalation that failed for good), or None."""
    letters = [d for d in rt.store.dead_letters() if letter_subject(d.payload) == ticket_key and not d.replayed]
    if not letters:
        return None
    letter = letters[-1]
    return {
        "id": letter.id,
        "kind": letter.kind,
        "error": letter.error,
        "attempts": letter.attempt,
        "at": datetime.fromtimestamp(letter.created_at, UTC).isoformat(timespec="seconds"),
    }


def customer_dict(customer: Customer) -> dict[str, Any]:
    """The customer as the sidebar shows it (money as an exact string)."""
    return {
        "known": customer.known,
        "name": customer.name,
        "domain": customer.domain,
        "tier": customer.tier,
        "arr": f"{customer.arr:f}" if customer.arr is not None else None,
        "currency": customer.currency,
        "renewal_date": customer.renewal_date,
        "owner": customer.owner,
    }


def ticket_view(rt: Context, ticket_id: str, agent: Person, *, helpdesk: str | None = None) -> dict[str, Any]:
    """Everything a helpdesk sidebar shows for one ticket and one agent, in one answer.

    Reads the ticket and its customer (as ``policy check`` does) and each linked issue from the tracker (one
    call per link); links, impact, dead letters and audit come from the store. A CRM or tracker that does not
    answer leaves its part empty with an ``error`` (the ticket's own helpdesk failing fails the view).
    """
    ticket = rt.helpdesk(helpdesk).get_ticket(ticket_id)
    customer, customer_error = Customer.unknown(), None
    crm = rt.crm()
    email = ticket.requester.email if ticket.requester else None
    if crm is not None and email:
        try:
            customer = crm.find_customer(email)
        except CxbridgeError as exc:  # the sidebar still shows the ticket, its links and the grants
            customer_error = f"the CRM did not answer: {exc}"
    tracker = rt.tracker()
    issues: list[dict[str, Any]] = []
    for link in rt.store.links_for_ticket(ticket.ref):
        issue: Issue | None = None
        error = None
        try:
            issue = tracker.get_issue(link.issue_key)
        except CxbridgeError as exc:
            error = f"the tracker did not answer for {link.issue_key}: {exc}"
        row = _issue_dict(issue, link.issue_key, error)
        if row["url"] is None:
            row["url"] = tracker.issue_url(link.issue_key)
        row["linked_by"] = link.linked_by
        row["linked_at"] = link.linked_at.isoformat(timespec="seconds") if link.linked_at else None
        row["impact"] = load_rollup(rt, rt.store.links_for_issue(link.issue)).as_dict()
        issues.append(row)
    policies = policies_for(rt)
    entries = rt.store.audit_entries(ticket=ticket.ref)
    return {
        "ticket": {
            "id": ticket.ref.id,
            "ref": str(ticket.ref),
            "url": ticket.url,
            "subject": ticket.subject,
            "status": ticket.status,
            "priority": ticket.priority,
        },
        "agent": {
            "email": agent.email,
            "name": agent.name,
            "known": policies.agent_context(agent.email, agent.name)["known"],
        },
        "customer": {**customer_dict(customer), "error": customer_error},
        "links": issues,
        "failure": last_failure(rt, str(ticket.ref)),
        "grants": [g.as_dict() for g in grants_for(policies, ticket, customer, agent)],
        "audit": list(audit_rows(entries[-RECENT_AUDIT:]))[::-1],
    }
