"""A relay holding a large store, for the large-query and memory benchmarks.

The data set is ``large``: authors in groups of 100, 100 notes each, so every
whole block of 10,000 events is a complete store of 100 authors and a relay
filled only part of the way can still be queried for authors it fully holds.

How each relay gets its events (filling is not what these benchmarks measure):

- ``timmy``: ``bench/prefill_timmy.py`` writes the SQLite file through
  ``SqliteStore.save_many``; the file is cached in ``bench/out/stores/``.
- ``nostr-relay``: its own bulk import, ``nostr-relay load``, for at most
  ``fill_seconds`` (it stores a few hundred events a second, so 1M is out of
  reach); the file is cached with the size reached.
- ``rust``: filled over websockets on every start, in chunks, until the size or
  ``fill_seconds`` is reached. Its default in-memory database keeps only the
  newest 75,000 events (older ones are evicted after ``OK true``), so its store
  is capped at :data:`RUST_MEMORY_EVENTS`.
- ``rust-lmdb`` (only when named): the same relay on NostrLmdb, filled the same
  way without the cap.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.events import ensure_dataset, pubkeys
from bench.loadgen import run_job
from bench.relays import (
    BENCH,
    OUT,
    ROOT,
    NostrRelayPy,
    RelayProcess,
    RustLmdbRelay,
    RustLocalRelay,
    TimmyRelay,
    nostr_relay_executable,
    write_nostr_relay_config,
)
from bench.report import workdir

GROUP = 100
PER_AUTHOR = 100
BLOCK = GROUP * PER_AUTHOR
STORES = OUT / "stores"
RUST_CHUNK = 50_000
RUST_MEMORY_EVENTS = 70_000  # whole blocks below the in-memory database's bound of 75,000
# LocalRelay drops a connection after 6,000 messages (see docs/benchmarks.md), so
# each chunk is spread over enough connections to stay below that.
RUST_FILL_CONNS = 32


def dataset(size: int) -> Path:
    size = -(-size // BLOCK) * BLOCK
    return ensure_dataset("large", size, size // PER_AUTHOR, GROUP)


def complete_authors(dataset_size: int, stored: int) -> list[str]:
    """Authors all of whose events are among the first ``stored`` events of the data set."""
    keys = pubkeys("large", dataset_size // PER_AUTHOR)
    whole = (stored // BLOCK) * GROUP
    return keys[:whole] if whole else keys[: min(GROUP, stored)]


def _meta(path: Path) -> dict[str, Any] | None:
    meta = path.with_suffix(".json")
    return json.loads(meta.read_text()) if meta.exists() else None


def _dataset_base(events: Path) -> int:
    return int(json.loads(events.with_suffix(".meta.json").read_text())["created_at_base"])


def _store_code() -> str:
    """A hash of our SQLite store's source: a cached file is rebuilt when the schema code changes."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "relay" / "store").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def timmy_store(events: Path, size: int) -> tuple[Path, dict[str, Any]]:
    """Our SQLite file holding the first ``size`` events (cached while the store code is unchanged)."""
    db = STORES / f"timmy-large-{size}.sqlite3"
    meta = _meta(db)
    code = _store_code()
    if (
        meta
        and meta["dataset_base"] == _dataset_base(events)
        and meta.get("store_code") == code
        and db.exists()
    ):
        return db, meta
    STORES.mkdir(parents=True, exist_ok=True)
    for stale in STORES.glob(f"{db.name}*"):
        stale.unlink()
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "prefill_timmy.py"),
            "--db",
            str(db),
            "--events",
            str(events),
            "--count",
            str(size),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode:
        raise RuntimeError(f"prefill failed: {proc.stderr[-2000:]}")
    fill = json.loads(proc.stdout.strip().splitlines()[-1])
    fill["method"] = "bench/prefill_timmy.py (SqliteStore.save_many, batches of 5,000)"
    meta = {
        "stored": fill["stored"],
        "fill": fill,
        "dataset_base": _dataset_base(events),
        "store_code": code,
    }
    db.with_suffix(".json").write_text(json.dumps(meta))
    return db, meta


def _serve_and_restart(db: Path, events: Path) -> None:
    """Serve a few queries from a freshly loaded nostr-relay file, then stop the relay.

    nostr-relay runs ``PRAGMA optimize`` when it shuts down, which analyzes the
    tables its queries used; a relay that has served queries and restarted once
    plans them with statistics. Without them the author+kind query took ~45 ms
    instead of ~5 ms on a 172k-event store.
    """
    dataset_size = int(json.loads(events.with_suffix(".meta.json").read_text())["count"])
    with workdir("nostr-relay-restart") as wd, NostrRelayPy(wd, db=db) as relay:
        share = {
            "host": "127.0.0.1",
            "port": relay.port,
            "conns": 1,
            "authors": complete_authors(dataset_size, BLOCK)[:GROUP],
            "reqs_per_conn": 50,
            "limit": 50,
            "seed": 0,
            "seconds": 30.0,
        }
        run_job("query", [share], 60, quiet=False)


