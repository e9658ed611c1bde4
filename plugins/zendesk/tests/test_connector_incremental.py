"""``ZendeskConnector.changed_tickets``: the incremental export, against the emulator and canned answers."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from cxbridge_zendesk.connector import EXPORT_MIN_AGE, ZendeskConnector

from cxbridge.sdk import Secret, SystemConfig, Ticket, VendorError
from cxbridge.testing import SandboxRuntimes, Spec, Vendors, build_connector, mock_vendors
from cxbridge.testing import record_requests as sent

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

EXPORT_PATH = "/api/v2/incremental/tickets/cursor"


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with mock_vendors(["zendesk"], seed="demo") as v:
        v["zendesk"].incremental_delay = 0  # the export shows changes at once (Zendesk holds back a minute)
        yield v


@pytest.fixture
def zd(vendors: Vendors, tmp_path: Path) -> Iterator[ZendeskConnector]:
    runtimes = SandboxRuntimes(tmp_path)
    connector = runtimes(vendors).helpdesk()
    assert isinstance(connector, ZendeskConnector)
    yield connector
    runtimes.close()


def query(request: requests.PreparedRequest) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(request.url)).query)


def add_tickets(vendors: Vendors, count: int) -> None:
    z = vendors["zendesk"]
    with z.lock:
        agent = z.model.user_by_email("agent@cxbridge.example")
        for n in range(count):
            z.model.create_ticket({"ticket": {"subject": f"bulk {n}", "comment": {"body": "help"}}}, agent)


def test_pages_of_tickets_with_start_time_then_cursor(vendors: Vendors, zd: ZendeskConnector) -> None:
    """One Page per response: start_time on the first call, the after_cursor on the next, until end_of_stream."""
    add_tickets(vendors, 4)  # 3 demo tickets + 4 = 7
    requests_sent = sent(zd)
    pages = list(zd.changed_tickets(None, since=0, per_page=3))
    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert [p.done for p in pages] == [False, False, True]
    assert len(requests_sent) == math.ceil(7 / 3) == zd.http.counter.total("zendesk", "tickets.export")
    assert all(urlsplit(str(r.url)).path == EXPORT_PATH for r in requests_sent)
    first, second = query(requests_sent[0]), query(requests_sent[1])
    assert first["start_time"] == ["0"]
    assert "cursor" not in first
    assert second["cursor"] == [pages[0].cursor["cursor"]]
    assert "start_time" not in second
    assert second["per_page"] == ["3"]
    tickets = [t for p in pages for t in p.items]
    assert all(isinstance(t, Ticket) for t in tickets)
    assert sorted(int(t.ref.id) for t in tickets) == list(range(1, 8))
    demo = next(t for t in tickets if t.ref.id == "1")
    assert demo.tags == ["csv", "export"]
    assert demo.status == "open"
    assert demo.updated_at is not None
    assert demo.ref.system == "zendesk"
    assert demo.url.endswith("/agent/tickets/1")


def test_default_page_is_a_thousand_and_per_page_is_not_sent(vendors: Vendors, zd: ZendeskConnector) -> None:
    requests_sent = sent(zd)
    pages = list(zd.changed_tickets(None, since=0))
    assert len(pages) == 1
    assert len(pages[0].items) == 3
    assert pages[0].done
    assert "per_page" not in query(requests_sent[0])


def test_a_saved_cursor_resumes_after_its_page_and_sees_later_changes(vendors: Vendors, zd: ZendeskConnector) -> None:
    """The cursor of a page resumes right after it; the cursor at the end of the stream picks up new changes."""
    add_tickets(vendors, 3)  # 6 tickets
    first = next(iter(zd.changed_tickets(None, since=0, per_page=4)))
    rest = list(zd.changed_tickets(first.cursor, since=0, per_page=4))
    assert [len(p.items) for p in rest] == [2]
    assert rest[-1].done
    assert {t.ref.id for t in first.items}.isdisjoint({t.ref.id for t in rest[0].items})
    end = rest[-1].cursor
    assert next(iter(zd.changed_tickets(end, since=0))).items == []
    z = vendors["zendesk"]
    with z.lock:
        agent = z.model.user_by_email("agent@cxbridge.example")
        z.model.update_ticket(2, {"ticket": {"tags": ["csv", "escalated_to_engineering"]}}, agent)
    again = list(zd.changed_tickets(end, since=0))
    assert [t.ref.id for p in again for t in p.items] == ["2"]
    assert "escalated_to_engineering" in again[0].items[0].tags


def test_start_time_is_at_least_a_minute_ago(vendors: Vendors, zd: ZendeskConnector) -> None:
    requests_sent = sent(zd)
    now = time.time()
    list(zd.changed_tickets(None, since=now + 3600, now=now))
    assert query(requests_sent[0])["start_time"] == [str(int(now - EXPORT_MIN_AGE))]
    assert next(iter(zd.changed_tickets(None, since=now - 7200, now=now))).items == []  # demo tickets are days old
    assert query(requests_sent[1])["start_time"] == [str(int(now - 7200))]


def test_users_and_organizations_sideloaded_and_no_call_per_ticket(vendors: Vendors, zd: ZendeskConnector) -> None:
    """Every page asks for get_ticket's sideloads, so each exported ticket is a complete record (its requester's
    email, its organization's name and domains) and no ticket is read on its own."""
    add_tickets(vendors, 20)
    requests_sent = sent(zd)
    tickets = [t for p in zd.changed_tickets(None, since=0, per_page=10) for t in p.items]
    assert len(tickets) == 23
    assert len(requests_sent) == 3
    assert all(query(r)["include"] == ["users,organizations"] for r in requests_sent)
    assert all(t.complete for t in tickets)
    [ada] = [t for t in tickets if t.ref.id == "1"]
    read = zd.get_ticket("1")
    assert (ada.requester, ada.organization, ada.organization_domains) == (
        read.requester,
        read.organization,
        read.organization_domains,
    )
    assert ada.requester is not None
    assert ada.requester.email == "ada@acme.example"


