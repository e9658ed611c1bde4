"""Vendor-side provisioning (``cxbridge setup``): ask every enabled system's connector what it needs, apply it, and
write what was learned back into the config file.

The core knows no vendor: each connector's ``plan_setup`` says which objects it needs and how they compare with
what exists (``PlanItem``), and ``apply_setup`` makes one item so, returning ``ConfigUpdate``s (ids, signing
secrets). This module gathers the plans, applies the pending items (``prune`` only when asked), and edits the
config with tomlkit so the admin's comments and layout stay; secrets go to files readable by their owner only
(mode 0600) and the config references them as ``{ file = "..." }``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
import tomlkit.items

from .connectors import CREATE, CRM_ROLE, HELPDESK, MANUAL, PRUNE, TRACKER, UPDATE, ConfigUpdate, PlanItem, SetupContext
from .errors import ConfigError, CxbridgeError
from .runtime import Runtime
from .secrets import Secret
from .webhooks.receiver import webhook_secrets
from .workflows.policy import policies_for
from .workflows.tagdecisions import decision_macros

log = logging.getLogger(__name__)

SECRET_FILE_MODE = 0o600
_ROLE_KEYS = (("helpdesk", HELPDESK), ("crm", CRM_ROLE), ("tracker", TRACKER))


def webhook_url(rt: Runtime, name: str) -> str:
    """The URL a system's vendor must call: ``[webhooks] public_urls.<name>``, else ``public_url`` +
    ``/webhooks/<name>`` (what ``cxbridge serve`` answers); empty when neither is configured."""
    section = rt.config.section("webhooks")
    own = (section.get("public_urls") or {}).get(name)
    if isinstance(own, str) and own:
        return own
    base = str(section.get("public_url") or "").rstrip("/")
    return f"{base}/webhooks/{name}" if base else ""


def setup_context(rt: Runtime, name: str) -> SetupContext:
    """What the connector of the system ``name`` is told about the rest of the configuration."""
    roles = set()
    for key, role in _ROLE_KEYS:
        try:
            if rt.role_system(key, role) == name:
                roles.add(role)
        except ConfigError:
            continue
    secrets, _ = webhook_secrets(rt.config, name)
    macros = decision_macros(rt.config.section("decisions"), policies_for(rt))
    return SetupContext(
        webhook_url=webhook_url(rt, name),
        webhook_secrets=tuple(secrets),
        roles=frozenset(roles),
        escalation_tag=str(rt.config.section("escalation").get("tag") or ""),
        impact_fields=dict(rt.config.section("impact").get("fields") or {}),
        decision_tags=tuple(m.tag for m in macros),
        decision_macros={m.tag: m.title for m in macros if m.granted_by},
    )


def provisioned_systems(rt: Runtime, only: Sequence[str] = ()) -> list[str]:
    """The enabled systems whose connector provisions something, in config order (``only`` narrows them)."""
    for name in only:
        rt.config.system(name)  # an unknown name is a ConfigError naming the configured ones
    names = []
    for name, system in rt.config.systems.items():
        if not system.enabled or (only and name not in only):
            continue
        if rt.plugins.connector(system.plugin).supports("plan_setup"):
            names.append(name)
    return names


def plan(rt: Runtime, only: Sequence[str] = ()) -> list[PlanItem]:
    """Every provisioned object of every enabled system, compared with what exists (reads only)."""
    items: list[PlanItem] = []
    for name in provisioned_systems(rt, only):
        items.extend(rt.connector(name).plan_setup(setup_context(rt, name)))
    return items


@dataclass
class Applied:
    """What ``apply`` did: the items applied, those that failed (with the reason), the config updates learned."""

    done: list[PlanItem] = field(default_factory=list)
    failed: list[tuple[PlanItem, str]] = field(default_factory=list)
    updates: list[ConfigUpdate] = field(default_factory=list)


def apply(rt: Runtime, items: Iterable[PlanItem], *, prune: bool = False) -> Applied:
    """Apply every ``create`` and ``update`` item (and ``prune`` ones when ``prune``), one by one; a failure is
    recorded and the others still run. ``ok`` and ``manual`` items are left alone (an ``ok`` item's ``learned``
    updates are kept: the object is right, the config only needs its id)."""
    result = Applied()
    for item in items:
        wanted = item.action in (CREATE, UPDATE) or (prune and item.action == PRUNE)
        if not wanted:
            result.updates.extend(item.learned)
            continue
        try:
            learned = rt.connector(item.system).apply_setup(item, setup_context(rt, item.system))
        except CxbridgeError as exc:
            result.failed.append((item, str(exc)))
            continue
        result.done.append(item)
        result.updates.extend([*item.learned, *learned])
    return result


def pending(items: Iterable[PlanItem], *, prune: bool = False) -> list[PlanItem]:
    """The items that ``setup --apply`` would act on, or that need the admin (``manual``)."""
    return [i for i in items if i.action in (CREATE, UPDATE, MANUAL) or (prune and i.action == PRUNE)]


# -- writing back ---------------------------------------------------------------------------------------------


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, keeping the file's mode."""
    mode = path.stat().st_mode & 0o777 if path.exists() else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_secret_file(path: Path, value: str) -> None:
    """Write a secret to ``path``, readable and writable by its owner only (0600, also when it existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    try:
        os.fchmod(fd, SECRET_FILE_MODE)
        os.write(fd, value.encode("utf-8"))
    finally:
        os.close(fd)


def _reference(file: Path, config_dir: Path) -> tomlkit.items.InlineTable:
    inline = tomlkit.inline_table()
    inline["file"] = str(file.relative_to(config_dir)) if file.is_relative_to(config_dir) else str(file)
    return inline


def _existing_file(value: Any, config_dir: Path) -> Path | None:
    """The file a ``{ file = ... }`` reference (alone, or alone in a list) names, else None."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict) and set(value) == {"file"}:
        named = Path(str(value["file"]))
        return named if named.is_absolute() else config_dir / named
    return None


