"""Customer impact on the engineering issue: who a bug hurts, and how much revenue is at stake.

CONTRACT (the escalation calls these; the impact module fills them in):
- ``save_customer(rt, customer)``: keep a snapshot of the customer (no API call), so an issue's rollup can be
  computed from the store for every linked ticket.
- ``save_ticket(rt, ticket, customer)``: keep a snapshot of the ticket (its URL, subject, status, when it was
  opened; no API call) for the ticket list and the oldest open ticket.
- ``for_new_issue(rt, ticket, customer)`` -> ``NewIssueImpact``: the Markdown block to append to a new issue's
  description and the fields and labels to set in the create call itself (so a new escalation costs no
  extra call).
- ``refresh_issue(rt, issue)``: after a link is added or removed, write the rollup to an existing issue
  (one edit, splicing the managed block into ``issue.description`` as read); returns whether it wrote.
- ``link_fold(rt, link, saved)``: what ``Store.add_link(fold=)`` folds into the issue's running aggregate when
  a ticket joins (see "the running aggregate" below: a join reads no link, whatever the number linked).

What the rollup holds (pure functions below, computed from the store's links and snapshots):
- customers: linked companies, deduplicated (a company with several tickets counts once); a ticket whose
  customer the CRM does not know counts as a ticket without a company;
- tickets: every linked ticket;
- ARR at stake: each company's ARR once, summed exactly (``Decimal``) per currency, never across currencies;
  a company without an ARR (or without a currency) is "ARR unknown": it adds nothing to any sum and is
  named in the block ("ARR unknown for Initech"); when no company has a known ARR the sum is unknown, not 0;
- soonest renewal date; highest tier (``[impact] tiers``, highest first; a tier not listed ranks below every
  listed one); oldest open ticket (a ticket whose status is not solved or closed, by the time it was opened).

On the issue (``[impact] fields``: rollup value -> custom field id; values ``arr``, ``customers``, ``tickets``,
``renewal``, ``tier``, ``tier_rank``, ``oldest``): numbers for arr/customers/tickets/tier_rank, ``YYYY-MM-DD`` for
renewal/oldest, text for tier (``tier_rank`` is the same tier as a number that sorts: see ``tier_rank``); an
unknown value clears its field. The ARR number field holds ONE currency's sum: ``[impact]
arr_currency`` when set (empty when no company has an ARR in it), else the currency with the largest sum (ties:
alphabetical). Every currency is in the block. A label ``cxb-tier-<tier>`` per tier present; tier labels of
tiers no longer present are removed (``update.labels`` add/remove, so other labels are never touched). The
block is a "Customer impact" heading, the rendered ``impact_block.md.j2``, and a closing marker paragraph; it is
spliced in place between those two markers (top-level ADF nodes on Jira Cloud, lines of wiki text on Data
Center) and appended when the description has none. The block holds no time-relative text, so an unchanged
rollup renders byte for byte the same and a replay writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ..connectors import ManagedBlock, TicketLink
from ..errors import ConfigError, CxbridgeError, NotFound
from ..http.counter import tallies_calls
from ..models import Customer, Deal, Issue, Link, Ref, Ticket, to_jsonable
from ..settings import IMPACT_VALUES
from .once import op_id

if TYPE_CHECKING:
    from .context import Context

log = logging.getLogger(__name__)

TEMPLATE = "impact_block.md.j2"
BLOCK_TITLE = "Customer impact"
BLOCK_END = "Kept current by cxbridge: edits inside this section are replaced."
"""The closing marker paragraph of the managed block (the heading ``BLOCK_TITLE`` opens it)."""
TIER_LABEL_PREFIX = "cxb-tier-"
DEFAULT_TIERS = ("strategic", "enterprise", "growth", "standard")
VALUES = IMPACT_VALUES  # the keys [impact] fields may map (cxbridge.settings checks them at load)
"""The rollup values ``[impact] fields`` may map to custom fields."""
CLOSED_STATUSES = frozenset({"solved", "closed"})
"""Ticket statuses that are not open (Zendesk's; other helpdesks' connectors map to these words)."""
CUSTOMER = "customer"
TICKET = "ticket"
"""Snapshot kinds in the store."""


@dataclass
class NewIssueImpact:
    """What a new issue carries from birth: the impact section and the sortable values."""

    block: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)


# -- the records the rollup reads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketFacts:
    """What the rollup needs of one linked ticket (from its snapshot, else from the link alone)."""

    ref: Ref
    url: str | None = None
    subject: str | None = None
    status: str | None = None
    opened: datetime | None = None
    company: Ref | None = None
    closed: bool | None = None
    """Whether the helpdesk says the status is solved or closed (``Helpdesk.ticket_closed``), when recorded."""

    @property
    def open(self) -> bool:
        """Not solved or closed, as the helpdesk said when recorded, else by the status's words (a ticket of
        unknown status counts as open)."""
        if self.closed is not None:
            return not self.closed
        return (self.status or "").lower() not in CLOSED_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": str(self.ref),
            "system": self.ref.system,
            "id": self.ref.id,
            "url": self.url,
            "subject": self.subject,
            "status": self.status,
            "open": self.open,
            "opened": self.opened.isoformat() if self.opened else None,
            "company": str(self.company) if self.company else None,
        }


@dataclass(frozen=True)
class CompanyImpact:
    """One linked company with the tickets it has on the issue."""

    ref: Ref
    name: str | None
    tier: str | None
    arr: Decimal | None
    currency: str | None
    renewal_date: str | None
    tickets: tuple[TicketFacts, ...]
    total: int | None = None
    """How many tickets the company has on the issue when ``tickets`` holds only the first few (a rollup read from
    the running aggregate); None: ``tickets`` holds them all."""

    @property
    def ticket_count(self) -> int:
        """The company's tickets on the issue."""
        return len(self.tickets) if self.total is None else self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "ref": str(self.ref),
            "name": self.name,
            "tier": self.tier,
            "arr": str(self.arr) if self.arr is not None and self.currency else None,
            "currency": self.currency if self.arr is not None else None,
            "renewal_date": self.renewal_date,
            "tickets": [str(t.ref) for t in self.tickets],
        }


