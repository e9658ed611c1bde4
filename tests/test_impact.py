"""The customer impact rollup: arithmetic, field values, tier labels and the managed block, without vendors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from cxbridge_jira.adf import markdown_to_adf
from cxbridge_jira.signals import plain_text

from cxbridge.connectors import ManagedBlock, Tracker
from cxbridge.demo import DEMO_SETTINGS
from cxbridge.errors import ConfigError
from cxbridge.handoff import Handoff
from cxbridge.models import Customer, Link, Ref, Ticket
from cxbridge.testing import Spec, validate_adf
from cxbridge.workflows import impact

ISSUE = Ref("jira", "issue", "10000")
ACME = Ref("hubspot", "company", "1")
GLOBEX = Ref("hubspot", "company", "2")
INITECH = Ref("hubspot", "company", "3")
FIELDS: dict[str, str] = DEMO_SETTINGS["impact"]["fields"]


def ticket_ref(n: int) -> Ref:
    return Ref("zendesk", "ticket", str(n))


def link(n: int, company: Ref | None) -> Link:
    return Link(ticket=ticket_ref(n), issue=ISSUE, issue_key="ENG-1", customer=company)


def customer(
    ref: Ref,
    name: str,
    *,
    arr: str | None = None,
    currency: str | None = "USD",
    tier: str | None = None,
    renewal: str | None = None,
) -> Customer:
    return Customer(
        company_ref=ref,
        contact_ref=None,
        name=name,
        tier=tier,
        arr=Decimal(arr) if arr is not None else None,
        currency=currency,
        renewal_date=renewal,
    )


def facts(n: int, *, status: str = "open", day: int = 1) -> impact.TicketFacts:
    return impact.TicketFacts(
        ref=ticket_ref(n),
        url=f"https://acme.zendesk.com/agent/tickets/{n}",
        subject=f"ticket {n}",
        status=status,
        opened=datetime(2026, 11, day, 9, 0, tzinfo=UTC),
    )


def by_ref(*customers: Customer) -> dict[str, Customer]:
    return {str(c.company_ref): c for c in customers}


def test_a_company_with_several_tickets_counts_once_and_its_arr_once() -> None:
    """Three tickets from two companies: 2 customers, 3 tickets, each company's ARR added once."""
    rollup = impact.compute(
        [link(1, ACME), link(2, GLOBEX), link(3, ACME)],
        by_ref(
            customer(ACME, "Acme", arr="480000", tier="strategic", renewal="2027-01-31"),
            customer(GLOBEX, "Globex", arr="150000", tier="enterprise", renewal="2027-03-15"),
        ),
        {str(ticket_ref(n)): facts(n) for n in (1, 2, 3)},
    )
    assert rollup.customers == 2
    assert len(rollup.tickets) == 3
    assert rollup.arr == {"USD": Decimal("630000")}
    assert rollup.renewal == "2027-01-31"
    assert rollup.renewal_company == "Acme"
    assert rollup.tier == "strategic"
    assert rollup.tiers == ("strategic", "enterprise")
    assert [c.name for c in rollup.companies] == ["Acme", "Globex"]
    assert [str(t.ref) for t in rollup.companies[0].tickets] == ["zendesk:ticket:1", "zendesk:ticket:3"]


def test_money_is_summed_exactly_per_currency_and_never_across() -> None:
    """Decimal sums per currency (0.10 + 0.20 is exactly 0.30); EUR is never added to USD."""
    rollup = impact.compute(
        [link(1, ACME), link(2, GLOBEX), link(3, INITECH)],
        by_ref(
            customer(ACME, "Acme", arr="1000.10"),
            customer(GLOBEX, "Globex", arr="2000.20"),
            customer(INITECH, "Initech", arr="500", currency="eur"),
        ),
        {},
    )
    assert rollup.arr == {"USD": Decimal("3000.30"), "EUR": Decimal("500")}
    assert impact.values(rollup)["arr"] == pytest.approx(3000.30)
    assert impact.arr_field_currency(rollup.arr) == "USD"
    assert impact.arr_field_currency(rollup.arr, "eur") == "EUR"
    assert impact.values(rollup, arr_currency="EUR")["arr"] == 500
    assert impact.values(rollup, arr_currency="GBP")["arr"] is None
    assert rollup.as_dict()["arr"] == {"EUR": "500", "USD": "3000.30"}


