"""The HubSpot plugin's hook implementations (entry point `hubspot` in the group `cxbridge`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cxbridge.sdk import hookimpl

if TYPE_CHECKING:
    from cxbridge.sdk import Backend, Connector, Verifier


@hookimpl
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Registers the HubSpot connector."""
    from .connector import HubSpotConnector

    register(HubSpotConnector)


@hookimpl
def register_sandbox_backends(register: Callable[[type[Backend]], None]) -> None:
    """Registers the HubSpot emulator."""
    from .sandbox.backend import HubSpotBackend

    register(HubSpotBackend)


@hookimpl
def register_webhook_verifiers(register: Callable[[str, Verifier], None]) -> None:
    """Registers the HubSpot webhook verifier."""
    from .webhook import verify_hubspot

    register("hubspot", verify_hubspot)
