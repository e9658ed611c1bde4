"""The configuration: one TOML file, validated on load, with secrets read from the environment or files."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .connectors import ConfigKey
from .errors import ConfigError
from .secrets import Secret

if TYPE_CHECKING:
    from .plugins import Plugins

CONFIG_ENV = "CXBRIDGE_CONFIG"
DEFAULT_PATH = Path("cxbridge.toml")


def _type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
        Secret: 'a secret ({ env = "NAME" } or { file = "path" })',
    }.get(t, t.__name__)


# Keys of [systems.<name>] that the core reads for every system, whatever the plugin.
COMMON_SYSTEM_KEYS: dict[str, ConfigKey] = {
    "plugin": ConfigKey(str, help="the plugin's system key; defaults to the table's name"),
    "base_url": ConfigKey(str, required=True, help="the vendor's base URL, https"),
    "sandbox": ConfigKey(bool, default=False, help="true when base_url is a cxbridge sandbox (allows http loopback)"),
    "timeout": ConfigKey((int, float), default=30, help="read timeout in seconds"),
    "connect_timeout": ConfigKey((int, float), default=5, help="connect timeout in seconds"),
    "max_retries": ConfigKey(int, default=4, help="retries for a request that may be retried"),
    "enabled": ConfigKey(bool, default=True, help="false keeps the table but does not use the system"),
}

# The core's own sections: key -> ConfigKey. Nested tables are described by their own dicts below.
CORE_SECTIONS: dict[str, dict[str, ConfigKey]] = {
    "cxbridge": {
        "store": ConfigKey(str, default="cxbridge.db", help="path of the SQLite store, relative to the config file"),
        "template_dirs": ConfigKey(list, default=[], help="folders searched for templates before the defaults"),
        "log_level": ConfigKey(str, default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    },
    "plugins": {
        "disabled": ConfigKey(list, default=[], help="plugin names not to load"),
    },
    "escalation": {
        "helpdesk": ConfigKey(str, default="zendesk", help="the [systems.*] name that holds the tickets"),
        "crm": ConfigKey(str, default="hubspot", help="the [systems.*] name of the CRM; empty for none"),
        "tracker": ConfigKey(str, default="jira", help="the [systems.*] name of the issue tracker"),
        "tag": ConfigKey(str, default="escalated_to_engineering", help="tag an agent adds to escalate a ticket"),
        "default_tier": ConfigKey(str, default="standard", help="tier assumed for a customer without one"),
        "search_grace_seconds": ConfigKey(
            int, default=300, help="how long an ambiguous issue create is searched for before creating again"
        ),
        "priority": ConfigKey(dict, default={}, help="tier -> ticket priority -> tracker priority"),
    },
    "webhooks": {
        "host": ConfigKey(str, default="127.0.0.1"),
        "port": ConfigKey(int, default=8787),
        "workers": ConfigKey(int, default=2),
        "public_url": ConfigKey(str, default="", help="the URL vendors call, for signatures over the URI"),
        "public_urls": ConfigKey(
            dict, default={}, help="system -> the full URL that vendor calls, when a proxy rewrites the path"
        ),
        "secrets": ConfigKey(dict, default={}, help="system -> list of active signing secrets"),
        "tolerance_seconds": ConfigKey(int, default=300),
    },
    "sync": {
        "status_map": ConfigKey(dict, default={}, help="tracker status category -> helpdesk status"),
        "comment_prefix": ConfigKey(str, default="[support]", help="marks a tracker comment meant for support"),
        "integration_users": ConfigKey(
            dict, default={}, help="system -> the integration user's id, for echo suppression"
        ),
        "lookback_hours": ConfigKey(
            int, default=24, help="how far back 'cxbridge sync' looks on its first run (no checkpoint, no --since)"
        ),
        "comment_visibility": ConfigKey(
            list, default=[], help="tracker comment visibility groups/roles whose comments go to support"
        ),
        "draft_reply_on": ConfigKey(
            list, default=[], help="status categories (new, indeterminate, done) that draft a reply for the agent"
        ),
        "crm_notes": ConfigKey(bool, default=True, help="false: sync back writes no CRM notes"),
    },
    "impact": {
        "fields": ConfigKey(dict, default={}, help="rollup value -> tracker custom field id"),
        "tiers": ConfigKey(
            list,
            default=["strategic", "enterprise", "growth", "standard"],
            help="customer tiers, highest first (a tier not listed ranks below every listed one)",
        ),
        "arr_currency": ConfigKey(
            str, default="", help="currency of the ARR number field; empty: the currency with the largest sum"
        ),
    },
    "policies": {
        "rules": ConfigKey(list, default=[], help="decision-rights rules: [[policies.rules]] name, when, grant"),
        "agents": ConfigKey(
            dict, default={}, help='agent email -> attributes rules read as agent.* ([policies.agents."<email>"])'
        ),
    },
}


@dataclass
class SystemConfig:
    """One ``[systems.<name>]`` table: the common keys plus the plugin's own, validated."""

    name: str
    plugin: str
    base_url: str
    sandbox: bool = False
    timeout: float = 30.0
    connect_timeout: float = 5.0
    max_retries: int = 4
    enabled: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A plugin-specific option."""
        return self.options.get(key, default)

    def secrets(self) -> list[Secret]:
        """Every secret of this system (for redaction)."""
        return [v for v in self.options.values() if isinstance(v, Secret)]


@dataclass
class Config:
    """The whole validated configuration."""

    path: Path | None
    sections: dict[str, dict[str, Any]]
    systems: dict[str, SystemConfig]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def section(self, name: str) -> dict[str, Any]:
        """A core section with its defaults filled in."""
        return self.sections[name]

    @property
    def disabled_plugins(self) -> list[str]:
        return list(self.sections["plugins"]["disabled"])

    def store_path(self) -> Path:
        """Where the SQLite store lives (relative paths are relative to the config file)."""
        p = Path(self.sections["cxbridge"]["store"])
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        return p

    def template_dirs(self) -> list[Path]:
        base = self.path.parent if self.path is not None else Path.cwd()
        return [p if p.is_absolute() else base / p for p in map(Path, self.sections["cxbridge"]["template_dirs"])]

    def system(self, name: str) -> SystemConfig:
        if name not in self.systems:
            known = ", ".join(sorted(self.systems)) or "none"
            raise ConfigError(f"{self._where()}: no [systems.{name}] table (configured: {known})")
        return self.systems[name]

    def all_secrets(self) -> list[Secret]:
        out = [s for sc in self.systems.values() for s in sc.secrets()]
        for values in self.sections["webhooks"]["secrets"].values():
            out.extend(v for v in values if isinstance(v, Secret))
        return out

    def _where(self) -> str:
        return str(self.path) if self.path else "<config>"


def resolve_path(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file to use: ``--config``, else CXBRIDGE_CONFIG, else ./cxbridge.toml."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return DEFAULT_PATH


def read_secret(value: Any, where: str, environ: Mapping[str, str], base: Path | None) -> Secret:
    """Turn ``{ env = "NAME" }`` or ``{ file = "path" }`` into a Secret, or raise a ConfigError saying why."""
    if isinstance(value, str):
        raise ConfigError(f'{where}: secrets are never written inline; use {{ env = "NAME" }} or {{ file = "path" }}')
    if not isinstance(value, dict) or len(value) != 1 or not ({"env", "file"} & set(value)):
        raise ConfigError(f'{where}: expected {{ env = "NAME" }} or {{ file = "path" }}')
    if "env" in value:
        name = value["env"]
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: env must name an environment variable")
        if not environ.get(name):
            raise ConfigError(f"{where}: the environment variable {name} is not set")
        return Secret(environ[name], source=f"env:{name}")
    path = Path(str(value["file"]))
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the secret file {path}: {exc.strerror}") from None
    if not text:
        raise ConfigError(f"{where}: the secret file {path} is empty")
    return Secret(text, source=f"file:{path}")


def _check_value(value: Any, spec: ConfigKey, where: str, environ: Mapping[str, str], base: Path | None) -> Any:
    if spec.type is Secret:
        return read_secret(value, where, environ, base)
    expected = spec.type if isinstance(spec.type, tuple) else (spec.type,)
    ok = isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected)
    if not ok and float in expected and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f"{where}: expected {_type_name(spec.type)}, got {type(value).__name__} {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{where}: expected one of {', '.join(map(str, spec.choices))}, got {value!r}")
    return value


def _check_table(
    table: Mapping[str, Any],
    keys: Mapping[str, ConfigKey],
    where: str,
    environ: Mapping[str, str],
    base: Path | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in table:
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise ConfigError(f"{where}: unknown key {key!r} (known: {known})")
    for key, spec in keys.items():
        if key in table:
            out[key] = _check_value(table[key], spec, f"{where}.{key}", environ, base)
        elif spec.required:
            raise ConfigError(f"{where}: missing required key {key!r} ({_type_name(spec.type)}; {spec.help})")
        else:
            default = spec.default
            out[key] = type(default)(default) if isinstance(default, list | dict) else default
    return out


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    plugins: Plugins | None = None,
    environ: Mapping[str, str] | None = None,
    text: str | None = None,
) -> Config:
    """Read and validate the configuration file.

    With ``plugins``, each ``[systems.<name>]`` table is also checked against its connector's ``config_keys``;
    without, plugin keys are kept unchecked (``plugins list`` must work even when a plugin is broken).
    """
    env = os.environ if environ is None else environ
    cfg_path: Path | None = resolve_path(path, env) if text is None else (Path(path) if path else None)
    where = str(cfg_path) if cfg_path else "<config>"
    if text is None:
        assert cfg_path is not None
        if not cfg_path.exists():
            raise ConfigError(
                f"{where}: no configuration file (run 'cxbridge init {cfg_path}' to write one, "
                f"or pass --config / set {CONFIG_ENV})"
            )
        try:
            text = cfg_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    base = cfg_path.parent if cfg_path else None

    known_sections = {*CORE_SECTIONS, "systems"}
    for section in raw:
        if section not in known_sections:
            raise ConfigError(f"{where}: unknown section [{section}] (known: {', '.join(sorted(known_sections))})")
    sections: dict[str, dict[str, Any]] = {}
    for name, keys in CORE_SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        sections[name] = _check_table(table, keys, f"{where}: {name}", env, base)
    secrets_table = sections["webhooks"]["secrets"]
    for system, values in list(secrets_table.items()):
        items = values if isinstance(values, list) else [values]
        secrets_table[system] = [
            read_secret(v, f"{where}: webhooks.secrets.{system}[{i}]", env, base) for i, v in enumerate(items)
        ]

    systems: dict[str, SystemConfig] = {}
    raw_systems = raw.get("systems", {})
    if not isinstance(raw_systems, dict):
        raise ConfigError(f"{where}: [systems] must hold one table per system")
    for name, table in raw_systems.items():
        swhere = f"{where}: systems.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{swhere}: expected a table")
        plugin_name = table.get("plugin", name)
        if not isinstance(plugin_name, str):
            raise ConfigError(f"{swhere}.plugin: expected a string")
        system_keys: dict[str, ConfigKey] = dict(COMMON_SYSTEM_KEYS)
        if plugins is not None:
            system_keys.update(plugins.connector(plugin_name).config_keys)
            checked = _check_table(table, system_keys, swhere, env, base)
        else:
            common = {k: v for k, v in table.items() if k in COMMON_SYSTEM_KEYS}
            checked = _check_table(common, COMMON_SYSTEM_KEYS, swhere, env, base)
            checked.update({k: v for k, v in table.items() if k not in COMMON_SYSTEM_KEYS})
        options = {k: v for k, v in checked.items() if k not in COMMON_SYSTEM_KEYS}
        systems[name] = SystemConfig(
            name=name,
            plugin=plugin_name,
            base_url=str(checked["base_url"]).rstrip("/"),
            sandbox=bool(checked["sandbox"]),
            timeout=float(checked["timeout"]),
            connect_timeout=float(checked["connect_timeout"]),
            max_retries=int(checked["max_retries"]),
            enabled=bool(checked["enabled"]),
            options=options,
        )
        if plugins is not None and systems[name].enabled:
            # the base URL rules belong to the plugin (its vendor's domains): checked here, at load
            try:
                plugins.connector(plugin_name).check_config_url(systems[name])
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
    from .policy import compile_policies

    compile_policies(sections["policies"], where)  # a broken rule fails here, at load, not at escalation
    return Config(path=cfg_path, sections=sections, systems=systems, raw=raw)
