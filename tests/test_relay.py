"""Support to engineering on the in-process sandbox: notes and replies on a linked ticket reach every linked issue.

Changes are made through the Zendesk emulator's API as agents would; its signed trigger deliveries are verified by
the plugin's verifier, committed with ``enqueue_event`` and handled by ``handle_event``; every assertion reads the
Jira emulator's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cxbridge_jira.webhook import verify_jira
from cxbridge_zendesk.webhook import verify_zendesk

from cxbridge.models import Event
from cxbridge.runtime import Runtime
from cxbridge.sandbox.base import Backend, WebhookTarget
from cxbridge.sandbox.modes import Vendors, mock_vendors
from cxbridge.testing import SandboxRuntimes, verify_deliveries
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.events import enqueue_event, handle_event

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SECRET = "whsec-relay-tests"
VERIFIERS = {"jira": verify_jira, "zendesk": verify_zendesk}
ALEX = "alex@cxbridge.example"


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as v:
        for name in ("zendesk", "jira"):
            v[name].webhook_targets = [WebhookTarget(url=f"http://127.0.0.1:9/webhooks/{name}", secret=SECRET)]
        yield v


def zendesk_as_alex(vendors: Vendors, method: str, path: str, body: Any = None) -> dict[str, Any]:
    zendesk = vendors["zendesk"]
    response = requests.request(
        method,
        f"{zendesk.base_url}/api/v2{path}",
        json=body,
        auth=(f"{ALEX}/token", zendesk.credentials()["api_token"]),
        timeout=5,
    )
    assert response.status_code < 300, response.text
    return dict(response.json() or {})


def comment(vendors: Vendors, ticket: str, body: str, *, public: bool = False, author_id: int | None = None) -> int:
    """Alex adds a comment (as the requester with ``author_id``: a customer's reply); returns its id."""
    spec: dict[str, Any] = {"body": body, "public": public}
    if author_id is not None:
        spec["author_id"] = author_id
    zendesk_as_alex(vendors, "PUT", f"/tickets/{ticket}", {"ticket": {"comment": spec}})
    ticket_state = next(t for t in vendors["zendesk"].state()["tickets"] if str(t["id"]) == ticket)
    return int(ticket_state["comments"][-1]["id"])


def deliveries(backend: Backend, start: int) -> list[Event]:
    return verify_deliveries(VERIFIERS[backend.system], backend.webhooks_sent[start:], SECRET)


def deliver(rt: Runtime, backend: Backend, start: int, *, twice: bool = False) -> list[str]:
    outcomes = []
    for event in deliveries(backend, start):
        enqueue_event(rt, backend.system, event)
        for _ in range(2 if twice else 1):
            outcomes.append(handle_event(rt, event, system=backend.system))
    return outcomes


def jira_comments(vendors: Vendors, key: str) -> list[dict[str, Any]]:
    jira = vendors["jira"]
    creds = jira.credentials()
    response = requests.get(
        f"{jira.base_url}/rest/api/2/issue/{key}/comment", auth=(creds["email"], creds["api_token"]), timeout=5
    )
    assert response.status_code == 200, response.text
    return list(response.json()["comments"])


def relayed(vendors: Vendors, key: str, text: str) -> list[dict[str, Any]]:
    return [c for c in jira_comments(vendors, key) if text in c["body"]]


def two_issues(vendors: Vendors, rt: Runtime) -> tuple[str, str]:
    """Ticket 1 escalated to a new issue, then joined to a second issue (ticket 2's)."""
    first = Escalation(rt).run(EscalationRequest(ticket_id="1", note="Exports fail.")).issue_key
    second = Escalation(rt).run(EscalationRequest(ticket_id="2", note="Login loops.")).issue_key
    Escalation(rt).run(EscalationRequest(ticket_id="1", link_key=second, note="Same customer, both bugs."))
    assert {link.issue_key for link in rt.store.links_for_ticket(rt.helpdesk().ticket_ref("1"))} == {first, second}
    return first, second


@pytest.fixture
def runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime(vendors, extra={"sync": {"relay_public_replies": True}})


def test_an_engineering_note_and_a_reply_reach_both_issues_once_with_attribution(
    vendors: Vendors, runtime: Runtime
) -> None:
    first, second = two_issues(vendors, runtime)
    start = len(vendors["zendesk"].webhooks_sent)
    comment(vendors, "1", "[engineering] The export fails only for CSV over 10 MB.")
    requester = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == 1)["requester_id"]
    comment(vendors, "1", "It happened again this morning.", public=True, author_id=requester)
    comment(vendors, "1", "Just a note for support.")
    outcomes = deliver(runtime, vendors["zendesk"], start, twice=True)
    assert sum(o.startswith("relayed") for o in outcomes) == 4, outcomes
    for key in (first, second):
        notes = relayed(vendors, key, "The export fails only for CSV over 10 MB.")
        assert len(notes) == 1
        assert "Alex Support" in notes[0]["body"]
        assert "wrote an internal note" in notes[0]["body"]
        assert "#1" in notes[0]["body"]
        assert "[engineering]" not in notes[0]["body"]
        replies = relayed(vendors, key, "It happened again this morning.")
        assert len(replies) == 1
        assert "replied publicly" in replies[0]["body"]
        assert relayed(vendors, key, "Just a note for support.") == []
    audit = [e.action for e in runtime.store.audit_entries(issue_key=first)]
    assert audit.count("relay.comment") == 2
    runtime.close()


