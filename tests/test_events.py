"""The event router: escalation triggers (Zendesk tag, HubSpot property), echo suppression, routing by kind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cxbridge_zendesk.webhook import verify_zendesk

from cxbridge.errors import ConfigError
from cxbridge.models import Event, Link, Ref
from cxbridge.runtime import Runtime
from cxbridge.sandbox.base import WebhookTarget
from cxbridge.sandbox.modes import Vendors, mock_vendors
from cxbridge.testing import SandboxRuntimes, verify_deliveries
from cxbridge.workflows import events
from cxbridge.workflows.escalate import EscalationRequest
from cxbridge.workflows.events import enqueue_event, handle_event, system_name

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

HOOK_SECRET = "whsec-router-tests"
TAG = "escalated_to_engineering"


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as v:
        v["zendesk"].webhook_targets = [WebhookTarget(url="http://127.0.0.1:9/webhooks/zendesk", secret=HOOK_SECRET)]
        yield v


@pytest.fixture
def runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime(vendors)


def as_alex(vendors: Vendors, ticket_id: int, ticket: dict[str, Any]) -> None:
    """Alex (a support agent, not cxbridge) updates a ticket through the Zendesk API."""
    zendesk = vendors["zendesk"]
    response = requests.put(
        f"{zendesk.base_url}/api/v2/tickets/{ticket_id}",
        json={"ticket": ticket},
        auth=("alex@cxbridge.example/token", zendesk.credentials()["api_token"]),
        timeout=5,
    )
    assert response.status_code == 200, response.text


def tags_of(vendors: Vendors, ticket_id: int) -> list[str]:
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)
    return list(ticket["tags"])


def zendesk_events(vendors: Vendors, start: int) -> list[Event]:
    return verify_deliveries(verify_zendesk, vendors["zendesk"].webhooks_sent[start:], HOOK_SECRET)


def issue_count(vendors: Vendors) -> int:
    return len(vendors["jira"].state()["issues"])


def test_tag_escalates_exactly_once_even_when_handled_twice(vendors: Vendors, runtime: Runtime) -> None:
    start = len(vendors["zendesk"].webhooks_sent)
    as_alex(vendors, 2, {"tags": [*tags_of(vendors, 2), TAG]})
    (event,) = zendesk_events(vendors, start)
    assert event.kind == "ticket.tag_added"
    assert enqueue_event(runtime, "zendesk", event)
    assert not enqueue_event(runtime, "zendesk", event)  # the redelivery is a duplicate at the inbox
    first = handle_event(runtime, event, system="zendesk")
    again = handle_event(runtime, event)  # a worker replay; the system found from the plugin key
    assert first.startswith("escalated: zendesk:ticket:2 created ENG-1"), first
    assert again.startswith("unchanged"), again
    assert issue_count(vendors) == 1
    ticket_notes = [c for c in vendors["zendesk"].state()["tickets"][1]["comments"] if not c["public"]]
    assert len(ticket_notes) == 1
    entries = runtime.store.audit_entries(issue_key="ENG-1")
    assert [e.origin_event for e in entries if e.action == "escalate.create"] == [event.id]

    # the escalation's own note comes back from Zendesk: an echo, nothing written
    echoes = zendesk_events(vendors, start + 1)
    assert len(echoes) == 1, echoes
    assert all(handle_event(runtime, e).startswith("echo") for e in echoes)
    assert issue_count(vendors) == 1


def test_echoes_known_at_ingress_are_recorded_without_a_job(vendors: Vendors, runtime: Runtime) -> None:
    """Issue 16: an echo of cxbridge's own write is acknowledged and kept in the inbox, but queues no job, once
    its integration user is known in the process; before that, nothing is asked at ingress and the job drops it."""
    start = len(vendors["zendesk"].webhooks_sent)
    as_alex(vendors, 2, {"tags": [*tags_of(vendors, 2), TAG]})
    (event,) = zendesk_events(vendors, start)
    calls = vendors.calls()
    assert events.echo_at_ingress(runtime, "zendesk", event) is None  # the agent's tag is no echo
    assert vendors.calls() == calls  # and telling so called no vendor (cxbridge's id is not known yet)
    assert enqueue_event(runtime, "zendesk", event)
    assert handle_event(runtime, event, system="zendesk").startswith("escalated")  # learns cxbridge's id
    (echo,) = zendesk_events(vendors, start + 1)
    depth, calls = runtime.store.queue_depth(), vendors.calls()
    assert events.echo_at_ingress(runtime, "zendesk", echo) == "made by cxbridge's integration user on zendesk"
    assert enqueue_event(runtime, "zendesk", echo) is True
    assert enqueue_event(runtime, "zendesk", echo) is False  # a redelivery is still a duplicate
    row = runtime.store.inbox_row("zendesk", echo.id)
    assert row is not None
    assert row.job_id is None
    assert row.payload["id"] == echo.id
    assert runtime.store.queue_depth() == depth
    assert vendors.calls() == calls


def test_configured_integration_users_are_echoes_at_ingress(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    rt = sandbox_runtime(vendors, extra={"sync": {"integration_users": {"jira": ["acc-1", "acc-2"]}}})
    echo = Event(id="e1", system="jira", kind="jira:issue_updated", subject=Ref("jira", "issue", "1"), actor="acc-1")
    other = Event(id="e2", system="jira", kind="jira:issue_updated", subject=Ref("jira", "issue", "1"), actor="eve")
    assert enqueue_event(rt, "jira", echo)
    assert enqueue_event(rt, "jira", other)
    echo_row, other_row = rt.store.inbox_row("jira", "e1"), rt.store.inbox_row("jira", "e2")
    assert echo_row is not None
    assert echo_row.job_id is None
    assert other_row is not None
    assert other_row.job_id is not None
    assert rt.store.queue_depth()["ready"] == 1
    rt.close()


def test_an_issue_key_in_the_ticket_field_joins_that_issue(vendors: Vendors, runtime: Runtime) -> None:
    start = len(vendors["zendesk"].webhooks_sent)
    as_alex(vendors, 1, {"tags": [*tags_of(vendors, 1), TAG]})
    for event in zendesk_events(vendors, start):
        handle_event(runtime, event, system="zendesk")
    assert issue_count(vendors) == 1
    field_id = vendors["zendesk"].issue_key_field_id
    start = len(vendors["zendesk"].webhooks_sent)
    as_alex(vendors, 3, {"tags": [*tags_of(vendors, 3), TAG], "custom_fields": [{"id": field_id, "value": "eng-1"}]})
    outcomes = [handle_event(runtime, e, system="zendesk") for e in zendesk_events(vendors, start)]
    assert any(o.startswith("escalated: zendesk:ticket:3 joined ENG-1") for o in outcomes), outcomes
    assert issue_count(vendors) == 1
    assert [str(link.ticket) for link in runtime.store.links_for_issue_key("ENG-1")] == [
        "zendesk:ticket:1",
        "zendesk:ticket:3",
    ]


def test_linked_tickets_and_other_zendesk_events_write_nothing(vendors: Vendors, runtime: Runtime) -> None:
    start = len(vendors["zendesk"].webhooks_sent)
    as_alex(vendors, 1, {"tags": [*tags_of(vendors, 1), TAG]})
    for event in zendesk_events(vendors, start):
        handle_event(runtime, event, system="zendesk")
    start = len(vendors["zendesk"].webhooks_sent)
    as_alex(vendors, 1, {"comment": {"body": "Customer chased again.", "public": False}})
    as_alex(vendors, 2, {"comment": {"body": "Unrelated question.", "public": True}})
    calls = len(vendors["zendesk"].calls) + len(vendors["jira"].calls) + len(vendors["hubspot"].calls)
    outcomes = [handle_event(runtime, e, system="zendesk") for e in zendesk_events(vendors, start)]
    assert len(outcomes) == 2, outcomes
    assert outcomes[0].startswith("unchanged: zendesk:ticket:1 is linked to ENG-1"), outcomes
    assert outcomes[1].startswith("ignored"), outcomes
    assert len(vendors["zendesk"].calls) + len(vendors["jira"].calls) + len(vendors["hubspot"].calls) == calls
    assert issue_count(vendors) == 1


def test_hubspot_property_change_routes_to_an_escalation_with_hubspot_as_helpdesk(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The routing only (HubSpot as a helpdesk escalates through the same Escalation): a recording fake."""
    requests_seen: list[EscalationRequest] = []

    class FakeEscalation:
        def __init__(self, rt: Runtime) -> None:
            self.rt = rt

        def run(self, req: EscalationRequest) -> Any:
            requests_seen.append(req)
            ref = Ref("hubspot", "ticket", req.ticket_id)
            self.rt.store.add_link(Link(ticket=ref, issue=Ref("jira", "issue", "10000"), issue_key="ENG-9"))
            self.rt.store.audit(
                actor="agent", action="escalate.create", target="jira:issue:10000", result="ok", ticket=ref
            )  # the escalation's last step: it ran to its end
            return type(
                "Result", (), {"created": True, "issue_key": "ENG-9", "issue_url": "https://jira.example/browse/ENG-9"}
            )()

    monkeypatch.setattr(events, "Escalation", FakeEscalation)
    prop = runtime.connector("hubspot").config.get("escalate_property") or "cxbridge_escalate"

    def change(event_id: str, name: str, value: Any) -> Event:
        return Event(
            id=event_id,
            system="hubspot",
            kind="ticket.propertyChange",
            subject=Ref("hubspot", "ticket", "77"),
            actor="12345",
            payload={"objectId": 77, "propertyName": name, "propertyValue": value, "changeSource": "CRM_UI"},
        )

    assert handle_event(runtime, change("1", "subject", "x")).startswith("ignored")
    assert handle_event(runtime, change("2", prop, "false")).startswith("ignored")
    assert requests_seen == []
    assert handle_event(runtime, change("3", prop, "true")).startswith("escalated")
    assert handle_event(runtime, change("4", prop, "true")).startswith("unchanged")
    assert [(r.ticket_id, r.helpdesk, r.origin_event) for r in requests_seen] == [("77", "hubspot", "3")]


