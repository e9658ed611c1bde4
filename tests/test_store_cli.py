"""``cxbridge store migrate``, ``cxbridge store copy --from sqlite:PATH --to postgresql://...`` and ``doctor``'s
line about a PostgreSQL store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cxbridge.cli import cli
from cxbridge.models import Link, Ref
from cxbridge.store import SQLiteStore, open_store
from cxbridge.store.postgres import PostgresStore
from cxbridge.worker import Worker

TICKET = Ref("zendesk", "ticket", "4211")
ISSUE = Ref("jira", "issue", "10042")


def run(args: list[str], config: Path | None = None) -> Result:
    prefix = ["--config", str(config)] if config is not None else []
    return CliRunner().invoke(cli, [*prefix, *args], catch_exceptions=False)


def write_config(tmp_path: Path, store: str) -> Path:
    path = tmp_path / "cxbridge.toml"
    path.write_text(f'[cxbridge]\nstore = "{store}"\n', encoding="utf-8")
    return path


class _Runtime:
    def __init__(self, store: Any) -> None:
        self.store = store

    def limit_inline_waits(self, seconds: float) -> None:
        pass


def filled_sqlite_store(path: Path) -> dict[str, Any]:
    """A SQLite store with a link, intents, an accepted delivery, ready, leased and dead jobs, a replayed and a
    fresh dead letter, audit rows, a snapshot and a checkpoint."""
    with SQLiteStore(path) as s:
        s.add_link(Link(TICKET, ISSUE, "ENG-7", linked_by="agent:5", origin_event="e1"))
        s.begin_intent("op-done", "tracker.create", business_key="t:1", payload={"a": 1})
        s.mark_intent("op-done", "done", result={"key": "ENG-7"})
        s.begin_intent("op-sending", "helpdesk.note", business_key="t:1", payload={})
        s.transition_intent("op-sending", "sending", expect="pending", owner="old-host:1:1")
        assert s.accept_delivery("zendesk", "d-1", payload={"x": 1}, job_kind="work", job_payload={"n": 1})
        queued = [s.enqueue("work", {"n": n}, lock_key=f"e:{n}") for n in (2, 3)]
        dead = s.enqueue("doomed", {"n": 4})
        job = s.claim("old-worker", lease_seconds=60, kinds=["work"])
        assert job is not None
        assert job.payload == {"n": 1}  # leased by a worker of the old installation
        doomed = s.claim("old-worker", lease_seconds=60, kinds=["doomed"])
        assert doomed is not None
        assert doomed.id == dead
        assert s.fail(doomed.id, doomed.attempt, error="400 Bad Request")
        letter = s.dead_letters()[0]
        s.audit(actor="agent:5", action="escalate", target="ENG-7", result="ok", ticket=TICKET, issue_key="ENG-7")
        s.put_snapshot("customer", "hubspot:company:9", {"arr": "1200.00"})
        s.set_checkpoint("zendesk", "tickets", {"cursor": "abc"})
        return {
            "leased": job.id,
            "queued": queued,
            "letter": letter.id,
            "audit": len(s.audit_entries()),
            "depth": s.queue_depth(),
        }


def test_copy_moves_everything_and_the_queued_jobs_then_run_once(tmp_path: Path, pg_url: str) -> None:
    """Links, intents, inbox, jobs, dead letters, audit, snapshots and checkpoints arrive with their ids; the jobs
    (the one a worker of the old installation held included) each run once on the new store; a redelivery of a
    copied delivery is still a duplicate; a dead letter replays once; new ids continue after the copied ones."""
    source = tmp_path / "old.db"
    before = filled_sqlite_store(source)
    result = run(["store", "copy", "--from", f"sqlite:{source}", "--to", pg_url])
    assert result.exit_code == 0, result.output
    assert "1 links, 2 intents, 4 jobs, 1 inbox, 1 dead letters, 1 audit" in result.output
    assert "1 leased job(s) queued again as ready" in result.output

    with open_store(pg_url) as pg:
        assert isinstance(pg, PostgresStore)
        assert [(lk.ticket, lk.issue, lk.issue_key, lk.linked_by) for lk in pg.all_links()] == [
            (TICKET, ISSUE, "ENG-7", "agent:5")
        ]
        done = pg.get_intent("op-done")
        assert done is not None
        assert (done.state, done.result) == ("done", {"key": "ENG-7"})
        sending = pg.get_intent("op-sending")
        assert sending is not None
        assert (sending.state, sending.owner, sending.attempts) == ("sending", "old-host:1:1", 1)
        assert len(pg.audit_entries(ticket=TICKET)) == before["audit"]
        assert pg.get_snapshot("customer", "hubspot:company:9") == {"arr": "1200.00"}
        assert pg.get_checkpoint("zendesk", "tickets") == {"cursor": "abc"}
        assert pg.accept_delivery("zendesk", "d-1", payload={}, job_kind="work", job_payload={}) is False
        assert pg.queue_depth() == {"ready": 3, "leased": 0, "done": 0, "dead": 1}

        runs: list[int] = []

        def work(rt: Any, payload: dict[str, Any]) -> str:
            runs.append(payload["n"])
            return "ok"

        worker = Worker(_Runtime(pg), handlers={"work": work, "doomed": work})  # type: ignore[arg-type]
        while worker.run_once():
            pass
        assert sorted(runs) == [1, 2, 3]
        leased = pg.job(before["leased"])
        assert leased is not None
        assert (leased.state, leased.attempt) == ("done", 2)  # its old attempt is fenced out

        replayed = pg.replay_dead_letter(before["letter"])
        assert replayed > max(before["queued"])  # new ids continue after the copied ones
        while worker.run_once():
            pass
        assert sorted(runs) == [1, 2, 3, 4]
        assert pg.queue_depth() == {"ready": 0, "leased": 0, "done": 4, "dead": 1}
        assert pg.audit(actor="x", action="y", target="z", result="ok") > before["audit"]


def test_copy_refuses_a_target_that_is_not_empty_and_changes_nothing(tmp_path: Path, pg_url: str) -> None:
    """A second copy into the same database is refused by name, and leaves the first copy untouched."""
    source = tmp_path / "old.db"
    filled_sqlite_store(source)
    assert run(["store", "copy", "--from", f"sqlite:{source}", "--to", pg_url]).exit_code == 0
    again = run(["store", "copy", "--from", f"sqlite:{source}", "--to", pg_url])
    assert again.exit_code != 0
    assert "is not empty" in again.output
    with open_store(pg_url) as pg:
        assert len(pg.all_links()) == 1


def test_copy_refuses_an_inline_password_without_showing_it(tmp_path: Path) -> None:
    """The target's password comes from --password-env, PGPASSWORD or ~/.pgpass; never the command line."""
    source = tmp_path / "old.db"
    SQLiteStore(source).close()
    result = run(["store", "copy", "--from", f"sqlite:{source}", "--to", "postgresql://app:s3cret-pw-42@db/cx"])
    assert result.exit_code != 0
    assert "password inline" in result.output
    assert "s3cret-pw-42" not in result.output


