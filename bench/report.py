"""What every benchmark script shares: its command line, the machine, the JSON it prints."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from bench.relays import NAMES, OPTIONAL, OUT, ROOT, unavailable_reason


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model or platform.processor(),
        "cpus": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
    }


def code_version() -> dict[str, Any]:
    """The commit under test, and whether relay/ has uncommitted changes."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "relay_uncommitted_changes": bool(git("status", "--porcelain", "relay", "nips")),
    }


def parser(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--relays",
        default=",".join(NAMES),
        help=f"comma-separated, from {','.join(NAMES + OPTIONAL)} (default: {','.join(NAMES)})",
    )
    p.add_argument("--out", type=Path, help="also write the JSON to this file")
    return p


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def header(name: str, args: argparse.Namespace) -> dict[str, Any]:
    params = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("relays", "out")
    }
    return {
        "benchmark": name,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "code": code_version(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "params": params,
        "relays": {},
    }


def for_each_relay(
    args: argparse.Namespace, result: dict[str, Any], run: Callable[[str], dict[str, Any]]
) -> None:
    """Fill ``result["relays"][name]`` for each selected relay; a relay that cannot run is skipped with a note."""
    for name in [n.strip() for n in args.relays.split(",") if n.strip()]:
        reason = unavailable_reason(name)
        if reason:
            result["relays"][name] = {"skipped": reason}
            continue
        try:
            result["relays"][name] = run(name)
        except Exception as e:  # one relay failing must not lose the others' numbers
            result["relays"][name] = {"error": f"{type(e).__name__}: {e}"[-2000:]}


@contextmanager
def workdir(name: str) -> Iterator[Path]:
    """A fresh scratch folder under bench/out/run/ for one relay run."""
    base = OUT / "run"
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=base) as d:
        yield Path(d)


def emit(result: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