def test_largest_sum_picks_the_field_currency_and_ties_go_alphabetical() -> None:
    assert impact.arr_field_currency({"USD": Decimal(5), "EUR": Decimal(7)}) == "EUR"
    assert impact.arr_field_currency({"USD": Decimal(5), "EUR": Decimal(5)}) == "EUR"
    assert impact.arr_field_currency({}) is None


def test_missing_arr_is_unknown_not_zero() -> None:
    """A company without ARR (or without a currency) is named as unknown; with no known ARR the sum is unknown."""
    only_unknown = impact.compute([link(1, ACME)], by_ref(customer(ACME, "Acme")), {})
    assert only_unknown.arr == {}
    assert only_unknown.arr_unknown == ("Acme",)
    assert impact.values(only_unknown)["arr"] is None
    mixed = impact.compute(
        [link(1, ACME), link(2, GLOBEX)],
        by_ref(customer(ACME, "Acme", arr="100"), customer(GLOBEX, "Globex", arr="50", currency=None)),
        {},
    )
    assert mixed.arr == {"USD": Decimal("100")}
    assert mixed.arr_unknown == ("Globex",)


def test_unknown_customers_count_as_tickets_without_a_company() -> None:
    """A ticket whose customer the CRM does not know adds a ticket, not a customer; a company without a
    snapshot still counts, with its name and ARR unknown."""
    rollup = impact.compute([link(1, None), link(2, GLOBEX), link(3, None)], {}, {})
    assert rollup.customers == 1
    assert len(rollup.tickets) == 3
    assert [str(t.ref) for t in rollup.without_company] == ["zendesk:ticket:1", "zendesk:ticket:3"]
    assert rollup.arr_unknown == (str(GLOBEX),)
    assert rollup.tier is None
    assert rollup.renewal is None


def test_the_same_ticket_linked_twice_counts_once() -> None:
    rollup = impact.compute([link(1, ACME), link(1, ACME)], by_ref(customer(ACME, "Acme", arr="1")), {})
    assert len(rollup.tickets) == 1


def test_soonest_renewal_skips_unreadable_dates() -> None:
    companies = [
        impact.CompanyImpact(ACME, "Acme", None, None, None, "not a date", ()),
        impact.CompanyImpact(GLOBEX, "Globex", None, None, None, "2027-05-01", ()),
        impact.CompanyImpact(INITECH, "Initech", None, None, None, "2027-02-01T00:00:00Z", ()),
    ]
    assert impact.soonest_renewal(companies) == ("2027-02-01", "Initech")
    assert impact.soonest_renewal([]) == (None, None)


def test_tier_order_is_configurable_and_unlisted_tiers_rank_last() -> None:
    assert impact.rank_tiers(["standard", "Growth", "strategic"]) == ("strategic", "growth", "standard")
    assert impact.rank_tiers(["gold", "standard"]) == ("standard", "gold")
    assert impact.rank_tiers(["gold", "silver"], ["silver", "gold"]) == ("silver", "gold")
    assert impact.rank_tiers([None, " "]) == ()


def test_oldest_open_ticket_ignores_solved_and_closed() -> None:
    tickets = [facts(1, status="solved", day=1), facts(2, status="pending", day=5), facts(3, day=3)]
    oldest = impact.oldest_open(tickets)
    assert oldest is not None
    assert oldest.ref == ticket_ref(3)
    assert impact.oldest_open([facts(1, status="closed")]) is None


def test_field_values_follow_the_configured_map_and_refuse_unknown_values() -> None:
    rollup = impact.compute(
        [link(1, ACME), link(2, GLOBEX)],
        by_ref(
            customer(ACME, "Acme", arr="480000", tier="strategic", renewal="2027-01-31"),
            customer(GLOBEX, "Globex", arr="150000.50", tier="enterprise", renewal="2027-03-15"),
        ),
        {str(ticket_ref(1)): facts(1, day=2), str(ticket_ref(2)): facts(2, day=4)},
    )
    values = impact.field_values(rollup, FIELDS)
    assert values == {
        "customfield_10100": 630000.5,
        "customfield_10101": 2,
        "customfield_10102": 2,
        "customfield_10103": "2027-01-31",
        "customfield_10104": "strategic",
        "customfield_10105": "2026-11-02",
        "customfield_10106": 4,  # strategic: the first of the four default tiers
    }
    assert impact.field_values(rollup, {"tickets": "customfield_1"}) == {"customfield_1": 2}
    with pytest.raises(ConfigError, match="unknown rollup value 'revenue'"):
        impact.field_values(rollup, {"revenue": "customfield_1"})