def test_export_answers_match_the_spec(vendors: Vendors, zd: ZendeskConnector) -> None:
    """The emulator's export body is Zendesk's documented response, so the connector reads the real shape."""
    spec = Spec("zendesk")
    bodies: list[Any] = []
    zd.http.session.hooks["response"].append(lambda r, *a, **k: bodies.append(r.json()))
    list(zd.changed_tickets(None, since=0, per_page=2))
    assert len(bodies) == 2
    for body in bodies:
        spec.validate_response("GET", EXPORT_PATH, 200, body)


# --- canned answers: what the connector does with what a server says ------------------------------------------

BASE = "https://acme.zendesk.com"


def canned_connector() -> ZendeskConnector:
    cfg = SystemConfig(
        name="zendesk",
        plugin="zendesk",
        base_url=BASE,
        max_retries=0,
        options={"email": "a@acme.example", "api_token": Secret("tok-123"), "issue_key_field_id": 5},
    )
    return build_connector(ZendeskConnector, cfg)


def export_body(ids: list[int], after: str | None, end: bool, after_url: str | None = None) -> dict[str, Any]:
    return {
        "tickets": [{"id": i, "subject": f"t{i}", "tags": [], "updated_at": "2026-01-01T00:00:00Z"} for i in ids],
        "after_cursor": after,
        "after_url": after_url,
        "before_cursor": None,
        "before_url": None,
        "end_of_stream": end,
    }


@responses.activate
def test_after_url_is_never_followed_only_the_cursor() -> None:
    """A pagination link to another origin is ignored: the next call goes to the configured base URL."""
    responses.get(
        f"{BASE}{EXPORT_PATH}",
        json=export_body(
            [1], "c1", False, after_url="https://evil.example/api/v2/incremental/tickets/cursor?cursor=c1"
        ),
    )
    responses.get(f"{BASE}{EXPORT_PATH}", json=export_body([2], "c2", True))
    pages = list(canned_connector().changed_tickets(None, since=0))
    assert [p.cursor for p in pages] == [{"cursor": "c1"}, {"cursor": "c2"}]
    assert [urlsplit(c.request.url or "").netloc for c in responses.calls] == ["acme.zendesk.com"] * 2
    assert parse_qs(urlsplit(responses.calls[1].request.url or "").query)["cursor"] == ["c1"]


@responses.activate
def test_a_repeated_cursor_stops_the_scan() -> None:
    responses.get(f"{BASE}{EXPORT_PATH}", json=export_body([1], "same", False))
    pages = canned_connector().changed_tickets(None, since=0)
    next(pages)
    next(pages)
    with pytest.raises(VendorError, match="repeated a cursor"):
        next(pages)


@responses.activate
def test_an_answer_without_a_cursor_ends_the_scan_and_keeps_the_old_cursor() -> None:
    responses.get(f"{BASE}{EXPORT_PATH}", json=export_body([1], None, False))
    pages = list(canned_connector().changed_tickets({"cursor": "old"}, since=0))
    assert len(pages) == 1
    assert pages[0].done
    assert pages[0].cursor == {"cursor": "old"}
