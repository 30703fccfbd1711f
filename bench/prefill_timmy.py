"""Write a data set straight into our SQLite store, bypassing the network.

``python bench/prefill_timmy.py --db PATH --events FILE --count N``. The fast way
to build a large store for the query and memory benchmarks: the events are the
same real, signed events (shape and id checked by ``parse_event``), saved with
``SqliteStore.save_many`` in large batches. Signatures are not re-checked here:
the relay checks them when events arrive over the network, and these were made
by ``bench.events``. Prints one JSON line with the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from nips.nip01 import parse_event
from relay.store.base import SaveResult
from relay.store.sqlite import SqliteStore


async def prefill(db: str, events: str, count: int, batch: int) -> dict[str, object]:
    store = SqliteStore(db, synchronous="NORMAL")
    await store.open()
    stored = 0
    started = time.perf_counter()
    try:
        with open(events, "rb") as f:
            lines = itertools.islice(f, count)
            while chunk := list(itertools.islice(lines, batch)):
                results = await store.save_many([parse_event(orjson.loads(line)) for line in chunk])
                stored += sum(r is SaveResult.STORED for r in results)
    finally:
        await store.close()
    seconds = time.perf_counter() - started
    return {
        "stored": stored,
        "seconds": round(seconds, 1),
        "events_per_s": round(stored / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(prefill(args.db, args.events, args.count, args.batch))))


if __name__ == "__main__":
    main()
