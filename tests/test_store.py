"""The SQLite store itself: opening, migrations, pragmas, rollback and redaction (the backend-neutral properties
are the contract suite, tests/test_store_contract.py)."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings

from cxbridge.secrets import Secret
from cxbridge.store import (
    SQLiteStore,
    Store,
    StoreError,
    open_store,
)
from cxbridge.store import base as store_base
from cxbridge.store.migrations import Migrations, migrations

T0 = 1_750_000_000.0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "cxbridge.db", clock=clock)
    yield s
    s.close()


# ---- opening, migrations, pragmas -------------------------------------------------------------------


def test_open_store_returns_a_store(tmp_path: Path) -> None:
    """open_store gives a Store backed by the file it names."""
    with open_store(tmp_path / "x.db") as s:
        assert isinstance(s, Store)
        assert isinstance(s, SQLiteStore)
    assert (tmp_path / "x.db").exists()


def test_open_store_refuses_memory_an_inline_password_and_other_schemes(tmp_path: Path) -> None:
    """A store must be a file every thread and process can share; a PostgreSQL URL never carries its password
    (refused before any connection, the password not shown); an unknown scheme is never taken for a file."""
    with pytest.raises(StoreError, match="file"):
        open_store(":memory:")
    with pytest.raises(StoreError, match="password inline") as refused:
        open_store("postgresql://app:hunter2-very-secret@localhost/cxbridge")
    assert "hunter2-very-secret" not in str(refused.value)
    with pytest.raises(StoreError, match="not a store cxbridge can open"):
        open_store("mysql://localhost/cxbridge")
    assert not list(tmp_path.iterdir())
    with pytest.raises(StoreError, match="folder does not exist"):
        open_store(tmp_path / "missing" / "x.db")


def test_migrations_applied_once_and_recorded(tmp_path: Path, clock: FakeClock) -> None:
    """Opening applies each migration once, records its version, and reopening keeps data and adds nothing."""
    path = tmp_path / "cxbridge.db"
    s = SQLiteStore(path, clock=clock)
    assert s.schema_version() == migrations.latest >= 1
    job_id = s.enqueue("escalate", {"ticket": "4211"})
    s.close()

    s2 = SQLiteStore(path, clock=clock)
    assert s2.job(job_id) is not None
    assert s2.schema_version() == migrations.latest
    s2.close()

    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT migration_set, version, name FROM _cxbridge_migrations").fetchall()
    assert rows == [("cxbridge", m.version, m.name) for m in migrations.all()]
    conn.close()


def test_migration_runner_is_transactional_and_idempotent(tmp_path: Path) -> None:
    """A failing migration leaves nothing behind and is not recorded; a second apply runs nothing."""
    m = Migrations("test")

    @m(1)
    def create_a(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE a (x INTEGER)")

    @m(2)
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE b (x INTEGER)")
        conn.execute("INSERT INTO nowhere VALUES (1)")

    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        m.apply(conn)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "a" in tables
    assert "b" not in tables
    assert m.version(conn) == 1
    assert [x.name for x in m.pending(conn)] == ["broken"]

    m2 = Migrations("test")
    m2(1)(create_a)
    assert m2.apply(conn) == []
    assert m2.version(conn) == 1
    conn.close()


def test_migrations_refuse_a_newer_schema(tmp_path: Path) -> None:
    """A database written by a newer cxbridge (an unknown version) is refused with a clear error."""
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    newer = Migrations("test")
    newer(1)(lambda c: None)
    newer(2)(lambda c: None)
    newer.apply(conn)
    older = Migrations("test")
    older(1)(lambda c: None)
    with pytest.raises(StoreError, match="newer"):
        older.apply(conn)
    conn.close()


def test_migration_numbers_are_unique_and_positive() -> None:
    """Registering a number twice, or zero, is a programming error caught at import."""
    m = Migrations("test")
    m(1)(lambda c: None)
    with pytest.raises(ValueError, match="twice"):
        m(1)
    with pytest.raises(ValueError, match="start at 1"):
        m(0)


def test_accepting_a_delivery_commits_with_synchronous_full(store: SQLiteStore) -> None:
    """The vendor is acknowledged after this commit: it runs with FULL, the other writes with NORMAL."""
    conn = store._conn()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        store.accept_delivery("jira", "d-1", payload={}, job_kind="event", job_payload={})
        store.enqueue("event", {})
    finally:
        conn.set_trace_callback(None)
    begins = [i for i, text in enumerate(statements) if text == "BEGIN IMMEDIATE"]
    assert len(begins) == 2
    assert statements[begins[0] - 1] == "PRAGMA synchronous = FULL"
    assert "PRAGMA synchronous = NORMAL" in statements[begins[0] : begins[1]]
    assert statements[begins[1] - 1] != "PRAGMA synchronous = FULL"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_an_echo_delivery_commits_without_waiting_for_the_disk(store: SQLiteStore) -> None:
    """A delivery recorded without a job (an echo of cxbridge's own change) commits with NORMAL: no work
    depends on it. It is still recorded and deduplicated."""
    conn = store._conn()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        assert store.accept_delivery("jira", "echo-1", payload={"x": 1}, job_kind=None, job_payload=None)
    finally:
        conn.set_trace_callback(None)
    assert "BEGIN IMMEDIATE" in statements
    assert "PRAGMA synchronous = FULL" not in statements
    row = store.inbox_row("jira", "echo-1")
    assert row is not None
    assert row.job_id is None
    assert not store.accept_delivery("jira", "echo-1", payload={"x": 1}, job_kind=None, job_payload=None)


def test_connection_pragmas(store: SQLiteStore, tmp_path: Path) -> None:
    """WAL, synchronous=NORMAL (FULL for accepting deliveries), foreign keys and a 5 s busy timeout."""
    conn = store._conn()  # the calling thread's connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert conn.isolation_level is None
    other = sqlite3.connect(tmp_path / "cxbridge.db")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    other.close()


def test_failed_write_rolls_back(store: SQLiteStore) -> None:
    """A writing transaction that fails half-way leaves nothing behind and the store stays usable."""

    def half_way() -> None:
        with store._write() as conn:
            conn.execute(
                "INSERT INTO jobs (kind, payload, state, run_at, created_at, updated_at)"
                " VALUES ('a', '{}', 'ready', 0, 0, 0)"
            )
            conn.execute(
                "INSERT INTO jobs (kind, payload, state, run_at, created_at, updated_at)"
                " VALUES (NULL, '{}', 'ready', 0, 0, 0)"
            )

    with pytest.raises(sqlite3.IntegrityError):
        half_way()
    assert store.queue_depth()["ready"] == 0
    assert store.enqueue("b", {}) is not None


# ---- links -------------------------------------------------------------------------------------------


# ---- intents -----------------------------------------------------------------------------------------


# ---- inbox and enqueue -------------------------------------------------------------------------------


# ---- claiming and fencing ----------------------------------------------------------------------------


# ---- dead letters ------------------------------------------------------------------------------------


# ---- audit and checkpoints ---------------------------------------------------------------------------


# ---- redaction ---------------------------------------------------------------------------------------


def test_stored_errors_use_the_one_redactor() -> None:
    """Errors go through cxbridge.redact, so credential headers are scrubbed even without a Secret."""
    text = store_base.redact_text("request failed; Authorization: Bearer abcDEF123456ghiJKL789")
    assert "abcDEF123456ghiJKL789" not in text
    assert text.startswith("request failed; Authorization: ")


def test_the_store_scrubs_every_known_secret_value_however_spelled() -> None:
    """The store scrubs every known secret value, raw, URL-encoded and base64, in text and in JSON values."""
    secret = Secret("fallback/secret+value=1")
    raw = secret.reveal()
    text = store_base.redact_text(f"a {raw} b {quote(raw, safe='')} c {base64.b64encode(raw.encode()).decode()} d")
    assert text == "a *** b *** c *** d"
    assert store_base.redact_value({"k": [raw, 1, {raw: None}]}) == {"k": ["***", 1, {"***": None}]}
    Secret("ab")  # too short to scrub by value: it would destroy every message
    assert store_base.redact_text("abc") == "abc"


def test_purges_run_in_small_batches_and_counts_follow(store: SQLiteStore, clock: FakeClock) -> None:
    """Issue 16: each purge batch is its own write transaction (receivers interleave); the queue counts come from
    counters that every insert, state change and delete keeps exact."""
    for n in range(7):
        assert store.accept_delivery("zendesk", f"d{n}", payload={}, job_kind="k", job_payload={})
    for _ in range(7):
        job = store.claim("w", lease_seconds=60)
        assert job is not None
        assert store.complete(job.id, job.attempt)
    writes: list[int] = []
    original = store._write

    def counting_write(**kwargs: bool) -> object:
        writes.append(1)
        return original(**kwargs)

    store._write = counting_write  # type: ignore[method-assign,assignment]
    clock.advance(8 * 86400)
    assert store.purge_jobs(batch=3) == 7
    assert len(writes) == 3  # 3 + 3 + 1
    assert store.queue_depth() == {"ready": 0, "leased": 0, "done": 0, "dead": 0}
    row = store.inbox_row("zendesk", "d0")
    assert row is not None
    assert row.job_id is None  # the delivery is still remembered; its finished job is gone
    writes.clear()
    assert store.purge_inbox(batch=2) == 7
    assert len(writes) == 4
    assert store._conn().execute("SELECT count(*) FROM inbox").fetchone()[0] == 0
    with pytest.raises(ValueError, match="at least one row"):
        store.purge_jobs(batch=0)
    counted = dict(store._conn().execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    assert store.queue_depth() == {"ready": 0, "leased": 0, "done": 0, "dead": 0, **counted}


def _claim_steps(store: SQLiteStore) -> int:
    """SQLite virtual-machine steps one claim takes (counted by a progress handler on this thread's connection)."""
    conn = store._conn()
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(count, 1)
    try:
        job = store.claim("w", lease_seconds=60, max_attempts=5)
    finally:
        conn.set_progress_handler(None, 1)
    assert job is not None
    return steps[0]


def test_a_claim_does_not_grow_with_the_queue(tmp_path: Path, clock: FakeClock) -> None:
    """Issue 16: a claim walks the ready jobs in order and stops at the first it may take; it never reads (and
    sorts) the whole queue under the write lock, where the receiver's deliveries wait. Counted in SQLite's steps,
    not timed: a claim with 2,000 jobs queued on 50 entities takes about the steps of one with 20 queued."""
    steps: dict[int, int] = {}
    for queued in (20, 2000):
        with SQLiteStore(tmp_path / f"q{queued}.db", clock=clock) as store:
            for n in range(queued):
                store.enqueue("event", {"n": n}, lock_key=f"ticket:{n % 50}")
            held = store.claim("other", lease_seconds=60)  # one entity's lock held by another worker
            assert held is not None
            steps[queued] = _claim_steps(store)
    assert steps[2000] < 2 * steps[20], steps


def _json_values() -> Any:
    from datetime import UTC

    from hypothesis import strategies as st

    from cxbridge.models import Ref

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.decimals(allow_nan=False, allow_infinity=False, places=2),
        st.datetimes(timezones=st.just(UTC)),
        st.builds(Ref, st.sampled_from(["zendesk", "jira"]), st.just("ticket"), st.text(min_size=1, max_size=4)),
    )
    keys = st.one_of(st.text(max_size=6), st.integers(min_value=0, max_value=20))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.lists(inner, max_size=3).map(tuple),
            st.dictionaries(st.text(max_size=6), inner, max_size=4),
            st.dictionaries(keys, inner, max_size=3),
        ),
        max_leaves=20,
    )


