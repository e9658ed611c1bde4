"""Decision rights from the command line: ``cxbridge policy check``, ``cxbridge act`` and ``cxbridge audit``."""

from __future__ import annotations

import json
from typing import Any

import click

from ..connectors import HELPDESK
from ..errors import CxbridgeError
from ..http.counter import tallying_calls
from ..models import Person, Ref
from ..workflows.policy import (
    ACTIONS,
    ActResult,
    Explanation,
    act_on_ticket,
    audit_rows,
    compile_policies,
    explain,
    parse_action,
)
from .context import cli_context, load_runtime


def _ticket_ref(runtime: Any, ticket: str) -> Ref:
    if ticket.count(":") == 2:
        return Ref.parse(ticket)
    return Ref(runtime.role_system("helpdesk", HELPDESK), "ticket", ticket)


@click.group()
def policy() -> None:
    """Decision rights: what front-line agents may decide at once, under which rule."""


@policy.command("check")
@click.option("--ticket", "ticket_id", required=True, metavar="ID", help="The helpdesk ticket the action is for.")
@click.option("--action", required=True, metavar="ACTION", help="priority, credit, skip-triage, reopen, public-reply.")
@click.option("--value", metavar="V", help="The action's value: a priority name, or an amount ('80' or '80 EUR').")
@click.option("--agent", metavar="EMAIL", help="The agent asking (rules read agent.*); default: nobody in particular.")
@click.option("--helpdesk", metavar="NAME", help="The [systems.*] table holding the ticket (or give --ticket NAME:ID).")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.pass_context
def check(
    ctx: click.Context,
    ticket_id: str,
    action: str,
    value: str | None,
    agent: str | None,
    helpdesk: str | None,
    as_json: bool,
) -> None:
    """Explain, rule by rule, whether an agent may take an action on a ticket. Writes nothing.

    Reads the ticket (one helpdesk call, requester and organization sideloaded) and its customer from the CRM
    (on HubSpot 2 to 3 calls: the contact by email, its company, its deals when it has any); the calls made
    are printed at the end.
    """
    request = parse_action(action, value)
    runtime = load_runtime(ctx)
    try:
        ticket, system = ticket_and_helpdesk(runtime, ticket_id, helpdesk)
        with tallying_calls() as tally:
            explanation = explain(runtime, ticket, request, Person(email=agent), helpdesk=system)
        calls = tally.by_system()
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps({**explanation.as_dict(), "calls": calls}, indent=2))
        return
    _print_explanation(explanation)
    click.echo("API calls: " + (", ".join(f"{k} {v}" for k, v in sorted(calls.items())) or "none"))


@policy.command("rules")
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON.")
@click.pass_context
def rules(ctx: click.Context, as_json: bool) -> None:
    """List the configured rules in the order they are tried, with what each grants (no vendor call)."""
    config = cli_context(ctx).config()
    compiled = compile_policies(config.section("policies"), str(config.path or "<config>"))
    listing: list[dict[str, Any]] = [
        {
            "name": r.name,
            "when": r.when,
            "grants": [r.grant.describe(a) for a in ACTIONS if r.grant.grants(a)],
            "description": r.description or None,
        }
        for r in compiled.rules
    ]
    if as_json:
        click.echo(json.dumps({"rules": listing, "agents": compiled.agents}, indent=2))
        return
    if not listing:
        click.echo("no rules are configured: nothing is granted ([[policies.rules]] in the config)")
    for n, r in enumerate(listing, 1):
        click.echo(f"{n}. {r['name']}: when {r['when']}")
        click.echo(f"   grants {', '.join(r['grants'])}")
    click.echo(f"{len(compiled.agents)} agent table(s) in [policies.agents]")


def _print_explanation(explanation: Explanation) -> None:
    decision = explanation.decision
    if not explanation.checks:
        click.echo("no rules are configured ([[policies.rules]] in the config)")
    for n, c in enumerate(explanation.checks, 1):
        condition = c.condition.state + (f" ({c.condition.detail})" if c.condition.detail else "")
        verdict = "GRANTS" if decision.granted and decision.rule == c.rule else ("covers" if c.covers else "no")
        click.echo(f"{n}. {c.rule}: when {c.when}")
        click.echo(f"   condition {condition}; grant: {c.grant} -> {verdict}")
    click.echo(("GRANTED: " if decision.granted else "REFUSED: ") + decision.reason)


def ticket_and_helpdesk(runtime: Any, ticket: str, helpdesk: str | None) -> tuple[str, str | None]:
    """A ticket argument as (id, the ``[systems.*]`` table holding it): ``4211``, ``hubspot:1009`` or
    ``hubspot:ticket:1009``; ``--helpdesk`` names the table for a bare id. Unknown tables are a CxbridgeError."""
    text = ticket.strip()
    named: str | None = None
    if ":" in text:
        parts = text.split(":")
        if len(parts) == 3 and parts[1] == "ticket":
            named, text = parts[0], parts[2]
        elif len(parts) == 2:
            named, text = parts
        else:
            raise CxbridgeError(f"not a ticket: {ticket!r} (an id, SYSTEM:ID or SYSTEM:ticket:ID)")
    if named and helpdesk and named != helpdesk:
        raise CxbridgeError(f"the ticket {ticket!r} names {named!r} but --helpdesk says {helpdesk!r}")
    system = named or helpdesk
    if system is not None and system not in runtime.config.systems:
        known = ", ".join(sorted(runtime.config.systems)) or "none"
        raise CxbridgeError(f"no system {system!r} is configured (known: {known})")
    if not text:
        raise CxbridgeError(f"not a ticket: {ticket!r}")
    return text, system


