"""The webhook receiver over real HTTP (waitress on loopback): vectors, malformed input, caps, dedupe, metrics."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import http.client
import io
import json
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.test import EnvironBuilder

from cxbridge.config import load_config
from cxbridge.errors import ConfigError
from cxbridge.plugins import build_plugins
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import mock_vendors, write_config
from cxbridge.store.sqlite import SQLiteStore
from cxbridge.testing import MALFORMED_SIGNATURE_HEADERS, byte_flips
from cxbridge.webhooks.metrics import Metrics, escape_label
from cxbridge.webhooks.receiver import MAX_BODY, BodyTooLarge, Receiver, read_body, request_url
from cxbridge.webhooks.serve import RunningServer, serving

# RELIABILITY.md section 7
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
HS_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
HS_BODY = b"{'example_field':'example_value'}"
HS_URI = "https://www.example.com/webhook_uri"
HS_TS = "15000000"
HS_V3 = "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="
HS_V2 = "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"
ZD_SECRET = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA="
ZD_TS = "2021-07-25T10:00:00Z"
ZD_BODY = b'{"say": "hello"}'
ZD_BODY_THEN_TS = "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw="
ZD_TS_THEN_BODY = "Rry/4TtIdFyawtXXp8QdI6tlAUUQ/5kL1OTp5qo/ZIk="
ZD_NOW = 1627207200.0  # 2021-07-25T10:00:00Z

SIG_HEADERS = {"jira": "X-Hub-Signature", "zendesk": "X-Zendesk-Webhook-Signature", "hubspot": "X-HubSpot-Signature-v3"}
SECRETS = {"jira": [GITHUB_SECRET], "zendesk": [ZD_SECRET], "hubspot": [HS_SECRET]}


class Clock:
    """A virtual clock the receiver (and the store) read."""

    def __init__(self, now: float = ZD_NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_runtime(
    tmp_path: Path,
    secrets: dict[str, list[str]] | None = None,
    *,
    store_clock: Callable[[], float] | None = None,
    **webhooks: Any,
) -> Runtime:
    """A Runtime on a sandbox-written config whose [webhooks] secrets are the given values (in files)."""
    files: dict[str, list[dict[str, str]]] = {}
    for name, values in (SECRETS if secrets is None else secrets).items():
        files[name] = []
        for i, value in enumerate(values):
            secret_file = tmp_path / f"hook-{name}-{i}.secret"
            secret_file.write_text(value, encoding="utf-8")
            files[name].append({"file": secret_file.name})
    with mock_vendors(["zendesk", "jira", "hubspot"]) as vendors:
        path = write_config(vendors, tmp_path / "cxbridge.toml", extra={"webhooks": {"secrets": files, **webhooks}})
    plugins = build_plugins()
    config = load_config(path, plugins=plugins)
    store = SQLiteStore(config.store_path(), clock=store_clock) if store_clock else None
    return Runtime(config, plugins, store=store)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path)
    yield runtime
    runtime.close()


@pytest.fixture
def server(rt: Runtime, clock: Clock) -> Iterator[RunningServer]:
    with serving(rt, clock=clock, threads=4) as running:
        yield running


# -- signing, independent of the code under test --------------------------------------------------------------
def jira_sig(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def zd_sig(secret: str, ts: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), ts.encode() + body, hashlib.sha256).digest()).decode()


def hs_sig(secret: str, url: str, body: bytes, ts: str, method: str = "POST") -> str:
    message = method.encode() + url.encode() + body + ts.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def jira_body(issue_id: str = "10001") -> bytes:
    doc = {"webhookEvent": "jira:issue_updated", "timestamp": 1627207200000, "issue": {"id": issue_id, "key": "ENG-1"}}
    return json.dumps(doc).encode()


def zd_body(event_id: str = "evt-1", ticket: str = "1") -> bytes:
    doc = {
        "id": event_id,
        "type": "zen:event-type:ticket.tags_changed",
        "subject": f"zen:ticket:{ticket}",
        "time": ZD_TS,
        "detail": {"id": ticket, "actor_id": "5"},
        "event": {"tags": {"added": ["escalated_to_engineering"]}},
    }
    return json.dumps(doc).encode()


def hs_body(*event_ids: int) -> bytes:
    events = [
        {
            "eventId": eid,
            "subscriptionId": 1,
            "portalId": 62515001,
            "appId": 3140001,
            "occurredAt": 1627207200000,
            "subscriptionType": "ticket.propertyChange",
            "attemptNumber": 0,
            "objectId": 7,
            "propertyName": "hs_pipeline_stage",
            "propertyValue": "2",
            "changeSource": "CRM",
        }
        for eid in event_ids
    ]
    return json.dumps(events).encode()


def post_jira(
    srv: RunningServer, body: bytes, *, delivery: str = "d-1", secret: str = GITHUB_SECRET
) -> requests.Response:
    headers = {"X-Hub-Signature": jira_sig(secret, body), "X-Atlassian-Webhook-Identifier": delivery}
    return requests.post(srv.webhook_url("jira"), data=body, headers=headers, timeout=10)


def post_zd(srv: RunningServer, body: bytes, sig: str, ts: str = ZD_TS) -> requests.Response:
    headers = {"X-Zendesk-Webhook-Signature": sig, "X-Zendesk-Webhook-Signature-Timestamp": ts}
    return requests.post(srv.webhook_url("zendesk"), data=body, headers=headers, timeout=10)


def post_hs(srv: RunningServer, body: bytes, *, ts_ms: int, secret: str = HS_SECRET) -> requests.Response:
    url = srv.webhook_url("hubspot")
    headers = {
        "X-HubSpot-Signature-v3": hs_sig(secret, url, body, str(ts_ms)),
        "X-HubSpot-Request-Timestamp": str(ts_ms),
    }
    return requests.post(url, data=body, headers=headers, timeout=10)


def inbox_count(rt: Runtime) -> int:
    assert rt.store is not None  # opened (and migrated) on first use
    with contextlib.closing(sqlite3.connect(rt.config.store_path())) as conn:
        return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])


def job_count(rt: Runtime) -> int:
    return sum(rt.store.queue_depth().values())


def raw_post(srv: RunningServer, path: str, body: bytes, headers: dict[str, Any]) -> tuple[int, str]:
    """POST with header values sent as given (requests refuses some malformed ones); (status, Content-Type)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.putrequest("POST", path)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            conn.putheader(key, value)
        conn.endheaders(body)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Content-Type", "")
    finally:
        conn.close()


