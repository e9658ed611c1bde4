"""Escalation end to end on the in-process sandbox: exactly once, whatever fails or crashes where."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from cxbridge.errors import AuthError, NotFound, TemplateError, VendorError
from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows.escalate import Escalation, EscalationPending, EscalationRequest

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


class Crash(Exception):
    """Stands for the process dying at a recovery point."""


@pytest.fixture
def sandbox_runtime(sandbox_runtimes: SandboxRuntimes, store_location: str) -> SandboxRuntimes:
    """Every test here runs on both stores: a SQLite file, then a PostgreSQL schema (conftest's store_location)."""
    sandbox_runtimes.store = store_location
    return sandbox_runtimes


@pytest.fixture
def runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime(vendors)


def effects(vendors: Vendors) -> dict[str, int]:
    """The effects an escalation leaves, counted in the emulators' own state."""
    jira = vendors["jira"].state()
    zendesk = vendors["zendesk"].state()
    hubspot = vendors["hubspot"].state()
    return {
        "issues": len(jira["issues"]),
        "remote_links": sum(len(i["remoteLinks"]) for i in jira["issues"]),
        "zendesk_notes": sum(
            1
            for t in zendesk["tickets"]
            for c in t["comments"]
            if not c["public"] and "Escalated to engineering" in c["body"]
        ),
        "hubspot_notes": len(hubspot["objects"]["notes"]),
    }


ONE_OF_EACH = {"issues": 1, "remote_links": 1, "zendesk_notes": 1, "hubspot_notes": 1}


def test_new_escalation_carries_the_customer_and_writes_each_effect_once(vendors: Vendors, runtime: Runtime) -> None:
    """A new escalation creates the issue with the customer's context, links it, notes the ticket and the CRM."""
    result = Escalation(runtime).run(EscalationRequest(ticket_id="1"))
    assert result.created
    assert effects(vendors) == ONE_OF_EACH
    issue = vendors["jira"].state()["issues"][0]
    assert issue["key"] == result.issue_key
    description = issue["fields"]["description"]
    for expected in (
        "Acme Corp",
        "strategic",
        "480,000",
        "Acme expansion 2027",
        "Ada Lovelace",
        "Exports to CSV fail",
        "Reproduced",
    ):
        assert expected in description
    assert issue["fields"]["priority"]["name"] == "Highest"
    ticket = vendors["zendesk"].state()["tickets"][0]
    assert "escalated_to_engineering" in ticket["tags"]
    assert result.issue_key in ticket["custom_fields"].values()
    assert [str(link.ticket) for link in runtime.store.links_for_issue_key(result.issue_key)] == ["zendesk:ticket:1"]
    assert runtime.store.audit_entries(issue_key=result.issue_key)


def test_call_budget_for_new_and_joined_escalations(vendors: Vendors, runtime: Runtime) -> None:
    """With the agent's note: at most 9 calls for a new escalation with deals, at most 9 to join one. The first
    create of a process also reads the account owner (HubSpot, once per owner) and the create screen (Jira's
    createmeta, 2 calls once per project and issue type); a second create does not."""
    first = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced; export by month."))
    assert first.calls == {"zendesk": 2, "hubspot": 5, "jira": 4}
    third = Escalation(runtime).run(EscalationRequest(ticket_id="3", note="Another bug."))
    assert sum(third.calls.values()) <= 8, third.calls
    assert third.calls == {"zendesk": 2, "hubspot": 3, "jira": 2}  # Initech: no deals, no owner
    second = Escalation(runtime).run(EscalationRequest(ticket_id="2", link_key=first.issue_key, note="Same bug."))
    assert sum(second.calls.values()) <= 9, second.calls
    assert second.calls == {"zendesk": 2, "hubspot": 4, "jira": 3}  # read the issue, impact edit, remote link
    assert effects(vendors)["remote_links"] == 3  # ticket 1 and 2 on the first issue, ticket 3 on its own


def test_escalations_running_at_once_each_count_their_own_calls(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two escalations in two threads (as two workers run them), held together in the middle of their run: each
    result counts the calls it made, its helper threads' among them, and none of the other's, so together they
    count every call the process made, once (before, each counted every call of the process while it ran)."""
    import threading

    together = threading.Barrier(2, timeout=60)
    render_all = runtime.handoff.render_all

    def meet_then_render(*args: Any, **kwargs: Any) -> Any:
        together.wait()  # both have read their ticket and customer; both write after this
        return render_all(*args, **kwargs)

    monkeypatch.setattr(runtime.handoff, "render_all", meet_then_render)
    before = runtime.calls()
    results: dict[str, Any] = {}

    def escalate(ticket_id: str) -> None:
        results[ticket_id] = Escalation(runtime).run(EscalationRequest(ticket_id=ticket_id, note="At once."))

    threads = [threading.Thread(target=escalate, args=(t,)) for t in ("1", "3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    made = runtime.calls_since(before)
    first, third = results["1"].calls, results["3"].calls
    assert {s: first.get(s, 0) + third.get(s, 0) for s in made} == made
    assert first["zendesk"] == third["zendesk"] == 2  # the ticket read and the note on it, each its own


def test_without_a_note_the_history_costs_one_more_call(runtime: Runtime) -> None:
    """The latest internal note stands in for the agent's summary; reading it is the ninth call."""
    result = Escalation(runtime).run(EscalationRequest(ticket_id="1"))
    assert result.calls == {"zendesk": 3, "hubspot": 5, "jira": 4}
    assert "internal note" in result.handoff["issue_description"]


def test_running_twice_leaves_one_of_each(vendors: Vendors, runtime: Runtime) -> None:
    first = Escalation(runtime).run(EscalationRequest(ticket_id="1"))
    again = Escalation(runtime).run(EscalationRequest(ticket_id="1"))
    assert again.issue_key == first.issue_key
    assert not again.created
    assert set(again.writes.values()) <= {"linked", "unchanged"}
    assert effects(vendors) == ONE_OF_EACH


POINTS = [
    "before_create",
    "created",
    "issue",
    "link",
    "tracker.remotelink.sent",
    "remote_link",
    "ticket",
    "crm.note.sent",
    "crm",
]


@pytest.mark.parametrize("point", POINTS)
def test_crash_at_each_recovery_point_then_rerun_leaves_one_of_each(
    vendors: Vendors, runtime: Runtime, point: str
) -> None:
    """Interrupted at any recovery point and run again: exactly one issue, link, ticket note and CRM note."""

    def crash(name: str) -> None:
        if name == point:
            raise Crash(name)

    with pytest.raises(Crash):
        Escalation(runtime, crash_hook=crash).run(EscalationRequest(ticket_id="1"))
    if point == "before_create":
        # Marked as sending, then died: whether Jira got the create is unknowable, so cxbridge searches by
        # label and does not create again before the grace period has passed.
        with pytest.raises(EscalationPending):
            Escalation(runtime).run(EscalationRequest(ticket_id="1"))
        assert effects(vendors)["issues"] == 0
        Escalation(runtime, clock=lambda: time.time() + 301).run(EscalationRequest(ticket_id="1"))
    else:
        Escalation(runtime).run(EscalationRequest(ticket_id="1"))
    assert effects(vendors) == ONE_OF_EACH
    Escalation(runtime).run(EscalationRequest(ticket_id="1"))
    assert effects(vendors) == ONE_OF_EACH


def test_a_create_stores_its_outcome_and_the_ticket_link_in_one_commit(vendors: Vendors, runtime: Runtime) -> None:
    """Crashed after Jira created the issue, before its outcome was stored: neither the intent's result nor the link
    is kept, and the rerun finds the issue by its label (no second create). Crashed right after that commit: the
    link is stored with the create's outcome; the rerun creates nothing more and audits the create once."""
    store = runtime.store

    def crash_at(point: str) -> Any:
        def crash(name: str) -> None:
            if name == point:
                raise Crash(name)

        return crash

    with pytest.raises(Crash):
        Escalation(runtime, crash_hook=crash_at("created")).run(EscalationRequest(ticket_id="1"))
    assert effects(vendors)["issues"] == 1
    ticket = runtime.helpdesk().ticket_ref("1")
    assert store.links_for_ticket(ticket) == []
    with pytest.raises(Crash):
        Escalation(runtime, crash_hook=crash_at("issue")).run(EscalationRequest(ticket_id="1"))
    [link] = store.links_for_ticket(ticket)
    assert link.issue_key == vendors["jira"].state()["issues"][0]["key"]
    result = Escalation(runtime).run(EscalationRequest(ticket_id="1"))
    assert result.created
    assert result.issue_key == link.issue_key
    assert effects(vendors) == ONE_OF_EACH
    assert len(store.links_for_ticket(ticket)) == 1
    assert [e.action for e in store.audit_entries(ticket=ticket) if e.action.startswith("escalate.")] == [
        "escalate.create"
    ]


def test_lost_create_response_does_not_create_a_second_issue(vendors: Vendors, runtime: Runtime) -> None:
    """Jira creates the issue but the answer is lost (read timeout): the label finds it; no second create."""
    jira = vendors["jira"]
    original = jira.handle
    lost = {"count": 0}

    def handle_then_lose(request: Any) -> Any:
        response = original(request)
        if request.method == "POST" and request.path.endswith("/issue") and not lost["count"]:
            lost["count"] += 1
            raise requests.exceptions.ReadTimeout("read timed out")
        return response

    jira.handle = handle_then_lose  # type: ignore[method-assign]
    result = Escalation(runtime).run(EscalationRequest(ticket_id="1"))
    assert lost["count"] == 1
    assert result.created
    assert effects(vendors) == ONE_OF_EACH


def test_unconfirmed_create_that_search_cannot_see_waits_for_the_grace_period(
    vendors: Vendors, runtime: Runtime
) -> None:
    """If search does not show the issue yet, cxbridge refuses to create again before the grace period."""
    jira = vendors["jira"]
    original = jira.handle

    def lose_and_hide(request: Any) -> Any:
        if request.method == "POST" and request.path.endswith("/issue"):
            original(request)
            raise requests.exceptions.ReadTimeout("read timed out")
        if "search" in request.path:
            return jira.json({"issues": [], "isLast": True})
        return original(request)

    jira.handle = lose_and_hide  # type: ignore[method-assign]
    with pytest.raises(VendorError):
        Escalation(runtime).run(EscalationRequest(ticket_id="1"))
    with pytest.raises(EscalationPending, match="not creating a second issue"):
        Escalation(runtime).run(EscalationRequest(ticket_id="1"))
    jira.handle = original  # type: ignore[method-assign]
    result = Escalation(runtime).run(EscalationRequest(ticket_id="1"))
    assert not result.created or result.issue_key == "ENG-1"
    assert effects(vendors)["issues"] == 1


def test_template_error_stops_before_any_write(
    vendors: Vendors, tmp_path: Path, sandbox_runtime: SandboxRuntimes
) -> None:
    templates = tmp_path / "tpl"
    templates.mkdir()
    (templates / "jira_description.md.j2").write_text("ok\n{{ customer.no_such_field }}\n")
    rt = sandbox_runtime(vendors, extra={"cxbridge": {"store": "cxbridge.db", "template_dirs": [str(templates)]}})
    with pytest.raises(TemplateError, match=r"jira_description\.md\.j2, line 2"):
        Escalation(rt).run(EscalationRequest(ticket_id="1"))
    rt.close()
    assert effects(vendors) == {"issues": 0, "remote_links": 0, "zendesk_notes": 0, "hubspot_notes": 0}
    writes = [
        c
        for name in vendors
        for c in vendors[name].calls
        if c.method != "GET" and "search" not in c.path and "batch/read" not in c.path
    ]
    assert writes == []


def test_missing_ticket_is_one_clear_error(vendors: Vendors, runtime: Runtime) -> None:
    with pytest.raises(NotFound) as err:
        Escalation(runtime).run(EscalationRequest(ticket_id="999"))
    assert str(err.value).startswith("zendesk: 404")
    assert effects(vendors)["issues"] == 0


def test_jira_400_names_the_system_and_the_vendor_message(vendors: Vendors, runtime: Runtime) -> None:
    """An unknown project is reported with Jira's own words (its create screen cannot be read), before any write."""
    with pytest.raises(VendorError) as err:
        Escalation(runtime).run(EscalationRequest(ticket_id="1", project="NOPE"))
    assert str(err.value) == "jira: 404 Not Found: No project could be found with key 'NOPE'."
    assert effects(vendors) == {"issues": 0, "remote_links": 0, "zendesk_notes": 0, "hubspot_notes": 0}


def test_bad_credentials_are_reported_by_system(
    vendors: Vendors, tmp_path: Path, sandbox_runtime: SandboxRuntimes
) -> None:
    rt = sandbox_runtime(vendors)
    (tmp_path / "hubspot.access_token.secret").write_text("wrong-token")
    rt2 = sandbox_runtime.load(tmp_path / "cxbridge.toml", plugins=rt.plugins)
    with pytest.raises(AuthError) as err:
        Escalation(rt2).run(EscalationRequest(ticket_id="1"))
    assert str(err.value).startswith("hubspot: 401")
    assert "wrong-token" not in str(err.value)
    assert effects(vendors)["issues"] == 0
    rt.close()
    rt2.close()


def test_customer_unknown_to_the_crm_is_said_in_the_handoff(vendors: Vendors, runtime: Runtime) -> None:
    session_ticket = vendors["zendesk"]
    # a ticket from someone HubSpot does not know
    with session_ticket.lock:
        ticket = next(iter(session_ticket.model.tickets.values()))
        stranger = next(u for u in session_ticket.model.users.values() if u.email == "linus@initech.example")
        stranger.email = "nobody@unknown.example"
        stranger.organization_id = None  # and in no organization: nothing names the company
        for t in session_ticket.model.tickets.values():
            if t.requester_id == stranger.id:
                t.organization_id = None
    result = Escalation(runtime).run(EscalationRequest(ticket_id=str(ticket.id) if ticket.id != 1 else "3"))
    assert "unknown to the CRM" in result.handoff["issue_description"]
    assert result.writes["crm_note"].startswith("skipped")


def test_dry_run_writes_nothing_and_plans_the_calls(vendors: Vendors, runtime: Runtime) -> None:
    result = Escalation(runtime).run(EscalationRequest(ticket_id="1"), dry_run=True)
    assert result.dry_run
    assert any("create an issue" in line for line in result.planned)
    assert effects(vendors) == {"issues": 0, "remote_links": 0, "zendesk_notes": 0, "hubspot_notes": 0}
    assert runtime.store.all_links() == []


def test_notes_name_the_real_issue_and_a_join_reuses_the_renders_made_before_the_writes(
    vendors: Vendors, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create renders the ticket and CRM notes again with the issue it created (never the provisional key); a join
    of the issue the agent named had that very issue in its context before the writes, so the notes written are
    those renders, not rendered a second time."""
    handoff = runtime.handoff
    rendered: list[str] = []
    real_render = handoff.render

    def render(name: str, context: Any) -> str:
        rendered.append(name)
        return real_render(name, context)

    monkeypatch.setattr(handoff, "render", render)
    first = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced."))
    assert first.created
    assert rendered.count("helpdesk_note") == 2  # before the writes (provisional key), then with the created key
    assert "-?" not in first.handoff["issue_summary"]

    rendered.clear()
    second = Escalation(runtime).run(EscalationRequest(ticket_id="2", link_key=first.issue_key, note="Same bug."))
    assert not second.created
    assert rendered.count("helpdesk_note") == 1
    assert rendered.count("crm_note") == 1
    zendesk = {str(t["id"]): t for t in vendors["zendesk"].state()["tickets"]}
    for ticket_id, key in (("1", first.issue_key), ("2", first.issue_key)):
        notes = [c["body"] for c in zendesk[ticket_id]["comments"] if not c["public"] and "Escalated" in c["body"]]
        assert len(notes) == 1
        assert notes[0].startswith(f"Escalated to engineering: {key} ")
    assert second.handoff["helpdesk_note"].startswith(f"Escalated to engineering: {first.issue_key} ")
    bodies = [str(n) for n in vendors["hubspot"].state()["objects"]["notes"]]
    assert sum(f">{first.issue_key}</a>" in b for b in bodies) == 2
    assert not any("-?" in b for b in bodies)
