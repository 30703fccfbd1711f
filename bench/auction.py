"""Federated auction overhead: 3 nodes x 5 agents, award time after the reveal window.

``python -m bench.auction [--auctions 5] [--shared timmy,nostr-relay]``

Starts a shared relay (ours as ``timmy relay``, and ``nostr-relay`` 1.14 for
comparison) and three ``timmy run`` nodes federated through it, each with
five agents serving kind 5001 at different prices. A customer on the shared
relay runs auctions one after another (commit window 2 s, reveal window 1 s)
and awards them itself (``dvm.client.Awarder``). For each auction:

* ``award_ms``: from the close of the reveal window (the end of the second
  ``reveal_until``: reveals created at ``reveal_until`` still count) to the
  shared relay's OK for the award;
* ``winner_ms``: from that OK to the winner's next step (its
  ``payment-required`` at the award price) arriving at the customer;
* ``bids``: commitments seen (one per node expected), and whether the award
  was the lowest ask at the second-lowest price.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from typing import Any

from bench.relays import NostrRelayPy, RelayProcess, TimmyRelay, free_port
from bench.report import emit, machine
from dvm.client import Awarder, JobSpec, build_request
from nips import auction
from nips.nip01 import Event, Signer
from node.config import default_toml
from node.links import RelayLink

PASSPHRASE = "bench passphrase"
NODES = 3
AGENTS = 5
NO_LIMITS = ("events_per_minute_per_ip", "events_per_minute_per_pubkey", "reqs_per_minute_per_ip")


def node_toml(index: int, shared: str) -> str:
    """Default config, rate limits off, five priced agents, federated over ``shared``."""
    text = default_toml()
    for key in NO_LIMITS:
        text = re.sub(rf"(?m)^{key}\s*=\s*\d+", f"{key} = 0", text)
    text = text[: text.index("[[agents]]")] + text[text.index("[logging]"):]
    text = text.replace("relays = []", f'relays = ["{shared}"]')
    text = text.replace('[web]\nhost = "127.0.0.1"\nport = 8080', '[web]\nhost = "127.0.0.1"\nport = 0')
    for n in range(AGENTS):
        # Node 0 is cheapest, then node 1...: asks 1000 + 100 * node + 10 * agent.
        text += f'\n[[agents]]\nname = "a{n}"\nkinds = [5001]\nprice_msat = {1000 + 100 * index + 10 * n}\n'
    return text


def start_nodes(workdir: Path, shared: str) -> list[subprocess.Popen[bytes]]:
    timmy = str(Path(sys.executable).with_name("timmy"))
    env = {**os.environ, "TIMMY_PASSPHRASE": PASSPHRASE}
    procs = []
    for i in range(NODES):
        data = workdir / f"node{i}"
        data.mkdir(parents=True)
        (data / "node.toml").write_text(node_toml(i, shared))
        subprocess.run([timmy, "init", "--data", str(data), "--log-n", "8"], env=env, check=True,
                       capture_output=True)
        log = (workdir / f"node{i}.log").open("wb")
        procs.append(subprocess.Popen(
            [timmy, "run", "--data", str(data), "--relay-port", str(free_port())],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        ))
    return procs


async def one_auction(link: RelayLink, customer: Signer) -> dict[str, Any]:
    spec = JobSpec(5001, [("Auctions settle who works. The lowest ask wins.", "text")],
                   bid_msat=5000, auction_seconds=(2, 1))
    request = build_request(spec, customer, int(time.time()))
    awarder = Awarder(link, customer, request)
    next_step: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_event(event: Event, relay: str) -> None:
        if event.kind in (auction.COMMIT_KIND, auction.REVEAL_KIND):
            awarder.seen(event)
        elif event.kind == 7000 and not next_step.done():
            next_step.set_result(time.time())

    sub = f"a-{request.id[:8]}"
    link.subscribe(sub, [{"kinds": [7000, 7010, 7011], "#e": [request.id]}], on_event)
    try:
        await link.publish(request)
        awarder.start()
        async with asyncio.timeout(15):
            while awarder.published_at is None:
                await asyncio.sleep(0.005)
            reacted = await next_step
    finally:
        link.unsubscribe(sub)
        await awarder.stop()
    terms = awarder.terms
    assert awarder.award is not None and awarder.published_at is not None
    claim = auction.parse_award(awarder.award)
    commits = [e for e in awarder.events if e.kind == auction.COMMIT_KIND]
    return {
        "award_ms": round((awarder.published_at - (terms.reveal_until + 1)) * 1000, 1),
        "winner_ms": round((reacted - awarder.published_at) * 1000, 1),
        "bids": len(commits),
        "price_msat": claim.price_msat,
        "second_price": claim.price_msat == 1100,  # node 1's cheapest ask
        "rejected": [why for _, why in auction.decide(terms, awarder.events, received_at=awarder.received_at).rejected],
    }


async def run_shared(relay: RelayProcess, auctions: int, workdir: Path) -> dict[str, Any]:
    procs = start_nodes(workdir, relay.url)
    link = RelayLink(relay.url, min_backoff=0.05)
    try:
        await link.start()
        await link.wait_connected(30)
        await asyncio.sleep(3.0)  # nodes up and subscribed
        customer = Signer(os.urandom(32))
        rounds = [await one_auction(link, customer) for _ in range(auctions)]
    finally:
        await link.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    award = [r["award_ms"] for r in rounds]
    return {
        "rounds": rounds,
        "award_ms_median": statistics.median(award),
        "award_ms_max": max(award),
        "winner_ms_median": statistics.median(r["winner_ms"] for r in rounds),
        "all_correct": all(r["second_price"] and r["bids"] == NODES for r in rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--auctions", type=int, default=5)
    parser.add_argument("--shared", default="timmy,nostr-relay")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "auction", "machine": machine(), "nodes": NODES,
                              "agents_per_node": AGENTS, "shared": {}}
    kinds = {"timmy": TimmyRelay, "nostr-relay": NostrRelayPy}
    for name in args.shared.split(","):
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-auction-{name}-"))
        try:
            with kinds[name](workdir) as relay:
                result["shared"][name] = asyncio.run(run_shared(relay, args.auctions, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    emit(result, args.out)


if __name__ == "__main__":
    main()
