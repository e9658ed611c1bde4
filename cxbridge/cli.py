"""The admin command line: ``cxbridge init | doctor | plugins list|enable|disable`` and what others register.

Commands receive a ``CliContext`` (click's ``obj``) that holds the config path and the environment and
loads the Config and the Plugins lazily. Tests build one and pass it to click's
``CliRunner.invoke(cli, args, obj=...)``, so nothing needs patching. Every ``CxbridgeError`` and every
usage error becomes one line on stderr and a non-zero exit; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import tempfile
import tomllib
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, TextIO

import click
import tomlkit
import tomlkit.exceptions
import tomlkit.items

from . import __version__
from .config import CONFIG_ENV, CORE_SECTIONS, DEFAULT_PATH, Config, SystemConfig, _check_table, load_config
from .config import resolve_path as resolve_config_path
from .errors import (
    AuthError,
    ConfigError,
    CxbridgeError,
    NotFound,
    PluginError,
    RateLimited,
    Unavailable,
    VendorError,
)
from .http.redact import install_redaction, redact
from .init_template import TEMPLATE
from .plugins import ALLOWLIST_ENV, PluginInfo, Plugins, allowlist_from_env, build_plugins

PluginsFactory = Callable[[Sequence[str]], Plugins]
"""Builds the Plugins given the names the config disables (tests pass ``build_plugins(..., extra=[...])``)."""

# Every command name the core uses or has planned (DESIGN section 11): a plugin may not take one of them.
RESERVED_COMMANDS = frozenset(
    {
        "init", "doctor", "plugins", "escalate", "links", "impact", "serve", "worker", "sync", "dead-letters",
        "sandbox", "demo", "unlink", "policy", "audit", "act",
    }
)  # fmt: skip


def scrub(text: str) -> str:
    """``text`` with every secret value this process loaded replaced, on one line (for terminal output)."""
    return " ".join(redact(text).split())


def setup_logging(debug: bool = False) -> None:
    """Log to stderr (WARNING, or DEBUG with --debug) unless something already set up logging; redact always.

    Long-running commands (serve, worker) may set their own level from the config's ``log_level``.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("cxbridge: %(levelname)s: %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if debug else logging.WARNING)
    install_redaction(root)


