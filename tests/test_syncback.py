"""Sync back on the in-process sandbox: engineering's moves reach every linked ticket and the CRM, exactly once.

Events are the emulators' own signed webhooks, verified by the plugins' verifiers, committed with
``enqueue_event`` and handled by ``handle_event``; every assertion reads the emulators' state.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cxbridge_hubspot.webhook import verify_hubspot
from cxbridge_jira.webhook import verify_jira
from cxbridge_zendesk.connector import ZendeskConnector
from cxbridge_zendesk.webhook import verify_zendesk

from cxbridge.handoff import Handoff
from cxbridge.models import Event, Ref
from cxbridge.runtime import Runtime
from cxbridge.sandbox.base import Backend, Fault, WebhookTarget
from cxbridge.sandbox.modes import Vendors, mock_vendors
from cxbridge.signals import IssueStateObserved, Signal
from cxbridge.store import open_store
from cxbridge.testing import SandboxRuntimes, verify_deliveries
from cxbridge.workflows.escalate import Escalation, EscalationRequest
from cxbridge.workflows.events import enqueue_event, handle_event, triggers
from cxbridge.workflows.syncback import SyncBack

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

HOOK_SECRET = "whsec-sync-tests"
VERIFIERS = {"jira": verify_jira, "zendesk": verify_zendesk, "hubspot": verify_hubspot}
SYNC = {"status_map": {"done": "solved"}, "draft_reply_on": [], "comment_visibility": ["role:Support"]}


class Crash(Exception):
    """Stands for the process dying at a recovery point."""


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as v:
        for name in ("zendesk", "jira"):
            # nothing listens there: deliveries are read back from ``webhooks_sent`` and verified
            v[name].webhook_targets = [WebhookTarget(url=f"http://127.0.0.1:9/webhooks/{name}", secret=HOOK_SECRET)]
        yield v


@pytest.fixture
def sandbox_runtime(sandbox_runtimes: SandboxRuntimes, store_location: str) -> SandboxRuntimes:
    """Every test here runs on both stores: a SQLite file, then a PostgreSQL schema (conftest's store_location)."""
    sandbox_runtimes.store = store_location
    return sandbox_runtimes


@pytest.fixture
def runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime(vendors, extra={"sync": SYNC})


# -- acting as people, reading webhooks ----------------------------------------------------------------------------
def as_eve(vendors: Vendors, method: str, path: str, body: Any = None, *, api: int = 2) -> requests.Response:
    jira = vendors["jira"]
    creds = jira.credentials()
    response = requests.request(
        method,
        f"{jira.base_url}/rest/api/{api}{path}",
        json=body,
        auth=(creds["engineer_email"], creds["engineer_api_token"]),
        timeout=5,
    )
    assert response.status_code < 300, response.text
    return response


def interpreted(rt: Runtime, event: Event) -> list[Signal]:
    """What the tracker's plugin makes of a delivery (the router's first step)."""
    return rt.connector("jira").interpret(event, triggers(rt))


def as_admin(vendors: Vendors, method: str, path: str, body: Any = None) -> requests.Response:
    jira = vendors["jira"]
    creds = jira.credentials()
    response = requests.request(
        method, f"{jira.base_url}/rest/api/2{path}", json=body, auth=(creds["email"], creds["api_token"]), timeout=5
    )
    assert response.status_code < 300, response.text
    return response


def move(vendors: Vendors, key: str, status: str) -> None:
    """Eve moves the issue to a status through the Jira API (transition looked up by its target)."""
    transitions = as_eve(vendors, "GET", f"/issue/{key}/transitions").json()["transitions"]
    chosen = next(t for t in transitions if t["to"]["name"] == status)
    as_eve(vendors, "POST", f"/issue/{key}/transitions", {"transition": {"id": chosen["id"]}})


def webhook_events(backend: Backend, start: int) -> list[Event]:
    """The deliveries the emulator sent since ``start``, verified as the receiver would."""
    return verify_deliveries(VERIFIERS[backend.system], backend.webhooks_sent[start:], HOOK_SECRET)


def deliver(rt: Runtime, backend: Backend, start: int, *, twice: bool = False) -> list[str]:
    """Commit and handle every delivery since ``start`` (each handled twice with ``twice``, like a replay)."""
    outcomes = []
    for event in webhook_events(backend, start):
        enqueue_event(rt, backend.system, event)
        for _ in range(2 if twice else 1):
            outcomes.append(handle_event(rt, event, system=backend.system))
    return outcomes


def notes(vendors: Vendors, text: str) -> dict[int, int]:
    """Internal notes containing ``text``, counted per Zendesk ticket id."""
    found: dict[int, int] = {}
    for ticket in vendors["zendesk"].state()["tickets"]:
        count = sum(1 for c in ticket["comments"] if not c["public"] and text in c["body"])
        if count:
            found[ticket["id"]] = count
    return found


def crm_notes(vendors: Vendors, text: str) -> list[dict[str, Any]]:
    return [n for n in vendors["hubspot"].state()["objects"]["notes"] if text in n["properties"]["hs_note_body"]]


def ada_ticket(vendors: Vendors, subject: str) -> str:
    """Another ticket from Ada (Acme): tickets of one company share one CRM note."""
    zendesk = vendors["zendesk"]
    creds = zendesk.credentials()
    response = requests.post(
        f"{zendesk.base_url}/api/v2/tickets",
        json={"ticket": {"subject": subject, "comment": {"body": subject}, "requester": {"email": "ada@acme.example"}}},
        auth=(f"{creds['email']}/token", creds["api_token"]),
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["ticket"]["id"])


def three_linked(vendors: Vendors, rt: Runtime, *, same_company: bool = True) -> str:
    """One issue with three linked tickets (escalated, then joined); returns the issue key."""
    first = Escalation(rt).run(EscalationRequest(ticket_id="1", note="Exports fail."))
    others = [ada_ticket(vendors, "Export broken"), ada_ticket(vendors, "CSV empty")] if same_company else ["2", "3"]
    for ticket_id in others:
        Escalation(rt).run(EscalationRequest(ticket_id=ticket_id, link_key=first.issue_key, note="Same bug."))
    assert len(rt.store.links_for_issue_key(first.issue_key)) == 3
    return first.issue_key


# -- the tests ------------------------------------------------------------------------------------------------------
def test_done_reaches_each_linked_ticket_once_with_one_crm_note(vendors: Vendors, runtime: Runtime) -> None:
    """Three tickets, one company: three notes, three tickets solved, one CRM note; replays and polls add nothing."""
    key = three_linked(vendors, runtime)
    before = len(crm_notes(vendors, "moved to"))
    start = len(vendors["jira"].webhooks_sent)
    move(vendors, key, "Done")
    calls = {name: len(vendors[name].calls) for name in ("zendesk", "hubspot", "jira")}
    outcomes = deliver(runtime, vendors["jira"], start, twice=True)
    assert any(o.startswith("synced") for o in outcomes), outcomes
    # the budget: one update per ticket (note and status together), one CRM note; Jira: who am I, once, and
    # whether the done issue duplicates another (once per done state: the replay asks nothing)
    spent = {name: len(vendors[name].calls) - n for name, n in calls.items()}
    assert spent == {"zendesk": 3, "hubspot": 1, "jira": 2}, spent
    done = notes(vendors, f"{key} moved to Done by Eve Engineer")
    assert len(done) == 3
    assert set(done.values()) == {1}
    tickets = {t["id"]: t for t in vendors["zendesk"].state()["tickets"]}
    assert {tickets[t]["status"] for t in done} == {"solved"}
    assert len(crm_notes(vendors, f"{key}</a> moved to Done")) == 1 == len(crm_notes(vendors, "moved to")) - before

    # the same webhook delivered again is a duplicate at the inbox; handled anyway, it writes nothing
    again = webhook_events(vendors["jira"], start)
    assert not any(enqueue_event(runtime, "jira", e) for e in again)
    assert all(handle_event(runtime, e, system="jira").split(":")[0] in {"unchanged", "ignored"} for e in again)
    # a poll-shaped event (the reconciler's: the issue, no changelog, a delivery id naming the state)
    issue = as_eve(vendors, "GET", f"/issue/{key}").json()
    poll = Event(
        id=f"poll:{issue['id']}:{issue['fields']['updated']}",
        system="jira",
        kind="jira:issue_updated",
        subject=Ref("jira", "issue", issue["id"]),
        payload={"issue": issue},
    )
    assert enqueue_event(runtime, "jira", poll)
    assert handle_event(runtime, poll, system="jira").startswith("unchanged")
    assert notes(vendors, f"{key} moved to Done") == done
    assert len(crm_notes(vendors, "moved to")) - before == 1
    audit = [a for a in runtime.store.audit_entries(issue_key=key) if a.action == "sync.status"]
    assert len(audit) == 3


def test_notes_cxbridge_wrote_come_back_as_echoes_and_are_dropped(vendors: Vendors, runtime: Runtime) -> None:
    """Zendesk's comment webhooks for the sync notes (and for the escalation) are echoes: nothing is written."""
    zendesk = vendors["zendesk"]
    key = three_linked(vendors, runtime)
    start = len(vendors["jira"].webhooks_sent)
    z_start = len(zendesk.webhooks_sent)
    move(vendors, key, "Done")
    deliver(runtime, vendors["jira"], start)
    echoes = webhook_events(zendesk, z_start)
    assert len(echoes) == 6  # a note and a status change (status_map) on each of the three tickets
    assert {e.kind for e in echoes} == {"ticket.comment_added", "ticket.status_changed"}
    calls = len(zendesk.calls), len(vendors["jira"].calls)
    outcomes = deliver(runtime, zendesk, z_start)
    outcomes += deliver(runtime, zendesk, z_start)  # and again: the learned id is kept, no further call
    assert len(outcomes) == 12
    assert all(o.startswith("echo") for o in outcomes), outcomes
    # the integration user's id is learned once per process (users/me); nothing else is called or written
    assert [c.path for c in zendesk.calls[calls[0] :]] == ["/api/v2/users/me"]
    assert len(vendors["jira"].calls) == calls[1]
    assert len(zendesk.webhooks_sent) == z_start + 6  # quiet: no ping-pong


def test_own_note_is_recognised_by_its_fingerprint_without_the_actor(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, runtime: Runtime
) -> None:
    """With another integration user configured, the note still matches the write cxbridge just made."""
    key = three_linked(vendors, runtime)
    start, z_start = len(vendors["jira"].webhooks_sent), len(vendors["zendesk"].webhooks_sent)
    move(vendors, key, "Done")
    deliver(runtime, vendors["jira"], start)
    other = sandbox_runtime(vendors, extra={"sync": {**SYNC, "integration_users": {"zendesk": "999999"}}})
    other._store = runtime.store  # the same store: the fingerprints live there
    notes = [e for e in webhook_events(vendors["zendesk"], z_start) if e.kind == "ticket.comment_added"]
    outcomes = [handle_event(other, e, system="zendesk") for e in notes]
    assert len(outcomes) == 3
    assert all("note cxbridge wrote" in o for o in outcomes), outcomes


def test_real_transitions_each_write_a_note(vendors: Vendors, runtime: Runtime) -> None:
    """Done, back to In Progress, Done again: a note per transition per ticket; a priority edit writes nothing."""
    key = three_linked(vendors, runtime)
    for status in ("In Progress", "Done", "In Progress", "Done"):
        start = len(vendors["jira"].webhooks_sent)
        move(vendors, key, status)
        deliver(runtime, vendors["jira"], start)
    start = len(vendors["jira"].webhooks_sent)
    as_eve(vendors, "PUT", f"/issue/{key}", {"fields": {"priority": {"name": "Low"}}})
    assert [o.split(":")[0] for o in deliver(runtime, vendors["jira"], start)] == ["unchanged"]
    assert set(notes(vendors, f"{key} moved to Done").values()) == {2}
    assert set(notes(vendors, f"{key} moved to In Progress").values()) == {2}
    assert len(notes(vendors, f"{key} moved to Done")) == 3
    assert len(crm_notes(vendors, f"{key}</a> moved to")) == 4


def test_crm_note_per_company(vendors: Vendors, runtime: Runtime) -> None:
    """Tickets of three companies: one CRM note for each company."""
    key = three_linked(vendors, runtime, same_company=False)
    start = len(vendors["jira"].webhooks_sent)
    move(vendors, key, "Done")
    deliver(runtime, vendors["jira"], start)
    written = crm_notes(vendors, f"{key}</a> moved to Done")
    assert len(written) == 3
    companies = {
        a["toObjectId"]
        for a in vendors["hubspot"].state()["associations"]
        if a["fromObjectType"] == "notes" and a["fromObjectId"] in {n["id"] for n in written}
    }
    assert len(companies) == 3


def test_comment_with_the_prefix_or_visibility_becomes_a_note(vendors: Vendors, runtime: Runtime) -> None:
    key = three_linked(vendors, runtime)
    start = len(vendors["jira"].webhooks_sent)
    as_eve(vendors, "POST", f"/issue/{key}/comment", {"body": "[support] Fix is in review; ETA Friday."})
    as_eve(vendors, "POST", f"/issue/{key}/comment", {"body": "Stack trace points at the CSV writer."})
    adf = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "\\[support] Written in the Cloud editor."}]}
        ],
    }
    as_eve(vendors, "POST", f"/issue/{key}/comment", {"body": adf}, api=3)
    as_eve(
        vendors,
        "POST",
        f"/issue/{key}/comment",
        {"body": "Workaround: export by month.", "visibility": {"type": "role", "value": "Support"}},
    )
    deliver(runtime, vendors["jira"], start, twice=True)
    eta = notes(vendors, "Fix is in review; ETA Friday.")
    assert len(eta) == 3
    assert set(eta.values()) == {1}
    assert not notes(vendors, "[support]")
    assert not notes(vendors, "CSV writer")
    cloud = notes(vendors, "Written in the Cloud editor.")
    assert len(cloud) == 3
    assert not notes(vendors, "\\[support]")
    assert set(notes(vendors, "Workaround: export by month.").values()) == {1}
    assert len(notes(vendors, "Workaround: export by month.")) == 3


