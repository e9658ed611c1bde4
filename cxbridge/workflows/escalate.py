"""Escalate a ticket into the tracker, as recovery points, so that a rerun or a crash never repeats an effect.

Steps (DESIGN section 7): read the ticket; resolve the customer in the CRM; decide and choose the priority;
render the handoff; create the issue (intent row first, a searchable label on it) or join an existing one;
remote link from the issue to the ticket; internal note, tag and key on the ticket; note on the CRM timeline;
audit row. Each external write has an intent keyed by a deterministic operation id, so a rerun skips what is
done and reconciles what is uncertain.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from ..connectors import CRM, Helpdesk, IssueSpec
from ..errors import (
    AmbiguousOutcome,
    BadReference,
    ConfigError,
    CxbridgeError,
    EffectInFlight,
    NotFound,
    VendorError,
)
from ..http.counter import tallies_calls
from ..models import Comment, Customer, Issue, Link, Person, Ref, Ticket, to_jsonable
from ..store import AuditRow, Intent, Store
from ..store.base import Fold
from . import fieldmap, impact, policy
from .context import Context
from .once import (
    audit_done,
    audit_kept,
    check_lease,
    claim_send,
    crm_note_once,
    in_flight_elsewhere,
    marker_for,
    op_id,
    runner_id,
    side_by_side,
    write_once,
)
from .priority import Priority, choose_priority
from .relay import Relay

log = logging.getLogger(__name__)

LABEL_PREFIX = "cxb-"
ESCALATED_LABEL = "cxbridge"
PROPERTY_KEY = "cxbridge"


class CreateRefused(ConfigError):
    """The tracker would refuse the create (a required field not filled, a mapped value it cannot take): said
    before any write, naming the field, so the admin maps it in ``[escalation.fields]``."""


class EscalationPending(CxbridgeError):
    """The tracker did not confirm an earlier create; cxbridge searches for it before creating again.

    ``retry_at`` (the store's clock) is when the search grace has passed and the create may be made again: a
    worker re-queues the job for then, waiting rather than failing.
    """

    def __init__(self, message: str, *, retry_at: float | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class IssueKeyRejected(CxbridgeError):
    """The issue key an agent gave (typed into the ticket, or ``--link``) names no issue the tracker shows
    cxbridge: it does not exist, or cxbridge's account cannot read it. Raised before anything is written;
    permanent (the agent must correct the key)."""

    def __init__(self, key: str, tracker: str, reason: str) -> None:
        super().__init__(f"{key} {reason} in {tracker}")
        self.key = key
        self.tracker = tracker
        self.reason = reason


@dataclass
class EscalationRequest:
    """What an agent asked for: the ticket, and optionally an issue to join, a summary and a note."""

    ticket_id: str
    link_key: str | None = None
    project: str | None = None
    summary: str | None = None
    note: str | None = None
    agent: Person | None = None
    origin_event: str | None = None
    actions: list[policy.ActionRequest] = field(default_factory=list)
    """What the agent decides on the spot (priority, credit, skip triage...), checked against the policies."""
    helpdesk: str | None = None
    """The ``[systems.*]`` name holding the ticket; default ``[escalation] helpdesk``."""
    requester_hint: str | None = None
    """The requester's email as the request carried it (a webhook body): the customer lookup starts with it beside
    the ticket read. The ticket stays the truth: when its requester's email is another, the lookup is redone."""
    ticket: Ticket | None = None
    """The ticket already read in full (a poll's complete record, ``Ticket.complete``): not read again."""


@dataclass
class EscalationResult:
    """What happened: the issue, whether it was created or joined, what was written, the calls made."""

    ticket: Ref
    issue_key: str
    issue_url: str
    issue_ref: Ref | None
    created: bool
    customer: Customer
    priority: Priority
    handoff: dict[str, str]
    writes: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    planned: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ticket": str(self.ticket),
            "issue_key": self.issue_key,
            "issue_url": self.issue_url,
            "issue_id": self.issue_ref.id if self.issue_ref else None,
            "outcome": "dry-run" if self.dry_run else ("created" if self.created else "linked"),
            "customer": to_jsonable(self.customer),
            "priority": {"value": self.priority.value, "reason": self.priority.reason},
            "writes": self.writes,
            "calls": self.calls,
            "planned": self.planned,
        }


@functools.lru_cache(maxsize=1024)
def _create_op_id(business_key: str) -> str:
    """``op_id(business_key, "tracker.create")``, kept: an escalation needs it four times (label, intent read,
    issue property, create), and a uuid5 is a hash and an object each time."""
    return op_id(business_key, "tracker.create")


