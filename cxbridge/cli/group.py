"""The ``cxbridge`` group: global options, one-line errors, and every core command registered on it.

Every ``CxbridgeError`` and every usage error becomes one line on stderr and a non-zero exit; ``--debug`` adds
the traceback. The commands live in this package, one module per family, and are added below by ordinary
imports; plugins add theirs through the ``register_commands`` hook and may not take a core name.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..config import CONFIG_ENV, DEFAULT_PATH
from ..errors import ConfigError, CxbridgeError
from ..http.redact import redact
from . import admin, doctor, escalate, impact, policy, queue, sandbox, setup, store
from .context import CliContext, cli_context, scrub
from .logs import FORMATS, setup_logging

_NO_ARGS_IS_HELP: type[click.UsageError] | None = getattr(click.exceptions, "NoArgsIsHelpError", None)
"""What click 8.2+ raises when a group is called with no command (absent from click 8.1, which exits 0 itself)."""

# Every command name the core uses or has planned (DESIGN section 11): a plugin may not take one of them.
RESERVED_COMMANDS = frozenset(
    {
        "init", "doctor", "plugins", "escalate", "links", "impact", "serve", "worker", "sync", "dead-letters",
        "sandbox", "demo", "unlink", "policy", "audit", "act", "config", "setup", "import-links",
    }
)  # fmt: skip


class CxbridgeGroup(click.Group):
    """The top-level group: core commands, then plugin commands; one-line errors."""

    def reserved_names(self) -> set[str]:
        """Names plugins may not use: the core's, registered or planned."""
        return set(RESERVED_COMMANDS) | set(self.commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Core commands and plugin commands, sorted."""
        names = set(self.commands)
        names |= set(cli_context(ctx).plugin_commands(self, self.reserved_names()))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A core command first, else a plugin's."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        return cli_context(ctx).plugin_commands(self, self.reserved_names()).get(cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse the global options and apply them to the CliContext before a subcommand is looked up."""
        rest = super().parse_args(ctx, args)
        obj = cli_context(ctx)
        if ctx.params.get("config_path") is not None:
            obj.use_config(ctx.params["config_path"])
        obj.debug = obj.debug or bool(ctx.params.get("debug"))
        obj.log_format = str(ctx.params.get("log_format") or obj.log_format)
        setup_logging(obj.debug, obj.log_format)  # before a subcommand is resolved: plugin load warnings are logged
        return rest

    def invoke(self, ctx: click.Context) -> None:
        """Run the subcommand; its return value is ignored (fail with ``ctx.exit(code)`` or an error)."""
        super().invoke(ctx)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in standalone mode every error is one line on stderr and a non-zero exit."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        obj = extra.get("obj")
        if not isinstance(obj, CliContext):
            obj = extra["obj"] = CliContext()
        sys.exit(self._run(obj, args, prog_name or self.name, complete_var, extra))

    def _run(
        self,
        obj: CliContext,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        extra: dict[str, Any],
    ) -> int:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if _NO_ARGS_IS_HELP is not None and isinstance(exc, _NO_ARGS_IS_HELP):
                # click 8.2 and later raise this for a bare group; 8.1 printed the help and exited 0
                obj.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
                return 0
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            obj.echo(f"Error: {scrub(exc.format_message()).rstrip('.')}{where}", err=True)
            return exc.exit_code
        except click.ClickException as exc:
            obj.echo(f"Error: {scrub(exc.format_message())}", err=True)
            return exc.exit_code
        except click.Abort:
            obj.echo("Aborted.", err=True)
            return 1
        except CxbridgeError as exc:
            if obj.debug:
                obj.echo(scrub_traceback(), err=True)
            if isinstance(exc, ConfigError) and "\n" in str(exc):
                # a configuration with several problems: the summary, then one problem a line
                head, *problems = (scrub(line) for line in str(exc).splitlines() if line.strip())
                obj.echo("\n  ".join([f"Error: {head}", *problems]), err=True)
            else:
                obj.echo(f"Error: {scrub(str(exc))}", err=True)
            return 1
        except Exception as exc:
            if obj.debug:
                obj.echo(scrub_traceback(), err=True)
                hint = ""
            else:
                hint = " (run with --debug for the traceback)"
            obj.echo(f"Error: unexpected {type(exc).__name__}: {scrub(str(exc))}{hint}", err=True)
            return 1
        return result if isinstance(result, int) else 0  # an int here is an exit code from ctx.exit()


def scrub_traceback() -> str:
    """The current exception's traceback with secret values replaced (for ``--debug``)."""
    return redact(traceback.format_exc()).rstrip()


@click.group(name="cxbridge", cls=CxbridgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The configuration file [default: ${CONFIG_ENV}, else ./{DEFAULT_PATH}].",
)
@click.option("--debug", is_flag=True, help="Show the traceback when something fails, and log at DEBUG.")
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    envvar="CXBRIDGE_LOG_FORMAT",
    help="Log lines on stderr: timestamped text, or one JSON object per line [env: CXBRIDGE_LOG_FORMAT].",
)
@click.version_option(__version__, "-V", "--version", prog_name="cxbridge", message="%(prog)s %(version)s")
def cli(config_path: Path | None, debug: bool, log_format: str) -> None:
    """cxbridge: escalate helpdesk tickets to the tracker with the customer's context, and sync back.

    Start with 'cxbridge init' (writes a commented cxbridge.toml), then 'cxbridge doctor'.
    """


# ----------------------------------------------------------------------------------------------------------
# The core commands, one line each, sorted by name. A command module defines plain ``@click.command()``s and
# imports from ``.context`` (never from here). In a command: ``obj.config()`` and ``obj.plugins()`` (or
# ``load_runtime(ctx)``) load what it needs; ``obj.echo()`` prints; raise ``CxbridgeError`` for a one-line error
# and exit 1; call ``click.get_current_context().exit(code)`` for a quiet failure; the return value is ignored.
# Offer --json where a script would read the output. Plugins add commands through the ``register_commands``
# hook and cannot take a name in RESERVED_COMMANDS or one registered here.
# ----------------------------------------------------------------------------------------------------------
cli.add_command(policy.act)
cli.add_command(policy.audit)
cli.add_command(admin.config_group)
cli.add_command(queue.dead_letters)
cli.add_command(sandbox.demo)
cli.add_command(doctor.doctor)
cli.add_command(escalate.escalate)
cli.add_command(impact.impact)
cli.add_command(admin.init)
cli.add_command(escalate.import_links)
cli.add_command(escalate.links)
cli.add_command(admin.plugins)
cli.add_command(policy.policy)
cli.add_command(sandbox.sandbox)
cli.add_command(queue.serve)
cli.add_command(setup.setup)
cli.add_command(store.store_group)
cli.add_command(queue.sync)
cli.add_command(escalate.unlink)
cli.add_command(queue.worker)


def main(argv: Sequence[str] | None = None) -> None:
    """The ``cxbridge`` console script (and ``python -m cxbridge``)."""
    cli.main(args=argv, prog_name="cxbridge")