def test_an_edit_updates_the_relayed_copies_and_an_old_delivery_does_not_revert_it(
    vendors: Vendors, runtime: Runtime
) -> None:
    first, second = two_issues(vendors, runtime)
    start = len(vendors["zendesk"].webhooks_sent)
    comment(vendors, "1", "[engineering] Card 4111 1111 1111 1111 fails.")
    [created] = deliveries(vendors["zendesk"], start)
    deliver(runtime, vendors["zendesk"], start)
    ids = {key: relayed(vendors, key, "Card 4111")[0]["id"] for key in (first, second)}
    note_id = vendors["zendesk"].model.ticket(1).comments[-1].id  # type: ignore[attr-defined]
    # the same comment, read again with another text (a redaction): an edit of the relayed copies
    redacted = Event(
        id=created.id + "-redacted",
        system=created.system,
        kind=created.kind,
        subject=created.subject,
        actor=created.actor,
        payload={
            **created.payload,
            # the trigger's body names no comment id (no placeholder gives it): this delivery names it
            "comment": {**created.payload["comment"], "id": note_id, "body": "[engineering] Card ▇▇▇▇ fails."},
        },
    )
    outcomes = [handle_event(runtime, redacted, system="zendesk") for _ in range(2)]
    assert "to 2 issue(s): 2 write(s)" in outcomes[0], outcomes
    assert "to 2 issue(s): 0 write(s)" in outcomes[1], outcomes
    for key in (first, second):
        assert relayed(vendors, key, "Card 4111") == []
        [edited] = relayed(vendors, key, "Card ▇▇▇▇ fails.")
        assert edited["id"] == ids[key]
    # the original delivery replayed late: the copies keep the newer text
    assert "0 write(s)" in handle_event(runtime, created, system="zendesk")
    assert all(relayed(vendors, key, "Card 4111") == [] for key in (first, second))
    runtime.close()


def test_relayed_comments_do_not_come_back_to_the_ticket(vendors: Vendors, runtime: Runtime) -> None:
    first, _ = two_issues(vendors, runtime)
    zstart, jstart = len(vendors["zendesk"].webhooks_sent), len(vendors["jira"].webhooks_sent)
    comment(vendors, "1", "[engineering] [support] Tell the customer we are on it.")
    deliver(runtime, vendors["zendesk"], zstart)
    assert len(relayed(vendors, first, "Tell the customer we are on it.")) == 1
    outcomes = deliver(runtime, vendors["jira"], jstart)
    assert outcomes
    assert all(o.startswith(("echo", "ignored")) for o in outcomes), outcomes
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == 1)
    assert sum("Tell the customer we are on it." in c["body"] for c in ticket["comments"]) == 1
    runtime.close()


