"""Before ``serve``, ``worker`` and ``doctor`` trust a store: is it a cxbridge store this version can write?

``check_store(location)`` reads the file without changing it and raises ``StoreError`` with one line saying what
is wrong and how to fix it: a read-only file or folder, an empty (0-byte) file (never silently re-created), a
file that is not a SQLite database, a corrupt database, another application's database, or a store written by a
newer cxbridge. A store that does not exist yet is fine (it is created on first use, in an existing folder).
"""

# SQL text here is assembled only from module constants and '?' placeholders; every value is bound.
# ruff: noqa: S608

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from ..secrets import Secret
from .base import StoreError
from .migrations import MIGRATIONS_TABLE, migrations

SQLITE_HEADER = b"SQLite format 3\x00"

NEW_STORE = "(new: created on first use)"
"""How ``check_store`` ends its answer for a store that does not exist yet."""

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


def store_file(location: str | os.PathLike[str]) -> Path | None:
    """The SQLite file a store location names (a path or ``sqlite:///path``); None for any other URL."""
    text = os.fspath(location)
    match = _URL.match(text)
    if match is None:
        return Path(text)
    rest = text[match.end() :]
    if match["scheme"].lower() == "sqlite" and rest.startswith("/") and len(rest) > 1:
        return Path(rest[1:])
    return None


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def check_store(location: str | os.PathLike[str], password: Secret | None = None) -> str:
    """What the store at ``location`` is (for ``doctor``), or ``StoreError`` with the one line that refuses it.

    A ``postgresql://`` store is read without being changed: the server, the schema version, the privileges
    (``password`` is the config's ``store_password``)."""
    path = store_file(location)
    if path is None:
        text = os.fspath(location)
        if text.split("://", 1)[0].split("+")[0].lower() not in ("postgres", "postgresql"):
            from . import open_store

            open_store(location).close()  # refused with the reason: not a store cxbridge can open
            return "opened"
        try:
            from .postgres import inspect_database
        except ImportError as exc:
            raise StoreError(str(exc)) from None
        return inspect_database(text, None if password is None else password.reveal())
    folder = path.parent if str(path.parent) else Path(".")
    if not path.exists():
        if not folder.is_dir():
            raise StoreError(f"the store {path} cannot be created: its folder {folder} does not exist")
        if not _writable(folder):
            raise StoreError(f"the store {path} cannot be created: its folder {folder} is read-only")
        return f"{path} {NEW_STORE}"
    if path.is_dir():
        raise StoreError(f"the store {path} is a folder, not a file; point [cxbridge] store at a file")
    size = path.stat().st_size
    if size == 0:
        raise StoreError(
            f"the store {path} is an empty file (0 bytes), not a cxbridge store: restore it from a backup, or "
            "delete it to start a new, empty store"
        )
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise StoreError(f"the store {path} is not a SQLite database; point [cxbridge] store at the cxbridge store")
    version = _schema_version(path)
    if version > migrations.latest:
        raise StoreError(
            f"the store {path} has schema version {version}, newer than this cxbridge knows ({migrations.latest}): "
            "upgrade cxbridge"
        )
    if not _writable(path):
        raise StoreError(f"the store {path} is read-only: make the file writable by the user running cxbridge")
    if not _writable(folder):
        raise StoreError(
            f"the store {path} is in a read-only folder {folder}: SQLite writes its journal beside the file; "
            "make the folder writable"
        )
    return f"{path} (schema {version}, {size} bytes)"


def _schema_version(path: Path) -> int:
    """The store's schema version, read through a read-only connection; ``StoreError`` when it is not one."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"the store {path} cannot be opened: {exc}") from None
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()
        if result is None or str(result[0]).lower() != "ok":
            raise StoreError(
                f"the store {path} is corrupt (SQLite's quick_check: {result[0] if result else 'no answer'}); "
                "restore it from a backup"
            )
        tables = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return 0  # an empty SQLite database: the store's tables are created in it
        if MIGRATIONS_TABLE not in tables:
            raise StoreError(
                f"the store {path} is another application's SQLite database, not a cxbridge store; "
                "point [cxbridge] store at a new file"
            )
        rows = conn.execute(f"SELECT max(version) FROM {MIGRATIONS_TABLE} WHERE migration_set = ?", (migrations.name,))
        found = rows.fetchone()
        return int(found[0]) if found and found[0] is not None else 0
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            raise StoreError(f"the store {path} is corrupt ({text}); restore it from a backup") from None
        raise StoreError(f"the store {path} cannot be read: {text}") from None
    finally:
        conn.close()
