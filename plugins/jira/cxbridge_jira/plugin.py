"""The Jira plugin's hook implementations (entry point `jira` in the group `cxbridge`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cxbridge.sdk import hookimpl

if TYPE_CHECKING:
    from cxbridge.sdk import Backend, Connector, Verifier


@hookimpl
def register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Registers the Jira connector."""
    from .connector import JiraConnector

    register(JiraConnector)


@hookimpl
def register_sandbox_backends(register: Callable[[type[Backend]], None]) -> None:
    """Registers the Jira emulator."""
    from .sandbox.backend import JiraBackend

    register(JiraBackend)


@hookimpl
def register_webhook_verifiers(register: Callable[[str, Verifier], None]) -> None:
    """Registers the Jira webhook verifier."""
    from .webhook import verify_jira

    register("jira", verify_jira)
