"""``cxbridge serve`` with the store's write transactions serialised by an in-process lock: an EXPERIMENT.

Used by ``bench_ingest --serialize-writes`` to test one explanation of the ingest p99: with many waitress threads,
concurrent ``BEGIN IMMEDIATE`` transactions wait in SQLite's busy handler, which sleeps in growing steps (up to
100 ms) instead of waking when the lock is free. A ``threading.Lock`` in front of each write transaction makes
threads of one process queue on the lock instead (other processes still meet the busy timeout). Nothing of
cxbridge is changed on disk: the lock is wrapped around ``SQLiteStore._write`` in this process only.

    python benchmarks/_serve_serialized.py --config PATH serve ...   (the same arguments as ``cxbridge``)
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
from collections.abc import Iterator
from typing import Any

from cxbridge.cli import main
from cxbridge.store import sqlite as sqlite_store

_LOCK = threading.Lock()
_original = sqlite_store.SQLiteStore._write


@contextlib.contextmanager
def _serialized_write(self: Any) -> Iterator[sqlite3.Connection]:
    with _LOCK, _original(self) as conn:
        yield conn


sqlite_store.SQLiteStore._write = _serialized_write  # type: ignore[method-assign]

if __name__ == "__main__":
    main(sys.argv[1:])
