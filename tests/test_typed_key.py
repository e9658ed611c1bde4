"""An agent who types an issue key and the tag into a ticket joins that issue and still gets the escalation note."""

from __future__ import annotations

from typing import Any

import pytest

from cxbridge.runtime import Runtime
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows.escalate import Escalation, EscalationRequest

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


class Crash(Exception):
    pass


@pytest.fixture
def runtime(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> Runtime:
    return sandbox_runtime(vendors)


def notes(vendors: Vendors, ticket_id: int) -> list[str]:
    ticket = next(t for t in vendors["zendesk"].state()["tickets"] if t["id"] == ticket_id)
    return [c["body"] for c in ticket["comments"] if not c["public"] and "Escalated to engineering" in c["body"]]


def type_key_and_tag(vendors: Vendors, runtime: Runtime, ticket_id: int, key: str) -> None:
    """The agent's own update (through the emulator's model, as the Zendesk UI would)."""
    model: Any = vendors["zendesk"].model  # type: ignore[attr-defined]
    field_id = runtime.config.system("zendesk").get("issue_key_field_id")
    ticket = model.tickets[ticket_id]
    ticket.tags = [*ticket.tags, runtime.config.section("escalation")["tag"]]
    ticket.custom_fields[field_id] = key


def test_a_typed_key_joins_and_the_note_is_written_once(vendors: Vendors, runtime: Runtime) -> None:
    key = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    type_key_and_tag(vendors, runtime, 2, key)
    joined = Escalation(runtime).run(EscalationRequest(ticket_id="2"))
    assert joined.issue_key == key
    assert joined.created is False
    assert joined.writes["ticket_note"] == "written"
    assert len(notes(vendors, 2)) == 1
    assert Escalation(runtime).run(EscalationRequest(ticket_id="2")).writes["ticket_note"] == "unchanged"
    assert len(notes(vendors, 2)) == 1


@pytest.mark.parametrize("point", ["ticket.sent", "ticket"])
def test_a_crash_after_the_ticket_write_leaves_one_note(vendors: Vendors, runtime: Runtime, point: str) -> None:
    """Before the write is confirmed (``ticket.sent``) the rerun trusts the tag and key it finds; after, the intent."""
    key = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced.")).issue_key
    type_key_and_tag(vendors, runtime, 2, key)

    def crash(name: str) -> None:
        if name == point:
            raise Crash(name)

    with pytest.raises(Crash):
        Escalation(runtime, crash_hook=crash).run(EscalationRequest(ticket_id="2"))
    assert len(notes(vendors, 2)) == 1
    assert Escalation(runtime).run(EscalationRequest(ticket_id="2")).writes["ticket_note"] == "unchanged"
    assert len(notes(vendors, 2)) == 1