def spy_verifier(srv: RunningServer, name: str) -> list[int]:
    """Wrap a system's verifier; the list collects the body length of every call."""
    calls: list[int] = []
    endpoint = srv.receiver.endpoints[name]
    inner = endpoint.verifier

    def spy(**kwargs: Any) -> Any:
        calls.append(len(kwargs["body"]))
        return inner(**kwargs)

    srv.receiver.endpoints[name] = dataclasses.replace(endpoint, verifier=spy)
    return calls


# -- section 7 vectors through the HTTP app --------------------------------------------------------------------
def test_github_vector_passes_jira_signature_check(server: RunningServer) -> None:
    """The GitHub docs vector verifies as Jira's X-Hub-Signature; its body is not JSON, so 400 (not 401)."""
    headers = {"X-Hub-Signature": GITHUB_SIG, "X-Atlassian-Webhook-Identifier": "vector-1"}
    r = requests.post(server.webhook_url("jira"), data=GITHUB_BODY, headers=headers, timeout=10)
    assert r.status_code == 400
    assert "JSON" in r.json()["error"]
    wrong = GITHUB_SIG[:-1] + ("0" if GITHUB_SIG[-1] != "0" else "1")
    r = requests.post(server.webhook_url("jira"), data=GITHUB_BODY, headers={**headers, "X-Hub-Signature": wrong})
    assert r.status_code == 401


def test_hubspot_v3_vector_with_millisecond_timestamp(tmp_path: Path) -> None:
    """The SDK's v3 vector verifies at a virtual now of 15000 s (the ms timestamp / 1000); legacy v2 is 401."""
    runtime = make_runtime(tmp_path, public_urls={"hubspot": HS_URI})
    try:
        with serving(runtime, clock=Clock(15_000.0)) as srv:
            assert srv.webhook_url("hubspot") == HS_URI
            url = f"{srv.url}/webhooks/hubspot"
            headers = {"X-HubSpot-Signature-v3": HS_V3, "X-HubSpot-Request-Timestamp": HS_TS}
            r = requests.post(url, data=HS_BODY, headers=headers, timeout=10)
            assert r.status_code == 400, r.text  # signature good; the vector's body is not JSON
            assert "JSON" in r.json()["error"]
            # the same delivery 301 s later, or with the timestamp in seconds: rejected
            r = requests.post(url, data=HS_BODY, headers={**headers, "X-HubSpot-Request-Timestamp": "15000"})
            assert r.status_code == 401
            legacy = {"X-HubSpot-Signature": HS_V2}
            assert requests.post(url, data=HS_BODY, headers=legacy, timeout=10).status_code == 401
            # a real batch signed the same way, over the configured public URL, is accepted
            body = hs_body(1)
            ok = {
                "X-HubSpot-Signature-v3": hs_sig(HS_SECRET, HS_URI, body, HS_TS),
                "X-HubSpot-Request-Timestamp": HS_TS,
            }
            r = requests.post(url, data=body, headers=ok, timeout=10)
            assert r.status_code == 200, r.text
            assert r.json() == {"accepted": 1, "duplicates": 0}
        with serving(runtime, clock=Clock(15_000.0 + 301)) as srv:
            headers = {"X-HubSpot-Signature-v3": HS_V3, "X-HubSpot-Request-Timestamp": HS_TS}
            assert requests.post(f"{srv.url}/webhooks/hubspot", data=HS_BODY, headers=headers).status_code == 401
    finally:
        runtime.close()


