"""``[escalation.fields]`` and the create screen: a project whose Bug type requires ``components`` and a custom
select field gets them filled from the mapping; without it the escalation is refused before any write with one
line naming the fields, and ``doctor`` says the same."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from cxbridge.cli import cli
from cxbridge.errors import ConfigError
from cxbridge.models import Customer, Person, Ref, Ticket
from cxbridge.sandbox.modes import Vendors
from cxbridge.testing import SandboxRuntimes
from cxbridge.workflows import fieldmap
from cxbridge.workflows.escalate import CreateRefused, Escalation, EscalationRequest
from cxbridge.workflows.once import op_id

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SEVERITY = "customfield_10107"  # the sandbox's "Customer severity" single select (Sev 1, Sev 2, Sev 3)
MAPPING: dict[str, Any] = {
    "components": {"value": ["Exports"]},
    SEVERITY: {"from": "customer.tier", "map": {"strategic": "Sev 1", "enterprise": "Sev 2"}, "default": "Sev 3"},
    "assignee": {"value": "eve@cxbridge.example"},
    "labels": {"from": "ticket.tags"},
}


def require(vendors: Vendors, *field_ids: str) -> None:
    """The Jira admin makes fields required on ENG's Bug create screen (a field configuration)."""
    model: Any = vendors["jira"].model  # type: ignore[attr-defined]
    for fid in field_ids:
        model.require_field("ENG", fid)


def writes(vendors: Vendors) -> list[str]:
    """Every call that changes something (searches and batch reads are POSTs that read)."""
    return [
        f"{c.method} {c.path}"
        for name in vendors
        for c in vendors[name].calls
        if c.method != "GET" and "search" not in c.path and "batch/read" not in c.path
    ]


