"""Typed settings: every core key fully described, every problem reported at once, the store location, the schema."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import cxbridge.settings as settings_module
from cxbridge import connectors
from cxbridge.config import CORE_SECTIONS, Config, json_schema, load_config
from cxbridge.errors import ConfigError
from cxbridge.init_template import TEMPLATE
from cxbridge.plugins import Plugins, build_plugins
from cxbridge.settings import ConfigKey, Problems
from cxbridge.store import StoreError, open_store
from cxbridge.workflows import impact, policy

# Each refused on its own line, each naming the file and the key: (TOML, key path, words of the message).
INVALID = [
    ("[webhooks]\nport = 99999\n", "webhooks.port", "expected an integer from 1 to 65535, got 99999"),
    ('[impact]\ntiers = [1, "gold"]\n', "impact.tiers[0]", "expected a string, got int 1"),
    ("[sync]\ndraft_reply_on = [5]\n", "sync.draft_reply_on[0]", "expected a string, got int 5"),
    ("[sync.status_map]\ndone = 5\n", "sync.status_map.done", "expected a string, got int 5"),
    ("[cxbridge]\ntemplate_dirs = [3]\n", "cxbridge.template_dirs[0]", "expected a string, got int 3"),
    ('[impact.fields]\narrr = "customfield_1"\n', "impact.fields", "unknown key 'arrr' (known: arr, customers,"),
]
ALL_INVALID = """
[cxbridge]
template_dirs = [3]

[webhooks]
port = 99999

[impact]
tiers = [1, 2]

[impact.fields]
arrr = "customfield_1"

[sync]
draft_reply_on = [5]

[sync.status_map]
done = 5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cxbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={}, **kwargs)
    return str(info.value)


@pytest.fixture(scope="module")
def builtin_plugins() -> Plugins:
    return build_plugins(use_env=False)


# -- every problem at once --------------------------------------------------------------------------------------


def test_every_problem_is_reported_in_one_error(tmp_path: Path) -> None:
    """Six mistakes in one file: one ConfigError, a summary line, then one line per problem naming file and key."""
    path = write(tmp_path, ALL_INVALID)
    lines = error_of(path).splitlines()
    assert lines[0] == f"{path}: 7 problems:"  # tiers = [1, 2] is two problems
    body = lines[1:]
    assert len(body) == 7
    assert all(line.startswith(f"{path}: ") for line in body)
    for _, key, words in INVALID:
        assert any(line.startswith(f"{path}: {key}: ") and words in line for line in body), key
    assert f"{path}: impact.tiers[1]: expected a string, got int 2" in body


