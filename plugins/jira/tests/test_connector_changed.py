"""``JiraConnector.changed_issues``: JQL on ``updated`` through the search pagination, Cloud and Data Center."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from cxbridge_jira import connector as jira_module
from cxbridge_jira.connector import CHANGED_OVERLAP, INDEX_LAG, WIDEST_UTC_OFFSET, JiraConnector

from cxbridge.sdk import IssueSpec
from cxbridge.testing import SandboxRuntimes, Vendors, mock_vendors
from cxbridge.testing import record_requests as sent

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(params=["cloud", "datacenter"])
def deployment(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def vendors(deployment: str) -> Iterator[Vendors]:
    with mock_vendors(["jira"], seed="demo") as v:
        v["jira"].set_deployment(deployment)
        yield v


@pytest.fixture
def jira(vendors: Vendors, tmp_path: Path) -> Iterator[JiraConnector]:
    runtimes = SandboxRuntimes(tmp_path)
    connector = runtimes(vendors).tracker()
    assert isinstance(connector, JiraConnector)
    yield connector
    runtimes.close()


def jql_of(request: requests.PreparedRequest) -> str:
    if request.method == "POST":
        return str(json.loads(request.body or b"{}")["jql"])
    return parse_qs(urlsplit(str(request.url)).query)["jql"][0]


def searches(requests_sent: list[requests.PreparedRequest]) -> list[requests.PreparedRequest]:
    return [r for r in requests_sent if "/search" in urlsplit(str(r.url)).path]


def create(jira: JiraConnector, n: int) -> list[str]:
    return [jira.create_issue(IssueSpec("ENG", "Bug", f"issue {i}", "text")).key for i in range(n)]


def test_pages_of_changed_issues_with_the_fields_the_router_reads(
    jira: JiraConnector, deployment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jira_module, "SEARCH_PAGE_SIZE", 2)
    keys = create(jira, 5)
    jira.transition_by_name(keys[0], "Done")
    requests_sent = sent(jira)
    pages = list(jira.changed_issues(None, since=time.time() - 3600))
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert [p.done for p in pages] == [False, False, True]
    found = [i for p in pages for i in p.items]
    assert sorted(i.key for i in found) == sorted(keys)
    stamps = [i.updated_at for i in found]
    assert all(s is not None for s in stamps)
    assert stamps == sorted(stamps)
    done = next(i for i in found if i.key == keys[0])
    assert done.status == "Done"
    assert done.status_category == "done"
    for wanted in ("status", "updated", "fixVersions", "labels"):
        assert wanted in done.fields
    assert done.fields["status"]["statusCategory"]["key"] == "done"
    search_calls = searches(requests_sent)
    assert len(search_calls) == 3
    if deployment == "cloud":
        assert all(urlsplit(str(r.url)).path == "/rest/api/3/search/jql" for r in search_calls)
        second = json.loads(search_calls[1].body or b"{}")
        assert second["nextPageToken"]
        assert set(second["fields"]) >= {"status", "updated", "fixVersions", "labels"}
    else:
        assert all(urlsplit(str(r.url)).path == "/rest/api/2/search" for r in search_calls)
        assert [parse_qs(urlsplit(str(r.url)).query)["startAt"] for r in search_calls] == [["0"], ["2"], ["4"]]
    # the cursor marks the newest issue seen; the last one stays INDEX_LAG behind now
    assert pages[0].cursor["updated"] == pytest.approx(found[1].updated_at.timestamp())  # type: ignore[union-attr]
    assert pages[-1].cursor["updated"] >= time.time() - INDEX_LAG - 5


def test_the_jql_reaches_back_a_minute_in_the_users_time_zone(jira: JiraConnector, vendors: Vendors) -> None:
    """JQL dates are read in the searching user's zone: the mark is converted to it (myself.timeZone)."""
    vendors["jira"].integration_user.time_zone = "America/New_York"
    requests_sent = sent(jira)
    since = datetime(2026, 7, 1, 12, 30, 45, tzinfo=UTC).timestamp()
    list(jira.changed_issues(None, since=since))
    expected = datetime.fromtimestamp(since - CHANGED_OVERLAP, ZoneInfo("America/New_York")).strftime("%Y/%m/%d %H:%M")
    assert expected == "2026/07/01 08:29"
    assert jql_of(searches(requests_sent)[0]) == f'updated >= "{expected}" ORDER BY updated ASC'
    assert sum(1 for r in requests_sent if urlsplit(str(r.url)).path.endswith("/myself")) == 1
    list(jira.changed_issues(None, since=since))  # the zone is read once per connector
    assert sum(1 for r in requests_sent if urlsplit(str(r.url)).path.endswith("/myself")) == 1