@dataclass(frozen=True)
class Rollup:
    """The customer impact of one issue."""

    companies: tuple[CompanyImpact, ...]
    tickets: tuple[TicketFacts, ...]
    arr: dict[str, Decimal]
    arr_unknown: tuple[str, ...]
    renewal: str | None
    renewal_company: str | None
    tier: str | None
    tiers: tuple[str, ...]
    oldest_open: TicketFacts | None
    tier_rank: int | None = None
    """The highest tier as a number that sorts: ``[impact] tiers`` has N tiers, the first ranks N, the last 1, a
    tier not listed 0; None when no company has a tier."""
    ticket_total: int | None = None
    """Every linked ticket, when ``tickets`` holds only the ones shown (a rollup read from the running aggregate:
    the first ``tickets_per_customer`` of each company and of those without one); None: ``tickets`` holds all."""
    without_total: int | None = None
    """Tickets without a company, when ``tickets`` holds only the ones shown; None: count ``without_company``."""

    @property
    def customers(self) -> int:
        """Distinct companies."""
        return len(self.companies)

    @property
    def ticket_count(self) -> int:
        """Every linked ticket."""
        return len(self.tickets) if self.ticket_total is None else self.ticket_total

    @property
    def without_company(self) -> tuple[TicketFacts, ...]:
        """Tickets whose customer the CRM does not know (the first few only, in a rollup read from the aggregate)."""
        return tuple(t for t in self.tickets if t.company is None)

    @property
    def without_company_count(self) -> int:
        """How many tickets have no known company."""
        return len(self.without_company) if self.without_total is None else self.without_total

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: money as strings (exact), per currency."""
        return {
            "customers": self.customers,
            "tickets": self.ticket_count,
            "arr": {cur: str(amount) for cur, amount in sorted(self.arr.items())},
            "arr_unknown": list(self.arr_unknown),
            "renewal": self.renewal,
            "renewal_company": self.renewal_company,
            "tier": self.tier,
            "tier_rank": self.tier_rank,
            "tiers": list(self.tiers),
            "oldest_open_ticket": self.oldest_open.as_dict() if self.oldest_open else None,
            "companies": [c.as_dict() for c in self.companies],
            "ticket_list": [t.as_dict() for t in self.tickets],
        }


# -- pure arithmetic ----------------------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _iso_date(value: Any) -> str | None:
    """``YYYY-MM-DD`` for a date, a datetime or a string starting with one; None otherwise."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            return None
    return None


def sum_arr(companies: Iterable[CompanyImpact]) -> tuple[dict[str, Decimal], tuple[str, ...]]:
    """Each company's ARR once, summed exactly per currency; and the companies whose ARR is unknown.

    An amount without a currency cannot be added to anything: it counts as unknown.
    """
    sums: dict[str, Decimal] = {}
    unknown: list[str] = []
    for company in companies:
        if company.arr is None or not company.currency:
            unknown.append(company.name or str(company.ref))
            continue
        currency = company.currency.upper()
        sums[currency] = sums.get(currency, Decimal(0)) + company.arr
    return sums, tuple(unknown)


def soonest_renewal(companies: Iterable[CompanyImpact]) -> tuple[str | None, str | None]:
    """The earliest renewal date (``YYYY-MM-DD``) and whose it is; unreadable dates are left out."""
    best: tuple[str, str] | None = None
    for company in companies:
        when = _iso_date(company.renewal_date)
        if when is not None and (best is None or when < best[0]):
            best = (when, company.name or str(company.ref))
    return (best[0], best[1]) if best else (None, None)


def rank_tiers(tiers: Iterable[str | None], order: Sequence[str] = DEFAULT_TIERS) -> tuple[str, ...]:
    """The distinct tiers present, highest first (lower-cased; unlisted tiers after the listed, by name)."""
    ranks = {t.lower(): n for n, t in enumerate(order)}
    present = {t.strip().lower() for t in tiers if t and t.strip()}
    return tuple(sorted(present, key=lambda t: (ranks.get(t, len(ranks)), t)))


def oldest_open(tickets: Iterable[TicketFacts]) -> TicketFacts | None:
    """The open ticket opened first (tickets of unknown opening time come last)."""
    candidates = [t for t in tickets if t.open]
    if not candidates:
        return None
    dated = [t for t in candidates if t.opened is not None]
    if dated:
        return min(dated, key=lambda t: (t.opened or datetime.max, str(t.ref)))
    return candidates[0]


def compute(
    links: Sequence[Link],
    customers: Mapping[str, Customer],
    tickets: Mapping[str, TicketFacts],
    *,
    tier_order: Sequence[str] = DEFAULT_TIERS,
) -> Rollup:
    """The rollup of an issue's links, given the customer snapshots (by company ref) and ticket facts (by ref).

    A link whose company has no snapshot still counts as that company (name unknown, ARR unknown).
    """
    seen: set[str] = set()
    facts: list[TicketFacts] = []
    by_company: dict[str, list[TicketFacts]] = {}
    for link in links:
        key = str(link.ticket)
        if key in seen:
            continue
        seen.add(key)
        fact = _link_facts(link, tickets.get(key))
        facts.append(fact)
        if link.customer is not None:
            by_company.setdefault(str(link.customer), []).append(fact)
    companies = [
        _company(ref_text, customers.get(ref_text), tuple(its_tickets)) for ref_text, its_tickets in by_company.items()
    ]
    return _rollup(companies, tuple(facts), oldest_open(facts), tier_order)


