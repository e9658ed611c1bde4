"""AcmeDesk's hook implementations (entry point ``acmedesk`` in the group ``cxbridge``)."""

from __future__ import annotations

from collections.abc import Callable

from cxbridge.sdk import Backend, Connector, Verifier, hookimpl


@hookimpl
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Registers the AcmeDesk connector (the Helpdesk role)."""
    from .connector import AcmeDeskConnector

    register(AcmeDeskConnector)


@hookimpl
def register_webhook_verifiers(register: Callable[[str, Verifier], None]) -> None:
    """Registers the verifier of AcmeDesk's signed webhooks."""
    from .webhook import SYSTEM, verify_acmedesk

    register(SYSTEM, verify_acmedesk)


@hookimpl
def register_sandbox_backends(register: Callable[[type[Backend]], None]) -> None:
    """Registers the AcmeDesk emulator."""
    from .sandbox import AcmeDeskBackend

    register(AcmeDeskBackend)
