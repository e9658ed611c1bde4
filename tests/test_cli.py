"""The command line as a whole: help everywhere, one-line errors, --debug, --config, plugin commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import cxbridge
from cxbridge.cli import CliContext, cli, main, pass_cli
from cxbridge.cli.group import RESERVED_COMMANDS, CxbridgeGroup
from cxbridge.errors import ConfigError, CxbridgeError
from cxbridge.hookspecs import hookimpl
from cxbridge.plugins import build_plugins


class CommandsPlugin:
    """An in-memory plugin that adds commands: one that works, two that fail, one that takes a core name."""

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @cli.command()
        @pass_cli
        def hello(obj: CliContext) -> None:
            """Say hello from a plugin."""
            obj.echo(f"hello, config at {obj.path}")

        @cli.command()
        def refuse() -> None:
            """Fail the way cxbridge fails on purpose."""
            raise ConfigError("cxbridge.toml: systems.jira.project: expected a string, got int 5")

        @cli.command()
        def crash() -> None:
            """Fail the way a bug fails."""
            raise ValueError("unexpected state")

        @cli.command()
        def quiet() -> None:
            """Fail quietly with an exit code."""
            click.get_current_context().exit(3)

        @cli.command()
        def returns() -> int:
            """Return a value (not an exit code)."""
            return 5

        @cli.command("doctor")
        def fake_doctor() -> None:
            """A plugin's attempt to replace a core command."""
            click.echo("plugin doctor")


def context(**kwargs: Any) -> CliContext:
    """A CliContext whose plugins are only the in-memory command plugin."""
    return CliContext(
        plugins_factory=lambda disabled: build_plugins(
            disabled, use_env=False, entry_points=list, extra=[("cmds", CommandsPlugin())]
        ),
        **kwargs,
    )


def run(args: list[str], obj: CliContext | None = None, **kwargs: Any) -> Result:
    return CliRunner().invoke(cli, args, obj=obj if obj is not None else context(), **kwargs)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def all_commands(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, ctx, (*prefix, name)))
    return found


def test_every_command_has_help_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command, core or plugin, explains itself and answers --help."""
    monkeypatch.chdir(tmp_path)
    obj = context()
    with click.Context(cli, obj=obj) as ctx:
        commands = all_commands(cli, ctx)
    assert {("init",), ("doctor",), ("plugins",), ("plugins", "list"), ("plugins", "enable")} <= set(commands)
    assert ("hello",) in commands
    for path in commands:
        result = run([*path, "--help"], obj=context())
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: cxbridge " + " ".join(path) in result.output
        with click.Context(cli, obj=obj) as ctx:
            command: Any = cli
            for name in path:
                command = command.get_command(ctx, name)
            assert (command.help or "").strip(), f"{' '.join(path)} has no help text"


def test_version() -> None:
    result = run(["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"cxbridge {cxbridge.__version__}\n"


@pytest.mark.parametrize("args", [[], ["plugins"], ["policy"], ["dead-letters"], ["sandbox"], ["config"]])
def test_a_bare_group_prints_its_help_and_exits_0(args: list[str]) -> None:
    """``cxbridge`` and each command group without a subcommand print their help on stdout and exit 0, on every
    click the package allows (click 8.2 and later raise NoArgsIsHelpError where 8.1 printed the help)."""
    result = run(args)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: cxbridge{' ' if args else ''}{' '.join(args)} [OPTIONS] COMMAND")
    assert result.stderr == ""


def test_an_unknown_command_is_one_line_on_stderr() -> None:
    result = run(["nosuch"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert lines(result.stderr) == ["Error: No such command 'nosuch' (see 'cxbridge --help')"]


def test_a_bad_option_is_one_line_naming_the_command() -> None:
    result = run(["init", "--bogus"])
    assert result.exit_code == 2
    assert lines(result.stderr) == ["Error: No such option '--bogus' (see 'cxbridge init --help')"]


def test_a_missing_argument_is_one_line() -> None:
    result = run(["plugins", "enable"])
    assert result.exit_code == 2
    assert lines(result.stderr) == ["Error: Missing argument 'NAME' (see 'cxbridge plugins enable --help')"]


def test_a_cxbridge_error_is_one_line_and_no_traceback() -> None:
    result = run(["refuse"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert lines(result.stderr) == ["Error: cxbridge.toml: systems.jira.project: expected a string, got int 5"]


def test_debug_adds_the_traceback() -> None:
    result = run(["--debug", "refuse"])
    assert result.exit_code == 1
    assert "Traceback (most recent call last):" in result.stderr
    assert lines(result.stderr)[-1] == "Error: cxbridge.toml: systems.jira.project: expected a string, got int 5"


def test_an_unexpected_exception_is_one_line_too() -> None:
    result = run(["crash"])
    assert result.exit_code == 1
    assert lines(result.stderr) == [
        "Error: unexpected ValueError: unexpected state (run with --debug for the traceback)"
    ]
    debug = run(["--debug", "crash"])
    assert "Traceback (most recent call last):" in debug.stderr
    assert 'raise ValueError("unexpected state")' in debug.stderr


def test_a_secret_in_an_error_message_is_scrubbed() -> None:
    """Even a careless message does not print a loaded secret's value."""
    secret = cxbridge.secrets.Secret("tok-9f8e7d6c5b4a", source="env:T")

    class Leaky:
        @hookimpl
        def register_commands(self, cli: click.Group) -> None:
            @cli.command()
            def leak() -> None:
                """Raise an error that quotes a secret."""
                raise CxbridgeError(f"the vendor rejected {secret.reveal()}")

    obj = CliContext(
        plugins_factory=lambda d: build_plugins(d, use_env=False, entry_points=list, extra=[("l", Leaky())])
    )
    result = run(["leak"], obj=obj)
    assert result.exit_code == 1
    assert "tok-9f8e7d6c5b4a" not in result.output
    assert lines(result.stderr) == ["Error: the vendor rejected ***"]