def test_comment_by_the_integration_user_is_an_echo(vendors: Vendors, runtime: Runtime) -> None:
    key = three_linked(vendors, runtime)
    start = len(vendors["jira"].webhooks_sent)
    as_admin(vendors, "POST", f"/issue/{key}/comment", {"body": "[support] written by cxbridge"})
    outcomes = deliver(runtime, vendors["jira"], start)
    assert len(outcomes) == 2, outcomes
    assert all(o.startswith("echo") for o in outcomes)
    assert not notes(vendors, "written by cxbridge")


def test_released_version_gives_fix_shipped_notes(vendors: Vendors, runtime: Runtime) -> None:
    key = three_linked(vendors, runtime)
    project = as_eve(vendors, "GET", "/project/ENG").json()
    version = as_admin(vendors, "POST", "/version", {"name": "2.4.1", "projectId": int(project["id"])}).json()
    as_eve(vendors, "PUT", f"/issue/{key}", {"fields": {"fixVersions": [{"id": version["id"]}]}})
    start = len(vendors["jira"].webhooks_sent)
    as_admin(vendors, "PUT", f"/version/{version['id']}", {"released": True})
    as_admin(vendors, "PUT", f"/version/{version['id']}", {"released": True})  # ignored by Jira: no second event
    events = webhook_events(vendors["jira"], start)
    assert [e.kind for e in events] == ["jira:version_released"]
    assert json.loads(vendors["jira"].webhooks_sent[start]["body"])["version"]["released"] is True
    deliver(runtime, vendors["jira"], start, twice=True)
    shipped = notes(vendors, f"Fix shipped: {key} is in release 2.4.1")
    assert len(shipped) == 3
    assert set(shipped.values()) == {1}
    assert len(crm_notes(vendors, "is in release 2.4.1")) == 1