def test_migrate_brings_the_configured_store_to_the_latest_schema(tmp_path: Path, pg_url: str) -> None:
    """'cxbridge store migrate' on a new PostgreSQL schema applies every migration and says the version."""
    from cxbridge.store.migrations import migrations

    config = write_config(tmp_path, pg_url)
    result = run(["store", "migrate"], config)
    assert result.exit_code == 0, result.output
    assert "at version 0" in result.output
    assert f"now: schema version {migrations.latest}" in result.output
    again = run(["store", "migrate"], config)
    assert f"at version {migrations.latest})" in again.output


def test_doctor_reports_the_server_the_schema_version_and_a_missing_server(tmp_path: Path, pg_url: str) -> None:
    """doctor's store line names the PostgreSQL server version and the schema version; an unreachable server is a
    failed check that names the URL and never a password."""
    with open_store(pg_url):
        pass
    result = run(["doctor"], write_config(tmp_path, pg_url))
    line = next(x for x in result.output.splitlines() if "store" in x)
    assert "PostgreSQL 1" in line
    assert "at version" in line
    down = tmp_path / "down"
    down.mkdir()
    result = run(["doctor"], write_config(down, "postgresql://cx@127.0.0.1:1/cx"))
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if "store" in x)
    assert "cannot reach the store postgresql://cx@127.0.0.1:1/cx" in line


@pytest.mark.parametrize("argv", [["--from", "/tmp/x.db"], ["--from", "sqlite:/tmp/x.db", "--to", "mysql://db/x"]])
def test_copy_names_what_it_expects(argv: list[str]) -> None:
    """A wrong --from or --to is one clear line."""
    if "--to" not in argv:
        argv = [*argv, "--to", "mysql://db/x"]
    result = run(["store", "copy", *argv])
    assert result.exit_code != 0
    assert "expected" in result.output