@given(_json_values())
@settings(max_examples=400, deadline=None)
def test_the_stored_json_is_what_json_dumps_of_to_jsonable_gives(value: Any) -> None:
    """``json_text`` (a plain value encoded as it is, by one encoder) keeps the bytes the stores always wrote:
    non-str keys, Decimals, datetimes, Refs and tuples still go through ``to_jsonable``."""
    from cxbridge.models import to_jsonable

    try:
        expected = json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:  # e.g. keys of mixed types that cannot be sorted: the same refusal
        with pytest.raises(type(exc)):
            store_base.json_text(value)
        return
    assert store_base.json_text(value) == expected


def _texts() -> Any:
    from hypothesis import strategies as st

    from cxbridge.models import to_jsonable

    encoded = _json_values().map(lambda v: json.dumps(to_jsonable(v), sort_keys=True, separators=(",", ":")))
    return st.one_of(
        encoded,
        st.tuples(encoded, st.sampled_from(["", " ", "\n", " x", "]", "{}"])).map("".join),
        st.tuples(st.sampled_from([" ", "\t", "\ufeff"]), encoded).map("".join),
        encoded.map(lambda t: t[: len(t) // 2]),
        st.text(max_size=10),
    )


@given(_texts())
@settings(max_examples=400, deadline=None)
def test_rows_are_read_back_as_json_loads_reads_them(text: str) -> None:
    """The store's reader gives what ``json.loads`` gives for any text (padded, truncated, not JSON at all), and
    raises what it raises."""
    from cxbridge.store.sqlite import _loads

    try:
        expected = json.loads(text)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            _loads(text)
        return
    got = _loads(text)
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
