"""The Jira webhook verifier: X-Hub-Signature (sha256 HMAC of the raw body), the delivery id, Jira's limits.

The properties every verifier shares (signatures, malformed headers, rotation, fuzzing) are
``cxbridge.testing.VerifierContract``'s, run here by ``TestJiraVerifier``; Jira signs no timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cxbridge_jira.webhook import sign, verify_jira
from hypothesis import given, settings
from hypothesis import strategies as st

from cxbridge.sdk import Ref, Secret, WebhookRejected
from cxbridge.testing import SignedDelivery, VerifierContract

SECRET = "jira-webhook-secret-3b1f"
NOW = 1_714_640_000.0
DELIVERY = "b8f9a1c2-5d6e-4f70-8a9b-0c1d2e3f4a5b"

ISSUE_UPDATED: dict[str, Any] = {
    "timestamp": 1714639990123,
    "webhookEvent": "jira:issue_updated",
    "issue_event_type_name": "issue_generic",
    "user": {
        "self": "https://acme.atlassian.net/rest/api/2/user?accountId=557058:f58131cb",
        "accountId": "557058:f58131cb",
        "displayName": "Dev One",
    },
    "issue": {
        "id": "10002",
        "self": "https://acme.atlassian.net/rest/api/2/10002",
        "key": "SUP-7",
        "fields": {"summary": "Checkout fails", "status": {"name": "Done"}},
    },
    "changelog": {
        "id": "10400",
        "items": [
            {
                "field": "status",
                "fieldtype": "jira",
                "fieldId": "status",
                "from": "3",
                "fromString": "In Progress",
                "to": "10001",
                "toString": "Done",
            }
        ],
    },
}


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def deliver(
    body: bytes,
    *,
    signature: str | None = None,
    secrets: list[Secret] | None = None,
    headers: dict[str, str] | None = None,
    delivery_id: str | None = DELIVERY,
) -> list[Any]:
    hdrs: dict[str, str] = {"Content-Type": "application/json", "X-Atlassian-Webhook-Flow": "Primary"}
    if delivery_id is not None:
        hdrs["X-Atlassian-Webhook-Identifier"] = delivery_id
    hdrs["X-Hub-Signature"] = sign(SECRET, body) if signature is None else signature
    hdrs.update(headers or {})
    return verify_jira(
        method="POST",
        url="https://cxbridge.example.com/webhooks/jira",
        headers=hdrs,
        body=body,
        secrets=[Secret(SECRET)] if secrets is None else secrets,
        now=NOW,
    )


def rejected(status: int, **kw: Any) -> WebhookRejected:
    body = kw.pop("body", body_of(ISSUE_UPDATED))
    with pytest.raises(WebhookRejected) as info:
        deliver(body, **kw)
    assert info.value.status == status, str(info.value)
    return info.value


def test_github_documented_vector() -> None:
    """The GitHub docs vector (same construction as Jira's X-Hub-Signature) is reproduced and verified."""
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign("It's a Secret to Everybody", b"Hello, World!") == expected
    # The signature verifies: the body then fails as a Jira payload (not JSON), which is 400, not 401.
    with pytest.raises(WebhookRejected) as info:
        deliver(b"Hello, World!", signature=expected, secrets=[Secret("It's a Secret to Everybody")])
    assert info.value.status == 400
    with pytest.raises(WebhookRejected) as info:
        deliver(b"Hello, World!", signature=expected, secrets=[Secret("It's a secret to everybody")])
    assert info.value.status == 401


def test_issue_updated_becomes_an_event() -> None:
    """A signed jira:issue_updated delivery is one Event keyed by the webhook identifier."""
    (event,) = deliver(body_of(ISSUE_UPDATED))
    assert event.id == DELIVERY
    assert event.system == "jira"
    assert event.kind == "jira:issue_updated"
    assert event.subject == Ref("jira", "issue", "10002")
    assert event.actor == "557058:f58131cb"
    assert event.payload == ISSUE_UPDATED
    assert event.occurred_at == datetime.fromtimestamp(1714639990.123, UTC)
    assert event.received_at == datetime.fromtimestamp(NOW, UTC)


def test_comment_created_on_data_center() -> None:
    """DC users have a name instead of an accountId; comment events carry the issue too."""
    payload = {
        "timestamp": 1714639990000,
        "webhookEvent": "comment_created",
        "user": {"name": "jdoe", "key": "JIRAUSER10100", "displayName": "J Doe"},
        "issue": {"id": 10002, "key": "SUP-7"},
        "comment": {"id": "10010", "body": "[support] fixed"},
    }
    (event,) = deliver(body_of(payload))
    assert (event.kind, event.subject, event.actor) == ("comment_created", Ref("jira", "issue", "10002"), "jdoe")


def test_version_released_is_about_the_version() -> None:
    """A fix version release has no issue: the version is the subject."""
    payload = {
        "timestamp": 1714639990000,
        "webhookEvent": "jira:version_released",
        "version": {"id": "10100", "name": "2.4.1", "released": True, "projectId": 10000},
    }
    (event,) = deliver(body_of(payload))
    assert event.subject == Ref("jira", "version", "10100")
    assert event.actor is None


def test_repeated_unrelated_headers_are_fine() -> None:
    """A proxy's repeated header does not make the delivery malformed; only signature and id must be single."""
    assert deliver(body_of(ISSUE_UPDATED), headers={"Via": "1.1 a", "via": "1.1 b"})


def test_uppercase_hex_and_method_are_the_same_signature() -> None:
    """The digest is compared as bytes: hex case does not matter."""
    body = body_of(ISSUE_UPDATED)
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest().upper()
    assert deliver(body, signature=f"SHA256={digest}")


# Jira's own malformed headers; the shared ones (RELIABILITY.md section 7, 8 KB, 200 signatures) are the suite's.
MALFORMED = [
    ",".join(["sha256=" + "0" * 64] * 200),  # 200 signatures, none valid
    "sha256=" + "a" * 8192,  # 8 KB
    "sha256=",
    "sha256",
    "=abc",
    "sha256=é",
    "sha256=" + "g" * 64,
    "sha256=" + "0" * 63,
    "sha256=" + "0" * 65,
    "sha256==" + "0" * 64,
    "sha256=" + "0" * 64 + "\n",
    "sha256 =" + "0" * 64,
    "sha256=" + "\uff10" * 64,  # fullwidth digits
    "sha1=" + "0" * 40,
    "md5=" + "0" * 32,
    "sha512=" + "0" * 128,
    "sha256=\x00",
    "é" * 50,
]


@pytest.mark.parametrize("header", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_signature_headers_raise_only_webhook_rejected(header: str) -> None:
    """Every malformed X-Hub-Signature is WebhookRejected with 400 or 401, never another exception."""
    with pytest.raises(WebhookRejected) as info:
        deliver(body_of(ISSUE_UPDATED), signature=header)
    assert info.value.status in (400, 401)


def test_only_sha256_is_accepted() -> None:
    """A correct sha1 signature of the body is still refused: only sha256 counts."""
    body = body_of(ISSUE_UPDATED)
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    rejected(401, body=body, signature=sha1)


def test_missing_or_malformed_identifier_is_400() -> None:
    """The delivery id is the dedupe key: without it the delivery is malformed."""
    rejected(400, delivery_id=None)
    rejected(400, delivery_id="")
    rejected(400, delivery_id="has space")
    rejected(400, delivery_id="x" * 201)


@pytest.mark.parametrize(
    "body",
    [
        b"[1,2]",
        b'"string"',
        b"{}",
        b'{"webhookEvent": 5}',
        b'{"webhookEvent": "x", "n": ' + b"9" * 5000 + b"}",
    ],
)
def test_signed_but_malformed_bodies_are_400(body: bytes) -> None:
    """A correctly signed body that is not a Jira payload is 400."""
    rejected(400, body=body, signature=sign(SECRET, body))


def test_header_count_and_length_are_capped() -> None:
    """Too many headers, a huge header or duplicate spellings of one are 400."""
    rejected(400, headers={f"X-Extra-{n}": "v" for n in range(200)})
    rejected(400, headers={"X-Extra": "v" * 10_000})
    rejected(400, headers={"x-hub-signature": sign(SECRET, body_of(ISSUE_UPDATED))})
    rejected(400, headers={"x-atlassian-webhook-identifier": "other-id"})


def test_oversized_body_is_400() -> None:
    """More than 1 MiB is refused even when signed."""
    body = b'{"webhookEvent":"x","pad":"' + b"a" * (1024 * 1024) + b'"}'
    rejected(400, body=body, signature=sign(SECRET, body))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    payload=st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
            ),
            max_leaves=10,
        ),
        max_size=5,
    ),
    kind=st.text(min_size=1, max_size=30),
)
def test_signed_arbitrary_payloads_verify_or_are_400(payload: dict[str, Any], kind: str) -> None:
    """Signed JSON of any shape is an Event (when it names its webhookEvent) or 400, never a crash."""
    payload["webhookEvent"] = kind
    body = json.dumps(payload).encode()
    (event,) = deliver(body, signature=sign(SECRET, body))
    assert event.kind == kind
    assert event.subject.system == "jira"


# -- what every verifier does (cxbridge.testing) ----------------------------------------------------------------


class TestJiraVerifier(VerifierContract):
    system = "jira"
    verifier = staticmethod(verify_jira)
    signature_header = "X-Hub-Signature"
    max_signatures = None  # one sha256=<hex> per header
    signature_change_statuses = (400, 401)  # a non-hex digit is malformed (400), another digit only wrong (401)
    malformed_signature_statuses = (400, 401)
    events_per_delivery = 1
    secret = SECRET
    now = NOW
    body = body_of(ISSUE_UPDATED)
    fuzz_header_names = ("X-Atlassian-Webhook-Identifier", "X-Atlassian-Webhook-Flow")
    fuzz_payload_keys = ("webhookEvent", "issue", "id", "user", "accountId", "timestamp", "version")

    def signed_delivery(self, *, secret: str, body: bytes, now: float) -> SignedDelivery:
        headers = {
            "Content-Type": "application/json",
            "X-Atlassian-Webhook-Flow": "Primary",
            "X-Atlassian-Webhook-Identifier": DELIVERY,
            "X-Hub-Signature": sign(secret, body),
        }
        return SignedDelivery("POST", "https://cxbridge.example.com/webhooks/jira", headers, body)
