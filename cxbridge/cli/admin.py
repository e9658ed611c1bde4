"""Setting cxbridge up: ``init``, ``plugins list|enable|disable`` and ``config schema`` (``doctor`` is apart)."""

from __future__ import annotations

import contextlib
import json
import logging
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path

import click
import tomlkit
import tomlkit.exceptions
import tomlkit.items

from .. import config as config_module
from ..errors import (
    ConfigError,
    PluginError,
)
from ..init_template import TEMPLATE
from ..plugins import ALLOWLIST_ENV, PluginInfo, Plugins, allowlist_from_env
from ..provision import write_text_atomically
from .context import CliContext, pass_cli, scrub

# ----------------------------------------------------------------------------------------------------------
# init
# ----------------------------------------------------------------------------------------------------------


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


@click.command()
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
        write_text_atomically(target, TEMPLATE)
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


@click.group()
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
        write_text_atomically(path, tomlkit.dumps(doc))
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
# config
# ----------------------------------------------------------------------------------------------------------


@click.group("config")
def config_group() -> None:
    """Describe the configuration file."""


@config_group.command("schema")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the schema to this file instead of printing it.",
)
@pass_cli
def config_schema(obj: CliContext, output: Path | None) -> None:
    """Print the configuration file's JSON Schema, with the keys the enabled plugins add.

    Editors and scripts can check a cxbridge.toml against it. Works without a configuration file.
    """
    schema = config_module.json_schema(obj.plugins())
    text = json.dumps(schema, indent=2)
    if output is None:
        obj.echo(text)
        return
    try:
        write_text_atomically(output, text + "\n")
    except OSError as exc:
        raise ConfigError(f"{output}: cannot write: {exc.strerror}") from None
    obj.echo(f"Wrote {output}.")
