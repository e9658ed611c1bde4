"""What a workflow needs from the running process, as an interface: the workflows never import the runtime.

The composition root (``cxbridge.runtime.Runtime``) builds the connectors, the store and the templates from the
configuration and satisfies this protocol; tests may hand a workflow anything else that does. A workflow reads
the typed settings, the store, the templates and the configured systems by role, and counts the calls it made.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..connectors import CRM, Connector, Helpdesk, Tracker
from ..handoff import Handoff
from ..http import CallCounter
from ..settings import Config
from ..store import Store


class Context(Protocol):
    """The collaborators a workflow uses: settings, store, templates, the systems by name and role, call counts."""

    @property
    def config(self) -> Config:
        """The validated configuration (``config.section("sync")`` and friends)."""

    @property
    def store(self) -> Store:
        """Links, intents, snapshots, the queue and the audit trail."""

    @property
    def handoff(self) -> Handoff:
        """The templates, admins' folders first."""

    @property
    def counter(self) -> CallCounter:
        """API calls made, per system and operation."""

    def connector(self, name: str) -> Connector:
        """The connector of the configured system ``name``."""

    def helpdesk(self, name: str | None = None) -> Helpdesk:
        """The helpdesk that holds the tickets (or the configured system ``name``, a ticket's system)."""

    def tracker(self) -> Tracker:
        """The tracker escalations go to."""

    def crm(self) -> CRM | None:
        """The CRM, or None when the configuration has none."""

    def role_system(self, key: str, role: str) -> str:
        """The ``[systems.*]`` name that fills a role (``""`` when none does)."""

    def handoff_context(self, context: dict[str, Any]) -> dict[str, Any]:
        """Values plugins add to the templates' context (the ``handoff_context`` hook)."""

    def decision_applied(self, decision: dict[str, Any]) -> list[str]:
        """Hand a recorded decision to the plugins that carry it out (the ``decision_applied`` hook); returns the
        plugins' failures, one line each (empty when every plugin took it)."""
