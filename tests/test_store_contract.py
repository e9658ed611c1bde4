"""The store contract suite (``cxbridge.testing.contracts.StoreContract``) on both backends, unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxbridge.testing.contracts import StoreContract


class TestSQLiteStore(StoreContract):
    """The suite on a SQLite file."""

    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return str(tmp_path / "cxbridge.db")


class TestPostgresStore(StoreContract):
    """The suite on a PostgreSQL schema of this run's own database."""

    @pytest.fixture
    def location(self, pg_url: str) -> str:
        return pg_url