def test_switches_prefix_and_macro_tag(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    rt = sandbox_runtime(vendors, extra={"sync": {"engineering_prefix": "#eng", "engineering_tag": "share_with_eng"}})
    key = Escalation(rt).run(EscalationRequest(ticket_id="1", note="Exports fail.")).issue_key
    start = len(vendors["zendesk"].webhooks_sent)
    comment(vendors, "1", "#eng prefixed note")
    comment(vendors, "1", "A public reply", public=True)  # relay_public_replies is off by default
    comment(vendors, "1", "[engineering] the default prefix is not this admin's")
    zendesk_as_alex(vendors, "PUT", "/tickets/1/tags", {"tags": ["share_with_eng"]})
    comment(vendors, "1", "any note once the macro tagged the ticket")
    deliver(rt, vendors["zendesk"], start)
    bodies = [c["body"] for c in jira_comments(vendors, key)]
    assert any("prefixed note" in b and "#eng" not in b for b in bodies)
    assert any("any note once the macro tagged the ticket" in b for b in bodies)
    assert not any("A public reply" in b or "default prefix" in b for b in bodies)
    rt.close()
    off = sandbox_runtime(vendors, extra={"sync": {"to_tracker": False}})
    start = len(vendors["zendesk"].webhooks_sent)
    comment(vendors, "1", "[engineering] not relayed: the switch is off")
    assert not any("relayed" in o for o in deliver(off, vendors["zendesk"], start))
    assert relayed(vendors, key, "the switch is off") == []
    off.close()


@pytest.mark.parametrize(
    ("options", "visibility", "properties"),
    [
        ({"internal_visibility": "role:Developers"}, {"type": "role", "value": "Developers"}, None),
        ({"service_desk": True}, None, [{"key": "sd.public.comment", "value": {"internal": True}}]),
    ],
)
def test_relayed_comments_are_internal_where_the_tracker_can_say_so(
    vendors: Vendors,
    sandbox_runtime: SandboxRuntimes,
    options: dict[str, Any],
    visibility: Any,
    properties: Any,
) -> None:
    rt = sandbox_runtime(vendors, systems={"jira": options})
    key = Escalation(rt).run(EscalationRequest(ticket_id="1", note="Exports fail.")).issue_key
    start = len(vendors["zendesk"].webhooks_sent)
    comment(vendors, "1", "[engineering] restricted")
    deliver(rt, vendors["zendesk"], start)
    [found] = relayed(vendors, key, "restricted")
    assert found.get("visibility") == visibility
    assert found.get("properties") == properties
    rt.close()


# -- attachments ----------------------------------------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def upload(vendors: Vendors, filename: str, content: bytes, content_type: str) -> str:
    """Alex uploads a file to Zendesk (Upload Files); returns the token a comment's ``uploads`` names."""
    zendesk = vendors["zendesk"]
    response = requests.post(
        f"{zendesk.base_url}/api/v2/uploads",
        params={"filename": filename},
        data=content,
        headers={"Content-Type": content_type},
        auth=(f"{ALEX}/token", zendesk.credentials()["api_token"]),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["upload"]["token"])


def note_with_files(vendors: Vendors, body: str, tokens: list[str]) -> None:
    zendesk_as_alex(
        vendors, "PUT", "/tickets/1", {"ticket": {"comment": {"body": body, "public": False, "uploads": tokens}}}
    )


def issue_attachments(vendors: Vendors, key: str) -> list[dict[str, Any]]:
    issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)
    return list(issue["fields"]["attachment"])


def test_an_attachment_on_the_note_reaches_both_issues_once(vendors: Vendors, runtime: Runtime) -> None:
    first, second = two_issues(vendors, runtime)
    start = len(vendors["zendesk"].webhooks_sent)
    note_with_files(vendors, "[engineering] Screenshot of the error.", [upload(vendors, "error.png", PNG, "image/png")])
    calls = len(vendors["zendesk"].calls)
    deliver(runtime, vendors["zendesk"], start, twice=True)
    # for both issues and both deliveries: one read of the attachment, one download, one read of the ticket, and per
    # delivery one read of its comments (the trigger's body names the comment's text, not its id or files)
    spent = sorted(c.path.split("?")[0] for c in vendors["zendesk"].calls[calls:] if c.path != "/api/v2/users/me")
    assert len(spent) == 5, spent
    assert spent[0].startswith("/api/v2/attachments/")
    assert spent[1:4] == ["/api/v2/tickets/1", "/api/v2/tickets/1/comments", "/api/v2/tickets/1/comments"]
    assert spent[4].startswith("/attachments/token/")
    for key in (first, second):
        [attached] = issue_attachments(vendors, key)
        assert (attached["filename"], attached["size"], attached["mimeType"]) == ("error.png", len(PNG), "image/png")
        [note] = relayed(vendors, key, "Screenshot of the error.")
        assert "error.png (attached to this issue)" in note["body"]
    runtime.close()