def _link_facts(link: Link, known: TicketFacts | None) -> TicketFacts:
    """A linked ticket's facts: its snapshot's (when there is one) and the link's company."""
    return TicketFacts(
        ref=link.ticket,
        url=known.url if known else None,
        subject=known.subject if known else None,
        status=known.status if known else None,
        opened=known.opened if known else None,
        company=link.customer,
        closed=known.closed if known else None,
    )


def _company(
    ref_text: str, snap: Customer | None, tickets: tuple[TicketFacts, ...], total: int | None = None
) -> CompanyImpact:
    """One linked company as its snapshot tells it (name and ARR unknown without one)."""
    return CompanyImpact(
        ref=Ref.parse(ref_text),
        name=snap.name if snap else None,
        tier=snap.tier.lower() if snap and snap.tier else None,
        arr=_decimal(snap.arr) if snap else None,
        currency=(snap.currency or None) if snap else None,
        renewal_date=_iso_date(snap.renewal_date) if snap else None,
        tickets=tickets,
        total=total,
    )


def _rollup(
    companies: list[CompanyImpact],
    tickets: tuple[TicketFacts, ...],
    oldest: TicketFacts | None,
    tier_order: Sequence[str],
    *,
    ticket_total: int | None = None,
    without_total: int | None = None,
) -> Rollup:
    """The rollup of these companies (sorted by ARR, tier, name, ref) and tickets."""
    ranks = {t.lower(): n for n, t in enumerate(tier_order)}
    companies.sort(
        key=lambda c: (
            -(c.arr if c.arr is not None and c.currency else Decimal(-1)),
            ranks.get(c.tier or "", len(ranks) + 1),
            (c.name or "").lower(),
            str(c.ref),
        )
    )
    arr, unknown = sum_arr(companies)
    renewal, renewal_company = soonest_renewal(companies)
    tiers = rank_tiers((c.tier for c in companies), tier_order)
    return Rollup(
        companies=tuple(companies),
        tickets=tickets,
        arr=arr,
        arr_unknown=unknown,
        renewal=renewal,
        renewal_company=renewal_company,
        tier=tiers[0] if tiers else None,
        tiers=tiers,
        oldest_open=oldest,
        tier_rank=tier_rank(tiers[0], tier_order) if tiers else None,
        ticket_total=ticket_total,
        without_total=without_total,
    )


def tier_rank(tier: str, order: Sequence[str] = DEFAULT_TIERS) -> int:
    """A tier as a sortable number: the first of ``order`` ranks ``len(order)``, the last 1, an unlisted tier 0."""
    ranks = [t.lower() for t in order]
    low = tier.strip().lower()
    return len(ranks) - ranks.index(low) if low in ranks else 0


def arr_field_currency(arr: Mapping[str, Decimal], configured: str = "") -> str | None:
    """The currency whose sum goes into the ARR number field (see the module docstring)."""
    if configured:
        return configured.upper()
    if not arr:
        return None
    return sorted(arr.items(), key=lambda item: (-item[1], item[0]))[0][0]


def _number(amount: Decimal) -> int | float:
    """A Decimal as a JSON number for a Jira number field (a double on Jira's side)."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def values(rollup: Rollup, *, arr_currency: str = "") -> dict[str, Any]:
    """Every rollup value in the form a Jira field takes (None = unknown: the field is cleared)."""
    currency = arr_field_currency(rollup.arr, arr_currency)
    arr = rollup.arr.get(currency) if currency else None
    oldest = rollup.oldest_open
    return {
        "arr": _number(arr) if arr is not None else None,
        "customers": rollup.customers,
        "tickets": rollup.ticket_count,
        "renewal": rollup.renewal,
        "tier": rollup.tier,
        "tier_rank": rollup.tier_rank,
        "oldest": oldest.opened.date().isoformat() if oldest and oldest.opened else None,
    }


def field_values(rollup: Rollup, mapping: Mapping[str, str], *, arr_currency: str = "") -> dict[str, Any]:
    """Custom field id -> value for the configured ``[impact] fields`` (ConfigError for an unknown value)."""
    unknown = sorted(set(mapping) - set(VALUES))
    if unknown:
        raise ConfigError(
            f"impact.fields: unknown rollup value {', '.join(map(repr, unknown))} (known: {', '.join(VALUES)})"
        )
    all_values = values(rollup, arr_currency=arr_currency)
    return {str(fid): all_values[name] for name, fid in mapping.items() if fid}


def tier_label(tier: str) -> str:
    """``cxb-tier-<tier>``: one word, lower case (Jira refuses labels with spaces)."""
    return TIER_LABEL_PREFIX + "_".join(tier.lower().split())


def label_changes(current: Iterable[str], tiers: Iterable[str]) -> tuple[list[str], list[str]]:
    """(labels to add, labels to remove): the tier labels wanted and the stale ``cxb-tier-*`` ones."""
    have = list(current)
    wanted = [tier_label(t) for t in tiers]
    add = [label for label in wanted if label not in have]
    remove = [label for label in have if label.startswith(TIER_LABEL_PREFIX) and label not in wanted]
    return add, remove


def same_value(a: Any, b: Any) -> bool:
    """Whether a field value as written equals the value as Jira returns it (numbers come back as floats)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal):
        return _decimal(a) == _decimal(b)
    return bool(a == b)


# -- the managed block --------------------------------------------------------------------------------------


def managed_block(body: str) -> ManagedBlock:
    """The managed block around a rendered ``impact_block.md.j2``: its heading and closing marker."""
    return ManagedBlock(title=BLOCK_TITLE, body=body, end=BLOCK_END)


# -- snapshots ----------------------------------------------------------------------------------------------


def customer_to_dict(customer: Customer) -> dict[str, Any]:
    """A customer as the store keeps it (money as exact strings)."""
    data: dict[str, Any] = to_jsonable(customer)
    return data