def test_out_of_order_updates_converge(vendors: Vendors, runtime: Runtime) -> None:
    """The same transitions' webhooks delivered in reverse: the newest state wins, older events are stale."""
    key = three_linked(vendors, runtime)
    start = len(vendors["jira"].webhooks_sent)
    for status in ("In Progress", "Done", "In Progress"):
        move(vendors, key, status)
        time.sleep(0.002)  # Jira's updated has millisecond resolution
    events = [e for e in webhook_events(vendors["jira"], start) if e.kind == "jira:issue_updated"]
    outcomes = [handle_event(runtime, e, system="jira") for e in reversed(events)]
    assert outcomes[0].startswith("synced"), outcomes
    assert all(o.startswith("stale") for o in outcomes[1:]), outcomes
    assert len(notes(vendors, f"{key} moved to In Progress")) == 3
    assert not notes(vendors, f"{key} moved to Done")
    tickets = {t["id"]: t for t in vendors["zendesk"].state()["tickets"]}
    assert all(tickets[t]["status"] != "solved" for t in notes(vendors, f"{key} moved to In Progress"))


POINTS = ["helpdesk.note.sent", "crm.note.sent"]


@pytest.mark.parametrize("point", POINTS)
def test_crash_after_a_write_then_rerun_writes_nothing_twice(vendors: Vendors, runtime: Runtime, point: str) -> None:
    key = three_linked(vendors, runtime)
    start = len(vendors["jira"].webhooks_sent)
    move(vendors, key, "Done")
    event = next(e for e in webhook_events(vendors["jira"], start) if e.kind == "jira:issue_updated")

    def crash(name: str) -> None:
        if name == point:
            raise Crash(name)

    with pytest.raises(Crash):
        SyncBack(runtime, crash_hook=crash).issue_changed("jira", *interpreted(runtime, event), event.id)
    assert handle_event(runtime, event, system="jira").startswith("synced")
    done = notes(vendors, f"{key} moved to Done")
    assert len(done) == 3
    assert set(done.values()) == {1}
    assert len(crm_notes(vendors, f"{key}</a> moved to Done")) == 1


