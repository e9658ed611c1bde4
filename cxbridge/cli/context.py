"""What every command works with: the ``CliContext`` (config path, environment, lazily loaded Config and Plugins).

Commands receive the ``CliContext`` as click's ``obj`` (``@pass_cli``, or ``cli_context(ctx)``); tests build
one and pass it to ``CliRunner.invoke(cli, args, obj=...)``, so nothing needs patching. ``load_runtime``
composes the Runtime (config, plugins, connectors, store) a workflow command runs on.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import click

from ..config import CORE_SECTIONS, Config, _check_table, load_config
from ..config import resolve_path as resolve_config_path
from ..errors import ConfigError, CxbridgeError
from ..plugins import Plugins, allowlist_from_env, build_plugins
from ..redact import redact_line
from ..runtime import Runtime
from .logs import apply_level

PluginsFactory = Callable[[Sequence[str]], Plugins]
"""Builds the Plugins given the names the config disables (tests pass ``build_plugins(..., extra=[...])``)."""


scrub = redact_line
"""``text`` with every secret value this process loaded replaced, on one line (for terminal output)."""


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
        self.log_format = "text"
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

    def reload(self) -> None:
        """Forget the loaded Config and Plugins: the next use reads the (rewritten) config file again."""
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

    def apply_log_level(self) -> None:
        """For a long-running command (serve, worker, sync): cxbridge logs at ``[cxbridge] log_level`` (one-shot
        commands stay at WARNING, so their output is only what they print); ``--debug`` keeps DEBUG."""
        if not self.debug:
            apply_level(str(self.config().section("cxbridge")["log_level"]))

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


def load_runtime(ctx: click.Context) -> Runtime:
    """Config, plugins and connectors for a workflow command, from the CLI's context."""
    cctx = cli_context(ctx)
    return Runtime(cctx.config(), cctx.plugins())
