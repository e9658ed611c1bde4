"""Webhooks from the Zendesk emulator: the Webhooks API, trigger-style deliveries and their signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cxbridge_zendesk.sandbox.backend import ZendeskBackend
from cxbridge_zendesk.sandbox.routes import sign
from cxbridge_zendesk.sandbox.triggers import admin_target_body
from cxbridge_zendesk.triggers import ESCALATION_BODY, STATUS_BODY, comment_body, desired_triggers

from cxbridge.testing import Delivery, Receiver, Spec, mock_vendors

# RELIABILITY.md section 7 (the Zendesk docs' worked example).
DOC_SECRET = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA="
DOC_TIMESTAMP = "2021-07-25T10:00:00Z"
DOC_BODY = b'{"say": "hello"}'
DOC_SIG_TS_THEN_BODY = "Rry/4TtIdFyawtXXp8QdI6tlAUUQ/5kL1OTp5qo/ZIk="
DOC_SIG_BODY_THEN_TS = "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw="

TAG = "escalated_to_engineering"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver("/webhooks/zendesk", status=200) as r:
        yield r


@pytest.fixture
def zd() -> Iterator[ZendeskBackend]:
    backend = ZendeskBackend()
    with mock_vendors(backends={"zendesk": backend}, seed="demo"):
        yield backend


def create_webhook(zd: ZendeskBackend, api: requests.Session, endpoint: str, **overrides: Any) -> dict[str, Any]:
    webhook = {
        "name": "cxbridge",
        "endpoint": endpoint,
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
        **overrides,
    }
    r = api.post(f"{zd.base_url}/api/v2/webhooks", json={"webhook": webhook})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()["webhook"]
    return created


def secret_of(zd: ZendeskBackend, api: requests.Session, webhook_id: str) -> str:
    r = api.get(f"{zd.base_url}/api/v2/webhooks/{webhook_id}/signing_secret")
    assert r.status_code == 200
    body = r.json()["signing_secret"]
    assert body["algorithm"] == "sha256"
    secret: str = body["secret"]
    return secret


def verify(delivery: Delivery, secret: str) -> dict[str, Any]:
    """Check a delivery's signature the way a receiver would, independently of the emulator's code."""
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    timestamp = headers["x-zendesk-webhook-signature-timestamp"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", timestamp)
    expected = base64.b64encode(
        hmac.new(secret.encode("utf-8"), timestamp.encode("utf-8") + delivery.body, hashlib.sha256).digest()
    ).decode()
    assert hmac.compare_digest(headers["x-zendesk-webhook-signature"], expected)
    body: dict[str, Any] = json.loads(delivery.body)
    return body


def deliveries(zd: ZendeskBackend, receiver: Receiver) -> list[Delivery]:
    assert zd.wait_for_webhooks(timeout=10)
    return receiver.deliveries


def test_signature_matches_the_documented_vectors() -> None:
    """The signer reproduces RELIABILITY.md's timestamp+body vector; the docs' example is body+timestamp."""
    assert sign(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY) == DOC_SIG_TS_THEN_BODY
    assert sign(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY) != DOC_SIG_BODY_THEN_TS
    # Known doc discrepancy: the older page's worked example only verifies as body + timestamp.
    body_first = hmac.new(DOC_SECRET.encode(), DOC_BODY + DOC_TIMESTAMP.encode(), hashlib.sha256).digest()
    assert base64.b64encode(body_first).decode() == DOC_SIG_BODY_THEN_TS


def create_triggers(zd: ZendeskBackend, api: requests.Session, webhook_id: str) -> list[dict[str, Any]]:
    """cxbridge's three triggers (what ``cxbridge setup`` creates), calling the webhook."""
    made = []
    for trigger in desired_triggers(TAG, webhook_id):
        r = api.post(f"{zd.base_url}/api/v2/triggers", json={"trigger": trigger})
        assert r.status_code == 201, r.text
        Spec("zendesk").validate_response("POST", "/api/v2/triggers", 201, r.json())
        made.append(r.json()["trigger"])
    return made


