"""Everything cxbridge keeps, behind one ``Store`` interface; SQLite by default.

``open_store(location)`` opens (creating and migrating as needed) the store a config names: a SQLite file, or a
database URL (only ``sqlite:///path`` in this version).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

from ..redact import redact_url
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
    StoreBusy,
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
    "StoreBusy",
    "StoreError",
    "open_store",
]


_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


def open_store(location: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> Store:
    """Open the store at ``location`` (``Config.store_location()``): a SQLite file path, created and migrated if
    needed, or a database URL. ``sqlite:///path`` opens that file; a PostgreSQL URL is refused with a
    ``StoreError`` (that store is planned, not in this version), as is any other scheme: never a file named
    after a URL."""
    text = os.fspath(location)
    match = _URL.match(text)
    if match is None:
        return SQLiteStore(location, clock=clock)
    scheme = match["scheme"].lower()
    if scheme == "sqlite" and text[match.end() :].startswith("/") and len(text) > match.end() + 1:
        return SQLiteStore(text[match.end() + 1 :], clock=clock)
    shown = redact_url(text)
    if scheme.split("+")[0] in ("postgres", "postgresql"):
        raise StoreError(
            f"{shown}: the PostgreSQL store is not available in this version (it is planned); "
            "use a SQLite file path for [cxbridge] store"
        )
    raise StoreError(f"{shown}: not a store cxbridge can open (a SQLite file path, or sqlite:///path)")
