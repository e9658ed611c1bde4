"""What only the PostgreSQL store has: connections cut by the server, privileges, a standby's refusal, the
asynchronous commits and the durable delivery (the shared properties are the contract suite)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

from cxbridge.store import StoreError, open_store
from cxbridge.store.postgres import PostgresStore, inspect_database


def terminate(admin_url: str, application: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (application,)
        ).fetchall()
    return len(rows)


def test_an_operation_whose_connection_was_cut_runs_again_on_a_new_one(pg_url: str) -> None:
    """The server terminates every connection of the store's pool: the next operations reconnect and succeed,
    and nothing is written twice."""
    application = f"cxb-cut-{secrets.token_hex(3)}"
    with open_store(f"{pg_url}&application_name={application}") as store:
        first = store.enqueue("work", {"n": 1})
        assert terminate(pg_url.split("?")[0], application) >= 1
        second = store.enqueue("work", {"n": 2})
        assert second is not None
        assert first is not None
        assert second > first
        assert store.queue_depth()["ready"] == 2
        job = store.claim("w", lease_seconds=30)
        assert job is not None
        terminate(pg_url.split("?")[0], application)
        assert store.complete(job.id, job.attempt)
        assert store.queue_depth() == {"ready": 1, "leased": 0, "done": 1, "dead": 0}


def test_only_the_delivery_waits_for_the_wal_flush(pg_url: str) -> None:
    """Pooled connections commit asynchronously; the transaction that accepts a delivery (acknowledged to the
    vendor after it) sets synchronous_commit back on for itself."""
    with open_store(pg_url) as store:
        assert isinstance(store, PostgresStore)
        seen: list[str] = []

        def setting(conn: psycopg.Connection[tuple[object, ...]]) -> None:
            row = conn.execute("SELECT current_setting('synchronous_commit')").fetchone()
            seen.append(str(row[0]) if row else "")

        store._run(setting)
        store._run(setting, durable=True)
        store._run(setting)
    assert seen == ["off", "on", "off"]


@pytest.fixture
def limited_role(pg_database: object, pg_url: str) -> Iterator[str]:
    """A login role with no privilege on the store's tables (dropped afterwards); a URL for it."""
    role = f"cxb_limited_{secrets.token_hex(4)}"
    admin = pg_url.split("?")[0]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        schema = pg_url.rsplit("%3D", 1)[1]
        conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    try:
        yield pg_url.replace("postgresql://postgres@", f"postgresql://{role}@")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_doctor_names_the_missing_privileges(pg_url: str, limited_role: str) -> None:
    """A user that may not write cxbridge's tables, or create them while a migration is pending, is refused with
    what to grant."""
    with pytest.raises(StoreError, match="may not create tables in schema") as pending:
        inspect_database(limited_role)
    assert "GRANT CREATE ON SCHEMA" in str(pending.value)
    open_store(pg_url).close()  # migrated by its owner
    with pytest.raises(StoreError, match="may not read _cxbridge_migrations"):
        inspect_database(limited_role)
    schema = pg_url.rsplit("%3D", 1)[1]
    role = limited_role.split("://", 1)[1].split("@", 1)[0]
    with psycopg.connect(pg_url.split("?")[0], autocommit=True) as conn:
        conn.execute(f'GRANT SELECT ON "{schema}"._cxbridge_migrations, "{schema}".jobs TO "{role}"')
    everything_but_select = "lacks SELECT, INSERT, UPDATE, DELETE on links, intents, inbox, jobs, dead_letters"
    with pytest.raises(StoreError, match=everything_but_select):
        inspect_database(limited_role)
    assert "version" in inspect_database(pg_url)


def test_a_server_that_cannot_be_reached_is_one_line_without_the_password() -> None:
    """Opening a store on a port where no server listens is a StoreError naming the URL, the password never."""
    with pytest.raises(StoreError, match=r"cannot reach the store postgresql://cx@127\.0\.0\.1:1/cx") as info:
        PostgresStore("postgresql://cx@127.0.0.1:1/cx", password="hunter22-secret")
    assert "hunter22" not in str(info.value)