def test_a_trigger_calls_its_webhook_with_the_rendered_body(
    zd: ZendeskBackend, api: requests.Session, receiver: Receiver
) -> None:
    """An API webhook is called only by a trigger: gaining the tag fires the escalation trigger once (it adds
    its marker tag), the body is the documented template rendered, signed with the webhook's secret."""
    hook = create_webhook(zd, api, receiver.url)
    secret = secret_of(zd, api, hook["id"])
    api.put(f"{zd.base_url}/api/v2/tickets/1.json", json={"ticket": {"tags": ["csv", "export", TAG]}})
    assert deliveries(zd, receiver) == []  # no trigger names the webhook yet
    create_triggers(zd, api, hook["id"])
    api.put(f"{zd.base_url}/api/v2/tickets/2.json", json={"ticket": {"tags": [TAG]}})
    got = deliveries(zd, receiver)
    assert len(got) == 1
    delivery = got[0]
    assert delivery.method == "POST"
    assert delivery.path == "/webhooks/zendesk"
    body = verify(delivery, secret)
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    assert headers["x-zendesk-webhook-id"] == hook["id"]
    assert headers["x-zendesk-webhook-invocation-id"].isdigit()
    assert headers["content-type"].startswith("application/json")
    agent = zd.model.user_by_email("agent@cxbridge.example")
    assert agent is not None
    requester = zd.model.users[zd.model.tickets[2].requester_id]
    assert body == {
        "event": "tag_added",
        "ticket": {"id": 2, "tags": TAG, "requester": {"email": requester.email}},
        "current_user": {"id": agent.id, "name": "Sam Agent", "email": "agent@cxbridge.example"},
    }
    assert zd.model.ticket(2).tags == [TAG, TAG + "_sent"]
    # Later updates of the ticket do not fire it again; removing the marker with the tag re-arms it.
    api.put(f"{zd.base_url}/api/v2/tickets/2.json", json={"ticket": {"priority": "urgent"}})
    assert len(deliveries(zd, receiver)) == 1
    api.delete(f"{zd.base_url}/api/v2/tickets/2/tags.json", json={"tags": [TAG, TAG + "_sent"]})
    api.put(f"{zd.base_url}/api/v2/tickets/2/tags.json", json={"tags": [TAG]})
    assert len(deliveries(zd, receiver)) == 2


def test_comment_triggers_send_the_comment(zd: ZendeskBackend, api: requests.Session, receiver: Receiver) -> None:
    """A comment on an escalated ticket fires the public or the internal comment trigger, JSON-escaped."""
    hook = create_webhook(zd, api, receiver.url)
    secret = secret_of(zd, api, hook["id"])
    create_triggers(zd, api, hook["id"])
    alex = requests.Session()
    alex.auth = ("alex@cxbridge.example/token", zd.credentials()["api_token"])
    alex.put(f"{zd.base_url}/api/v2/tickets/3", json={"ticket": {"comment": {"body": "Not escalated"}}})
    api.put(f"{zd.base_url}/api/v2/tickets/2", json={"ticket": {"tags": [TAG]}})
    said = 'Looking "now"\nline 2'
    alex.put(f"{zd.base_url}/api/v2/tickets/2", json={"ticket": {"comment": {"body": said, "public": False}}})
    alex.put(f"{zd.base_url}/api/v2/tickets/2", json={"ticket": {"comment": {"body": "Hi", "public": True}}})
    got = [verify(d, secret) for d in deliveries(zd, receiver)]
    assert [b["event"] for b in got] == ["tag_added", "comment_added", "comment_added"]
    alex_user = zd.model.user_by_email("alex@cxbridge.example")
    assert alex_user is not None
    assert got[1]["comment"] == {"body": said, "public": False}
    assert got[1]["current_user"]["id"] == alex_user.id
    assert got[2]["comment"] == {"body": "Hi", "public": True}


def test_triggers_api_refuses_what_it_cannot_run(zd: ZendeskBackend, api: requests.Session) -> None:
    """List, show, update, delete; a condition the sandbox does not evaluate or an unknown webhook is a 422."""
    hook = create_webhook(zd, api, "https://example.com/hook")
    made = create_triggers(zd, api, hook["id"])
    listed = api.get(f"{zd.base_url}/api/v2/triggers").json()
    Spec("zendesk").validate_response("GET", "/api/v2/triggers", 200, listed)
    assert [t["title"] for t in listed["triggers"]] == [t["title"] for t in made]
    first = made[0]["id"]
    changed = api.put(f"{zd.base_url}/api/v2/triggers/{first}", json={"trigger": {"active": False}})
    assert changed.json()["trigger"]["active"] is False
    odd = {"title": "x", "conditions": {"all": [{"field": "via_id", "operator": "is", "value": "4"}]}, "actions": []}
    assert api.post(f"{zd.base_url}/api/v2/triggers", json={"trigger": odd}).status_code == 422
    ghost = desired_triggers(TAG, "01JNOSUCHWEBHOOK0000000000")[0]
    assert api.post(f"{zd.base_url}/api/v2/triggers", json={"trigger": ghost}).status_code == 422
    assert api.delete(f"{zd.base_url}/api/v2/triggers/{first}").status_code == 204
    assert api.get(f"{zd.base_url}/api/v2/triggers/{first}").status_code == 404


