"""HubSpot as a helpdesk (its tickets), against canned HubSpot answers checked against HubSpot's descriptions.

Every canned body is validated against the operation's response schema before it is served; every JSON body
the connector sends is validated against the operation's request schema when the test ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses
from cxbridge_hubspot.connector import HubSpotConnector, html_to_text, text_to_html
from cxbridge_hubspot.sandbox.backend import HubSpotBackend

from cxbridge.sdk import CRM, CRM_ROLE, HELPDESK, ConfigError, Helpdesk, Ref, Secret, SystemConfig, Ticket, Triggers
from cxbridge.testing import CannedVendor, build_connector, spec_by_prefix

BASE = "https://api.hubapi.com"
TOKEN = "pat-na1-66666666-7777-8888-9999-000000000000"
PORTAL = "24681357"
TICKET_READ = [
    "subject",
    "content",
    "hs_pipeline",
    "hs_pipeline_stage",
    "hs_ticket_priority",
    "createdate",
    "hs_lastmodifieddate",
    "cxbridge_escalate",
    "cxbridge_issue_key",
]
"""The ticket properties a read asks for, in order (written out here, not taken from the connector)."""

spec_for = spec_by_prefix(HubSpotBackend.spec_prefixes)


def record(oid: str, properties: dict[str, str], *, modified: str = "2026-03-02T10:00:00.000Z") -> dict[str, Any]:
    return {
        "id": oid,
        "properties": {"hs_object_id": oid, "createdate": "2026-03-01T08:30:00.000Z", **properties},
        "createdAt": "2026-03-01T08:30:00.000Z",
        "updatedAt": modified,
        "archived": False,
    }


def ticket_body(
    oid: str = "5001",
    *,
    contacts: list[str] | None = None,
    companies: list[str] | None = None,
    modified: str = "2026-03-02T10:00:00.000Z",
    **properties: str,
) -> dict[str, Any]:
    props = {
        "subject": "Exports time out",
        "content": "The monthly export never finishes.",
        "hs_pipeline": "0",
        "hs_pipeline_stage": "1",
        "hs_ticket_priority": "HIGH",
        "hs_lastmodifieddate": modified,
        **properties,
    }
    body = record(oid, props, modified=modified)
    associations: dict[str, Any] = {}
    if contacts:
        associations["contacts"] = {"results": [{"id": c, "type": "ticket_to_contact"} for c in contacts]}
    if companies:
        associations["companies"] = {"results": [{"id": c, "type": "ticket_to_company"} for c in companies]}
    if associations:
        body["associations"] = associations
    return body


def note_body(oid: str, html_body: str, timestamp: str) -> dict[str, Any]:
    body = record(oid, {"hs_note_body": html_body, "hs_timestamp": timestamp, "hs_createdate": timestamp})
    body["properties"].pop("createdate")
    return body


def batch(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "status": "COMPLETE",
        "results": results,
        "startedAt": "2026-03-02T10:00:01.000Z",
        "completedAt": "2026-03-02T10:00:01.050Z",
    }


def note_links(ids: list[str], after: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "results": [
            {"toObjectId": i, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 227}]} for i in ids
        ]
    }
    if after is not None:
        body["paging"] = {"next": {"after": after, "link": f"{BASE}/crm/v4/objects/tickets/5001/associations/notes"}}
    return body


class Vendor(CannedVendor):
    """Canned HubSpot: queues validated responses, records what the connector sent."""

    def reply(self, method: str, path: str, body: Any, *, status: int = 200) -> None:
        spec = spec_for(path)
        template = spec.match_path(method, path)
        if status >= 400:
            spec.validate_schema("Error", body)
        else:
            spec.validate_response(method, template, status, body)
        self.rsps.add(method, re.compile(re.escape(BASE + path) + r"(\?.*)?$"), json=body, status=status)


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        v = Vendor(rsps)
        yield v
        v.check_sent(spec_for)


def make_config(**options: Any) -> SystemConfig:
    opts: dict[str, Any] = {"access_token": Secret(TOKEN), "portal_id": PORTAL}
    opts.update(options)
    return SystemConfig(name="hubspot", plugin="hubspot", base_url=BASE, max_retries=0, options=opts)


def build(config: SystemConfig | None = None) -> HubSpotConnector:
    return build_connector(HubSpotConnector, config or make_config(), session=requests.Session())


@pytest.fixture
def hs() -> HubSpotConnector:
    return build()


# -- roles and configuration -------------------------------------------------------------------------------------


def test_fills_both_roles() -> None:
    """One connector class is the CRM and a helpdesk: both role sets and both interfaces."""
    assert HubSpotConnector.roles == frozenset({CRM_ROLE, HELPDESK})
    assert issubclass(HubSpotConnector, Helpdesk)
    assert issubclass(HubSpotConnector, CRM)
    keys = HubSpotConnector.config_keys
    assert keys["escalate_property"].default == "cxbridge_escalate"
    assert keys["escalate_value"].default == "true"
    assert keys["issue_key_property"].default == "cxbridge_issue_key"
    assert not keys["portal_id"].required


def test_ticket_url_needs_the_portal_id() -> None:
    """The app link names the account; without ``portal_id`` it is a ConfigError naming the key."""
    assert build().ticket_url("5001") == f"https://app.hubspot.com/contacts/{PORTAL}/record/0-5/5001"
    eu = build(make_config(portal_id=139, app_url="https://app-eu1.hubspot.com/"))
    assert eu.ticket_url("7") == "https://app-eu1.hubspot.com/contacts/139/record/0-5/7"
    with pytest.raises(ConfigError, match=r"systems\.hubspot\.portal_id"):
        build(make_config(portal_id=None)).ticket_url("5001")
    with pytest.raises(ValueError, match="not a HubSpot record id"):
        build().ticket_url("../contacts/1")


# -- reading tickets ---------------------------------------------------------------------------------------------


def test_get_ticket_reads_ticket_and_requester_in_two_calls(vendor: Vendor, hs: HubSpotConnector) -> None:
    """One ticket read with properties and associations, one read of the first contact."""
    vendor.reply(
        "GET",
        "/crm/v3/objects/tickets/5001",
        ticket_body(contacts=["301", "302"], companies=["901"], cxbridge_escalate="true", cxbridge_issue_key="ENG-7"),
    )
    vendor.reply(
        "GET",
        "/crm/v3/objects/contacts/301",
        record(
            "301", {"email": "grace@globex.example", "firstname": "Grace", "lastname": "Hopper", "company": "Globex"}
        ),
    )
    ticket = hs.get_ticket("5001")
    assert len(vendor.calls) == 2
    query = vendor.query(0)
    assert query["associations"] == ["contacts,companies"]
    assert query["properties"][0].split(",") == TICKET_READ
    assert vendor.query(1)["properties"] == ["email,firstname,lastname,company"]
    assert ticket.ref == Ref("hubspot", "ticket", "5001")
    assert ticket.url == f"https://app.hubspot.com/contacts/{PORTAL}/record/0-5/5001"
    assert (ticket.subject, ticket.description) == ("Exports time out", "The monthly export never finishes.")
    assert (ticket.status, ticket.priority, ticket.tags) == ("1", "high", [])
    assert ticket.requester is not None
    assert (ticket.requester.name, ticket.requester.email) == ("Grace Hopper", "grace@globex.example")
    assert ticket.requester.ref == Ref("hubspot", "contact", "301")
    assert ticket.organization == "Globex"
    assert ticket.custom_fields["cxbridge_issue_key"] == "ENG-7"
    assert hs.requested_issue_key(ticket) == "ENG-7"
    assert hs.wants_escalation(ticket, Triggers())
    assert ticket.created_at == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    assert ticket.updated_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_ticket_without_contact_is_one_call(vendor: Vendor) -> None:
    """No associated contact: no requester, no second call; configured property names are asked for."""
    hs = build(make_config(escalate_property="escalate_to_engineering", issue_key_property="jira_key"))
    vendor.reply("GET", "/crm/v3/objects/tickets/5001", ticket_body(hs_ticket_priority="MEDIUM", jira_key=" eng-9 "))
    ticket = hs.get_ticket("5001")
    assert len(vendor.calls) == 1
    assert vendor.query(0)["properties"][0].endswith(",escalate_to_engineering,jira_key")
    assert ticket.requester is None
    assert ticket.priority == "normal"
    assert hs.requested_issue_key(ticket) == "ENG-9"
    assert not hs.wants_escalation(ticket, Triggers())
    ticket.custom_fields["jira_key"] = "not a key"
    assert hs.requested_issue_key(ticket) is None


def test_list_comments_reads_every_note_oldest_first(vendor: Vendor, hs: HubSpotConnector) -> None:
    """The ticket's notes through both pages of the v4 association list, as plain text, oldest first."""
    vendor.reply("GET", "/crm/v4/objects/tickets/5001/associations/notes", note_links(["8002"], after="1"))
    vendor.reply("GET", "/crm/v4/objects/tickets/5001/associations/notes", note_links(["8001"]))
    vendor.reply(
        "POST",
        "/crm/v3/objects/notes/batch/read",
        batch(
            [
                note_body("8002", "<p>Second &amp; last</p><p>line two<br>line three</p>", "2026-03-02T09:00:00.000Z"),
                note_body("8001", "<div>First</div>", "2026-03-01T09:00:00.000Z"),
            ]
        ),
    )
    comments = hs.list_comments("5001")
    assert [c.ref.id for c in comments] == ["8001", "8002"]
    assert comments[1].body == "Second & last\n\nline two\nline three"
    assert all(not c.public for c in comments)
    assert vendor.query(1)["after"] == ["1"]
    assert vendor.sent(2)["inputs"] == [{"id": "8002"}, {"id": "8001"}]


