"""A PostgreSQL database of its own for a test run: created on a shared server, dropped at the end.

``TestDatabase()`` connects to the server named by ``CXBRIDGE_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``, trust authentication), creates a uniquely named database
(``cxb_test_<pid>_<random>``: other people's runs on the same server never collide) and drops it on exit.
``fresh_schema()`` hands each test an empty schema of its own in that database, as a store URL whose
``search_path`` names it, so tests need neither a new database each nor any cleanup between them.

Needs the ``cxbridge[postgres]`` extra.
"""

from __future__ import annotations

import itertools
import os
import secrets
from types import TracebackType
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SERVER_ENV = "CXBRIDGE_PG_URL"
"""The URL of the server tests may create databases on (a superuser or a role with CREATEDB)."""
REQUIRED_ENV = "CXBRIDGE_PG_REQUIRED"
"""When set (CI), an unreachable server fails the PostgreSQL tests instead of skipping them."""
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    """The server the tests use."""
    return os.environ.get(SERVER_ENV) or DEFAULT_SERVER


def unreachable_reason() -> str | None:
    """Why the test server cannot be used (one line), or None when it answers."""
    try:
        with psycopg.connect(server_url(), connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no PostgreSQL server for the tests at {server_url()} ({first}); set {REQUIRED_ENV}=1 to fail instead"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


class TestDatabase:
    """A uniquely named database on the test server, created on ``__enter__`` and dropped on ``__exit__``."""

    __test__ = False  # not a pytest test class

    def __init__(self, server: str | None = None, prefix: str = "cxb_test") -> None:
        self.server = server or server_url()
        self.name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
        self._schemas = itertools.count(1)

    @property
    def url(self) -> str:
        """The database's URL (the server's, with this database's name)."""
        params = conninfo_to_dict(self.server)
        host = params.get("host", "127.0.0.1")
        port = params.get("port", "5432")
        user = params.get("user", "postgres")
        return f"postgresql://{quote(str(user))}@{host}:{port}/{self.name}"

    def __enter__(self) -> TestDatabase:
        with psycopg.connect(self.server, autocommit=True) as conn:
            self._drop_abandoned(conn)
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        return self

    def _drop_abandoned(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Drop the databases of earlier runs on this machine that were killed before their clean-up: named with
        this prefix, their process gone, nobody connected."""
        prefix = self.name.rsplit("_", 2)[0]
        rows = conn.execute(
            "SELECT datname FROM pg_database d WHERE datname LIKE %s"
            " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
            (f"{prefix}\\_%",),
        ).fetchall()
        for (name,) in rows:
            pid = str(name)[len(prefix) + 1 :].split("_", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(str(name))))

    def fresh_schema(self) -> str:
        """A store URL on a new, empty schema of this database (its ``search_path``)."""
        schema = f"t{next(self._schemas)}"
        with psycopg.connect(make_conninfo(self.server, dbname=self.name), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        return f"{self.url}?options=-csearch_path%3D{schema}"

    def drop(self) -> None:
        """Drop the database, ending any session still connected to it."""
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.drop()