@click.command()
@click.argument("ticket")
@click.option(
    "--action", required=True, metavar="ACTION", help="credit, priority, reopen, public-reply (skip-triage: escalate)."
)
@click.option("--value", metavar="V", help="The action's value: an amount ('80' or '80 EUR') or a priority name.")
@click.option("--agent", required=True, metavar="EMAIL", help="The agent deciding (rules read agent.*).")
@click.option("--note", metavar="TEXT", help="A line added to the ticket's, the issue's and the CRM's notes.")
@click.option(
    "--reply", metavar="TEXT", help="public-reply: the agent's own words, placed in the public_reply template."
)
@click.option(
    "--helpdesk",
    metavar="NAME",
    help="The [systems.*] table holding the ticket (default: the helpdesk); or write TICKET as NAME:ID.",
)
@click.option(
    "--request-id",
    metavar="ID",
    help="Names this request: running it again with the same id repeats no write (default: a new id).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def act(
    ctx: click.Context,
    ticket: str,
    action: str,
    value: str | None,
    agent: str,
    note: str | None,
    reply: str | None,
    helpdesk: str | None,
    request_id: str | None,
    as_json: bool,
) -> None:
    """Take a decision on a ticket under the policies, carried out at once and recorded.

    TICKET is an id of the helpdesk, or NAME:ID for a ticket of another system (hubspot:1009 while Zendesk is
    the helpdesk). Carried out: reopen moves the linked issue(s) out of done through the workflow's own
    transition; priority sets the linked issue(s)' priority, also after escalation; public-reply posts a public
    reply from the public_reply template with --reply as the agent's words (not on HubSpot tickets: HubSpot has
    no API for it); credit is recorded and handed to plugins (cxbridge has no billing system). Recorded: an
    audit row, an internal note on the ticket, a comment on each issue changed, a note on the CRM timeline.
    Refused (beyond every grant): exits non-zero naming the rule that would allow it and who holds it, and the
    refusal is audited. Nothing is queued for a manager.
    """
    request = parse_action(action, value)
    runtime = load_runtime(ctx)
    try:
        ticket_id, system = ticket_and_helpdesk(runtime, ticket, helpdesk)
        result: ActResult = act_on_ticket(
            runtime,
            ticket_id,
            request,
            Person(email=agent),
            note=note,
            request_id=request_id,
            helpdesk=system,
            reply=reply,
        )
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(result.outcome)
    click.echo("writes: " + ", ".join(f"{k} {v}" for k, v in result.writes.items()))
    click.echo(f"request id: {result.request_id} (pass --request-id to retry it without repeating a write)")
    click.echo("API calls: " + ", ".join(f"{k} {v}" for k, v in sorted(result.calls.items())))


@click.command()
@click.option("--ticket", "ticket_id", metavar="ID", help="Only rows about this ticket (an id or system:ticket:id).")
@click.option("--issue", "issue_key", metavar="KEY", help="Only rows about this issue (a key like ENG-1).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.pass_context
def audit(ctx: click.Context, ticket_id: str | None, issue_key: str | None, as_json: bool) -> None:
    """The audit trail: who did or decided what, under which rule, with what result (reads only the store)."""
    if ticket_id and issue_key:
        raise CxbridgeError("give --ticket or --issue, not both")
    runtime = load_runtime(ctx)
    try:
        ticket = _ticket_ref(runtime, ticket_id) if ticket_id else None
        rows = list(audit_rows(runtime.store.audit_entries(ticket=ticket, issue_key=issue_key)))
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no audit rows" + (f" for {ticket_id or issue_key}" if ticket_id or issue_key else ""))
        return
    headers = ("when", "actor", "action", "result", "rule", "ticket", "issue", "what")
    table = [
        (
            r["at"].replace("+00:00", "Z"),
            r["actor"],
            r["action"],
            r["result"],
            r["policy"] or "-",
            r["ticket"] or "-",
            r["issue_key"] or "-",
            _what(r["details"]),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(str(row[i])) for row in table)) for i, h in enumerate(headers[:-1])]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)) + "  " + headers[-1])
    for row in table:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[-1])


def _what(details: dict[str, Any]) -> str:
    """A short summary of an audit row's details for the table."""
    if "summary" in details:
        text = str(details["summary"])
        if details.get("granted") is False:
            text += f" (would allow: {details.get('would_allow') or 'no rule'})"
        return text
    if "priority" in details:
        return f"priority {details['priority']}"
    return ""
