"""Decisions from a Zendesk macro (issue 15, item 2), through the webhook receiver and the worker.

The emulated agent applies a macro (an update adding ``cxb_decide_credit_50``), Zendesk's trigger delivers the
ticket to ``cxbridge serve`` (signed, over loopback), the worker decides under the policies with that agent as
the actor, writes the outcome as one internal note and removes the tag. A duplicate delivery changes nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cxbridge_zendesk.sandbox.backend import ZendeskBackend
from cxbridge_zendesk.sandbox.models import iso
from cxbridge_zendesk.sandbox.routes import sign

from cxbridge.config import load_config
from cxbridge.errors import ConfigError, CxbridgeError
from cxbridge.plugins import build_plugins
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import ServedVendors, serve_vendors, write_config
from cxbridge.testing.pipeline import give_webhook_targets, served_pipeline
from cxbridge.webhooks.serve import RunningServer
from cxbridge.worker import drain
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.policy import compile_policies, parse_action
from cxbridge.workflows.tagdecisions import BadDecisionTag, decision_macros, parse_decision_tag, tag_actions

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SYSTEMS = ("zendesk", "hubspot", "jira")
SAM = "sam@cxbridge.example"
LEE = "lee@cxbridge.example"
TAGS = ("cxb_decide_credit_50", "cxb_decide_credit_500", "cxb_decide_priority_high", "cxb_decide_public_reply")


@pytest.fixture
def vendors() -> Iterator[ServedVendors]:
    served = serve_vendors(SYSTEMS, seed="demo")
    try:
        give_webhook_targets(served)
        zd = zendesk(served)
        with zd.lock:
            zd.model.add_user("Sam Agent", SAM, "agent")
            zd.model.add_user("Lee Lead", LEE, "agent")
            # the admin's trigger fires on the macros' tags (Zendesk conditions name tags one by one)
            zd.trigger_tags |= set(TAGS)
        yield served
    finally:
        served.stop()


def zendesk(vendors: ServedVendors) -> ZendeskBackend:
    backend = vendors["zendesk"]
    assert isinstance(backend, ZendeskBackend)
    return backend


@pytest.fixture
def runtime(vendors: ServedVendors, tmp_path: Path, policies: dict[str, Any]) -> Iterator[Runtime]:
    policies["rules"][1]["grant"]["public_reply"] = True
    plugins = build_plugins()
    path = write_config(vendors, tmp_path / "cxbridge.toml", extra={"policies": policies})
    rt = Runtime(load_config(path, plugins=plugins), plugins)
    yield rt
    rt.close()


@pytest.fixture
def server(vendors: ServedVendors, runtime: Runtime) -> Iterator[RunningServer]:
    with served_pipeline(vendors, runtime, workers=0) as running:  # the test drains the queue itself, as a worker
        yield running


def as_agent(vendors: ServedVendors, email: str) -> requests.Session:
    session = requests.Session()
    session.auth = (f"{email}/token", zendesk(vendors).credentials()["api_token"])
    return session


def apply_macro(vendors: ServedVendors, email: str, ticket_id: int, tag: str, note: str | None = None) -> None:
    """What a macro does: one update by the agent adding the tag (and, optionally, an internal note)."""
    url = f"{zendesk(vendors).base_url}/api/v2/tickets/{ticket_id}"
    session = as_agent(vendors, email)
    tags = session.get(url, timeout=10).json()["ticket"]["tags"]
    update: dict[str, Any] = {"tags": [*tags, tag]}
    if note:
        update["comment"] = {"body": note, "public": False}
    session.put(url, json={"ticket": update}, timeout=10).raise_for_status()


def work(vendors: ServedVendors, runtime: Runtime) -> None:
    """Wait for the trigger's deliveries to reach the receiver, then run the worker until the queue is empty."""
    assert zendesk(vendors).wait_for_webhooks(timeout=20)
    report = drain(runtime, timeout=30)
    assert not report.pending


def ticket(vendors: ServedVendors, ticket_id: int) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in zendesk(vendors).state()["tickets"] if t["id"] == ticket_id)
    return found


def notes(vendors: ServedVendors, ticket_id: int, text: str) -> list[str]:
    return [c["body"] for c in ticket(vendors, ticket_id)["comments"] if not c["public"] and text in c["body"]]


