"""Federated auctions between engines on one relay, from the bidders' side."""

from __future__ import annotations

import asyncio
import time

from dvm.client import JobSpec, audit_job, build_request, fetch_job
from nips import auction
from node.config import AgentConfig

from .conftest import TEXT, Customer, status, wait_state


async def test_without_an_award_from_the_customer_the_winner_awards_and_goes_on(
    relay, start_engine, customer: Customer
):
    """DESIGN.md section 5: the award is by the customer 'or the node acting for it'."""
    low = await start_engine([AgentConfig("low", kinds=(5001,), price_msat=100)], [relay.url])
    high = await start_engine([AgentConfig("high", kinds=(5001,), price_msat=300)], [relay.url])
    spec = JobSpec(5001, [(TEXT, "text")], bid_msat=1000, auction_seconds=(1, 1))
    request = build_request(spec, customer.signer, int(time.time()))
    assert (await customer.link.publish(request))[0]
    # The customer never awards. After reveal_until + the grace, the winner does.
    answers = await customer.answers(
        request.id, lambda seen: any(status(e) == "payment-required" for e in seen), timeout=15
    )
    winner = low.agents[0]
    charge = next(e for e in answers if status(e) == "payment-required")
    assert charge.pubkey == winner.pubkey and charge.first_tag_value("amount") == "300"
    awards = await customer.link.query([{"kinds": [auction.AWARD_KIND], "#e": [request.id]}])
    assert [a.pubkey for a in awards] == [winner.pubkey]
    await wait_state(high, request.id, "declined")
    found, events = await fetch_job(customer.link, request.id)
    verdict = audit_job(found, events)
    # Valid but for who signed it: the audit says so.
    assert verdict["winner"] == winner.pubkey and verdict["price_msat"] == 300
    assert verdict["problems"] == ["award not signed by the customer"]


async def test_a_request_whose_commit_window_has_closed_gets_no_bid(relay, start_engine, customer):
    engine = await start_engine([AgentConfig("a", kinds=(5001,))], [relay.url])
    now = int(time.time())
    request = await customer.request(
        5001,
        [["i", TEXT, "text"], ["param", "auction", "vickrey"], ["param", "commit_until", str(now - 5)],
         ["param", "reveal_until", str(now + 5)]],
    )
    await wait_state(engine, request.id, "declined")
    await asyncio.sleep(0.2)
    assert not await customer.link.query([{"kinds": [auction.COMMIT_KIND], "#e": [request.id]}])


async def test_malformed_auction_terms_get_an_error(relay, start_engine, customer):
    await start_engine([AgentConfig("a", kinds=(5001,))], [relay.url])
    now = int(time.time())
    request = await customer.request(
        5001,
        [["i", TEXT, "text"], ["param", "auction", "vickrey"], ["param", "commit_until", str(now + 9)],
         ["param", "reveal_until", str(now + 5)]],
    )
    _, final = await customer.result(request.id)
    assert status(final) == "error" and "commit_until" in final.tags[0][2]
