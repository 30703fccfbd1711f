"""Large store: author+kind REQ latency on a store of (up to) 1,000,000 events.

One connection sends ``{"authors":[a],"kinds":[1],"limit":50}`` for random
authors the store holds completely (100 notes each), one REQ at a time, and
times REQ to EOSE. A short warm-up is not counted. See ``bench.large_store`` for
how each relay is filled; the store size reached is part of the result.

``python -m bench.large_query [--size 1000000] [--other-size 1000000] [--fill-seconds 300]``
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from typing import Any

from bench.large_store import add_store_size_args, relay_with_large_store
from bench.queries import QUICKACK_HELP, query_run
from bench.report import emit, for_each_relay, header, parser, workdir


def main() -> None:
    p = parser(__doc__)
    add_store_size_args(p)
    # LocalRelay closes REQs with "rate-limited: too many queries" after ~1,200 on one connection.
    p.add_argument("--queries", type=int, default=1_000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument(
        "--seconds", type=float, default=60.0, help="time bound for the measured queries"
    )
    p.add_argument("--client-quickack", action="store_true", help=QUICKACK_HELP)
    args = p.parse_args()
    result = header("large_query", args)

    def run(name: str) -> dict[str, Any]:
        size = args.size if name == "timmy" else (args.other_size or args.size)
        with (
            workdir(name) as wd,
            relay_with_large_store(name, wd, size, args.fill_seconds) as (relay, info, authors),
        ):
            qa = args.client_quickack
            warm = query_run(relay, authors, 1, args.warmup, args.limit, args.seconds, 1, 1, qa)
            measured = query_run(
                relay, authors, 1, args.queries, args.limit, args.seconds, 1, 2, qa
            )
            return {
                "notes": relay.notes,
                "store": info,
                "authors_queried_from": len(authors),
                "warmup": {k: warm[k] for k in ("completed", "latency")},
                **measured,
            }

    for_each_relay(args, result, run)
    emit(result, args.out)


if __name__ == "__main__":
    main()
