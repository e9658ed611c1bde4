"""An issue closed in Jira as a duplicate of another (resolution Duplicate, a "duplicates" link) hands its
tickets over to that issue: store, remote links, both impacts and the ticket's key field follow; configurable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cxbridge_jira.webhook import verify_jira

from cxbridge.demo import DEMO_SETTINGS
from cxbridge.models import Ref
from cxbridge.runtime import Runtime
from cxbridge.sandbox.base import WebhookTarget
from cxbridge.sandbox.modes import Vendors, mock_vendors
from cxbridge.testing import SandboxRuntimes, verify_deliveries
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.events import enqueue_event, handle_event

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SECRET = "whsec-duplicates"
FIELDS: dict[str, str] = DEMO_SETTINGS["impact"]["fields"]


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as v:
        v["jira"].webhook_targets = [WebhookTarget(url="http://127.0.0.1:9/webhooks/jira", secret=SECRET)]
        yield v


def as_eve(vendors: Vendors, method: str, path: str, body: Any = None) -> requests.Response:
    jira = vendors["jira"]
    creds = jira.credentials()
    response = requests.request(
        method,
        f"{jira.base_url}/rest/api/3{path}",
        json=body,
        auth=(creds["engineer_email"], creds["engineer_api_token"]),
        timeout=5,
    )
    assert response.status_code < 300, response.text
    return response


def close_as_duplicate(vendors: Vendors, duplicate: str, original: str) -> None:
    """Eve links the issues (``duplicate`` duplicates ``original``) and closes the duplicate as Duplicate."""
    as_eve(
        vendors,
        "POST",
        "/issueLink",
        {"type": {"name": "Duplicate"}, "inwardIssue": {"key": duplicate}, "outwardIssue": {"key": original}},
    )
    transitions = as_eve(vendors, "GET", f"/issue/{duplicate}/transitions").json()["transitions"]
    done = next(t for t in transitions if t["to"]["name"] == "Done")
    as_eve(
        vendors,
        "POST",
        f"/issue/{duplicate}/transitions",
        {"transition": {"id": done["id"]}, "fields": {"resolution": {"name": "Duplicate"}}},
    )


def deliver(rt: Runtime, vendors: Vendors, start: int) -> list[str]:
    outcomes = []
    for event in verify_deliveries(verify_jira, vendors["jira"].webhooks_sent[start:], SECRET):
        enqueue_event(rt, "jira", event)
        outcomes.append(handle_event(rt, event, system="jira"))
    return outcomes


def issue(vendors: Vendors, key: str) -> dict[str, Any]:
    return next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)


def setup(rt: Runtime) -> tuple[str, str]:
    eng1 = Escalation(rt).run(EscalationRequest(ticket_id="1", note="Exports fail.")).issue_key
    eng2 = Escalation(rt).run(EscalationRequest(ticket_id="2", note="Big exports time out.")).issue_key
    return eng1, eng2


def test_a_duplicate_hands_its_tickets_over(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    rt = sandbox_runtime(vendors, extra={"impact": {"fields": FIELDS}})
    eng1, eng2 = setup(rt)
    url2 = rt.helpdesk("zendesk").ticket_url("2")
    start = len(vendors["jira"].webhooks_sent)
    close_as_duplicate(vendors, eng2, eng1)
    outcomes = deliver(rt, vendors, start)
    assert any(f"duplicate: {eng2} duplicates {eng1}; moved zendesk:ticket:2" in o for o in outcomes), outcomes
    ticket2 = Ref("zendesk", "ticket", "2")
    assert [link.issue_key for link in rt.store.links_for_ticket(ticket2)] == [eng1]
    assert url2 in [link["object"]["url"] for link in issue(vendors, eng1)["remoteLinks"]]
    assert issue(vendors, eng2)["remoteLinks"] == []
    assert (issue(vendors, eng1)["fields"][FIELDS["tickets"]], issue(vendors, eng2)["fields"][FIELDS["tickets"]]) == (
        2,
        0,
    )
    field_id = rt.config.system("zendesk").get("issue_key_field_id")
    zendesk_ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == 2)
    assert zendesk_ticket["custom_fields"][str(field_id)] == eng1
    # the same delivery again moves nothing and asks nothing
    calls = len(vendors["jira"].calls)
    again = deliver(rt, vendors, start)
    assert not any("duplicate:" in o for o in again)
    assert [c for c in vendors["jira"].calls[calls:] if "issuelinks" in c.path] == []


def test_carrying_duplicates_can_be_turned_off(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    rt = sandbox_runtime(vendors, extra={"sync": {"carry_duplicates": False}})
    eng1, eng2 = setup(rt)
    start = len(vendors["jira"].webhooks_sent)
    close_as_duplicate(vendors, eng2, eng1)
    outcomes = deliver(rt, vendors, start)
    assert not any("duplicate:" in o for o in outcomes), outcomes
    assert [link.issue_key for link in rt.store.links_for_ticket(Ref("zendesk", "ticket", "2"))] == [eng2]


def test_done_without_the_duplicate_resolution_keeps_the_tickets(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    rt = sandbox_runtime(vendors)
    eng1, eng2 = setup(rt)
    as_eve(
        vendors,
        "POST",
        "/issueLink",
        {"type": {"name": "Relates"}, "inwardIssue": {"key": eng2}, "outwardIssue": {"key": eng1}},
    )
    start = len(vendors["jira"].webhooks_sent)
    transitions = as_eve(vendors, "GET", f"/issue/{eng2}/transitions").json()["transitions"]
    done = next(t for t in transitions if t["to"]["name"] == "Done")
    as_eve(vendors, "POST", f"/issue/{eng2}/transitions", {"transition": {"id": done["id"]}})
    assert not any("duplicate:" in o for o in deliver(rt, vendors, start))
    assert [link.issue_key for link in rt.store.links_for_ticket(Ref("zendesk", "ticket", "2"))] == [eng2]


def test_a_ticket_whose_typed_key_names_the_survivor_moves_once(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    """An agent typed the surviving issue's key on a ticket of the duplicate before it was closed: the join is then
    a move (the ticket leaves the duplicate as it joins), and the hand-over does not try to unlink it again."""
    rt = sandbox_runtime(vendors, extra={"impact": {"fields": FIELDS}})
    eng1, eng2 = setup(rt)
    field_id = rt.config.system("zendesk").get("issue_key_field_id")
    response = requests.put(
        f"{vendors['zendesk'].base_url}/api/v2/tickets/2",
        json={"ticket": {"custom_fields": [{"id": field_id, "value": eng1}]}},
        auth=("alex@cxbridge.example/token", vendors["zendesk"].credentials()["api_token"]),
        timeout=5,
    )
    assert response.status_code == 200, response.text
    start = len(vendors["jira"].webhooks_sent)
    close_as_duplicate(vendors, eng2, eng1)
    outcomes = deliver(rt, vendors, start)
    assert any(f"duplicate: {eng2} duplicates {eng1}; moved zendesk:ticket:2" in o for o in outcomes), outcomes
    assert [link.issue_key for link in rt.store.links_for_ticket(Ref("zendesk", "ticket", "2"))] == [eng1]
    assert issue(vendors, eng2)["remoteLinks"] == []
    assert (issue(vendors, eng1)["fields"][FIELDS["tickets"]], issue(vendors, eng2)["fields"][FIELDS["tickets"]]) == (
        2,
        0,
    )
    ticket2 = Ref("zendesk", "ticket", "2")
    actions = [e.action for e in rt.store.audit_entries(ticket=ticket2)]
    assert (actions.count("unlink"), actions.count("escalate.link")) == (1, 1), actions