def test_text_and_html_round_trip() -> None:
    """Plain text becomes escaped paragraphs; reading it back gives the text."""
    text = "Escalated to engineering: ENG-1 <https://x>\nPriority High.\n\nYou will hear back."
    markup = text_to_html(text)
    assert markup == (
        "<p>Escalated to engineering: ENG-1 &lt;https://x&gt;<br>Priority High.</p><p>You will hear back.</p>"
    )
    assert html_to_text(markup) == text


# -- writing ---------------------------------------------------------------------------------------------------


def escalation_ticket(hs: HubSpotConnector, **properties: str) -> Ticket:
    raw = ticket_body(**properties)
    return hs._ticket_from(raw)


def test_record_escalation_writes_key_and_one_note(vendor: Vendor, hs: HubSpotConnector) -> None:
    """A PATCH of the differing properties, then one note associated with the ticket (type 228)."""
    vendor.reply("PATCH", "/crm/v3/objects/tickets/5001", ticket_body(cxbridge_issue_key="ENG-42"))
    vendor.reply("POST", "/crm/v3/objects/notes", note_body("8100", "<p>x</p>", "2026-03-02T10:00:00.000Z"), status=201)
    ticket = escalation_ticket(hs, cxbridge_escalate="true")
    assert hs.record_escalation(ticket, note="Escalated: ENG-42", tag="esc", issue_key="ENG-42", issue_url="u")
    assert vendor.sent(0) == {"properties": {"cxbridge_issue_key": "ENG-42"}}
    note = vendor.sent(1)
    assert note["associations"] == [
        {"to": {"id": "5001"}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 228}]}
    ]
    assert note["properties"]["hs_note_body"] == "<p>Escalated: ENG-42</p><p>cxbridge: escalated ENG-42</p>"