def test_without_the_mapping_the_create_is_refused_before_any_write(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    runtime = sandbox_runtime(vendors)
    require(vendors, "components", SEVERITY)
    with pytest.raises(CreateRefused) as refused:
        Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced."))
    message = str(refused.value)
    assert "\n" not in message
    assert "Component/s (components) is required and not filled" in message
    assert "Customer severity (customfield_10107) is required and not filled" in message
    assert writes(vendors) == []
    assert runtime.store.all_links() == []
    assert runtime.store.get_intent(op_id("zendesk:ticket:1", "tracker.create")) is None
    # a dry run says the same
    with pytest.raises(CreateRefused):
        Escalation(runtime).run(EscalationRequest(ticket_id="1"), dry_run=True)


def test_the_mapping_fills_the_required_fields(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    runtime = sandbox_runtime(vendors, extra={"escalation": {"fields": MAPPING}})
    require(vendors, "components", SEVERITY)
    result = Escalation(runtime).run(EscalationRequest(ticket_id="1", note="Reproduced."))
    issue = next(i for i in vendors["jira"].state()["issues"] if i["key"] == result.issue_key)
    fields = issue["fields"]
    assert [c["name"] for c in fields["components"]] == ["Exports"]
    assert fields[SEVERITY]["value"] == "Sev 1"  # Acme is strategic
    eve = next(u for u in vendors["jira"].state()["users"] if u["emailAddress"] == "eve@cxbridge.example")
    assert fields["assignee"]["accountId"] == eve["accountId"]
    assert {"csv", "export", "cxbridge"} <= set(fields["labels"])  # the ticket's tags joined cxbridge's labels
    # Globex (enterprise) gets Sev 2; the create screen is read once per process
    before = [c.path for c in vendors["jira"].calls]
    second = Escalation(runtime).run(EscalationRequest(ticket_id="2", note="Big reports."))
    issue2 = next(i for i in vendors["jira"].state()["issues"] if i["key"] == second.issue_key)
    assert issue2["fields"][SEVERITY]["value"] == "Sev 2"
    assert not any("createmeta" in p for p in [c.path for c in vendors["jira"].calls][len(before) :])


def test_a_value_jira_would_refuse_is_named_before_any_write(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes
) -> None:
    mapping = {"components": {"value": "Billing"}, "assignee": {"value": "nobody@cxbridge.example"}}
    runtime = sandbox_runtime(vendors, extra={"escalation": {"fields": mapping}})
    with pytest.raises(CreateRefused) as refused:
        Escalation(runtime).run(EscalationRequest(ticket_id="1", note="n"))
    assert "Component/s (components): 'Billing' is not allowed (allowed: Backend, Frontend, Exports)" in str(
        refused.value
    )
    assert "no jira user has the email 'nobody@cxbridge.example'" in str(refused.value)
    assert writes(vendors) == []


def test_doctor_names_the_unfilled_required_fields(vendors: Vendors, sandbox_runtime: SandboxRuntimes) -> None:
    require(vendors, "components", SEVERITY)
    bare = sandbox_runtime.config(vendors)
    out = CliRunner().invoke(cli, ["--config", str(bare), "doctor"])
    assert out.exit_code == 1, out.output
    for name in ("Component/s (components)", "Customer severity (customfield_10107)"):
        assert f"✗ jira required field {name} of ENG Bug:" in out.output, out.output
    assert "map it in [escalation.fields]" in out.output
    mapped = sandbox_runtime.config(vendors, extra={"escalation": {"fields": MAPPING}})
    out = CliRunner().invoke(cli, ["--config", str(mapped), "doctor"])
    assert "✗ jira required field" not in out.output, out.output
    assert "✓ jira create screen of ENG Bug: every required field is filled, every field set is on it" in out.output


def ticket(**custom: Any) -> Ticket:
    return Ticket(
        ref=Ref("zendesk", "ticket", "1"),
        url="u",
        subject="Exports fail",
        priority="urgent",
        tags=["csv"],
        custom_fields=custom,
        requester=Person(email="ada@acme.example"),
    )


def test_resolve_sources_lookup_and_default() -> None:
    acme = Customer(company_ref=Ref("hubspot", "company", "1"), contact_ref=None, tier="Strategic", arr=None)
    rules = {
        "a": {"from": "customer.tier", "map": {"strategic": "Gold"}},
        "b": {"from": "ticket.custom.360001", "default": "none"},
        "c": {"from": "ticket.priority", "map": {"high": "P2"}, "default": "P3"},
        "d": {"from": "ticket.tags"},
        "e": {"from": "agent.email"},
        "f": {"value": 5},
    }
    assert fieldmap.resolve(rules, ticket(), acme, Person(email="sam@x.example")) == {
        "a": "Gold",
        "b": "none",
        "c": "P3",
        "d": ["csv"],
        "e": "sam@x.example",
        "f": 5,
    }
    assert fieldmap.resolve({"a": {"from": "customer.tier"}}, ticket(), Customer.unknown()) == {}
    with pytest.raises(ConfigError, match=r"unknown source 'ticket\.nope'"):
        fieldmap.resolve({"x": {"from": "ticket.nope"}}, ticket(), acme)
    with pytest.raises(ConfigError, match="exactly one of 'value' and 'from'"):
        fieldmap.resolve({"x": {"value": 1, "from": "ticket.subject"}}, ticket(), acme)


def test_the_create_screen_is_read_page_by_page(
    vendors: Vendors, sandbox_runtime: SandboxRuntimes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pages of 5 fields, every page of createmeta is read (``startAt`` moves on) and a late field is found."""
    import cxbridge_jira.connector as jira_connector

    monkeypatch.setattr(jira_connector, "META_PAGE", 5)
    runtime = sandbox_runtime(vendors)
    require(vendors, SEVERITY)  # a custom field: listed after the system fields
    start = len(vendors["jira"].calls)
    missing = runtime.tracker().unfilled_required_fields("ENG", "Bug", ["components"])  # type: ignore[attr-defined]
    assert missing == ["Customer severity (customfield_10107)"]
    pages = [c.path for c in vendors["jira"].calls[start:] if "/issuetypes/" in c.path]
    assert len(pages) > 2
    assert "startAt=5" in pages[1]
