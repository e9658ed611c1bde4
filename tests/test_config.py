"""Loading the config: every problem names the file, the key and what was expected; secrets stay secret."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from cxbridge.config import CONFIG_ENV, CORE_SECTIONS, load_config, resolve_path
from cxbridge.connectors import ConfigKey
from cxbridge.errors import ConfigError, PluginError
from cxbridge.plugins import Plugins, build_plugins
from cxbridge.secrets import REDACTED, Secret

TOKEN = "s3cr3t-token-value-0123456789"


@pytest.fixture
def plugins(make_connector: Any, connectors_plugin: Any) -> Plugins:
    """One in-memory plugin whose connector ``fake`` takes a required secret and two plain keys."""
    fake = make_connector(
        "fake",
        config_keys={
            "token": ConfigKey(Secret, required=True, help="the API token"),
            "project": ConfigKey(str, required=True, help="the project key"),
            "page_size": ConfigKey(int, default=50, help="items per page"),
            "mode": ConfigKey(str, default="cloud", choices=("cloud", "datacenter")),
        },
    )
    return build_plugins(use_env=False, entry_points=list, extra=[("fake", connectors_plugin(fake))])


def write(tmp_path: Path, text: str, name: str = "cxbridge.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


FAKE_SYSTEM = """
[systems.fake]
base_url = "https://fake.example.com"
token = { env = "FAKE_TOKEN" }
project = "SUP"
"""


def error_of(path: Path, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)
    return str(info.value)


# -- what a valid file gives -----------------------------------------------------------------------------------


def test_an_empty_file_gives_every_default(tmp_path: Path) -> None:
    """Every core key has its default when the file leaves it out."""
    config = load_config(write(tmp_path, ""), environ={})
    for section, keys in CORE_SECTIONS.items():
        assert config.section(section) == {key: spec.default for key, spec in keys.items()}
    assert config.systems == {}


def test_a_system_is_checked_against_its_connector_keys(tmp_path: Path, plugins: Plugins) -> None:
    """With plugins, a system table gets the connector's keys with defaults, and the secret as a Secret."""
    path = write(tmp_path, FAKE_SYSTEM)
    config = load_config(path, plugins=plugins, environ={"FAKE_TOKEN": TOKEN})
    fake = config.system("fake")
    assert (fake.plugin, fake.base_url, fake.enabled) == ("fake", "https://fake.example.com", True)
    assert fake.get("project") == "SUP"
    assert fake.get("page_size") == 50
    token = fake.get("token")
    assert isinstance(token, Secret)
    assert token.reveal() == TOKEN
    assert token.source == "env:FAKE_TOKEN"
    assert fake.secrets() == [token]
    assert config.all_secrets() == [token]


def test_relative_store_and_template_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    """A config in another folder keeps its store and templates beside it."""
    path = write(tmp_path, '[cxbridge]\nstore = "data/x.db"\ntemplate_dirs = ["tpl", "/abs/tpl"]\n')
    config = load_config(path, environ={})
    assert config.store_path() == tmp_path / "data" / "x.db"
    assert config.template_dirs() == [tmp_path / "tpl", Path("/abs/tpl")]


# -- every problem names the file, the key and the expectation ---------------------------------------------


def test_a_wrong_type_names_the_file_the_key_and_the_expected_type(tmp_path: Path) -> None:
    path = write(tmp_path, '[webhooks]\nport = "8787"\n')
    assert error_of(path, environ={}) == f"{path}: webhooks.port: expected an integer, got str '8787'"


def test_a_boolean_is_not_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, "[webhooks]\nport = true\n")
    assert error_of(path, environ={}) == f"{path}: webhooks.port: expected an integer, got bool True"


def test_an_integer_is_accepted_where_a_number_is_expected(tmp_path: Path) -> None:
    path = write(tmp_path, '[systems.x]\nbase_url = "https://x.example.com"\ntimeout = 10\n')
    assert load_config(path, environ={}).system("x").timeout == 10.0


def test_a_value_outside_the_choices_lists_them(tmp_path: Path) -> None:
    path = write(tmp_path, '[cxbridge]\nlog_level = "LOUD"\n')
    assert error_of(path, environ={}) == (
        f"{path}: cxbridge.log_level: expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"
    )


def test_an_unknown_key_names_the_file_the_key_and_the_known_keys(tmp_path: Path) -> None:
    path = write(tmp_path, '[cxbridge]\nstor = "x.db"\n')
    assert error_of(path, environ={}) == (
        f"{path}: cxbridge: unknown key 'stor' "
        "(known: inbox_retention_days, job_retention_days, log_level, store, store_password, template_dirs)"
    )


