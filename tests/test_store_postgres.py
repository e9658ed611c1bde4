"""What only the PostgreSQL store has: connections cut by the server, privileges, a standby's refusal, the
asynchronous commits and the durable delivery (the shared properties are the contract suite)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cxbridge.store import StoreBusy, StoreError, open_store
from cxbridge.store.postgres import PostgresStore, inspect_database


def terminate(admin_url: str, application: str) -> int:
    """Terminate every backend of ``application`` and wait until they are gone (each has said goodbye to its
    client, so the cut is on the client's side before the next operation starts)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (application,)
        ).fetchall()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application,)
            ).fetchone()
            if not left or not left[0]:
                break
            time.sleep(0.01)
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


def _round_trips(trace: Path) -> int:
    """Messages that end a round trip in a libpq protocol trace: a simple query, or the Sync of an extended one."""
    fields = [line.split("\t") for line in trace.read_text(encoding="utf-8").splitlines()]
    return sum(1 for f in fields if len(f) > 2 and f[0] == "F" and f[2].strip() in ("Sync", "Query"))


@contextmanager
def traced(store: PostgresStore, trace: Path) -> Iterator[None]:
    """Trace the protocol of the store's one pooled connection into ``trace`` for the block."""
    with trace.open("w") as out:
        with store._pool_now().connection() as conn:
            conn.pgconn.trace(out.fileno())
            conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        try:
            yield
        finally:
            with store._pool_now().connection() as conn:
                conn.pgconn.untrace()


def test_a_job_costs_one_round_trip_per_step(pg_url: str, tmp_path: Path) -> None:
    """A job's steps are each one statement in autocommit (no BEGIN/COMMIT round trips): claim, lease check,
    the intent begun already sending (``begin_sending``), its outcome, completion: five round trips in all."""
    from cxbridge.workflows.once import write_once

    store = PostgresStore(pg_url, pool_size=1)
    try:
        store.enqueue("work", {"n": 1})
        trace = tmp_path / "libpq.trace"
        with traced(store, trace):
            job = store.claim("w", lease_seconds=30, kinds=["work"], max_attempts=8)
            assert job is not None
            assert store.hold_lease(job.id, job.attempt, 30)
            written = write_once(store, "op-1", "ledger.append", "drain:1", lambda: {"line": "1"})
            assert written == "written"
            assert store.complete(job.id, job.attempt)
        assert _round_trips(trace) == 5, trace.read_text(encoding="utf-8")
        assert "BEGIN" not in trace.read_text(encoding="utf-8")
        assert store.queue_depth()["done"] == 1
        intent = store.get_intent("op-1")
        assert intent is not None
        assert intent.state == "done"
    finally:
        store.close()


def test_an_entitys_claim_is_one_transaction_of_two_statements(pg_url: str, tmp_path: Path) -> None:
    """A job with an entity lock is claimed in BEGIN, pick-and-lock, lease-if-free, COMMIT: after the first such
    claim (which tries the one-statement claim first) the store goes straight to the transaction."""
    store = PostgresStore(pg_url, pool_size=1)
    try:
        for n in range(3):
            store.enqueue("event", {"n": n}, lock_key=f"helpdesk:ticket:{n}")
        trace = tmp_path / "libpq.trace"
        with traced(store, trace):
            first = store.claim("w", lease_seconds=30, max_attempts=8)
            second = store.claim("w", lease_seconds=30, max_attempts=8)
        assert first is not None
        assert second is not None
        assert (first.payload, second.payload) == ({"n": 0}, {"n": 1})
        assert _round_trips(trace) == 5 + 4  # the first tried the one-statement claim, the second did not
    finally:
        store.close()


def test_the_server_computes_the_same_entity_lock_as_lock_id(pg_url: str) -> None:
    """Claims take an entity's advisory lock by a key the server computes from the job's lock_key; it is the
    key ``lock_id`` gives, so every claimer (and every version of cxbridge) excludes the others."""
    from cxbridge.store.postgres import _ENTITY_LOCK, lock_id

    keys = ["helpdesk:ticket:1", "tracker:issue:PROJ-42", "crm:company:ÅÉ-ü-7", ""]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for key in keys:
            row = conn.execute(f"SELECT {_ENTITY_LOCK.format(key='%s')}", ("s1", key)).fetchone()
            assert row is not None
            assert row[0] == lock_id(f"cxbridge:entity:s1:{key}")