def test_configured_integration_users_are_echoes_without_a_call(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    rt = sandbox_runtime(vendors, extra={"sync": {"integration_users": {"jira": ["acc-1", "acc-2"], "zendesk": 42}}})
    calls = dict(vendors.calls())
    jira_event = Event(
        id="d1",
        system="jira",
        kind="jira:issue_updated",
        subject=Ref("jira", "issue", "10000"),
        actor="acc-2",
        payload={"issue": {"id": "10000"}},
    )
    zendesk_event = Event(
        id="d2", system="zendesk", kind="ticket.tag_added", subject=Ref("zendesk", "ticket", "1"), actor="42"
    )
    assert handle_event(rt, jira_event).startswith("echo")
    assert handle_event(rt, zendesk_event).startswith("echo")
    other = Event(id="d3", system="jira", kind="jira:issue_created", subject=Ref("jira", "issue", "1"), actor="x")
    assert handle_event(rt, other) == "ignored: jira:issue_created"
    assert vendors.calls() == calls
    rt.close()


def test_system_name_needs_a_configured_system(runtime: Runtime) -> None:
    event = Event(id="e", system="freshdesk", kind="ticket.updated", subject=Ref("freshdesk", "ticket", "1"))
    with pytest.raises(ConfigError):
        system_name(runtime, event)
    assert system_name(runtime, Event(id="e", system="jira", kind="k", subject=Ref("jira", "issue", "1"))) == "jira"


def test_zendesk_set_status_compares_before_writing(vendors: Vendors, runtime: Runtime) -> None:
    zendesk = runtime.helpdesk("zendesk")
    assert zendesk.set_status("1", "pending") is True
    assert zendesk.set_status("1", "pending") is False
    assert vendors["zendesk"].state()["tickets"][0]["status"] == "pending"
    with pytest.raises(ConfigError):
        zendesk.set_status("1", "resolved")


def test_an_escalation_interrupted_after_the_link_runs_again_to_its_end(vendors: Vendors, runtime: Runtime) -> None:
    """A 429 on the ticket update (after the link was stored) re-queues the job: the retry finishes the escalation.

    Found by benchmarks/bench_ratelimit.py: the router used to see the link and skip the ticket note for good.
    """
    from cxbridge.errors import RateLimited
    from cxbridge.sandbox import Fault

    start = len(vendors["zendesk"].webhooks_sent)
    as_alex(vendors, 2, {"tags": [*tags_of(vendors, 2), TAG]})
    (event,) = zendesk_events(vendors, start)
    runtime.limit_inline_waits(0)  # as in a worker: a Retry-After is not slept through
    vendors["zendesk"].faults.append(Fault(status=429, retry_after=30, method="PUT", path=r"/api/v2/tickets/2"))
    with pytest.raises(RateLimited):
        handle_event(runtime, event, system="zendesk")
    assert runtime.store.links_for_ticket(Ref("zendesk", "ticket", "2"))  # linked, but no note yet
    http: Any = runtime.helpdesk("zendesk").http
    later = time.time() + 31
    http._clock = lambda: later  # the worker runs the job again once the vendor's Retry-After has passed
    jira_calls = len(vendors["jira"].calls)
    retried = handle_event(runtime, event, system="zendesk")
    assert retried.startswith("escalated: zendesk:ticket:2 created ENG-1"), retried  # the issue it created
    # issue 16: the resumed create is audited as a create, and the issue (impact born with it) is not read again
    assert len(vendors["jira"].calls) == jira_calls
    actions = [e.action for e in runtime.store.audit_entries(issue_key="ENG-1") if e.action.startswith("escalate.")]
    assert actions == ["escalate.create"]
    ticket_notes = [c for c in vendors["zendesk"].state()["tickets"][1]["comments"] if not c["public"]]
    assert len(ticket_notes) == 1
    assert issue_count(vendors) == 1
    assert handle_event(runtime, event, system="zendesk").startswith("unchanged")
