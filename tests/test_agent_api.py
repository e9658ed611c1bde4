"""The agent API of ``cxbridge serve`` (``/agent/...``) on the in-process sandbox: the app's page only for a request
Zendesk signed (RS256, the app's key pair), the agent read from Zendesk, a cxbridge session for every call, the
agent from the session and never the body, the ticket view in one request, actions once per request id, CORS for
the configured origin only."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from werkzeug.test import Client, TestResponse
from zaf_keys import ISSUER, SESSION_SECRET, add_user, agent_api_section, app_token, key_pair

from cxbridge.errors import ConfigError
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.webhooks.agent_auth import SESSION_AUDIENCE, SESSION_ISSUER
from cxbridge.webhooks.receiver import make_app

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SAM = "sam@cxbridge.example"
LEE = "lee@cxbridge.example"
PATH = "/agent/tickets/1/decide"


def token(email: str = SAM, *, secret: str = SESSION_SECRET, **override: Any) -> str:
    """A cxbridge session token as ``POST /agent/app`` issues it (claims set to None are left out)."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": "9001", "email": email}
    claims.update({"name": "Sam", "iat": now, "exp": now + 600})
    claims.update(override)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.fixture
def runtime(
    vendors: Vendors,
    sandbox_runtime: SandboxRuntimes,
    policies: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Runtime:
    (tmp_path / "app" / "assets").mkdir(parents=True)
    (tmp_path / "app" / "assets" / "iframe.html").write_text(
        "<html><head><title>app</title></head><body></body></html>"
    )
    (tmp_path / "app" / "assets" / "app.js").write_text("window.app = 1;\n")
    agent_api = agent_api_section(monkeypatch, app_dir=str(tmp_path / "app"))
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
        (None, "no bearer session"),
        ("", "no token"),
        ("not.a.jwt", "malformed"),
        (token(exp=int(time.time()) - 120), "expired"),
        (token(aud="https://elsewhere.example"), "another audience"),
        (token(iss=ISSUER), "another issuer"),
        (token(secret="another-secret-entirely-0123456789"), "signature does not match"),
        (token(email=None), "no agent email"),
        (token(sub=None), "'sub'"),
        (token(exp=int(time.time()) + 24 * 3600), "longer than"),
        (
            jwt.encode(
                {"iss": SESSION_ISSUER, "aud": SESSION_AUDIENCE, "sub": "1", "email": SAM, "iat": 1, "exp": 2**40},
                "",
                "none",
            ),
            "HS256",
        ),
        (app_token(9001), "HS256"),  # Zendesk's page token is not a session
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
        "app-token-as-session",
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
    assert SESSION_SECRET not in response.get_data(as_text=True)
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
    own = get(client, "/agent/tickets/1", token(), Origin="http://localhost")  # the app's page, served by cxbridge
    assert own.status_code == 200
    assert "Access-Control-Allow-Origin" not in own.headers


def test_without_a_public_key_the_agent_api_is_not_served(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    client = Client(make_app(sandbox_runtime(vendors), require_secrets=False))
    response = get(client, "/agent/tickets/1", token())
    assert response.status_code == 404
    assert "[agent_api] app_public_keys" in response.get_json()["error"]
    assert client.post("/agent/app", data={"token": app_token(1)}).status_code == 404


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
    policies["rules"].append({"name": "replies", "when": "agent.team == 'tier1'", "grant": {"public_reply": True}})
    agent_api = agent_api_section(monkeypatch)
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


def test_a_public_key_without_issuer_audience_or_session_secret_stops_the_server_from_starting(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = agent_api_section(monkeypatch)
    for missing in ("issuer", "audience", "session_secrets"):
        runtime = sandbox_runtime(vendors, extra={"agent_api": {k: v for k, v in section.items() if k != missing}})
        with pytest.raises(ConfigError, match=rf"\[agent_api\] needs {missing}"):
            make_app(runtime, require_secrets=False)
    monkeypatch.setenv("CXB_TEST_SESSION_SECRET", "short")
    runtime = sandbox_runtime(vendors, extra={"agent_api": section})
    with pytest.raises(ConfigError, match="at least 32 characters"):
        make_app(runtime, require_secrets=False)


# -- the app's page: Zendesk's signed request, the agent read from Zendesk, a session -------------------------------
def open_app(
    client: Client, token_value: str | None, query: str = "?origin=https://acme.zendesk.com&app_guid=g"
) -> TestResponse:
    data = {} if token_value is None else {"token": token_value}
    return client.post(f"/agent/app{query}", data=data)


def session_of(page: TestResponse) -> str:
    text = page.get_data(as_text=True)
    found = re.search(r'<meta name="cxbridge-session" content="([^"]+)">', text)
    assert found, text
    return found.group(1)


def test_the_page_signed_by_zendesk_carries_a_session_for_the_agent_zendesk_names(
    client: Client, vendors: Vendors
) -> None:
    """Zendesk's RS256 token names user 'sam' by URL; cxbridge reads Sam from Zendesk and binds the session to
    Sam's email (never to anything the browser sends), for every ticket."""
    sam = add_user(vendors, "Sam Tier1", SAM)
    page = open_app(client, app_token(sam))
    assert page.status_code == 200, page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Content-Security-Policy"] == f"frame-ancestors {ISSUER}"
    assert '<base href="assets/">' in page.get_data(as_text=True)
    session = session_of(page)
    claims = jwt.decode(session, SESSION_SECRET, algorithms=["HS256"], audience=SESSION_AUDIENCE)
    assert (claims["sub"], claims["email"], claims["name"]) == (str(sam), SAM, "Sam Tier1")
    assert claims["exp"] - claims["iat"] == 60 * 60
    view = get(client, "/agent/tickets/1", session)
    assert view.status_code == 200
    assert view.get_json()["agent"]["email"] == SAM
    assert get(client, "/agent/tickets/2", session).status_code == 200  # ticket-independent
    asset = client.get("/agent/assets/app.js")
    assert asset.status_code == 200
    assert asset.headers["Content-Type"].startswith("text/javascript")
    assert client.get("/agent/assets/..%2Fsecret.js").status_code == 404
    assert client.get("/agent/assets/missing.js").status_code == 404


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda uid: None, "no token"),
        (lambda uid: "not.a.jwt", "malformed"),
        (lambda uid: app_token(uid, key="attacker"), "signature does not match"),
        (lambda uid: app_token(uid, exp=int(time.time()) - 120), "expired"),
        (lambda uid: app_token(uid, aud="https://acme.zendesk.com/api/v2/apps/installations/1.json"), "audience"),
        (lambda uid: app_token(uid, iss="evil.zendesk.com"), "another helpdesk account"),
        (lambda uid: app_token(uid, sub=f"https://evil.zendesk.com/api/v2/users/{uid}.json"), "names no user"),
        (lambda uid: app_token(uid, sub=None), "lacks the &#x27;sub&#x27; claim"),
        (lambda uid: app_token(uid, lifetime=24 * 3600), "longer than"),
        # alg confusion: HS256 keyed with the app's public key (which anyone may hold) must not pass for RS256
        (lambda uid: _hs256_with_public_key(uid), "RS256"),
        (lambda uid: _tampered(uid), "signature does not match"),
    ],
    ids=[
        "none",
        "garbage",
        "forged",
        "expired",
        "audience",
        "issuer",
        "other-account-user",
        "no-sub",
        "too-long",
        "alg-confusion",
        "tampered",
    ],
)
def test_a_page_request_zendesk_did_not_sign_for_this_installation_is_refused_with_401(
    client: Client, vendors: Vendors, make: Any, reason: str
) -> None:
    sam = add_user(vendors, "Sam Tier1", SAM)
    page = open_app(client, make(sam))
    assert page.status_code == 401
    text = page.get_data(as_text=True)
    assert reason in text
    assert "cxbridge-session" not in text
    assert SESSION_SECRET not in text