def test_a_statement_cut_off_in_flight_is_not_repeated_unless_it_is_idempotent(pg_url: str) -> None:
    """An autocommit statement whose connection is cut while it runs may have committed: it raises StoreBusy and
    is not run again; one marked idempotent is run again on a fresh connection."""
    application = f"cxb-inflight-{secrets.token_hex(3)}"
    with open_store(f"{pg_url}&application_name={application}") as store:
        assert isinstance(store, PostgresStore)
        runs: list[int] = []

        def slow(conn: psycopg.Connection[tuple[object, ...]]) -> int:
            runs.append(1)
            if len(runs) == 1:  # the first run is cut off while the server works on it
                cutter = threading.Timer(0.3, terminate, (pg_url.split("?")[0], application))
                cutter.start()
                conn.execute("SELECT pg_sleep(5)")
            return len(runs)

        with pytest.raises(StoreBusy):
            store._run(slow, single=True)
        assert runs == [1]
        runs.clear()
        assert store._run(slow, single=True, idempotent=True) == 2
        assert store.queue_depth()["ready"] == 0  # the store works on fresh connections


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


def test_an_echo_delivery_does_not_wait_for_the_wal_flush(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delivery recorded without a job (an echo of cxbridge's own change) commits asynchronously, as other
    writes do; a delivery with a job waits for the flush."""
    with open_store(pg_url) as store:
        assert isinstance(store, PostgresStore)
        seen: list[bool] = []
        run = store._run

        def recording(fn: Any, *, durable: bool = False, **kw: Any) -> Any:
            seen.append(durable)
            return run(fn, durable=durable, **kw)

        monkeypatch.setattr(store, "_run", recording)
        assert store.accept_delivery("jira", "echo-1", payload={}, job_kind=None, job_payload=None)
        assert store.accept_delivery("jira", "real-1", payload={}, job_kind="event", job_payload={})
        row = store.inbox_row("jira", "echo-1")
    assert row is not None
    assert row.job_id is None
    assert seen[:2] == [False, True]


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


def test_a_job_ending_wakes_the_workers_only_when_a_job_of_its_entity_waits(pg_url: str) -> None:
    """A job holding an entity lock that ends announces work (``NOTIFY``) only when another job of that entity is
    due, or when the job itself is due again at once: most tickets have none, and every idle worker woke and
    claimed nothing. The notifications are read up to a sentinel sent after each step (PostgreSQL delivers them
    in commit order), so nothing here waits on time."""
    with open_store(pg_url) as store:
        assert isinstance(store, PostgresStore)
        with psycopg.connect(pg_url.split("?")[0], autocommit=True) as listener:
            listener.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(store.channel)))

            def announced_by(step: Any) -> int:
                step()
                listener.execute("SELECT pg_notify(%s, 'sentinel')", (store.channel,))
                for count, note in enumerate(listener.notifies(timeout=60)):
                    if note.payload == "sentinel":
                        return count
                raise AssertionError("the sentinel notification never came")

            assert announced_by(lambda: store.enqueue("event", {"n": 1}, lock_key="zendesk:ticket:1")) == 1
            first = store.claim("w", lease_seconds=60, kinds=["event"])
            assert first is not None
            # another ticket's job, due and ready, does not wait for this one's entity
            assert announced_by(lambda: store.enqueue("other", {}, lock_key="zendesk:ticket:2")) == 1
            assert announced_by(lambda: store.complete(first.id, first.attempt)) == 0  # nothing waits for it
            announced_by(lambda: store.enqueue("event", {"n": 2}, lock_key="zendesk:ticket:1"))
            second = store.claim("w", lease_seconds=60, kinds=["event"])
            assert second is not None
            announced_by(lambda: store.enqueue("event", {"n": 3}, lock_key="zendesk:ticket:1"))
            assert store.claim("w", lease_seconds=60, kinds=["event"]) is None  # the third waits for the entity
            assert announced_by(lambda: store.complete(second.id, second.attempt)) == 1
            third = store.claim("w", lease_seconds=60, kinds=["event"])
            assert third is not None
            assert third.payload == {"n": 3}
            assert announced_by(lambda: store.fail(third.id, third.attempt, error="boom")) == 0
            # a job put back due at once is work again; one put back for later is not (the poll finds it then)
            announced_by(lambda: store.enqueue("event", {"n": 4}, lock_key="zendesk:ticket:1"))
            fourth = store.claim("w", lease_seconds=60, kinds=["event"])
            assert fourth is not None
            assert announced_by(lambda: store.retry_later(fourth.id, fourth.attempt, run_at=0.0, error="429")) == 1
            again = store.claim("w", lease_seconds=60, kinds=["event"])
            assert again is not None
            assert again.id == fourth.id
            later = store.clock() + 3600
            assert announced_by(lambda: store.retry_later(again.id, again.attempt, run_at=later, error="429")) == 0
            # a dead job frees its entity as a finished one does: announced when a due job of it waits
            announced_by(lambda: store.enqueue("event", {"n": 5}, lock_key="zendesk:ticket:1"))
            fifth = store.claim("w", lease_seconds=60, kinds=["event"])
            assert fifth is not None
            assert fifth.payload == {"n": 5}
            announced_by(lambda: store.enqueue("event", {"n": 6}, lock_key="zendesk:ticket:1"))
            assert announced_by(lambda: store.fail(fifth.id, fifth.attempt, error="boom")) == 1
