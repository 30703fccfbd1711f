"""Three Timmy nodes federated through a third-party relay (``nostr-relay`` 1.14 from PyPI).

Each node has its own relay (its audit log) and two agents serving kind 5001
at different prices; all three share the nostr-relay. A customer talks only
to the shared relay.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import time

import pytest

from dvm.client import Awarder, JobSpec, audit_job, build_request, fetch_job
from nips import auction
from nips.nip01 import Signer
from nips.nip90 import parse_request
from node.config import AgentConfig
from node.links import RelayLink
from tests.helpers import timmy

pytestmark = pytest.mark.interop

TEXT = "Federated nodes share work through relays. Each node keeps an audit log. Prices differ."
# (cheaper, dearer) ask of each node's two agents, in msat
PRICES = {"a": (500, 700), "b": (300, 900), "c": (400, 800)}


@pytest.fixture
def store_kind() -> str:
    """The nodes' own relays on SQLite, as `timmy run` has them (one store is enough here)."""
    return "sqlite"


@pytest.fixture
async def nodes(nostr_relay, start_engine_on):
    """Three engines: each on its own relay plus the shared nostr-relay."""
    engines = {}
    for name, (low, high) in PRICES.items():
        agents = [
            AgentConfig(f"{name}-low", kinds=(5001,), price_msat=low),
            AgentConfig(f"{name}-high", kinds=(5001,), price_msat=high),
        ]
        engines[name] = await start_engine_on(agents, nostr_relay)
    return engines


@pytest.fixture
async def start_engine_on(start_relay, tmp_path):
    """Start an engine whose home relay is a fresh relay of ours, federated with ``shared``."""
    from dvm.agents import build_agents
    from dvm.engine import Engine
    from dvm.handlers import discover
    from dvm.store import JobStore
    from node.config import EngineSettings
    from node.links import RelayPool

    running = []

    async def start(agents, shared):
        home = await start_relay()
        store = JobStore(tmp_path / f"node{len(running)}.sqlite3")
        await store.open()
        pool = RelayPool([home.url, shared], min_backoff=0.05)
        await pool.start()
        assert await pool.wait_connected(10)
        signers = {a.name: Signer(os.urandom(32)) for a in agents}
        engine = Engine(
            build_agents(agents, signers, discover()), store, pool,
            settings=EngineSettings(), home_relay=home.url,
            node_pubkey=Signer(os.urandom(32)).pubkey, federation_relays=[shared],
        )
        await engine.start()
        running.append((engine, pool, store))
        return engine

    yield start
    for engine, pool, store in reversed(running):
        await engine.stop()
        await pool.stop()
        await store.close()


@pytest.fixture
async def shared_link(nostr_relay):
    link = RelayLink(nostr_relay, min_backoff=0.05)
    await link.start()
    assert await link.wait_connected(10)
    yield link
    await link.stop()


async def _collect(link, request_id, seconds):
    await asyncio.sleep(seconds)
    return await link.query([{"#e": [request_id], "kinds": [7000, 6001]}])


async def test_an_open_job_is_answered_by_at_most_one_agent_per_node(nodes, shared_link):
    customer = Signer(os.urandom(32))
    request = build_request(JobSpec(5001, [(TEXT, "text")]), customer, int(time.time()))
    assert (await shared_link.publish(request))[0]
    answers = await _collect(shared_link, request.id, 2.0)
    responders = {e.pubkey for e in answers}
    for name, engine in nodes.items():
        mine = responders & {a.pubkey for a in engine.agents}
        assert len(mine) == 1, f"node {name}: {len(mine)} agents answered"
        cheapest = min(engine.agents, key=lambda a: a.config.price_msat)
        assert mine == {cheapest.pubkey}
        # Each node asks the second price of its own local auction.
        feedback = next(e for e in answers if e.pubkey == cheapest.pubkey)
        assert feedback.first_tag_value("amount") == str(PRICES[name][1])


