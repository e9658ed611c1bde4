"""The agent API of ``cxbridge serve`` (``/agent/...``) on the in-process sandbox: signed tokens only, the agent from
the token, the ticket view in one request, actions once per request id, CORS for the configured origin only."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import jwt
import pytest
import requests
from werkzeug.test import Client, TestResponse

from cxbridge.errors import ConfigError
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.webhooks.agent_api import MAX_TOKEN_SECONDS
from cxbridge.webhooks.receiver import make_app

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SECRET = "app-shared-secret-for-tests-0123456789"
ISSUER = "https://acme.zendesk.com"
AUDIENCE = "https://cxbridge.acme.example"
SAM = "sam@cxbridge.example"
LEE = "lee@cxbridge.example"
PATH = "/agent/tickets/1/decide"


def token(email: str = SAM, *, secret: str = SECRET, **override: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "9001", "email": email, "name": "Sam", "iat": now}
    claims["exp"] = now + 300
    claims.update(override)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.fixture
def runtime(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, policies: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Runtime:
    monkeypatch.setenv("CXB_TEST_AGENT_SECRET", SECRET)
    agent_api = {"secrets": [{"env": "CXB_TEST_AGENT_SECRET"}], "issuer": ISSUER, "audience": AUDIENCE}
    return sandbox_runtime(vendors, extra={"policies": policies, "agent_api": agent_api})


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return Client(make_app(runtime, require_secrets=False))


def get(client: Client, path: str, bearer: str | None = None, **headers: str) -> TestResponse:
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    return client.get(path, headers=headers)


def post(client: Client, path: str, body: Any, bearer: str | None = None, **headers: str) -> TestResponse:
    headers["Authorization"] = f"Bearer {bearer or token()}"
    return client.post(path, data=json.dumps(body), content_type="application/json", headers=headers)


def internal_notes(vendors: Vendors, ticket_id: int) -> list[str]:
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)
    return [c["body"] for c in ticket["comments"] if not c["public"]]


@pytest.mark.parametrize(
    ("bearer", "reason"),
    [
        (None, "no bearer token"),
        ("", "no token"),
        ("not.a.jwt", "malformed"),
        (token(exp=int(time.time()) - 120), "expired"),
        (token(aud="https://elsewhere.example"), "another audience"),
        (token(iss="https://other.zendesk.com"), "another helpdesk account"),
        (token(secret="another-secret-entirely-0123456789"), "signature does not match"),
        (token(email=None), "no agent email"),
        (token(sub=None), "'sub'"),
        (token(exp=int(time.time()) + MAX_TOKEN_SECONDS * 24), "longer than"),
        (jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "1", "email": SAM, "exp": 2**40}, "", "none"), "HS256"),
    ],
    ids=[
        "unsigned",
        "empty",
        "garbage",
        "expired",
        "audience",
        "issuer",
        "wrong-secret",
        "no-email",
        "no-sub",
        "too-long",
        "alg-none",
    ],
)
def test_a_request_without_a_valid_signed_token_is_refused_with_401(
    client: Client, vendors: Vendors, bearer: str | None, reason: str
) -> None:
    calls_before = vendors["zendesk"].state()
    response = get(client, "/agent/tickets/1", bearer)
    assert response.status_code == 401
    body = response.get_json()
    assert reason in body["error"]
    assert body["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert SECRET not in response.get_data(as_text=True)
    assert vendors["zendesk"].state() == calls_before


def test_a_tampered_token_is_refused(client: Client) -> None:
    """Changing the email in a validly signed token's payload breaks the signature: 401, not Lee."""
    header, payload, signature = token(SAM).split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["email"] = LEE
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    response = get(client, "/agent/tickets/1", f"{header}.{forged}.{signature}")
    assert response.status_code == 401
    assert "signature" in response.get_json()["error"]


