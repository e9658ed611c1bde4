"""Agents are told: a dead-lettered escalation leaves exactly one explanatory internal note on its ticket, also
after retries, duplicate deliveries and replays; a replay that then goes through says so, once. Driven through the
worker (``drain``) and the in-process emulators, with an after-write fault on the note itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cxbridge_zendesk.webhook import verify_zendesk

from cxbridge.models import Event
from cxbridge.runtime import Runtime
from cxbridge.sandbox.base import Fault, WebhookTarget
from cxbridge.sandbox.modes import Vendors, mock_vendors
from cxbridge.testing import SandboxRuntimes, verify_deliveries
from cxbridge.worker import DrainReport, drain
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.events import enqueue_event

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

HOOK_SECRET = "whsec-notice-tests"
TAG = "escalated_to_engineering"
FAILED = "cxbridge could not escalate this ticket."
RECOVERED = "The escalation that failed earlier went through"


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as v:
        v["zendesk"].webhook_targets = [WebhookTarget(url="http://127.0.0.1:9/webhooks/zendesk", secret=HOOK_SECRET)]
        yield v


@pytest.fixture
def runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Runtime:
    rt = sandbox_runtime(vendors, systems={"zendesk": {"max_retries": 0}})
    for name in ("zendesk", "hubspot", "jira"):
        rt.connector(name).http._sleep = lambda seconds: None  # backoff without waiting
    return rt


def agent_update(vendors: Vendors, ticket_id: int, ticket: dict[str, Any]) -> list[Event]:
    """Alex (an agent, not cxbridge) updates a ticket through the Zendesk API; the deliveries it caused."""
    zendesk = vendors["zendesk"]
    start = len(zendesk.webhooks_sent)
    response = requests.put(
        f"{zendesk.base_url}/api/v2/tickets/{ticket_id}",
        json={"ticket": ticket},
        auth=("alex@cxbridge.example/token", zendesk.credentials()["api_token"]),
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return verify_deliveries(verify_zendesk, zendesk.webhooks_sent[start:], HOOK_SECRET)


def internal_notes(vendors: Vendors, ticket_id: int, text: str) -> list[str]:
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)
    return [c["body"] for c in ticket["comments"] if not c["public"] and text in c["body"]]


def run(runtime: Runtime) -> DrainReport:
    return drain(runtime, timeout=20, backoff_base=0.01, backoff_cap=0.05, max_attempts=3)


def type_key_and_tag(vendors: Vendors, runtime: Runtime, ticket_id: int, key: str) -> list[Event]:
    field_id = int(runtime.config.system("zendesk").get("issue_key_field_id"))
    tags = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)["tags"]
    return agent_update(vendors, ticket_id, {"tags": [*tags, TAG], "custom_fields": [{"id": field_id, "value": key}]})


def test_a_mistyped_key_is_told_once_through_retries_duplicates_and_replays(vendors: Vendors, runtime: Runtime) -> None:
    """ENG-999 does not exist: nothing is written but one note saying so and what to do; a duplicate delivery
    and a replay that fails the same way add nothing; once the key is corrected a replay joins the issue and says
    so in one more note; a further replay writes nothing."""
    existing = Escalation(runtime).run(EscalationRequest(ticket_id="1")).issue_key
    events = type_key_and_tag(vendors, runtime, 2, "ENG-999")
    issues_before = len(vendors["jira"].state()["issues"])
    for event in events:
        enqueue_event(runtime, "zendesk", event)
    report = run(runtime)
    assert report.dead == 1
    [note] = internal_notes(vendors, 2, FAILED)
    print(f"\nthe agent's note:\n{note}")
    assert "ENG-999 does not exist in Jira" in note
    assert f'then escalate again (remove and add the tag "{TAG}"' in note
    assert "Traceback" not in note
    assert "token" not in note.lower()
    assert internal_notes(vendors, 2, "Escalated to engineering") == []  # nothing else was written
    assert len(vendors["jira"].state()["issues"]) == issues_before

    for event in events:  # the vendor redelivers: a duplicate at the inbox
        assert not enqueue_event(runtime, "zendesk", event)
    [letter] = runtime.store.dead_letters()
    runtime.store.replay_dead_letter(letter.id)  # an admin replays before anything was fixed
    assert run(runtime).dead == 1
    assert len(internal_notes(vendors, 2, FAILED)) == 1

    field_id = int(runtime.config.system("zendesk").get("issue_key_field_id"))
    agent_update(vendors, 2, {"custom_fields": [{"id": field_id, "value": existing}]})
    second = [x for x in runtime.store.dead_letters() if x.replayed_at is None]
    assert len(second) == 1
    runtime.store.replay_dead_letter(second[0].id)
    report = run(runtime)
    assert (report.dead, report.done) == (0, 1)
    [recovered] = internal_notes(vendors, 2, RECOVERED)
    assert f"the ticket joined {existing}" in recovered
    assert len(internal_notes(vendors, 2, "Escalated to engineering")) == 1
    assert len(internal_notes(vendors, 2, FAILED)) == 1

    for event in events:  # the ticket's escalation is complete: a later run of the same change writes nothing
        runtime.store.enqueue("event", {"event": _as_dict(event), "system": "zendesk"}, lock_key="zendesk:ticket:2")
    run(runtime)
    assert len(internal_notes(vendors, 2, RECOVERED)) == 1
    assert len(internal_notes(vendors, 2, FAILED)) == 1


def _as_dict(event: Event) -> dict[str, Any]:
    from cxbridge.models import event_to_dict

    return event_to_dict(event)


def test_a_missing_project_tells_the_agent_an_admin_is_needed(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    """The configured Jira project does not exist: one note in the vendor's words saying an admin is needed;
    the dead letter names it; no secret reaches the note."""
    runtime = sandbox_runtime(vendors, systems={"jira": {"project": "NOPE"}})
    events = agent_update(vendors, 2, {"tags": [*_tags(vendors, 2), TAG]})
    for event in events:
        enqueue_event(runtime, "zendesk", event)
    assert run(runtime).dead == 1
    [note] = internal_notes(vendors, 2, FAILED)
    print(f"\nthe agent's note:\n{note}")
    assert "The Jira issue could not be created" in note
    assert "project" in note.lower()
    assert "needs your cxbridge admin" in note
    [letter] = runtime.store.dead_letters()
    assert f"job {letter.job_id}" in note
    for secret in (vendors["jira"].credentials().get("api_token"), vendors["zendesk"].credentials()["api_token"]):
        assert not secret or secret not in note
    runtime.store.replay_dead_letter(letter.id)
    assert run(runtime).dead == 1
    assert len(internal_notes(vendors, 2, FAILED)) == 1


def _tags(vendors: Vendors, ticket_id: int) -> list[str]:
    return list(next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)["tags"])


@pytest.mark.parametrize("fault", [{"status": 500, "after": True}, {"reset": True}, {"delay": 60.0}])
def test_the_note_after_a_fault_past_the_write_is_written_once(
    vendors: Vendors, runtime: Runtime, fault: dict[str, Any]
) -> None:
    """The note's own write applied but its answer lost (500 after the write, a reset, a timeout): the notice
    job is retried, finds its note by the marker, and writes no second one."""
    events = type_key_and_tag(vendors, runtime, 2, "ENG-999")
    for event in events:
        enqueue_event(runtime, "zendesk", event)
    vendors["zendesk"].faults.append(Fault(method="PUT", path=r"^/api/v2/tickets/2(\.json)?$", **fault))
    report = run(runtime)
    assert report.dead == 1  # the escalation; the notice job went through on a retry
    assert report.retried >= 1
    assert not vendors["zendesk"].faults  # the fault was met
    assert len(internal_notes(vendors, 2, FAILED)) == 1
    assert len(runtime.store.dead_letters()) == 1  # the notice job itself did not die