def test_zendesk_vectors_timestamp_then_body(server: RunningServer) -> None:
    """Zendesk signs timestamp+body: that vector passes the signature (400: no ticket); the old order is 401."""
    r = post_zd(server, ZD_BODY, ZD_TS_THEN_BODY)
    assert r.status_code == 400
    assert "ticket" in r.json()["error"]
    assert post_zd(server, ZD_BODY, ZD_BODY_THEN_TS).status_code == 401


def test_public_url_is_what_hubspot_signs(tmp_path: Path, clock: Clock) -> None:
    """With [webhooks] public_url, the signed URI is the public URL plus the request path and query."""
    runtime = make_runtime(tmp_path, public_url="https://hooks.example.com/")
    try:
        with serving(runtime, clock=clock) as srv:
            public = "https://hooks.example.com/webhooks/hubspot?src=app"
            body, ts = hs_body(5), str(int(clock.now * 1000))
            headers = {"X-HubSpot-Signature-v3": hs_sig(HS_SECRET, public, body, ts), "X-HubSpot-Request-Timestamp": ts}
            r = requests.post(f"{srv.url}/webhooks/hubspot?src=app", data=body, headers=headers, timeout=10)
            assert r.status_code == 200, r.text
            local = f"{srv.url}/webhooks/hubspot?src=app"
            headers["X-HubSpot-Signature-v3"] = hs_sig(HS_SECRET, local, body, ts)
            assert requests.post(local, data=body, headers=headers, timeout=10).status_code == 401
    finally:
        runtime.close()


def test_request_url_as_it_arrived() -> None:
    """Without a public URL the verifier sees scheme, Host, raw path and query."""
    environ = EnvironBuilder(
        path="/webhooks/hubspot", query_string="a=1&b=%2F", base_url="http://h.example:8787"
    ).get_environ()
    assert request_url(environ) == "http://h.example:8787/webhooks/hubspot?a=1&b=%2F"
    environ["REQUEST_URI"] = "/webhooks/hubspot?a=1&b=%2F"
    assert request_url(environ, "https://pub.example/") == "https://pub.example/webhooks/hubspot?a=1&b=%2F"
    assert request_url(environ, endpoint_url="https://x.example/hook") == "https://x.example/hook?a=1&b=%2F"


# -- accepted deliveries, duplicates, batches ----------------------------------------------------------------
def test_each_system_accepts_a_signed_delivery(server: RunningServer, rt: Runtime, clock: Clock) -> None:
    """Signed Jira, Zendesk and HubSpot deliveries are stored with one job each, then acknowledged."""
    r = post_jira(server, jira_body(), delivery="jira-1")
    assert (r.status_code, r.json()) == (200, {"accepted": 1, "duplicates": 0})
    body = zd_body("evt-9")
    assert post_zd(server, body, zd_sig(ZD_SECRET, ZD_TS, body)).json() == {"accepted": 1, "duplicates": 0}
    assert post_hs(server, hs_body(11, 12), ts_ms=int(clock.now * 1000)).json() == {"accepted": 2, "duplicates": 0}
    assert inbox_count(rt) == 4
    assert rt.store.queue_depth()["ready"] == 4
    row = rt.store.inbox_row("jira", "jira-1")
    assert row is not None
    assert row.payload["subject"] == "jira:issue:10001"
    assert rt.store.inbox_row("zendesk", "evt-9") is not None
    assert rt.store.inbox_row("hubspot", "12-1-7-1627207200000") is not None  # eventId-subscription-object-time


def test_duplicates_answer_200_and_store_one_row(server: RunningServer, rt: Runtime) -> None:
    """A redelivery with the same delivery id is acknowledged (200) and changes nothing."""
    body = jira_body()
    assert post_jira(server, body, delivery="same").json() == {"accepted": 1, "duplicates": 0}
    r = post_jira(server, body, delivery="same")
    assert (r.status_code, r.json()) == (200, {"accepted": 0, "duplicates": 1})
    assert inbox_count(rt) == 1
    assert job_count(rt) == 1


