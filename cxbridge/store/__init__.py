"""Everything cxbridge keeps, behind one ``Store`` interface; SQLite by default.

``open_store(path)`` opens (creating and migrating as needed) the store a config names.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from .base import (
    AlreadyReplayed,
    AuditEntry,
    DeadLetter,
    InboxRow,
    Intent,
    IntentStateError,
    Job,
    NotFoundInStore,
    Store,
    StoreError,
)
from .sqlite import SQLiteStore

__all__ = [
    "AlreadyReplayed",
    "AuditEntry",
    "DeadLetter",
    "InboxRow",
    "Intent",
    "IntentStateError",
    "Job",
    "NotFoundInStore",
    "SQLiteStore",
    "Store",
    "StoreError",
    "open_store",
]


def open_store(path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> Store:
    """Open the store at ``path`` (a SQLite file, created and migrated if needed)."""
    text = os.fspath(path)
    if text.startswith(("postgres://", "postgresql://")):
        raise StoreError("the PostgreSQL store is not available in this version; use a SQLite file path")
    return SQLiteStore(path, clock=clock)
