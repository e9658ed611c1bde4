"""Escalation from the command line: ``escalate`` a ticket, show its ``links``, ``unlink`` it from an issue."""

from __future__ import annotations

import json

import click

from ..connectors import HELPDESK
from ..errors import CxbridgeError, EffectInFlight
from ..models import Person, Ref, to_jsonable
from ..workflows import impact as rollup
from ..workflows import imports
from ..workflows.escalate import Escalation, EscalationRequest
from ..workflows.policy import parse_action
from .context import load_runtime


@click.command()
@click.argument("ticket")
@click.option("--link", "link_key", metavar="ISSUE_KEY", help="Join this existing issue instead of creating one.")
@click.option("--project", metavar="KEY", help="Create the issue in this project (default: the tracker's).")
@click.option("--summary", metavar="TEXT", help="The issue's summary (default: the ticket's subject).")
@click.option("--note", metavar="TEXT", help="Support's summary for engineering (default: the latest internal note).")
@click.option("--agent", metavar="EMAIL", help="Who escalates (recorded in the audit and the handoff).")
@click.option(
    "--action",
    "actions",
    multiple=True,
    metavar="NAME[=VALUE]",
    help="A decision the agent takes under the policies: priority=High, credit=80, skip-triage (repeatable).",
)
@click.option("--priority", metavar="NAME", help="Shorthand for --action priority=NAME (checked against the policies).")
@click.option("--skip-triage", is_flag=True, help="Shorthand for --action skip-triage (checked against the policies).")
@click.option("--dry-run", is_flag=True, help="Print the rendered handoff and the planned calls; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def escalate(
    ctx: click.Context,
    ticket: str,
    link_key: str | None,
    project: str | None,
    summary: str | None,
    note: str | None,
    agent: str | None,
    actions: tuple[str, ...],
    priority: str | None,
    skip_triage: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Escalate a helpdesk ticket to the tracker, with its customer's context, exactly once.

    Run it again, or after a crash, and it completes what is missing without a second issue or note.
    """
    wanted = [parse_action(a) for a in actions]
    if priority:
        wanted.append(parse_action("priority", priority))
    if skip_triage:
        wanted.append(parse_action("skip_triage"))
    runtime = load_runtime(ctx)
    try:
        request = EscalationRequest(
            ticket_id=ticket,
            link_key=link_key,
            project=project,
            summary=summary,
            note=note,
            agent=Person(email=agent) if agent else None,
            actions=wanted,
        )
        result = Escalation(runtime).run(request, dry_run=dry_run)
    except EffectInFlight:
        # another run (a worker, a second command) holds this escalation's write: it finishes it, nothing is wrong
        if as_json:
            click.echo(json.dumps({"ticket": ticket, "outcome": "already being escalated"}, indent=2))
        else:
            click.echo(f"ticket {ticket} is already being escalated by another run; nothing was written here")
        return
    finally:
        runtime.close()
    if as_json:
        data = result.as_dict()
        if dry_run:
            data["handoff"] = result.handoff
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if dry_run:
        for name, text in result.handoff.items():
            click.echo(f"--- {name} ---")
            click.echo(text.rstrip())
        click.echo("--- calls it would make ---")
        for line in result.planned:
            click.echo(f"  {line}")
        return
    verb = "created" if result.created else "linked to"
    click.echo(f"{result.ticket} {verb} {result.issue_key} {result.issue_url}")
    click.echo("writes: " + ", ".join(f"{k} {v}" for k, v in result.writes.items()))
    click.echo("API calls: " + ", ".join(f"{k} {v}" for k, v in sorted(result.calls.items())))


@click.command()
@click.argument("ticket_or_issue")
@click.option("--json", "as_json", is_flag=True, help="Print the links as JSON.")
@click.pass_context
def links(ctx: click.Context, ticket_or_issue: str, as_json: bool) -> None:
    """Show what is linked to a ticket (an id, or system:ticket:id) or an issue (a key like ENG-1)."""
    runtime = load_runtime(ctx)
    try:
        store = runtime.store
        found = []
        if ticket_or_issue.count(":") == 2:
            ref = Ref.parse(ticket_or_issue)
            found = store.links_for_ticket(ref) if ref.kind == "ticket" else store.links_for_issue(ref)
        else:
            found = store.links_for_issue_key(ticket_or_issue)
            if not found:
                helpdesk = runtime.role_system("helpdesk", HELPDESK)
                found = store.links_for_ticket(Ref(helpdesk, "ticket", ticket_or_issue))
        names = {str(link.customer): rollup.company_name(runtime, link.customer) for link in found if link.customer}
    finally:
        runtime.close()
    if as_json:
        rows = to_jsonable(found)
        for row, link in zip(rows, found, strict=True):
            row["customer_name"] = names.get(str(link.customer)) if link.customer else None
        click.echo(json.dumps(rows, indent=2))
        return
    if not found:
        raise CxbridgeError(f"nothing is linked to {ticket_or_issue}")
    for link in found:
        who = f" by {link.linked_by}" if link.linked_by else ""
        name = names.get(str(link.customer)) if link.customer else None
        customer = (
            f" customer {name} ({link.customer})" if name else f" customer {link.customer}" if link.customer else ""
        )
        click.echo(f"{link.ticket} -> {link.issue_key} ({link.issue}){customer}{who}")


@click.command()
@click.argument("ticket")
@click.argument("issue_key")
@click.option("--agent", metavar="EMAIL", help="Who unlinks (recorded in the audit).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def unlink(ctx: click.Context, ticket: str, issue_key: str, agent: str | None, as_json: bool) -> None:
    """Take a ticket (an id, or system:ticket:id) off an issue: the remote link, the link, the impact, audited."""
    runtime = load_runtime(ctx)
    try:
        if ticket.count(":") == 2:
            ref = Ref.parse(ticket)
        else:
            ref = Ref(runtime.role_system("helpdesk", HELPDESK), "ticket", ticket)
        result = rollup.unlink(runtime, ref, issue_key, actor=agent or "cli")
    finally:
        runtime.close()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ticket": str(result.ticket),
                    "issue_key": result.issue_key,
                    "remote_link": result.remote_link,
                    "impact": result.impact,
                    "calls": result.calls,
                },
                indent=2,
            )
        )
        return
    click.echo(
        f"{result.ticket} unlinked from {result.issue_key}: remote link {result.remote_link}, impact {result.impact}"
    )


@click.command("import-links")
@click.option("--system", "system", metavar="NAME", help="The helpdesk [systems.*] table (default: the helpdesk).")
@click.option("--dry-run", is_flag=True, help="List what would be imported; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def import_links(ctx: click.Context, system: str | None, dry_run: bool, as_json: bool) -> None:
    """Bring over the links of the helpdesk's own tracker integration (Zendesk's Jira integration) as cxbridge
    links: remote links, the store's links and the impact; a link imported before is left alone."""
    runtime = load_runtime(ctx)
    try:
        report = imports.import_links(runtime, helpdesk=system, dry_run=dry_run, actor="import-links")
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    for row in report.links:
        who = f" ({row['customer']})" if row.get("customer") else ""
        click.echo(f"{row['ticket']} -> {row['issue_key']}: {row['outcome']}{who}")
    for key, outcome in report.impact.items():
        click.echo(f"{key}: impact {outcome}")
    verb = "would import" if dry_run else "imported"
    counted = report.count("planned") if dry_run else report.count("imported")
    click.echo(f"{len(report.links)} links found; {verb} {counted}, {report.count('already linked')} already linked")
