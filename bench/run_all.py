"""Run every benchmark and write ``bench/out/results.json`` and ``bench/out/summary.md``.

``python -m bench.run_all [--quick] [--only ingest,fanout] [--relays timmy,rust]``
(or ``python bench/run_all.py``, from the repository root). Each benchmark runs
in its own process, one after another, so that one failing or hanging (killed
after ``--timeout`` seconds) does not lose the others. ``--only`` updates those
benchmarks in an existing results.json and keeps the rest. ``--quick`` uses
small sizes for a smoke run of a few minutes and writes to ``bench/out/quick/``.
The default sizes are the ones in docs/benchmarks.md: about 10 minutes, plus
about 8 the first time, to build the 1M-event data set and stores that are
cached in bench/out/.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import signal
import subprocess
import time
from typing import Any

from bench.relays import OUT, ROOT
from bench.report import machine
from bench.summary import render

BENCHMARKS = (
    "ingest", "queries", "large_query", "fanout", "memory", "jobs", "auction", "payments", "reputation", "web",
    "search", "voice",
)
# Benchmarks of the whole node rather than of relays side by side: no --relays.
NODE_BENCHMARKS = ("jobs", "auction", "payments", "reputation", "web", "search", "voice")

QUICK: dict[str, list[str]] = {
    "ingest": ["--events", "5000", "--conns", "1,8", "--seconds", "10"],
    "queries": [
        "--events",
        "4000",
        "--authors",
        "40",
        "--conns",
        "1,8",
        "--reqs",
        "2000",
        "--seconds",
        "10",
    ],
    "large_query": [
        "--size",
        "50000",
        "--fill-seconds",
        "20",
        "--queries",
        "500",
        "--warmup",
        "50",
    ],
    "fanout": ["--subs", "200", "--conns", "200", "--rounds", "5"],
    "jobs": ["--jobs", "100", "--seconds", "5", "--inflight", "16"],
    "auction": ["--auctions", "2"],
    "payments": ["--jobs", "10", "--seconds", "2"],
    "reputation": ["--keys", "10000", "--edges", "100000"],
    "web": ["--requests", "50"],
    "voice": ["--runs", "5", "--tts-runs", "1"],
    "memory": ["--size", "50000", "--fill-seconds", "20", "--conns", "200"],
    "search": ["--size", "20000", "--queries", "100"],  # embeds 20k texts the first time (minutes)
}


def run_one(name: str, extra: list[str], timeout: float, folder: Path) -> dict[str, Any]:
    out = folder / f"{name}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", f"bench.{name}", "--out", str(out), *extra]
    started = time.monotonic()
    print(f"== {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its relays and client processes too
        proc.wait()
        return {"benchmark": name, "error": f"timed out after {timeout} s"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(
        f"   {name}: exit {rc} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True
    )
    if rc or not out.exists():
        return {"benchmark": name, "error": f"exit status {rc}"}
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks")
    p.add_argument("--relays", help="passed on to every benchmark")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per benchmark")
    args = p.parse_args()
    folder = OUT / "quick" if args.quick else OUT  # a smoke run never replaces real results
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick, "benchmarks": {}}
    names = [n for n in args.only.split(",") if n]
    previous = folder / "results.json"
    if set(names) != set(BENCHMARKS) and previous.exists():
        # A partial run updates its benchmarks and keeps the others' last results.
        kept = json.loads(previous.read_text())
        if kept.get("quick") == args.quick:
            results["benchmarks"] = kept.get("benchmarks", {})
    for name in names:
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
        extra = list(QUICK[name]) if args.quick else []
        if args.relays and name not in NODE_BENCHMARKS:
            extra += ["--relays", args.relays]
        results["benchmarks"][name] = run_one(name, extra, args.timeout, folder)
        (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    summary = render(results)
    (folder / "summary.md").write_text(summary)
    print(summary)
    print(f"wrote {folder / 'results.json'} and {folder / 'summary.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
