"""``cxbridge doctor``: print the checks of ``cxbridge.doctor``, one line each (or JSON), and exit 0 or 1."""

from __future__ import annotations

import json

import click

from ..doctor import EXIT_OK, exit_code, run_checks
from .admin import reporting_plugin_errors
from .context import CliContext, pass_cli


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON list (item, ok, state, detail, fix).")
@pass_cli
@click.pass_context
def doctor(ctx: click.Context, obj: CliContext, as_json: bool) -> None:
    """Check everything escalations need, and report every problem in one run.

    The configuration (every invalid key), the plugins, each enabled system's login, every object the
    configuration names at the vendors (projects, issue types, required and custom fields, ticket fields,
    properties), a signing secret for every webhook 'cxbridge serve' receives and [webhooks] public_url,
    placeholders left from 'cxbridge init', and the store. One line per check: ✓ passed, ✗ failed (with the
    vendor's words and the fix), - skipped. Exit status: 0 when nothing failed, 1 when any check failed.
    """
    with reporting_plugin_errors():
        checks = run_checks(obj.path, obj.config, obj.plugins)
    if as_json:
        obj.echo(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        for check in checks:
            obj.echo(check.line())
    code = exit_code(checks)
    if code != EXIT_OK:
        ctx.exit(code)
