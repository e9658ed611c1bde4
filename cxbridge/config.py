"""The configuration: one TOML file, validated on load, with secrets read from the environment or files."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .secrets import Secret
from .settings import COMMON_SYSTEM_KEYS as COMMON_SYSTEM_KEYS  # re-exported: the specs live in settings
from .settings import CORE_SECTIONS as CORE_SECTIONS
from .settings import SECRET_SCHEMA, Checker, Problems, table_schema
from .settings import Config as Config  # re-exported: the typed settings live in the leaf module
from .settings import ConfigKey as ConfigKey
from .settings import SystemConfig as SystemConfig
from .settings import store_location as store_location
from .workflows.policy import compile_policies

if TYPE_CHECKING:
    from .plugins import Plugins

CONFIG_ENV = "CXBRIDGE_CONFIG"
DEFAULT_PATH = Path("cxbridge.toml")


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


def _where_split(where: str) -> tuple[str, str]:
    """``"<file>: <key path>"`` as its two parts (the key path may be empty)."""
    file, sep, path = where.rpartition(": ")
    return (file, path) if sep else (where, "")


def _check_table(
    table: Mapping[str, Any],
    keys: Mapping[str, ConfigKey],
    where: str,
    environ: Mapping[str, str],
    base: Path | None,
) -> dict[str, Any]:
    """One table checked against ``keys`` (``where`` is ``"<file>: <key path>"``); a ConfigError lists every problem."""
    file, path = _where_split(where)
    problems = Problems(file)
    checked = Checker(problems, _secret_reader(environ, base)).table(table, keys, path)
    problems.raise_if_any()
    return checked


def _secret_reader(environ: Mapping[str, str], base: Path | None) -> Callable[[Any, str], Secret]:
    def read(value: Any, where: str) -> Secret:
        return read_secret(value, where, environ, base)

    return read


def _read_text(cfg_path: Path | None, where: str, text: str | None) -> str:
    if text is not None:
        return text
    assert cfg_path is not None
    if not cfg_path.exists():
        raise ConfigError(
            f"{where}: no configuration file (run 'cxbridge init {cfg_path}' to write one, "
            f"or pass --config / set {CONFIG_ENV})"
        )
    try:
        return cfg_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None


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
    Every problem found is reported at once: one ``ConfigError`` whose message lists them, one per line
    (a single problem keeps its one-line message).
    """
    env = os.environ if environ is None else environ
    cfg_path: Path | None = resolve_path(path, env) if text is None else (Path(path) if path else None)
    where = str(cfg_path) if cfg_path else "<config>"
    text = _read_text(cfg_path, where, text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    base = cfg_path.parent if cfg_path else None
    problems = Problems(where)
    checker = Checker(problems, _secret_reader(env, base))

    known_sections = {*CORE_SECTIONS, "systems"}
    for section in raw:
        if section not in known_sections:
            problems.add("", f"unknown section [{section}] (known: {', '.join(sorted(known_sections))})")
    sections: dict[str, dict[str, Any]] = {}
    policies_ok = True
    for name, keys in CORE_SECTIONS.items():
        table = raw.get(name, {})
        before = len(problems)
        if not isinstance(table, dict):
            problems.add("", f"[{name}] must be a table")
            table = {}
        sections[name] = checker.table(table, keys, name)
        if name == "policies":
            policies_ok = len(problems) == before
    store = sections["cxbridge"]["store"]
    if isinstance(store, str):
        try:
            store_location(store, base)
        except ConfigError as exc:
            problems.add("", str(exc))
    secrets_table = sections["webhooks"]["secrets"]
    for system, values in list(secrets_table.items()):
        secrets_table[system] = values if isinstance(values, list) else [values]

    systems: dict[str, SystemConfig] = {}
    raw_systems = raw.get("systems", {})
    if not isinstance(raw_systems, dict):
        problems.add("", "[systems] must hold one table per system")
        raw_systems = {}
    for name, table in raw_systems.items():
        spath = f"systems.{name}"
        if not isinstance(table, dict):
            problems.add(spath, "expected a table")
            continue
        plugin_name = table.get("plugin", name)
        if not isinstance(plugin_name, str):
            problems.add(f"{spath}.plugin", "expected a string")
            continue
        before = len(problems)
        if plugins is not None:
            system_keys: dict[str, ConfigKey] = dict(COMMON_SYSTEM_KEYS)
            system_keys.update(plugins.connector(plugin_name).config_keys)
            checked = checker.table(table, system_keys, spath)
        else:
            common = {k: v for k, v in table.items() if k in COMMON_SYSTEM_KEYS}
            checked = checker.table(common, COMMON_SYSTEM_KEYS, spath)
            checked.update({k: v for k, v in table.items() if k not in COMMON_SYSTEM_KEYS})
        if len(problems) > before:
            continue
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
                problems.add("", str(exc))
    if policies_ok:
        try:
            compile_policies(sections["policies"], where)  # a broken rule fails here, at load, not at escalation
        except ConfigError as exc:
            problems.add_error(exc)
    problems.raise_if_any()
    return Config(path=cfg_path, sections=sections, systems=systems, raw=raw)


# -- JSON Schema ------------------------------------------------------------------------------------------------

SCHEMA_ID = "https://cxbridge.invalid/schemas/cxbridge.toml.json"


def _system_schema(keys: Mapping[str, ConfigKey], plugin: str | None, *, name_is_plugin: bool) -> dict[str, Any]:
    """One ``[systems.<name>]`` table served by ``plugin`` (``plugin`` required unless the name says it)."""
    schema = table_schema(keys, description=f"a system served by the plugin {plugin!r}" if plugin else "")
    if plugin is not None:
        schema["properties"]["plugin"] = {**schema["properties"]["plugin"], "const": plugin}
        if not name_is_plugin:
            schema["required"] = sorted({*schema.get("required", []), "plugin"})
    return schema


def json_schema(plugins: Plugins | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the whole configuration file, from the same specs ``load_config`` checks.

    Core sections come from ``CORE_SECTIONS`` (descriptions, types, enums, ranges, defaults); every
    ``[systems.<name>]`` table takes ``COMMON_SYSTEM_KEYS``. With ``plugins``, a system table must also match
    the ``config_keys`` of the plugin it names with ``plugin`` (by default the plugin named like the table):
    one ``oneOf`` branch per plugin, told apart by ``plugin``'s ``const``. Secrets are ``{env}`` / ``{file}``.
    What the schema cannot say (secrets that exist, base URLs on a vendor's domain, policy conditions that
    compile) is still checked by ``load_config``.
    """
    sections: dict[str, Any] = {
        name: table_schema(keys, description=f"[{name}]") for name, keys in CORE_SECTIONS.items()
    }
    systems: dict[str, Any] = {"type": "object", "description": "one table per connected system"}
    if plugins is None:
        systems["additionalProperties"] = table_schema(
            COMMON_SYSTEM_KEYS, allow_unknown=True, description="the keys every system takes, plus its plugin's"
        )
    else:
        connectors = plugins.connectors()
        per_plugin = {system: {**COMMON_SYSTEM_KEYS, **cls.config_keys} for system, cls in sorted(connectors.items())}
        named = [_system_schema(keys, system, name_is_plugin=False) for system, keys in per_plugin.items()]
        systems["properties"] = {
            system: {
                "oneOf": [
                    _system_schema(per_plugin[system], system, name_is_plugin=True),
                    *[
                        _system_schema(keys, other, name_is_plugin=False)
                        for other, keys in per_plugin.items()
                        if other != system
                    ],
                ]
            }
            for system in per_plugin
        }
        systems["additionalProperties"] = {"oneOf": named} if named else False
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "cxbridge configuration (cxbridge.toml)",
        "type": "object",
        "properties": {**sections, "systems": systems},
        "additionalProperties": False,
        "$defs": {"secret": SECRET_SCHEMA},
    }