def test_the_command_line_shows_one_problem_a_line(tmp_path: Path) -> None:
    """A command on a file with several mistakes exits 1 and prints the summary, then each problem on its line."""
    from click.testing import CliRunner

    from cxbridge.cli import cli

    path = write(tmp_path, ALL_INVALID)
    result = CliRunner().invoke(cli, ["--config", str(path), "links", "1"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"Error: {path}: 7 problems:"
    assert len(lines) == 8
    assert f"  {path}: webhooks.port: expected an integer from 1 to 65535, got 99999" in lines


@pytest.mark.parametrize(("text", "key", "words"), INVALID)
def test_a_single_problem_keeps_one_line(tmp_path: Path, text: str, key: str, words: str) -> None:
    """One mistake alone gives one line: file, key path, what was expected and what was found."""
    path = write(tmp_path, text)
    message = error_of(path)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: ")
    assert words in message


def test_problems_of_systems_and_sections_are_collected_together(tmp_path: Path) -> None:
    """A bad system, an unknown section and a bad core key are all in the one message."""
    path = write(
        tmp_path,
        '[escalations]\n[webhooks]\nworkers = 0\n[systems.x]\nbase_url = "https://x.example.com"\ntimeout = 0\n'
        "max_retries = -1\n[systems.y]\nsandbox = true\n",
    )
    message = error_of(path)
    assert message.splitlines()[0] == f"{path}: 5 problems:"
    assert f"{path}: unknown section [escalations]" in message
    assert f"{path}: webhooks.workers: expected an integer of 1 or more, got 0" in message
    assert f"{path}: systems.x.timeout: expected a number above 0, got 0" in message
    assert f"{path}: systems.x.max_retries: expected an integer of 0 or more, got -1" in message
    assert f"{path}: systems.y: missing required key 'base_url'" in message


def test_a_policy_rule_of_the_wrong_shape_is_a_problem_and_its_compile_errors_still_count(tmp_path: Path) -> None:
    """Rules are shape-checked with the other keys; a rule of the right shape is then compiled by policy.py."""
    path = write(tmp_path, '[[policies.rules]]\nname = "r"\ngrant = { reopen = "yes" }\n')
    message = error_of(path)
    assert f"{path}: policies.rules[0]: missing required key 'when'" in message
    assert f"{path}: policies.rules[0].grant.reopen: expected true or false, got str 'yes'" in message
    path = write(
        tmp_path, '[webhooks]\nport = 0\n[[policies.rules]]\nname = "r"\nwhen = "x ==="\ngrant = { reopen = true }\n'
    )
    message = error_of(path)
    assert message.splitlines()[0] == f"{path}: 2 problems:"
    assert "syntax error in the condition" in message


def test_problems_alone_give_no_error_and_many_give_a_summary() -> None:
    """Problems: none is no error, one is its own line, several are counted on a summary line."""
    problems = Problems("f.toml")
    assert problems.error() is None
    problems.add("a.b", "expected x")
    assert str(problems.error()) == "f.toml: a.b: expected x"
    problems.add("", "unknown section [c]")
    assert str(problems.error()) == "f.toml: 2 problems:\nf.toml: a.b: expected x\nf.toml: unknown section [c]"


# -- what each key accepts ------------------------------------------------------------------------------------


def test_status_map_takes_categories_or_per_system_maps(tmp_path: Path) -> None:
    """status_map: category -> status, or system -> (category -> status); categories checked in both."""
    good = '[sync.status_map]\ndone = "solved"\n[sync.status_map.zendesk]\nnew = "open"\nindeterminate = "pending"\n'
    config = load_config(write(tmp_path, good), environ={})
    assert config.section("sync")["status_map"] == {
        "done": "solved",
        "zendesk": {"new": "open", "indeterminate": "pending"},
    }
    path = write(tmp_path, '[sync.status_map.zendesk]\nfinished = "solved"\n')
    assert error_of(path) == (
        f"{path}: sync.status_map.zendesk: unknown key 'finished' (known: done, indeterminate, new)"
    )
    path = write(tmp_path, '[sync.status_map]\nfinished = "solved"\n')
    assert error_of(path).startswith(f"{path}: sync.status_map.finished: expected a table (")


def test_tables_of_strings_lists_and_secrets(tmp_path: Path) -> None:
    """integration_users takes an id or a list of ids; priority is a table of tables; secrets a list or one."""
    text = """
[sync.integration_users]
zendesk = 123
jira = ["abc", "def"]
[escalation.priority.enterprise]
urgent = "Highest"
[webhooks.secrets]
jira = { env = "ONE" }
[impact.fields]
arr = "customfield_1"
"""
    config = load_config(write(tmp_path, text), environ={"ONE": "one-secret"})
    assert config.section("sync")["integration_users"] == {"zendesk": 123, "jira": ["abc", "def"]}
    assert config.section("escalation")["priority"] == {"enterprise": {"urgent": "Highest"}}
    assert [s.source for s in config.section("webhooks")["secrets"]["jira"]] == ["env:ONE"]
    assert config.section("impact")["fields"] == {"arr": "customfield_1"}
    path = write(tmp_path, "[escalation.priority]\nenterprise = 'High'\n[sync.integration_users]\nzendesk = [true]\n")
    message = error_of(path)
    assert f"{path}: escalation.priority.enterprise: expected a table, got str 'High'" in message
    assert f"{path}: sync.integration_users.zendesk[0]: expected a string or an integer, got bool True" in message


def test_an_empty_tier_name_is_refused(tmp_path: Path) -> None:
    """[impact] tiers holds non-empty strings."""
    path = write(tmp_path, '[impact]\ntiers = ["gold", ""]\n')
    assert error_of(path) == f"{path}: impact.tiers[1]: expected a non-empty string, got ''"


def test_a_plugin_key_may_describe_list_elements(tmp_path: Path, make_connector: Any, connectors_plugin: Any) -> None:
    """Plugins use the same ConfigKey fields (items, min...) for their own keys, checked at load."""
    fake = make_connector("fake", config_keys={"stages": ConfigKey(list, default=[], items=ConfigKey(str, min=1))})
    plugins = build_plugins(use_env=False, entry_points=list, extra=[("fake", connectors_plugin(fake))])
    path = write(tmp_path, '[systems.fake]\nbase_url = "https://fake.example.com"\nstages = ["a", 2]\n')
    assert error_of(path, plugins=plugins) == f"{path}: systems.fake.stages[1]: expected a string, got int 2"


def test_the_specs_hold_the_same_keys_as_their_readers() -> None:
    """The [impact] fields keys are impact's values; rule and grant keys are the ones policy.py compiles."""
    assert impact.VALUES is settings_module.IMPACT_VALUES
    assert set(CORE_SECTIONS["impact"]["fields"].keys or {}) == set(impact.VALUES)
    assert tuple(settings_module.POLICY_RULE_KEYS) == policy.RULE_KEYS
    assert tuple(settings_module.POLICY_GRANT_KEYS) == policy.GRANT_KEYS


def test_config_key_is_one_class_for_core_and_plugins() -> None:
    """cxbridge.connectors re-exports ConfigKey from cxbridge.settings, so plugins keep importing it there."""
    assert connectors.ConfigKey is ConfigKey


def test_settings_is_a_leaf_module() -> None:
    """cxbridge.settings imports only the stdlib and the other leaf modules of cxbridge."""
    tree = ast.parse(Path(settings_module.__file__).read_text(encoding="utf-8"))
    local = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
    assert local <= {"errors", "secrets", "models", "redact", "signals"}


# -- the store location ---------------------------------------------------------------------------------------


def test_the_store_is_a_path_or_a_database_url(tmp_path: Path) -> None:
    """A path is relative to the file; sqlite:/// gives its path; any other URL stays a string."""
    for store, expected in [
        ("x.db", tmp_path / "x.db"),
        ("sqlite:///data/x.db", tmp_path / "data" / "x.db"),
        ("sqlite:////abs/x.db", Path("/abs/x.db")),
        ("postgresql://cx@db/cxbridge", "postgresql://cx@db/cxbridge"),
    ]:
        config = load_config(write(tmp_path, f'[cxbridge]\nstore = "{store}"\n'), environ={})
        assert config.store_location() == expected, store


def test_store_path_refuses_a_url(tmp_path: Path) -> None:
    """store_path() is for SQLite only: a database URL is a ConfigError."""
    path = write(tmp_path, '[cxbridge]\nstore = "postgresql://cx@db/cxbridge"\n')
    config = load_config(path, environ={})
    with pytest.raises(ConfigError) as info:
        config.store_path()
    assert (
        str(info.value)
        == f"{path}: cxbridge.store: postgresql://cx@db/cxbridge is a database URL, not a SQLite file path"
    )


@pytest.mark.parametrize(
    "url", ["postgresql://cx:hunter22@db/cxbridge", "postgresql://cx@db/cxbridge?password=hunter22"]
)
def test_a_store_url_with_an_inline_password_is_refused_at_load(tmp_path: Path, url: str) -> None:
    """The store's password is a secret like any other: never inline in the URL; the refusal does not show it."""
    path = write(tmp_path, f'[cxbridge]\nstore = "{url}"\n')
    message = error_of(path)
    assert "a password is never written inline" in message
    assert 'store_password = { env = "NAME" }' in message
    assert "hunter22" not in message


def test_a_malformed_sqlite_url_fails_at_load(tmp_path: Path) -> None:
    """sqlite:// without a path is refused when the file loads."""
    path = write(tmp_path, '[cxbridge]\nstore = "sqlite://"\n')
    assert error_of(path) == f"{path}: cxbridge.store: sqlite://: expected sqlite:///path/to/file.db"


def test_the_store_password_comes_from_its_secret_and_is_never_shown(tmp_path: Path) -> None:
    """store_password = { env } reaches the PostgreSQL store; an unreachable server is a StoreError that names the
    URL and never the password (which is also a known secret, scrubbed from logs)."""
    from cxbridge.runtime import Runtime

    text = '[cxbridge]\nstore = "postgresql://cx@127.0.0.1:1/cx"\nstore_password = { env = "CX_DB_PASSWORD" }\n'
    config = load_config(write(tmp_path, text), environ={"CX_DB_PASSWORD": "hunter22-db-password"})
    password = config.store_password()
    assert password is not None
    assert password.reveal() == "hunter22-db-password"
    assert password in config.all_secrets()
    runtime = Runtime(config, build_plugins(use_env=False, entry_points=list))
    with pytest.raises(StoreError) as info:
        runtime.store  # noqa: B018 -- opening is the point
    message = str(info.value)
    assert "cannot reach the store postgresql://cx@127.0.0.1:1/cx" in message
    assert "hunter22" not in message
    assert list(tmp_path.iterdir()) == [tmp_path / "cxbridge.toml"]


def test_open_store_takes_a_sqlite_url_and_refuses_other_schemes(tmp_path: Path) -> None:
    """open_store opens sqlite:///path as that file and refuses an unknown scheme by name."""
    with open_store(f"sqlite:///{tmp_path / 'u.db'}") as store:
        assert store.schema_version() >= 1
    assert (tmp_path / "u.db").exists()
    with pytest.raises(StoreError, match="not a store cxbridge can open"):
        open_store("mysql://db/cx")


def test_a_sqlite_path_config_still_gives_its_path() -> None:
    """Config.store_path() keeps returning the SQLite path for a plain store value."""
    config = Config(path=Path("/etc/cx/cxbridge.toml"), sections={"cxbridge": {"store": "cx.db"}}, systems={})
    assert config.store_path() == Path("/etc/cx/cx.db")


# -- the JSON Schema ------------------------------------------------------------------------------------------


def test_the_schema_is_valid_draft_2020_12(builtin_plugins: Plugins) -> None:
    """With and without plugins, the schema passes Draft202012Validator.check_schema."""
    for schema in (json_schema(), json_schema(builtin_plugins)):
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def test_the_schema_describes_the_core_keys() -> None:
    """Descriptions, defaults, enums and ranges come from the ConfigKey specs."""
    webhooks = json_schema()["properties"]["webhooks"]["properties"]
    assert webhooks["port"] == {
        "description": "the port 'cxbridge serve' listens on",
        "type": "integer",
        "minimum": 1,
        "maximum": 65535,
        "default": 8787,
    }
    sync = json_schema()["properties"]["sync"]["properties"]
    assert sync["draft_reply_on"]["items"] == {"type": "string", "minLength": 1}
    assert sync["not_fixed_resolutions"]["default"][:3] == ["Won't Do", "Won't Fix", "Duplicate"]
    assert webhooks["secrets"]["additionalProperties"]["anyOf"][1] == {"$ref": "#/$defs/secret"}


def test_the_init_template_validates_against_the_schema(builtin_plugins: Plugins) -> None:
    """The file 'cxbridge init' writes is valid under the schema, with and without the built-in plugins."""
    data = tomllib.loads(TEMPLATE)
    for schema in (json_schema(), json_schema(builtin_plugins)):
        errors = list(Draft202012Validator(schema).iter_errors(data))
        assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize(("text", "key", "words"), INVALID)
def test_each_invalid_example_fails_against_the_schema(text: str, key: str, words: str) -> None:
    """What load_config refuses, the schema refuses too."""
    data = tomllib.loads(TEMPLATE)
    for section, table in tomllib.loads(text).items():
        for name, value in table.items():
            target = data[section].setdefault(name, {}) if isinstance(value, dict) else data[section]
            if isinstance(value, dict):
                target.update(value)
            else:
                target[name] = value
    assert not Draft202012Validator(json_schema()).is_valid(data), key


def test_a_system_is_checked_against_its_plugin_keys(builtin_plugins: Plugins) -> None:
    """With plugins, a system table matches the keys of the plugin it names (the table name by default)."""
    validator = Draft202012Validator(json_schema(builtin_plugins))
    zendesk = {"base_url": "https://a.zendesk.com", "issue_key_field_id": 1, "api_token": {"env": "T"}}
    assert validator.is_valid({"systems": {"zendesk": zendesk}})
    assert validator.is_valid({"systems": {"helpdesk": {**zendesk, "plugin": "zendesk"}}})
    assert not validator.is_valid({"systems": {"helpdesk": zendesk}})  # no plugin named helpdesk
    assert not validator.is_valid({"systems": {"zendesk": {**zendesk, "project": "SUP"}}})  # a Jira key
    assert not validator.is_valid({"systems": {"zendesk": {**zendesk, "api_token": "inline"}}})
    assert not validator.is_valid({"systems": {"zendesk": {**zendesk, "timeout": 0}}})


def test_cli_config_schema_prints_and_writes_the_schema(tmp_path: Path) -> None:
    """``cxbridge config schema`` prints the JSON Schema (with each plugin's system keys) or writes it to a file."""
    import json

    from click.testing import CliRunner

    from cxbridge.cli import cli

    printed = CliRunner().invoke(cli, ["config", "schema"])
    assert printed.exit_code == 0, printed.output
    schema = json.loads(printed.stdout)
    Draft202012Validator.check_schema(schema)
    assert schema == json_schema(build_plugins())
    target = tmp_path / "schema.json"
    written = CliRunner().invoke(cli, ["config", "schema", "--output", str(target)])
    assert written.exit_code == 0, written.output
    assert json.loads(target.read_text(encoding="utf-8")) == schema
