"""The benchmarks still run: one bench at its smallest size, and every bench at its quick size through
``run.py --quick --check``.

No time is asserted (benchmarks measure, they do not test speed): only that the scripts work end to end, that
every target gets a measured figure, and that ``--check`` exits non-zero exactly when a figure misses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert result["targets"] == []  # an in-process breakdown: the end-to-end figures are bench_pipeline's
    # the worker and the event router exist now: the pipeline part runs and drains every escalation
    assert result["available"] is True, result["notes"]
    assert result["figures"]["pipeline"]["1"]["drain"]["done"] == 3


def test_run_quick_check_runs_every_bench_and_exits_on_misses_only(tmp_path: Path) -> None:
    """``run.py --quick --check``: every bench runs, every target has a measured value, the machine's load is
    recorded, and the exit code is 1 exactly when a figure missed (listed as MISSED), else 0."""
    out = tmp_path / "quick.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--check", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-2000:]
    doc = json.loads(out.read_text(encoding="utf-8"))
    names = [b["bench"] for b in doc["benches"]]
    assert names == [
        "latency",
        "pipeline",
        "calls",
        "engine",
        "floor",
        "ingest",
        "ratelimit",
        "reconcile",
        "join",
        "store",
        "pg",
    ]
    for bench in doc["benches"]:
        assert "failed" not in bench, bench["notes"]
        assert bench["available"] is True, bench["notes"]
        assert len(bench["machine"]["loadavg_1_5_15"]) == 3
        assert all(t["value"] is not None for t in bench["targets"]), bench["targets"]
    missed = [t for b in doc["benches"] for t in b["targets"] if t["met"] is not True]
    assert done.returncode == (1 if missed else 0)
    assert done.stdout.count("MISSED ") == len(missed)
    # the end-to-end benches measured what the README reports
    latency = next(b for b in doc["benches"] if b["bench"] == "latency")["figures"]
    assert latency["cxbridge"]["rounds"] == latency["sdk"]["rounds"] == 3
    pipeline = next(b for b in doc["benches"] if b["bench"] == "pipeline")["figures"]
    assert pipeline["escalations"] == 60
    # the floor: each client made the same call, waitress and the store were measured, and the sum is theirs
    floor = next(b for b in doc["benches"] if b["bench"] == "floor")
    assert floor["targets"] == []  # a breakdown, no target
    call = floor["figures"]["vendor_call"]
    assert set(call) == {"cxbridge_http_client_us", "requests_session_us", "urllib3_us", "http_client_us"}
    assert all(v > 0 for v in call.values())
    sums = floor["figures"]["escalation_floor"]
    assert sums["total_ms"] == pytest.approx(sums["calls_ms"] + sums["deliveries_ms"] + sums["transactions_ms"], 0.01)
    assert sums["deliveries_ms"] > 0
    assert sums["transactions_ms"] > 0
    # the pipeline's CPU beside that floor: a reading (no target), printed and kept with the results
    ratio = pipeline["cxbridge_cpu_ms_per_escalation"] / sums["total_ms"]
    assert doc["pipeline_beside_floor"].endswith(
        f"is {ratio:.2f} x this machine's floor ({sums['total_ms']} ms, bench_floor.py)"
    )
    assert doc["pipeline_beside_floor"] in done.stdout
    # PostgreSQL beside SQLite (CI starts the server): 1 and 8 worker processes on each, every job run once
    pg = next(b for b in doc["benches"] if b["bench"] == "pg")
    for store in ("postgresql", "sqlite"):
        rows = pg["figures"][store]["drain"]
        assert [r["workers"] for r in rows] == [1, 8]
        assert all(r["executions"] == r["jobs"] == r["done"] for r in rows), rows
    assert pg["figures"]["postgresql"]["ingest"]["lost"] == 0
    assert any(t["figure"] == "postgresql, 8 workers: jobs/s" for t in pg["targets"])
    # under a rate limit, end to end: every queued escalation done, none failed
    ratelimit = next(b for b in doc["benches"] if b["bench"] == "ratelimit")["figures"]
    assert ratelimit["failed_jobs"] == 0
    assert ratelimit["tickets_left_without_note_or_key"] == []
    # the full run's 60 calls a window; 82 escalations of 3 calls need more than 4 windows of 60
    assert ratelimit["limit"] == "60/8s"
    assert ratelimit["full_windows"] >= 4
    for window in ratelimit["per_window"]:  # escalation work: successful calls, none a repeat
        assert window["escalation_calls"] <= window["ok"]
        assert window["escalations"] <= window["escalation_calls"]
    # joins in paired rounds: a join at 1 beside a join at the big issue, at the full run's size
    join = next(b for b in doc["benches"] if b["bench"] == "join")["figures"]
    assert join["tickets"] == 400
    assert join["pairs"] == 9
    assert [row["linked_before"] for row in join["joins"]] == [n for r in range(9) for n in (1, 400 - 9 + r)]
    # ingest: the warm-up is not counted; the measured schedule is 5 s at the target rate
    ingest = next(b for b in doc["benches"] if b["bench"] == "ingest")["figures"]
    assert ingest["deliveries_sent"] == 2500
    assert len(ingest["latency_ms"]["p99_each_second"]) == 5
    assert ingest["store"]["inbox_rows"] == ingest["accepted_200"] + 250  # the warm-up's 250 are recorded too
    assert ingest["lost"] == 0
