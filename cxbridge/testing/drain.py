"""A worker process standing for one machine, for multi-process drain tests and benchmarks.

``python -m cxbridge.testing.drain STORE LEDGER --worker-id W`` opens the store at ``STORE`` (its own connection
pool), then runs a ``Worker`` on ``work`` jobs until no job is ready or leased anywhere, and prints one JSON line
(``{"worker": W, "done": n, "stale": n, "errors": n}``). Each job's effect is one line, ``<payload n>``, appended
to the ``LEDGER`` file: the ledger stands for a vendor, written through the intent protocol (``write_once``, with
a read-back by marker), so a job retried after its worker was killed -9 between the write and its record finds
its line instead of writing it again. Counting the ledger's lines proves how many times each job's effect
happened: exactly once per job is the guarantee.

``--work-ms`` makes each job take that long before its write (so a kill lands mid-job), ``--lease`` sets the
lease (short, so a killed worker's jobs come back soon). With ``--hang-dir``, a job whose payload says
``hang_after_write`` hangs its worker right after its effect is written and before it is recorded (the worst
moment to be killed), once: it first leaves a file named after the job in that folder, for the test to see.
``--start-at EPOCH`` waits, after opening the store, until that time (so that several processes start together);
``--start-file PATH`` instead leaves ``PATH.ready.<worker id>`` once the store is open and waits until ``PATH``
exists (a start barrier: the caller starts them all once every one is ready, whatever the machine's load). The
JSON line then also gives ``ready_at``, when the store was open, and ``ended_at``, the time the process saw the
queue empty.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..store import Store, open_store
from ..worker import Worker
from ..workflows.once import op_id, write_once


class _Runtime:
    """The part of a Runtime a Worker needs: the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def limit_inline_waits(self, seconds: float) -> None:
        """Nothing here waits inline."""


def _append(ledger: Path, line: str) -> None:
    # O_APPEND: each write of a short line lands whole, whichever process writes it
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def _find(ledger: Path, line: str) -> dict[str, Any] | None:
    try:
        text = ledger.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return {"line": line} if line in text.splitlines() else None


def ledger_counts(ledger: Path) -> dict[str, int]:
    """How many times each line occurs in the ledger (a job's effect: its payload's ``n``)."""
    counts: dict[str, int] = {}
    if ledger.exists():
        for line in ledger.read_text(encoding="utf-8").splitlines():
            counts[line] = counts.get(line, 0) + 1
    return counts


def run(
    location: str,
    ledger: Path,
    worker_id: str,
    *,
    lease: float,
    work_ms: float,
    hang_dir: Path | None = None,
    start_at: float | None = None,
    start_file: Path | None = None,
) -> dict[str, Any]:
    """Drain ``work`` jobs from the store at ``location`` until none is ready or leased; returns the figures."""
    store = open_store(location)
    store.queue_depth()  # connected (a pool on PostgreSQL) before the start
    ready_at = time.time()
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    if start_file is not None:
        start_file.with_name(f"{start_file.name}.ready.{worker_id}").touch()
        while not start_file.exists():
            time.sleep(0.002)

    def work(rt: Any, payload: dict[str, Any]) -> str:
        line = str(payload["n"])
        if work_ms:
            time.sleep(work_ms / 1000)

        def write() -> dict[str, Any]:
            _append(ledger, line)
            if hang_dir is not None and payload.get("hang_after_write") and not (hang_dir / line).exists():
                (hang_dir / line).touch()
                time.sleep(3600)  # killed -9 here by the test
            return {"line": line}

        return write_once(
            store,
            op_id(f"drain:{line}", "ledger.append"),
            "ledger.append",
            f"drain:{line}",
            write,
            find=lambda: _find(ledger, line),
        )

    worker = Worker(_Runtime(store), worker_id=worker_id, lease_seconds=lease, handlers={"work": work})  # type: ignore[arg-type]
    errors = 0
    stop = threading.Event()
    try:
        while True:
            try:
                if worker.run_once():
                    continue
                depth = store.queue_depth()
            except Exception:  # the store dropped or is restarting: the lease lapses, the job comes back
                errors += 1
                time.sleep(0.2)
                continue
            if depth["ready"] == 0 and depth["leased"] == 0:
                break
            store.wait_for_work(0.1, stop)
    finally:
        store.close()
    return {"worker": worker_id, **worker.counts, "errors": errors, "ready_at": ready_at, "ended_at": time.time()}


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("store")
    parser.add_argument("ledger", type=Path)
    parser.add_argument("--worker-id", default=f"drain-{os.getpid()}")
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--work-ms", type=float, default=0.0)
    parser.add_argument("--hang-dir", type=Path)
    parser.add_argument("--start-at", type=float)
    parser.add_argument("--start-file", type=Path)
    args = parser.parse_args(argv)
    figures = run(
        args.store,
        args.ledger,
        args.worker_id,
        lease=args.lease,
        work_ms=args.work_ms,
        hang_dir=args.hang_dir,
        start_at=args.start_at,
        start_file=args.start_file,
    )
    sys.stdout.write(json.dumps(figures) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