def test_admin_targets_get_the_bodies_setup_provisions() -> None:
    """The emulator's own copy of the trigger bodies (it shares no code with the plugin) is what setup creates."""
    assert admin_target_body("tag_added") == ESCALATION_BODY
    assert admin_target_body("comment_added", True) == comment_body(True)
    assert admin_target_body("comment_added", False) == comment_body(False)
    assert admin_target_body("status_changed") == STATUS_BODY


def test_admin_targets_get_the_trigger_bodies(zd: ZendeskBackend, api: requests.Session, receiver: Receiver) -> None:
    """Admin targets need no trigger: a gained trigger tag (at creation too) and each comment send the same bodies
    the provisioned triggers render, signed with the target's own secret; ``trigger_tags`` chooses the tags."""
    r = requests.post(
        f"{zd.base_url}/_sandbox/webhooks",
        json={
            "targets": [{"url": receiver.url + "/admin", "secret": "s3cret", "extra": {"webhook_id": "01HADMINTARGET"}}]
        },
    )
    assert r.status_code == 200
    api.put(f"{zd.base_url}/api/v2/tickets/2", json={"ticket": {"tags": [TAG]}})
    api.post(f"{zd.base_url}/api/v2/tickets", json={"ticket": {"comment": {"body": "x"}, "tags": [TAG, "a"]}})
    zd.trigger_tags = {"urgent_bug"}
    api.put(f"{zd.base_url}/api/v2/tickets/3", json={"ticket": {"tags": [TAG, "urgent_bug"]}})
    got = deliveries(zd, receiver)
    assert {d.path for d in got} == {"/webhooks/zendesk/admin"}
    bodies = [verify(d, "s3cret") for d in got]
    assert [(b["event"], b["ticket"]["id"]) for b in bodies] == [("tag_added", 2), ("tag_added", 4), ("tag_added", 3)]
    assert {k.lower(): v for k, v in got[0].headers.items()}["x-zendesk-webhook-id"] == "01HADMINTARGET"
    assert zd.webhooks_sent[0]["url"] == receiver.url + "/admin"


def test_webhooks_api(zd: ZendeskBackend, api: requests.Session) -> None:
    """Create, show, list, rotate the secret, delete; mandatory fields; admins only."""
    hook = create_webhook(zd, api, "https://example.com/hook", description="to cxbridge")
    assert re.fullmatch(r"[0-9A-Z]{26}", hook["id"])
    assert hook["subscriptions"] == ["conditional_ticket_events"]
    assert hook["created_by"] == str(zd.model.user_by_email("agent@cxbridge.example").id)  # type: ignore[union-attr]
    shown = api.get(f"{zd.base_url}/api/v2/webhooks/{hook['id']}.json").json()["webhook"]
    assert shown == hook
    listed = api.get(f"{zd.base_url}/api/v2/webhooks").json()
    assert [w["id"] for w in listed["webhooks"]] == [hook["id"]]
    assert listed["meta"]["has_more"] is False
    old = secret_of(zd, api, hook["id"])
    rotated = api.post(f"{zd.base_url}/api/v2/webhooks/{hook['id']}/signing_secret")
    assert rotated.status_code == 201
    assert rotated.json()["signing_secret"]["secret"] != old
    assert secret_of(zd, api, hook["id"]) == rotated.json()["signing_secret"]["secret"]
    own = create_webhook(zd, api, "https://example.com/2", signing_secret={"algorithm": "sha256", "secret": "mine"})
    assert secret_of(zd, api, own["id"]) == "mine"
    assert api.delete(f"{zd.base_url}/api/v2/webhooks/{hook['id']}").status_code == 204
    assert api.get(f"{zd.base_url}/api/v2/webhooks/{hook['id']}").status_code == 404
    missing = api.post(f"{zd.base_url}/api/v2/webhooks", json={"webhook": {"name": "x"}})
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["source"] == {"pointer": "/webhook/endpoint"}
    moved = api.put(f"{zd.base_url}/api/v2/webhooks/{own['id']}", json={"webhook": {"endpoint": "https://e.example/3"}})
    assert moved.status_code == 204
    assert api.get(f"{zd.base_url}/api/v2/webhooks/{own['id']}").json()["webhook"]["endpoint"] == "https://e.example/3"
    assert secret_of(zd, api, own["id"]) == "mine"
    agent = requests.get(
        f"{zd.base_url}/api/v2/webhooks", auth=("alex@cxbridge.example/token", zd.credentials()["api_token"])
    )
    assert agent.status_code == 403
