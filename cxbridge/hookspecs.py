"""Every hook a cxbridge plugin can implement. These docstrings are the hook reference.

Hooks register things; the core calls what was registered, each call in its own error handling. A plugin is a
module (or object) with functions named like these hooks, decorated with ``cxbridge.hookimpl``, published in the
entry-point group ``cxbridge``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .connectors import Connector
    from .sandbox.base import Backend
    from .webhooks.verify import Verifier

PROJECT = "cxbridge"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register connector classes.

    Call ``register(cls)`` once for each connector class the plugin provides. ``cls`` subclasses one or more of
    ``cxbridge.connectors.Helpdesk``, ``CRM`` and ``Tracker``; its ``system`` attribute is the key admins use in
    ``[systems.<name>]`` (``plugin = "<system>"``) and its ``config_keys`` declare what that table may hold.
    """


@hookspec
def register_webhook_verifiers(register: Callable[[str, Verifier], None]) -> None:
    """Register how a system's webhook deliveries are verified and turned into Events.

    Call ``register(system, verifier)``. ``system`` is the connector's system key; ``verifier`` checks a raw
    delivery's signature against the active secrets and returns the Events it carries, raising only
    ``cxbridge.errors.WebhookRejected`` whatever the headers or body hold.
    """


@hookspec
def register_sandbox_backends(register: Callable[[type[Backend]], None]) -> None:
    """Register emulator backends for the sandbox.

    Call ``register(cls)`` with a ``cxbridge.sandbox.Backend`` subclass: a stateful emulator of the vendor API
    that the demo, the tests and plugin authors run instead of the real service.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands (or groups) to the ``cxbridge`` command line.

    ``cli`` is the top-level group; use ``@cli.command()`` as usual. Names the core already uses are refused.
    """


@hookspec
def handoff_context(context: dict[str, Any]) -> dict[str, Any] | None:
    """Add values to the handoff templates' context before they render.

    ``context`` holds ``ticket``, ``customer``, ``comments``, ``decision`` and the other values the default
    templates use (read-only: do not change it). Return a dict of new top-level names, or None. A name that
    already exists is not overwritten, and a plugin that raises is reported and skipped.
    """


@hookspec
def decision_applied(decision: dict[str, Any]) -> None:
    """Carry out a granted decision in a system cxbridge does not know (a billing system for a credit...).

    Called after the decision is recorded (audit row, notes), once per decision: ``decision`` is JSON-ready
    (read-only) with ``key`` (stable for this decision: use it as the idempotency key of your own write),
    ``action`` (``credit``, ``priority``, ``reopen``, ``public_reply``), ``value`` (text, e.g. ``"50"``),
    ``amount`` and ``currency`` (text, for a credit; else None), ``summary``, ``agent`` (email), ``rule``,
    ``ticket`` (``system:ticket:id``), ``issue_keys``, ``customer`` (``name``, ``company``: the CRM reference, or
    None) and ``request_id``. A plugin that raises is reported; the decision stays recorded and the call is
    made again (same ``key``) when the same request is run again (``cxbridge act --request-id``, a re-run job).
    """
