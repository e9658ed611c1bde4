"""The SQLite store: links, intents, inbox and queue, fencing, dead letters, audit, checkpoints."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from cxbridge.models import Link, Ref
from cxbridge.secrets import Secret
from cxbridge.store import (
    AlreadyReplayed,
    IntentStateError,
    NotFoundInStore,
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


TICKET = Ref("zendesk", "ticket", "4211")
TICKET2 = Ref("zendesk", "ticket", "4212")
ISSUE = Ref("jira", "issue", "10042")
ISSUE2 = Ref("jira", "issue", "10043")
COMPANY = Ref("hubspot", "company", "99")


# ---- opening, migrations, pragmas -------------------------------------------------------------------


def test_open_store_returns_a_store(tmp_path: Path) -> None:
    """open_store gives a Store backed by the file it names."""
    with open_store(tmp_path / "x.db") as s:
        assert isinstance(s, Store)
        assert isinstance(s, SQLiteStore)
    assert (tmp_path / "x.db").exists()


def test_open_store_refuses_memory_and_postgres(tmp_path: Path) -> None:
    """A store must be a file every thread and process can share; PostgreSQL is not implemented yet."""
    with pytest.raises(StoreError, match="file"):
        open_store(":memory:")
    with pytest.raises(StoreError, match="PostgreSQL"):
        open_store("postgresql://localhost/cxbridge")
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


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    """After close() every call raises StoreError instead of reopening silently."""
    s = SQLiteStore(tmp_path / "c.db")
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.enqueue("x", {})


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


def test_links(store: SQLiteStore, clock: FakeClock) -> None:
    """Links are unique per ticket and issue, found from either side or by key, and removable."""
    when = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    first = Link(TICKET, ISSUE, "ENG-7", customer=COMPANY, linked_by="agent:5", linked_at=when, origin_event="e1")
    assert store.add_link(first) is True
    assert store.add_link(Link(TICKET, ISSUE, "ENG-7")) is False
    clock.advance(10)
    assert store.add_link(Link(TICKET2, ISSUE, "ENG-7")) is True
    clock.advance(10)
    assert store.add_link(Link(TICKET, ISSUE2, "ENG-8")) is True

    assert store.links_for_ticket(TICKET) == [first, Link(TICKET, ISSUE2, "ENG-8", linked_at=_at(clock.now))]
    assert [lk.ticket for lk in store.links_for_issue(ISSUE)] == [TICKET, TICKET2]
    assert [lk.ticket for lk in store.links_for_issue_key("ENG-7")] == [TICKET, TICKET2]
    assert store.links_for_issue_key("ENG-99") == []
    assert len(store.all_links()) == 3
    got = store.links_for_issue(ISSUE)[1]
    assert got.customer is None
    assert got.linked_at == _at(T0 + 10)
    assert got.linked_at is not None
    assert got.linked_at.tzinfo is not None

    assert store.remove_link(TICKET, ISSUE) is True
    assert store.remove_link(TICKET, ISSUE) is False
    assert [lk.ticket for lk in store.links_for_issue(ISSUE)] == [TICKET2]


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


# ---- intents -----------------------------------------------------------------------------------------


def test_begin_intent_is_idempotent(store: SQLiteStore, clock: FakeClock) -> None:
    """begin_intent inserts once; a second call returns the stored row untouched (payload included)."""
    assert store.get_intent("op-1") is None
    first = store.begin_intent("op-1", "jira.create", business_key="zendesk:ticket:4211", payload={"a": 1})
    assert (first.state, first.attempts, first.payload, first.sent_at) == ("pending", 0, {"a": 1}, None)
    assert first.created_at == T0
    store.mark_intent("op-1", "sending")
    clock.advance(5)
    again = store.begin_intent("op-1", "jira.create", business_key="other", payload={"a": 2})
    assert again.state == "sending"
    assert again.payload == {"a": 1}
    assert again.business_key == "zendesk:ticket:4211"
    assert again == store.get_intent("op-1")


def test_intent_lifecycle(store: SQLiteStore, clock: FakeClock) -> None:
    """sending counts attempts and stamps sent_at; done keeps its first result and is final."""
    store.begin_intent("op-2", "jira.create", business_key="bk", payload={})
    clock.advance(1)
    sent = store.mark_intent("op-2", "sending")
    assert (sent.state, sent.attempts, sent.sent_at) == ("sending", 1, T0 + 1)
    clock.advance(1)
    amb = store.mark_intent("op-2", "ambiguous", error="read timeout")
    assert (amb.state, amb.error, amb.attempts, amb.sent_at) == ("ambiguous", "read timeout", 1, T0 + 1)
    clock.advance(300)
    resent = store.mark_intent("op-2", "sending")
    assert (resent.attempts, resent.sent_at) == (2, T0 + 302)
    done = store.mark_intent("op-2", "done", result={"key": "ENG-1", "id": "10001"})
    assert done.state == "done"
    assert done.result == {"key": "ENG-1", "id": "10001"}
    assert done.error is None
    assert done.updated_at == T0 + 302

    assert store.mark_intent("op-2", "done", result={"key": "ENG-2"}).result == {
        "key": "ENG-1",
        "id": "10001",
    }
    with pytest.raises(IntentStateError):
        store.mark_intent("op-2", "sending")
    assert store.get_intent("op-2") == done


def test_mark_intent_rejects_unknown_state_and_op(store: SQLiteStore) -> None:
    """An unknown state is a ValueError; an unknown op_id is NotFoundInStore."""
    store.begin_intent("op-3", "k", business_key="bk", payload={})
    with pytest.raises(ValueError, match="unknown intent state"):
        store.mark_intent("op-3", "sent")
    with pytest.raises(NotFoundInStore):
        store.mark_intent("nope", "done")


def test_intent_survives_reopen(tmp_path: Path) -> None:
    """An intent committed before a crash is there after reopening."""
    s = SQLiteStore(tmp_path / "i.db")
    s.begin_intent("op-4", "k", business_key="bk", payload={"x": [1, 2]})
    s.mark_intent("op-4", "sending")
    s.close()
    s2 = SQLiteStore(tmp_path / "i.db")
    got = s2.get_intent("op-4")
    assert got is not None
    assert (got.state, got.attempts, got.payload) == ("sending", 1, {"x": [1, 2]})
    s2.close()


# ---- inbox and enqueue -------------------------------------------------------------------------------


def _inbox_count(store: SQLiteStore) -> int:
    return int(store._conn().execute("SELECT count(*) FROM inbox").fetchone()[0])


def test_accept_delivery_dedupes(store: SQLiteStore) -> None:
    """The same delivery id twice gives one inbox row and one job; another account is another delivery."""
    kw = {"payload": {"ticket": 1}, "job_kind": "escalate", "job_payload": {"ticket": "1"}}
    assert store.accept_delivery("zendesk", "d-1", **kw) is True
    assert store.accept_delivery("zendesk", "d-1", **kw) is False
    assert _inbox_count(store) == 1
    assert store.queue_depth()["ready"] == 1
    row = store.inbox_row("zendesk", "d-1")
    assert row is not None
    assert row.payload == {"ticket": 1}
    assert row.received_at == T0
    job = store.job(row.job_id or 0)
    assert job is not None
    assert (job.kind, job.payload, job.state) == ("escalate", {"ticket": "1"}, "ready")

    assert store.accept_delivery("zendesk", "d-1", account="acme2", **kw) is True
    assert store.accept_delivery("jira", "d-1", **kw) is True
    assert _inbox_count(store) == 3
    assert store.queue_depth()["ready"] == 3


def test_accept_delivery_with_dedupe_key_shares_the_waiting_job(store: SQLiteStore) -> None:
    """Two deliveries of one business event record both, queue one job, and a later one queues again."""
    kw = {"payload": {}, "job_kind": "sync", "job_payload": {"issue": "10042"}, "dedupe_key": "sync:10042"}
    assert store.accept_delivery("jira", "a", **kw) is True
    assert store.accept_delivery("jira", "b", **kw) is True
    a, b = store.inbox_row("jira", "a"), store.inbox_row("jira", "b")
    assert a is not None
    assert b is not None
    assert a.job_id is not None
    assert a.job_id == b.job_id
    assert store.queue_depth()["ready"] == 1

    job = store.claim("w", lease_seconds=30)
    assert job is not None
    assert store.accept_delivery("jira", "c", **kw) is True
    assert store.queue_depth() == {"ready": 0, "leased": 1, "done": 0, "dead": 0}
    assert store.complete(job.id, job.attempt)
    assert store.accept_delivery("jira", "d", **kw) is True
    d = store.inbox_row("jira", "d")
    assert d is not None
    assert d.job_id not in (None, job.id)
    assert store.queue_depth()["ready"] == 1


def test_purge_inbox(store: SQLiteStore, clock: FakeClock) -> None:
    """Inbox rows older than the retention go; younger ones stay and still deduplicate."""
    kw = {"payload": {}, "job_kind": "k", "job_payload": {}}
    store.accept_delivery("zendesk", "old", **kw)
    clock.advance(6 * 86400 + 23 * 3600)
    store.accept_delivery("zendesk", "young", **kw)
    assert store.purge_inbox() == 0
    assert store.accept_delivery("zendesk", "old", **kw) is False
    clock.advance(3601)
    assert store.purge_inbox() == 1
    assert store.inbox_row("zendesk", "old") is None
    assert store.inbox_row("zendesk", "young") is not None
    assert store.purge_inbox(older_than_seconds=60) == 1
    assert _inbox_count(store) == 0


def test_enqueue_with_key_and_run_at(store: SQLiteStore, clock: FakeClock) -> None:
    """A key holds one waiting job at a time; run_at delays the claim."""
    first = store.enqueue("reconcile", {"n": 1}, key="reconcile:jira", run_at=T0 + 60)
    assert first is not None
    assert store.enqueue("reconcile", {"n": 2}, key="reconcile:jira") is None
    assert store.enqueue("reconcile", {"n": 3}) is not None  # no key, no dedupe
    job = store.claim("w", lease_seconds=30)
    assert job is not None
    assert job.payload == {"n": 3}
    assert store.claim("w", lease_seconds=30) is None
    assert store.complete(job.id, job.attempt)
    clock.advance(60)
    job = store.claim("w", lease_seconds=30)
    assert job is not None
    assert (job.id, job.key) == (first, "reconcile:jira")
    assert store.enqueue("reconcile", {}, key="reconcile:jira") is None  # leased still holds the key
    assert store.complete(job.id, job.attempt)
    assert store.enqueue("reconcile", {}, key="reconcile:jira") is not None


# ---- claiming and fencing ----------------------------------------------------------------------------


def test_claim_takes_oldest_due_job_and_filters_kinds(store: SQLiteStore, clock: FakeClock) -> None:
    """claim leases the oldest due job of the wanted kinds and counts the attempt."""
    a = store.enqueue("escalate", {"i": 1})
    clock.advance(1)
    b = store.enqueue("sync", {"i": 2})
    clock.advance(1)
    job = store.claim("w1", lease_seconds=30, kinds=["sync"])
    assert job is not None
    assert (job.id, job.state, job.attempt, job.worker_id, job.lease_until) == (b, "leased", 1, "w1", T0 + 32)
    assert store.claim("w1", lease_seconds=30, kinds=[]) is None
    assert store.claim("w1", lease_seconds=30, kinds=["sync"]) is None
    job = store.claim("w2", lease_seconds=30)
    assert job is not None
    assert job.id == a
    assert store.claim("w2", lease_seconds=30) is None
    assert store.queue_depth() == {"ready": 0, "leased": 2, "done": 0, "dead": 0}


def test_fencing_stale_worker_changes_nothing(store: SQLiteStore, clock: FakeClock) -> None:
    """After a lease lapses and another worker claims attempt 2, the first worker's calls all return False."""
    job_id = store.enqueue("escalate", {"ticket": "4211"})
    assert job_id is not None
    first = store.claim("A", lease_seconds=30)
    assert first is not None
    assert first.attempt == 1
    assert store.claim("B", lease_seconds=30) is None  # still leased
    clock.advance(31)
    second = store.claim("B", lease_seconds=30)
    assert second is not None
    assert (second.id, second.attempt, second.worker_id) == (job_id, 2, "B")
    before = store.job(job_id)

    assert store.heartbeat(job_id, 1, 30) is False
    assert store.complete(job_id, 1) is False
    assert store.retry_later(job_id, 1, run_at=T0 + 1000, error="x") is False
    assert store.fail(job_id, 1, error="boom") is False
    assert store.job(job_id) == before
    assert store.dead_letters() == []

    assert store.complete(job_id, 2) is True
    done = store.job(job_id)
    assert done is not None
    assert (done.state, done.attempt, done.lease_until) == ("done", 2, None)
    assert store.complete(job_id, 2) is False  # not leased any more
    assert store.heartbeat(job_id, 2, 30) is False