def customer_from_dict(data: Mapping[str, Any]) -> Customer:
    """Read back what ``customer_to_dict`` wrote."""

    def ref(value: Any) -> Ref | None:
        return Ref.parse(value) if isinstance(value, str) and value else None

    deals = []
    for d in data.get("deals") or []:
        deal_ref = ref(d.get("ref"))
        if deal_ref is None:
            continue
        deals.append(
            Deal(
                ref=deal_ref,
                name=str(d.get("name") or ""),
                stage=d.get("stage"),
                amount=_decimal(d.get("amount")),
                currency=d.get("currency"),
                close_date=d.get("close_date"),
            )
        )
    return Customer(
        company_ref=ref(data.get("company_ref")),
        contact_ref=ref(data.get("contact_ref")),
        name=data.get("name"),
        domain=data.get("domain"),
        tier=data.get("tier"),
        arr=_decimal(data.get("arr")),
        currency=data.get("currency"),
        owner=data.get("owner"),
        owner_email=data.get("owner_email"),
        renewal_date=data.get("renewal_date"),
        lifecycle_stage=data.get("lifecycle_stage"),
        deals=deals,
        known=bool(data.get("known", True)),
        match=data.get("match"),
    )


def ticket_facts(ticket: Ticket, customer: Customer | None = None) -> TicketFacts:
    """The facts the rollup keeps of a ticket."""
    return TicketFacts(
        ref=ticket.ref,
        url=ticket.url or None,
        subject=ticket.subject or None,
        status=ticket.status,
        opened=ticket.created_at,
        company=customer.company_ref if customer is not None and customer.known else None,
    )


def _facts_to_dict(facts: TicketFacts) -> dict[str, Any]:
    return {
        "url": facts.url,
        "subject": facts.subject,
        "status": facts.status,
        "opened": facts.opened.isoformat() if facts.opened else None,
        "closed": facts.closed,
    }


def _facts_from_dict(ref: Ref, data: Mapping[str, Any]) -> TicketFacts:
    opened = data.get("opened")
    try:
        when = datetime.fromisoformat(opened) if isinstance(opened, str) and opened else None
    except ValueError:
        when = None
    closed = data.get("closed")
    return TicketFacts(
        ref=ref,
        url=data.get("url"),
        subject=data.get("subject"),
        status=data.get("status"),
        opened=when,
        closed=closed if isinstance(closed, bool) else None,
    )


def _settings(rt: Context) -> dict[str, Any]:
    return rt.config.section("impact")


def _field_map(rt: Context) -> dict[str, str]:
    mapping = _settings(rt).get("fields") or {}
    return {str(k): str(v) for k, v in mapping.items() if v}


def _prepare(rt: Context) -> None:
    """Ask the tracker's ``get_issue`` for the description and the impact fields (no call is made)."""
    try:
        tracker = rt.tracker()
    except ConfigError:
        return
    tracker.want_fields(["description", *_field_map(rt).values()])


def save_customer(rt: Context, customer: Customer) -> None:
    """Remember what the CRM said about a customer (the rollup reads these snapshots)."""
    _prepare(rt)
    if customer.known and customer.company_ref is not None:
        rt.store.put_snapshot(CUSTOMER, str(customer.company_ref), customer_to_dict(customer))


def company_name(rt: Context, company: Ref) -> str | None:
    """A linked company's name as the CRM last told it (the store's snapshot; no API call), or None."""
    snap = rt.store.get_snapshot(CUSTOMER, str(company))
    name = snap.get("name") if snap else None
    return name if isinstance(name, str) and name else None


def save_ticket(rt: Context, ticket: Ticket, customer: Customer | None = None) -> TicketFacts:
    """Remember a linked ticket's URL, subject, status and opening time (no API call); returns the facts saved."""
    _prepare(rt)
    return _put_ticket(rt, ticket.ref, ticket_facts(ticket, customer))


def _put_ticket(rt: Context, ref: Ref, facts: TicketFacts) -> TicketFacts:
    """Save a ticket's facts (with whether its helpdesk calls the status closed), keeping the remote links'
    resolved flags recorded in its snapshot; the aggregates of the issues it is linked to are dropped when the
    facts changed. Returns the facts as saved."""
    data = _facts_to_dict(facts)
    data["closed"] = rt.helpdesk(ref.system).ticket_closed(facts.status)
    before = rt.store.get_snapshot(TICKET, str(ref)) or {}
    flags = before.get(RESOLVED_KEY)
    if flags:
        data[RESOLVED_KEY] = flags
    changed = any(before.get(k) != v for k, v in data.items() if k != RESOLVED_KEY)
    rt.store.put_snapshot(TICKET, str(ref), data, linked_ticket=ref if changed else None)
    return _facts_from_dict(ref, data)


def load_rollup(rt: Context, links: Sequence[Link]) -> Rollup:
    """The rollup of these links from the store's snapshots (no API call)."""
    customers: dict[str, Customer] = {}
    for link in links:
        if link.customer is not None and str(link.customer) not in customers:
            snap = rt.store.get_snapshot(CUSTOMER, str(link.customer))
            if snap is not None:
                customers[str(link.customer)] = customer_from_dict(snap)
    return compute(links, customers, ticket_snapshots(rt, links), tier_order=_tier_order(rt))


# -- the running aggregate (issue 16: a join must not read every link) -----------------------------------------
#
# Per issue the store keeps (``Store.get_aggregate``) what the rollup needs of its links, in a size bounded by the
# number of companies: per company (and for the tickets without one, key "") the number of tickets and the first
# ``tickets_per_customer`` of them in link order; the number of tickets; the oldest open ticket. The companies'
# name, ARR, tier and renewal are not in it: they are read from the customer snapshots (one per company) when the
# block is rendered, so a CRM change needs no aggregate change. A join folds its link in, in the link's own
# transaction (``Store.add_link(fold=)``); every other change (an unlink, a linked ticket's facts changed, the
# setting ``tickets_per_customer`` changed) drops it, and the next refresh recomputes it from every link and keeps
# it by compare-and-set (``Store.put_aggregate``).

