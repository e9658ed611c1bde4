"""Fixtures shared by the core tests: a clean environment, a fake connector for in-memory plugins, and sandbox
runtimes (the emulators in process, a config pointing at them, a Runtime on it)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests.auth

from cxbridge.connectors import ConfigKey, Connector
from cxbridge.hookspecs import hookimpl
from cxbridge.plugins import ALLOWLIST_ENV
from cxbridge.sandbox.modes import Vendors, mock_vendors
from cxbridge.testing import SandboxRuntimes

# Helpers shared by the agent app's tests (tests/agent_app/zaf_keys.py: Zendesk's side of the signed page request);
# the tests import them as ``zaf_keys`` (pytest's importlib mode puts no test folder on the path by itself).
sys.path.insert(0, str(Path(__file__).parent / "agent_app"))


@pytest.fixture(autouse=True)
def _no_cxbridge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's CXBRIDGE_CONFIG or CXBRIDGE_LOAD_PLUGINS never leaks into a test."""
    monkeypatch.delenv("CXBRIDGE_CONFIG", raising=False)
    monkeypatch.delenv(ALLOWLIST_ENV, raising=False)


ConnectorFactory = Callable[..., type[Connector]]


@pytest.fixture
def make_connector() -> ConnectorFactory:
    """Build a Connector subclass for an in-memory plugin, without HTTP.

    ``make_connector("fake", config_keys={...}, check=lambda self: "authenticated as bot")``; ``check`` may
    raise (an ``AuthError``...) to play a failing system. ``from_config`` builds the connector with no HTTP
    client, so tests do not depend on the HTTP layer.
    """

    def factory(
        system: str,
        *,
        config_keys: Mapping[str, ConfigKey] | None = None,
        check: Callable[[Any], str] | None = None,
    ) -> type[Connector]:
        def make_auth(cls: type[Connector], config: Any) -> requests.auth.AuthBase:
            return requests.auth.HTTPBasicAuth("unused", "unused")

        def from_config(cls: type[Connector], config: Any, **kwargs: Any) -> Connector:
            return cls(config, None)  # type: ignore[arg-type]

        def default_check(self: Connector) -> str:
            return f"authenticated to {self.config.base_url}"

        namespace = {
            "system": system,
            "config_keys": dict(config_keys or {}),
            "cloud_domains": (".example.com",),  # the fakes' "vendor" lives on example.com
            "make_auth": classmethod(make_auth),
            "from_config": classmethod(from_config),
            "check": check or default_check,
        }
        return type(f"{system.title()}Connector", (Connector,), namespace)

    return factory


@pytest.fixture
def connectors_plugin() -> Callable[..., object]:
    """An in-memory plugin object whose ``register_connectors`` registers the given classes."""

    def factory(*classes: type[Connector]) -> object:
        class ConnectorsPlugin:
            @hookimpl
            def register_connectors(self, register: Callable[[type[Connector]], None]) -> None:
                for cls in classes:
                    register(cls)

        return ConnectorsPlugin()

    return factory


@pytest.fixture
def policies() -> dict[str, Any]:
    """The ``[policies]`` the decision tests share: Sam (tier 1) may credit up to 100 USD and raise priority to
    High for enterprise and strategic customers; Lee (a lead) may credit up to 500 USD, raise priority to Highest
    and reopen. A test may change its copy."""
    return {
        "rules": [
            {
                "name": "tier1-credits",
                "when": "customer.tier in ['enterprise', 'strategic'] and agent.team == 'tier1'",
                "grant": {"credit_max": 100, "currency": "USD", "priority_max": "High", "skip_triage": True},
            },
            {
                "name": "team-lead-credits",
                "when": "agent.role == 'lead'",
                "grant": {"credit_max": 500, "currency": "USD", "priority_max": "Highest", "reopen": True},
            },
        ],
        "agents": {
            "sam@cxbridge.example": {"team": "tier1", "role": "agent"},
            "lee@cxbridge.example": {"team": "tier1", "role": "lead"},
        },
    }


@pytest.fixture
def vendors() -> Iterator[Vendors]:
    """Zendesk, HubSpot and Jira emulated in process, seeded with the demo data (a test file may override it)."""
    with mock_vendors(["zendesk", "hubspot", "jira"], seed="demo") as v:
        yield v


@pytest.fixture
def sandbox_runtime(sandbox_runtimes: SandboxRuntimes) -> SandboxRuntimes:
    """The kit's ``sandbox_runtimes`` fixture (cxbridge.testing's pytest plugin) under the name these tests use.

    ``sandbox_runtime(vendors, extra={"sync": {...}})`` is a Runtime on a fresh ``cxbridge.toml``, closed when the
    test ends; see ``cxbridge.testing.SandboxRuntimes`` for ``systems=``, ``clock=``, ``.config()`` and ``.load()``.
    """
    return sandbox_runtimes


# --- PostgreSQL: one database per test run, one schema per test ---------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Any]:
    """This run's own PostgreSQL database (dropped at the end); skips when no server answers, unless
    CXBRIDGE_PG_REQUIRED is set (CI), where it fails."""
    try:
        from cxbridge.testing.postgres import REQUIRED_ENV, TestDatabase, unreachable_reason
    except ImportError:  # without the postgres extra
        if os.environ.get("CXBRIDGE_PG_REQUIRED"):
            raise
        pytest.skip("the PostgreSQL tests need the postgres extra (pip install -e '.[dev]')")
    reason = unreachable_reason()
    if reason is not None:
        if os.environ.get(REQUIRED_ENV):
            pytest.fail(reason)
        pytest.skip(reason)
    with TestDatabase() as db:
        yield db


@pytest.fixture
def pg_url(pg_database: Any) -> str:
    """A store URL on an empty schema of this run's PostgreSQL database."""
    return str(pg_database.fresh_schema())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store location on each backend: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "cxbridge.db")
    return str(request.getfixturevalue("pg_url"))