def test_hubspot_batch_with_repeated_event_id(server: RunningServer, rt: Runtime, clock: Clock) -> None:
    """D2: an eventId repeated within a batch gives one row per distinct eventId; the batch again is all duplicates."""
    ts = int(clock.now * 1000)
    assert post_hs(server, hs_body(1, 2, 1, 3, 2), ts_ms=ts).json() == {"accepted": 3, "duplicates": 0}
    assert post_hs(server, hs_body(1, 2, 3), ts_ms=ts).json() == {"accepted": 0, "duplicates": 3}
    assert post_hs(server, hs_body(3, 4), ts_ms=ts).json() == {"accepted": 1, "duplicates": 1}
    assert inbox_count(rt) == 4
    assert job_count(rt) == 4


def test_hubspot_dedupe_uses_event_subscription_object_and_time(
    server: RunningServer, rt: Runtime, clock: Clock
) -> None:
    """HubSpot documents eventId as not unique: two changes sharing one eventId (other object, other subscription,
    other time) are both kept; a redelivery (a later attemptNumber) is a duplicate. Recorded shapes, nulls included:
    a generic ``object.propertyChange`` (objectTypeId 0-5) with a null propertyValue and sourceId, an
    ``object.associationChange`` (no objectId), a classic event without a subscriptionId."""
    ts = int(clock.now * 1000)
    base: dict[str, Any] = json.loads(hs_body(5))[0]
    generic = {
        **base,
        "subscriptionType": "object.propertyChange",
        "objectTypeId": "0-5",
        "propertyName": "cxbridge_escalate",
        "propertyValue": None,
        "sourceId": None,
    }
    association = {
        "eventId": 5,
        "subscriptionId": 3,
        "portalId": 62515001,
        "appId": 3140001,
        "occurredAt": 1627207200001,
        "subscriptionType": "object.associationChange",
        "attemptNumber": 0,
        "changeSource": "USER",
        "associationType": "TICKET_TO_COMPANY",
        "fromObjectTypeId": "0-5",
        "fromObjectId": 7,
        "toObjectTypeId": "0-2",
        "toObjectId": 901,
        "associationRemoved": False,
        "isPrimaryAssociation": False,
    }
    batch = [
        base,
        {**base, "objectId": 8},
        {**base, "subscriptionId": 2},
        {**base, "occurredAt": base["occurredAt"] + 1},
        {**generic, "subscriptionId": 9},
        association,
        {**base, "subscriptionId": None, "objectId": 10},
    ]
    body = json.dumps(batch).encode()
    assert post_hs(server, body, ts_ms=ts).json() == {"accepted": 7, "duplicates": 0}
    again = json.dumps([{**item, "attemptNumber": 1} for item in batch]).encode()
    assert post_hs(server, again, ts_ms=ts).json() == {"accepted": 0, "duplicates": 7}
    assert rt.store.inbox_row("hubspot", "5-1-7-1627207200000") is not None
    assert rt.store.inbox_row("hubspot", "5-1-8-1627207200000") is not None
    assert rt.store.inbox_row("hubspot", "5--10-1627207200000") is not None
    row = rt.store.inbox_row("hubspot", "5-9-7-1627207200000")
    assert row is not None
    assert row.payload["subject"] == "hubspot:ticket:7"
    assert row.payload["kind"] == "object.propertyChange"
    row = rt.store.inbox_row("hubspot", "5-3-7-1627207200001")
    assert row is not None
    assert row.payload["subject"] == "hubspot:ticket:7"
    assert inbox_count(rt) == 7


def test_redelivery_days_later_is_still_a_duplicate(tmp_path: Path, clock: Clock) -> None:
    """D2: Jira redelivers after 3 d and after 6 d 23 h: deduped within the 7 d retention, purged after it."""
    store_clock = Clock(1_000_000.0)
    runtime = make_runtime(tmp_path, store_clock=store_clock)
    try:
        with serving(runtime, clock=clock) as srv:
            body = jira_body()
            assert post_jira(srv, body, delivery="late").json()["accepted"] == 1
            for later in (3 * 86400, 6 * 86400 + 23 * 3600):
                store_clock.now = 1_000_000.0 + later
                assert runtime.store.purge_inbox() == 0
                assert post_jira(srv, body, delivery="late").json() == {"accepted": 0, "duplicates": 1}
            store_clock.now = 1_000_000.0 + 7 * 86400 + 1
            assert runtime.store.purge_inbox() == 1
            assert inbox_count(runtime) == 0
    finally:
        runtime.close()


def test_one_delivery_from_16_clients_1000_times(server: RunningServer, rt: Runtime) -> None:
    """D1 at the ingress: 1,000 concurrent copies of one delivery get 1,000 2xx, one inbox row and one job."""
    body = jira_body()
    headers = {"X-Hub-Signature": jira_sig(GITHUB_SECRET, body), "X-Atlassian-Webhook-Identifier": "d1"}
    url = server.webhook_url("jira")
    local = threading.local()

    def send(_: int) -> tuple[int, int]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        r = session.post(url, data=body, headers=headers, timeout=30)
        return r.status_code, r.json()["accepted"] if r.status_code == 200 else -1

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, range(1000)))
    assert [status for status, _ in results].count(200) == 1000
    assert sum(accepted for _, accepted in results) == 1
    assert inbox_count(rt) == 1
    assert job_count(rt) == 1
    assert server.metrics.deliveries() == {("jira", "accepted"): 1, ("jira", "duplicate"): 999}