def test_the_ticket_view_answers_what_the_sidebar_needs_in_one_request(
    client: Client, runtime: Runtime, vendors: Vendors
) -> None:
    """After an escalation: the link with the issue's status, assignee and versions, the customer, the impact,
    Sam's grants per action (credit up to 100 USD, priority up to High; reopen refused naming the lead rule),
    the audit; one helpdesk call for the ticket, the CRM for the customer, one tracker call per link."""
    escalated = post(client, "/agent/tickets/1/escalate", {"request_id": "req-escalate-1", "note": "Reproduced."})
    assert escalated.status_code == 200, escalated.get_json()
    key = escalated.get_json()["issue_key"]
    before = runtime.calls()
    response = get(client, "/agent/tickets/1", token())
    assert response.status_code == 200
    view = response.get_json()
    calls = runtime.calls_since(before)
    assert calls.get("jira") == 1
    assert calls.get("zendesk") == 1
    assert view["ticket"]["id"] == "1"
    assert view["agent"] == {"email": SAM, "name": "Sam", "known": True}
    customer = view["customer"]
    assert customer["known"]
    assert customer["tier"]
    assert customer["arr"]
    assert customer["renewal_date"]
    [link] = view["links"]
    assert link["key"] == key
    assert link["url"].endswith(f"/browse/{key}")
    assert link["status"]
    assert link["status_category"] == "new"
    assert "assignee" in link
    assert link["fix_versions"] == []
    assert link["impact"]["customers"] == 1
    assert link["impact"]["tickets"] == 1
    assert link["impact"]["arr"] == {customer["currency"]: customer["arr"]}
    grants = {g["action"]: g for g in view["grants"]}
    assert grants["credit"]["allowed"]
    assert grants["credit"]["credit_max"] == "100"
    assert grants["credit"]["currency"] == "USD"
    assert grants["credit"]["rule"] == "tier1-credits"
    assert grants["priority"]["priorities"] == ["Lowest", "Low", "Medium", "High"]
    assert not grants["reopen"]["allowed"]
    assert grants["reopen"]["would_allow"] == "team-lead-credits"
    assert "its condition is false" in grants["reopen"]["why_not"]
    assert not grants["public_reply"]["allowed"]
    assert grants["public_reply"]["why_not"] == "no rule grants public reply"
    assert view["failure"] is None
    assert any(row["actor"] == SAM for row in view["audit"])


def test_a_decision_within_the_grant_is_applied_once_per_request_id(client: Client, vendors: Vendors) -> None:
    first = post(client, "/agent/tickets/1/decide", {"request_id": "req-credit-50", "action": "credit", "value": 50})
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["decision"]["agent"] == SAM
    notes = [n for n in internal_notes(vendors, 1) if "Credit of 50" in n]
    assert len(notes) == 1
    assert SAM in notes[0]
    assert "tier1-credits" in notes[0]
    again = post(client, "/agent/tickets/1/decide", {"request_id": "req-credit-50", "action": "credit", "value": 50})
    assert again.status_code == 200
    assert again.get_json()["replayed"] is True
    assert len([n for n in internal_notes(vendors, 1) if "Credit of 50" in n]) == 1
    reused = post(client, "/agent/tickets/1/decide", {"request_id": "req-credit-50", "action": "credit", "value": 60})
    assert reused.status_code == 422
    assert "already used" in reused.get_json()["error"]


def test_a_decision_beyond_the_grant_is_refused_with_the_rule_that_would_allow_it(
    client: Client, runtime: Runtime, vendors: Vendors
) -> None:
    notes_before = internal_notes(vendors, 1)
    response = post(
        client, "/agent/tickets/1/decide", {"request_id": "req-credit-500", "action": "credit", "value": 500}
    )
    assert response.status_code == 403
    body = response.get_json()
    assert body["code"] == "refused"
    assert "team-lead-credits" in body["error"]
    assert body["decision"]["granted"] is False
    assert body["decision"]["agent"] == SAM
    assert internal_notes(vendors, 1) == notes_before
    refusals = [e for e in runtime.store.audit_entries() if e.result == "refused"]
    assert [(e.actor, e.action) for e in refusals] == [(SAM, "act.credit")]
    assert post(client, "/agent/tickets/1/decide", {"request_id": "req-credit-500", "action": "credit", "value": 500})
    assert len([e for e in runtime.store.audit_entries() if e.result == "refused"]) == 1