def test_heartbeat_extends_the_lease(store: SQLiteStore, clock: FakeClock) -> None:
    """A heartbeat keeps the job from being reaped past its first lease."""
    store.enqueue("k", {})
    job = store.claim("A", lease_seconds=30)
    assert job is not None
    clock.advance(25)
    assert store.heartbeat(job.id, job.attempt, 30) is True
    clock.advance(25)
    assert store.claim("B", lease_seconds=30) is None
    clock.advance(6)
    reaped = store.claim("B", lease_seconds=30)
    assert reaped is not None
    assert reaped.attempt == 2


def test_retry_later(store: SQLiteStore, clock: FakeClock) -> None:
    """retry_later makes the job ready again at run_at with the redacted error; next claim is attempt 2."""
    secret = Secret("tok-retry-" + "9" * 12)
    store.enqueue("k", {})
    job = store.claim("A", lease_seconds=30)
    assert job is not None
    assert store.retry_later(job.id, job.attempt, run_at=T0 + 120, error=f"503 with {secret.reveal()}") is True
    waiting = store.job(job.id)
    assert waiting is not None
    assert (waiting.state, waiting.run_at, waiting.lease_until, waiting.worker_id) == (
        "ready",
        T0 + 120,
        None,
        None,
    )
    assert waiting.last_error is not None
    assert secret.reveal() not in waiting.last_error
    assert store.claim("A", lease_seconds=30) is None
    clock.advance(120)
    again = store.claim("A", lease_seconds=30)
    assert again is not None
    assert again.attempt == 2