def _table_at(doc: tomlkit.TOMLDocument, path: Sequence[str], where: Path) -> Any:
    """The table holding ``path[-1]``, created (as ``[a.b]``) where missing."""
    node: Any = doc
    for i, key in enumerate(path[:-1]):
        if key not in node:
            node[key] = tomlkit.table(is_super_table=i < len(path) - 2)  # no empty [a] above a new [a.b]
        node = node[key]
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: {'.'.join(path[: i + 1])} must be a table to write {'.'.join(path)}")
    return node


def write_back(config_path: Path, updates: Sequence[ConfigUpdate], *, secrets_dir: Path | None = None) -> list[str]:
    """Apply the updates to the config file with tomlkit (comments and layout kept); returns the keys changed.

    A secret is written to a 0600 file: the file its key already references (``{ file = ... }``), else
    ``<secrets_dir or the config's folder>/<table>.<key>.secret``; the key then references it. A value equal to
    the one in the file is not rewritten."""
    if not updates:
        return []
    try:
        doc = tomlkit.parse(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc.strerror}") from None
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None
    config_dir = config_path.parent.resolve()
    changed: list[str] = []
    for update in updates:
        table = _table_at(doc, update.path, config_path)
        key = update.path[-1]
        dotted = ".".join(update.path)
        current = table.get(key)
        if update.secret:
            listed = update.path[:2] == ("webhooks", "secrets")
            target = _existing_file(current, config_dir)
            if target is None:
                folder = (secrets_dir or config_dir).resolve()
                target = folder / (f"{key}.webhook.secret" if listed else f"{'.'.join(update.path[1:])}.secret")
            value = update.value.reveal() if isinstance(update.value, Secret) else str(update.value)
            same = target.exists() and target.read_text(encoding="utf-8").strip() == value
            if not same:
                write_secret_file(target, value)
            reference: Any = _reference(target, config_dir)
            if listed:
                array = tomlkit.array()
                array.append(reference)
                reference = array
            if _existing_file(current, config_dir) != target:
                table[key] = reference
            elif same:
                continue
            changed.append(dotted)
            continue
        if current is not None and current == update.value:
            continue
        table[key] = update.value
        changed.append(dotted)
    if changed:
        write_text_atomically(config_path, tomlkit.dumps(doc))
    return changed
