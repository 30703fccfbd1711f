"""Ingest: accepted events per second from N concurrent publishers.

Each publisher connection either sends an EVENT and waits for its OK before the
next (window 1) or keeps up to 16 in flight (window 16). Events are pre-signed,
valid kind-1 notes by many keys; only ``OK true`` counts. Every configuration
starts a fresh relay with an empty database and sends the same events, stopping
after ``--events`` or ``--seconds``, whichever comes first.

``python -m bench.ingest [--events 20000] [--conns 1,8,32] [--windows 1,16]``
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncio
from typing import Any

import orjson

from bench import wsclient
from bench.events import ensure_dataset, iter_events
from bench.loadgen import JobRun, cpu_and_wall, event_frame, run_job, split
from bench.relays import cpu_split, launcher
from bench.report import emit, for_each_relay, header, int_list, parser, workdir
from bench.wsclient import Connection, message_type


def publish_shares(
    host: str,
    port: int,
    dataset: Path,
    events: int,
    conns: int,
    window: int,
    seconds: float,
    procs: int,
) -> list[dict[str, Any]]:
    """Split ``conns`` connections over client processes, each connection with its own slice of events."""
    shares = []
    for c0, c1 in split(conns, procs):
        shares.append(
            {
                "host": host,
                "port": port,
                "dataset": str(dataset),
                "start": events * c0 // conns,
                "stop": events * c1 // conns,
                "conns": c1 - c0,
                "window": window,
                "seconds": seconds,
            }
        )
    return shares


def summarize_publish(run: JobRun) -> dict[str, Any]:
    results, before, after = run.results, run.before, run.after
    client_cpu, wall = cpu_and_wall(results)
    accepted = sum(r["accepted"] for r in results)
    reasons: dict[str, int] = {}
    for r in results:
        for k, v in r["reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    return {
        "sent": sum(r["sent"] for r in results),
        "accepted": accepted,
        "rejected": sum(r["rejected"] for r in results),
        "unanswered": sum(r["unanswered"] for r in results),
        "notices": sum(r["notices"] for r in results),
        "reject_reasons": reasons,
        "samples": [s for r in results for s in r["samples"]][:3],
        "connections_dropped_by_relay": sum(len(r["dropped_by_relay"]) for r in results),
        "drop_reasons": sorted({d for r in results for d in r["dropped_by_relay"]})[:3],
        "wall_s": round(wall, 3),
        "events_per_s": round(accepted / wall, 1) if wall else 0.0,
        **cpu_split(before, after, client_cpu),
        "relay_rss_mb": round(after.rss_bytes / 2**20, 1),
        **run.quiet,
    }


def bad_signature(raw: bytes) -> bytes:
    """The same event with one bit of its signature flipped."""
    event = orjson.loads(raw)
    sig = bytearray(bytes.fromhex(event["sig"]))
    sig[-1] ^= 1
    event["sig"] = sig.hex()
    return orjson.dumps(event)


async def _publish_one(port: int, raw: bytes) -> list[Any]:
    class One(Connection):
        def on_message(self, payload: bytes) -> None:
            if message_type(payload) == b"OK" and not answer.done():
                answer.set_result(orjson.loads(payload))

    answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
    conn = await wsclient.connect(One, "127.0.0.1", port)
    try:
        conn.send(event_frame(raw))
        return await asyncio.wait_for(answer, 10)
    finally:
        conn.close()


def signature_check(name: str, raw: bytes) -> dict[str, Any]:
    """Does the relay refuse a bad signature? (So the rates below include verification.)"""
    with workdir(name) as wd, launcher(name, wd) as relay:
        ok = asyncio.run(_publish_one(relay.port, bad_signature(raw)))
    return {"bad_signature_rejected": ok[2] is False, "answer": ok}


def main() -> None:
    p = parser(__doc__)
    p.add_argument(
        "--events", type=int, default=20_000, help="events per configuration (default 20000)"
    )
    p.add_argument("--authors", type=int, default=1_000)
    p.add_argument(
        "--conns", type=int_list, default=[1, 8, 32], help="publisher connections, comma-separated"
    )
    p.add_argument(
        "--windows", type=int_list, default=[1, 16], help="EVENTs in flight per connection"
    )
    p.add_argument("--seconds", type=float, default=30.0, help="time bound per configuration")
    p.add_argument("--procs", type=int, default=1, help="client processes")
    args = p.parse_args()
    dataset = ensure_dataset("ingest", args.events, args.authors)
    result = header("ingest", args)

    def run(name: str) -> dict[str, Any]:
        runs = []
        notes = ""
        for window in args.windows:
            for conns in args.conns:
                with workdir(name) as wd, launcher(name, wd) as relay:
                    notes = relay.notes
                    shares = publish_shares(
                        "127.0.0.1",
                        relay.port,
                        dataset,
                        args.events,
                        conns,
                        window,
                        args.seconds,
                        args.procs,
                    )
                    job = run_job("publish", shares, args.seconds + 120, relay.usage)
                runs.append({"connections": conns, "window": window, **summarize_publish(job)})
        check = signature_check(name, next(iter_events(dataset, 1)))
        return {"notes": notes, "signature_check": check, "runs": runs}

    for_each_relay(args, result, run)
    emit(result, args.out)


if __name__ == "__main__":
    main()