AGGREGATE_VERSION = 1


def _facts_to_json(facts: TicketFacts) -> dict[str, Any]:
    return {"ref": str(facts.ref), **_facts_to_dict(facts)}


def _facts_from_json(data: Mapping[str, Any], company: Ref | None) -> TicketFacts:
    return replace(_facts_from_dict(Ref.parse(str(data["ref"])), data), company=company)


def _older(candidate: TicketFacts, current: TicketFacts | None) -> bool:
    """Whether an open ticket that comes after ``current`` in link order replaces it as the oldest open ticket
    (the rule of ``oldest_open``: the dated ticket opened first, else the first open ticket)."""
    if current is None:
        return True
    if candidate.opened is None:
        return False
    if current.opened is None:
        return True
    return (candidate.opened, str(candidate.ref)) < (current.opened, str(current.ref))


def fold_link(data: dict[str, Any], link: Link, known: TicketFacts | None) -> dict[str, Any]:
    """The aggregate with one more link, which comes after every link already in it (pure; ``data`` is changed)."""
    fact = _link_facts(link, known)
    groups: dict[str, Any] = data.setdefault("groups", {})
    group = groups.setdefault(str(link.customer) if link.customer is not None else "", {"tickets": 0, "shown": []})
    group["tickets"] += 1
    if len(group["shown"]) < int(data["limit"]):
        group["shown"].append(_facts_to_json(fact))
    data["tickets"] = int(data.get("tickets") or 0) + 1
    if fact.open:
        current = data.get("oldest")
        if _older(fact, _facts_from_json(current, None) if current else None):
            data["oldest"] = {**_facts_to_json(fact), "company": str(link.customer) if link.customer else None}
    return data


def aggregate(links: Sequence[Link], tickets: Mapping[str, TicketFacts], *, limit: int) -> dict[str, Any]:
    """The aggregate of an issue's links, computed from every one of them (``tickets``: facts by ticket ref)."""
    data: dict[str, Any] = {"v": AGGREGATE_VERSION, "limit": limit, "tickets": 0, "oldest": None, "groups": {}}
    seen: set[str] = set()
    for link in links:
        if str(link.ticket) not in seen:
            seen.add(str(link.ticket))
            fold_link(data, link, tickets.get(str(link.ticket)))
    return data


def from_aggregate(
    data: Mapping[str, Any], customers: Mapping[str, Customer], *, tier_order: Sequence[str] = DEFAULT_TIERS
) -> Rollup:
    """The rollup an aggregate holds (companies from their snapshots, by ref): the same totals, block and fields as
    ``compute`` over every link; ``tickets`` holds the tickets shown only."""
    companies: list[CompanyImpact] = []
    shown: list[TicketFacts] = []
    without = 0
    for key, group in (data.get("groups") or {}).items():
        company = Ref.parse(key) if key else None
        facts = tuple(_facts_from_json(t, company) for t in group["shown"])
        shown.extend(facts)
        if company is None:
            without = int(group["tickets"])
        else:
            companies.append(_company(key, customers.get(key), facts, int(group["tickets"])))
    oldest = data.get("oldest")
    company = oldest.get("company") if oldest else None
    return _rollup(
        companies,
        tuple(shown),
        _facts_from_json(oldest, Ref.parse(company) if company else None) if oldest else None,
        tier_order,
        ticket_total=int(data.get("tickets") or 0),
        without_total=without,
    )


def _tickets_per_customer(rt: Context) -> int:
    return int(_settings(rt).get("tickets_per_customer") or TICKETS_PER_CUSTOMER)


def link_fold(rt: Context, link: Link, saved: TicketFacts) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    """What ``Store.add_link(fold=)`` folds into the issue's aggregate when ``link`` joins it (``saved``: the ticket's
    facts as ``save_ticket`` saved them). An aggregate of another version or ticket limit is dropped."""
    limit = _tickets_per_customer(rt)

    def fold(data: dict[str, Any]) -> dict[str, Any] | None:
        if data.get("v") != AGGREGATE_VERSION or data.get("limit") != limit:
            return None
        return fold_link(data, link, saved)

    return fold


def issue_rollup(rt: Context, issue: Ref) -> Rollup:
    """An issue's rollup from its running aggregate: a read of the aggregate and one customer snapshot per company.

    Without a usable aggregate (none kept yet, dropped by a change, another ticket limit) it is recomputed from every
    link and kept, unless a link or a linked ticket changed meanwhile (compare-and-set: the next refresh recomputes).
    """
    limit = _tickets_per_customer(rt)
    kept = rt.store.get_aggregate(issue)
    data = kept.data
    if data is None or data.get("v") != AGGREGATE_VERSION or data.get("limit") != limit:
        links = rt.store.links_for_issue(issue)
        data = aggregate(links, ticket_snapshots(rt, links), limit=limit)
        if not rt.store.put_aggregate(issue, data, seq=kept.seq):
            log.debug("%s: its links changed while its aggregate was recomputed; recomputed again next time", issue)
    customers: dict[str, Customer] = {}
    for key in data.get("groups") or {}:
        snap = rt.store.get_snapshot(CUSTOMER, key) if key else None
        if snap is not None:
            customers[key] = customer_from_dict(snap)
    return from_aggregate(data, customers, tier_order=_tier_order(rt))


def ticket_snapshots(rt: Context, links: Sequence[Link]) -> dict[str, TicketFacts]:
    """The saved facts of the linked tickets, by ticket ref (one snapshot read per link; no API call)."""
    tickets: dict[str, TicketFacts] = {}
    for link in links:
        tsnap = rt.store.get_snapshot(TICKET, str(link.ticket))
        if tsnap is not None:
            tickets[str(link.ticket)] = _facts_from_dict(link.ticket, tsnap)
    return tickets


