"""Micro-benchmark of SqliteStore: batch ingest and query latency. Prints JSON.

    python bench/store_micro.py [--events 1000000] [--dir /tmp]

1. ``save_many`` throughput, batches of 256 signed events with 3 tags each,
   on a fresh store, for synchronous=FULL and NORMAL.
2. Fill a store with ``--events`` events (ids are real hashes, signatures are
   random: the store does not verify them), then time single queries through
   the store API, aiosqlite hop included: author+kind (limit 50) and others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import coincurve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nips.nip01 import Event, Filter, compute_id, parse_event
from relay.store.sqlite import SqliteStore

NOW = 1_700_000_000
BATCH = 256


def signed_events(count: int) -> list[Event]:
    keys = [coincurve.PrivateKey() for _ in range(50)]
    events = []
    for n in range(count):
        key = keys[n % len(keys)]
        pubkey = key.public_key_xonly.format().hex()
        tags = [["e", os.urandom(32).hex()], ["p", os.urandom(32).hex()], ["t", f"topic{n % 20}"]]
        created_at, content = NOW - n, f"note {n}"
        event_id = compute_id(pubkey, created_at, 1, tags, content)
        sig = key.sign_schnorr(bytes.fromhex(event_id)).hex()
        obj = {"id": event_id, "pubkey": pubkey, "created_at": created_at, "kind": 1}
        events.append(parse_event({**obj, "tags": tags, "content": content, "sig": sig}))
    return events


async def ingest(path: Path, events: list[Event], synchronous: str) -> dict[str, float]:
    store = SqliteStore(path, synchronous=synchronous)
    await store.open()
    start = time.perf_counter()
    for i in range(0, len(events), BATCH):
        await store.save_many(events[i : i + BATCH])
    elapsed = time.perf_counter() - start
    await store.close()
    return {
        "events_per_s": round(len(events) / elapsed),
        "batch_ms": round(elapsed * 1000 * BATCH / len(events), 2),
    }


class Corpus:
    """Unsigned but well-formed events: 10k authors, kinds 1/7/6/0, three tags each."""

    def __init__(self, rng: random.Random, count: int) -> None:
        self.rng, self.count = rng, count
        self.authors = [rng.randbytes(32).hex() for _ in range(10_000)]
        self.targets = [rng.randbytes(32).hex() for _ in range(50_000)]

    def event(self, n: int) -> Event:
        rng = self.rng
        pubkey = self.authors[n % len(self.authors)]
        kind = rng.choices((1, 7, 6, 0), weights=(70, 20, 9, 1))[0]
        target = rng.choice(self.targets)
        tags = [["e", target], ["p", rng.choice(self.authors)], ["t", f"topic{rng.randrange(100)}"]]
        # Roughly arrival order over a year, as a relay sees them.
        created_at = NOW - 365 * 86400 + n * 365 * 86400 // self.count + rng.randrange(3600)
        content = "x" * rng.randrange(20, 300)
        event_id = compute_id(pubkey, created_at, kind, tags, content)
        obj = {"id": event_id, "pubkey": pubkey, "created_at": created_at, "kind": kind}
        return parse_event({**obj, "tags": tags, "content": content, "sig": "0" * 128})


async def fill(store: SqliteStore, corpus: Corpus, count: int) -> dict[str, float]:
    start = time.perf_counter()
    done = 0
    while done < count:
        size = min(2048, count - done)
        await store.save_many([corpus.event(done + i) for i in range(size)])
        done += size
    return {"events": count, "seconds": round(time.perf_counter() - start, 1)}


async def latency(store: SqliteStore, make_filters, runs: int) -> dict[str, float]:
    times, sizes = [], []
    for _ in range(runs):
        filters = make_filters()
        start = time.perf_counter()
        raws = await store.query(filters, now=NOW, default_limit=500)
        times.append((time.perf_counter() - start) * 1000)
        sizes.append(len(raws))
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[int(len(times) * 0.95)], 3),
        "p99_ms": round(times[int(len(times) * 0.99)], 3),
        "mean_results": round(statistics.mean(sizes), 1),
    }


async def throughput(store: SqliteStore, make_filters, seconds: float, concurrency: int) -> float:
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await store.query(make_filters(), now=NOW, default_limit=500)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return round(done / (time.perf_counter() - start))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ingest-events", type=int, default=20_480)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--db", help="keep the big store here; reuse it when it exists")
    args = parser.parse_args()
    out: dict[str, object] = {}
    workdir = Path(tempfile.mkdtemp(prefix="store-bench-", dir=args.dir))
    big = Path(args.db) if args.db else workdir / "big.db"

    events = signed_events(args.ingest_events)
    for mode in ("FULL", "NORMAL"):
        out[f"ingest_{mode.lower()}_fresh"] = await ingest(
            workdir / f"ingest-{mode}.db", events, mode
        )

    rng = random.Random(1)
    corpus = Corpus(rng, args.events)
    if not big.exists():
        store = SqliteStore(big, synchronous="NORMAL")
        await store.open()
        out["fill"] = await fill(store, corpus, args.events)
        await store.close()
    out["db_mb"] = round(sum(p.stat().st_size for p in big.parent.glob(big.name + "*")) / 2**20)
    fresh_ones = [corpus.event(args.events + n) for n in range(args.ingest_events)]
    out["ingest_full_on_big_store"] = await ingest(big, fresh_ones, "FULL")
    store = SqliteStore(big, synchronous="FULL")
    await store.open()

    def author_kind() -> list[Filter]:
        return [
            Filter(authors=frozenset([rng.choice(corpus.authors)]), kinds=frozenset([1]), limit=50)
        ]

    def kind_only() -> list[Filter]:
        return [Filter(kinds=frozenset([1]), limit=50)]

    def reactions() -> list[Filter]:
        target = rng.choice(corpus.targets)
        return [Filter(kinds=frozenset([7]), tags={"e": frozenset([target])}, limit=50)]

    def mentions() -> list[Filter]:
        return [Filter(tags={"p": frozenset([rng.choice(corpus.authors)])}, limit=50)]

    def topic() -> list[Filter]:
        return [Filter(tags={"t": frozenset([f"topic{rng.randrange(100)}"])}, limit=50)]

    def follow_feed() -> list[Filter]:
        follows = frozenset(rng.sample(corpus.authors, 100))
        return [Filter(authors=follows, kinds=frozenset([1, 6]), limit=50)]

    queries = {
        "author_kind_limit50": author_kind,
        "kind_limit50": kind_only,
        "e_tag_kind7_limit50": reactions,
        "p_tag_limit50": mentions,
        "t_tag_limit50": topic,
        "follow_feed_100_authors_limit50": follow_feed,
    }
    for name, make in queries.items():
        out[name] = await latency(store, make, 2000 if name == "author_kind_limit50" else 300)
    out["author_kind_req_per_s_1_client"] = await throughput(store, author_kind, 3, 1)
    out["author_kind_req_per_s_8_clients"] = await throughput(store, author_kind, 3, 8)
    await store.close()
    if not args.db:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{big}{suffix}").unlink(missing_ok=True)
    for path in workdir.iterdir():
        path.unlink()
    workdir.rmdir()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