# -- rejections ---------------------------------------------------------------------------------------------------
def test_unsigned_deliveries_are_401(server: RunningServer, rt: Runtime) -> None:
    """W8: no signature header at all is 401 for every system, and nothing is stored."""
    for name, body in (("jira", jira_body()), ("zendesk", zd_body()), ("hubspot", hs_body(1))):
        r = requests.post(server.webhook_url(name), data=body, headers={"X-Atlassian-Webhook-Identifier": "u"})
        assert r.status_code == 401, (name, r.text)
    assert inbox_count(rt) == 0


def test_malformed_signature_headers_are_400_or_401(server: RunningServer, rt: Runtime, clock: Clock) -> None:
    """W3: every malformed header of section 7, 200 signatures and an 8 KB header: 400 or 401, never 500."""
    many = " ".join(base64.b64encode(bytes([i]) * 32).decode() for i in range(200))
    cases = [*MALFORMED_SIGNATURE_HEADERS, many, "A" * 8200]
    ts_ms = str(int(clock.now * 1000))
    bodies = {"jira": jira_body(), "zendesk": zd_body(), "hubspot": hs_body(1)}
    extra = {
        "jira": {"X-Atlassian-Webhook-Identifier": "m"},
        "zendesk": {"X-Zendesk-Webhook-Signature-Timestamp": ZD_TS},
        "hubspot": {"X-HubSpot-Request-Timestamp": ts_ms},
    }
    seen: set[int] = set()
    for name, header in SIG_HEADERS.items():
        for value in cases:
            headers = {**extra[name], header: value.encode("latin-1", "replace")}
            status, content_type = raw_post(server, f"/webhooks/{name}", bodies[name], headers)
            assert status in (400, 401), (name, value[:20], status)
            assert content_type == "application/json"
            seen.add(status)
    assert seen == {400, 401}
    assert inbox_count(rt) == 0
    # malformed timestamps and JSON bodies with a good signature are 400
    bad_ts = {
        "X-Zendesk-Webhook-Signature": zd_sig(ZD_SECRET, "hello", b"{}"),
        "X-Zendesk-Webhook-Signature-Timestamp": "hello",
    }
    assert requests.post(server.webhook_url("zendesk"), data=b"{}", headers=bad_ts).status_code == 400
    body = b"[1, 2"
    assert post_hs(server, body, ts_ms=int(ts_ms)).status_code == 400
    assert post_jira(server, b"\xff\xfe not json").status_code == 400


def test_verification_is_on_the_raw_bytes(server: RunningServer, rt: Runtime) -> None:
    """W5: a CRLF-formatted body verifies as sent; the same JSON re-serialised under that signature is 401."""
    doc = json.loads(jira_body())
    raw = json.dumps(doc, indent=1).replace("\n", "\r\n").encode()
    signature = jira_sig(GITHUB_SECRET, raw)
    headers = {"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": "raw-1"}
    assert requests.post(server.webhook_url("jira"), data=raw, headers=headers, timeout=10).status_code == 200
    compact = json.dumps(doc, separators=(",", ":")).encode()
    headers["X-Atlassian-Webhook-Identifier"] = "raw-2"
    assert requests.post(server.webhook_url("jira"), data=compact, headers=headers, timeout=10).status_code == 401
    row = rt.store.inbox_row("jira", "raw-1")
    assert row is not None
    assert row.payload["payload"] == doc
    bom = b"\xef\xbb\xbf" + compact  # signed, but not JSON a strict reader accepts: 400, not 500
    headers = {"X-Hub-Signature": jira_sig(GITHUB_SECRET, bom), "X-Atlassian-Webhook-Identifier": "raw-3"}
    assert requests.post(server.webhook_url("jira"), data=bom, headers=headers, timeout=10).status_code == 400


def test_single_byte_mutations_of_the_body_are_401(server: RunningServer, rt: Runtime) -> None:
    """W1: flip one bit of each body byte of a signed Jira delivery: every one is 401."""
    body = jira_body()
    signature = jira_sig(GITHUB_SECRET, body)
    session = requests.Session()
    for i, mutated in enumerate(byte_flips(body)):
        headers = {"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": f"mut-{i}"}
        assert session.post(server.webhook_url("jira"), data=mutated, headers=headers).status_code == 401
    assert inbox_count(rt) == 0


