"""The workflow commands: escalate, links, sandbox serve, demo."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from .connectors import HELPDESK
from .errors import CxbridgeError
from .models import Person, Ref, to_jsonable
from .runtime import Runtime


def load_runtime(ctx: click.Context) -> Runtime:
    """Config, plugins and connectors for a workflow command, from the CLI's context."""
    from .cli import cli_context

    cctx = cli_context(ctx)
    return Runtime(cctx.config(), cctx.plugins())


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
    from .policy import parse_action
    from .workflows.escalate import Escalation, EscalationRequest

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
    finally:
        runtime.close()
    if as_json:
        click.echo(json.dumps(to_jsonable(found), indent=2))
        return
    if not found:
        raise CxbridgeError(f"nothing is linked to {ticket_or_issue}")
    for link in found:
        who = f" by {link.linked_by}" if link.linked_by else ""
        customer = f" customer {link.customer}" if link.customer else ""
        click.echo(f"{link.ticket} -> {link.issue_key} ({link.issue}){customer}{who}")


@click.group()
def sandbox() -> None:
    """Run the vendor emulators (Zendesk, Jira, HubSpot) for demos, tests and plugin development."""


@sandbox.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--zendesk-port", type=int, default=0, help="Port for Zendesk (0: a free one).")
@click.option("--jira-port", type=int, default=0, help="Port for Jira (0: a free one).")
@click.option("--hubspot-port", type=int, default=0, help="Port for HubSpot (0: a free one).")
@click.option("--seed", type=click.Choice(["demo", "empty"]), default="demo", show_default=True)
@click.option("--webhook-target", metavar="URL", help="Deliver the emulators' webhooks to this URL.")
@click.option(
    "--rate-limit",
    "rate_limits",
    multiple=True,
    metavar="SYSTEM=N/PERIOD",
    help="Enforce a limit, e.g. zendesk=700/min (repeatable).",
)
@click.option(
    "--write-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a cxbridge config that points at the emulators.",
)
def sandbox_serve(
    host: str,
    zendesk_port: int,
    jira_port: int,
    hubspot_port: int,
    seed: str,
    webhook_target: str | None,
    rate_limits: tuple[str, ...],
    write_config: Path | None,
) -> None:
    """Serve the emulators on loopback ports until interrupted; print their URLs and credentials."""
    import secrets as pysecrets

    from .sandbox import RateLimit, WebhookTarget, serve_vendors
    from .sandbox import write_config as write_sandbox_config

    vendors = serve_vendors(
        host=host,
        ports={"zendesk": zendesk_port, "jira": jira_port, "hubspot": hubspot_port},
        seed=seed,
    )
    try:
        for spec in rate_limits:
            system, _, limit = spec.partition("=")
            if system not in vendors.backends:
                raise CxbridgeError(f"--rate-limit {spec}: unknown system {system!r}")
            try:
                vendors[system].rate_limit = RateLimit.parse(limit)
            except ValueError as exc:
                raise CxbridgeError(f"--rate-limit {spec}: {exc}") from None
        webhook_secrets: dict[str, str] = {}
        if webhook_target:
            for name, backend in vendors.backends.items():
                webhook_secrets[name] = pysecrets.token_urlsafe(24)
                backend.webhook_targets = [
                    WebhookTarget(url=f"{webhook_target.rstrip('/')}/{name}", secret=webhook_secrets[name])
                ]
        for name, backend in vendors.backends.items():
            click.echo(f"{name:8} {backend.base_url}")
            for key, value in backend.credentials().items():
                click.echo(f"         {key}: {value}")
        if write_config:
            extra: dict[str, Any] = {}
            write_sandbox_config(vendors, write_config, extra=extra)
            click.echo(f"config written to {write_config}")
        click.echo("Serving; Ctrl-C to stop.")
        sys.stdout.flush()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        vendors.stop()


@click.command()
@click.option("--keep-running", is_flag=True, help="Leave the sandbox up after the story and print its URLs.")
def demo(keep_running: bool) -> None:
    """Play the whole story on the built-in sandbox: escalation, a second ticket joining, the summary."""
    from .demo import run_demo

    run_demo(click.echo, keep_running=keep_running)


WORKFLOW_COMMANDS = [escalate, links, sandbox, demo]