def test_an_unknown_section_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[escalations]\n")
    message = error_of(path, environ={})
    assert message.startswith(f"{path}: unknown section [escalations] (known: ")
    assert "escalation," in message


def test_an_unknown_key_in_a_system_lists_the_connector_s_keys(tmp_path: Path, plugins: Plugins) -> None:
    path = write(tmp_path, FAKE_SYSTEM + 'projcet = "X"\n')
    message = error_of(path, plugins=plugins, environ={"FAKE_TOKEN": TOKEN})
    assert message.startswith(f"{path}: systems.fake: unknown key 'projcet' (known: ")
    assert "project" in message
    assert "base_url" in message


def test_a_missing_required_key_names_it_with_its_type_and_purpose(tmp_path: Path, plugins: Plugins) -> None:
    path = write(tmp_path, FAKE_SYSTEM.replace('project = "SUP"\n', ""))
    assert error_of(path, plugins=plugins, environ={"FAKE_TOKEN": TOKEN}) == (
        f"{path}: systems.fake: missing required key 'project' (a string; the project key)"
    )


def test_a_system_without_base_url_is_refused_even_without_plugins(tmp_path: Path) -> None:
    path = write(tmp_path, "[systems.zendesk]\nemail = 'a@b.c'\n")
    message = error_of(path, environ={})
    assert message.startswith(f"{path}: systems.zendesk: missing required key 'base_url' (a string;")


def test_a_plugin_key_of_the_wrong_type(tmp_path: Path, plugins: Plugins) -> None:
    path = write(tmp_path, FAKE_SYSTEM + 'page_size = "many"\n')
    assert error_of(path, plugins=plugins, environ={"FAKE_TOKEN": TOKEN}) == (
        f"{path}: systems.fake.page_size: expected an integer, got str 'many'"
    )


def test_a_system_whose_plugin_is_unknown_names_the_known_systems(tmp_path: Path, plugins: Plugins) -> None:
    path = write(tmp_path, '[systems.crm]\nplugin = "salesforce"\nbase_url = "https://x.example.com"\n')
    with pytest.raises(PluginError, match=r"no enabled plugin provides the system 'salesforce' \(known: fake\)"):
        load_config(path, plugins=plugins, environ={})


def test_invalid_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[cxbridge]\nstore = \n")
    message = error_of(path, environ={})
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "line 2" in message


def test_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    message = error_of(path, environ={})
    assert message.startswith(f"{path}: no configuration file (run 'cxbridge init {path}'")


def test_the_path_is_the_option_then_the_environment_then_the_default() -> None:
    assert resolve_path("a.toml", {CONFIG_ENV: "b.toml"}) == Path("a.toml")
    assert resolve_path(None, {CONFIG_ENV: "b.toml"}) == Path("b.toml")
    assert resolve_path(None, {}) == Path("cxbridge.toml")


def test_an_unknown_system_name_lists_the_configured_ones(tmp_path: Path) -> None:
    path = write(tmp_path, '[systems.zendesk]\nbase_url = "https://x.zendesk.com"\n')
    config = load_config(path, environ={})
    with pytest.raises(ConfigError, match=r"no \[systems.jira\] table \(configured: zendesk\)"):
        config.system("jira")


# -- secrets -------------------------------------------------------------------------------------------------


def test_an_unset_environment_variable_is_named(tmp_path: Path, plugins: Plugins) -> None:
    path = write(tmp_path, FAKE_SYSTEM)
    assert error_of(path, plugins=plugins, environ={}) == (
        f"{path}: systems.fake.token: the environment variable FAKE_TOKEN is not set"
    )


def test_an_empty_environment_variable_counts_as_unset(tmp_path: Path, plugins: Plugins) -> None:
    path = write(tmp_path, FAKE_SYSTEM)
    assert "FAKE_TOKEN is not set" in error_of(path, plugins=plugins, environ={"FAKE_TOKEN": ""})


def test_a_secret_file_relative_to_the_config(tmp_path: Path, plugins: Plugins) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "fake.token").write_text(TOKEN + "\n", encoding="utf-8")
    path = write(tmp_path, FAKE_SYSTEM.replace('{ env = "FAKE_TOKEN" }', '{ file = "secrets/fake.token" }'))
    token = load_config(path, plugins=plugins, environ={}).system("fake").get("token")
    assert isinstance(token, Secret)
    assert token.reveal() == TOKEN
    assert token.source == f"file:{tmp_path / 'secrets' / 'fake.token'}"


