"""Webhooks from the Zendesk emulator: the Webhooks API, trigger-style deliveries and their signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cxbridge_zendesk.sandbox.backend import ZendeskBackend
from cxbridge_zendesk.sandbox.routes import sign

from cxbridge.testing import Delivery, Receiver, mock_vendors

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


def test_tag_gain_sends_a_signed_trigger_webhook(zd: ZendeskBackend, api: requests.Session, receiver: Receiver) -> None:
    """Gaining the trigger tag sends one signed delivery per webhook, naming the updater; keeping it does not."""
    hook = create_webhook(zd, api, receiver.url)
    secret = secret_of(zd, api, hook["id"])
    r = api.put(f"{zd.base_url}/api/v2/tickets/1.json", json={"ticket": {"tags": ["csv", "export", TAG]}})
    assert r.status_code == 200
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
    assert body["event"] == "tag_added"
    assert body["tags_added"] == [TAG]
    assert body["ticket"]["id"] == 1
    assert body["ticket"]["tags"] == ["csv", "export", TAG]
    assert body["ticket"]["updater_id"] == agent.id
    assert body["current_user"] == {"id": agent.id, "email": "agent@cxbridge.example", "name": "Sam Agent"}
    assert body["ticket"]["url"] == f"{zd.base_url}/api/v2/tickets/1.json"
    uuid.UUID(body["id"])
    # Same tags again, or another tag: no trigger.
    api.put(f"{zd.base_url}/api/v2/tickets/1.json", json={"ticket": {"tags": ["csv", "export", TAG, "x"]}})
    assert len(deliveries(zd, receiver)) == 1
    # Removing then adding it again is a new gain; the Tags API triggers too.
    api.delete(f"{zd.base_url}/api/v2/tickets/1/tags.json", json={"tags": [TAG]})
    api.put(f"{zd.base_url}/api/v2/tickets/1/tags.json", json={"tags": [TAG]})
    got = deliveries(zd, receiver)
    assert len(got) == 2
    second = verify(got[1], secret)
    assert second["event"] == "tag_added"
    assert second["id"] != body["id"]


def test_comment_sends_comment_added(zd: ZendeskBackend, api: requests.Session, receiver: Receiver) -> None:
    """An update with a comment sends ``comment_added`` with the comment and its author."""
    hook = create_webhook(zd, api, receiver.url)
    secret = secret_of(zd, api, hook["id"])
    alex = requests.Session()
    alex.auth = ("alex@cxbridge.example/token", zd.credentials()["api_token"])
    alex.put(f"{zd.base_url}/api/v2/tickets/2", json={"ticket": {"comment": {"body": "Looking", "public": False}}})
    got = deliveries(zd, receiver)
    assert len(got) == 1
    body = verify(got[0], secret)
    alex_user = zd.model.user_by_email("alex@cxbridge.example")
    assert alex_user is not None
    assert body["event"] == "comment_added"
    assert body["comment"]["body"] == "Looking"
    assert body["comment"]["public"] is False
    assert body["comment"]["author_id"] == alex_user.id
    assert body["ticket"]["updater_id"] == alex_user.id
    assert "tags_added" not in body


def test_trigger_tag_at_creation_and_configurable_tags(
    zd: ZendeskBackend, api: requests.Session, receiver: Receiver
) -> None:
    """A ticket created with the trigger tag triggers; ``trigger_tags`` chooses the tags."""
    create_webhook(zd, api, receiver.url)
    api.post(f"{zd.base_url}/api/v2/tickets", json={"ticket": {"comment": {"body": "x"}, "tags": [TAG, "a"]}})
    zd.trigger_tags = {"urgent_bug"}
    api.put(f"{zd.base_url}/api/v2/tickets/3", json={"ticket": {"tags": [TAG, "urgent_bug"]}})
    got = [json.loads(d.body) for d in deliveries(zd, receiver)]
    assert [(b["ticket"]["id"], b["tags_added"]) for b in got] == [(4, [TAG]), (3, ["urgent_bug"])]


def test_admin_targets_and_inactive_webhooks(zd: ZendeskBackend, api: requests.Session, receiver: Receiver) -> None:
    """Admin targets get deliveries signed with their own secret; inactive or event-subscribed webhooks none."""
    create_webhook(zd, api, receiver.url + "/inactive", status="inactive")
    create_webhook(zd, api, receiver.url + "/events", subscriptions=["zen:event-type:user.active_changed"])
    r = requests.post(
        f"{zd.base_url}/_sandbox/webhooks",
        json={
            "targets": [{"url": receiver.url + "/admin", "secret": "s3cret", "extra": {"webhook_id": "01HADMINTARGET"}}]
        },
    )
    assert r.status_code == 200
    api.put(f"{zd.base_url}/api/v2/tickets/2", json={"ticket": {"tags": [TAG]}})
    got = deliveries(zd, receiver)
    assert [d.path for d in got] == ["/webhooks/zendesk/admin"]
    verify(got[0], "s3cret")
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
    agent = requests.get(
        f"{zd.base_url}/api/v2/webhooks", auth=("alex@cxbridge.example/token", zd.credentials()["api_token"])
    )
    assert agent.status_code == 403
