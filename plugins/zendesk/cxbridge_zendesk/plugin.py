"""The Zendesk plugin's hook implementations (entry point `zendesk` in the group `cxbridge`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cxbridge.sdk import hookimpl

if TYPE_CHECKING:
    import click

    from cxbridge.sdk import Backend, Connector, Verifier


@hookimpl
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Registers the Zendesk connector."""
    from .connector import ZendeskConnector

    register(ZendeskConnector)


@hookimpl
def register_sandbox_backends(register: Callable[[type[Backend]], None]) -> None:
    """Registers the Zendesk emulator."""
    from .sandbox.backend import ZendeskBackend

    register(ZendeskBackend)


@hookimpl
def register_webhook_verifiers(register: Callable[[str, Verifier], None]) -> None:
    """Registers the Zendesk webhook verifier."""
    from .webhook import verify_zendesk

    register("zendesk", verify_zendesk)


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Registers ``cxbridge zendesk-app build`` (the ticket sidebar app as a zip to upload)."""
    from .app_build import register

    register(cli)
