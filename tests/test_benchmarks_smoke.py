"""The benchmarks still run: one bench at its smallest size writes a result with the expected keys.

No time is asserted (benchmarks measure, they do not test speed); only that the script works end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_engine_bench_smallest_size_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    bench = str(ROOT / "benchmarks" / "bench_engine.py")
    done = subprocess.run(
        [sys.executable, bench, "--count", "3", "--workers", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["bench"] == "engine"
    assert set(result) >= {"machine", "figures", "targets", "notes", "available"}
    assert {"nproc", "cpu", "python"} <= set(result["machine"])
    alone = result["figures"]["alone"]
    assert alone["escalations"] == 3
    assert alone["calls_per_escalation"] > 0
    assert {t["figure"] for t in result["targets"]} >= {"escalations/s, escalation alone, engine wall time"}
    # the worker and the event router exist now: the pipeline part runs and drains every escalation
    assert result["available"] is True, result["notes"]
    assert result["figures"]["pipeline"]["1"]["drain"]["done"] == 3