def issue_label(business_key: str) -> str:
    """The searchable label an escalation puts on the issue it creates (the marker for reconciliation)."""
    return LABEL_PREFIX + _create_op_id(business_key)[:13].replace("-", "")


ESCALATION_ACTIONS = ("escalate.create", "escalate.link", "import.link")


def ticket_record(helpdesk: Helpdesk, ticket_id: str, record: Ticket | None = None) -> Ticket:
    """The ticket: ``record`` when it is complete (``Ticket.complete``: a poll's export carried everything a read
    returns) and names this very ticket, else read from the helpdesk."""
    if record is not None and record.complete and record.ref == helpdesk.ticket_ref(ticket_id):
        return record
    return helpdesk.get_ticket(ticket_id)


def completed_escalation(store: Store, ticket: Ref) -> Link | None:
    """The ticket's (first) link when its escalation ran to its end: linked, and audited (the last step) since.

    A link alone is not enough: a job re-queued after the link was stored (a rate limit on the ticket update)
    still has the ticket note, the CRM note and the audit row to write, and must run again (None then).
    """
    links = store.links_for_ticket(ticket)
    if not links:
        return None
    # audited in this very job: its rows wait for the job's completion (``once.audit_done``), after its links
    if any(row.action in ESCALATION_ACTIONS and row.ticket == ticket for row in audit_kept()):
        return links[0]
    since = max((link.linked_at.timestamp() for link in links if link.linked_at is not None), default=0.0)
    audited = any(e.action in ESCALATION_ACTIONS and e.at >= since for e in store.audit_entries(ticket=ticket))
    return links[0] if audited else None


MATCH_TEXTS = {
    "email": "a CRM contact with the requester's email",
    "email_domain": "the requester's email domain",
    "organization_domain": "the helpdesk organization's domain",
    "organization_name": "the helpdesk organization's name",
}
"""How the handoff says the customer was found (``customer.match_text``), by ``Customer.match``."""


def _match_text(customer: Customer, ticket: Ticket) -> str | None:
    """``customer.match`` in words, with the value that matched (``the requester's email domain (acme.example)``)."""
    if not customer.known or customer.match is None:
        return None
    text = MATCH_TEXTS.get(customer.match, customer.match)
    if customer.match == "organization_name" and ticket.organization:
        return f"{text} ({ticket.organization})"
    if customer.match in ("email_domain", "organization_domain") and customer.domain:
        return f"{text} ({customer.domain})"
    return text