def _hs256_with_public_key(user_id: int) -> str:
    """The classic algorithm confusion: the claims signed HS256 with the public key's PEM as the HMAC secret."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = jwt.decode(app_token(user_id), options={"verify_signature": False})
    signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(key_pair("app")[1].encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(signature)}"


def _tampered(user_id: int) -> str:
    """A valid token for Sam whose payload is changed to name another user: the signature no longer matches."""
    header, payload, signature = app_token(user_id).split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub"] = f"{ISSUER}/api/v2/users/{user_id + 1}.json"
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{forged}.{signature}"


def test_an_end_user_or_a_suspended_agent_gets_no_session(client: Client, vendors: Vendors) -> None:
    customer = add_user(vendors, "A Customer", "customer@example.com", role="end-user")
    page = open_app(client, app_token(customer))
    assert page.status_code == 403
    assert "is not an agent" in page.get_data(as_text=True)
    assert open_app(client, app_token(987654321)).status_code == 403  # no such user in Zendesk
    assert client.get("/agent/app").status_code == 405


def test_a_session_for_one_agent_cannot_act_as_another(client: Client, vendors: Vendors, runtime: Runtime) -> None:
    """Sam's session decides as Sam whatever the body says; Lee's grants (a 300 credit) are not Sam's."""
    sam = add_user(vendors, "Sam Tier1", SAM)
    session = session_of(open_app(client, app_token(sam)))
    body = {"request_id": "req-as-lee-1", "action": "credit", "value": 300}
    assert post(client, PATH, {**body, "email": LEE}, session).status_code == 400  # the body never names the agent
    response = post(client, PATH, body, session)
    assert response.status_code == 403
    assert response.get_json()["decision"]["agent"] == SAM
    actors = {e.actor for e in runtime.store.audit_entries() if e.action == "act.credit"}
    assert actors == {SAM}


def test_doctor_checks_the_public_key_and_the_built_app(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """doctor says whether the app's public key is an RSA key and whether the built app is where app_dir says."""
    from cxbridge.doctor import Doctor, agent_api_checks

    def checks(**extra: Any) -> dict[str, bool | None]:
        rt = sandbox_runtime(vendors, extra={"agent_api": agent_api_section(monkeypatch, **extra)})
        return {c.item: c.ok for c in agent_api_checks(Doctor(rt.config, rt.plugins, rt))}

    assert checks(app_dir=str(tmp_path)) == {"agent_api app_public_keys[0]": True, "agent_api app_dir": False}
    (tmp_path / "assets").mkdir()
    for name in ("iframe.html", "app.js", "zaf_sdk.js"):
        (tmp_path / "assets" / name).write_text("x")
    assert checks(app_dir=str(tmp_path))["agent_api app_dir"] is True
    monkeypatch.setenv("CXB_TEST_OTHER_KEY", "not a key")
    bad = checks(app_dir=str(tmp_path), app_public_keys=[{"env": "CXB_TEST_OTHER_KEY"}])
    assert bad["agent_api app_public_keys[0]"] is False
    rt = sandbox_runtime(vendors)
    assert agent_api_checks(Doctor(rt.config, rt.plugins, rt)) == []
