"""A worker process for the SIGKILL test (tests/test_worker.py): claims one job and blocks inside its handler.

Usage: ``python tests/_worker_child.py DB MARKER LEASE``. The handler writes ``started <name>`` to MARKER
once it runs, then blocks until the process is killed; the test kills it with SIGKILL mid-job.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from cxbridge.store import SQLiteStore
from cxbridge.worker import Worker


class _Runtime:
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def limit_inline_waits(self, seconds: float) -> None:
        pass


def main(db: str, marker: str, lease: float) -> None:
    store = SQLiteStore(db)
    rt: Any = _Runtime(store)

    def handler(rt: Any, payload: dict[str, Any]) -> str:
        Path(marker).write_text(f"started {payload['name']}\n", encoding="utf-8")
        time.sleep(60)  # killed long before this returns
        return "finished in the child"  # pragma: no cover

    Worker(rt, worker_id="child", lease_seconds=lease, handlers={"work": handler}).run_once()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