def audit(runtime: Runtime, action: str) -> list[tuple[str, str, str | None]]:
    return [(e.actor, e.result, e.policy) for e in runtime.store.audit_entries() if e.action == f"act.{action}"]


def redeliver(vendors: ServedVendors, server: RunningServer, *, new_id: bool) -> requests.Response:
    """The last delivery again: as sent (a retry), or with a new id and signature (the trigger fired again)."""
    zd = zendesk(vendors)
    sent = zd.webhooks_sent[-1]
    headers, body = dict(sent["headers"]), sent["body"]
    if new_id:
        payload = json.loads(body)
        payload["id"] = str(uuid.uuid4())
        body = json.dumps(payload)
        stamp = iso(time.time())
        headers["X-Zendesk-Webhook-Signature-Timestamp"] = stamp
        headers["X-Zendesk-Webhook-Signature"] = sign(zd.webhook_targets[0].secret, stamp, body.encode())
    return requests.post(server.webhook_url("zendesk"), data=body.encode(), headers=headers, timeout=10)


def test_a_credit_within_the_grant_is_applied_noted_once_and_the_tag_removed(
    vendors: ServedVendors, runtime: Runtime, server: RunningServer
) -> None:
    apply_macro(vendors, SAM, 1, "cxb_decide_credit_50")
    work(vendors, runtime)
    assert audit(runtime, "credit") == [(SAM, "granted", "tier1-credits")]
    [row] = [e for e in runtime.store.audit_entries() if e.action == "act.credit"]
    assert row.origin_event  # the webhook delivery it came from
    [note] = notes(vendors, 1, "cxb_decide_credit_50")
    assert f"Credit of 50 USD granted by {SAM} under rule tier1-credits." in note
    assert "cxb_decide_credit_50" not in ticket(vendors, 1)["tags"]
    assert len(notes(vendors, 1, "Credit of 50 USD")) == 1  # the outcome note is the ticket's only note of it
    hubspot = vendors["hubspot"].state()["objects"]["notes"]
    assert sum("Credit of 50 USD" in n["properties"]["hs_note_body"] for n in hubspot) == 1
    # a duplicate delivery (a retry, or the trigger firing again with a new id) changes nothing
    before = {name: vendors[name].state() for name in SYSTEMS}
    assert redeliver(vendors, server, new_id=False).status_code == 200
    assert redeliver(vendors, server, new_id=True).status_code == 200
    work(vendors, runtime)
    assert {name: vendors[name].state() for name in SYSTEMS} == before
    assert audit(runtime, "credit") == [(SAM, "granted", "tier1-credits")]


def test_a_credit_beyond_the_grant_is_refused_in_a_note_naming_the_rule(
    vendors: ServedVendors, runtime: Runtime, server: RunningServer
) -> None:
    apply_macro(vendors, SAM, 1, "cxb_decide_credit_500")
    work(vendors, runtime)
    [note] = notes(vendors, 1, "cxb_decide_credit_500")
    assert note.startswith(f"REFUSED: Credit of 500 USD refused for {SAM}")
    assert "rule team-lead-credits" in note
    assert f"held by {LEE}" in note
    assert "cxb_decide_credit_500" not in ticket(vendors, 1)["tags"]
    assert audit(runtime, "credit") == [(SAM, "refused", None)]
    assert vendors["hubspot"].state()["objects"]["notes"] == []  # a refusal reaches no CRM timeline


def test_macro_priority_and_public_reply_in_the_agents_own_words(
    vendors: ServedVendors, runtime: Runtime, server: RunningServer
) -> None:
    key = Escalation(runtime).run(EscalationRequest(ticket_id="2", note="Reproduced.")).issue_key
    work(vendors, runtime)  # the escalation's own update is cxbridge's: an echo, dropped
    apply_macro(vendors, SAM, 2, "cxb_decide_priority_high")
    work(vendors, runtime)
    issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)
    assert issue["fields"]["priority"]["name"] == "High"
    assert notes(vendors, 2, f"{key} priority set to High.") or notes(vendors, 2, f"{key} already had priority High.")
    words = "The export fix is live; please try again."
    apply_macro(vendors, LEE, 2, "cxb_decide_public_reply", note=words)
    work(vendors, runtime)
    public = [c["body"] for c in ticket(vendors, 2)["comments"] if c["public"]]
    assert sum(words in body for body in public) == 1
    assert audit(runtime, "public_reply") == [(LEE, "granted", "team-lead-credits")]
    assert not {"cxb_decide_priority_high", "cxb_decide_public_reply"} & set(ticket(vendors, 2)["tags"])


