"""Reconciliation (``cxbridge sync``) on the in-process sandbox: checkpoints, what is queued, and catching up."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partialmethod
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cxbridge_jira.connector import JiraConnector
from cxbridge_jira.webhook import sign as jira_sign
from cxbridge_jira.webhook import verify_jira
from cxbridge_zendesk.connector import ZendeskConnector
from cxbridge_zendesk.webhook import verify_zendesk

from cxbridge.cli import cli
from cxbridge.cli.queue import sync
from cxbridge.connectors import IssueSpec
from cxbridge.models import Event, Link, Ref
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors, mock_vendors
from cxbridge.secrets import Secret
from cxbridge.signals import (
    EscalationRequested,
    IssueStateObserved,
    Signal,
    TicketStateObserved,
    signal_from_dict,
    signal_to_dict,
)
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.events import handle_signal_job, subject_of, triggers
from cxbridge.workflows.reconcile import StreamReport, parse_since, reconcile

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

TAG = "escalated_to_engineering"
LONG_AGO = time.time() - 30 * 86400
EXTRA: dict[str, Any] = {"escalation": {"crm": ""}}


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with mock_vendors(["zendesk", "jira"], seed="demo") as v:
        v["zendesk"].incremental_delay = 0
        yield v


@pytest.fixture
def config_path(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Path:
    return sandbox_runtime.config(vendors, extra=EXTRA)


@pytest.fixture
def rt(config_path: Path, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime.load(config_path)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zendesk export pages of 2 tickets, so a handful of tickets spans several pages."""
    monkeypatch.setattr(
        ZendeskConnector, "changed_tickets", partialmethod(ZendeskConnector.changed_tickets, per_page=2)
    )


def tag_tickets(vendors: Vendors, *ids: int, tag: str = TAG) -> None:
    """An agent adds the tag in Zendesk; no webhook target is configured, so nobody hears of it."""
    z = vendors["zendesk"]
    with z.lock:
        agent = z.model.user_by_email("agent@cxbridge.example")
        for tid in ids:
            ticket = z.model.ticket(tid)
            z.model.update_ticket(tid, {"ticket": {"tags": [*ticket.tags, tag]}}, agent)


def add_tickets(vendors: Vendors, count: int, tags: list[str] | None = None) -> list[int]:
    z = vendors["zendesk"]
    ids = []
    with z.lock:
        agent = z.model.user_by_email("agent@cxbridge.example")
        for n in range(count):
            body = {"ticket": {"subject": f"bulk {n}", "comment": {"body": "help"}, "tags": list(tags or [])}}
            ticket, _, _ = z.model.create_ticket(body, agent)
            ids.append(ticket.id)
    return ids