def test_record_escalation_sets_the_escalation_property_for_the_tag(vendor: Vendor, hs: HubSpotConnector) -> None:
    """Escalated from the CLI (property unset): the key and the escalation value go out in one PATCH."""
    vendor.reply("PATCH", "/crm/v3/objects/tickets/5001", ticket_body())
    vendor.reply("POST", "/crm/v3/objects/notes", note_body("8100", "<p>x</p>", "2026-03-02T10:00:00.000Z"), status=201)
    assert hs.record_escalation(escalation_ticket(hs), note="n", tag="t", issue_key="ENG-1", issue_url="u")
    assert vendor.sent(0) == {"properties": {"cxbridge_issue_key": "ENG-1", "cxbridge_escalate": "true"}}


def test_record_escalation_applied_before_writes_nothing(vendor: Vendor, hs: HubSpotConnector) -> None:
    """Key and value in place and the marked note on the ticket: False, and only reads."""
    vendor.reply("GET", "/crm/v4/objects/tickets/5001/associations/notes", note_links(["8100"]))
    vendor.reply(
        "POST",
        "/crm/v3/objects/notes/batch/read",
        batch([note_body("8100", "<p>n</p><p>cxbridge: escalated ENG-42</p>", "2026-03-02T10:00:00.000Z")]),
    )
    ticket = escalation_ticket(hs, cxbridge_escalate="true", cxbridge_issue_key="ENG-42")
    assert not hs.record_escalation(ticket, note="n", tag="t", issue_key="ENG-42", issue_url="u")
    assert [c.request.method for c in vendor.calls] == ["GET", "POST"]  # the POST is the batch read


