"""Everything a command needs at run time, built once from the configuration: connectors, store, handoff."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .connectors import CRM, CRM_ROLE, HELPDESK, TRACKER, Connector, Helpdesk, Tracker
from .errors import ConfigError
from .handoff import Handoff
from .http import CallCounter
from .store import open_store

if TYPE_CHECKING:
    import requests

    from .http import CallCounter
    from .plugins import Plugins
    from .settings import Config
    from .store import Store


class Runtime:
    """The configured systems, the store and the templates, shared by the workflows of one process."""

    def __init__(
        self,
        config: Config,
        plugins: Plugins,
        *,
        store: Store | None = None,
        counter: CallCounter | None = None,
        session: requests.Session | None = None,
    ) -> None:

        self.config = config
        self.plugins = plugins
        self.counter = counter if counter is not None else CallCounter()
        self._session = session
        self._store = store
        self._connectors: dict[str, Connector] = {}
        self._handoff: Handoff | None = None
        self._lock = threading.RLock()
        self._max_inline_wait: float | None = None
        self._roles: dict[tuple[str, str], str] = {}
        """``role_system``'s answers: the configuration and the plugins do not change under a Runtime."""
        self._named_connectors: dict[tuple[str, str], Connector] = {}

    @property
    def store(self) -> Store:
        """The store named by the configuration, opened on first use."""
        opened = self._store  # once opened it never changes: no lock needed to read it
        if opened is not None:
            return opened
        with self._lock:
            if self._store is None:
                self._store = open_store(self.config.store_location(), password=self.config.store_password())
            return self._store

    @property
    def handoff(self) -> Handoff:
        """The handoff templates, loaded on first use."""
        loaded = self._handoff
        if loaded is not None:
            return loaded
        with self._lock:
            if self._handoff is None:
                self._handoff = Handoff(self.config.template_dirs(), aliases=self._template_aliases())
            return self._handoff

    def _template_aliases(self) -> dict[str, str]:
        """The older template names the configured systems' plugins declare (``Connector.template_aliases``)."""
        aliases: dict[str, str] = {}
        for system in self.config.systems.values():
            if system.enabled and system.plugin in self.plugins.connectors():
                aliases.update(self.plugins.connector(system.plugin).template_aliases)
        return aliases

    def connector(self, name: str) -> Connector:
        """The connector of a configured system, built on first use."""
        built = self._connectors.get(name)  # once built it never changes: no lock needed to read it
        if built is not None:
            return built
        with self._lock:
            if name not in self._connectors:
                system = self.config.system(name)
                if not system.enabled:
                    raise ConfigError(f"systems.{name} is disabled (enabled = false)")
                cls = self.plugins.connector(system.plugin)
                connector = cls.from_config(system, counter=self.counter, session=self._session)
                if self._max_inline_wait is not None:
                    connector.http.max_inline_wait = self._max_inline_wait
                self._connectors[name] = connector
            return self._connectors[name]

    def limit_inline_waits(self, seconds: float) -> None:
        """Never sleep longer than ``seconds`` for a vendor's Retry-After: raise ``RateLimited`` to re-queue instead.

        Workers call this so a rate limit re-queues the job instead of blocking the worker (RELIABILITY R2).
        """
        with self._lock:
            self._max_inline_wait = float(seconds)
            for connector in self._connectors.values():
                connector.http.max_inline_wait = self._max_inline_wait

    def role_system(self, key: str, role: str) -> str:
        """The ``[systems.*]`` name that fills a role: ``[escalation] <key>`` when set, else the one enabled system
        whose plugin fills the role (several: the one that takes it first, ``Connector.primary_roles``; still
        several: the one whose table is named like its plugin). ``""`` when none fills it, or when the key is set
        to ``""`` (a configuration without a CRM). Worked out once per key and role (a Runtime's configuration and
        plugins do not change)."""
        known = self._roles.get((key, role))
        if known is None:
            known = self._roles[(key, role)] = self._role_system(key, role)  # a ConfigError is raised each time
        return known

    def _role_system(self, key: str, role: str) -> str:
        named = self.config.section("escalation").get(key)
        if named is not None:
            return str(named)
        candidates = []
        for name, system in self.config.systems.items():
            if not system.enabled or system.plugin not in self.plugins.connectors():
                continue
            cls = self.plugins.connector(system.plugin)
            if role in cls.roles:
                candidates.append((name, system.plugin, role in cls.primary_roles))
        primary = [c for c in candidates if c[2]]
        for narrowed in (candidates, primary, [c for c in primary if c[0] == c[1]]):
            if len(narrowed) == 1:
                return narrowed[0][0]
        if candidates:
            names = ", ".join(sorted(c[0] for c in primary or candidates))
            raise ConfigError(f"several systems can be the {role} ({names}): name one in [escalation] {key}")
        return ""

    def _named(self, key: str, role: str) -> Connector:
        known = self._named_connectors.get((key, role))
        if known is not None:
            return known
        name = self.role_system(key, role)
        if not name:
            raise ConfigError(
                f"no enabled system is a {role}: add one under [systems.*] or name it in [escalation] {key}"
            )
        connector = self.connector(name)
        if role not in connector.roles:
            raise ConfigError(f"escalation.{key} = {name!r}: that system is not a {role}")
        self._named_connectors[(key, role)] = connector
        return connector

    def helpdesk(self, name: str | None = None) -> Helpdesk:
        """The helpdesk named by ``[escalation] helpdesk``, or the configured system ``name`` (a ticket's system)."""
        if name is None:
            connector = self._named("helpdesk", HELPDESK)
        else:
            connector = self.connector(name)
            if HELPDESK not in connector.roles:
                raise ConfigError(f"systems.{name} is not a helpdesk: it cannot hold tickets")
        assert isinstance(connector, Helpdesk)
        return connector

    def tracker(self) -> Tracker:
        """The tracker named by ``[escalation] tracker``."""
        connector = self._named("tracker", TRACKER)
        assert isinstance(connector, Tracker)
        return connector

    def crm(self) -> CRM | None:
        """The CRM, or None when the configuration names none."""
        if not self.role_system("crm", CRM_ROLE):
            return None
        connector = self._named("crm", CRM_ROLE)
        assert isinstance(connector, CRM)
        return connector

    def handoff_context(self, context: dict[str, Any]) -> dict[str, Any]:
        """Values the plugins add to the templates' context (existing names are never overwritten)."""
        return self.plugins.handoff_context(context)

    def decision_applied(self, decision: dict[str, Any]) -> list[str]:
        """Hand a recorded decision to the plugins (the ``decision_applied`` hook); the failures, one line each."""
        return self.plugins.decision_applied(decision)

    def calls(self) -> dict[str, int]:
        """API calls made so far, per system."""
        return self.counter.by_system()

    def calls_since(self, before: Mapping[str, int]) -> dict[str, int]:
        """API calls made since ``before`` (an earlier ``calls()``), per system; systems not called are left out."""
        now = self.counter.by_system()
        return {k: n - before.get(k, 0) for k, n in now.items() if n - before.get(k, 0)}

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