def test_max_attempts_dead_letters_a_job_that_keeps_expiring(store: SQLiteStore, clock: FakeClock) -> None:
    """With max_attempts, an expired lease on the last attempt becomes a dead letter instead of a claim."""
    job_id = store.enqueue("poison", {"p": 1})
    for _ in range(2):
        assert store.claim("w", lease_seconds=10, max_attempts=2) is not None
        clock.advance(11)
    assert store.claim("w", lease_seconds=10, max_attempts=2) is None
    job = store.job(job_id or 0)
    assert job is not None
    assert job.state == "dead"
    [letter] = store.dead_letters()
    assert (letter.job_id, letter.attempt) == (job_id, 2)
    assert "lease expired" in letter.error


# ---- dead letters ------------------------------------------------------------------------------------


def test_fail_dead_letters_and_replay_once(store: SQLiteStore, clock: FakeClock) -> None:
    """fail writes a redacted dead letter; replay queues a new job once, and a second replay is refused."""
    secret = Secret("sk_live_" + "a1b2c3d4e5f6g7h8")
    job_id = store.enqueue("escalate", {"ticket": "4211"}, key="esc:4211")
    job = store.claim("w", lease_seconds=30)
    assert job is not None
    error = (
        f"401 for token {secret.reveal()} / {quote(secret.reveal())} / "
        + base64.b64encode(secret.reveal().encode()).decode()
    )
    clock.advance(3)
    assert store.fail(job.id, job.attempt, error=error) is True
    assert store.job(job.id) is not None
    assert store.job(job.id).state == "dead"
    assert store.queue_depth() == {"ready": 0, "leased": 0, "done": 0, "dead": 1}

    [letter] = store.dead_letters()
    assert (letter.job_id, letter.kind, letter.payload, letter.key) == (
        job_id,
        "escalate",
        {"ticket": "4211"},
        "esc:4211",
    )
    assert (letter.attempt, letter.created_at, letter.replayed) == (1, T0 + 3, False)
    assert letter.error.startswith("401 for token ")
    assert secret.reveal() not in letter.error
    assert quote(secret.reveal()) not in letter.error
    assert base64.b64encode(secret.reveal().encode()).decode() not in letter.error
    assert store.dead_letter(letter.id) == letter

    clock.advance(1)
    new_id = store.replay_dead_letter(letter.id)
    assert new_id != job_id
    new_job = store.job(new_id)
    assert new_job is not None
    assert (new_job.kind, new_job.payload, new_job.state, new_job.attempt) == (
        "escalate",
        {"ticket": "4211"},
        "ready",
        0,
    )
    replayed = store.dead_letter(letter.id)
    assert replayed is not None
    assert (replayed.replayed, replayed.replayed_at, replayed.replay_job_id) == (True, T0 + 4, new_id)

    with pytest.raises(AlreadyReplayed, match="replayed already"):
        store.replay_dead_letter(letter.id)
    assert store.queue_depth()["ready"] == 1
    with pytest.raises(NotFoundInStore):
        store.replay_dead_letter(999)
    assert store.dead_letter(999) is None


