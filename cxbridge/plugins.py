"""The plugin manager: loads built-in and third-party plugins from entry points, calls their hooks safely."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .connectors import Connector
from .errors import PluginError

if TYPE_CHECKING:
    import click

    from .sandbox.base import Backend
    from .webhooks.verify import Verifier

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cxbridge"
ALLOWLIST_ENV = "CXBRIDGE_LOAD_PLUGINS"
CORE_DISTRIBUTION = "cxbridge"


@dataclass
class PluginInfo:
    """What an admin needs to know about one plugin: where it comes from, whether it runs, what it does."""

    name: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    enabled: bool = True
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    module: str | None = None

    @property
    def loaded(self) -> bool:
        return self.enabled and self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "distribution": self.distribution,
            "kind": "built-in" if self.builtin else "third-party",
            "enabled": self.enabled,
            "hooks": list(self.hooks),
            "error": self.error,
        }


def allowlist_from_env(environ: dict[str, str] | None = None) -> set[str] | None:
    """The plugins named in CXBRIDGE_LOAD_PLUGINS (comma-separated), or None when it is unset."""
    env = os.environ if environ is None else environ
    raw = env.get(ALLOWLIST_ENV)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


class Plugins:
    """A typed facade over one pluggy manager: the loaded plugins and what they registered."""

    def __init__(self, pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> None:
        self.pm = pm
        self.infos = infos
        self._connectors: dict[str, type[Connector]] | None = None

    # -- calling hooks, one implementation at a time -------------------------------------------------------
    def _call_each(self, hook_name: str, *, failures: list[str] | None = None, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of a hook in its own error handling; a failing plugin is recorded (and its
        message appended to ``failures`` when given)."""
        results: list[tuple[str, Any]] = []
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            name = impl.plugin_name
            try:
                results.append((name, impl.function(**{k: kwargs[k] for k in impl.argnames})))
            except Exception as exc:
                message = f"{hook_name} failed: {type(exc).__name__}: {exc}"
                log.warning("plugin %s: %s", name, message)
                if failures is not None:
                    failures.append(f"plugin {name}: {message}")
                info = self.infos.get(name)
                if info is not None and info.error is None:
                    info.error = message
        return results

    def connectors(self) -> dict[str, type[Connector]]:
        """Connector classes by system key."""
        if self._connectors is None:
            found: dict[str, type[Connector]] = {}

            def register(cls: type[Connector]) -> None:
                if not (isinstance(cls, type) and issubclass(cls, Connector)):
                    raise PluginError(f"register_connectors: {cls!r} is not a Connector subclass")
                if cls.system in found and found[cls.system] is not cls:
                    raise PluginError(f"two connectors claim the system {cls.system!r}")
                found[cls.system] = cls

            self._call_each("register_connectors", register=register)
            self._connectors = found
        return self._connectors

    def connector(self, system: str) -> type[Connector]:
        """The connector class for a system key, or a PluginError naming the known ones."""
        found = self.connectors()
        if system not in found:
            known = ", ".join(sorted(found)) or "none"
            why = ""
            info = self.infos.get(system)
            if info is not None and not info.enabled:
                why = f"; the plugin {system!r} is disabled"
            elif info is not None and info.error:
                why = f"; the plugin {system!r} failed: {info.error}"
            raise PluginError(f"no enabled plugin provides the system {system!r} (known: {known}){why}")
        return found[system]

    def webhook_verifiers(self) -> dict[str, Verifier]:
        """Webhook verifiers by system key."""
        found: dict[str, Verifier] = {}

        def register(system: str, verifier: Verifier) -> None:
            found[system] = verifier

        self._call_each("register_webhook_verifiers", register=register)
        return found

    def sandbox_backends(self) -> dict[str, type[Backend]]:
        """Emulator backends by system key."""
        found: dict[str, type[Backend]] = {}

        def register(cls: type[Backend]) -> None:
            found[cls.system] = cls

        self._call_each("register_sandbox_backends", register=register)
        return found

    def add_commands(self, cli: click.Group, reserved: Iterable[str] = ()) -> None:
        """Let plugins add commands; a plugin may not replace a core command."""
        taken = set(reserved)
        before = dict(cli.commands)
        self._call_each("register_commands", cli=cli)
        for name in list(cli.commands):
            if name in taken and cli.commands[name] is not before.get(name):
                if name in before:
                    cli.commands[name] = before[name]
                else:
                    del cli.commands[name]
                log.warning("a plugin tried to take the core command name %r; refused", name)

    def decision_applied(self, decision: dict[str, Any]) -> list[str]:
        """Hand a recorded decision to every plugin that carries decisions out; the failures, one line each."""
        failures: list[str] = []
        self._call_each("decision_applied", failures=failures, decision=dict(decision))
        return failures

    def handoff_context(self, context: dict[str, Any]) -> dict[str, Any]:
        """Extra template values from plugins; existing names are never overwritten."""
        extra: dict[str, Any] = {}
        for name, result in self._call_each("handoff_context", context=dict(context)):
            if result is None:
                continue
            if not isinstance(result, dict):
                log.warning("plugin %s: handoff_context returned %s, not a dict", name, type(result).__name__)
                continue
            for key, value in result.items():
                if key not in context and key not in extra:
                    extra[key] = value
        return extra


def _distribution_of(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def build_plugins(
    disabled: Iterable[str] = (),
    *,
    allowlist: set[str] | None = None,
    use_env: bool = True,
    extra: Iterable[tuple[str, object]] = (),
    entry_points: Callable[[], Iterable[metadata.EntryPoint]] | None = None,
) -> Plugins:
    """Build a fresh plugin manager (never a global): load each entry point on its own.

    ``disabled`` (from the config) and ``allowlist`` (CXBRIDGE_LOAD_PLUGINS) block plugins before they are
    imported. A plugin whose import raises, or that implements a hook that does not exist, is recorded with
    its error and the others still load. ``extra`` registers in-memory plugins (tests, embedding).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if allowlist is None and use_env:
        allowlist = allowlist_from_env()
    blocked = set(disabled)
    infos: dict[str, PluginInfo] = {}
    eps = entry_points() if entry_points else metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in sorted(eps, key=lambda e: e.name):
        dist, version = _distribution_of(ep)
        info = PluginInfo(
            name=ep.name,
            distribution=dist,
            version=version,
            builtin=dist == CORE_DISTRIBUTION,
            module=ep.value,
        )
        infos[ep.name] = info
        if ep.name in blocked or (allowlist is not None and ep.name not in allowlist):
            info.enabled = False
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            info.error = f"import failed: {type(exc).__name__}: {exc}"
            log.warning("plugin %s could not be loaded: %s", ep.name, info.error)
            continue
        _register(pm, ep.name, plugin, info)
    for name, plugin in extra:
        info = PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)))
        infos[name] = info
        if name in blocked:
            info.enabled = False
            continue
        _register(pm, name, plugin, info)
    return Plugins(pm, infos)


def _register(pm: pluggy.PluginManager, name: str, plugin: object, info: PluginInfo) -> None:
    try:
        pm.register(plugin, name=name)
    except Exception as exc:
        info.error = f"registration failed: {type(exc).__name__}: {exc}"
        return
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=name)
        info.error = f"unknown hook: {exc}"
        return
    info.hooks = sorted(impl_name for impl_name in _hook_names(pm, name))


def _hook_names(pm: pluggy.PluginManager, name: str) -> Iterable[str]:
    plugin = pm.get_plugin(name)
    for caller in pm.get_hookcallers(plugin) or []:
        yield caller.name
