"""Queries: REQs per second and REQ latency, each REQ returning 50 events.

Each relay is filled over websockets with ``--events`` notes by ``--authors``
keys (100 each by default), then C connections each send
``{"authors":[a],"kinds":[1],"limit":50}`` for random authors, one REQ at a time:
REQ, wait for EOSE, CLOSE, next REQ. Latency is REQ sent to EOSE received.

``python -m bench.queries [--events 20000] [--authors 200] [--conns 1,8,32]``
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from typing import Any

from bench.events import ensure_dataset, pubkeys
from bench.ingest import publish_shares, summarize_publish
from bench.loadgen import cpu_and_wall, percentiles, run_job, split
from bench.relays import RelayProcess, cpu_split, launcher
from bench.report import emit, for_each_relay, header, int_list, parser, workdir

QUICKACK_HELP = (
    "diagnosis only: the client ACKs every TCP segment at once, hiding the ~40 ms "
    "delayed-ACK stall of relays that write without TCP_NODELAY"
)


def fill(relay: RelayProcess, dataset: Path, events: int, seconds: float) -> dict[str, Any]:
    """Publish a data set over websockets (8 connections, 16 in flight each)."""
    shares = publish_shares("127.0.0.1", relay.port, dataset, events, 8, 16, seconds, 1)
    return summarize_publish(run_job("publish", shares, seconds + 120, relay.usage, quiet=False))


def query_run(
    relay: RelayProcess,
    authors: list[str],
    conns: int,
    reqs: int,
    limit: int,
    seconds: float,
    procs: int,
    seed: int,
    quickack: bool = False,
) -> dict[str, Any]:
    """C connections doing REQ -> EOSE -> CLOSE loops; throughput and latency."""
    per_conn = -(-reqs // conns)
    shares = [
        {
            "host": "127.0.0.1",
            "port": relay.port,
            "conns": c1 - c0,
            "authors": authors,
            "reqs_per_conn": per_conn,
            "limit": limit,
            "seed": seed * 100 + k,
            "seconds": seconds,
            "quickack": quickack,
        }
        for k, (c0, c1) in enumerate(split(conns, procs))
    ]
    job = run_job("query", shares, seconds + 120, relay.usage)
    results, before, after = job.results, job.before, job.after
    client_cpu, wall = cpu_and_wall(results)
    completed = sum(r["completed"] for r in results)
    events = sum(r["events"] for r in results)
    return {
        "connections": conns,
        "completed": completed,
        "failed": sum(r["failed"] for r in results),
        "notices": sum(r["notices"] for r in results),
        "samples": [s for r in results for s in r["samples"]][:3],
        "connections_dropped_by_relay": sum(len(r["dropped_by_relay"]) for r in results),
        "drop_reasons": sorted({d for r in results for d in r["dropped_by_relay"]})[:3],
        "events_per_req": round(events / completed, 2) if completed else 0.0,
        "wall_s": round(wall, 3),
        "reqs_per_s": round(completed / wall, 1) if wall else 0.0,
        "latency": percentiles([x for r in results for x in r["latencies_ns"]]),
        **cpu_split(before, after, client_cpu),
        "relay_rss_mb": round(after.rss_bytes / 2**20, 1),
        "relay_rss_file_mb": round(after.rss_file_bytes / 2**20, 1),
        **job.quiet,
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--events", type=int, default=20_000, help="events stored before querying")
    p.add_argument("--authors", type=int, default=200)
    p.add_argument(
        "--conns", type=int_list, default=[1, 8, 32], help="query connections, comma-separated"
    )
    p.add_argument("--reqs", type=int, default=20_000, help="REQs per configuration")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--seconds", type=float, default=20.0, help="time bound per configuration")
    p.add_argument(
        "--fill-seconds", type=float, default=120.0, help="time bound for filling a relay"
    )
    p.add_argument("--procs", type=int, default=1, help="client processes")
    p.add_argument("--client-quickack", action="store_true", help=QUICKACK_HELP)
    args = p.parse_args()
    dataset = ensure_dataset("queries", args.events, args.authors)
    authors = pubkeys("queries", args.authors)
    result = header("queries", args)

    def run(name: str) -> dict[str, Any]:
        with workdir(name) as wd, launcher(name, wd) as relay:
            filled = fill(relay, dataset, args.events, args.fill_seconds)
            runs = [
                query_run(
                    relay,
                    authors,
                    c,
                    args.reqs,
                    args.limit,
                    args.seconds,
                    args.procs,
                    seed=c,
                    quickack=args.client_quickack,
                )
                for c in args.conns
            ]
            return {"notes": relay.notes, "fill": filled, "runs": runs}

    for_each_relay(args, result, run)
    emit(result, args.out)


if __name__ == "__main__":
    main()
