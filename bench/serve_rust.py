"""Run rust-nostr's relay (``nostr_sdk.LocalRelayBuilder``) on 127.0.0.1 until SIGTERM.

``python bench/serve_rust.py --port N [--lmdb DIR]``. In memory unless ``--lmdb``
is given. Its per-connection rate limit (60 events a minute by default) is
raised out of the way; its REQ result cap (500) and other limits stay as shipped.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import nostr_sdk


async def serve(port: int, lmdb: str | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    builder = (
        nostr_sdk.LocalRelayBuilder()
        .addr("127.0.0.1")
        .port(port)
        .max_connections(100_000)
        .rate_limit(nostr_sdk.RateLimit(max_reqs=1_000, notes_per_minute=1_000_000_000))
    )
    if lmdb:
        # A Python-side database object is called back through UniFFI, so this
        # needs the loop; it is also why the LMDB variant is slower than memory.
        nostr_sdk.uniffi_set_event_loop(loop)
        builder = builder.database(await nostr_sdk.NostrLmdb.open(lmdb))
    relay = builder.build()
    await relay.run()
    print(f"READY {await relay.url()}", flush=True)
    await stop.wait()
    relay.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lmdb", help="directory of an LMDB database (default: in memory)")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.lmdb))


if __name__ == "__main__":
    main()