def test_replay_when_the_key_is_already_waiting(store: SQLiteStore) -> None:
    """Replaying a letter whose key a waiting job holds points at that job instead of queueing a second."""
    store.enqueue("escalate", {}, key="esc:1")
    job = store.claim("w", lease_seconds=30)
    assert job is not None
    store.fail(job.id, job.attempt, error="boom")
    waiting = store.enqueue("escalate", {}, key="esc:1")
    [letter] = store.dead_letters()
    assert store.replay_dead_letter(letter.id) == waiting
    assert store.queue_depth()["ready"] == 1


# ---- audit and checkpoints ---------------------------------------------------------------------------


def test_audit(store: SQLiteStore, clock: FakeClock) -> None:
    """Audit rows keep who, what, policy, origin and result, are filterable, and hold no secrets."""
    secret = Secret("audit-secret-" + "x" * 10)
    first = store.audit(
        actor="agent:5",
        action="jira.create",
        target="jira:issue:10042",
        result="ok",
        policy="tier1-priority",
        origin_event="zendesk:d-1",
        ticket=TICKET,
        issue_key="ENG-7",
        details={"priority": "High", "note": f"auth {secret.reveal()}"},
    )
    clock.advance(1)
    second = store.audit(actor="cxbridge", action="zendesk.note", target=str(TICKET2), result="ok", ticket=TICKET2)
    store.audit(actor="cxbridge", action="hubspot.note", target="hubspot:company:99", result="ok", issue_key="ENG-7")
    assert second == first + 1

    entries = store.audit_entries(ticket=TICKET)
    assert [e.id for e in entries] == [first]
    e = entries[0]
    assert (e.at, e.actor, e.action, e.target, e.result) == (
        T0,
        "agent:5",
        "jira.create",
        "jira:issue:10042",
        "ok",
    )
    assert (e.policy, e.origin_event, e.ticket, e.issue_key) == (
        "tier1-priority",
        "zendesk:d-1",
        TICKET,
        "ENG-7",
    )
    assert e.details["priority"] == "High"
    assert secret.reveal() not in e.details["note"]
    assert [x.action for x in store.audit_entries(issue_key="ENG-7")] == ["jira.create", "hubspot.note"]
    assert [x.id for x in store.audit_entries(ticket=TICKET, issue_key="ENG-8")] == []
    assert len(store.audit_entries()) == 3
    assert store.audit_entries(ticket=TICKET2)[0].details == {}


