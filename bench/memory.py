"""Memory: relay RSS with a large store open and 1,000 idle subscribed connections.

The relay is started on the large store (see ``bench.large_store``; our 1M-event
SQLite file by default), then ``--conns`` connections each open one
subscription ``{"authors":[a],"kinds":[1],"limit":10}`` (a different author each),
receive its stored events and EOSE, and stay idle. RSS is read with psutil,
summed over the relay process and its children, before the connections, and
after them plus ``--settle`` seconds; also split into private and file-backed
pages (an mmap'ed database counts as file pages), and as PSS, which does not
count pages shared by a parent and its forked worker twice.

``python -m bench.memory [--size 1000000] [--conns 1000]``
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import time
from typing import Any

import orjson

from bench.large_store import add_store_size_args, relay_with_large_store
from bench.loadgen import ClientPool, split
from bench.relays import Usage
from bench.report import emit, for_each_relay, header, parser, workdir


def mb(n: int) -> float:
    return round(n / 2**20, 1)


def usage_dict(u: Usage) -> dict[str, float]:
    return {
        "rss_mb": mb(u.rss_bytes),
        "rss_anon_mb": mb(u.rss_anon_bytes),
        "rss_file_mb": mb(u.rss_file_bytes),
        "pss_mb": mb(u.pss_bytes),
        "peak_rss_mb": mb(u.peak_rss_bytes),
    }


def main() -> None:
    p = parser(__doc__)
    add_store_size_args(p)
    p.add_argument("--conns", type=int, default=1_000)
    p.add_argument("--procs", type=int, default=2, help="client processes holding the connections")
    p.add_argument("--settle", type=float, default=3.0)
    args = p.parse_args()
    result = header("memory", args)

    def run(name: str) -> dict[str, Any]:
        size = args.size if name == "timmy" else (args.other_size or args.size)
        with (
            workdir(name) as wd,
            relay_with_large_store(name, wd, size, args.fill_seconds) as (relay, info, authors),
        ):
            time.sleep(args.settle)
            idle = relay.usage()
            filters = [
                orjson.dumps({"authors": [a], "kinds": [1], "limit": 10}).decode() for a in authors
            ]
            shares = []
            for c0, c1 in split(args.conns, args.procs):
                # rotate so that each client process's connections ask for different authors
                shares.append(
                    {
                        "host": "127.0.0.1",
                        "port": relay.port,
                        "conns": c1 - c0,
                        "subs_per_conn": 1,
                        "filters": filters[c0:] + filters[:c0],
                        "round_timeout": 1.0,
                    }
                )
            with ClientPool("subscribe", shares) as pool:
                ready = pool.expect("ready", 300)
                time.sleep(args.settle)
                loaded = relay.usage()
                pool.broadcast("go")
                pool.broadcast("stop")
                results = pool.expect("result", 60)
            return {
                "notes": relay.notes,
                "store": info,
                "subscriptions": sum(r["subscriptions"] for r in ready),
                "connections_dropped_by_relay": sum(len(r["dropped_by_relay"]) for r in results),
                "before_connections": usage_dict(idle),
                "with_connections": usage_dict(loaded),
                # Private memory only: file pages of a mmap'ed database are page cache.
                "private_kb_per_connection": round(
                    (loaded.rss_anon_bytes - idle.rss_anon_bytes) / 1024 / max(1, args.conns), 1
                ),
            }

    for_each_relay(args, result, run)
    emit(result, args.out)


if __name__ == "__main__":
    main()
