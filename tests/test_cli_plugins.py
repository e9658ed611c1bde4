"""``cxbridge plugins list|enable|disable``: what is installed, and editing the config keeping its comments."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import cxbridge
from cxbridge.cli import CliContext, cli
from cxbridge.config import load_config
from cxbridge.hookspecs import hookimpl
from cxbridge.plugins import ALLOWLIST_ENV, PluginInfo, Plugins, build_plugins


class Greeter:
    """A third-party-like plugin with two hooks."""

    @hookimpl
    def handoff_context(self, context: dict[str, Any]) -> dict[str, Any]:
        return {"greeting": "hi"}

    @hookimpl
    def register_commands(self, cli: Any) -> None:
        pass


class Misspelled:
    @hookimpl
    def register_conectors(self, register: Any) -> None:
        pass


def factory(disabled: Sequence[str]) -> Plugins:
    """Two in-memory plugins plus a hand-made built-in entry (so listing rules can be tested offline)."""
    plugins = build_plugins(
        disabled, use_env=False, entry_points=list, extra=[("greeter", Greeter()), ("typo", Misspelled())]
    )
    plugins.infos["core"] = PluginInfo(
        name="core", distribution="cxbridge", version="0.1.0", builtin=True, hooks=["register_connectors"]
    )
    return plugins


def run(args: list[str], config: Path | None = None, **kwargs: Any) -> Result:
    prefix = ["--config", str(config)] if config is not None else []
    return CliRunner().invoke(cli, [*prefix, *args], obj=CliContext(plugins_factory=factory), **kwargs)


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_list_works_without_a_config_file(no_config: Path) -> None:
    """Nothing is disabled; third-party plugins show with their hooks; a broken one shows its error."""
    result = run(["plugins", "list"])
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert out[0].split() == ["NAME", "VERSION", "KIND", "STATUS", "HOOKS"]
    greeter = next(line for line in out if line.startswith("greeter"))
    assert greeter.split()[:4] == ["greeter", "-", "third-party", "enabled"]
    assert greeter.endswith("handoff_context, register_commands")
    typo = out.index(next(line for line in out if line.startswith("typo")))
    assert out[typo].split()[:4] == ["typo", "-", "third-party", "failed"]
    assert out[typo + 1].strip().startswith("error: unknown hook:")
    assert "register_conectors" in out[typo + 1]
    assert not any(line.startswith("core") for line in out)
    assert out[-1] == "(1 built-in plugin not shown; --all lists them)"


def test_list_all_includes_the_built_ins(no_config: Path) -> None:
    result = run(["plugins", "list", "--all"])
    assert result.exit_code == 0
    core = next(line for line in result.stdout.splitlines() if line.startswith("core"))
    assert core.split() == ["core", "0.1.0", "built-in", "enabled", "register_connectors"]
    assert "not shown" not in result.stdout


def test_a_disabled_built_in_is_shown_without_all(tmp_path: Path) -> None:
    """Without --all, a built-in still shows when it needs attention (disabled or failed)."""
    config = tmp_path / "c.toml"
    config.write_text('[plugins]\ndisabled = ["core"]\n', encoding="utf-8")

    def disabling_factory(disabled: Sequence[str]) -> Plugins:
        plugins = factory(disabled)
        plugins.infos["core"].enabled = "core" not in disabled
        return plugins

    result = CliRunner().invoke(
        cli, ["--config", str(config), "plugins", "list"], obj=CliContext(plugins_factory=disabling_factory)
    )
    core = next(line for line in result.stdout.splitlines() if line.startswith("core"))
    assert core.split()[:5] == ["core", "0.1.0", "built-in", "disabled", "(config)"]


def test_list_json_is_the_plugin_infos(no_config: Path) -> None:
    result = run(["plugins", "list", "--all", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    by_name = {item["name"]: item for item in data}
    assert set(by_name) == {"core", "greeter", "typo"}
    assert by_name["greeter"] == {
        "name": "greeter",
        "version": None,
        "distribution": None,
        "kind": "third-party",
        "enabled": True,
        "hooks": ["handoff_context", "register_commands"],
        "error": None,
    }
    assert by_name["core"]["kind"] == "built-in"
    assert by_name["typo"]["error"].startswith("unknown hook:")
    without_all = json.loads(run(["plugins", "list", "--json"]).stdout)
    assert {item["name"] for item in without_all} == {"greeter", "typo"}


def test_list_shows_what_the_config_and_the_allowlist_disable(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[plugins]\ndisabled = ["greeter"]\n', encoding="utf-8")
    result = run(["plugins", "list"], config=config)
    greeter = next(line for line in result.stdout.splitlines() if line.startswith("greeter"))
    assert greeter.split()[:5] == ["greeter", "-", "third-party", "disabled", "(config)"]
    assert greeter.endswith(" -")


def test_list_with_the_real_entry_points_shows_the_built_ins(no_config: Path) -> None:
    """Through importlib.metadata: the three built-ins, version and kind."""
    result = CliRunner().invoke(cli, ["plugins", "list", "--all", "--json"], obj=CliContext())
    assert result.exit_code == 0, result.output
    by_name = {item["name"]: item for item in json.loads(result.stdout)}
    for name in ("zendesk", "jira", "hubspot"):
        assert by_name[name]["kind"] == "built-in"
        assert by_name[name]["version"] == cxbridge.__version__
        assert by_name[name]["enabled"] is True


def test_the_allowlist_shows_as_the_reason(no_config: Path) -> None:
    result = CliRunner().invoke(cli, ["plugins", "list", "--all"], obj=CliContext(environ={ALLOWLIST_ENV: "jira"}))
    assert result.exit_code == 0, result.output
    zendesk = next(line for line in result.stdout.splitlines() if line.startswith("zendesk"))
    assert f"disabled ({ALLOWLIST_ENV})" in zendesk


COMMENTED = """\
# My cxbridge config: keep these comments.
[cxbridge]
store = "cxbridge.db"  # next to this file