def test_record_escalation_after_a_crash_writes_only_the_missing_note(vendor: Vendor, hs: HubSpotConnector) -> None:
    """The key was written but the note not (or the agent typed the key): one note, no PATCH.

    A note for another key (``ENG-4`` is a prefix of ``ENG-42``) does not count.
    """
    vendor.reply("GET", "/crm/v4/objects/tickets/5001/associations/notes", note_links(["8099"]))
    vendor.reply(
        "POST",
        "/crm/v3/objects/notes/batch/read",
        batch([note_body("8099", "<p>cxbridge: escalated ENG-4</p>", "2026-03-01T10:00:00.000Z")]),
    )
    vendor.reply("POST", "/crm/v3/objects/notes", note_body("8100", "<p>x</p>", "2026-03-02T10:00:00.000Z"), status=201)
    ticket = escalation_ticket(hs, cxbridge_escalate="true", cxbridge_issue_key="ENG-42")
    assert hs.record_escalation(ticket, note="n", tag="t", issue_key="ENG-42", issue_url="u")
    assert [vendor.path(i) for i in range(3)] == [
        "/crm/v4/objects/tickets/5001/associations/notes",
        "/crm/v3/objects/notes/batch/read",
        "/crm/v3/objects/notes",
    ]


def test_add_internal_note_is_a_ticket_note(vendor: Vendor, hs: HubSpotConnector) -> None:
    """Plain text as HTML, associated with the ticket, no marker."""
    vendor.reply("POST", "/crm/v3/objects/notes", note_body("8200", "<p>x</p>", "2026-03-02T10:00:00.000Z"), status=201)
    hs.add_internal_note("5001", "ENG-42 moved to Done")
    sent = vendor.sent(0)
    assert sent["properties"]["hs_note_body"] == "<p>ENG-42 moved to Done</p>"
    assert sent["associations"][0]["to"] == {"id": "5001"}


def test_set_status_compares_before_writing(vendor: Vendor, hs: HubSpotConnector) -> None:
    """Same stage: one read, False. Another stage: read, then a PATCH of hs_pipeline_stage."""
    vendor.reply("GET", "/crm/v3/objects/tickets/5001", ticket_body(hs_pipeline_stage="4"))
    assert not hs.set_status("5001", "4")
    assert vendor.query(0)["properties"] == ["hs_pipeline_stage"]
    vendor.reply("PATCH", "/crm/v3/objects/tickets/5001", ticket_body(hs_pipeline_stage="3"))
    assert hs.set_status("5001", "3")
    assert vendor.sent(2) == {"properties": {"hs_pipeline_stage": "3"}}
    assert len(vendor.calls) == 3


# -- scanning for changes --------------------------------------------------------------------------------------


def search_page(rows: list[tuple[str, str]], total: int, after: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "total": total,
        "results": [ticket_body(oid, modified=modified) for oid, modified in rows],
    }
    if after is not None:
        body["paging"] = {"next": {"after": after}}
    return body


T1, T2, T3 = "2026-03-02T10:00:00.000Z", "2026-03-02T10:00:05.000Z", "2026-03-02T10:00:09.000Z"
MS1, MS2, MS3 = 1772445600000, 1772445605000, 1772445609000


