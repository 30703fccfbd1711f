"""Run our relay on 127.0.0.1 until SIGTERM, with benchmark limits.

``python bench/serve_timmy.py --port N --db PATH [--synchronous FULL]``.
Rate limits are off (0) and size limits are raised so they never shape a
benchmark; signature checks, storage and durability stay as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.server import RelayServer
from relay.settings import RelayLimits, RelaySettings
from relay.store.sqlite import SqliteStore

BENCH_LIMITS = RelayLimits(
    max_subscriptions=1_000,
    max_limit=5_000,
    events_per_minute_per_ip=0,
    events_per_minute_per_pubkey=0,
    reqs_per_minute_per_ip=0,
    max_connections_per_ip=100_000,
)


async def serve(port: int, db: str, synchronous: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings = RelaySettings(
        host="127.0.0.1", port=port, limits=BENCH_LIMITS, sqlite_synchronous=synchronous
    )
    store = SqliteStore(db, synchronous=synchronous)
    await store.open()
    server = RelayServer(settings, store)
    await server.start()
    print(f"READY ws://127.0.0.1:{server.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port, args.db, args.synchronous))
    else:
        uvloop.run(serve(args.port, args.db, args.synchronous))


if __name__ == "__main__":
    main()
