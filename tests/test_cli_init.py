"""``cxbridge init``: a commented starting config that loads, covers every section, and is never clobbered."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cxbridge.cli import CliContext, cli
from cxbridge.cli.admin import template_env_vars
from cxbridge.config import CORE_SECTIONS, load_config
from cxbridge.init_template import TEMPLATE
from cxbridge.plugins import build_plugins
from cxbridge.secrets import Secret

ENV = {
    "ZENDESK_API_TOKEN": "zendesk-token-1234",
    "JIRA_API_TOKEN": "jira-token-1234",
    "HUBSPOT_ACCESS_TOKEN": "hubspot-token-1234",
}


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    obj = CliContext(plugins_factory=lambda disabled: build_plugins(disabled, entry_points=list))
    return CliRunner().invoke(cli, args, obj=obj, env=env)


def system_section(name: str) -> str:
    """The template's text from ``[systems.<name>]`` to the next table header."""
    match = re.search(rf"^\[systems\.{name}\]\n(.*?)(?=^\[|\Z)", TEMPLATE, flags=re.M | re.S)
    assert match, f"no [systems.{name}] in the template"
    return match.group(1)


def test_init_writes_the_template_and_says_what_to_do_next(tmp_path: Path) -> None:
    target = tmp_path / "cxbridge.toml"
    result = run(["init", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == TEMPLATE
    assert result.stdout.splitlines()[0] == f"Wrote {target}."
    assert "ZENDESK_API_TOKEN, JIRA_API_TOKEN, HUBSPOT_ACCESS_TOKEN" in result.stdout
    assert f"cxbridge --config {target} doctor" in result.stdout


def test_the_written_file_loads_without_plugins(tmp_path: Path) -> None:
    """The config loads as written, before any secret is set (plugin keys are checked only with plugins)."""
    target = tmp_path / "cxbridge.toml"
    assert run(["init", str(target)]).exit_code == 0
    config = load_config(target, environ={})
    assert set(config.systems) == {"zendesk", "jira", "hubspot"}
    assert config.system("jira").base_url == "https://YOURCOMPANY.atlassian.net"
    assert config.system("zendesk").base_url == "https://YOURCOMPANY.zendesk.com"
    assert config.system("hubspot").base_url == "https://api.hubapi.com"
    assert config.system("jira").get("api_token") == {"env": "JIRA_API_TOKEN"}
    assert config.system("jira").get("deployment") == "cloud"
    assert config.store_path() == tmp_path / "cxbridge.db"


def test_the_template_sets_every_core_key_to_its_default() -> None:
    """Every section and key of CORE_SECTIONS is in the file, and its value there is the default; a key without a
    default (the systems that fill the roles, chosen by role when unset) names one of the file's systems. An
    optional secret (the PostgreSQL store's password) is shown in a comment: set, it would be read at load."""
    raw = tomllib.loads(TEMPLATE)
    assert set(CORE_SECTIONS) <= set(raw)
    for section, keys in CORE_SECTIONS.items():
        optional_secrets = {k for k, spec in keys.items() if Secret in spec.types and spec.default is None}
        assert set(raw[section]) == set(keys) - optional_secrets, section
        for key in optional_secrets:
            assert re.search(rf"^#\s+{key} = {{ env = ", TEMPLATE, flags=re.M), f"{section}.{key}"
        for key, spec in keys.items():
            if key in optional_secrets:
                continue
            if spec.default is None:
                assert raw[section][key] in raw["systems"], f"{section}.{key}"
            else:
                assert raw[section][key] == spec.default, f"{section}.{key}"


def test_every_core_key_is_explained_by_a_comment() -> None:
    """An admin reading the file sees a comment above (or beside) each section's keys."""
    for section in CORE_SECTIONS:
        block = re.search(rf"^\[{section}\]\n(.*?)(?=^\[(?!{section}\.)|\Z)", TEMPLATE, flags=re.M | re.S)
        assert block, section
        assert "#" in block.group(1), f"[{section}] has no comment"


def test_the_systems_hold_the_keys_their_connectors_need() -> None:
    """The keys the admin fills in (secrets by env name) are in each system's table, live or commented."""
    expected = {
        "zendesk": ["base_url", "email", "api_token", "oauth_token", "issue_key_field_id"],
        "jira": ["base_url", "deployment", "email", "api_token", "personal_access_token", "project", "issue_type"],
        "hubspot": ["base_url", "access_token", "tier_property", "arr_property", "owner_property"],
    }
    for system, keys in expected.items():
        text = system_section(system)
        for key in keys:
            assert re.search(rf"^#? ?{key} = ", text, flags=re.M), f"[systems.{system}] lacks {key}"
    assert 'api_token = { env = "ZENDESK_API_TOKEN" }' in system_section("zendesk")
    assert 'api_token = { env = "JIRA_API_TOKEN" }' in system_section("jira")
    assert 'access_token = { env = "HUBSPOT_ACCESS_TOKEN" }' in system_section("hubspot")
    assert template_env_vars() == list(ENV)


def test_the_template_holds_no_inline_secret() -> None:
    """Every secret-like key is an env or file reference, never a value."""
    for line in TEMPLATE.splitlines():
        if re.match(r"^#? ?\w*(token|secret)\w* = ", line):
            assert re.search(r"= \{ (env|file) = ", line) or line.endswith("= []"), line


def test_the_written_file_loads_with_the_built_in_plugins(tmp_path: Path) -> None:
    """With the connectors installed, the file passes their config_keys (once the secrets are set)."""
    plugins = build_plugins(use_env=False)
    connectors = plugins.connectors()
    missing = {"zendesk", "jira", "hubspot"} - set(connectors)
    if missing:
        pytest.skip(f"connectors not available yet: {', '.join(sorted(missing))}")
    target = tmp_path / "cxbridge.toml"
    assert run(["init", str(target)]).exit_code == 0
    config = load_config(target, plugins=plugins, environ=ENV)
    assert config.system("jira").get("api_token").source == "env:JIRA_API_TOKEN"
    for system, cls in connectors.items():
        text = system_section(system)
        for key in cls.config_keys:
            assert re.search(rf"^#? ?{key} = ", text, flags=re.M), f"[systems.{system}] does not show {key}"


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "cxbridge.toml"
    target.write_text("# mine\n", encoding="utf-8")
    result = run(["init", str(target)])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {target} already exists; pass --force to overwrite it\n"
    assert target.read_text(encoding="utf-8") == "# mine\n"
    forced = run(["init", str(target), "--force"])
    assert forced.exit_code == 0
    assert target.read_text(encoding="utf-8") == TEMPLATE


def test_init_writes_where_the_config_option_or_environment_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["init"]).exit_code == 0
    assert (tmp_path / "cxbridge.toml").read_text(encoding="utf-8") == TEMPLATE
    assert run(["init"], env={"CXBRIDGE_CONFIG": "env/c.toml"}).exit_code == 0
    assert (tmp_path / "env" / "c.toml").exists()
    assert run(["--config", "opt/c.toml", "init"]).exit_code == 0
    assert (tmp_path / "opt" / "c.toml").exists()
    result = run(["init"])
    assert result.exit_code == 1
    assert "cxbridge.toml already exists" in result.stderr


def test_init_refuses_a_folder(tmp_path: Path) -> None:
    result = run(["init", str(tmp_path)])
    assert result.exit_code != 0
    assert len(result.stderr.splitlines()) == 1
