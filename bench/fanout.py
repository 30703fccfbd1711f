"""Fan-out: how fast one event reaches 1,000 live subscriptions.

``--subs`` subscriptions (default 1,000 connections x 1 subscription, spread over
``--procs`` client processes) all match ``{"kinds":[1],"#t":["fanout"]}``. A
separate connection publishes one matching event; every delivery is timed from
the moment the EVENT was written to the publisher's socket (one clock,
``CLOCK_MONOTONIC``, across processes). Repeated ``--rounds`` times after
``--warmup`` uncounted rounds, with a pause between rounds.

``python -m bench.fanout [--subs 1000] [--conns 1000] [--rounds 20]``
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncio
import time
from typing import Any

import orjson

from bench import wsclient
from bench.events import single_note
from bench.loadgen import ClientError, ClientPool, event_frame, percentiles, split, wait_for_quiet
from bench.relays import RelayProcess, cpu_split, launcher
from bench.report import emit, for_each_relay, header, parser, workdir
from bench.wsclient import Connection, message_type

TAG = "fanout"


class OneShotPublisher(Connection):
    """Publishes one event at a time and waits for its OK."""

    ok: asyncio.Future[list[Any]]

    def publish(self, frame: bytes) -> asyncio.Future[list[Any]]:
        self.ok = asyncio.get_running_loop().create_future()
        self.send(frame)
        return self.ok

    def on_message(self, payload: bytes) -> None:
        if message_type(payload) == b"OK" and not self.ok.done():
            self.ok.set_result(orjson.loads(payload))


def collect_round(pool: ClientPool, event_id: str, timeout: float) -> tuple[list[int], int]:
    """Delivery times of ``event_id`` reported by every client; (times, clients that reported nothing)."""
    deadline = time.monotonic() + timeout
    times: list[int] = []
    silent = 0
    for i in range(len(pool.pipes)):
        while True:
            try:
                msg = pool.recv(i, max(0.0, deadline - time.monotonic()))
            except ClientError as e:
                if "did not answer" not in str(e):
                    raise
                silent += 1
                break
            if msg[0] == "round" and msg[1] == event_id:
                times.extend(msg[2])
                break  # anything else is a late report of an earlier round
    return times, silent


async def fanout(
    relay: RelayProcess,
    subs: int,
    conns: int,
    procs: int,
    rounds: int,
    warmup: int,
    round_timeout: float,
    pause: float,
) -> dict[str, Any]:
    subs_per_conn = max(1, subs // conns)
    flt = orjson.dumps({"kinds": [1], "#t": [TAG]}).decode()
    shares = [
        {
            "host": "127.0.0.1",
            "port": relay.port,
            "conns": c1 - c0,
            "subs_per_conn": subs_per_conn,
            "filters": [flt],
            "round_timeout": round_timeout,
        }
        for c0, c1 in split(conns, procs)
    ]
    events = [single_note(TAG, i) for i in range(warmup + rounds)]
    with ClientPool("subscribe", shares) as pool:
        ready = await asyncio.to_thread(pool.expect, "ready", 300)
        expected = sum(r["subscriptions"] for r in ready)
        publisher = await wsclient.connect(OneShotPublisher, "127.0.0.1", relay.port)
        calm = await asyncio.to_thread(wait_for_quiet)
        before = relay.usage()
        pool.broadcast("go")
        all_latencies: list[int] = []
        per_round = []
        missing = 0
        ok_ns: list[int] = []
        try:
            for n, raw in enumerate(events):
                event_id = orjson.loads(raw)["id"]
                frame = event_frame(raw)
                t0 = time.monotonic_ns()
                ok = await asyncio.wait_for(publisher.publish(frame), 10)
                ok_ns.append(time.monotonic_ns() - t0)
                if ok[2] is not True:
                    raise RuntimeError(f"publish rejected: {ok}")
                times, _ = await asyncio.to_thread(collect_round, pool, event_id, round_timeout + 5)
                if n >= warmup:
                    latencies = [t - t0 for t in times]
                    all_latencies += latencies
                    missing += expected - len(times)
                    stats = percentiles(latencies)
                    per_round.append({k: stats.get(k) for k in ("n", "p50_ms", "p99_ms", "max_ms")})
                await asyncio.sleep(pause)
        finally:
            publisher.close()
            after = relay.usage()
            pool.broadcast("stop")
        results = await asyncio.to_thread(pool.expect, "result", 60)
    return {
        "subscriptions": expected,
        "connections": conns,
        "rounds": rounds,
        "deliveries": len(all_latencies),
        "missing_deliveries": missing,
        "latency": percentiles(all_latencies),
        "publish_ok": percentiles(ok_ns[warmup:]),
        "per_round": per_round,
        "connections_dropped_by_relay": sum(len(r["dropped_by_relay"]) for r in results),
        **cpu_split(before, after, sum(r["cpu_s"] for r in results)),
        "relay_rss_mb": round(after.rss_bytes / 2**20, 1),
        **calm,
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--subs", type=int, default=1_000, help="subscriptions in all")
    p.add_argument("--conns", type=int, default=1_000, help="subscriber connections")
    p.add_argument("--procs", type=int, default=2, help="client processes for the subscribers")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--round-timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the last delivery of a round",
    )
    p.add_argument("--pause", type=float, default=0.2, help="seconds between rounds")
    args = p.parse_args()
    result = header("fanout", args)

    def run(name: str) -> dict[str, Any]:
        with workdir(name) as wd, launcher(name, wd) as relay:
            out = asyncio.run(
                fanout(
                    relay,
                    args.subs,
                    args.conns,
                    args.procs,
                    args.rounds,
                    args.warmup,
                    args.round_timeout,
                    args.pause,
                )
            )
            return {"notes": relay.notes, **out}

    for_each_relay(args, result, run)
    emit(result, args.out)


if __name__ == "__main__":
    main()