@pytest.mark.parametrize("offset", [-301, -300, -299, 299, 300, 301])
def test_timestamp_window_is_symmetric(server: RunningServer, clock: Clock, offset: int) -> None:
    """W2: Zendesk and HubSpot accept a signature timestamp within 300 s of now, either side, and no further."""
    clock.now = ZD_NOW - offset  # the delivery's timestamp is offset seconds from now
    body = zd_body(f"w2-{offset}")
    expected = 200 if abs(offset) <= 300 else 401
    assert post_zd(server, body, zd_sig(ZD_SECRET, ZD_TS, body)).status_code == expected
    assert post_hs(server, hs_body(1000 + offset), ts_ms=int(ZD_NOW * 1000)).status_code == expected


def test_secret_rotation(tmp_path: Path, clock: Clock) -> None:
    """W4: during a rotation the old, the new, or both signatures verify; once the old is retired only the new."""
    old, new = "old-secret-value-1", "new-secret-value-2"
    for active, accepted in (([old, new], {"old", "new", "both"}), ([new], {"new", "both"})):
        directory = tmp_path / str(len(active))
        directory.mkdir()
        runtime = make_runtime(directory, {"jira": active, "zendesk": active, "hubspot": [HS_SECRET]})
        try:
            with serving(runtime, clock=clock) as srv:
                for label, secrets in (("old", [old]), ("new", [new]), ("both", [old, new])):
                    body = zd_body(f"rot-{label}")
                    sig = " ".join(zd_sig(s, ZD_TS, body) for s in secrets)
                    want = 200 if label in accepted else 401
                    assert post_zd(srv, body, sig).status_code == want, (active, label)
                    if label != "both":
                        r = post_jira(srv, jira_body(), delivery=f"rot-{label}", secret=secrets[0])
                        assert r.status_code == want, (active, label)
        finally:
            runtime.close()


def test_system_without_secret_is_refused_at_start(tmp_path: Path) -> None:
    """W8: a served system without a usable secret stops the app from starting, naming the key to set."""
    runtime = make_runtime(tmp_path, {"zendesk": [ZD_SECRET], "hubspot": [HS_SECRET]})
    try:
        with pytest.raises(ConfigError, match=r"\[webhooks\] secrets\.jira"):
            Receiver(runtime, metrics=Metrics())
        # serving only the systems that have secrets works; naming one that cannot be served does not
        assert set(Receiver(runtime, metrics=Metrics(), systems=["zendesk"]).endpoints) == {"zendesk"}
        with pytest.raises(ConfigError, match=r"no \[systems\.nosuch\]"):
            Receiver(runtime, metrics=Metrics(), systems=["nosuch"])
        # and if started regardless, the system answers 401 to everything, even a "signed" delivery
        with serving(runtime, require_secrets=False) as srv:
            r = requests.post(
                srv.webhook_url("jira"), data=jira_body(), headers={"X-Hub-Signature": jira_sig("", jira_body())}
            )
            assert r.status_code == 401
            assert srv.metrics.deliveries() == {("jira", "rejected_401"): 1}
    finally:
        runtime.close()


def test_empty_or_missing_secret_env_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """W8: a secret read from an unset or empty environment variable refuses to load, naming the key."""
    text = (
        '[systems.jira]\nbase_url = "https://x.atlassian.net"\n[webhooks.secrets]\njira = [{ env = "HOOK_SECRET" }]\n'
    )
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"webhooks\.secrets\.jira\[0\].*HOOK_SECRET"):
        load_config(tmp_path / "c.toml", text=text)
    monkeypatch.setenv("HOOK_SECRET", "")
    with pytest.raises(ConfigError, match="HOOK_SECRET"):
        load_config(tmp_path / "c.toml", text=text)


def test_errors_never_echo_secrets(server: RunningServer) -> None:
    """No answer body carries a secret, whatever was sent."""
    for name in SIG_HEADERS:
        r = requests.post(server.webhook_url(name), data=b"{}", headers={SIG_HEADERS[name]: "sha256=" + "0" * 64})
        for secret in (GITHUB_SECRET, ZD_SECRET, HS_SECRET):
            assert secret not in r.text


# -- caps, routes, store failures -------------------------------------------------------------------------------
def test_content_length_over_the_cap_is_413_unverified(server: RunningServer) -> None:
    """W6: a Content-Length of 1 MiB + 1 is answered 413 and the verifier never sees it; 1 MiB exactly is read."""
    calls = spy_verifier(server, "jira")
    headers = {"X-Hub-Signature": jira_sig(GITHUB_SECRET, b"x"), "X-Atlassian-Webhook-Identifier": "big"}
    r = requests.post(server.webhook_url("jira"), data=b"x" * (MAX_BODY + 1), headers=headers, timeout=30)
    assert r.status_code == 413
    assert calls == []
    r = requests.post(server.webhook_url("jira"), data=b"x" * MAX_BODY, headers=headers, timeout=30)
    assert r.status_code == 401
    assert calls == [MAX_BODY]
    assert server.metrics.deliveries()[("jira", "too_large")] == 1


