"""Run the benchmarks, each in its own process, and print one summary table (figure, value, target, met or not).

    python benchmarks/run.py [--quick] [--check] [--only NAME[,NAME]] [--out FILE]

NAME is one of: latency, pipeline, calls, engine, floor, ingest, ratelimit, reconcile, join, store, pg. Each bench
writes its own JSON too (``benchmarks/results/<name>.json``); ``--out`` gets them all in one document (default
``benchmarks/results.json``, ``benchmarks/results-quick.json`` with ``--quick``). A bench that fails is reported
as failed with the end of its output (its figures are then missing, never invented).

Without ``--check`` it exits 0 whether targets are met or not: benchmarks measure and report. With ``--check`` it
exits 1 when a figure misses its target, or could not be measured (a failed bench, a missing figure), and lists
them; use it on a quiet machine (the figures follow the machine's load, recorded in each result).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

HERE = Path(__file__).resolve().parent

BENCHES = {
    "latency": "bench_latency.py",
    "pipeline": "bench_pipeline.py",
    "calls": "bench_calls.py",
    "engine": "bench_engine.py",
    "floor": "bench_floor.py",
    "ingest": "bench_ingest.py",
    "ratelimit": "bench_ratelimit.py",
    "reconcile": "bench_reconcile.py",
    "join": "bench_join.py",
    "store": "bench_store.py",
    "pg": "bench_pg.py",
}


def run_one(name: str, quick: bool, results: Path) -> dict[str, Any]:
    """Run one bench in a fresh interpreter, streaming its output; return its JSON (or a failure record)."""
    out = results / f"{name}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(HERE / BENCHES[name]), "--out", str(out)] + (["--quick"] if quick else [])
    print(f"\n== {name} ({' '.join(Path(c).name if c.endswith('.py') else c for c in cmd[1:])})", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE.parent)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print("  " + line.rstrip(), flush=True)
        tail = [*tail[-19:], line.rstrip()]
    code = proc.wait()
    seconds = time.perf_counter() - start
    if code == 0 and out.exists():
        res: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    else:
        res = _common.result(name, quick)
        res["available"] = False
        res["failed"] = {"exit_code": code, "tail": tail}
        res["notes"].append(f"the bench failed (exit {code}): {tail[-1] if tail else 'no output'}")
    res["run_seconds"] = round(seconds, 1)
    return res


def table(results: list[dict[str, Any]]) -> str:
    """The summary: one row per figure with a target."""
    rows = [("bench", "figure", "value", "target", "met")]
    for res in results:
        if not res["targets"]:
            shown = "(breakdown, no target)" if res["available"] else "(no figure)"
            rows.append((res["bench"], shown, "-", "-", "-" if res["available"] else "not available"))
        for t in res["targets"]:
            met = {True: "yes", False: "NO", None: "not available"}[t["met"]]
            rows.append((res["bench"], t["figure"], _common.shown(t["value"]), t["target"], met))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def misses(results: list[dict[str, Any]]) -> list[str]:
    """Every figure that missed its target or was not measured (for ``--check``), one line each."""
    out: list[str] = []
    for res in results:
        if res.get("failed"):
            out.append(f"{res['bench']}: the bench failed (exit {res['failed']['exit_code']})")
        elif not res["available"]:
            out.append(f"{res['bench']}: not available")
        for t in res["targets"]:
            if t["met"] is not True:
                value = "not measured" if t["value"] is None else _common.shown(t["value"])
                out.append(f"{res['bench']}: {t['figure']} = {value}, target {t['target']}")
    return out


def beside_floor(results: list[dict[str, Any]]) -> str | None:
    """The pipeline's CPU per escalation as a multiple of this machine's floor (``bench_floor.py``: the stack's
    calls, deliveries and store writes with cxbridge doing nothing else), when both ran. No target: a reading for
    whoever sets one, comparable between runs of one size (a quick run's floor comes out higher)."""
    by_name = {res["bench"]: res for res in results}
    pipeline, floor = by_name.get("pipeline"), by_name.get("floor")
    if pipeline is None or floor is None:
        return None
    cpu = (pipeline.get("figures") or {}).get("cxbridge_cpu_ms_per_escalation")
    base = ((floor.get("figures") or {}).get("escalation_floor") or {}).get("total_ms")
    if not cpu or not base:
        return None
    return (
        f"pipeline beside the floor: {cpu} ms of cxbridge CPU per escalation is {cpu / base:.2f} x this machine's "
        f"floor ({base} ms, bench_floor.py)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the small sizes: every bench in a few minutes")
    p.add_argument(
        "--check", action="store_true", help="exit 1 when a figure misses its target or could not be measured"
    )
    p.add_argument("--only", default=None, help=f"comma-separated subset of {', '.join(BENCHES)}")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="all results in one JSON document (default benchmarks/results.json, or results-quick.json with --quick)",
    )
    args = p.parse_args()
    if args.out is None:
        args.out = HERE / ("results-quick.json" if args.quick else "results.json")
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        p.error(f"unknown bench {', '.join(unknown)} (known: {', '.join(BENCHES)})")
    results_dir = _common.RESULTS_DIR
    results_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = [run_one(name, args.quick, results_dir) for name in names]
    total = time.perf_counter() - start
    print("\n" + table(results))
    for res in results:
        for note in res["notes"]:
            print(f"note ({res['bench']}): {note}")
    relative = beside_floor(results)
    if relative:
        print(relative)
    print(
        f"\n{len(results)} bench(es) in {total:.1f} s{' (--quick)' if args.quick else ''}; machine {_common.machine()}"
    )
    doc: dict[str, Any] = {
        "quick": args.quick,
        "total_seconds": round(total, 1),
        "machine": _common.machine(),
        "benches": results,
    }
    if relative:
        doc["pipeline_beside_floor"] = relative
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results written to {args.out}")
    if args.check:
        missed = misses(results)
        for line in missed:
            print(f"MISSED {line}")
        print(f"check: {len(missed)} figure(s) missed their target" if missed else "check: every target met")
        sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