def test_the_agent_comes_from_the_token_never_from_the_body(client: Client, runtime: Runtime) -> None:
    """Sam's token with Lee's email in the body is refused outright; Lee's grants are never used for Sam."""
    body = {"request_id": "req-reopen-1", "action": "reopen", "agent": LEE}
    response = post(client, "/agent/tickets/1/decide", body, token(SAM))
    assert response.status_code == 400
    assert "signed token" in response.get_json()["error"]
    assert runtime.store.audit_entries() == []
    credit_300 = {"request_id": "req-credit-300", "action": "credit", "value": 300}
    response = post(client, "/agent/tickets/1/decide", credit_300)
    assert response.status_code == 403  # Sam may not, whatever the body says; Lee may
    response = post(client, "/agent/tickets/1/decide", credit_300, token(LEE))
    assert response.status_code == 200
    assert response.get_json()["decision"]["agent"] == LEE


def test_join_and_unlink_from_the_api(client: Client, runtime: Runtime, vendors: Vendors) -> None:
    key = post(client, "/agent/tickets/1/escalate", {"request_id": "req-esc-1"}).get_json()["issue_key"]
    joined = post(client, "/agent/tickets/2/escalate", {"request_id": "req-join-2", "issue_key": key, "note": "Same"})
    assert joined.status_code == 200, joined.get_json()
    assert joined.get_json()["outcome"] == "linked"
    view = get(client, "/agent/tickets/2", token()).get_json()
    assert view["links"][0]["key"] == key
    assert view["links"][0]["impact"]["tickets"] == 2
    unlinked = post(client, "/agent/tickets/2/unlink", {"request_id": "req-unlink-2", "issue_key": key})
    assert unlinked.status_code == 200
    assert unlinked.get_json()["remote_link"] == "deleted"
    assert get(client, "/agent/tickets/2", token()).get_json()["links"] == []
    assert post(client, "/agent/tickets/2/unlink", {"request_id": "req-unlink-2", "issue_key": key}).get_json()[
        "replayed"
    ]
    [row] = [e for e in runtime.store.audit_entries() if e.action == "unlink"]
    assert row.actor == SAM
    again = post(client, "/agent/tickets/2/unlink", {"request_id": "req-unlink-3", "issue_key": key})
    assert again.status_code == 422
    assert "not linked" in again.get_json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"action": "credit", "value": 5}, 400, "request_id"),
        ({"request_id": "short", "action": "credit", "value": 5}, 400, "request_id"),
        ({"request_id": "req-bad-field", "action": "credit", "value": 5, "price": 1}, 400, "unknown_field"),
        ({"request_id": "req-bad-action", "action": "refund"}, 422, "refused"),
        ({"request_id": "req-big-note", "action": "credit", "value": 5, "note": "x" * 70_000}, 413, "too_large"),
        ([1, 2], 400, "bad_json"),
    ],
    ids=["no-request-id", "short-request-id", "unknown-field", "unknown-action", "too-large", "not-an-object"],
)
def test_bad_input_gets_a_json_error_an_agent_can_read(
    client: Client, body: Any, status: int, code: str, runtime: Runtime
) -> None:
    response = post(client, "/agent/tickets/1/decide", body)
    assert response.status_code == status
    assert response.get_json()["code"] == code
    assert response.get_json()["error"]
    assert runtime.store.audit_entries() == []


def test_routes_methods_and_content_type_answer_json(client: Client) -> None:
    assert get(client, "/agent/tickets/1/decide", token()).status_code == 405
    assert get(client, "/agent/nothing", token()).get_json()["code"] == "not_found"
    response = client.post(
        "/agent/tickets/1/decide", data="action=credit", headers={"Authorization": f"Bearer {token()}"}
    )
    assert response.status_code == 415
    missing = get(client, "/agent/tickets/999999", token())
    assert missing.status_code == 404
    assert missing.get_json()["error"].startswith("not found")