async def test_federated_auction_awards_the_lowest_bidder_at_the_second_price(
    nodes, shared_link, nostr_relay
):
    customer = Signer(os.urandom(32))
    spec = JobSpec(5001, [(TEXT, "text")], bid_msat=1000, auction_seconds=(2, 1))
    request = build_request(spec, customer, int(time.time()))
    terms = auction.auction_terms(parse_request(request))
    awarder = Awarder(shared_link, customer, request)
    shared_link.subscribe(
        "bids", [{"kinds": [7010, 7011], "#e": [request.id]}], lambda e, _: awarder.seen(e)
    )
    assert (await shared_link.publish(request))[0]
    awarder.start()
    # A rogue bidder: a commitment it reveals with another amount (forged), and a
    # commitment made after commit_until (late). Both bid far below everyone.
    rogue = Signer(os.urandom(32))
    nonce = secrets.token_hex(32)
    forged = rogue.sign(7010, "", auction.commit_tags(terms, rogue.pubkey, 10, nonce), created_at=int(time.time()))
    assert (await shared_link.publish(forged))[0]
    await asyncio.sleep(terms.commit_until + 1 - time.time())
    late_nonce = secrets.token_hex(32)
    late_signer = Signer(os.urandom(32))
    late = late_signer.sign(
        7010, "", auction.commit_tags(terms, late_signer.pubkey, 1, late_nonce), created_at=terms.commit_until + 1
    )
    for event in (
        late,
        rogue.sign(7011, "", auction.reveal_tags(terms, forged.id, 5, nonce), created_at=terms.commit_until + 1),
        late_signer.sign(7011, "", auction.reveal_tags(terms, late.id, 1, late_nonce), created_at=terms.commit_until + 1),
    ):
        assert (await shared_link.publish(event))[0]
    async with asyncio.timeout(10):
        while awarder.published_at is None:
            await asyncio.sleep(0.05)
    winner = next(a for a in nodes["b"].agents if a.config.price_msat == 300)
    claim = auction.parse_award(awarder.award)
    assert claim.winner == winner.pubkey
    assert claim.price_msat == 400  # node c's bid: the second lowest
    assert forged.id in claim.counted and late.id not in claim.counted
    # Exactly one agent per node bid; the winner goes on at the award price.
    bids = await shared_link.query([{"kinds": [7010], "#e": [request.id]}])
    node_bidders = {e.pubkey for e in bids} - {rogue.pubkey, late_signer.pubkey}
    assert node_bidders == {min(n.agents, key=lambda a: a.config.price_msat).pubkey for n in nodes.values()}
    answers = await _collect(shared_link, request.id, 1.0)
    assert [(e.pubkey, e.first_tag_value("status"), e.first_tag_value("amount")) for e in answers] == [
        (winner.pubkey, "payment-required", "400")
    ]
    # Anyone can check it from the relay log: in-process and with the CLI.
    found, events = await fetch_job(shared_link, request.id)
    verdict = audit_job(found, events)
    assert verdict["valid"], verdict
    assert (verdict["winner"], verdict["price_msat"]) == (winner.pubkey, 400)
    done = await asyncio.to_thread(
        subprocess.run, [*timmy(), "audit", request.id, "--relay", nostr_relay, "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    cli = json.loads(done.stdout)
    assert cli["valid"] and cli["winner"] == winner.pubkey and cli["price_msat"] == 400
    # Each node's own relay holds what its agents signed: the audit log.
    home = nodes["b"].pool.links[nodes["b"].home_relay]
    logged = await home.query([{"authors": [winner.pubkey], "kinds": [7010, 7011, 7000]}])
    assert {e.kind for e in logged} == {7010, 7011, 7000}


async def test_audit_flags_a_wrong_award(nodes, shared_link):
    customer = Signer(os.urandom(32))
    spec = JobSpec(5001, [(TEXT, "text")], bid_msat=1000, auction_seconds=(1, 1))
    request = build_request(spec, customer, int(time.time()))
    terms = auction.auction_terms(parse_request(request))
    assert (await shared_link.publish(request))[0]
    await asyncio.sleep(terms.reveal_until + 1 - time.time())
    log = await shared_link.query([{"kinds": [7010, 7011], "#e": [request.id]}])
    honest = auction.decide(terms, log)
    other = next(c for c in log if c.kind == 7010 and c.pubkey != honest.winner.bidder)
    wrong = auction.Award(honest.counted, auction.Bid(other.pubkey, 0, other.id), honest.price_msat)
    award = customer.sign(7012, "", auction.award_tags(terms, wrong), created_at=int(time.time()))
    assert (await shared_link.publish(award))[0]
    found, events = await fetch_job(shared_link, request.id)
    verdict = audit_job(found, events)
    assert not verdict["valid"] and verdict["problems"]