def test_an_unknown_decision_tag_is_explained_and_removed(
    vendors: ServedVendors, runtime: Runtime, server: RunningServer
) -> None:
    zendesk(vendors).trigger_tags.add("cxb_decide_refund_9")
    apply_macro(vendors, SAM, 1, "cxb_decide_refund_9")
    work(vendors, runtime)
    [note] = notes(vendors, 1, "cxb_decide_refund_9")
    assert note.startswith("NOT APPLIED: the tag 'cxb_decide_refund_9' names no decision")
    assert "cxb_decide_refund_9" not in ticket(vendors, 1)["tags"]
    assert [e for e in runtime.store.audit_entries() if e.action.startswith("act.")] == []


@pytest.mark.parametrize(
    ("tag", "action", "value"),
    [
        ("cxb_decide_credit_50", "credit", "50"),
        ("cxb_decide_credit_12.5_eur", "credit", "12.5 EUR"),
        ("cxb_decide_priority_high", "priority", "High"),
        ("cxb_decide_reopen", "reopen", None),
        ("cxb_decide_public_reply", "public_reply", None),
    ],
)
def test_tags_read_by_the_configured_rule(tag: str, action: str, value: str | None) -> None:
    request = parse_decision_tag(tag, "cxb_decide_", tag_actions({}))
    assert request == parse_action(action, value)


def test_tag_rules_are_configurable_and_refuse_what_they_do_not_name() -> None:
    patterns = tag_actions({"tag_actions": {"credit": "goodwill_{value}_usd", "reopen": ""}})
    assert parse_decision_tag("zd_goodwill_30_usd", "zd_", patterns) == parse_action("credit", "30")
    for tag in ("zd_reopen", "zd_credit_30", "zd_goodwill_abc_usd", "zd_priority_urgent"):
        with pytest.raises(BadDecisionTag):
            parse_decision_tag(tag, "zd_", patterns)
    with pytest.raises(CxbridgeError):
        parse_decision_tag("other_credit_5", "zd_", patterns)


def test_decision_macros_are_read_by_the_tag_parser_and_marked_with_the_rules_that_grant_them(
    policies: dict[str, Any],
) -> None:
    compiled = compile_policies(policies, "<test>")
    settings = {
        "tag_prefix": "cxb_decide_",
        "macros": ["credit_50", "credit_500", "priority_high", "reopen", "public_reply", "credit_50"],
    }
    got = [(m.tag, m.title, m.granted_by) for m in decision_macros(settings, compiled)]
    assert got == [
        ("cxb_decide_credit_50", "cxbridge: Credit of 50", ("tier1-credits", "team-lead-credits")),
        ("cxb_decide_credit_500", "cxbridge: Credit of 500", ("team-lead-credits",)),
        ("cxb_decide_priority_high", "cxbridge: Priority High", ("tier1-credits", "team-lead-credits")),
        ("cxb_decide_reopen", "cxbridge: Reopen the done issue", ("team-lead-credits",)),
        ("cxb_decide_public_reply", "cxbridge: Public reply without review", ()),
    ]
    assert decision_macros({"tag_prefix": "cxb_decide_"}, compiled) == []
    with pytest.raises(ConfigError, match=r"\[decisions\] macros: 'credit_lots': .*not an amount"):
        decision_macros({**settings, "macros": ["credit_lots"]}, compiled)
    with pytest.raises(ConfigError, match="names no decision"):
        decision_macros({**settings, "macros": ["refund"]}, compiled)
    with pytest.raises(ConfigError, match="needs a tag_prefix"):
        decision_macros({"tag_prefix": "", "macros": ["reopen"]}, compiled)
    renamed = {**settings, "tag_actions": {"credit": "gift_{value}"}, "macros": ["gift_20_eur"]}
    [gift] = decision_macros(renamed, compiled)
    assert (gift.tag, gift.title, gift.granted_by) == ("cxb_decide_gift_20_eur", "cxbridge: Credit of 20 EUR", ())
