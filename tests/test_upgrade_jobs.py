"""Jobs and dead letters written by the version before neutral signals still run and replay after the upgrade.

Until then every queued job was an ``event`` job holding a vendor Event: webhook deliveries, and polled changes
dressed as the vendor's webhook payloads (``"source": "poll"``). Each payload below is byte for byte what that
version's reconciler wrote (``zendesk_ticket_event``, ``hubspot_ticket_event``, ``jira_issue_event``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cxbridge.models import Ref
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors, mock_vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.worker import drain

TAG = "escalated_to_engineering"
UPDATED = "2026-12-01T09:00:00Z"


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with mock_vendors(["zendesk", "jira", "hubspot"], seed="demo") as v:
        yield v


@pytest.fixture
def rt(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime(vendors)


def old_job(system: str, kind: str, subject: str, payload: dict[str, Any], delivery: str) -> dict[str, Any]:
    """A job payload as the previous version queued it (``event_to_dict`` inside ``{"event", "system"}``)."""
    event = {
        "id": delivery,
        "system": system,
        "kind": kind,
        "subject": subject,
        "actor": None,
        "payload": payload,
        "received_at": "2026-12-01T09:00:05+00:00",
        "occurred_at": "2026-12-01T09:00:00+00:00",
    }
    return {"event": event, "system": system}


def polled_zendesk_tag(ticket_id: int) -> dict[str, Any]:
    delivery = f"poll:zendesk:ticket:{ticket_id}:{UPDATED}"
    payload = {
        "id": delivery,
        "event": "tag_added",
        "time": UPDATED,
        "ticket": {"id": ticket_id, "status": "open", "tags": [TAG], "updated_at": UPDATED},
        "tags_added": [TAG],
        "source": "poll",
    }
    return old_job("zendesk", "ticket.tag_added", f"zendesk:ticket:{ticket_id}", payload, delivery)


def test_a_queued_polled_zendesk_tag_still_escalates(rt: Runtime, vendors: Vendors) -> None:
    """An old polled ``ticket.tag_added`` job escalates its ticket once: one issue, one link."""
    rt.store.enqueue("event", polled_zendesk_tag(1), lock_key="zendesk:ticket:1")
    report = drain(rt)
    assert (report.done, report.dead) == (1, 0)
    assert len(vendors["jira"].state()["issues"]) == 1
    [link] = rt.store.links_for_ticket(Ref("zendesk", "ticket", "1"))
    assert link.issue_key == vendors["jira"].state()["issues"][0]["key"]


def test_a_queued_polled_jira_state_still_syncs_back(rt: Runtime, vendors: Vendors) -> None:
    """An old polled ``jira:issue_updated`` job (fields, no changelog) moves the linked ticket's note once."""
    rt.store.enqueue("event", polled_zendesk_tag(1), lock_key="zendesk:ticket:1")
    drain(rt)
    [issue] = vendors["jira"].state()["issues"]
    fields = {
        "summary": issue["fields"]["summary"],
        "status": {"name": "Done", "statusCategory": {"key": "done"}},
        "updated": "2099-01-01T00:00:00.000+0000",
    }
    delivery = f"poll:jira:issue:{issue['id']}:{fields['updated']}"
    payload = {
        "timestamp": 4070908800000,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "issue": {"id": issue["id"], "key": issue["key"], "fields": fields},
        "source": "poll",
    }
    job = old_job("jira", "jira:issue_updated", f"jira:issue:{issue['id']}", payload, delivery)
    rt.store.enqueue("event", job, lock_key=f"jira:issue:{issue['id']}")
    report = drain(rt)
    assert (report.done, report.dead) == (1, 0)
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == 1)
    moved = [c for c in ticket["comments"] if not c["public"] and f"{issue['key']} moved to Done" in c["body"]]
    assert len(moved) == 1


def test_a_queued_polled_hubspot_property_still_escalates(rt: Runtime, vendors: Vendors) -> None:
    """An old polled HubSpot ``ticket.propertyChange`` job escalates that HubSpot ticket."""
    from cxbridge_hubspot.sandbox.models import OBJECT_TYPES

    hub = vendors["hubspot"]
    with hub.lock:
        target = hub.portal.live(OBJECT_TYPES["tickets"])[0].id
    delivery = f"poll:hubspot:ticket:{target}:{UPDATED}"
    payload = {
        "eventId": delivery,
        "subscriptionType": "ticket.propertyChange",
        "objectId": int(target),
        "propertyName": "cxbridge_escalate",
        "propertyValue": "true",
        "occurredAt": 1764579600000,
        "source": "poll",
    }
    job = old_job("hubspot", "ticket.propertyChange", f"hubspot:ticket:{target}", payload, delivery)
    rt.store.enqueue("event", job, lock_key=f"hubspot:ticket:{target}")
    report = drain(rt)
    assert (report.done, report.dead) == (1, 0)
    assert rt.store.links_for_ticket(Ref("hubspot", "ticket", str(target)))


def test_a_dead_letter_from_before_replays(rt: Runtime, vendors: Vendors) -> None:
    """A dead letter holding an old-format job is replayed as it was written and runs to its effect."""
    job_id = rt.store.enqueue("event", polled_zendesk_tag(2), lock_key="zendesk:ticket:2")
    claimed = rt.store.claim("old-worker", lease_seconds=60)
    assert claimed is not None
    assert claimed.id == job_id
    assert rt.store.fail(claimed.id, claimed.attempt, error="Unavailable: zendesk: 503 (before the upgrade)")
    [letter] = rt.store.dead_letters()
    rt.store.replay_dead_letter(letter.id)
    report = drain(rt)
    assert (report.done, report.dead) == (1, 0)
    assert len(rt.store.links_for_ticket(Ref("zendesk", "ticket", "2"))) == 1
    assert len(vendors["jira"].state()["issues"]) == 1
