"""Provisioning the vendors: ``cxbridge setup --plan`` and ``cxbridge setup --apply``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import click

from .. import provision
from ..connectors import CREATE, MANUAL, OK, PRUNE, UPDATE, PlanItem
from ..errors import ConfigError
from .context import CliContext, load_runtime, pass_cli, scrub

SYMBOLS = {CREATE: "+", UPDATE: "~", OK: "=", MANUAL: "!", PRUNE: "-"}
WORDS = {CREATE: "create", UPDATE: "update", OK: "ok", MANUAL: "manual", PRUNE: "prune"}
DONE = {CREATE: "created", UPDATE: "updated", PRUNE: "pruned"}
PENDING_EXIT = 2
"""``--plan --detailed-exitcode`` exits with this when something is to create, update, prune or click."""


def plan_lines(items: Sequence[PlanItem]) -> list[str]:
    """The plan as a person reads it: per system, one line per object; then the totals."""
    lines: list[str] = []
    system = None
    for item in items:
        if item.system != system:
            system = item.system
            lines.append(f"{system}:")
        what = f"{item.kind} {item.name!r}" + (f" ({item.vendor_id})" if item.vendor_id else "")
        detail = f": {scrub(item.detail)}" if item.detail else ""
        lines.append(f"  {SYMBOLS[item.action]} {WORDS[item.action]:<6} {what}{detail}")
    lines.append(summary(items))
    return lines


def summary(items: Sequence[PlanItem]) -> str:
    """``Plan: 2 to create, 1 to update, 0 to prune, 1 manual, 5 already right.``"""
    counts = Counter(i.action for i in items)
    if not any(counts[a] for a in (CREATE, UPDATE, PRUNE, MANUAL)):
        return f"Nothing to do: {counts[OK]} object{'s' if counts[OK] != 1 else ''} already right."
    return (
        f"Plan: {counts[CREATE]} to create, {counts[UPDATE]} to update, {counts[PRUNE]} to prune "
        f"(with --prune), {counts[MANUAL]} manual, {counts[OK]} already right."
    )


@click.command()
@click.option("--plan", "mode", flag_value="plan", default=True, help="Show what would change (the default).")
@click.option("--apply", "mode", flag_value="apply", help="Create and update the objects; write ids and secrets.")
@click.option("--prune", is_flag=True, help="With --apply: also remove objects cxbridge no longer needs.")
@click.option("--system", "systems", multiple=True, metavar="NAME", help="Only this configured system (repeatable).")
@click.option(
    "--secrets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where new secret files go (default: beside the config file).",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="With --plan: exit 2 when something is pending (0 when nothing is, 1 on error).",
)
@pass_cli
@click.pass_context
def setup(
    ctx: click.Context,
    obj: CliContext,
    mode: str,
    prune: bool,
    systems: tuple[str, ...],
    secrets_dir: Path | None,
    detailed_exitcode: bool,
) -> None:
    """Provision what cxbridge needs at the vendors: fields, webhooks, triggers, properties.

    --plan (the default) compares what every enabled system needs with what exists and prints it like a
    Terraform plan: + create, ~ update, = already right, ! manual (what to click where the vendor's API cannot
    do it), - prune (objects cxbridge created and no longer needs). It changes nothing and exits 0 (with
    --detailed-exitcode: 2 when something is pending).

    --apply makes it so, idempotently (a second run changes nothing), and writes what it learned back into the
    config file (ids; webhook signing secrets as 0600 files referenced with { file = ... }), keeping comments
    and layout. Nothing is deleted without --prune. Exits 1 when an object could not be applied.
    """
    rt = load_runtime(ctx)
    if rt.config.path is None:
        raise ConfigError("cxbridge setup needs a configuration file to write to")
    items = provision.plan(rt, systems)
    if not items:
        obj.echo("No enabled system provisions anything.")
        return
    if mode == "plan":
        for line in plan_lines(items):
            obj.echo(line)
        if detailed_exitcode and provision.pending(items):
            ctx.exit(PENDING_EXIT)
        return
    done = provision.apply(rt, items, prune=prune)
    for item in done.done:
        obj.echo(f"{SYMBOLS[item.action]} {DONE[item.action]} {item.system} {item.kind} {item.name!r}")
    for item, reason in done.failed:
        obj.echo(f"✗ {item.system} {item.kind} {item.name!r}: {scrub(reason)}", err=True)
    changed = provision.write_back(rt.config.path, done.updates, secrets_dir=secrets_dir)
    for key in changed:
        obj.echo(f"  wrote {key} to {rt.config.path}")
    # what remains: read the vendors again with the config as now written
    obj.reload()
    after = provision.plan(load_runtime(ctx), systems)
    left = provision.pending(after)
    if left:
        obj.echo("Still to do:")
        for line in plan_lines(left)[:-1]:
            obj.echo(line)
    obj.echo(
        f"Applied {len(done.done)} change{'s' if len(done.done) != 1 else ''}"
        + (f", {len(done.failed)} failed" if done.failed else "")
        + (f"; {sum(1 for i in left if i.action == MANUAL)} manual step(s) left" if left else "; nothing left to do")
        + "."
    )
    if done.failed:
        ctx.exit(1)
