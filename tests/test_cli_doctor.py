"""``cxbridge doctor``: the config, the plugins, then one line per enabled system with the reason and a hint."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cxbridge.cli import CliContext, cli
from cxbridge.connectors import ConfigKey, Connector
from cxbridge.errors import AuthError, ConfigError, NotFound, RateLimited, Unavailable
from cxbridge.hookspecs import hookimpl
from cxbridge.plugins import build_plugins
from cxbridge.secrets import Secret

TOKEN = "doctor-secret-token-4242"
KEYS = {"token": ConfigKey(Secret, required=True, help="the API token")}


def raising(exc: Exception) -> Callable[[Any], str]:
    def check(self: Any) -> str:
        raise exc

    return check


@pytest.fixture
def doctor(tmp_path: Path, make_connector: Any, connectors_plugin: Any) -> Callable[..., Result]:
    """Run doctor against a config with systems ``<name>`` whose connectors check the given way."""

    def run(
        systems: dict[str, Callable[[Any], str] | None],
        *,
        environ: dict[str, str] | None = None,
        extra_toml: str = "",
        extra_plugins: list[tuple[str, object]] | None = None,
        args: tuple[str, ...] = (),
    ) -> Result:
        classes = [make_connector(name, config_keys=KEYS, check=check) for name, check in systems.items()]
        tables = "".join(
            f'[systems.{name}]\nbase_url = "https://{name}.example.com"\ntoken = {{ env = "{name.upper()}_TOKEN" }}\n'
            for name in systems
        )
        config = tmp_path / "cxbridge.toml"
        config.write_text(tables + extra_toml, encoding="utf-8")
        env = {f"{name.upper()}_TOKEN": TOKEN for name in systems} if environ is None else environ
        plugins = [("fakes", connectors_plugin(*classes)), *(extra_plugins or [])]
        obj = CliContext(
            config,
            environ=env,
            plugins_factory=lambda disabled: build_plugins(disabled, use_env=False, entry_points=list, extra=plugins),
        )
        return CliRunner().invoke(cli, ["doctor", *args], obj=obj)

    return run


def test_without_a_config_file_one_line_names_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 'Done when' line: no config, one line, no traceback, non-zero exit."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["doctor"], obj=CliContext(plugins_factory=lambda d: build_plugins(d, entry_points=list))
    )
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "✗ config: cxbridge.toml: no configuration file (run 'cxbridge init cxbridge.toml' to write one, "
        "or pass --config / set CXBRIDGE_CONFIG)"
    ]


def test_an_unset_secret_variable_is_one_line_naming_it(doctor: Callable[..., Result], tmp_path: Path) -> None:
    """A 'Done when' line: the env var behind a secret is unset."""
    result = doctor({"jira": None}, environ={})
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"✗ config: {tmp_path / 'cxbridge.toml'}: systems.jira.token: the environment variable JIRA_TOKEN is not set"
    ]


def test_all_good(doctor: Callable[..., Result], tmp_path: Path) -> None:
    result = doctor({"helpdesk": lambda self: "authenticated as bot@acme.com", "tracker": None})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"✓ config: {tmp_path / 'cxbridge.toml'} (2 systems)",
        "✓ helpdesk: authenticated as bot@acme.com",
        "✓ tracker: authenticated to https://tracker.example.com",
    ]


def test_a_refused_token_names_the_variable_to_check(doctor: Callable[..., Result]) -> None:
    """401 with the vendor's words, and the hint derived from the secret's source."""
    result = doctor(
        {
            "jira": raising(AuthError("jira", "GET /myself: 401", status=401)),
            "zendesk": raising(AuthError("zendesk", "401", status=401, vendor_message="Couldn't authenticate you.")),
        }
    )
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[1] == "✗ jira: 401 Unauthorized: check the token in JIRA_TOKEN"
    assert lines[2] == "✗ zendesk: 401 Unauthorized (Couldn't authenticate you): check the token in ZENDESK_TOKEN"


def test_a_token_from_a_file_names_the_file(tmp_path: Path, make_connector: Any, connectors_plugin: Any) -> None:
    (tmp_path / "jira.token").write_text(TOKEN, encoding="utf-8")
    config = tmp_path / "cxbridge.toml"
    config.write_text(
        '[systems.jira]\nbase_url = "https://jira.example.com"\ntoken = { file = "jira.token" }\n', encoding="utf-8"
    )
    fake = make_connector("jira", config_keys=KEYS, check=raising(AuthError("jira", "x", status=401)))
    obj = CliContext(
        config,
        environ={},
        plugins_factory=lambda d: build_plugins(
            d, use_env=False, entry_points=list, extra=[("f", connectors_plugin(fake))]
        ),
    )
    result = CliRunner().invoke(cli, ["doctor"], obj=obj)
    assert (
        result.stdout.splitlines()[1]
        == f"✗ jira: 401 Unauthorized: check the token in the file {tmp_path / 'jira.token'}"
    )


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (
            AuthError("s", "x", status=403, vendor_message="You do not have permission"),
            "✗ s: 403 Forbidden (You do not have permission): the credentials in S_TOKEN are valid but lack a "
            "permission cxbridge needs",
        ),
        (NotFound("s", "x", status=404), "✗ s: 404 Not Found: check base_url https://s.example.com"),
        (
            RateLimited("s", "x", status=429, retry_after=30),
            "✗ s: 429 Too Many Requests: rate limited; try again in 30s",
        ),
        (
            Unavailable("s", "cannot connect to https://s.example.com: Connection refused"),
            "✗ s: cannot connect to https://s.example.com: Connection refused: is https://s.example.com reachable "
            "from here?",
        ),
        (
            ConfigError("systems.s: set exactly one of api_token or oauth_token"),
            "✗ s: systems.s: set exactly one of api_token or oauth_token",
        ),
        (RuntimeError("bug in the connector"), "✗ s: unexpected RuntimeError: bug in the connector"),
    ],
)
def test_each_failure_gets_a_reason_and_a_hint(doctor: Callable[..., Result], exc: Exception, line: str) -> None:
    result = doctor({"s": raising(exc)})
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1] == line
    assert "Traceback" not in result.output


def test_one_failing_system_does_not_hide_the_others(doctor: Callable[..., Result]) -> None:
    result = doctor({"a": raising(RuntimeError("down")), "b": None})
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1:] == [
        "✗ a: unexpected RuntimeError: down",
        "✓ b: authenticated to https://b.example.com",
    ]


def test_a_disabled_system_is_skipped(doctor: Callable[..., Result], tmp_path: Path) -> None:
    result = doctor(
        {"a": None},
        extra_toml='[systems.b]\nplugin = "a"\nbase_url = "https://b.example.com"\n'
        'token = { env = "A_TOKEN" }\nenabled = false\n',
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "✓ a: authenticated to https://a.example.com",
        "- b: skipped: enabled = false",
    ]


def test_a_secret_never_reaches_the_output(doctor: Callable[..., Result]) -> None:
    """Even when a connector puts the token into its error, doctor prints ***."""
    result = doctor({"leaky": raising(AuthError("leaky", "x", status=401, vendor_message=f"bad token {TOKEN}"))})
    assert TOKEN not in result.output
    assert result.stdout.splitlines()[1] == "✗ leaky: 401 Unauthorized (bad token ***): check the token in LEAKY_TOKEN"


def test_a_broken_plugin_is_a_cross(doctor: Callable[..., Result]) -> None:
    class Broken:
        @hookimpl
        def register_connectors(self, register: Any) -> None:
            raise ImportError("No module named 'broken_connector'")

    result = doctor({"a": None}, extra_plugins=[("broken", Broken())])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1:] == [
        "✗ plugin broken: register_connectors failed: ImportError: No module named 'broken_connector' "
        "— fix: fix the plugin, or 'cxbridge plugins disable broken'",
        "✓ a: authenticated to https://a.example.com",
    ]
    assert result.stderr == ""


def test_a_system_without_a_plugin_is_a_config_cross(doctor: Callable[..., Result]) -> None:
    result = doctor(
        {"a": None}, extra_toml='[systems.crm]\nplugin = "salesforce"\nbase_url = "https://x.example.com"\n'
    )
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["✗ config: no enabled plugin provides the system 'salesforce' (known: a)"]


def test_json(doctor: Callable[..., Result], tmp_path: Path) -> None:
    result = doctor({"a": raising(AuthError("a", "x", status=401)), "b": None}, args=("--json",))
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [
        {
            "item": "config",
            "ok": True,
            "state": "ok",
            "detail": f"{tmp_path / 'cxbridge.toml'} (2 systems)",
            "fix": "",
        },
        {
            "item": "a",
            "ok": False,
            "state": "failed",
            "detail": "401 Unauthorized: check the token in A_TOKEN",
            "fix": "",
        },
        {"item": "b", "ok": True, "state": "ok", "detail": "authenticated to https://b.example.com", "fix": ""},
    ]


def test_connector_built_from_its_config(doctor: Callable[..., Result]) -> None:
    """check() runs on a connector built by from_config with the loaded system config (the secret included)."""

    def check(self: Connector) -> str:
        token = self.config.get("token")
        assert isinstance(token, Secret)
        return f"token from {token.source}, {len(token.reveal())} characters"

    result = doctor({"a": check})
    assert result.stdout.splitlines()[1] == f"✓ a: token from env:A_TOKEN, {len(TOKEN)} characters"


@pytest.mark.sandbox
def test_doctor_against_the_sandbox_servers(tmp_path: Path) -> None:
    """End to end with the built-in connectors and emulators (skipped until both exist)."""
    plugins = build_plugins(use_env=False)
    systems = {"zendesk", "jira", "hubspot"}
    if not systems <= set(plugins.connectors()) or not systems <= set(plugins.sandbox_backends()):
        pytest.skip("the built-in connectors or emulators are not available yet")
    from cxbridge.sandbox.modes import serve_vendors, write_config
    from cxbridge.sdk import WebhookTarget

    with serve_vendors(seed="demo") as vendors:
        for name in ("zendesk", "jira"):
            vendors[name].webhook_targets = [WebhookTarget(f"http://127.0.0.1:9/webhooks/{name}", f"{name}-secret")]
        extra = {"webhooks": {"public_url": "http://127.0.0.1:9"}}
        config = write_config(vendors, tmp_path / "cxbridge.toml", extra=extra)
        before = CliRunner().invoke(cli, ["--config", str(config), "doctor"], obj=CliContext(environ={}))
        assert before.exit_code == 1
        assert (
            "✗ zendesk webhook 'cxbridge': missing: POST to http://127.0.0.1:9/webhooks/zendesk — fix: run "
            "'cxbridge setup --apply'" in before.stdout.splitlines()
        ), before.output
        setup = CliRunner().invoke(cli, ["--config", str(config), "setup", "--apply"], obj=CliContext(environ={}))
        assert setup.exit_code == 0, setup.output
        ok = CliRunner().invoke(cli, ["--config", str(config), "doctor"], obj=CliContext(environ={}))
        assert ok.exit_code == 0, ok.output
        marks = {line[:2] for line in ok.stdout.splitlines()}
        assert marks <= {"✓ ", "- "}, ok.output
        assert "✓ jira project ENG: Engineering" in ok.stdout.splitlines()
        token_file = tmp_path / "jira.api_token.secret"
        token_file.write_text("not-the-token-0000", encoding="utf-8")
        bad = CliRunner().invoke(cli, ["--config", str(config), "doctor"], obj=CliContext(environ={}))
    assert bad.exit_code == 1
    jira = next(line for line in bad.stdout.splitlines() if line.startswith("✗ jira: "))
    assert jira.startswith("✗ jira: 401 Unauthorized")
    assert jira.endswith(f"check the token in the file {token_file}")
    assert "not-the-token-0000" not in bad.output