def test_plugin_commands_run_and_cannot_replace_core_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(["hello"])
    assert result.exit_code == 0
    assert result.stdout == "hello, config at cxbridge.toml\n"
    doctor = run(["doctor"])
    assert "plugin doctor" not in doctor.output
    assert doctor.stdout.startswith("✗ config: cxbridge.toml: no configuration file")


def test_a_disabled_plugin_adds_no_command(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[plugins]\ndisabled = ["cmds"]\n', encoding="utf-8")
    result = run(["--config", str(config), "hello"])
    assert result.exit_code == 2
    assert "No such command 'hello'" in result.stderr


def test_the_config_path_is_the_option_then_the_environment_then_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["hello"]).stdout == "hello, config at cxbridge.toml\n"
    assert run(["hello"], env={"CXBRIDGE_CONFIG": "from-env.toml"}).stdout == "hello, config at from-env.toml\n"
    result = run(["--config", "opt.toml", "hello"], env={"CXBRIDGE_CONFIG": "from-env.toml"})
    assert result.stdout == "hello, config at opt.toml\n"


def test_the_core_command_names_are_reserved() -> None:
    assert isinstance(cli, CxbridgeGroup)
    assert {"init", "doctor", "plugins", "serve", "escalate", "sandbox", "demo"} <= cli.reserved_names()
    assert cli.reserved_names() >= RESERVED_COMMANDS


def test_main_is_the_console_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"cxbridge {cxbridge.__version__}\n"


def test_python_dash_m_cxbridge_without_a_config_is_one_line(tmp_path: Path) -> None:
    """A real process: no config file gives one line naming the problem, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CXBRIDGE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "cxbridge", "doctor"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    output = lines(proc.stdout + proc.stderr)
    assert len(output) == 1, output
    assert output[0].startswith("✗ config: cxbridge.toml: no configuration file (run 'cxbridge init cxbridge.toml'")
    assert "Traceback" not in proc.stderr


def test_exit_codes_come_from_ctx_exit_not_from_return_values() -> None:
    quiet = run(["quiet"])
    assert (quiet.exit_code, quiet.output) == (3, "")
    assert run(["returns"]).exit_code == 0