def nostr_relay_store(events: Path, size: int, fill_seconds: float) -> tuple[Path, dict[str, Any]]:
    """nostr-relay's SQLite file filled by ``nostr-relay load`` for at most ``fill_seconds`` (cached)."""
    db = STORES / f"nostr-relay-large-{size}.sqlite3"
    meta = _meta(db)
    if meta and meta["dataset_base"] == _dataset_base(events) and db.exists():
        return db, meta
    STORES.mkdir(parents=True, exist_ok=True)
    for stale in STORES.glob(f"{db.name}*"):
        stale.unlink()
    config = STORES / "nostr-relay-load.yaml"
    write_nostr_relay_config(config, 0, db)
    exe = nostr_relay_executable()
    subprocess.run(
        [exe, "-c", str(config), "alembic", "upgrade", "head"],
        cwd=STORES,
        capture_output=True,
        check=True,
        timeout=120,
    )
    started = time.perf_counter()
    with open(events, "rb") as src:
        # Feed exactly `size` lines; the time bound ends the load early when it is slow.
        loader = subprocess.Popen(
            [exe, "-c", str(config), "load"],
            cwd=STORES,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert loader.stdin is not None
        try:
            for n, line in enumerate(src):
                if n >= size or time.perf_counter() - started > fill_seconds:
                    break
                loader.stdin.write(line)
            loader.stdin.close()
            loader.wait(max(1.0, fill_seconds - (time.perf_counter() - started)))
        except (subprocess.TimeoutExpired, BrokenPipeError):
            pass
        finally:
            if loader.poll() is None:
                loader.terminate()
                try:
                    loader.wait(30)
                except subprocess.TimeoutExpired:
                    loader.kill()
                    loader.wait()
    seconds = time.perf_counter() - started
    _serve_and_restart(db, events)
    conn = sqlite3.connect(db)
    try:
        stored = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        analyzed = bool(
            conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
            ).fetchone()[0]
        )
    finally:
        conn.close()
    meta = {
        "stored": stored,
        "fill": {
            "method": "nostr-relay load, then one start and stop of the relay (it analyzes on shutdown)",
            "analyzed": analyzed,
            "seconds": round(seconds, 1),
            "events_per_s": round(stored / seconds, 1),
            "time_bound_s": fill_seconds,
        },
        "dataset_base": _dataset_base(events),
    }
    db.with_suffix(".json").write_text(json.dumps(meta))
    return db, meta


def fill_rust(relay: RelayProcess, events: Path, size: int, fill_seconds: float) -> dict[str, Any]:
    """Publish whole chunks over websockets until ``size`` or the time bound; returns what was stored."""
    started = time.perf_counter()
    stored = complete = 0
    for start in range(0, size, RUST_CHUNK):
        left = fill_seconds - (time.perf_counter() - started)
        if left <= 0:
            break
        stop = min(size, start + RUST_CHUNK)
        shares = [
            {
                "host": "127.0.0.1",
                "port": relay.port,
                "dataset": str(events),
                "start": start,
                "stop": stop,
                "conns": RUST_FILL_CONNS,
                "window": 16,
                "seconds": left,
            }
        ]
        accepted = sum(
            r["accepted"] for r in run_job("publish", shares, left + 120, quiet=False).results
        )
        stored += accepted
        if accepted < stop - start:
            break
        complete = stop
    seconds = time.perf_counter() - started
    return {
        "stored": stored,
        "complete_prefix": complete,
        "fill": {
            "method": f"websockets, {RUST_FILL_CONNS} connections x 16 in flight",
            "seconds": round(seconds, 1),
            "events_per_s": round(stored / seconds, 1),
            "time_bound_s": fill_seconds,
        },
    }


def warm_page_cache(db: Path) -> None:
    """Read a database file (and its WAL) once, so queries measure a warm OS page cache.

    The cached stores sit on disk between runs; without this the first queries of
    a run wait on the disk and the numbers depend on what else ran before.
    """
    for path in (db, db.with_name(db.name + "-wal")):
        if path.exists():
            with path.open("rb") as f:
                while f.read(1 << 22):
                    pass


@contextmanager
def relay_with_large_store(
    name: str, wd: Path, size: int, fill_seconds: float
) -> Iterator[tuple[RelayProcess, dict[str, Any], list[str]]]:
    """A running relay holding (up to) ``size`` events; yields (relay, store info, authors to query)."""
    events = dataset(size)
    dataset_size = int(json.loads(events.with_suffix(".meta.json").read_text())["count"])
    relay: RelayProcess
    if name == "timmy":
        db, meta = timmy_store(events, size)
        warm_page_cache(db)
        relay = TimmyRelay(wd, db=db)
    elif name == "nostr-relay":
        db, meta = nostr_relay_store(events, size, fill_seconds)
        warm_page_cache(db)
        relay = NostrRelayPy(wd, db=db)
    elif name == "rust":
        relay = RustLocalRelay(wd)
        size = min(size, RUST_MEMORY_EVENTS)
    elif name == "rust-lmdb":
        relay = RustLmdbRelay(wd)
    else:
        raise ValueError(name)
    with relay:
        if name.startswith("rust"):
            meta = fill_rust(relay, events, size, fill_seconds)
            prefix = meta["complete_prefix"]
        else:
            prefix = meta["stored"]
        info = {"events_stored": meta["stored"], "target_size": size, "fill": meta["fill"]}
        if name == "rust":
            info["note"] = (
                f"in-memory database keeps the newest 75,000 events; store capped at {RUST_MEMORY_EVENTS:,}"
            )
        yield relay, info, complete_authors(dataset_size, prefix)


def add_store_size_args(p: argparse.ArgumentParser) -> None:
    """The options of the benchmarks that run on the large stores."""
    p.add_argument(
        "--size", type=int, default=1_000_000, help="events in our store (default 1,000,000)"
    )
    p.add_argument(
        "--other-size",
        type=int,
        default=None,
        help="target size for nostr-relay and rust (default: --size)",
    )
    p.add_argument(
        "--fill-seconds",
        type=float,
        default=300.0,
        help="time bound for filling nostr-relay / rust",
    )