def test_field_writes_are_a_valid_edit_issue_body() -> None:
    """The edit the rollup sends (fields + description + update.labels) matches Jira's editIssue schema."""
    rollup = impact.compute([link(1, ACME)], by_ref(customer(ACME, "Acme", arr="12.5", tier="growth")), {})
    block = impact.managed_block(
        Handoff().render(impact.TEMPLATE, {"impact": impact.template_context(rollup)})
    ).markdown
    add, remove = impact.label_changes(["cxbridge", "cxb-tier-strategic"], rollup.tiers)
    body = {
        "fields": {**impact.field_values(rollup, FIELDS), "description": markdown_to_adf(block)},
        "update": {"labels": [{"add": x} for x in add] + [{"remove": x} for x in remove]},
    }
    Spec("jira").validate_request("PUT", "/rest/api/3/issue/{issueIdOrKey}", body)
    validate_adf(body["fields"]["description"])
    assert body["update"]["labels"] == [{"add": "cxb-tier-growth"}, {"remove": "cxb-tier-strategic"}]


def test_tier_labels_add_the_present_and_remove_only_stale_tier_labels() -> None:
    add, remove = impact.label_changes(["cxbridge", "cxb-tier-standard", "cxb-tier-strategic", "mine"], ["strategic"])
    assert add == []
    assert remove == ["cxb-tier-standard"]
    assert impact.label_changes([], ["key account"]) == (["cxb-tier-key_account"], [])


def test_numbers_compare_as_jira_returns_them() -> None:
    assert impact.same_value(2, 2.0)
    assert impact.same_value(630000.5, 630000.5)
    assert not impact.same_value(2, 3.0)
    assert impact.same_value(None, None)
    assert not impact.same_value(None, 0)
    assert impact.same_value("2027-01-31", "2027-01-31")


# -- the block ----------------------------------------------------------------------------------------------


def rendered_block(rollup: impact.Rollup) -> ManagedBlock:
    return impact.managed_block(Handoff().render(impact.TEMPLATE, {"impact": impact.template_context(rollup)}))


def two_company_rollup(arr: str = "480000") -> impact.Rollup:
    return impact.compute(
        [link(1, ACME), link(2, GLOBEX), link(3, None)],
        by_ref(
            customer(ACME, "Acme [Corp] *", arr=arr, tier="strategic", renewal="2027-01-31"),
            customer(GLOBEX, "Globex", arr="100", currency="EUR", tier="enterprise"),
        ),
        {str(ticket_ref(n)): facts(n, day=n) for n in (1, 2, 3)},
    )


def test_the_block_renders_every_value_and_escapes_names() -> None:
    """The block's Markdown holds every rollup value; customer names stay data, not markup."""
    adf = markdown_to_adf(rendered_block(two_company_rollup()).markdown)
    validate_adf(adf)
    plain = plain_text(adf)
    assert "2 customers, 3 tickets" in plain
    assert "480,000 USD" in plain
    assert "100 EUR" in plain
    assert "Acme [Corp] *" in plain  # data, not markup
    assert "1 from customers unknown to the CRM" in plain
    assert plain.rstrip().endswith(impact.BLOCK_END)


def many(tickets: int, companies: int, unknown: int) -> impact.Rollup:
    """``tickets`` tickets spread over ``companies`` companies (ARR 1,000 x their number) plus ``unknown`` tickets
    from customers the CRM does not know."""
    refs = [Ref("hubspot", "company", str(n)) for n in range(1, companies + 1)]
    links = [link(n, refs[n % companies]) for n in range(tickets - unknown)]
    links += [link(n, None) for n in range(tickets - unknown, tickets)]
    snaps = by_ref(*(customer(c, f"Company {c.id}", arr=str(1000 * int(c.id)), tier="growth") for c in refs))
    return impact.compute(links, snaps, {str(ticket_ref(n)): facts(n, day=1 + n % 28) for n in range(tickets)})


