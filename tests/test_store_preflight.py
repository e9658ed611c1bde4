"""``serve``, ``worker`` and ``doctor`` refuse a store they cannot trust, one clear line each (store/preflight)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cxbridge.cli import CliContext, cli
from cxbridge.plugins import build_plugins
from cxbridge.sandbox.modes import mock_vendors, write_config
from cxbridge.store import StoreError
from cxbridge.store import preflight as preflight_module
from cxbridge.store.migrations import MIGRATIONS_TABLE, migrations
from cxbridge.store.preflight import NEW_STORE, check_store, store_file
from cxbridge.store.sqlite import SQLiteStore

SECRET = "jira-hook-secret-for-preflight"


def make_store(path: Path) -> Path:
    SQLiteStore(path).close()
    return path


def empty_file(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def text_file(path: Path) -> Path:
    path.write_text("ticket,issue\n1,ENG-1\n", encoding="utf-8")
    return path


def corrupt_store(path: Path) -> Path:
    make_store(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page, len(data), page):  # every page after the header: garbage in place of b-tree pages
        data[offset : offset + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))
    return path


def other_database(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total TEXT)")
        conn.commit()
    return path


def newer_store(path: Path) -> Path:
    make_store(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, version, name, applied_at) VALUES (?, ?, ?, ?)",  # noqa: S608 - a module constant
            (migrations.name, migrations.latest + 1, "from_the_future", 0.0),
        )
        conn.commit()
    return path


BAD_STORES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty": (empty_file, "is an empty file (0 bytes), not a cxbridge store: restore it from a backup, or delete it"),
    "not-a-database": (text_file, "is not a SQLite database"),
    "corrupt": (corrupt_store, "is corrupt"),
    "another-database": (other_database, "is another application's SQLite database, not a cxbridge store"),
    "newer": (newer_store, f"has schema version {migrations.latest + 1}, newer than this cxbridge knows"),
}


@pytest.mark.parametrize("kind", sorted(BAD_STORES))
def test_check_store_refuses_each_kind_with_one_line(tmp_path: Path, kind: str) -> None:
    """Each untrustworthy store is refused with one line naming the file, what is wrong and how to fix it."""
    build, message = BAD_STORES[kind]
    path = build(tmp_path / "cxbridge.db")
    before = path.read_bytes()
    with pytest.raises(StoreError) as caught:
        check_store(path)
    text = str(caught.value)
    assert message in text
    assert str(path) in text
    assert "\n" not in text
    assert path.read_bytes() == before  # looked at, never changed (an empty file is not re-created)


def test_check_store_accepts_a_good_new_or_empty_database(tmp_path: Path) -> None:
    """A cxbridge store, a file not made yet, and an empty SQLite database are all fine."""
    assert f"schema {migrations.latest}" in check_store(make_store(tmp_path / "good.db"))
    assert check_store(tmp_path / "new.db").endswith(NEW_STORE)
    with contextlib.closing(sqlite3.connect(tmp_path / "blank.db")) as conn:
        conn.execute("PRAGMA user_version = 1")  # a header and an empty schema: a SQLite file with no tables
        conn.commit()
    assert "schema 0" in check_store(tmp_path / "blank.db")
    assert store_file(f"sqlite:///{tmp_path}/x.db") == tmp_path / "x.db"


def test_check_store_refuses_a_missing_folder(tmp_path: Path) -> None:
    """A store whose folder does not exist cannot be created: refused before anything starts."""
    with pytest.raises(StoreError, match=r"its folder .* does not exist"):
        check_store(tmp_path / "nowhere" / "cxbridge.db")


@pytest.mark.parametrize(("target", "message"), [("file", "is read-only"), ("folder", "is in a read-only folder")])
def test_check_store_refuses_a_read_only_file_or_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, message: str
) -> None:
    """A store the user cannot write (its file, or the folder SQLite keeps its journal in) is refused."""
    path = make_store(tmp_path / "cxbridge.db")
    read_only = path if target == "file" else tmp_path
    monkeypatch.setattr(preflight_module, "_writable", lambda p: Path(p) != read_only)
    with pytest.raises(StoreError, match=message):
        check_store(path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes read-only files anyway")
def test_check_store_refuses_a_file_made_read_only(tmp_path: Path) -> None:
    """With real permissions: a store file chmod 444 is refused as read-only."""
    path = make_store(tmp_path / "cxbridge.db")
    path.chmod(0o444)
    try:
        with pytest.raises(StoreError, match="is read-only"):
            check_store(path)
    finally:
        path.chmod(0o644)


# -- the commands ---------------------------------------------------------------------------------------------------
def config_file(tmp_path: Path, *, systems: bool = True) -> Path:
    if not systems:  # doctor checks each system's connection: without one it checks only the config and store
        path = tmp_path / "cxbridge.toml"
        path.write_text('[cxbridge]\nstore = "cxbridge.db"\n', encoding="utf-8")
        return path
    (tmp_path / "hook-jira.secret").write_text(SECRET, encoding="utf-8")
    extra = {"webhooks": {"secrets": {"jira": [{"file": "hook-jira.secret"}]}}}
    with mock_vendors(["zendesk", "jira", "hubspot"]) as vendors:
        return write_config(vendors, tmp_path / "cxbridge.toml", extra=extra)


def run(tmp_path: Path, *args: str) -> Result:
    obj = CliContext(
        tmp_path / "cxbridge.toml",
        environ={},
        plugins_factory=lambda disabled: build_plugins(disabled, use_env=False),
    )
    return CliRunner().invoke(cli, list(args), obj=obj)


@pytest.mark.parametrize("kind", sorted(BAD_STORES))
@pytest.mark.parametrize("command", [("serve", "--port", "0"), ("worker", "--drain"), ("doctor",)])
def test_commands_refuse_a_bad_store(tmp_path: Path, kind: str, command: tuple[str, ...]) -> None:
    """serve (before "Listening"), worker and doctor each refuse every bad store kind with its line; exit 1."""
    config_file(tmp_path, systems=command[0] != "doctor")
    build, message = BAD_STORES[kind]
    path = build(tmp_path / "cxbridge.db")
    before = path.read_bytes()
    result = run(tmp_path, *command)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Listening" not in result.output
    assert path.read_bytes() == before
    if command[0] == "doctor":
        assert any(line.startswith("✗ store: ") and message in line for line in result.output.splitlines())


def test_doctor_shows_a_good_store(tmp_path: Path) -> None:
    """An existing good store gets its ✓ line with its schema version."""
    config_file(tmp_path, systems=False)
    make_store(tmp_path / "cxbridge.db")
    result = run(tmp_path, "doctor")
    store_lines = [line for line in result.output.splitlines() if line.startswith(("✓ store", "✗ store"))]
    size = (tmp_path / "cxbridge.db").stat().st_size
    assert store_lines == [f"✓ store: {tmp_path / 'cxbridge.db'} (schema {migrations.latest}, {size} bytes)"]
    assert result.exit_code == 0, result.output
