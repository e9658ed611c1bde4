"""The Jira plugin's hook implementations (entry point `jira` in the group `cxbridge`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cxbridge.hookspecs import hookimpl


@hookimpl
def register_connectors(register: Callable[[type[Any]], None]) -> None:
    """Registers the Jira connector."""