def test_changed_tickets_restarts_from_the_last_modified_time(vendor: Vendor, hs: HubSpotConnector) -> None:
    """Each request filters GTE the last time seen, sorted ascending, 100 a page; seen ids are skipped."""
    since = MS1 / 1000
    vendor.reply("POST", "/crm/v3/objects/tickets/search", search_page([("11", T1), ("12", T2)], 4, "2"))
    vendor.reply("POST", "/crm/v3/objects/tickets/search", search_page([("12", T2), ("13", T3)], 2, None))
    pages = list(hs.changed_tickets(None, since=since))
    assert [[t.ref.id for t in p.items] for p in pages] == [["11", "12"], ["13"]]
    assert [p.done for p in pages] == [False, True]
    assert pages[0].cursor == {"modified_ms": MS2, "ids": ["12"]}
    assert pages[1].cursor == {"modified_ms": MS3, "ids": ["13"]}
    first, second = vendor.sent(0), vendor.sent(1)
    assert first == {
        "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(MS1)}]}],
        "sorts": ["hs_lastmodifieddate"],
        "properties": TICKET_READ,
        "limit": 100,
        "after": "0",
    }
    assert second["filterGroups"][0]["filters"][0]["value"] == str(MS2)
    assert second["after"] == "0"
    assert pages[1].items[0].requester is None


def test_changed_tickets_resumes_from_a_cursor_and_pages_through_one_millisecond(
    vendor: Vendor, hs: HubSpotConnector
) -> None:
    """A saved cursor wins over ``since``; a page that makes no progress in time pages on with ``after``."""
    cursor = {"modified_ms": MS2, "ids": ["12"]}
    vendor.reply("POST", "/crm/v3/objects/tickets/search", search_page([("12", T2), ("14", T2)], 3, "2"))
    vendor.reply("POST", "/crm/v3/objects/tickets/search", search_page([("15", T2)], 3, None))
    pages = list(hs.changed_tickets(cursor, since=0))
    assert [[t.ref.id for t in p.items] for p in pages] == [["14"], ["15"]]
    assert pages[-1].cursor == {"modified_ms": MS2, "ids": ["12", "14", "15"]}
    assert vendor.sent(0)["filterGroups"][0]["filters"][0]["value"] == str(MS2)
    assert (vendor.sent(1)["after"], vendor.sent(1)["filterGroups"][0]["filters"][0]["value"]) == ("2", str(MS2))


def test_changed_tickets_stops_at_the_search_cap(vendor: Vendor, hs: HubSpotConnector) -> None:
    """When the next offset of a one-millisecond run would pass 10,000 results the scan ends, not loops."""
    vendor.reply("POST", "/crm/v3/objects/tickets/search", search_page([("12", T2)], 20_000, "10000"))
    pages = list(hs.changed_tickets({"modified_ms": MS2, "ids": []}, since=0))
    assert len(pages) == 1
    assert pages[0].done


def company_page(rows: list[tuple[str, str, str]], total: int, after: str | None) -> dict[str, Any]:
    """A companies search answer: (id, hs_lastmodifieddate, annualrevenue) per company."""
    body: dict[str, Any] = {
        "total": total,
        "results": [
            record(oid, {"name": f"Co {oid}", "annualrevenue": arr, "hs_lastmodifieddate": modified}, modified=modified)
            for oid, modified, arr in rows
        ],
    }
    if after is not None:
        body["paging"] = {"next": {"after": after}}
    return body


COMPANY_READ = ["name", "domain", "hs_lastmodifieddate", "tier", "annualrevenue", "renewal_date", "hubspot_owner_id"]