def _tier_order(rt: Context) -> tuple[str, ...]:
    tiers = _settings(rt).get("tiers") or DEFAULT_TIERS
    return tuple(str(t).lower() for t in tiers)


def render_block(rt: Context, rollup: Rollup) -> ManagedBlock:
    """The managed block (heading, ``impact_block.md.j2``, closing marker)."""
    settings = _settings(rt)
    context = template_context(
        rollup,
        arr_currency=_arr_currency(rt),
        top_customers=int(settings.get("top_customers") or TOP_CUSTOMERS),
        tickets_per_customer=_tickets_per_customer(rt),
    )
    body = rt.handoff.render(TEMPLATE, {"impact": context})
    return managed_block(body)


def _arr_currency(rt: Context) -> str:
    return str(_settings(rt).get("arr_currency") or "")


TOP_CUSTOMERS = 10
TICKETS_PER_CUSTOMER = 5


def template_context(
    rollup: Rollup,
    *,
    arr_currency: str = "",
    top_customers: int = TOP_CUSTOMERS,
    tickets_per_customer: int = TICKETS_PER_CUSTOMER,
) -> dict[str, Any]:
    """What ``impact_block.md.j2`` sees: counts, money per currency (Decimals), dates, companies, tickets.

    Bounded whatever the number of linked tickets (issue 16: the description must stay within the tracker's
    limits): ``companies`` holds the ``top_customers`` companies by ARR (``companies_more`` and
    ``companies_more_tickets`` count the rest), each with at most ``tickets_per_customer`` tickets
    (``tickets_more`` the rest); ``without_company`` lists as many (``without_company_count`` counts them all).
    The totals (customers, tickets, ARR, renewal, tier, oldest) always cover every link.
    """

    def ticket(t: TicketFacts) -> dict[str, Any]:
        return {
            "system": t.ref.system.capitalize() if t.ref.system.islower() else t.ref.system,
            "id": t.ref.id,
            "url": t.url,
            "subject": t.subject,
            "status": t.status,
            "open": t.open,
            "opened": t.opened.date().isoformat() if t.opened else None,
        }

    listed = rollup.companies[:top_customers]
    without = rollup.without_company
    return {
        "customers": rollup.customers,
        "tickets": rollup.ticket_count,
        "arr": [{"currency": cur, "amount": amount} for cur, amount in sorted(rollup.arr.items())],
        "arr_field_currency": arr_field_currency(rollup.arr, arr_currency),
        "arr_unknown": list(rollup.arr_unknown),
        "renewal": rollup.renewal,
        "renewal_company": rollup.renewal_company,
        "tier": rollup.tier,
        "tiers": list(rollup.tiers),
        "oldest_open": ticket(rollup.oldest_open) if rollup.oldest_open else None,
        "companies": [
            {
                "name": c.name or str(c.ref),
                "tier": c.tier,
                "arr": c.arr if c.currency else None,
                "currency": c.currency,
                "renewal_date": c.renewal_date,
                "tickets": [ticket(t) for t in c.tickets[:tickets_per_customer]],
                "tickets_more": max(0, c.ticket_count - tickets_per_customer),
            }
            for c in listed
        ],
        "companies_more": len(rollup.companies) - len(listed),
        "companies_more_tickets": sum(c.ticket_count for c in rollup.companies[len(listed) :]),
        "without_company": [ticket(t) for t in without[:tickets_per_customer]],
        "without_company_count": rollup.without_company_count,
    }


@dataclass(frozen=True)
class Desired:
    """What the issue should carry: the managed block, the field values, the tier labels."""

    block: ManagedBlock
    fields: dict[str, Any]
    tiers: tuple[str, ...]


def desired(rt: Context, rollup: Rollup) -> Desired:
    """The block, fields and tiers for a rollup under the configuration."""
    return Desired(
        block=render_block(rt, rollup),
        fields=field_values(rollup, _field_map(rt), arr_currency=_arr_currency(rt)),
        tiers=rollup.tiers,
    )


def for_new_issue(rt: Context, ticket: Ticket, customer: Customer) -> NewIssueImpact:
    """The impact block, fields and labels for an issue about to be created for this ticket."""
    link = Link(
        ticket=ticket.ref,
        issue=Ref("new", "issue", "new"),
        issue_key="",
        customer=customer.company_ref if customer.known else None,
    )
    customers = {str(customer.company_ref): customer} if customer.known and customer.company_ref else {}
    rollup = compute([link], customers, {str(ticket.ref): ticket_facts(ticket, customer)}, tier_order=_tier_order(rt))
    want = desired(rt, rollup)
    return NewIssueImpact(block=want.block.markdown, fields=want.fields, labels=[tier_label(t) for t in want.tiers])


def refresh_issue(rt: Context, issue: Issue) -> bool:
    """Write the current rollup of an existing issue's links to it; False when nothing changed.

    The issue should be as read by ``get_issue`` after ``_prepare`` (with its description and impact fields);
    an issue read without its description is read once more. One edit (fields, description, label add/remove) when
    anything differs; none otherwise.
    """
    tracker = rt.tracker()
    if "description" not in issue.fields:  # not read by a prepared get_issue (a field Jira omits is empty)
        _prepare(rt)
        issue = tracker.get_issue(issue.key)
    want = desired(rt, issue_rollup(rt, issue.ref))
    description, block_changed = tracker.replace_block(issue.description, want.block)
    fields = {fid: value for fid, value in want.fields.items() if not same_value(value, issue.fields.get(fid))}
    add, remove = label_changes(issue.labels, want.tiers)
    if not (block_changed or fields or add or remove):
        return False
    tracker.write_impact(
        issue.key,
        fields=fields,
        description=description if block_changed else None,
        add_labels=add,
        remove_labels=remove,
    )
    log.info("%s: customer impact written (%s)", issue.key, ", ".join(sorted(fields)) or "block/labels")
    return True