def test_large_unlisted_types_and_unsafe_names(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    rt = sandbox_runtime(vendors, extra={"sync": {"attachment_max_bytes": 2048}})
    key = Escalation(rt).run(EscalationRequest(ticket_id="1", note="Exports fail.")).issue_key
    start = len(vendors["zendesk"].webhooks_sent)
    tokens = [
        upload(vendors, "big.png", PNG * 4, "image/png"),
        upload(vendors, "setup.exe", b"MZ" + bytes(100), "application/x-msdownload"),
        upload(vendors, "../../etc/pass\x07wd;rm -rf.log.txt", b"log line\n", "text/plain"),
    ]
    note_with_files(vendors, "[engineering] Three files.", tokens)
    deliver(rt, vendors["zendesk"], start)
    assert [a["filename"] for a in issue_attachments(vendors, key)] == ["passwd_rm -rf.log.txt"]
    [note] = relayed(vendors, key, "Three files.")
    assert "larger than 2048 bytes" in note["body"]
    assert "application/x-msdownload is not uploaded" in note["body"]
    assert "/attachments/token/" in note["body"]  # the links point at the helpdesk's copy
    rt.close()


def test_safe_filename() -> None:
    from cxbridge.workflows.relay import safe_filename, type_allowed

    assert safe_filename("C:\\Users\\eve\\report (1).pdf") == "report (1).pdf"
    assert safe_filename("...hidden") == "hidden"
    assert safe_filename("\x00\x1f") == "attachment"
    long = safe_filename("a" * 300 + ".log")
    assert len(long) == 180
    assert long.endswith(".log")
    assert type_allowed("image/png; name=x", ["image/*"])
    assert not type_allowed("application/x-msdownload", ["image/*", "text/plain"])


def test_no_attachment_is_fetched_from_another_origin(vendors: Vendors, runtime: Runtime) -> None:
    from cxbridge.errors import VendorError
    from cxbridge.models import Attachment, Ref

    helpdesk = runtime.helpdesk()
    elsewhere = Attachment(Ref("zendesk", "attachment", "1"), "x.png", "image/png", 10, "https://evil.example/x.png")
    calls = len(vendors["zendesk"].calls)
    with pytest.raises(VendorError, match="not on the configured origin"):
        helpdesk.download_attachment(elsewhere, max_bytes=1000)
    assert len(vendors["zendesk"].calls) == calls
    runtime.close()


def test_the_first_message_attachments_reach_the_issue_at_escalation(vendors: Vendors, runtime: Runtime) -> None:
    token = upload(vendors, "trace.har", b'{"log": {}}', "application/x-har+json")
    created = zendesk_as_alex(
        vendors,
        "POST",
        "/tickets",
        {"ticket": {"subject": "Export fails", "comment": {"body": "See the HAR.", "uploads": [token]}}},
    )
    ticket_id = str(created["ticket"]["id"])
    for _ in range(2):
        result = Escalation(runtime).run(EscalationRequest(ticket_id=ticket_id))
    [attached] = issue_attachments(vendors, result.issue_key)
    assert attached["filename"] == "trace.har"
    assert result.writes["attachments"] == "1 uploaded, 0 linked"
    runtime.close()


def test_data_center_gets_the_relayed_note_as_wiki_text(sandbox_runtime: SandboxRuntimes) -> None:
    """On Jira Data Center the relayed comment is wiki markup (REST v2); the customer's words stay data."""
    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as vendors:
        vendors["jira"].set_deployment("datacenter")  # type: ignore[attr-defined]
        vendors["zendesk"].webhook_targets = [WebhookTarget(url="http://127.0.0.1:9/webhooks/zendesk", secret=SECRET)]
        rt = sandbox_runtime(vendors)
        try:
            key = Escalation(rt).run(EscalationRequest(ticket_id="1", note="x")).issue_key
            start = len(vendors["zendesk"].webhooks_sent)
            comment(vendors, "1", "[engineering] Fails with *stars* and {braces}.")
            deliver(rt, vendors["zendesk"], start)
            issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)
            [found] = [c for c in issue["fields"]["comment"]["comments"] if "Fails with" in str(c["body"])]
            assert isinstance(found["body"], str)
            assert "*Alex Support*" in found["body"]  # bold in wiki markup
            assert "\\*stars\\*" in found["body"]  # the note's own asterisks escaped
        finally:
            rt.close()