def test_checkpoints(store: SQLiteStore) -> None:
    """A checkpoint is None before the first save, then the last mapping saved, per system and stream."""
    assert store.get_checkpoint("zendesk", "tickets") is None
    store.set_checkpoint("zendesk", "tickets", {"cursor": "abc", "end_of_stream": False})
    store.set_checkpoint("zendesk", "users", {"cursor": "u"})
    assert store.get_checkpoint("zendesk", "tickets") == {"cursor": "abc", "end_of_stream": False}
    store.set_checkpoint("zendesk", "tickets", {"cursor": "def"})
    assert store.get_checkpoint("zendesk", "tickets") == {"cursor": "def"}
    assert store.get_checkpoint("zendesk", "users") == {"cursor": "u"}
    assert store.get_checkpoint("jira", "tickets") is None


def test_queue_depth_lists_every_state(store: SQLiteStore) -> None:
    """queue_depth always has ready, leased, done and dead."""
    assert store.queue_depth() == {"ready": 0, "leased": 0, "done": 0, "dead": 0}
    store.enqueue("a", {})
    store.enqueue("b", {})
    job = store.claim("w", lease_seconds=5)
    assert job is not None
    store.complete(job.id, job.attempt)
    assert store.queue_depth() == {"ready": 1, "leased": 0, "done": 1, "dead": 0}


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