# -- refresh, reports and unlink (the ``impact`` and ``unlink`` commands) -------------------------------------


def refresh_customers(rt: Context, links: Sequence[Link]) -> dict[str, str]:
    """Re-read each linked company from the CRM and each linked ticket from its helpdesk; save the snapshots.

    One CRM call per distinct company and one helpdesk call per ticket. Returns what happened per record
    (``updated``, or why it was kept as it was: a record the vendor no longer has keeps its last snapshot).
    """

    outcome: dict[str, str] = {}
    crm = rt.crm()
    for link in links:
        company = link.customer
        if company is None or str(company) in outcome:
            continue
        if crm is None:
            outcome[str(company)] = "kept: no CRM configured"
            continue
        try:
            customer = crm.get_customer(company)
        except NotImplementedError as exc:
            raise ConfigError(f"impact --refresh: {exc}") from None
        except NotFound:
            customer = Customer(company_ref=company, contact_ref=None, known=False)
        if not customer.known:
            outcome[str(company)] = "kept: not found in the CRM"
            continue
        save_customer(rt, customer)
        outcome[str(company)] = "updated"
    for link in links:
        key = str(link.ticket)
        if key in outcome:
            continue
        try:
            ticket = rt.helpdesk(link.ticket.system).get_ticket(link.ticket.id)
        except NotFound:
            outcome[key] = "kept: not found in the helpdesk"
            continue
        _put_ticket(rt, link.ticket, ticket_facts(ticket))
        outcome[key] = "updated"
    return outcome


def issue_row(
    rt: Context, links: Sequence[Link], *, key: str | None = None, status: str | None = None
) -> dict[str, Any]:
    """One issue's report: its rollup (exact money per currency), the field values, its customers and tickets."""
    rollup = load_rollup(rt, links)
    arr_currency = _arr_currency(rt)
    currency = arr_field_currency(rollup.arr, arr_currency)
    row: dict[str, Any] = {
        "issue": key or (links[-1].issue_key if links else None),
        "issue_ref": str(links[0].issue) if links else None,
        "status_category": status,
        **rollup.as_dict(),
        "arr_field": {"currency": currency, "amount": values(rollup, arr_currency=arr_currency)["arr"]},
        "fields": field_values(rollup, _field_map(rt), arr_currency=arr_currency),
        "labels": [tier_label(t) for t in rollup.tiers],
    }
    return row


def _by_issue(links: Iterable[Link]) -> dict[Ref, list[Link]]:
    grouped: dict[Ref, list[Link]] = {}
    for link in links:
        grouped.setdefault(link.issue, []).append(link)
    return grouped


def open_issues(rt: Context, refs: Sequence[Ref]) -> dict[Ref, Issue] | None:
    """The issues among ``refs`` whose status category is not done, as the tracker tells with the fewest calls
    (``Tracker.open_issues``); None when the tracker cannot tell (every issue is kept)."""
    tracker = rt.tracker()
    if not tracker.supports("open_issues"):
        return None
    return tracker.open_issues(list(refs)) if refs else {}


def ranking(rt: Context, *, top: int | None = None) -> list[dict[str, Any]]:
    """The open issues with links, ranked by ARR at stake (the ARR field's value), then customers, tickets.

    Linked issues come from the store; which are open comes from one JQL search (ids, status category).
    """
    grouped = _by_issue(rt.store.all_links())
    still_open = open_issues(rt, list(grouped))
    rows = []
    for ref, links in grouped.items():
        current = None if still_open is None else still_open.get(ref)
        if still_open is not None and current is None:
            continue
        rows.append(
            issue_row(
                rt,
                links,
                key=current.key if current else None,
                status=current.status_category if current else None,
            )
        )
    rows.sort(
        key=lambda r: (
            -(r["arr_field"]["amount"] if r["arr_field"]["amount"] is not None else -1),
            -r["customers"],
            -r["tickets"],
            str(r["issue"]),
        )
    )
    for n, row in enumerate(rows, 1):
        row["rank"] = n
    return rows[:top] if top else rows


def refresh_by_key(rt: Context, key: str) -> bool:
    """Re-read the issue (with its description and impact fields) and write its rollup when it differs."""
    _prepare(rt)
    return refresh_issue(rt, rt.tracker().get_issue(key))


def ticket_link(
    rt: Context, ticket: Ref, *, url: str = "", title: str = "", summary: str | None = None, resolved: bool = False
) -> TicketLink:
    """The ticket as the tracker links to it (the helpdesk's base URL names where it lives)."""
    return TicketLink(
        ticket=ticket,
        url=url,
        title=title,
        origin=rt.helpdesk(ticket.system).config.base_url,
        summary=summary,
        resolved=resolved,
    )


def link_title(ticket: Ref, subject: str | None) -> str:
    """The title of a remote link to a ticket: ``zendesk #4: Exports fail`` (at most 255 characters)."""
    return f"{ticket.system} #{ticket.id}: {subject or ''}"[:255]


# -- fresh state: a ticket solved or reopened, a CRM company changed ------------------------------------------


RESOLVED_KEY = "resolved_on"
"""In a ticket's snapshot: issue ref -> the resolved flag cxbridge last wrote on that issue's link to it."""