class CustomerLookups:
    """The CRM's answers to one escalation's customer lookups, by the question asked: a lookup begun from the
    request's hint and done again from the ticket asks the CRM nothing twice. Each answer is handed out as a copy
    (the lookup marks how it matched on it)."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        self._answers: dict[tuple[str, str], Customer] = {}

    def customer(self, email: str) -> Customer:
        """``CRM.find_customer(email)``, asked once."""
        key = ("email", email)
        if key not in self._answers:
            self._answers[key] = self.crm.find_customer(email)
        return copy.copy(self._answers[key])

    def company(self, kind: str, value: str) -> Customer:
        """``CRM.find_company(domain=...)`` or ``(name=...)``, asked once."""
        key = (kind, value)
        if key not in self._answers:
            self._answers[key] = self.crm.find_company(**{kind: value})
        return copy.copy(self._answers[key])


ORGANIZATION_MATCHES = frozenset({"organization_domain", "organization_name"})
"""The ``customer_match`` ways that need the ticket's organization (the others need only the requester's email)."""


def _age(created: datetime | None, now: datetime) -> str:
    if created is None:
        return "age unknown"
    delta = now - created
    days = delta.days
    if days >= 1:
        return f"{days} day{'s' if days != 1 else ''} old"
    hours = delta.seconds // 3600
    return f"{hours} hour{'s' if hours != 1 else ''} old"


class Escalation:
    """Runs one escalation against the configured helpdesk, CRM and tracker."""

    def __init__(
        self,
        runtime: Context,
        *,
        crash_hook: Callable[[str], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.rt = runtime
        self.crash_hook = crash_hook
        # the store stamps the intents' ``sent_at``: the grace is measured on the same clock by default
        self.clock: Callable[[], float] = clock or runtime.store.clock
        self.settings = runtime.config.section("escalation")

    def _point(self, name: str) -> None:
        """A recovery point: tests crash here to prove a rerun resumes without repeating an effect."""
        if self.crash_hook is not None:
            self.crash_hook(name)

    # -- reading ---------------------------------------------------------------------------------------------
    def _history(self, req: EscalationRequest, ticket: Ticket) -> list[Comment] | None:
        """The ticket's comments, or None when the agent's ``--note`` makes them unnecessary.

        The customer's own words are the ticket's description (its first comment); the comments are read only
        to find support's latest internal note, so an agent who writes the note saves that call.
        """
        if req.note and ticket.description:
            return None
        return self.rt.helpdesk(req.helpdesk).list_comments(ticket.ref.id)

    def customer_for(self, ticket: Ticket, lookups: CustomerLookups | None = None) -> Customer:
        """The customer in the CRM, looked for in the ``[escalation] customer_match`` order until a company matches.

        ``email``: the contact with the requester's email (with its company); ``email_domain``: the company whose
        domain is the email's (never a ``free_mail_domains`` one); ``organization_domain`` / ``organization_name``:
        the company by the helpdesk organization's domains or name. A contact without a company is kept and the
        company looked for by the next ways; ``Customer.match`` says which way found it. ``lookups`` holds the
        answers of a lookup begun earlier from the request's hint (``customer_from_hint``): they are not asked again.
        """
        crm = self.rt.crm()
        if crm is None:
            return Customer.unknown()
        email = (ticket.requester.email if ticket.requester else None) or ""
        return self._find_customer(lookups or CustomerLookups(crm), email, ticket) or Customer.unknown()

    def customer_from_hint(self, email: str, lookups: CustomerLookups) -> None:
        """Ask the CRM, with only the requester's email the request carried, what ``customer_for`` will ask first:
        its ways in order up to the first that needs the ticket's organization. The answers stay in ``lookups``
        for ``customer_for``, which decides from the ticket. A vendor error here is left for that lookup to meet
        (it asks again what was not answered), so a wrong hint never fails an escalation."""
        try:
            self._find_customer(lookups, email, None)
        except VendorError as exc:
            log.debug("the customer lookup from the request's hint stopped: %s", exc)

    def _find_customer(self, lookups: CustomerLookups, email: str, ticket: Ticket | None) -> Customer | None:
        """``customer_for``'s search; without the ticket (a hint) it stops, returning None, at the first way that
        needs the organization."""
        email = email.strip()
        free = {str(d).lower() for d in self.settings["free_mail_domains"]}
        email_domain = email.rpartition("@")[2].lower() if "@" in email else ""
        by_company = lookups.crm.supports("find_company")
        contact: Customer | None = None
        tried: set[str] = set()
        for how in self.settings["customer_match"]:
            if how == "email":
                if not email:
                    continue
                found = lookups.customer(email)
                if not found.known:
                    continue
                found.match = "email"
                if found.company_ref is not None:
                    return found
                contact = found
                continue
            if not by_company:
                continue
            if how in ORGANIZATION_MATCHES and ticket is None:
                return None
            if how == "organization_name":
                name = ((ticket.organization if ticket else None) or "").strip()
                candidates = [("name", name)] if name else []
            else:
                domains = [email_domain] if how == "email_domain" else (ticket.organization_domains if ticket else [])
                candidates = [("domain", d.strip().lower()) for d in domains if d and d.strip()]
            for kind, value in candidates:
                if (kind == "domain" and value in free) or f"{kind}:{value}" in tried:
                    continue
                tried.add(f"{kind}:{value}")
                found = lookups.company(kind, value)
                if found.known and found.company_ref is not None:
                    found.match = how
                    if contact is not None:  # the contact's timeline gets the note too
                        found.contact_ref, found.lifecycle_stage = contact.contact_ref, contact.lifecycle_stage
                    return found
        return contact

    def context(
        self,
        req: EscalationRequest,
        ticket: Ticket,
        comments: list[Comment] | None,
        customer: Customer,
        priority: Priority,
        issue: dict[str, Any],
        decisions: list[policy.Decision] | None = None,
    ) -> dict[str, Any]:
        """The template context: only allowlisted fields of the ticket and the customer cross into it."""
        now = datetime.now(UTC)
        first = next((c for c in comments or [] if c.public), None)
        internal = [c for c in comments or [] if not c.public]
        if req.note:
            summary, source = req.note, "the escalating agent's note"
        elif internal:
            summary, source = internal[-1].body, "the ticket's latest internal note"
        else:
            summary, source = None, None
        requester = ticket.requester or Person()
        context: dict[str, Any] = {
            "summary": req.summary or ticket.subject,
            "ticket": {
                "system": ticket.ref.system.capitalize() if ticket.ref.system.islower() else ticket.ref.system,
                "id": ticket.ref.id,
                "url": ticket.url,
                "subject": ticket.subject,
                "status": self.rt.helpdesk(req.helpdesk).status_name(ticket.status) or ticket.status,
                "priority": ticket.priority,
                "tags": list(ticket.tags),
                "created_at": ticket.created_at.strftime("%Y-%m-%d %H:%M UTC") if ticket.created_at else None,
                "age": _age(ticket.created_at, now),
                "requester": {"name": requester.name, "email": requester.email},
                "organization": ticket.organization,
            },
            "customer": {
                "known": customer.known,
                "name": customer.name,
                "domain": customer.domain,
                "tier": customer.tier,
                "arr": customer.arr,
                "currency": customer.currency,
                "owner": customer.owner,
                "owner_email": customer.owner_email,
                "match": customer.match,
                "match_text": _match_text(customer, ticket),
                "renewal_date": customer.renewal_date,
                "lifecycle_stage": customer.lifecycle_stage,
                "deals": [
                    {
                        "name": d.name,
                        "stage": d.stage,
                        "amount": d.amount,
                        "currency": d.currency,
                        "close_date": d.close_date,
                    }
                    for d in customer.deals
                ],
            },
            "first_comment": first.body if first else ticket.description,
            "agent_summary": summary,
            "agent_summary_source": source,
            "history": None
            if comments is None
            else [
                {
                    "public": c.public,
                    "author": c.author.name if c.author else None,
                    "created_at": c.created_at.isoformat() if c.created_at else None,
                }
                for c in comments
            ],
            "priority": {"value": priority.value, "reason": priority.reason},
            "decisions": [d.as_dict() for d in decisions or []],
            "agent": {
                "name": req.agent.name if req.agent else None,
                "email": req.agent.email if req.agent else None,
            },
            "issue": issue,
        }
        context.update(self.rt.handoff_context(context))
        return context

    # -- the workflow ----------------------------------------------------------------------------------------
    @tallies_calls
    def run(self, req: EscalationRequest, *, dry_run: bool = False) -> EscalationResult:
        """Escalate (or, with ``dry_run``, render and plan without writing anything); ``calls`` on the result
        counts this run's calls only."""
        helpdesk = self.rt.helpdesk(req.helpdesk)
        tracker = self.rt.tracker()
        crm = self.rt.crm()

        # 1-2. the ticket, with its requester and organization, then what needs only the ticket, side by side: the
        # customer, the comments (for support's latest note) and the issue an agent named (to join it). When the
        # request carries the requester's email, the customer lookup begins beside the ticket read itself (the
        # ticket then decides: its requester's email, its organization)
        store = self.rt.store
        lookups = CustomerLookups(crm) if crm is not None else None
        hint = (req.requester_hint or "").strip() if lookups is not None else ""

        def read_ticket() -> tuple[Ticket, list[Link], Link | None, dict[str, Any]]:
            ticket = ticket_record(helpdesk, req.ticket_id, req.ticket)
            current = store.links_for_ticket(ticket.ref)
            moving_from = self._typed_move(req, helpdesk, ticket, current)
            reads: dict[str, Callable[[], Any]] = {}
            if not hint:
                reads["customer"] = lambda: self.customer_for(ticket, lookups)
            if not (req.note and ticket.description):
                reads["comments"] = lambda: self._history(req, ticket)
            if req.link_key and not dry_run:  # an issue key the agent gave must name an issue cxbridge can read
                key = req.link_key
                reads["issue"] = lambda: self._issue_or_refusal(tracker, key)
            return ticket, current, moving_from, dict(zip(reads, side_by_side(*reads.values()), strict=True))

        if hint and lookups is not None:
            hinted = lookups
            (ticket, current, moving_from, read), _ = side_by_side(
                read_ticket, lambda: self.customer_from_hint(hint, hinted)
            )
            customer = self.customer_for(ticket, lookups)  # the hint's answers, unless the ticket says otherwise
        else:
            ticket, current, moving_from, read = read_ticket()
            customer = read["customer"]
        comments: list[Comment] | None = read.get("comments")
        business_key = str(ticket.ref)
        label = issue_label(business_key)
        # read once here, used again by the create: an earlier create's intent, else the ticket's links
        create_intent = None if req.link_key else store.get_intent(_create_op_id(business_key))
        linked = current if not req.link_key and create_intent is None else []
        # 3. decision rights and priority
        priority = choose_priority(
            customer.tier,
            ticket.priority,
            table=self.settings["priority"],
            default_tier=self.settings["default_tier"],
        )
        try:
            priority, decisions = policy.decide_for_escalation(
                self.rt, req.actions, req.agent, ticket, customer, priority
            )
        except policy.PolicyRefused as exc:
            if not dry_run:  # a refusal is a decision too: the trail shows it, as it does for ``act``
                refused = exc.decision
                self.rt.store.audit(
                    actor=refused.agent or "agent",
                    action=f"decision.{refused.action}",
                    target=str(ticket.ref),
                    result="refused",
                    policy=refused.rule,
                    origin_event=req.origin_event,
                    ticket=ticket.ref,
                    issue_key=req.link_key,
                    details=refused.as_dict(),
                )
            raise
        project = req.project or tracker.config.get("project")
        # an issue key the agent gave must name an issue cxbridge can read, before anything is written
        joined: Issue | IssueKeyRejected | None = read.get("issue")
        if isinstance(joined, IssueKeyRejected):
            raise joined
        # 4. render everything before any write: a broken template stops here
        provisional: dict[str, Any] = {
            "key": req.link_key or f"{project}-?",
            "url": tracker.issue_url(req.link_key or f"{project}-?"),
            "created": not req.link_key,
        }
        before_ctx = self.context(req, ticket, comments, customer, priority, provisional, decisions)
        handoff = self.rt.handoff.render_all(before_ctx)
        result = EscalationResult(
            ticket=ticket.ref,
            issue_key=provisional["key"],
            issue_url=provisional["url"],
            issue_ref=None,
            created=not req.link_key,
            customer=customer,
            priority=priority,
            handoff=handoff,
        )
        spec: IssueSpec | None = None
        if not req.link_key:
            spec = self._issue_spec(
                tracker, business_key, label, project, handoff, req, ticket, customer, priority, decisions
            )
        if spec is not None and not linked and not (create_intent is not None and create_intent.state == "done"):
            # a create may be made: fill the mapped fields and check the create screen before any write
            problems = tracker.prepare_create(spec)
            if problems:
                raise CreateRefused(
                    f"{tracker.name}: an issue for {ticket.ref} cannot be created in {project} "
                    f"({spec.issue_type}): {'; '.join(problems)}. Fill it through [escalation.fields]; "
                    "nothing was written"
                )
        if dry_run:
            result.dry_run = True
            result.planned = self._plan(req, ticket, customer, crm is not None, project, label, moving_from)
            return result

        if moving_from is not None:
            # the ticket leaves the issue its key field named before: remote link, store link and impact there
            moved = impact.unlink(self.rt, ticket.ref, moving_from.issue_key, actor=self._actor(req))
            result.writes["moved_from"] = f"{moved.issue_key} (remote link {moved.remote_link}, impact {moved.impact})"
            self._point("moved")

        with store.snapshots_together():  # the customer's and the ticket's snapshots: one transaction
            impact.save_customer(self.rt, customer)
            saved = impact.save_ticket(self.rt, ticket, customer)

        # 5. the issue: join, or create exactly once (a new issue carries its impact from birth); then the link
        def link_to(issue: Issue) -> tuple[Link, Fold]:
            """The ticket's link to ``issue``, and its fold into the issue's aggregate."""
            link = Link(
                ticket=ticket.ref,
                issue=issue.ref,
                issue_key=issue.key,
                customer=customer.company_ref,
                linked_by=(req.agent.email or req.agent.name) if req.agent else None,
                origin_event=req.origin_event,
            )
            return link, impact.link_fold(self.rt, link, saved)

        if joined is not None:
            issue = joined
            created = stored = False
        else:
            assert spec is not None  # built above whenever no issue is named
            issue, created, stored = self._create_issue(
                tracker, business_key, create_intent, linked, label, spec, ticket, link_to
            )
        self._point("issue")
        if not stored:  # a create recorded its link with its outcome (one transaction); a join links here
            link, fold = link_to(issue)
            store.add_link(link, fold=fold)  # the issue's aggregate, in one transaction
        result.issue_key, result.issue_url, result.issue_ref, result.created = (
            issue.key,
            issue.url,
            issue.ref,
            created,
        )
        result.writes["issue"] = "created" if created else "linked"
        self._point("link")

        # 6-8. the writes that need only the issue go out side by side, each under its own intent: on the tracker
        # (one system, in order), a joined issue's impact and its reopening, the remote link from the issue to the
        # ticket, then the attachments of the ticket's first message; note, tag and key on the ticket (re-rendered
        # with the real issue); the note on the CRM timeline
        issue_ctx = {"key": issue.key, "url": issue.url, "created": created}
        ctx = self.context(req, ticket, comments, customer, priority, issue_ctx, decisions)

        def rendered(name: str) -> str:
            """A handoff template for the issue; as rendered before the writes when its context is the same (a join
            of the issue the agent named: the provisional issue was the real one)."""
            return handoff[name] if ctx == before_ctx else self.rt.handoff.render(name, ctx)

        note = rendered("helpdesk_note")

        def joined_issue() -> None:
            result.writes["impact"] = "written" if impact.refresh_issue(self.rt, issue) else "unchanged"
            self._point("impact")
            if issue.status_category == "done" and any(d.action == "reopen" and d.granted for d in decisions):
                # the agent holds the right to reopen a done issue: the customer's ticket says the bug is back
                result.writes["reopen"] = write_once(
                    store,
                    op_id(f"{business_key}|{issue.ref}", "tracker.reopen"),
                    "tracker.reopen",
                    business_key,
                    lambda: {"status": tracker.reopen(issue.key)},
                    point=self._point,
                )

        def remote_link() -> str:
            if not created:
                joined_issue()
            written = write_once(
                store,
                op_id(f"{business_key}|{issue.ref}", "tracker.remotelink"),
                "tracker.remotelink",
                business_key,
                lambda: {
                    "id": tracker.link_ticket(
                        issue.key,
                        impact.ticket_link(
                            self.rt,
                            ticket.ref,
                            url=ticket.url,
                            title=impact.link_title(ticket.ref, ticket.subject),
                            summary=customer.name if customer.known else None,
                            resolved=helpdesk.ticket_closed(ticket.status),
                        ),
                    )
                },
                point=self._point,
            )
            self._point("remote_link")
            # the attachments of the ticket's first message, when the escalation read its comments
            if comments and comments[0].attachments:
                result.writes["attachments"] = Relay(self.rt, crash_hook=self._point).upload_first_message(
                    helpdesk, ticket.ref, comments[0], issue.ref, issue.key, req.origin_event
                )
            return written

        def ticket_note() -> str:
            changed = self._record_on_ticket(helpdesk, ticket, business_key, issue, note)
            self._point("ticket")
            return "written" if changed else "unchanged"

        def crm_note() -> str:
            if crm is not None and customer.known:
                written = self._crm_note(crm, customer, business_key, issue, lambda: rendered("crm_note"))
            else:
                written = "skipped: customer unknown to the CRM" if crm else "skipped: no CRM"
            self._point("crm")
            return written

        (
            result.writes["remote_link"],
            result.writes["ticket_note"],
            result.writes["crm_note"],
        ) = side_by_side(remote_link, ticket_note, crm_note)

        # 9. audit: now, or in a worker's job with the job's completion (one transaction; ``once.audit_done``)
        audit_done(
            store,
            [
                AuditRow(
                    actor=self._actor(req),
                    action="escalate.create" if created else "escalate.link",
                    target=str(issue.ref),
                    result="ok",
                    ticket=ticket.ref,
                    issue_key=issue.key,
                    origin_event=req.origin_event,
                    details={
                        "priority": priority.value,
                        "writes": dict(result.writes),
                        "decisions": [d.as_dict() for d in decisions],
                    },
                ),
                *(
                    AuditRow(
                        actor=decision.agent or "agent",
                        action=f"decision.{decision.action}",
                        target=str(ticket.ref),
                        result="granted" if decision.granted else "refused",
                        policy=decision.rule,
                        origin_event=req.origin_event,
                        ticket=ticket.ref,
                        issue_key=issue.key,
                        details=decision.as_dict(),
                    )
                    for decision in decisions
                ),
            ],
        )
        return result

    @staticmethod
    def _issue_to_join(tracker: Any, key: str) -> Issue:
        """The issue an agent named, read; ``IssueKeyRejected`` when the tracker has none cxbridge can read."""
        try:
            return cast(Issue, tracker.get_issue(key))
        except BadReference:
            raise IssueKeyRejected(key, tracker.name, "is not an issue key") from None
        except NotFound:
            raise IssueKeyRejected(key, tracker.name, "does not exist or cannot be read by cxbridge") from None

    @classmethod
    def _issue_or_refusal(cls, tracker: Any, key: str) -> Issue | IssueKeyRejected:
        """``_issue_to_join``, its refusal returned (a read beside others: the escalation raises it after checking
        the agent's decisions, as it did when the read came then)."""
        try:
            return cls._issue_to_join(tracker, key)
        except IssueKeyRejected as exc:
            return exc

    @staticmethod
    def _actor(req: EscalationRequest) -> str:
        return (req.agent.email or req.agent.name or "agent") if req.agent else "cli"

    @staticmethod
    def _typed_move(req: EscalationRequest, helpdesk: Helpdesk, ticket: Ticket, current: list[Link]) -> Link | None:
        """Apply the issue key typed in the ticket's issue-key field; the link the ticket moves off, if any.

        The key on the ticket is what the agent wants now, so it wins over an older escalation of the same ticket
        (its create intent, its links): a key naming an issue the ticket is not linked to becomes ``link_key``.
        When the ticket is linked already, it moves: it leaves the issue it was linked to last (the one cxbridge
        recorded in the field before) and joins the typed one. A ``--link`` naming another issue keeps it joining
        that issue as well, without a move.
        """
        typed = helpdesk.requested_issue_key(ticket)
        if not typed or typed in {link.issue_key for link in current} or req.link_key not in (None, typed):
            return None
        req.link_key = typed
        return current[-1] if current else None

    def _record_on_ticket(self, helpdesk: Helpdesk, ticket: Ticket, business_key: str, issue: Issue, note: str) -> bool:
        """Note, tag and key on the ticket once, whatever its answer was; True when written now.

        The note carries the intent's marker (``(cxbridge cxb-...)``), so an attempt whose outcome is unknown
        (the intent left ``sending`` or ``ambiguous``: a crash, a lost answer) is reconciled by reading the
        ticket's comments for it before anything is sent again. The ticket may already carry the tag and the
        key because the agent typed them: only the marker makes "already there" mean "already written".
        """
        store = self.rt.store
        record_oid = op_id(f"{business_key}|{issue.ref}", "helpdesk.record")
        marker = marker_for(record_oid)
        check_lease()  # a fresh intent is begun already sending (won): the checks below are for one begun before
        won, record = store.begin_sending(
            record_oid, "helpdesk.record", business_key=business_key, payload={"marker": marker}, owner=runner_id()
        )
        if record.state == "done":
            return False
        if not won and in_flight_elsewhere(record, self.clock()):
            raise EffectInFlight(f"{ticket.ref} is already being escalated by another run; nothing was written here")
        # an earlier attempt's note carries the marker (one recorded before notes had one is judged by the tag and
        # the key, as it was written then); not on the ticket means not written: write it even if the tag is there
        first_attempt = won or record.state == "pending" or (record.payload or {}).get("marker") == marker
        if (
            not won
            and record.state in ("sending", "ambiguous")
            and first_attempt
            and any(marker in c.body for c in helpdesk.list_comments(ticket.ref.id))
        ):
            store.mark_intent(record_oid, "done", result={"changed": True, "found": marker})
            return False
        if not won and claim_send(store, record, what=f"the escalation note on {ticket.ref}") is None:
            return False  # another runner finished it meanwhile
        try:
            changed = helpdesk.record_escalation(
                ticket,
                note=f"{note.rstrip()}\n\n(cxbridge {marker})",
                tag=self.settings["tag"],
                issue_key=issue.key,
                issue_url=issue.url,
                first_attempt=first_attempt,
            )
        except BaseException:  # unknown whether it landed: release it to the next runner, which reads back
            store.mark_intent(record_oid, "ambiguous", error="ticket update not confirmed")
            raise
        self._point("ticket.sent")
        store.mark_intent(record_oid, "done", result={"changed": changed})
        return bool(changed)

    def _issue_spec(
        self,
        tracker: Any,
        business_key: str,
        label: str,
        project: str,
        handoff: dict[str, str],
        req: EscalationRequest,
        ticket: Ticket,
        customer: Customer,
        priority: Priority,
        decisions: list[policy.Decision],
    ) -> IssueSpec:
        """What a new issue is created with: the handoff, the impact from birth, the labels, the mapped fields."""
        born = impact.for_new_issue(self.rt, ticket, customer)
        return IssueSpec(
            project=project,
            issue_type=tracker.config.get("issue_type") or "Bug",
            summary=handoff["issue_summary"].strip(),
            description=handoff["issue_description"] + (("\n\n" + born.block) if born.block else ""),
            priority=priority.value,
            labels=[ESCALATED_LABEL, label, *born.labels, *policy.issue_labels(decisions)],
            fields=dict(born.fields),
            mapped=fieldmap.resolve(self.settings["fields"], ticket, customer, req.agent),
            properties={
                PROPERTY_KEY: {
                    "tickets": [str(ticket.ref)],
                    "customer": str(customer.company_ref) if customer.company_ref else None,
                    "op_id": _create_op_id(business_key),
                }
            },
        )

    def _create_issue(
        self,
        tracker: Any,
        business_key: str,
        intent: Intent | None,
        existing: list[Link],
        label: str,
        spec: IssueSpec,
        ticket: Ticket,
        link_to: Callable[[Issue], tuple[Link, Fold]],
    ) -> tuple[Issue, bool, bool]:
        """The issue of this escalation's create, made exactly once: (the issue, whether it counts as created,
        whether the ticket's link to it was stored here). The create's outcome and the link are recorded in one
        transaction (``Store.done_and_linked``): a crash before it leaves the intent ``sending``, reconciled by the
        label; after it, the rerun finds both."""
        store = self.rt.store

        def done(issue: Issue) -> tuple[Issue, bool, bool]:
            link, fold = link_to(issue)
            result = {"id": issue.ref.id, "key": issue.key, "url": issue.url}
            store.done_and_linked(oid, result, link, fold=fold)
            return issue, True, True

        oid = _create_op_id(business_key)
        # An issue this escalation's own create intent made while the escalation is not complete yet (an earlier
        # attempt of this job, a job resumed after a rate limit, another runner of the same escalation) counts as
        # created: audited as a create, and its impact, born with it, is not read back as a join's would be. A
        # rerun of a complete escalation is a link, as before.
        resumed = completed_escalation(store, ticket.ref) is None
        if intent is not None and intent.state == "done" and intent.result:
            return self._issue_from(tracker, intent.result), resumed, False
        if intent is None and existing:
            # Linked by an earlier join: escalating again joins the same issue rather than creating one.
            first = existing[0]
            return tracker.get_issue(first.issue_key), False, False
        check_lease()  # a fresh intent is begun already sending (won): the checks below are for one begun before
        won, intent = store.begin_sending(
            oid, "tracker.create", business_key=business_key, payload={"label": label}, owner=runner_id()
        )
        if intent.state == "done" and intent.result:  # another runner created it since the first read
            return self._issue_from(tracker, intent.result), resumed, False
        if not won and in_flight_elsewhere(intent, self.clock()):
            raise EffectInFlight(f"{ticket.ref} is already being escalated by another run; nothing was written here")
        if not won and intent.state in ("sending", "ambiguous"):
            # An earlier attempt may have created the issue: its label finds it.
            found = tracker.search_by_label(label)
            if found:
                return done(found[0])
            grace = float(self.settings["search_grace_seconds"])
            sent_at = intent.sent_at or 0.0
            if self.clock() - sent_at < grace:
                raise EscalationPending(
                    f"{tracker.name}: an earlier create for {ticket.ref} is unconfirmed and not yet searchable; "
                    f"not creating a second issue before {int(grace - (self.clock() - sent_at))} s have passed",
                    retry_at=sent_at + grace,
                )
        try:
            claimed = intent if won else claim_send(store, intent, what=f"the issue for {ticket.ref}")
        except EffectInFlight:
            raise EffectInFlight(
                f"{ticket.ref} is already being escalated by another run; nothing was written here"
            ) from None
        if claimed is None:  # another runner finished the create between the read and the claim
            finished = store.get_intent(oid)
            if finished is not None and finished.result:
                return self._issue_from(tracker, finished.result), resumed, False
        self._point("before_create")
        try:
            issue = tracker.create_issue(spec)
        except AmbiguousOutcome:
            store.mark_intent(oid, "ambiguous", error="create not confirmed")
            found = tracker.search_by_label(label)
            if found:
                return done(found[0])
            raise
        except VendorError as exc:
            store.mark_intent(oid, "failed", error=str(exc))
            raise
        except BaseException:  # unknown whether the tracker got it: reconciled by the label, after the grace
            store.mark_intent(oid, "ambiguous", error="create interrupted")
            raise
        self._point("created")
        return done(issue)

    @staticmethod
    def _issue_from(tracker: Any, result: dict[str, Any]) -> Issue:
        return Issue(ref=Ref(tracker.name, "issue", str(result["id"])), key=result["key"], url=result["url"])

    def _crm_note(
        self, crm: CRM, customer: Customer, business_key: str, issue: Issue, render: Callable[[], str]
    ) -> str:
        return crm_note_once(
            self.rt.store,
            crm,
            customer,
            op_id(f"{business_key}|{issue.ref}", "crm.note"),
            business_key,
            render,
            point=self._point,
        )

    def _plan(
        self,
        req: EscalationRequest,
        ticket: Ticket,
        customer: Customer,
        has_crm: bool,
        project: str,
        label: str,
        moving_from: Link | None = None,
    ) -> list[str]:
        tracker = self.rt.tracker()
        plan = []
        if moving_from is not None:
            plan.append(
                f"{tracker.name}: move {ticket.ref} off {moving_from.issue_key} (remote link, link and impact there)"
            )
        if req.link_key:
            plan.append(f"{tracker.name}: read the issue {req.link_key} to join it")
        else:
            plan.append(f"{tracker.name}: create an issue in {project} labelled {label}, with the handoff")
        plan.append(f"{tracker.name}: remote link from the issue to {ticket.url}")
        plan.append(f"{ticket.ref.system}: internal note, tag {self.settings['tag']!r} and the issue key on the ticket")
        if has_crm and customer.known:
            plan.append(f"{self.settings['crm']}: note on the timeline of {customer.name or 'the customer'}")
        plan.append("store: link, intents and an audit row")
        return plan