def test_changed_companies_searches_the_linked_companies_by_modified_time(vendor: Vendor, hs: HubSpotConnector) -> None:
    """One search on hs_lastmodifieddate GTE the checkpoint, ascending, 200 a page, the impact's properties,
    restricted to the linked ids with IN; each result is a ChangedCompany; the cursor moves to the last seen."""
    vendor.reply(
        "POST", "/crm/v3/objects/companies/search", company_page([("901", T1, "150000"), ("77", T2, "9")], 2, None)
    )
    pages = list(hs.changed_companies(None, since=MS1 / 1000, company_ids=["901", "77"]))
    assert [[(c.ref, c.properties["annualrevenue"]) for c in p.items] for p in pages] == [
        [(Ref("hubspot", "company", "901"), "150000"), (Ref("hubspot", "company", "77"), "9")]
    ]
    assert pages[0].items[1].updated_at is not None
    assert pages[0].items[1].updated_at.timestamp() * 1000 == MS2
    assert pages[0].done
    assert pages[0].cursor == {"modified_ms": MS2, "ids": ["77"]}
    assert vendor.sent(0) == {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(MS1)},
                    {"propertyName": "hs_object_id", "operator": "IN", "values": ["77", "901"]},
                ]
            }
        ],
        "sorts": ["hs_lastmodifieddate"],
        "properties": COMPANY_READ,
        "limit": 200,
        "after": "0",
    }


def test_changed_companies_moves_the_checkpoint_past_the_search_cap(vendor: Vendor, hs: HubSpotConnector) -> None:
    """More linked companies than one IN filter takes: every change is read and the others dropped; a query with
    more results than a page restarts from the last modified time (so 10,000 results are never paged through)."""
    linked = [str(n) for n in range(1, 151)]
    vendor.reply(
        "POST", "/crm/v3/objects/companies/search", company_page([("5", T1, "1"), ("999", T2, "2")], 12_000, "2")
    )
    vendor.reply("POST", "/crm/v3/objects/companies/search", company_page([("999", T2, "2"), ("6", T3, "3")], 2, None))
    pages = list(hs.changed_companies({"modified_ms": MS1, "ids": []}, since=0, company_ids=linked))
    assert [[c.ref.id for c in p.items] for p in pages] == [["5"], ["6"]]  # 999 is linked to nothing
    assert [p.done for p in pages] == [False, True]
    assert [f["propertyName"] for f in vendor.sent(0)["filterGroups"][0]["filters"]] == ["hs_lastmodifieddate"]
    assert vendor.sent(1)["filterGroups"][0]["filters"][0]["value"] == str(MS2)
    assert vendor.sent(1)["after"] == "0"
    assert pages[-1].cursor == {"modified_ms": MS3, "ids": ["6"]}


def test_changed_companies_with_no_linked_company_makes_no_call(hs: HubSpotConnector) -> None:
    with responses.RequestsMock():
        assert list(hs.changed_companies(None, since=0, company_ids=[])) == []


# -- CRM: a company by reference -----------------------------------------------------------------------------------


def test_get_customer_reads_company_and_open_deals(vendor: Vendor, hs: HubSpotConnector) -> None:
    """The company read of find_customer, with its open deals; a missing company is known=False."""
    company = record(
        "901",
        {
            "name": "Globex",
            "domain": "globex.example",
            "tier": "enterprise",
            "annualrevenue": "150000",
            "renewal_date": "2027-03-15",
        },
    )
    company["associations"] = {"deals": {"results": [{"id": "701", "type": "company_to_deal"}]}}
    vendor.reply("GET", "/crm/v3/objects/companies/901", company)
    vendor.reply(
        "POST",
        "/crm/v3/objects/deals/batch/read",
        batch([record("701", {"dealname": "Renewal", "dealstage": "qualifiedtobuy", "amount": "150000"})]),
    )
    customer = hs.get_customer(Ref("hubspot", "company", "901"))
    assert customer.known
    assert customer.company_ref == Ref("hubspot", "company", "901")
    assert (customer.name, customer.tier, customer.arr) == ("Globex", "enterprise", Decimal("150000"))
    assert [d.name for d in customer.deals] == ["Renewal"]
    vendor.reply(
        "GET",
        "/crm/v3/objects/companies/902",
        {"status": "error", "message": "resource not found", "correlationId": "c", "category": "OBJECT_NOT_FOUND"},
        status=404,
    )
    gone = hs.get_customer(Ref("hubspot", "company", "902"))
    assert not gone.known
    assert gone.company_ref == Ref("hubspot", "company", "902")
    with pytest.raises(ValueError, match="not a company of this CRM"):
        hs.get_customer(Ref("zendesk", "organization", "1"))
