"""The real zenpy client against the Zendesk emulator served on a loopback port (``serve_vendors``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from cxbridge_zendesk.sandbox.backend import ZendeskBackend
from cxbridge_zendesk.triggers import desired_triggers
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment, Ticket, Trigger, User, Webhook
from zenpy.lib.exception import APIException, RecordNotFoundException

from cxbridge.testing import Receiver, ServedVendors, serve_vendors

pytestmark = pytest.mark.sandbox

TAG = "escalated_to_engineering"


@pytest.fixture(scope="module")
def served() -> Iterator[ServedVendors]:
    with serve_vendors(["zendesk"]) as vendors:
        yield vendors


@pytest.fixture
def zd(served: ServedVendors) -> ZendeskBackend:
    served.reset()
    served.seed("demo")
    backend = served["zendesk"]
    assert isinstance(backend, ZendeskBackend)
    backend.webhook_targets = []
    backend.incremental_delay = 60.0
    return backend


@pytest.fixture
def zenpy(zd: ZendeskBackend, monkeypatch: pytest.MonkeyPatch) -> Zenpy:
    """zenpy pointed at the emulator the documented way (ZENPY_FORCE_NETLOC / ZENPY_FORCE_SCHEME)."""
    netloc = urlsplit(zd.base_url).netloc
    monkeypatch.setenv("ZENPY_FORCE_NETLOC", netloc)
    monkeypatch.setenv("ZENPY_FORCE_SCHEME", "http")
    creds = zd.credentials()
    return Zenpy(subdomain="cxbridge-sandbox", email=creds["email"], token=creds["api_token"], disable_cache=True)


def paths(zd: ZendeskBackend) -> list[str]:
    return [c.path for c in zd.calls]


def test_create_read_and_update_a_ticket(zd: ZendeskBackend, zenpy: Zenpy) -> None:
    """zenpy creates a ticket, reads it back with sideloads, and updates its tags with an internal note."""
    audit = zenpy.tickets.create(
        Ticket(
            subject="Dashboard is blank",
            comment=Comment(body="Since the upgrade the dashboard shows nothing."),
            requester=User(name="Ada Lovelace", email="ada@acme.example"),
            priority="high",
        )
    )
    created = audit.ticket
    assert created.id == 4
    ticket = zenpy.tickets(id=created.id)
    assert ticket.subject == "Dashboard is blank"
    assert ticket.requester.email == "ada@acme.example"
    assert ticket.organization.name == "Acme Corp"
    assert ticket.priority == "high"
    ticket.tags.extend(["dashboard", TAG])
    ticket.comment = Comment(body="Escalated to engineering", public=False)
    zenpy.tickets.update(ticket)
    again = zenpy.tickets(id=created.id)
    assert again.tags == ["dashboard", TAG]
    comments = list(zenpy.tickets.comments(ticket=created.id))
    assert [(c.body, c.public) for c in comments] == [
        ("Since the upgrade the dashboard shows nothing.", True),
        ("Escalated to engineering", False),
    ]
    assert comments[1].author.email == "agent@cxbridge.example"
    assert "/api/v2/tickets/4.json" in paths(zd)


def test_comments_follow_next_page(zd: ZendeskBackend, zenpy: Zenpy) -> None:
    """zenpy asks for cursor pages of 100 comments and follows ``links.next`` while ``meta.has_more``."""
    agent = zd.model.user_by_email("agent@cxbridge.example")
    assert agent is not None
    with zd.lock:
        for n in range(120):
            zd.model.update_ticket(2, {"ticket": {"comment": {"body": f"note {n}", "public": False}}}, agent)
    comments = list(zenpy.tickets.comments(ticket=2))
    assert len(comments) == 121
    assert comments[-1].body == "note 119"
    pages = [p for p in paths(zd) if p.startswith("/api/v2/tickets/2/comments.json")]
    assert len(pages) == 2
    assert "page%5Bsize%5D=100" in pages[0]
    assert "page%5Bafter%5D=" in pages[1]


def test_incremental_export_follows_after_url(zd: ZendeskBackend, zenpy: Zenpy) -> None:
    """zenpy's cursor generator follows ``after_url`` page by page until ``end_of_stream``."""
    zd.incremental_delay = 0
    zenpy.tickets.create(Ticket(subject="Fresh", comment=Comment(body="Just now")))
    exported = [t.id for t in zenpy.tickets.incremental(start_time=int(time.time()) - 30 * 86400, per_page=2)]
    assert exported == [1, 2, 3, 4]
    pages = [p for p in paths(zd) if p.startswith("/api/v2/incremental/tickets/cursor.json")]
    assert len(pages) == 2
    assert "cursor=" in pages[1]


def test_search(zd: ZendeskBackend, zenpy: Zenpy) -> None:
    """zenpy's search keywords become Zendesk query syntax the emulator understands."""
    assert sorted(t.id for t in zenpy.search(type="ticket", tags="csv")) == [1, 2]
    assert [t.id for t in zenpy.search("invoice", type="ticket")] == [3]
    assert [t.id for t in zenpy.search(type="ticket", status="new")] == [3]
    users = list(zenpy.search(type="user", email="grace@globex.example"))
    assert [u.name for u in users] == ["Grace Hopper"]


def test_users_and_organizations(zd: ZendeskBackend, zenpy: Zenpy) -> None:
    """Show user, show many users, organization."""
    ada = zd.model.user_by_email("ada@acme.example")
    assert ada is not None
    user = zenpy.users(id=ada.id)
    assert (user.name, user.role) == ("Ada Lovelace", "end-user")
    assert zenpy.organizations(id=user.organization_id).name == "Acme Corp"
    many = list(zenpy.users(ids=[ada.id]))
    assert [u.email for u in many] == ["ada@acme.example"]
    assert zenpy.users.me().email == "agent@cxbridge.example"


