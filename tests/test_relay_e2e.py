"""Support to engineering over loopback HTTP: served emulators -> signed webhooks -> ``serve`` -> workers -> Jira.

An ``[engineering]`` internal note with a screenshot and a public reply on a ticket linked to two issues appear once
on each issue with attribution; a redaction (the same comment with another text) updates both copies; a duplicate
delivery writes nothing; the relayed comments' Jira webhooks do not come back to the ticket.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cxbridge.config import load_config
from cxbridge.plugins import build_plugins
from cxbridge.runtime import Runtime
from cxbridge.sandbox.base import WebhookTarget
from cxbridge.sandbox.modes import ServedVendors, serve_vendors, write_config
from cxbridge.webhooks.serve import RunningServer, serving
from cxbridge.workflows.escalate import Escalation, EscalationRequest

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SYSTEMS = ("zendesk", "hubspot", "jira")
AGENT = "alex@cxbridge.example"
NOTE = "CSV export over 10 MB times out; screenshot attached."
REPLY = "It happened again this morning at 9:40."


@pytest.fixture
def vendors() -> Iterator[ServedVendors]:
    served = serve_vendors(SYSTEMS, seed="demo")
    try:
        for name in SYSTEMS:
            served[name].webhook_targets = [WebhookTarget(url="http://127.0.0.1:9/", secret=secrets.token_urlsafe(24))]
        yield served
    finally:
        served.stop()


@pytest.fixture
def runtime(vendors: ServedVendors, tmp_path: Path) -> Iterator[Runtime]:
    plugins = build_plugins()
    path = write_config(vendors, tmp_path / "cxbridge.toml")
    with path.open("a", encoding="utf-8") as out:
        out.write("\n[sync]\nrelay_public_replies = true\n")
    rt = Runtime(load_config(path, plugins=plugins), plugins)
    yield rt
    rt.close()


@pytest.fixture
def server(vendors: ServedVendors, runtime: Runtime) -> Iterator[RunningServer]:
    with serving(runtime, workers=2) as running:
        for name in SYSTEMS:
            vendors[name].webhook_targets[0].url = running.webhook_url(name)
        yield running


def wait(what: str, done: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


def settled(vendors: ServedVendors, runtime: Runtime) -> bool:
    if not all(vendors[name].wait_for_webhooks(timeout=0.01) for name in SYSTEMS):
        return False
    depth = runtime.store.queue_depth()
    return depth["ready"] == 0 and depth["leased"] == 0


def alex(vendors: ServedVendors) -> requests.Session:
    session = requests.Session()
    session.auth = (f"{AGENT}/token", vendors["zendesk"].credentials()["api_token"])
    return session


def issue(vendors: ServedVendors, key: str) -> dict[str, Any]:
    return next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)


def comments_with(vendors: ServedVendors, key: str, text: str) -> list[str]:
    bodies = [json.dumps(c["body"], ensure_ascii=False) for c in issue(vendors, key)["fields"]["comment"]["comments"]]
    return [b for b in bodies if text in b]


def test_notes_replies_edits_and_files_reach_both_issues_once_and_never_come_back(
    vendors: ServedVendors, runtime: Runtime, server: RunningServer
) -> None:
    first = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Exports fail.")).issue_key
    second = Escalation(runtime).run(EscalationRequest(ticket_id="2", note="Login loops.")).issue_key
    Escalation(runtime).run(EscalationRequest(ticket_id="1", link_key=second, note="Both bugs."))
    wait("the escalations' own webhooks", lambda: settled(vendors, runtime))
    zendesk = vendors["zendesk"]
    base = zendesk.base_url
    session = alex(vendors)
    up = session.post(
        f"{base}/api/v2/uploads",
        params={"filename": "export-error.png"},
        data=b"\x89PNG\r\n\x1a\n" + bytes(2048),
        headers={"Content-Type": "image/png"},
        timeout=10,
    )
    assert up.status_code == 201, up.text
    note = {"body": f"[engineering] {NOTE}", "public": False, "uploads": [up.json()["upload"]["token"]]}
    session.put(f"{base}/api/v2/tickets/1", json={"ticket": {"comment": note}}, timeout=10).raise_for_status()
    requester = session.get(f"{base}/api/v2/tickets/1", timeout=10).json()["ticket"]["requester_id"]
    reply = {"body": REPLY, "public": True, "author_id": requester}
    session.put(f"{base}/api/v2/tickets/1", json={"ticket": {"comment": reply}}, timeout=10).raise_for_status()
    wait(
        "the relay",
        lambda: (
            all(comments_with(vendors, k, NOTE) and comments_with(vendors, k, REPLY) for k in (first, second))
            and settled(vendors, runtime)
        ),
    )
    for key in (first, second):
        [relayed_note] = comments_with(vendors, key, NOTE)
        assert "Alex Support" in relayed_note
        assert "wrote an internal note" in relayed_note
        assert "Acme" in relayed_note  # the customer's organization
        [relayed_reply] = comments_with(vendors, key, REPLY)
        assert "replied publicly" in relayed_reply
        assert [a["filename"] for a in issue(vendors, key)["fields"]["attachment"]] == ["export-error.png"]

    # a duplicate delivery of the note writes nothing
    note_delivery = next(d for d in zendesk.webhooks_sent if NOTE in d["body"])
    again = requests.post(
        note_delivery["url"], data=note_delivery["body"].encode(), headers=note_delivery["headers"], timeout=10
    )
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1

    # the same comment delivered with another text (a redaction, re-signed as Zendesk would): both copies edited
    body = json.loads(note_delivery["body"])
    body["id"] = body["id"] + "-redacted"
    body["comment"]["body"] = body["comment"]["body"].replace("10 MB", "▇▇ MB")
    raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
    from cxbridge_zendesk.sandbox.routes import sign

    stamp = note_delivery["headers"]["X-Zendesk-Webhook-Signature-Timestamp"]
    headers = {
        **note_delivery["headers"],
        "X-Zendesk-Webhook-Signature": sign(zendesk.webhook_targets[0].secret, stamp, raw),
    }
    assert requests.post(note_delivery["url"], data=raw, headers=headers, timeout=10).status_code == 200
    wait(
        "the edit",
        lambda: all(comments_with(vendors, k, "▇▇ MB") for k in (first, second)) and settled(vendors, runtime),
    )
    for key in (first, second):
        assert comments_with(vendors, key, NOTE) == []
        assert len(comments_with(vendors, key, "times out; screenshot attached")) == 1
        assert len(issue(vendors, key)["fields"]["attachment"]) == 1

    # Jira delivered webhooks for every relayed comment: none came back to the ticket
    time.sleep(0.3)
    wait("the echoes to settle", lambda: settled(vendors, runtime))
    ticket = next(t for t in zendesk.state()["tickets"] if t["id"] == 1)
    assert sum(NOTE.split(";")[0] in c["body"] or "▇▇ MB" in c["body"] for c in ticket["comments"]) == 1
    assert sum(REPLY in c["body"] for c in ticket["comments"]) == 1