def test_chunked_body_over_the_cap_is_413_unverified(server: RunningServer) -> None:
    """W6: a chunked body past the cap is 413 (the app's or waitress's own cut-off); never verified."""
    calls = spy_verifier(server, "jira")

    def chunks(total: int) -> Iterator[bytes]:
        for _ in range(total // 65536):
            yield b"y" * 65536
        yield b"y" * (total % 65536)

    r = requests.post(server.webhook_url("jira"), data=chunks(MAX_BODY + 1000), timeout=30)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 413
    # 50 MB, chunked, over a raw socket: answered 413 long before it is all sent
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /webhooks/jira HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"z" * 65536 + b"\r\n"
        sent = 0
        try:
            while sent < 50 * 1024 * 1024:
                sock.sendall(chunk)
                sent += 65536
        except OSError:
            pass
        answer = sock.recv(200)
    assert answer.startswith(b"HTTP/1.1 413")
    assert sent < 50 * 1024 * 1024
    assert calls == []


def test_read_body_without_length_reads_at_most_cap_plus_one() -> None:
    """A body with no Content-Length on an EOF-terminated input is read to at most the cap plus one byte."""

    class Endless(io.RawIOBase):
        read_total = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            n = len(buffer)
            buffer[:n] = b"e" * n
            Endless.read_total += n
            return n

    environ = {"wsgi.input": Endless(), "wsgi.input_terminated": True}
    with pytest.raises(BodyTooLarge):
        read_body(environ, cap=1000)
    assert Endless.read_total == 1001
    assert read_body({"wsgi.input": io.BytesIO(b"abc"), "wsgi.input_terminated": True}, cap=1000) == b"abc"
    assert read_body({"wsgi.input": io.BytesIO(b"abc")}, cap=1000) == b""  # no length, not terminated: no body


def test_routes_and_methods(server: RunningServer) -> None:
    """Unknown systems are 404, other methods 405; neither reads nor counts anything per system."""
    assert requests.post(f"{server.url}/webhooks/nosuch", data=b"{}").status_code == 404
    assert requests.post(f"{server.url}/webhooks/", data=b"{}").status_code == 404
    assert requests.post(f"{server.url}/elsewhere", data=b"{}").status_code == 404
    r = requests.get(server.webhook_url("jira"))
    assert (r.status_code, r.headers["Allow"]) == (405, "POST")
    assert requests.post(f"{server.url}/healthz").status_code == 405
    assert server.metrics.deliveries() == {}


def test_store_failure_is_503_so_the_vendor_retries(server: RunningServer, rt: Runtime) -> None:
    """A store that cannot commit answers 503 (with Retry-After), and /healthz says so."""
    assert requests.get(f"{server.url}/healthz").status_code == 200
    rt.store.close()
    r = post_jira(server, jira_body(), delivery="lost")
    assert r.status_code == 503
    assert "Retry-After" in r.headers
    assert requests.get(f"{server.url}/healthz").status_code == 503
    assert server.metrics.deliveries() == {("jira", "error"): 1}
    assert "cxbridge_store_up 0.0" in requests.get(f"{server.url}/metrics").text


# -- health and metrics ----------------------------------------------------------------------------------------
def test_healthz_reports_the_queue(server: RunningServer) -> None:
    """GET /healthz: status ok with the queue depth, which moves after a delivery."""
    before = requests.get(f"{server.url}/healthz").json()
    assert before["status"] == "ok"
    assert before["queue"]["ready"] == 0
    assert before["webhooks"] == ["hubspot", "jira", "zendesk"]
    post_jira(server, jira_body(), delivery="h1")
    assert requests.get(f"{server.url}/healthz").json()["queue"]["ready"] == 1


def test_metrics_exposition(server: RunningServer, rt: Runtime) -> None:
    """GET /metrics parses with prometheus_client's own parser; deliveries (counts and latency), queue, jobs (counts
    and durations), the oldest due job's age, API calls, 429s and the process move with real activity."""
    r = requests.get(f"{server.url}/metrics")
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert samples(r.text)[("cxbridge_webhook_deliveries_total", (("result", "accepted"), ("system", "jira")))] == 0
    post_jira(server, jira_body(), delivery="m1")
    post_jira(server, jira_body(), delivery="m1")
    post_jira(server, b"{}", delivery="m2", secret="wrong")
    server.metrics.job("done", kind="event", seconds=0.3)
    server.metrics.job("retried", kind="event", seconds=2.0)
    rt.counter.record("jira", "create_issue", 201)
    rt.counter.record("jira", "get_issue", 201)
    rt.counter.record("jira", "get_issue", 429)
    rt.counter.record("zendesk", "get_ticket", "error")
    text = requests.get(f"{server.url}/metrics").text
    lines = set(text.splitlines())
    for family, kind in (
        ("cxbridge_webhook_deliveries_total", "counter"),
        ("cxbridge_webhook_delivery_seconds", "histogram"),
        ("cxbridge_queue_jobs", "gauge"),
        ("cxbridge_queue_oldest_ready_age_seconds", "gauge"),
        ("cxbridge_jobs_total", "counter"),
        ("cxbridge_job_duration_seconds", "histogram"),
        ("cxbridge_api_calls_total", "counter"),
        ("cxbridge_api_rate_limited_total", "counter"),
        ("process_cpu_seconds_total", "counter"),
    ):
        assert f"# TYPE {family} {kind}" in lines
        assert any(line.startswith(f"# HELP {family} ") for line in lines)
    found = samples(text)
    assert {
        ("cxbridge_webhook_deliveries_total", (("result", "accepted"), ("system", "jira"))): 1,
        ("cxbridge_webhook_deliveries_total", (("result", "duplicate"), ("system", "jira"))): 1,
        ("cxbridge_webhook_deliveries_total", (("result", "rejected_401"), ("system", "jira"))): 1,
        ("cxbridge_webhook_delivery_seconds_count", (("system", "jira"),)): 3,
        ("cxbridge_queue_jobs", (("state", "ready"),)): 1,
        ("cxbridge_jobs_total", (("outcome", "done"),)): 1,
        ("cxbridge_jobs_total", (("outcome", "retried"),)): 1,
        ("cxbridge_jobs_total", (("outcome", "dead"),)): 0,
        ("cxbridge_job_duration_seconds_count", (("kind", "event"), ("outcome", "done"))): 1,
        ("cxbridge_job_duration_seconds_bucket", (("kind", "event"), ("le", "0.5"), ("outcome", "done"))): 1,
        ("cxbridge_job_duration_seconds_bucket", (("kind", "event"), ("le", "1.0"), ("outcome", "retried"))): 0,
        ("cxbridge_api_calls_total", (("status", "201"), ("system", "jira"))): 2,
        ("cxbridge_api_calls_total", (("status", "429"), ("system", "jira"))): 1,
        ("cxbridge_api_calls_total", (("status", "error"), ("system", "zendesk"))): 1,
        ("cxbridge_api_rate_limited_total", (("system", "jira"),)): 1,
        ("cxbridge_api_rate_limited_total", (("system", "zendesk"),)): 0,
        ("cxbridge_store_up", ()): 1,
    }.items() <= found.items()
    assert found[("cxbridge_webhook_delivery_seconds_sum", (("system", "jira"),))] > 0
    assert found[("process_resident_memory_bytes", ())] > 0
    assert found[("cxbridge_queue_oldest_ready_age_seconds", ())] >= 0


def test_metrics_oldest_due_job_and_last_poll(tmp_path: Path) -> None:
    """The oldest due job's age follows the store's clock (a job due later does not count); a stream polled to
    its end shows its time, one that failed keeps the earlier one."""
    from cxbridge.workflows.reconcile import POLL_KIND

    store_clock = Clock(1_000_000.0)
    runtime = make_runtime(tmp_path, store_clock=store_clock)
    try:
        metrics = Metrics(process=False)
        assert samples(metrics.render(runtime))[("cxbridge_queue_oldest_ready_age_seconds", ())] == 0
        runtime.store.enqueue("event", {"n": 1})
        runtime.store.enqueue("event", {"n": 2}, run_at=1_000_500.0)
        store_clock.now += 90
        found = samples(metrics.render(runtime))
        assert found[("cxbridge_queue_oldest_ready_age_seconds", ())] == 90
        assert not any(name == "cxbridge_last_successful_poll_timestamp_seconds" for name, _ in found)
        runtime.store.put_snapshot(POLL_KIND, "zendesk/tickets", {"at": 1_000_050.0})
        found = samples(metrics.render(runtime))
        key = ("cxbridge_last_successful_poll_timestamp_seconds", (("stream", "tickets"), ("system", "zendesk")))
        assert found[key] == 1_000_050.0
    finally:
        runtime.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, read by prometheus_client's parser: (name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_api_and_label_escaping() -> None:
    """Label values are escaped; unknown results and outcomes are programming errors."""
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    metrics = Metrics()
    with pytest.raises(ValueError, match="unknown job outcome"):
        metrics.job("finished")
    with pytest.raises(ValueError, match="unknown delivery result"):
        metrics.delivery("jira", "ok")
    metrics.job("dead")
    assert metrics.jobs() == {"done": 0, "retried": 0, "dead": 1}