def test_drafted_reply_is_an_internal_note_for_the_agent(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    rt = sandbox_runtime(vendors, extra={"sync": {"status_map": {}, "draft_reply_on": ["done"]}})
    key = three_linked(vendors, rt)
    start = len(vendors["jira"].webhooks_sent)
    move(vendors, key, "Done")
    deliver(rt, vendors["jira"], start)
    drafts = notes(vendors, "Suggested reply (not sent")
    assert len(drafts) == 3
    tickets = {t["id"]: t for t in vendors["zendesk"].state()["tickets"]}
    assert all(not any(c["public"] and "resolved" in c["body"] for c in tickets[t]["comments"]) for t in drafts)
    assert all(tickets[t]["status"] != "solved" for t in drafts)  # no status_map: status untouched
    rt.close()


def test_six_updates_in_any_order_leave_the_same_final_state(
    vendors: Vendors, tmp_path: Path, sandbox_runtime: SandboxRuntimes
) -> None:
    """RELIABILITY D8: six status updates of one issue, delivered in (a sample of) every order: same end state."""
    jira = vendors["jira"]
    sync = {
        "status_map": {"new": "open", "indeterminate": "open", "done": "solved"},
        "crm_notes": False,
        "integration_users": {"jira": jira.integration_user.account_id, "zendesk": "1"},
    }
    setup = sandbox_runtime(vendors, extra={"sync": sync})
    key = Escalation(setup).run(EscalationRequest(ticket_id="1", note="Exports fail.")).issue_key
    links = setup.store.links_for_issue_key(key)
    start = len(jira.webhooks_sent)
    for status in ("In Progress", "Done", "In Progress", "To Do", "In Progress", "Done"):
        move(vendors, key, status)
        time.sleep(0.002)  # Jira's updated has millisecond resolution
    updates = [e for e in webhook_events(jira, start) if e.kind == "jira:issue_updated"]
    assert len(updates) == 6
    orders = list(itertools.permutations(range(6)))
    sample = [orders[0], orders[-1], *random.Random(8).sample(orders[1:-1], 10)]
    zendesk = vendors["zendesk"]
    for n, order in enumerate(sample):
        requests.put(
            f"{zendesk.base_url}/api/v2/tickets/1",
            json={"ticket": {"status": "open"}},
            auth=("alex@cxbridge.example/token", zendesk.credentials()["api_token"]),
            timeout=5,
        ).raise_for_status()
        rt = Runtime(setup.config, setup.plugins, store=open_store(tmp_path / f"order{n}.db"))
        for link in links:
            rt.store.add_link(link)
        for i in order:
            handle_event(rt, updates[i], system="jira")
        issue_ref = links[0].issue
        assert rt.store.get_snapshot("sync", str(issue_ref))["category"] == "done", order
        assert zendesk.state()["tickets"][0]["status"] == "solved", order
        rt.close()
    setup.close()


def test_a_helpdesk_without_a_combined_update_gets_note_then_status_once(
    vendors: Vendors, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generic path (note, then ``set_status``), interrupted right after the status write and rerun."""
    monkeypatch.setattr(ZendeskConnector, "add_note_with_status", None)
    key = three_linked(vendors, runtime)
    start = len(vendors["jira"].webhooks_sent)
    move(vendors, key, "Done")
    event = next(e for e in webhook_events(vendors["jira"], start) if e.kind == "jira:issue_updated")

    def crash(name: str) -> None:
        if name == "helpdesk.status.sent":
            raise Crash(name)

    with pytest.raises(Crash):  # one ticket at a time: the crash comes after the first ticket's status
        SyncBack(runtime, crash_hook=crash, concurrency=1).issue_changed("jira", *interpreted(runtime, event), event.id)
    puts = sum(1 for c in vendors["zendesk"].calls if c.method == "PUT")
    assert handle_event(runtime, event, system="jira").startswith("synced")
    done = notes(vendors, f"{key} moved to Done")
    assert set(done.values()) == {1}
    assert len(done) == 3
    tickets = {t["id"]: t for t in vendors["zendesk"].state()["tickets"]}
    assert {tickets[t]["status"] for t in done} == {"solved"}
    # the rerun wrote the two tickets left (note and status each), nothing for the first one again
    assert sum(1 for c in vendors["zendesk"].calls if c.method == "PUT") - puts == 4


# -- resolution-aware sync back: "done" is not always "fixed" ----------------------------------------------------
FIXED = "Good news: our engineering team has resolved the problem"


def close_as(vendors: Vendors, key: str, resolution: str | None) -> None:
    """Eve moves the issue to Done, naming the resolution in the transition (Jira's resolution screen)."""
    transitions = as_eve(vendors, "GET", f"/issue/{key}/transitions").json()["transitions"]
    chosen = next(t for t in transitions if t["to"]["name"] == "Done")
    body: dict[str, Any] = {"transition": {"id": chosen["id"]}}
    if resolution is not None:
        body["fields"] = {"resolution": {"name": resolution}}
    as_eve(vendors, "POST", f"/issue/{key}/transitions", body)


def escalated(rt: Runtime) -> str:
    return Escalation(rt).run(EscalationRequest(ticket_id="1", note="Exports fail.")).issue_key


def render_reply(category: str, resolution: str | None, fixed: bool) -> str:
    ctx = {
        "issue": {"key": "ENG-1", "category": category, "resolution": resolution, "fixed": fixed, "url": "u"},
        "previous": {},
        "ticket": {},
    }
    return Handoff().render("sync_reply.txt.j2", ctx)


@pytest.mark.parametrize(
    ("resolution", "fixed", "says", "never"),
    [
        ("Done", True, FIXED, "decided not to change"),
        ("Fixed", True, FIXED, "decided not to change"),
        (None, True, FIXED, "decided not to change"),
        ("Won't Do", False, "decided not to change the product for it at this time (Won't Do)", "resolved"),
        ("Won't Fix", False, "decided not to change the product", "resolved"),
        ("Duplicate", False, "already known and tracked elsewhere", "resolved"),
        ("Cannot Reproduce", False, "could not reproduce the problem", "resolved"),
    ],
)
def test_default_reply_wording_per_resolution(resolution: str | None, fixed: bool, says: str, never: str) -> None:
    text = render_reply("done", resolution, fixed)
    assert says in text
    assert never not in text


def test_the_status_note_names_a_resolution_without_a_fix() -> None:
    ctx = {
        "issue": {
            "key": "ENG-1",
            "status": "Done",
            "category": "done",
            "resolution": "Won't Do",
            "fixed": False,
            "url": "u",
        },
        "actor": "Eve",
        "ticket_status": None,
    }
    text = Handoff().render("sync_status.txt.j2", ctx)
    assert "Resolution: Won't Do (closed without a fix" in text
    fixed = Handoff().render(
        "sync_status.txt.j2", {**ctx, "issue": {**ctx["issue"], "resolution": "Done", "fixed": True}}
    )
    assert "Resolution: Done." in fixed
    assert "without a fix" not in fixed


def test_the_webhook_carries_the_resolution(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    rt = sandbox_runtime(vendors, extra={"sync": {"draft_reply_on": ["done"]}})
    key = escalated(rt)
    start = len(vendors["jira"].webhooks_sent)
    close_as(vendors, key, "Duplicate")
    signals = [s for e in webhook_events(vendors["jira"], start) for s in interpreted(rt, e)]
    observed = [s for s in signals if isinstance(s, IssueStateObserved)]
    assert [s.resolution for s in observed] == ["Duplicate"]
    assert rt.tracker().get_issue(key).resolution == "Duplicate"
    rt.close()


@pytest.mark.parametrize(
    ("resolution", "wording"),
    [
        ("Done", FIXED),
        ("Won't Do", "decided not to change the product"),
        ("Duplicate", "already known and tracked elsewhere"),
        ("Cannot Reproduce", "could not reproduce"),
    ],
)
def test_won_t_do_produces_no_resolved_draft_end_to_end(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, resolution: str, wording: str
) -> None:
    rt = sandbox_runtime(vendors, extra={"sync": {"draft_reply_on": ["done"], "status_map": {}}})
    key = escalated(rt)
    start = len(vendors["jira"].webhooks_sent)
    close_as(vendors, key, resolution)
    deliver(rt, vendors["jira"], start, twice=True)
    assert notes(vendors, "Suggested reply (not sent") == {1: 1}
    assert notes(vendors, wording) == {1: 1}
    if resolution != "Done":
        assert notes(vendors, "has resolved the problem") == {}
        assert notes(vendors, f"Resolution: {resolution} (closed without a fix") == {1: 1}
    rt.close()


def test_draft_reply_on_can_name_resolutions(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    """``draft_reply_on = ["Done"]`` (a resolution, not the category ``done``): Won't Do drafts nothing."""
    rt = sandbox_runtime(vendors, extra={"sync": {"draft_reply_on": ["Done", "fixed"], "status_map": {}}})
    won_t = escalated(rt)
    start = len(vendors["jira"].webhooks_sent)
    close_as(vendors, won_t, "Won't Do")
    deliver(rt, vendors["jira"], start)
    assert notes(vendors, f"{won_t} moved to Done") == {1: 1}
    assert notes(vendors, "Suggested reply (not sent") == {}
    start = len(vendors["jira"].webhooks_sent)
    as_eve(vendors, "POST", f"/issue/{won_t}/transitions", {"transition": {"id": _to(vendors, won_t, "In Progress")}})
    close_as(vendors, won_t, "Done")
    deliver(rt, vendors["jira"], start)
    assert notes(vendors, "Suggested reply (not sent") == {1: 1}
    assert notes(vendors, FIXED) == {1: 1}
    rt.close()


def _to(vendors: Vendors, key: str, status: str) -> str:
    transitions = as_eve(vendors, "GET", f"/issue/{key}/transitions").json()["transitions"]
    return str(next(t for t in transitions if t["to"]["name"] == status)["id"])


def test_an_unknown_resolution_is_refused_by_the_emulator(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    rt = sandbox_runtime(vendors)
    key = escalated(rt)
    jira = vendors["jira"]
    creds = jira.credentials()
    response = requests.post(
        f"{jira.base_url}/rest/api/3/issue/{key}/transitions",
        json={"transition": {"id": _to(vendors, key, "Done")}, "fields": {"resolution": {"name": "Nope"}}},
        auth=(creds["engineer_email"], creds["engineer_api_token"]),
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"resolution": "Resolution is not valid."}
    rt.close()


# -- concurrency: N linked tickets written side by side, bounded, within the rate-limit hold ------------------------
def linked(vendors: Vendors, rt: Runtime, count: int) -> str:
    """One issue with ``count`` linked tickets of Ada's (Acme: one company); returns the issue key."""
    first = Escalation(rt).run(EscalationRequest(ticket_id="1", note="Exports fail.")).issue_key
    for n in range(count - 1):
        ticket_id = ada_ticket(vendors, f"Export broken {n}")
        Escalation(rt).run(EscalationRequest(ticket_id=ticket_id, link_key=first, note="Same bug."))
    assert len(rt.store.links_for_issue_key(first)) == count
    return first


def test_sync_back_updates_tickets_side_by_side_at_most_concurrency_at_a_time(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven tickets, ``[sync] concurrency = 3``: three ticket updates are in flight together (the first ones wait
    for each other: one at a time they would not meet), never more; each ticket gets its one update."""
    rt = sandbox_runtime(vendors, extra={"sync": {**SYNC, "concurrency": 3}})
    key = linked(vendors, rt, 7)
    lock, full = threading.Lock(), threading.Event()
    flight = {"now": 0, "peak": 0}
    update = ZendeskConnector.add_note_with_status

    def counted(self: ZendeskConnector, ticket_id: str, body: str, status: str) -> None:
        with lock:
            flight["now"] += 1
            flight["peak"] = max(flight["peak"], flight["now"])
            if flight["now"] == 3:
                full.set()
        full.wait(10)
        try:
            update(self, ticket_id, body, status)
        finally:
            with lock:
                flight["now"] -= 1

    monkeypatch.setattr(ZendeskConnector, "add_note_with_status", counted)
    start = len(vendors["jira"].webhooks_sent)
    move(vendors, key, "Done")
    assert any(o.startswith("synced") for o in deliver(rt, vendors["jira"], start)), "nothing synced"
    assert flight["peak"] == 3
    done = notes(vendors, f"{key} moved to Done")
    assert (len(done), set(done.values())) == (7, {1})
    tickets = {t["id"]: t for t in vendors["zendesk"].state()["tickets"]}
    assert {tickets[t]["status"] for t in done} == {"solved"}
    assert len(crm_notes(vendors, f"{key}</a> moved to Done")) == 1
    rt.close()


def test_a_429_on_one_ticket_update_holds_the_others_until_the_vendors_time(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four tickets updated side by side; Zendesk answers the first update 429 (Retry-After 30 s): that call waits
    and is sent again, and each other update, sent after the 429 came back, first waits out the same hold (the
    client's shared rate-limit hold, as for calls one after the other). One update each in the end."""
    rt = sandbox_runtime(vendors, extra={"sync": {**SYNC, "concurrency": 4}})
    key = linked(vendors, rt, 4)
    http = rt.connector("zendesk").http
    waits: list[float] = []
    monkeypatch.setattr(http, "_sleep", waits.append)  # the waits are recorded, not slept
    noted, first = threading.Event(), threading.Lock()
    note_limit = http._note_rate_limit

    def noting(retry_after: float) -> None:
        note_limit(retry_after)
        noted.set()

    monkeypatch.setattr(http, "_note_rate_limit", noting)
    update = ZendeskConnector.add_note_with_status

    def ordered(self: ZendeskConnector, ticket_id: str, body: str, status: str) -> None:
        if not first.acquire(blocking=False):  # every update but the first goes out once the 429 is known
            assert noted.wait(10)
        update(self, ticket_id, body, status)

    monkeypatch.setattr(ZendeskConnector, "add_note_with_status", ordered)
    vendors["zendesk"].faults.append(Fault(method="PUT", path=r"^/api/v2/tickets/\d+", status=429, retry_after=30))
    start = len(vendors["jira"].webhooks_sent)
    move(vendors, key, "Done")
    assert any(o.startswith("synced") for o in deliver(rt, vendors["jira"], start))
    assert vendors["zendesk"].faults == []
    assert 30.0 in waits  # the limited call's own wait, and (in any order) the three others' holds
    assert len(waits) == 4, waits
    assert all(25 < w <= 30 for w in waits), waits
    done = notes(vendors, f"{key} moved to Done")
    assert (len(done), set(done.values())) == (4, {1})
    rt.close()