def ticket_state_changed(rt: Context, ticket: Ref, status: str | None) -> str:
    """A linked ticket's status changed: each linked issue's remote link gets ``resolved`` (solved or closed:
    ``Helpdesk.ticket_closed``) and its impact the ticket's new status (the oldest open ticket).

    Reads the ticket only when ``status`` is None. A status already applied, with every link's flag as written,
    writes nothing (a duplicate delivery, a replay, a poll of the same state). The snapshot's status is saved
    before the writes and each link's flag after its write, so a crash in between is finished by a replay.
    """
    links = rt.store.links_for_ticket(ticket)
    if not links:
        return f"ignored: {ticket} is linked to no issue"
    helpdesk = rt.helpdesk(ticket.system)
    snap = dict(rt.store.get_snapshot(TICKET, str(ticket)) or {})
    facts_before = {k: snap.get(k) for k in ("status", "closed", "url", "subject")}
    if status is None:
        read = helpdesk.get_ticket(ticket.id)
        status = read.status
        snap.setdefault("url", read.url or None)
        snap.setdefault("subject", read.subject or None)
    resolved = helpdesk.ticket_closed(status)
    flags = dict(snap.get(RESOLVED_KEY) or {})
    stale = [link for link in links if bool(flags.get(str(link.issue), False)) != resolved]
    if snap.get("status") == status and not stale:
        return f"ignored: {ticket} is {status} already"
    snap["status"] = status
    snap["closed"] = resolved
    changed = facts_before != {k: snap.get(k) for k in ("status", "closed", "url", "subject")}
    rt.store.put_snapshot(TICKET, str(ticket), snap, linked_ticket=ticket if changed else None)
    tracker = rt.tracker()
    done: list[str] = []
    for link in links:
        if refresh_by_key(rt, link.issue_key):
            done.append(f"{link.issue_key} impact")
        if link not in stale:
            continue
        name = company_name(rt, link.customer) if link.customer else None
        tracker.link_ticket(
            link.issue_key,
            ticket_link(
                rt,
                ticket,
                url=str(snap.get("url") or helpdesk.ticket_url(ticket.id)),
                title=link_title(ticket, snap.get("subject")),
                summary=name,
                resolved=resolved,
            ),
        )
        flags[str(link.issue)] = resolved
        rt.store.put_snapshot(TICKET, str(ticket), {**snap, RESOLVED_KEY: flags})
        done.append(f"{link.issue_key} link {'resolved' if resolved else 'unresolved'}")
    return f"ticket state: {ticket} is {status}; " + (", ".join(done) or "nothing to write")


def ticket_state_stale(rt: Context, ticket: Ref, status: str | None) -> bool:
    """Whether a linked ticket's status differs from what cxbridge applied last (the store only, no call): the
    reconciler queues a ``TicketStateObserved`` only then."""
    links = rt.store.links_for_ticket(ticket)
    if not links:
        return False
    snap = rt.store.get_snapshot(TICKET, str(ticket)) or {}
    resolved = rt.helpdesk(ticket.system).ticket_closed(status)
    if snap.get("status") != status and (snap.get("status") is not None or resolved):
        return True  # (an open ticket never seen before changes nothing: its links are unresolved already)
    flags = snap.get(RESOLVED_KEY) or {}
    return any(bool(flags.get(str(link.issue), False)) != resolved for link in links)


def customer_changed(rt: Context, company: Ref) -> str:
    """A CRM company changed: re-read it (one CRM call) and refresh the impact of every open issue it is linked to
    (one search for which are open, then a read per issue and an edit where the rollup differs).

    Nothing is written when no issue is linked to the company or when the rollup is as the issues hold it already
    (a duplicate delivery, a change of a property the impact does not show).
    """
    links = [link for link in rt.store.all_links() if link.customer == company]
    if not links:
        return f"ignored: {company} is linked to no issue"
    crm = rt.crm()
    if crm is None:
        return f"ignored: {company} changed but no CRM is configured"
    try:
        customer = crm.get_customer(company)
    except NotFound:
        customer = Customer(company_ref=company, contact_ref=None, known=False)
    if not customer.known:
        return f"kept: {company} is not found in the CRM; its last snapshot stays"
    save_customer(rt, customer)
    grouped = _by_issue(links)
    still_open = open_issues(rt, list(grouped))
    written: list[str] = []
    for ref, its_links in grouped.items():
        current = None if still_open is None else still_open.get(ref)
        if still_open is not None and current is None:
            continue  # done issues keep the impact they were closed with
        key = current.key if current is not None else its_links[-1].issue_key
        if refresh_by_key(rt, key):
            written.append(key)
    return f"customer changed: {company} re-read; impact written on {', '.join(written) or 'no issue'}"


@dataclass
class UnlinkResult:
    """What ``unlink`` did."""

    ticket: Ref
    issue_key: str
    remote_link: str
    impact: str
    calls: dict[str, int] = field(default_factory=dict)


@tallies_calls
def unlink(rt: Context, ticket: Ref, issue_key: str, *, actor: str = "cli") -> UnlinkResult:
    """Unlink a ticket from an issue: the remote link (by globalId), the store's link, the impact, an audit row.

    Three tracker calls: read the issue, delete the link to the ticket, write the impact when it changed. Run again
    after a crash it finishes what is missing (a remote link already gone is fine).
    """

    tracker = rt.tracker()
    _prepare(rt)
    issue = tracker.get_issue(issue_key)
    linked = [link for link in rt.store.links_for_ticket(ticket) if link.issue == issue.ref]
    if not linked:
        raise CxbridgeError(f"{ticket} is not linked to {issue_key}")
    deleted = tracker.unlink_ticket(issue.key, ticket_link(rt, ticket))
    # the remote link is gone: forget its intent, so that linking the ticket again writes it again
    rt.store.forget_intent(op_id(f"{ticket}|{issue.ref}", "tracker.remotelink"))
    rt.store.remove_link(ticket, issue.ref)
    wrote = refresh_issue(rt, issue)
    result = UnlinkResult(
        ticket=ticket,
        issue_key=issue.key,
        remote_link="deleted" if deleted else "absent",
        impact="written" if wrote else "unchanged",
    )
    rt.store.audit(
        actor=actor,
        action="unlink",
        target=str(issue.ref),
        result="ok",
        ticket=ticket,
        issue_key=issue.key,
        details={"remote_link": result.remote_link, "impact": result.impact},
    )
    return result