def test_a_missing_or_empty_secret_file_is_named(tmp_path: Path, plugins: Plugins) -> None:
    path = write(tmp_path, FAKE_SYSTEM.replace('{ env = "FAKE_TOKEN" }', '{ file = "fake.token" }'))
    assert error_of(path, plugins=plugins, environ={}).startswith(
        f"{path}: systems.fake.token: cannot read the secret file {tmp_path / 'fake.token'}: "
    )
    (tmp_path / "fake.token").write_text("  \n", encoding="utf-8")
    assert error_of(path, plugins=plugins, environ={}) == (
        f"{path}: systems.fake.token: the secret file {tmp_path / 'fake.token'} is empty"
    )


def test_an_inline_secret_is_refused_without_echoing_it(tmp_path: Path, plugins: Plugins) -> None:
    path = write(tmp_path, FAKE_SYSTEM.replace('{ env = "FAKE_TOKEN" }', f'"{TOKEN}"'))
    message = error_of(path, plugins=plugins, environ={})
    assert message == (
        f'{path}: systems.fake.token: secrets are never written inline; use {{ env = "NAME" }} or {{ file = "path" }}'
    )
    assert TOKEN not in message


def test_an_inline_webhook_secret_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, f'[webhooks.secrets]\nzendesk = ["{TOKEN}"]\n')
    message = error_of(path, environ={})
    assert message.startswith(f"{path}: webhooks.secrets.zendesk[0]: secrets are never written inline")
    assert TOKEN not in message


def test_webhook_secrets_are_lists_of_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, '[webhooks.secrets]\njira = [{ env = "OLD" }, { env = "NEW" }]\n')
    config = load_config(path, environ={"OLD": "old-secret", "NEW": "new-secret"})
    assert [s.source for s in config.section("webhooks")["secrets"]["jira"]] == ["env:OLD", "env:NEW"]


def test_a_secret_table_with_another_shape_is_refused(tmp_path: Path, plugins: Plugins) -> None:
    path = write(tmp_path, FAKE_SYSTEM.replace('{ env = "FAKE_TOKEN" }', '{ value = "x" }'))
    assert error_of(path, plugins=plugins, environ={}) == (
        f'{path}: systems.fake.token: expected {{ env = "NAME" }} or {{ file = "path" }}'
    )


def test_secret_repr_and_str_are_redacted() -> None:
    secret = Secret(TOKEN, source="env:FAKE_TOKEN")
    assert str(secret) == REDACTED
    assert repr(secret) == "Secret(***, source='env:FAKE_TOKEN')"
    assert TOKEN not in f"{secret} {secret!r} {[secret]} { ({'token': secret}) }"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_a_loaded_config_never_shows_a_secret_in_its_repr(tmp_path: Path, plugins: Plugins) -> None:
    path = write(tmp_path, FAKE_SYSTEM)
    config = load_config(path, plugins=plugins, environ={"FAKE_TOKEN": TOKEN})
    assert TOKEN not in repr(config)
    assert TOKEN not in repr(config.system("fake"))
    assert re.search(r"Secret\(\*\*\*, source='env:FAKE_TOKEN'\)", repr(config.system("fake")))


ZD = 'email = "a@b.c"\napi_token = { env = "T" }\nissue_key_field_id = 1\n'


@pytest.mark.parametrize(
    ("system", "url", "extra"),
    [
        ("zendesk", "https://acme.zendesk.com.evil.example", ZD),
        ("zendesk", "http://127.0.0.1:8080", ZD),
        ("jira", "https://jira.internal.example", 'email = "a@b.c"\napi_token = { env = "T" }\nproject = "ENG"\n'),
    ],
)
def test_a_base_url_off_the_vendors_domains_fails_at_load(tmp_path: Path, system: str, url: str, extra: str) -> None:
    """DESIGN section 5: base URLs are checked when the config loads, with the plugin's own rules."""
    from cxbridge.plugins import build_plugins

    path = write(tmp_path, f'[systems.{system}]\nbase_url = "{url}"\n{extra}')
    with pytest.raises(ConfigError, match=rf"systems\.{system}\.base_url"):
        load_config(path, plugins=build_plugins(), environ={"T": "token-value"})


def test_jira_data_center_may_use_the_admins_own_host(tmp_path: Path) -> None:
    from cxbridge.plugins import build_plugins

    body = '[systems.jira]\nbase_url = "https://jira.internal.example"\ndeployment = "datacenter"\n'
    body += 'personal_access_token = { env = "T" }\nproject = "ENG"\n'
    config = load_config(write(tmp_path, body), plugins=build_plugins(), environ={"T": "token-value"})
    assert config.system("jira").base_url == "https://jira.internal.example"