def zendesk_delivery(body: bytes, secret: str) -> list[Event]:
    """``body`` signed as Zendesk signs a webhook with ``secret``, verified by the plugin's verifier."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = base64.b64encode(hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()).decode()
    return verify_zendesk(
        method="POST",
        url="https://cx.example/webhooks/zendesk",
        headers={"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": stamp},
        body=body,
        secrets=[Secret(secret)],
        now=time.time(),
    )


def queued_signals(rt: Runtime) -> list[tuple[str, Signal]]:
    """The delivery id and signal of every signal job in the queue, oldest first."""
    conn = rt.store._conn()  # type: ignore[attr-defined]
    rows = conn.execute("SELECT payload FROM jobs WHERE kind = 'signal' ORDER BY id").fetchall()
    return [(json.loads(r[0])["origin"], signal_from_dict(json.loads(r[0])["signal"])) for r in rows]


def polled_at(delivery_id: str) -> datetime:
    """The remote state's time a poll's delivery id names (``poll:<ref>:<time>``)."""
    return datetime.fromisoformat(delivery_id.split(":", 4)[4])


def stream(report: Any, system: str) -> StreamReport:
    return next(s for s in report.streams if s.system == system)


def link(rt: Runtime, ticket_id: int | str, issue_id: str, key: str) -> None:
    """The ticket as a finished escalation leaves it: linked, and audited (the escalation's last step)."""
    ticket = Ref("zendesk", "ticket", str(ticket_id))
    rt.store.add_link(Link(ticket=ticket, issue=Ref("jira", "issue", issue_id), issue_key=key))
    rt.store.audit(actor="cli", action="escalate.link", target=f"jira:issue:{issue_id}", result="ok", ticket=ticket)


# --- Zendesk: only tagged, unlinked tickets ----------------------------------------------------------------


def test_only_tagged_unlinked_tickets_become_events(vendors: Vendors, rt: Runtime) -> None:
    tag_tickets(vendors, 2, 3)
    tag_tickets(vendors, 1, tag="unrelated")
    link(rt, 3, "10999", "ENG-99")  # escalated before: tagged but linked
    report = reconcile(rt, since=LONG_AGO)
    zd = stream(report, "zendesk")
    # one page of the export, and one read of the linked ticket's comments (none is marked for engineering)
    assert (zd.records, zd.enqueued, zd.duplicates, zd.pages, zd.calls) == (3, 1, 0, 1, 2)
    [(origin, signal)] = queued_signals(rt)
    assert isinstance(signal, EscalationRequested)
    assert (signal.ticket, signal.fresh) == (Ref("zendesk", "ticket", "2"), True)
    # the export's record, complete with its sideloads, travels with the job (the escalation does not read it again)
    assert signal.record is not None
    assert signal.record.complete
    assert signal.record.requester is not None
    assert (signal.record.requester.email, signal.record.organization) == ("grace@globex.example", "Globex")
    updated = vendors["zendesk"].state()["tickets"][1]["updated_at"]
    assert origin.startswith("poll:zendesk:ticket:2:")
    assert polled_at(origin) == datetime.fromisoformat(updated.replace("Z", "+00:00"))


def test_a_second_run_enqueues_nothing_new(vendors: Vendors, rt: Runtime) -> None:
    tag_tickets(vendors, 2)
    first = reconcile(rt, since=LONG_AGO)
    assert first.enqueued == 1
    again = reconcile(rt)  # from the checkpoint: nothing changed since
    assert stream(again, "zendesk").records == 0
    assert again.enqueued == 0
    rescan = reconcile(rt, since=LONG_AGO)  # --since overrides the checkpoint: the same state is a duplicate
    assert stream(rescan, "zendesk").records == 3
    assert rescan.enqueued == 0
    assert stream(rescan, "zendesk").duplicates == 1
    assert len(queued_signals(rt)) == 1


def test_since_overrides_the_checkpoint_and_bounds_the_scan(vendors: Vendors, rt: Runtime) -> None:
    """Demo tickets are days old: --since an hour ago sees only what changed since."""
    reconcile(rt, since=LONG_AGO)
    tag_tickets(vendors, 1)
    recent = reconcile(rt, since=time.time() - 3600)
    assert stream(recent, "zendesk").records == 1
    assert recent.enqueued == 1
    assert rt.store.get_checkpoint("zendesk", "tickets") == stream(recent, "zendesk").cursor


def test_first_run_looks_back_the_configured_hours(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    tag_tickets(vendors, 1)  # changed now; the other demo tickets are 1 to 3 days old
    extra = {**EXTRA, "sync": {"lookback_hours": 12}}
    runtime = sandbox_runtime(vendors, extra=extra, name="other.toml")
    try:
        report = reconcile(runtime)
    finally:
        runtime.close()
    assert stream(report, "zendesk").records == 1
    assert report.enqueued == 1


def test_checkpoint_resumes_after_the_last_page_handled(vendors: Vendors, rt: Runtime, small_pages: None) -> None:
    """A crash after the first page: the rerun starts right after it; every event is queued exactly once."""
    add_tickets(vendors, 4, tags=[TAG])  # 3 + 4 = 7 tickets, 4 tagged: pages of 2
    pages_seen: list[int] = []

    class Crash(Exception):
        pass

    def crash_after_first_page(figures: StreamReport) -> None:
        pages_seen.append(figures.pages)
        if figures.system == "zendesk":
            raise Crash

    with pytest.raises(Crash):
        reconcile(rt, since=LONG_AGO, progress=crash_after_first_page)
    saved = rt.store.get_checkpoint("zendesk", "tickets")
    assert saved is not None
    assert "cursor" in saved
    first_batch = len(queued_signals(rt))
    resumed = reconcile(rt)
    zd = stream(resumed, "zendesk")
    assert zd.records == 7 - 2
    assert zd.pages == math.ceil(5 / 2)
    assert zd.calls == zd.pages
    assert zd.duplicates == 0
    assert first_batch + zd.enqueued == 4
    assert sorted(int(subject_of(sig).id) for _, sig in queued_signals(rt)) == [4, 5, 6, 7]


def test_calls_are_one_per_page_of_the_export(vendors: Vendors, rt: Runtime, small_pages: None) -> None:
    add_tickets(vendors, 6)  # 9 tickets
    report = reconcile(rt, since=LONG_AGO, systems=["zendesk"])
    zd = stream(report, "zendesk")
    assert zd.pages == math.ceil(9 / 2) == zd.calls == vendors.calls()["zendesk"]
    assert [s.system for s in report.streams] == ["zendesk"]


def test_a_polled_tag_means_what_the_webhook_means(vendors: Vendors, rt: Runtime) -> None:
    """The tag seen by polling and the trigger's signed webhook for it become the same neutral signal."""
    tag_tickets(vendors, 2)
    reconcile(rt, since=LONG_AGO)
    [(_, polled)] = queued_signals(rt)
    body = json.dumps({"event": "tag_added", "ticket": {"id": 2, "tags": [TAG]}}).encode()
    [delivered] = zendesk_delivery(body, "s3cret")
    assert isinstance(polled, EscalationRequested)
    # the same signal; the poll's also carries the export's record of the ticket (the webhook's body holds none)
    assert rt.connector("zendesk").interpret(delivered, triggers(rt)) == [dataclasses.replace(polled, record=None)]


# --- Jira: issues with linked tickets ------------------------------------------------------------------------


def jira_connector(rt: Runtime) -> JiraConnector:
    tracker = rt.tracker()
    assert isinstance(tracker, JiraConnector)
    return tracker


def test_a_linked_issue_is_enqueued_once_per_updated_time(vendors: Vendors, rt: Runtime) -> None:
    jira = jira_connector(rt)
    linked = jira.create_issue(IssueSpec("ENG", "Bug", "linked", "text"))
    jira.create_issue(IssueSpec("ENG", "Bug", "not linked", "text"))
    link(rt, 1, linked.ref.id, linked.key)
    link(rt, 2, linked.ref.id, linked.key)
    first = reconcile(rt, since=LONG_AGO, systems=["jira"])
    js = stream(first, "jira")
    assert (js.records, js.enqueued) == (2, 1)
    [(origin, state)] = queued_signals(rt)
    assert isinstance(state, IssueStateObserved)
    assert state.issue == Ref("jira", "issue", linked.ref.id)
    assert (state.key, state.category, state.summary) == (linked.key, "new", "linked")
    assert state.updated is not None
    assert origin == f"poll:jira:issue:{linked.ref.id}:{state.updated.isoformat()}"
    again = reconcile(rt, systems=["jira"])  # the re-read window holds the same state: a duplicate
    assert again.enqueued == 0
    assert stream(again, "jira").duplicates == 1
    time.sleep(0.002)
    jira.transition_by_name(linked.key, "Done")
    moved = reconcile(rt, systems=["jira"])
    assert moved.enqueued == 1
    latest_origin, latest = queued_signals(rt)[-1]
    assert isinstance(latest, IssueStateObserved)
    assert latest.category == "done"
    assert latest_origin != origin


def test_a_polled_issue_means_what_the_webhook_means(vendors: Vendors, rt: Runtime) -> None:
    """The issue's state seen by polling and Jira's signed issue_updated webhook become the same signal."""
    jira = jira_connector(rt)
    issue = jira.create_issue(IssueSpec("ENG", "Bug", "linked", "text"))
    link(rt, 1, issue.ref.id, issue.key)
    reconcile(rt, since=LONG_AGO, systems=["jira"])
    [(_, polled)] = queued_signals(rt)
    fields = vendors["jira"].state()["issues"][0]["fields"]
    payload = {
        "webhookEvent": "jira:issue_updated",
        "issue": {
            "id": issue.ref.id,
            "key": issue.key,
            "fields": {k: fields[k] for k in ("summary", "status", "updated")},
        },
    }
    body = json.dumps(payload).encode()
    [delivered] = verify_jira(
        method="POST",
        url="https://cx.example/webhooks/jira",
        headers={"X-Hub-Signature": jira_sign("s3cret", body), "X-Atlassian-Webhook-Identifier": "d-1"},
        body=body,
        secrets=[Secret("s3cret")],
        now=time.time(),
    )
    assert jira.interpret(delivered, triggers(rt)) == [polled]


def test_a_change_seen_by_the_webhook_and_the_poll_is_acted_on_once(vendors: Vendors, rt: Runtime) -> None:
    """The webhook and the poll name the same tag under two delivery ids: two jobs, one escalation."""
    from cxbridge.worker import drain
    from cxbridge.workflows.events import enqueue_event

    tag_tickets(vendors, 2)
    body = json.dumps({"id": "trigger-1", "event": "tag_added", "ticket": {"id": 2, "tags": ["csv", TAG]}}).encode()
    [hooked] = zendesk_delivery(body, "k")
    assert enqueue_event(rt, "zendesk", hooked)
    assert reconcile(rt, since=LONG_AGO).enqueued == 1
    jobs = drain(rt)
    assert (jobs.done, jobs.dead) == (2, 0)
    assert len(vendors["jira"].state()["issues"]) == 1
    assert len(rt.store.links_for_ticket(Ref("zendesk", "ticket", "2"))) == 1
    assert sum("Escalated to engineering" in note for note in zendesk_notes(vendors, 2)) == 1


# --- errors, systems, the command ---------------------------------------------------------------------------


def test_a_failing_system_is_reported_and_the_others_still_run(vendors: Vendors, rt: Runtime) -> None:
    tag_tickets(vendors, 2)
    vendors["jira"].faults.clear()
    z = vendors["zendesk"]
    from cxbridge.sandbox.base import Fault

    z.faults.append(Fault(status=403, count=1, retry_after=None, path=None, method=None))
    report = reconcile(rt, since=LONG_AGO)
    assert stream(report, "zendesk").error
    assert "403" in str(stream(report, "zendesk").error)
    assert stream(report, "jira").error is None
    assert stream(report, "jira").done
    assert rt.store.get_checkpoint("zendesk", "tickets") is None
    assert queued_signals(rt) == []  # the tagged ticket waits for the next run


def test_unknown_system_is_a_config_error(rt: Runtime) -> None:
    from cxbridge.errors import ConfigError

    with pytest.raises(ConfigError, match="no system named 'nope'"):
        reconcile(rt, systems=["nope"])


def test_parse_since() -> None:
    assert parse_since("2026-01-31T09:00:00Z") == datetime(2026, 1, 31, 9, tzinfo=UTC).timestamp()
    assert parse_since("2026-01-31") == datetime(2026, 1, 31, tzinfo=UTC).timestamp()
    assert parse_since("2026-01-31T10:00:00+01:00") == datetime(2026, 1, 31, 9, tzinfo=UTC).timestamp()


def test_cli_sync_json_no_drain(vendors: Vendors, config_path: Path) -> None:
    tag_tickets(vendors, 2)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["--config", str(config_path), "sync", "--since", "2020-01-01T00:00:00Z", "--no-drain", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["enqueued"] == 1
    assert data["jobs"] is None
    by_system = {s["system"]: s for s in data["streams"]}
    assert by_system["zendesk"]["records"] == 3
    assert by_system["zendesk"]["calls"] == 1
    again = runner.invoke(cli, ["--config", str(config_path), "sync", "--no-drain"])
    assert again.exit_code == 0, again.output
    assert "zendesk tickets: 0 pages" not in again.stdout
    assert "0 events queued" in again.stdout


def test_cli_sync_rejects_a_bad_since(config_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(config_path), "sync", "--since", "yesterday"])
    assert result.exit_code == 1
    assert "--since: not an ISO-8601 time" in result.output


def test_cli_sync_drains_the_queue(vendors: Vendors, config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --drain (the default) the queued events run through the worker once each."""
    handled: list[str] = []

    def fake_handle(rt: Runtime, signal: Signal, *, system: str, origin: str | None = None) -> str:
        handled.append(str(origin))
        return "ok"

    monkeypatch.setattr("cxbridge.workflows.events.handle_signal", fake_handle)
    tag_tickets(vendors, 1, 2)
    result = CliRunner().invoke(cli, ["--config", str(config_path), "sync", "--since", "2020-01-01", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["jobs"]["done"] == 2
    assert sorted(h.split(":")[:4] for h in handled) == [["poll", "zendesk", "ticket", n] for n in ("1", "2")]


def test_progress_reports_each_page(vendors: Vendors, rt: Runtime, small_pages: None) -> None:
    add_tickets(vendors, 2)
    seen: list[tuple[str, int]] = []
    reconcile(rt, since=LONG_AGO, systems=["zendesk"], progress=lambda f: seen.append((f.system, f.pages)))
    assert seen == [("zendesk", 1), ("zendesk", 2), ("zendesk", 3)]


def test_the_command_line_has_the_sync_command() -> None:
    assert cli.commands["sync"] is sync


# --- catching up end to end (router, escalation and sync back through the worker) ---------------------------


def zendesk_notes(vendors: Vendors, ticket_id: int) -> list[str]:
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)
    return [c["body"] for c in ticket["comments"] if not c["public"]]


def test_a_tag_added_while_the_receiver_was_down_is_escalated(vendors: Vendors, rt: Runtime) -> None:
    from cxbridge.worker import drain

    tag_tickets(vendors, 2)
    assert vendors["zendesk"].webhooks_sent == []  # no receiver was listening
    report = reconcile(rt, since=LONG_AGO)
    assert report.enqueued == 1
    jobs = drain(rt)
    assert (jobs.done, jobs.dead) == (1, 0)
    [issue] = vendors["jira"].state()["issues"]
    [linked] = rt.store.links_for_ticket(Ref("zendesk", "ticket", "2"))
    assert linked.issue_key == issue["key"]
    # the escalation's own write to the ticket is seen by the next poll: the ticket is linked now, nothing is queued
    after = reconcile(rt)
    assert stream(after, "zendesk").records == 1
    assert stream(after, "zendesk").enqueued == 0
    assert len(vendors["jira"].state()["issues"]) == 1


def test_a_polled_escalation_does_not_read_again_the_ticket_the_export_carried(vendors: Vendors, rt: Runtime) -> None:
    """Two tagged tickets found by the poll, escalated through the worker's handler: ticket 2 with the export's
    record as queued makes no ``tickets.show`` call; ticket 3's request without the record (as a webhook's) reads
    the ticket once, and that read is the only call between them (counted by the CallCounter bench_calls reads)."""
    Escalation(rt).run(EscalationRequest(ticket_id="1"))  # warm-up: the once-per-process reads (create screen)
    tag_tickets(vendors, 2, 3)
    reconcile(rt, since=LONG_AGO)
    queued = {s.ticket.id: (o, s) for o, s in queued_signals(rt) if isinstance(s, EscalationRequested)}
    spent: dict[str, dict[str, int]] = {}
    for ticket_id, record in (("2", True), ("3", False)):
        origin, signal = queued[ticket_id]
        assert isinstance(signal, EscalationRequested)
        assert signal.record is not None
        if not record:
            signal = dataclasses.replace(signal, record=None)
        before = rt.counter.by_op()
        outcome = handle_signal_job(rt, {"signal": signal_to_dict(signal), "system": "zendesk", "origin": origin})
        assert outcome.startswith("escalated"), outcome
        after = rt.counter.by_op()
        spent[ticket_id] = {op: n - before.get(op, 0) for op, n in after.items() if n - before.get(op, 0)}
    assert "tickets.show" not in spent["2"]
    assert spent["3"].pop("tickets.show") == 1
    assert spent["2"] == spent["3"]
    for ticket_id in ("2", "3"):
        [linked] = rt.store.links_for_ticket(Ref("zendesk", "ticket", ticket_id))
        assert any(linked.issue_key in note for note in zendesk_notes(vendors, int(ticket_id)))


def test_a_transition_missed_by_the_receiver_reaches_every_linked_ticket_once(vendors: Vendors, rt: Runtime) -> None:
    from cxbridge.worker import drain
    from cxbridge.workflows.escalate import Escalation, EscalationRequest

    first = Escalation(rt).run(EscalationRequest(ticket_id="1"))
    for tid in ("2", "3"):
        Escalation(rt).run(EscalationRequest(ticket_id=tid, link_key=first.issue_key))
    reconcile(rt, since=LONG_AGO)  # the escalations' own changes: the tickets are linked, the issue is new
    drain(rt)
    notes_before = {tid: len(zendesk_notes(vendors, tid)) for tid in (1, 2, 3)}
    jira_connector(rt).transition_by_name(first.issue_key, "Done")
    assert vendors["jira"].webhooks_sent == []
    report = reconcile(rt)
    assert stream(report, "jira").enqueued == 1
    jobs = drain(rt)
    assert jobs.dead == 0
    notes_after = {tid: len(zendesk_notes(vendors, tid)) for tid in (1, 2, 3)}
    assert {tid: notes_after[tid] - notes_before[tid] for tid in (1, 2, 3)} == {1: 1, 2: 1, 3: 1}
    # polling again (the same state, and the tickets' new notes) changes nothing
    reconcile(rt)
    drain(rt)
    assert {tid: len(zendesk_notes(vendors, tid)) for tid in (1, 2, 3)} == notes_after


# --- HubSpot tickets: the escalation property ---------------------------------------------------------------


def test_hubspot_tickets_with_the_escalation_property_become_property_change_events(
    sandbox_runtime: SandboxRuntimes,
) -> None:
    from cxbridge_hubspot.sandbox.models import OBJECT_TYPES

    with mock_vendors(["zendesk", "jira", "hubspot"], seed="demo") as vendors:
        vendors["zendesk"].incremental_delay = 0
        runtime = sandbox_runtime(vendors)
        try:
            hub = vendors["hubspot"]
            with hub.lock:
                tickets = hub.portal.live(OBJECT_TYPES["tickets"])
                assert tickets, "the demo seed has HubSpot tickets"
                target = tickets[0].id
                hub.portal.update(OBJECT_TYPES["tickets"], target, {"cxbridge_escalate": "true"}, source="CRM_UI")
            report = reconcile(runtime, since=LONG_AGO, systems=["hubspot"])
            assert stream(report, "hubspot").enqueued == 1
            [(origin, signal)] = queued_signals(runtime)
            assert signal == EscalationRequested(ticket=Ref("hubspot", "ticket", str(target)), fresh=True)
            assert origin.startswith(f"poll:hubspot:ticket:{target}:")
            assert reconcile(runtime, systems=["hubspot"]).enqueued == 0
        finally:
            runtime.close()


def test_deleted_tickets_in_the_export_are_not_escalated(rt: Runtime) -> None:
    from cxbridge.models import Ticket
    from cxbridge.workflows.reconcile import _signal_for

    helpdesk = rt.helpdesk()
    when = datetime(2026, 1, 1, tzinfo=UTC)
    ref = Ref("zendesk", "ticket", "9")
    open_ticket = Ticket(ref=ref, url="", subject="", status="open", tags=[TAG], updated_at=when)
    deleted = Ticket(ref=ref, url="", subject="", status="deleted", tags=[TAG], updated_at=when)
    assert _signal_for(rt, "zendesk", helpdesk, open_ticket) == (
        "poll:zendesk:ticket:9:2026-01-01T00:00:00+00:00",
        EscalationRequested(ticket=ref, fresh=True),
    )
    assert _signal_for(rt, "zendesk", helpdesk, deleted) is None


# --- comments both ways and releases, while the receiver was down -----------------------------------------------


def as_eve(vendors: Vendors, method: str, path: str, body: Any = None) -> Any:
    """Eve the engineer, through the Jira emulator's REST API (v3)."""
    import requests

    jira = vendors["jira"]
    creds = jira.credentials()
    response = requests.request(
        method,
        f"{jira.base_url}/rest/api/3{path}",
        json=body,
        auth=(creds["engineer_email"], creds["engineer_api_token"]),
        timeout=5,
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


def alex_comments(vendors: Vendors, ticket_id: int, body: str, *, public: bool = False) -> None:
    z = vendors["zendesk"]
    with z.lock:
        alex = z.model.user_by_email("alex@cxbridge.example")
        z.model.update_ticket(ticket_id, {"ticket": {"comment": {"body": body, "public": public}}}, alex)


def issue_comments(vendors: Vendors, key: str) -> list[str]:
    issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)
    return [json.dumps(c["body"]) for c in issue["fields"]["comment"]["comments"]]


def test_comments_both_ways_and_a_release_missed_by_the_receiver_are_delivered_once(
    vendors: Vendors, rt: Runtime
) -> None:
    """Receiver down: a support note, an engineering [support] comment and a released version; sync delivers each
    exactly once, and a second sync delivers nothing more."""
    from cxbridge.worker import drain
    from cxbridge.workflows.escalate import Escalation, EscalationRequest

    key = Escalation(rt).run(EscalationRequest(ticket_id="1", note="Exports fail.")).issue_key
    reconcile(rt, since=LONG_AGO)
    drain(rt)
    time.sleep(0.01)
    alex_comments(vendors, 1, "[engineering] Customer says it started after the 4.2 upgrade.")
    alex_comments(vendors, 1, "Internal chatter, not for engineering.")
    as_eve(vendors, "POST", f"/issue/{key}/comment", {"body": adf("[support] Workaround: export as XLSX.")})
    as_eve(vendors, "POST", f"/issue/{key}/comment", {"body": adf("Engineering-only musing.")})
    project = as_eve(vendors, "GET", f"/issue/{key}?fields=project")["fields"]["project"]["id"]
    version = as_eve(vendors, "POST", "/version", {"name": "4.3.1", "projectId": int(project)})
    as_eve(vendors, "PUT", f"/issue/{key}", {"fields": {"fixVersions": [{"id": version["id"]}]}})
    as_eve(vendors, "PUT", f"/version/{version['id']}", {"released": True})
    assert vendors["jira"].webhooks_sent == []
    assert vendors["zendesk"].webhooks_sent == []

    report = reconcile(rt)
    assert report.failed == []
    kinds = sorted(type(signal).__name__ for _, signal in queued_signals(rt)[-4:])
    assert kinds == ["IssueCommentPosted", "IssueStateObserved", "TicketCommentAdded", "VersionReleased"]
    jobs = drain(rt)
    assert jobs.dead == 0

    def counts() -> tuple[int, int, int, int]:
        relayed = [c for c in issue_comments(vendors, key) if "started after the 4.2 upgrade" in c]
        notes = zendesk_notes(vendors, 1)
        return (
            len(relayed),
            sum("Workaround: export as XLSX." in n for n in notes),
            sum("4.3.1" in n for n in notes),
            sum("Internal chatter" in c for c in issue_comments(vendors, key))
            + sum("Engineering-only musing" in n for n in notes),
        )

    assert counts() == (1, 1, 1, 0)
    before = len(queued_signals(rt))
    reconcile(rt)
    # only the issue's new state (cxbridge's relayed comment touched it), which changes nothing
    assert [type(s).__name__ for _, s in queued_signals(rt)[before:]] == ["IssueStateObserved"]
    drain(rt)
    assert counts() == (1, 1, 1, 0)
    # a third pass over the whole window (--since): the same states are duplicates, nothing is written
    reconcile(rt, since=LONG_AGO)
    drain(rt)
    assert counts() == (1, 1, 1, 0)


def test_a_ticket_solved_while_the_receiver_was_down_resolves_its_link(vendors: Vendors, rt: Runtime) -> None:
    """``sync`` sees the linked ticket's new status and queues one TicketStateObserved; its link flips once."""
    from cxbridge.worker import drain
    from cxbridge.workflows.escalate import Escalation, EscalationRequest

    key = Escalation(rt).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    reconcile(rt, since=LONG_AGO)
    drain(rt)  # what the poll finds before the change: nothing to do for the linked ticket
    z = vendors["zendesk"]
    with z.lock:
        z.model.update_ticket(1, {"ticket": {"status": "solved"}}, z.model.user_by_email("alex@cxbridge.example"))
    report = reconcile(rt)
    assert stream(report, "zendesk").enqueued == 1
    [signal] = [s for o, s in queued_signals(rt) if o.endswith(":state")]
    assert signal == TicketStateObserved(ticket=Ref("zendesk", "ticket", "1"), status="solved")
    assert drain(rt).done >= 1
    [link] = next(i for i in vendors["jira"].state()["issues"] if i["key"] == key)["remoteLinks"]
    assert link["object"]["status"]["resolved"] is True
    assert stream(reconcile(rt), "zendesk").enqueued == 0  # the same ticket state polled again queues nothing