def test_errors_surface_as_zenpy_exceptions(zd: ZendeskBackend, zenpy: Zenpy, monkeypatch: pytest.MonkeyPatch) -> None:
    """404 is zenpy's RecordNotFoundException; a 401 is its APIException carrying Zendesk's body."""
    with pytest.raises(RecordNotFoundException):
        zenpy.tickets(id=999)
    creds = zd.credentials()
    wrong = Zenpy(subdomain="cxbridge-sandbox", email=creds["email"], token="not-the-token", disable_cache=True)
    with pytest.raises(APIException) as info:
        wrong.tickets(id=1)
    assert info.value.response.status_code == 401
    assert "Couldn't authenticate you" in str(info.value)
    bearer = Zenpy(subdomain="cxbridge-sandbox", oauth_token=creds["oauth_token"], disable_cache=True)
    assert bearer.tickets(id=1).id == 1


def test_json_suffix_and_auth_on_the_wire(zd: ZendeskBackend) -> None:
    """Every path answers with and without ``.json``; no credentials, no data."""
    creds = zd.credentials()
    auth = (f"{creds['email']}/token", creds["api_token"])
    with_suffix = requests.get(f"{zd.base_url}/api/v2/tickets/1.json", auth=auth, timeout=5)
    without = requests.get(f"{zd.base_url}/api/v2/tickets/1", auth=auth, timeout=5)
    assert with_suffix.status_code == without.status_code == 200
    assert with_suffix.json() == without.json()
    assert with_suffix.json()["ticket"]["url"] == f"{zd.base_url}/api/v2/tickets/1.json"
    anonymous = requests.get(f"{zd.base_url}/api/v2/tickets/1.json", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"error": "Couldn't authenticate you"}


def test_fail_next_and_retry_after(zd: ZendeskBackend, zenpy: Zenpy) -> None:
    """An injected 503 reaches zenpy once; an injected 429 with Retry-After is waited out by zenpy itself."""
    requests.post(f"{zd.base_url}/_sandbox/fail-next", json={"status": 503}, timeout=5)
    with pytest.raises(APIException) as info:
        zenpy.tickets(id=1)
    assert info.value.response.status_code == 503
    assert zenpy.tickets(id=1).id == 1
    requests.post(f"{zd.base_url}/_sandbox/fail-next", json={"status": 429, "retry_after": 1}, timeout=5)
    started = time.monotonic()
    assert zenpy.tickets(id=2).id == 2
    assert time.monotonic() - started >= 1
    assert [c.status for c in zd.calls[-2:]] == [429, 200]


def test_enforced_rate_limit_answers_429_with_retry_after(zd: ZendeskBackend) -> None:
    """With a limit set, the call over it gets 429, ``Retry-After`` and the rate-limit headers."""
    creds = zd.credentials()
    auth = (f"{creds['email']}/token", creds["api_token"])
    requests.post(f"{zd.base_url}/_sandbox/rate-limit", json={"limit": "3/min"}, timeout=5)
    try:
        answers = [requests.get(f"{zd.base_url}/api/v2/tickets.json", auth=auth, timeout=5) for _ in range(4)]
    finally:
        requests.post(f"{zd.base_url}/_sandbox/rate-limit", json={"limit": None}, timeout=5)
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-Rate-Limit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
    assert answers[3].headers["ratelimit-remaining"] == "0"


def test_webhook_created_with_zenpy_receives_a_verifiable_delivery(zd: ZendeskBackend, zenpy: Zenpy) -> None:
    """A webhook made through zenpy gets a signed delivery when zenpy tags a ticket; the signature verifies."""
    with Receiver("/webhooks/zendesk", status=200) as receiver:
        hook = zenpy.webhooks.create(
            Webhook(
                name="cxbridge",
                endpoint=receiver.url,
                http_method="POST",
                request_format="json",
                status="active",
                subscriptions=["conditional_ticket_events"],
            )
        )
        creds = zd.credentials()
        secret = requests.get(
            f"{zd.base_url}/api/v2/webhooks/{hook.id}/signing_secret",
            auth=(f"{creds['email']}/token", creds["api_token"]),
            timeout=5,
        ).json()["signing_secret"]["secret"]
        wanted = desired_triggers(TAG, hook.id)[0]
        zenpy.triggers.create(
            Trigger(title=wanted["title"], conditions=wanted["conditions"], actions=wanted["actions"])
        )
        ticket = zenpy.tickets(id=2)
        ticket.tags.append(TAG)
        zenpy.tickets.update(ticket)
        assert zd.wait_for_webhooks(timeout=10)
        assert len(receiver.deliveries) == 1
        delivery = receiver.deliveries[0]
        timestamp = delivery.headers["x-zendesk-webhook-signature-timestamp"]
        expected = base64.b64encode(
            hmac.new(secret.encode(), timestamp.encode() + delivery.body, hashlib.sha256).digest()
        ).decode()
        assert delivery.headers["x-zendesk-webhook-signature"] == expected
        assert delivery.headers["x-zendesk-webhook-id"] == hook.id
        body = json.loads(delivery.body)
        assert (body["event"], body["ticket"]["id"], body["ticket"]["tags"].split()) == (
            "tag_added",
            2,
            ["csv", "export", TAG],
        )