class CliContext:
    """What every command needs: where the config is, the environment, and (lazily) the Config and Plugins.

    ``config_path`` None means CXBRIDGE_CONFIG, else ./cxbridge.toml. ``environ`` None means ``os.environ``
    (read at use time). ``plugins_factory`` receives the plugin names the config disables. ``stdout`` and
    ``stderr`` None mean the process's (click's) streams.
    """

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        plugins_factory: PluginsFactory | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        debug: bool = False,
    ) -> None:
        self.config_path = Path(config_path) if config_path is not None else None
        self.environ = environ
        self.plugins_factory = plugins_factory
        self.stdout = stdout
        self.stderr = stderr
        self.debug = debug
        self._reset()

    def _reset(self) -> None:
        self._plugins: Plugins | None = None
        self._config: Config | None = None
        self._plugin_commands: dict[str, click.Command] | None = None

    # -- where things are --------------------------------------------------------------------------------
    @property
    def env(self) -> Mapping[str, str]:
        """The environment secrets and CXBRIDGE_* settings are read from."""
        return os.environ if self.environ is None else self.environ

    @property
    def path(self) -> Path:
        """The config file: ``--config``, else CXBRIDGE_CONFIG, else ./cxbridge.toml."""
        return resolve_config_path(self.config_path, self.env)

    def use_config(self, path: str | os.PathLike[str]) -> None:
        """Point at another config file (``--config``); forgets what was loaded from the previous one."""
        if self.config_path is None or Path(path) != self.config_path:
            self.config_path = Path(path)
            self._reset()

    # -- what is loaded ----------------------------------------------------------------------------------
    def disabled_plugins(self) -> list[str]:
        """The config's ``[plugins] disabled`` list (empty without a config file); reads nothing else."""
        path = self.path
        if not path.exists():
            return []
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        table = raw.get("plugins", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [plugins] must be a table")
        checked = _check_table(table, CORE_SECTIONS["plugins"], f"{path}: plugins", self.env, path.parent)
        names = checked["disabled"]
        if not all(isinstance(name, str) for name in names):
            raise ConfigError(f"{path}: plugins.disabled: expected a list of plugin names (strings), got {names!r}")
        return list(names)

    def plugins(self) -> Plugins:
        """The plugins, loaded once, minus those the config disables (CXBRIDGE_LOAD_PLUGINS applies too)."""
        if self._plugins is None:
            disabled = self.disabled_plugins()
            if self.plugins_factory is not None:
                self._plugins = self.plugins_factory(disabled)
            else:
                allowlist = allowlist_from_env(dict(self.env))
                self._plugins = build_plugins(disabled, allowlist=allowlist, use_env=False)
        return self._plugins

    def config(self) -> Config:
        """The configuration, loaded once and validated against the plugins' connector keys."""
        if self._config is None:
            if not self.path.exists():
                load_config(self.path, environ=self.env)  # raises the "no configuration file" error
            self._config = load_config(self.path, plugins=self.plugins(), environ=self.env)
        return self._config

    def plugin_commands(self, group: click.Group, reserved: set[str]) -> dict[str, click.Command]:
        """The commands plugins add, by name (none while the plugins cannot be loaded)."""
        if self._plugin_commands is None:
            try:
                plugins = self.plugins()
            except CxbridgeError:
                return {}
            scratch = click.Group(group.name, commands=dict(group.commands))
            plugins.add_commands(scratch, reserved=reserved)
            self._plugin_commands = {name: cmd for name, cmd in scratch.commands.items() if name not in reserved}
        return self._plugin_commands

    # -- output ------------------------------------------------------------------------------------------
    def echo(self, message: str = "", *, err: bool = False) -> None:
        """Print a line to stdout (or stderr)."""
        click.echo(message, file=self.stderr if err else self.stdout, err=err)


pass_cli = click.make_pass_decorator(CliContext, ensure=True)
"""Decorator that passes the CliContext as a command's first argument."""


def cli_context(ctx: click.Context) -> CliContext:
    """The CliContext of a click context (created on first use)."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliContext):
        root.obj = CliContext()
    return root.obj


class CxbridgeGroup(click.Group):
    """The top-level group: core commands (eager or lazy), then plugin commands; one-line errors.

    ``add_lazy_command(name, "package.module:attribute")`` registers a core command that is imported only
    when it runs or its help is shown (no import cycle with this module, fast start-up).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = {}

    def add_lazy_command(self, name: str, import_path: str) -> None:
        """Register a core command by ``module:attribute``; it is imported when first needed."""
        if ":" not in import_path:
            raise ValueError(f"expected 'module:attribute', got {import_path!r}")
        self.lazy_commands[name] = import_path

    def reserved_names(self) -> set[str]:
        """Names plugins may not use: the core's, registered or planned."""
        return set(RESERVED_COMMANDS) | set(self.commands) | set(self.lazy_commands)

    def _load_lazy(self, name: str) -> click.Command:
        module_name, _, attribute = self.lazy_commands[name].partition(":")
        try:
            command = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise CxbridgeError(f"the command {name!r} could not be loaded: {type(exc).__name__}: {exc}") from exc
        if not isinstance(command, click.Command):
            raise CxbridgeError(f"the command {name!r} ({self.lazy_commands[name]}) is not a click command")
        self.commands[name] = command
        del self.lazy_commands[name]
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Core commands (eager and lazy) and plugin commands, sorted."""
        names = set(self.commands) | set(self.lazy_commands)
        names |= set(cli_context(ctx).plugin_commands(self, self.reserved_names()))
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A core command first (importing a lazy one), else a plugin's."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in self.lazy_commands:
            return self._load_lazy(cmd_name)
        return cli_context(ctx).plugin_commands(self, self.reserved_names()).get(cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse the global options and apply them to the CliContext before a subcommand is looked up."""
        rest = super().parse_args(ctx, args)
        obj = cli_context(ctx)
        if ctx.params.get("config_path") is not None:
            obj.use_config(ctx.params["config_path"])
        obj.debug = obj.debug or bool(ctx.params.get("debug"))
        setup_logging(obj.debug)  # before a subcommand is resolved: plugin load warnings are logged
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
@click.option("--debug", is_flag=True, help="Show the traceback when something fails.")
@click.version_option(__version__, "-V", "--version", prog_name="cxbridge", message="%(prog)s %(version)s")
def cli(config_path: Path | None, debug: bool) -> None:
    """cxbridge: escalate helpdesk tickets to the tracker with the customer's context, and sync back.

    Start with 'cxbridge init' (writes a commented cxbridge.toml), then 'cxbridge doctor'.
    """


# ----------------------------------------------------------------------------------------------------------
# init
# ----------------------------------------------------------------------------------------------------------


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, keeping the file's mode."""
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def template_env_vars() -> list[str]:
    """The environment variables the starting config reads secrets from, in file order."""
    names: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if set(value) == {"env"} and isinstance(value["env"], str):
                names.append(value["env"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(tomllib.loads(TEMPLATE))
    return names


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite the file when it exists.")
@pass_cli
def init(obj: CliContext, path: Path | None, force: bool) -> None:
    """Write a commented starting configuration file to PATH.

    PATH defaults to --config, else $CXBRIDGE_CONFIG, else ./cxbridge.toml. An existing file is kept unless
    --force is given. The file names environment variables for the secrets; it never holds one.
    """
    target = path if path is not None else obj.path
    if target.is_dir():
        raise ConfigError(f"{target} is a folder; give the path of the file to write")
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; pass --force to overwrite it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, TEMPLATE)
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write: {exc.strerror}") from None
    doctor_cmd = "cxbridge doctor" if target == obj.path else f"cxbridge --config {target} doctor"
    obj.echo(f"Wrote {target}.")
    obj.echo(
        "Next: fill in the base URLs, e-mail addresses and project, set "
        + ", ".join(template_env_vars())
        + f", then run '{doctor_cmd}'."
    )


# ----------------------------------------------------------------------------------------------------------
# plugins
# ----------------------------------------------------------------------------------------------------------


@cli.group()
def plugins() -> None:
    """List, enable and disable plugins (built-in and third-party)."""


def _status(info: PluginInfo, obj: CliContext, config_disabled: Sequence[str]) -> str:
    if not info.enabled:
        if info.name in config_disabled:
            return "disabled (config)"
        if ALLOWLIST_ENV in obj.env:
            return f"disabled ({ALLOWLIST_ENV})"
        return "disabled"
    return "failed" if info.error else "enabled"


@contextlib.contextmanager
def reporting_plugin_errors() -> Iterator[None]:
    """Quiet the plugin manager's warnings while a command reports plugin errors itself (no doubled lines)."""
    logger = logging.getLogger("cxbridge.plugins")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _probe(plugins: Plugins) -> None:
    """Call the registration hooks once so that a plugin whose registration fails shows its error."""
    plugins.connectors()
    plugins.webhook_verifiers()
    plugins.sandbox_backends()


@plugins.command("list")
@click.option("--all", "show_all", is_flag=True, help="List every built-in plugin too.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (name, version, kind, hooks, error...).")
@pass_cli
def plugins_list(obj: CliContext, show_all: bool, as_json: bool) -> None:
    """List the installed plugins: version, built-in or third-party, enabled or not, hooks, load error.

    Without --all, built-in plugins are listed only when they are disabled or failed to load: what is left
    is what a person may need to look at. Works without a configuration file (then nothing is disabled).
    """
    with reporting_plugin_errors():
        loaded = obj.plugins()
        _probe(loaded)
    config_disabled = obj.disabled_plugins()
    infos = sorted(loaded.infos.values(), key=lambda i: (not i.builtin, i.name))
    shown = [i for i in infos if show_all or not i.builtin or not i.loaded]
    if as_json:
        obj.echo(json.dumps([i.as_dict() for i in shown], indent=2))
        return
    if not shown:
        obj.echo("No third-party plugins installed.")
    else:
        rows = [
            (
                i.name,
                i.version or "-",
                "built-in" if i.builtin else "third-party",
                _status(i, obj, config_disabled),
                ", ".join(i.hooks) or "-",
            )
            for i in shown
        ]
        header = ("NAME", "VERSION", "KIND", "STATUS", "HOOKS")
        widths = [max(len(r[c]) for r in [header, *rows]) for c in range(4)]
        for row, info in zip([header, *rows], [None, *shown], strict=True):
            obj.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
            if info is not None and info.error:
                obj.echo(f"    error: {scrub(info.error)}")
    hidden = len(infos) - len(shown)
    if hidden:
        obj.echo(f"({hidden} built-in plugin{'s' if hidden != 1 else ''} not shown; --all lists them)")


def _edit_disabled(obj: CliContext, name: str, *, disable: bool) -> None:
    """Add ``name`` to, or remove it from, ``[plugins] disabled`` in the config file, keeping its layout."""
    path = obj.path
    if not path.exists():
        raise ConfigError(f"{path}: no configuration file (run 'cxbridge init {path}' to write one)")
    obj.disabled_plugins()  # the same checks and messages as when the config loads
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table = doc.get("plugins")
    if table is None:
        table = tomlkit.table()
        doc.add("plugins", table)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [plugins] must be a table")
    if "disabled" not in table:
        table["disabled"] = tomlkit.array()
    current = table["disabled"]
    if not isinstance(current, list):
        raise ConfigError(f"{path}: plugins.disabled: expected a list, got {current!r}")
    names = [str(n) for n in current]
    with reporting_plugin_errors():
        known = sorted(obj.plugins().infos)
    if name not in known and not (not disable and name in names):
        raise PluginError(f"unknown plugin {name!r} (known: {', '.join(known) or 'none'})")
    if disable:
        if name in names:
            obj.echo(f"{name} is already disabled in {path}.")
            return
        current.append(name)
    else:
        if name not in names:
            obj.echo(f"{name} is not disabled in {path}.")
            _note_allowlist(obj, name)
            return
        while name in [str(n) for n in current]:
            del current[[str(n) for n in current].index(name)]
    try:
        _write_atomically(path, tomlkit.dumps(doc))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None
    obj.echo(f"{'Disabled' if disable else 'Enabled'} {name} in {path}.")
    if not disable:
        _note_allowlist(obj, name)


def _note_allowlist(obj: CliContext, name: str) -> None:
    allowlist = allowlist_from_env(dict(obj.env))
    if allowlist is not None and name not in allowlist:
        obj.echo(f"Note: {ALLOWLIST_ENV} is set and does not name {name}: it stays off while that is so.")


@plugins.command("enable")
@click.argument("name")
@pass_cli
def plugins_enable(obj: CliContext, name: str) -> None:
    """Enable the plugin NAME: remove it from [plugins] disabled in the config file (comments are kept)."""
    _edit_disabled(obj, name, disable=False)


@plugins.command("disable")
@click.argument("name")
@pass_cli
def plugins_disable(obj: CliContext, name: str) -> None:
    """Disable the plugin NAME: add it to [plugins] disabled in the config file (comments are kept).

    A disabled plugin is not even imported.
    """
    _edit_disabled(obj, name, disable=True)


# ----------------------------------------------------------------------------------------------------------
# doctor
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Check:
    """One line of ``cxbridge doctor``: what was checked, whether it passed (None: skipped), and why."""

    item: str
    ok: bool | None
    detail: str

    def line(self) -> str:
        """``✓ item: detail``, ``✗ item: detail`` or ``- item: detail`` (skipped)."""
        mark = {True: "✓", False: "✗", None: "-"}[self.ok]
        return f"{mark} {self.item}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        """The check for ``doctor --json``."""
        return {"item": self.item, "ok": self.ok, "detail": self.detail}


def _secret_places(sc: SystemConfig) -> str:
    """Where the system's secrets come from, for a person: ``JIRA_API_TOKEN`` or ``the file /etc/x``."""
    places = []
    for secret in sc.secrets():
        kind, _, where = secret.source.partition(":")
        places.append(where if kind == "env" else f"the file {where}" if kind == "file" else secret.source)
    return " / ".join(places)


def _status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def describe_failure(exc: Exception, sc: SystemConfig) -> str:
    """Why a system's check failed and what to do about it, in one line."""
    if not isinstance(exc, CxbridgeError):
        return f"unexpected {type(exc).__name__}: {exc}"
    if not isinstance(exc, VendorError):
        return str(exc)
    head = _status_text(exc.status) if exc.status is not None else str(exc)
    if exc.vendor_message and exc.vendor_message not in head:
        head = f"{head} ({exc.vendor_message.rstrip('.')})"
    places = _secret_places(sc)
    hint = ""
    if isinstance(exc, AuthError):
        if exc.status == 403:
            where = f" in {places}" if places else ""
            hint = f"the credentials{where} are valid but lack a permission cxbridge needs"
        else:
            hint = f"check the token in {places}" if places else f"check the credentials in [systems.{sc.name}]"
    elif isinstance(exc, NotFound):
        hint = f"check base_url {sc.base_url}"
    elif isinstance(exc, RateLimited):
        hint = f"rate limited; try again in {exc.retry_after:g}s" if exc.retry_after else "rate limited; try again"
    elif isinstance(exc, Unavailable):
        hint = f"is {sc.base_url} reachable from here?"
    return f"{head}: {hint}" if hint else head


def check_system(plugins: Plugins, sc: SystemConfig) -> Check:
    """Build the system's connector and make its one cheap authenticated call."""
    try:
        connector = plugins.connector(sc.plugin).from_config(sc)
        detail = connector.check()
    except Exception as exc:
        return Check(sc.name, False, scrub(describe_failure(exc, sc)))
    return Check(sc.name, True, scrub(detail or "ok"))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON list (item, ok, detail).")
@pass_cli
@click.pass_context
def doctor(ctx: click.Context, obj: CliContext, as_json: bool) -> None:
    """Check the configuration, the plugins and every enabled system's connection and credentials.

    One line per check, ✓ or ✗ with the reason; exits non-zero when any check fails.
    """
    with reporting_plugin_errors():
        checks = _doctor_checks(obj)
    if as_json:
        obj.echo(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        for check in checks:
            obj.echo(check.line())
    if any(c.ok is False for c in checks):
        ctx.exit(1)


def _doctor_checks(obj: CliContext) -> list[Check]:
    checks: list[Check] = []
    try:
        config = obj.config()
    except CxbridgeError as exc:
        checks.append(Check("config", False, scrub(str(exc))))
        return checks
    count = len(config.systems)
    checks.append(Check("config", True, f"{config.path} ({count} system{'s' if count != 1 else ''})"))
    loaded = obj.plugins()
    loaded.connectors()
    for info in sorted(loaded.infos.values(), key=lambda i: i.name):
        if info.enabled and info.error:
            fix = f" (fix it, or 'cxbridge plugins disable {info.name}')"
            checks.append(Check(f"plugin {info.name}", False, scrub(info.error) + fix))
    for sc in config.systems.values():
        if not sc.enabled:
            checks.append(Check(sc.name, None, "skipped: enabled = false"))
        else:
            checks.append(check_system(loaded, sc))
    return checks


# ----------------------------------------------------------------------------------------------------------
# Commands from other modules: register them HERE, one line each, kept sorted by name. Prefer the lazy form:
#
#   cli.add_lazy_command("escalate", "cxbridge.workflows.commands:escalate")   # imported on first use
#   cli.add_command(some_command)            # eager: only for a command whose module does not import this one
#
# With the lazy form a command module may import ``CliContext`` and ``pass_cli`` from here at its top without
# an import cycle, and 'cxbridge init' stays fast. In a command: ``obj.config()`` and ``obj.plugins()`` load
# what it needs; ``obj.echo()`` prints; raise ``CxbridgeError`` for a one-line error and exit 1; call
# ``click.get_current_context().exit(code)`` for a quiet failure; the return value is ignored. Offer --json
# where a script would read the output. Plugins add commands through the ``register_commands`` hook and cannot
# take a name in RESERVED_COMMANDS or one registered here.
# ----------------------------------------------------------------------------------------------------------
cli.add_lazy_command("demo", "cxbridge.commands:demo")
cli.add_lazy_command("escalate", "cxbridge.commands:escalate")
cli.add_lazy_command("links", "cxbridge.commands:links")
cli.add_lazy_command("sandbox", "cxbridge.commands:sandbox")
cli.add_lazy_command("serve", "cxbridge.webhooks.serve:serve")
cli.add_lazy_command("worker", "cxbridge.worker_commands:worker")
cli.add_lazy_command("dead-letters", "cxbridge.worker_commands:dead_letters")
cli.add_lazy_command("sync", "cxbridge.workflows.reconcile:sync")
cli.add_lazy_command("impact", "cxbridge.impact_commands:impact")
cli.add_lazy_command("unlink", "cxbridge.impact_commands:unlink")
cli.add_lazy_command("policy", "cxbridge.policy_commands:policy")
cli.add_lazy_command("audit", "cxbridge.policy_commands:audit")
cli.add_lazy_command("act", "cxbridge.policy_commands:act")
# (end of the registered commands)


def main(argv: Sequence[str] | None = None) -> None:
    """The ``cxbridge`` console script (and ``python -m cxbridge``)."""
    cli.main(args=argv, prog_name="cxbridge")
