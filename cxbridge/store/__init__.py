"""Everything cxbridge keeps, behind one ``Store`` interface; SQLite by default, PostgreSQL for several machines.

``open_store(location)`` opens (creating and migrating as needed) the store a config names: a SQLite file
(a path or ``sqlite:///path``), or a ``postgresql://`` URL (the ``cxbridge[postgres]`` extra).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

from ..redact import redact_url
from ..secrets import Secret
from .base import (
    Aggregate,
    AlreadyReplayed,
    AuditEntry,
    AuditRow,
    DeadLetter,
    FollowUp,
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
    "Aggregate",
    "AlreadyReplayed",
    "AuditEntry",
    "AuditRow",
    "DeadLetter",
    "FollowUp",
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


def open_store(
    location: str | os.PathLike[str],
    *,
    clock: Callable[[], float] = time.time,
    password: Secret | str | None = None,
) -> Store:
    """Open the store at ``location`` (``Config.store_location()``): a SQLite file path, created and migrated if
    needed, or a database URL. ``sqlite:///path`` opens that file; ``postgresql://user@host/db`` a PostgreSQL
    database (``password`` from the config's ``store_password`` secret; a URL with an inline password is
    refused). Any other scheme is a ``StoreError``: never a file named after a URL."""
    text = os.fspath(location)
    match = _URL.match(text)
    if match is None:
        return SQLiteStore(location, clock=clock)
    scheme = match["scheme"].lower()
    if scheme == "sqlite" and text[match.end() :].startswith("/") and len(text) > match.end() + 1:
        return SQLiteStore(text[match.end() + 1 :], clock=clock)
    shown = redact_url(text)
    if scheme.split("+")[0] in ("postgres", "postgresql"):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(f"{shown}: {exc}") from None
        secret = password.reveal() if isinstance(password, Secret) else password
        return PostgresStore(text, clock=clock, password=secret)
    raise StoreError(
        f"{shown}: not a store cxbridge can open (a SQLite file path, sqlite:///path or postgresql://user@host/db)"
    )