def test_the_integration_user_comes_from_the_same_myself_read(
    jira: JiraConnector, vendors: Vendors, deployment: str
) -> None:
    """``GET /myself`` is read once per connector: the scan's time zone and the integration user share it."""
    me = vendors["jira"].integration_user
    requests_sent = sent(jira)
    list(jira.changed_issues(None, since=time.time() - 3600))
    assert jira.integration_user_id() == (me.account_id if deployment == "cloud" else me.name)
    assert sum(1 for r in requests_sent if urlsplit(str(r.url)).path.endswith("/myself")) == 1


def test_an_unknown_time_zone_shifts_by_the_widest_offset(jira: JiraConnector, vendors: Vendors) -> None:
    vendors["jira"].integration_user.time_zone = "Mars/Olympus_Mons"
    requests_sent = sent(jira)
    since = datetime(2026, 7, 1, 12, 30, tzinfo=UTC).timestamp()
    list(jira.changed_issues(None, since=since))
    literal = datetime.fromtimestamp(since - CHANGED_OVERLAP - WIDEST_UTC_OFFSET, UTC).strftime("%Y/%m/%d %H:%M")
    assert jql_of(searches(requests_sent)[0]) == f'updated >= "{literal}" ORDER BY updated ASC'


def test_a_saved_cursor_overrides_since_and_later_changes_come_back(jira: JiraConnector) -> None:
    keys = create(jira, 2)
    requests_sent = sent(jira)
    first = list(jira.changed_issues(None, since=time.time() - 3600))
    assert {i.key for p in first for i in p.items} == set(keys)
    mark = {"updated": time.time() + 7200}  # a cursor after every change so far
    assert [i for p in jira.changed_issues(mark, since=0) for i in p.items] == []
    literal = datetime.fromtimestamp(mark["updated"] - CHANGED_OVERLAP, UTC).strftime("%Y/%m/%d %H:%M")
    assert literal in jql_of(searches(requests_sent)[-1])
    jira.transition_by_name(keys[1], "In Progress")
    again = [i for p in jira.changed_issues(first[-1].cursor, since=0) for i in p.items]
    assert keys[1] in {i.key for i in again}


def test_a_scan_longer_than_the_page_guard_goes_on_and_never_loops(
    jira: JiraConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the search's page guard a new query starts from the newest issue seen; no progress ends the scan."""
    monkeypatch.setattr(jira_module, "SEARCH_PAGE_SIZE", 1)
    real = jira.search_pages
    monkeypatch.setattr(jira, "search_pages", lambda jql: real(jql, max_pages=2))
    create(jira, 3)  # all in one minute: the second query starts at the same minute and sees the same two
    requests_sent = sent(jira)
    pages = list(jira.changed_issues(None, since=time.time() - 3600))
    assert len(searches(requests_sent)) == 4
    assert not pages[-1].done  # the checkpoint is not at the end: the next run goes on from the mark
    assert pages[-1].cursor["updated"] == pytest.approx(pages[1].items[0].updated_at.timestamp())  # type: ignore[union-attr]