[plugins]
# plugins we turned off, and why
disabled = [
  "typo",  # broken until 2.0
]

[systems.zendesk]
base_url = "https://acme.zendesk.com"  # production
"""


def test_disable_adds_the_name_and_keeps_the_comments(tmp_path: Path) -> None:
    config = tmp_path / "cxbridge.toml"
    config.write_text(COMMENTED, encoding="utf-8")
    result = run(["plugins", "disable", "greeter"], config=config)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Disabled greeter in {config}.\n"
    assert config.read_text(encoding="utf-8") == COMMENTED.replace(
        '  "typo",  # broken until 2.0\n', '  "typo",  # broken until 2.0\n  "greeter",\n'
    )
    assert load_config(config, environ={}).disabled_plugins == ["typo", "greeter"]
    listed = run(["plugins", "list"], config=config)
    assert "disabled (config)" in next(ln for ln in listed.stdout.splitlines() if ln.startswith("greeter"))


def test_enable_removes_the_name_and_keeps_the_comments(tmp_path: Path) -> None:
    config = tmp_path / "cxbridge.toml"
    config.write_text(COMMENTED, encoding="utf-8")
    result = run(["plugins", "enable", "typo"], config=config)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Enabled typo in {config}.\n"
    text = config.read_text(encoding="utf-8")
    assert text == COMMENTED.replace('  "typo",  # broken until 2.0\n', "")
    assert tomllib.loads(text)["plugins"]["disabled"] == []


def test_disable_creates_the_plugins_section_when_missing(tmp_path: Path) -> None:
    config = tmp_path / "cxbridge.toml"
    original = '# only a system\n[systems.jira]\nbase_url = "https://acme.atlassian.net"\n'
    config.write_text(original, encoding="utf-8")
    assert run(["plugins", "disable", "greeter"], config=config).exit_code == 0
    text = config.read_text(encoding="utf-8")
    assert text.startswith(original)
    assert tomllib.loads(text) == {
        "systems": {"jira": {"base_url": "https://acme.atlassian.net"}},
        "plugins": {"disabled": ["greeter"]},
    }


def test_enable_and_disable_are_idempotent(tmp_path: Path) -> None:
    config = tmp_path / "cxbridge.toml"
    config.write_text(COMMENTED, encoding="utf-8")
    again = run(["plugins", "disable", "typo"], config=config)
    assert again.exit_code == 0
    assert again.stdout == f"typo is already disabled in {config}.\n"
    assert config.read_text(encoding="utf-8") == COMMENTED
    not_disabled = run(["plugins", "enable", "greeter"], config=config)
    assert not_disabled.exit_code == 0
    assert not_disabled.stdout == f"greeter is not disabled in {config}.\n"
    assert config.read_text(encoding="utf-8") == COMMENTED


def test_an_unknown_name_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    config = tmp_path / "cxbridge.toml"
    config.write_text(COMMENTED, encoding="utf-8")
    result = run(["plugins", "disable", "gretter"], config=config)
    assert result.exit_code == 1
    assert result.stderr == "Error: unknown plugin 'gretter' (known: core, greeter, typo)\n"
    assert config.read_text(encoding="utf-8") == COMMENTED


def test_a_stale_name_can_still_be_enabled(tmp_path: Path) -> None:
    """A plugin uninstalled while disabled can be taken off the list."""
    config = tmp_path / "cxbridge.toml"
    config.write_text('[plugins]\ndisabled = ["gone"]\n', encoding="utf-8")
    result = run(["plugins", "enable", "gone"], config=config)
    assert result.exit_code == 0, result.output
    assert tomllib.loads(config.read_text(encoding="utf-8"))["plugins"]["disabled"] == []


def test_enable_and_disable_need_a_config_file(no_config: Path) -> None:
    result = run(["plugins", "disable", "greeter"])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: cxbridge.toml: no configuration file (run 'cxbridge init cxbridge.toml' to write one)\n"
    )
    assert not (no_config / "cxbridge.toml").exists()


def test_a_broken_disabled_list_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "cxbridge.toml"
    config.write_text('[plugins]\ndisabled = "greeter"\n', encoding="utf-8")
    for args in (["plugins", "disable", "typo"], ["plugins", "list"]):
        result = run(args, config=config)
        assert result.exit_code == 1
        assert result.stderr == f"Error: {config}: plugins.disabled: expected a list, got str 'greeter'\n"


def test_enable_notes_when_the_allowlist_keeps_the_plugin_off(tmp_path: Path) -> None:
    config = tmp_path / "cxbridge.toml"
    config.write_text(COMMENTED, encoding="utf-8")
    obj = CliContext(plugins_factory=factory, environ={ALLOWLIST_ENV: "greeter"})
    result = CliRunner().invoke(cli, ["--config", str(config), "plugins", "enable", "typo"], obj=obj)
    assert result.exit_code == 0
    assert f"Note: {ALLOWLIST_ENV} is set and does not name typo" in result.stdout