def test_cors_answers_only_the_configured_origin(client: Client) -> None:
    preflight = client.options(
        "/agent/tickets/1/decide",
        headers={"Origin": ISSUER, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ISSUER
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    allowed = get(client, "/agent/tickets/1", token(), Origin=ISSUER)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ISSUER
    other = client.options("/agent/tickets/1", headers={"Origin": "https://evil.example"})
    assert other.status_code == 403
    assert "Access-Control-Allow-Origin" not in other.headers
    refused = get(client, "/agent/tickets/1", token(), Origin="https://evil.example")
    assert refused.status_code == 403
    assert "not allowed" in refused.get_json()["error"]


def test_without_secrets_the_agent_api_is_not_served(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    client = Client(make_app(sandbox_runtime(vendors), require_secrets=False))
    response = get(client, "/agent/tickets/1", token())
    assert response.status_code == 404
    assert "[agent_api] secrets" in response.get_json()["error"]


def test_a_repeat_while_the_first_request_still_runs_gets_409(
    client: Client, vendors: Vendors, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clicks at once: the second finds the first's intent in flight (409) and writes nothing; once the first
    is done, a repeat gets its answer again."""
    import cxbridge.webhooks.agent_api as agent_api

    started, release = threading.Event(), threading.Event()
    real = agent_api.act_on_ticket

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(agent_api, "act_on_ticket", slow)
    body = {"request_id": "req-in-flight", "action": "credit", "value": 5}
    answers: dict[str, TestResponse] = {}
    first = threading.Thread(target=lambda: answers.setdefault("first", post(Client(client.application), PATH, body)))
    first.start()
    assert started.wait(10)
    second = post(client, PATH, body)
    release.set()
    first.join(10)
    assert second.status_code == 409
    assert second.get_json()["code"] == "in_progress"
    assert answers["first"].status_code == 200
    third = post(client, PATH, body)
    assert third.get_json()["replayed"] is True
    assert len([n for n in internal_notes(vendors, 1) if "Credit of 5 USD" in n]) == 1


def test_the_view_survives_a_crm_or_tracker_that_does_not_answer(client: Client, vendors: Vendors) -> None:
    """The sidebar still shows the ticket, its links and the grants, each failed part with a readable error."""
    key = post(client, "/agent/tickets/1/escalate", {"request_id": "req-esc-outage"}).get_json()["issue_key"]
    for system in ("hubspot", "jira"):
        fault = {"status": 400, "count": 1, "method": "GET"} if system == "jira" else {"status": 400, "count": 1}
        assert requests.post(f"{vendors.base_url(system)}/_sandbox/fail-next", json=fault, timeout=5).ok
    response = get(client, "/agent/tickets/1", token())
    assert response.status_code == 200
    view = response.get_json()
    assert view["customer"]["known"] is False
    assert view["customer"]["error"].startswith("the CRM did not answer")
    [link] = view["links"]
    assert link["key"] == key
    assert link["status"] is None
    assert link["error"].startswith(f"the tracker did not answer for {key}")
    assert link["url"].endswith(f"/browse/{key}")
    assert {g["action"] for g in view["grants"]} >= {"credit", "priority"}


def test_a_public_reply_is_posted_once_with_the_agents_words(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, policies: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a rule granting public replies, the decision posts one public comment holding the agent's words; the
    same request again posts nothing more."""
    monkeypatch.setenv("CXB_TEST_AGENT_SECRET", SECRET)
    policies["rules"].append({"name": "replies", "when": "agent.team == 'tier1'", "grant": {"public_reply": True}})
    agent_api = {"secrets": [{"env": "CXB_TEST_AGENT_SECRET"}], "issuer": ISSUER, "audience": AUDIENCE}
    runtime = sandbox_runtime(vendors, extra={"policies": policies, "agent_api": agent_api})
    client = Client(make_app(runtime, require_secrets=False))
    body = {"request_id": "req-reply-1", "action": "public_reply", "reply": "We credited your account."}
    for _ in range(2):
        response = post(client, PATH, body)
        assert response.status_code == 200, response.get_json()
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == 1)
    replies = [c["body"] for c in ticket["comments"] if c["public"] and "We credited your account." in c["body"]]
    assert len(replies) == 1
    assert response.get_json()["replayed"] is True


def test_a_decision_the_systems_cannot_carry_out_is_a_readable_422(client: Client) -> None:
    """Lee may reopen, but ticket 1 has no linked issue: nothing to reopen, said in a sentence."""
    response = post(client, PATH, {"request_id": "req-reopen-none", "action": "reopen"}, token(LEE))
    assert response.status_code == 422
    assert response.get_json()["code"] == "impossible"
    assert response.get_json()["error"]


def test_secrets_without_issuer_or_audience_stop_the_server_from_starting(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXB_TEST_AGENT_SECRET", SECRET)
    runtime = sandbox_runtime(vendors, extra={"agent_api": {"secrets": [{"env": "CXB_TEST_AGENT_SECRET"}]}})
    with pytest.raises(ConfigError, match=r"\[agent_api\] needs issuer"):
        make_app(runtime, require_secrets=False)