def test_the_block_stays_bounded_with_the_top_customers_and_and_n_more() -> None:
    """Issue 16: 400 tickets from 60 companies (and 30 unknown to the CRM) render the top 10 customers by ARR with
    at most 5 tickets each, "and N more" for the rest; the totals still cover every ticket; the size is bounded."""
    big = many(400, 60, 30)
    plain = plain_text(markdown_to_adf(rendered_block(big).markdown))
    assert "60 customers, 400 tickets" in plain
    assert "30 from customers unknown to the CRM" in plain
    assert [n for n in range(1, 61) if f"Company {n}\n" in plain] == list(range(51, 61))  # the 10 largest ARRs
    rest = sum(len(c.tickets) for c in big.companies[10:])
    assert f"and 50 more customers {rest} tickets" in " ".join(plain.split())
    assert plain.count(" and 1 more") == 10  # 6 tickets each, 5 listed
    assert "and 25 more" in plain  # 30 without a company, 5 listed
    # bounded: ten times the tickets and companies leave the section the same size (give or take digits)
    huge = len(rendered_block(many(4000, 600, 300)).markdown)
    assert huge < 1.05 * len(rendered_block(big).markdown)
    few = impact.template_context(big, top_customers=3, tickets_per_customer=2)
    assert (len(few["companies"]), few["companies_more"]) == (3, 57)
    assert [len(c["tickets"]) for c in few["companies"]] == [2, 2, 2]
    assert few["companies"][0]["tickets_more"] == len(big.companies[0].tickets) - 2


def test_a_markdown_tracker_gets_the_block_spliced_in_place() -> None:
    """The role's default splicing (Markdown descriptions): replaced between its markers, then idempotent."""
    before, after = "## Engineering notes\n\nSomething the engineer wrote.", "## Later\n\nBelow the block."
    old, new = rendered_block(two_company_rollup()), rendered_block(two_company_rollup(arr="999"))
    original = before + "\n\n" + old.markdown + "\n" + after
    spliced, changed = Tracker.replace_block(None, original, new)  # type: ignore[arg-type]
    assert changed
    assert spliced == before + "\n\n" + new.markdown + "\n" + after
    again, changed_again = Tracker.replace_block(None, spliced, new)  # type: ignore[arg-type]
    assert (again, changed_again) == (spliced, False)
    appended, changed = Tracker.replace_block(None, "Just the report.", new)  # type: ignore[arg-type]
    assert changed
    assert appended == "Just the report.\n\n" + new.markdown.strip("\n")


# -- snapshots ----------------------------------------------------------------------------------------------


def test_customer_snapshots_round_trip_exact_money() -> None:
    original = customer(ACME, "Acme", arr="480000.10", tier="strategic", renewal="2027-01-31")
    back = impact.customer_from_dict(impact.customer_to_dict(original))
    assert back == original


def test_for_a_new_issue_the_rollup_is_the_one_ticket() -> None:
    """Before the issue exists, its rollup is this ticket and its customer (same as the store gives later)."""
    ticket = Ticket(
        ref=ticket_ref(1),
        url="https://acme.zendesk.com/agent/tickets/1",
        subject="CSV",
        status="open",
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    acme = customer(ACME, "Acme", arr="480000", tier="Strategic", renewal="2027-01-31")
    facts_now = impact.ticket_facts(ticket, acme)
    rollup = impact.compute([link(1, ACME)], by_ref(acme), {str(ticket.ref): facts_now})
    assert impact.values(rollup) == {
        "arr": 480000,
        "customers": 1,
        "tickets": 1,
        "renewal": "2027-01-31",
        "tier": "strategic",
        "tier_rank": 4,
        "oldest": "2026-11-01",
    }


def test_the_tier_rank_sorts_as_the_tiers_are_ordered() -> None:
    """``tier_rank``: the first configured tier ranks highest, an unlisted tier 0, no tier None."""
    assert [impact.tier_rank(t) for t in ("strategic", "enterprise", "growth", "Standard", "gold")] == [4, 3, 2, 1, 0]
    assert impact.tier_rank("gold", ("gold", "silver")) == 2
    rollup = impact.compute([link(1, ACME), link(2, GLOBEX)], by_ref(customer(GLOBEX, "Globex", tier="growth")), {})
    assert (rollup.tier, rollup.tier_rank) == ("growth", 2)
    assert impact.compute([link(1, ACME)], {}, {}).tier_rank is None