def test_a_redaction_in_zendesk_reaches_the_relayed_copies_through_sync(vendors: Vendors, runtime: Runtime) -> None:
    """Zendesk comments are never edited, only redacted (Redact String in Comment, no trigger fires): ``cxbridge
    sync`` reads the linked ticket's comments again and the copies on both issues are updated in place."""
    from cxbridge.worker import drain
    from cxbridge.workflows.reconcile import reconcile

    vendors["zendesk"].incremental_delay = 0  # type: ignore[attr-defined]
    first, second = two_issues(vendors, runtime)
    start = len(vendors["zendesk"].webhooks_sent)
    comment_id = comment(vendors, "1", "[engineering] The customer's card 4111 1111 1111 1111 is declined.")
    deliver(runtime, vendors["zendesk"], start)
    reconcile(runtime, since=0)
    drain(runtime)
    ids = {key: relayed(vendors, key, "4111 1111")[0]["id"] for key in (first, second)}
    answer = zendesk_as_alex(
        vendors, "PUT", f"/tickets/1/comments/{comment_id}/redact", {"text": "4111 1111 1111 1111"}
    )
    assert "4111" not in answer["comment"]["body"]
    assert len(vendors["zendesk"].webhooks_sent) == start + 1  # no trigger fires on a redaction: only polling sees it
    reconcile(runtime)
    drain(runtime)
    for key in (first, second):
        assert relayed(vendors, key, "4111") == []
        [copy] = relayed(vendors, key, "is declined.")
        assert copy["id"] == ids[key]
        assert "\u2587" * 19 in copy["body"]
    calls = {name: len(vendors[name].calls) for name in ("zendesk", "jira")}
    reconcile(runtime)
    drain(runtime)  # the issues' own new states, the same comment text: nothing is written
    writes = [c for name in calls for c in vendors[name].calls[calls[name] :] if c.method in ("POST", "PUT")]
    assert [c.path for c in writes if "search" not in c.path] == []
    assert all(len(relayed(vendors, key, "is declined.")) == 1 for key in (first, second))
    runtime.close()


def test_to_helpdesk_off_keeps_engineering_to_itself(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    """``[sync] to_helpdesk = false``: a [support] comment and a status change reach no ticket; the relay still runs."""
    rt = sandbox_runtime(vendors, extra={"sync": {"to_helpdesk": False}})
    key = Escalation(rt).run(EscalationRequest(ticket_id="1", note="x")).issue_key
    jira = vendors["jira"]
    creds = jira.credentials()
    start = len(jira.webhooks_sent)
    requests.post(
        f"{jira.base_url}/rest/api/2/issue/{key}/comment",
        json={"body": "[support] Workaround: use XLSX."},
        auth=(creds["engineer_email"], creds["engineer_api_token"]),
        timeout=5,
    ).raise_for_status()
    outcomes = deliver(rt, jira, start)
    assert outcomes
    assert all(o.startswith("ignored") for o in outcomes), outcomes
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == 1)
    assert not any("Workaround" in c["body"] for c in ticket["comments"])
    zstart = len(vendors["zendesk"].webhooks_sent)
    comment(vendors, "1", "[engineering] still relayed")
    deliver(rt, vendors["zendesk"], zstart)
    assert len(relayed(vendors, key, "still relayed")) == 1
    rt.close()
