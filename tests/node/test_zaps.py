"""NIP-57 zaps through the whole node: LNURL over real HTTP, dev wallet, receipts on the relay."""

from __future__ import annotations

import asyncio
import os
import time

import bolt11
import httpx
import orjson
import pytest
from nostr_sdk import Keys

from nips import nip57
from nips.nip01 import Signer
from node.config import loads
from node.links import RelayLink
from tests.helpers import node_in_process

PRICE = 5_000
CONFIG = f"""
[relay]
port = 0
[web]
port = 0
[[agents]]
name = "seller"
kinds = [5001]
price_msat = {PRICE}
"""
TEXT = "Zaps pay agents. A zap on a job request pays for the job. Receipts land on relays."


@pytest.fixture
async def node(tmp_path):
    identities = {"node": Keys.generate(), "agent-seller": Keys.generate()}
    async with node_in_process(loads(CONFIG), tmp_path, identities) as parts:
        yield parts


@pytest.fixture
async def customer(node):
    link = RelayLink(node["relay"].url)
    await link.start()
    assert await link.wait_connected(5)
    yield Signer(os.urandom(32)), link
    await link.stop()


def _zap_request(signer: Signer, agent: str, relay: str, amount: int, target: str | None = None) -> str:
    tags = [["p", agent], ["relays", relay], ["amount", str(amount)]]
    if target:
        tags.append(["e", target])
    return signer.sign(nip57.ZAP_REQUEST_KIND, "for the work", tags, created_at=int(time.time())).raw


async def test_lnurl_pay_request_allows_nostr(node):
    web, engine = node["web"], node["engine"].engine
    async with httpx.AsyncClient() as http:
        answer = (await http.get(f"{web.url}/.well-known/lnurlp/seller")).json()
        missing = await http.get(f"{web.url}/.well-known/lnurlp/nobody")
    assert answer["tag"] == "payRequest" and answer["allowsNostr"] is True
    assert answer["nostrPubkey"] == node["web"].node_signer.pubkey
    assert answer["callback"].endswith("/lnurlp/seller/callback")
    assert missing.status_code == 404 and missing.json()["status"] == "ERROR"
    # The agent's profile carries the matching lud16.
    await asyncio.sleep(0.3)
    agent = engine.agents[0]
    link = RelayLink(node["relay"].url)
    await link.start()
    profile = (await link.query([{"kinds": [0], "authors": [agent.pubkey]}]))[0]
    await link.stop()
    body = orjson.loads(profile.content)
    assert body["lud16"].startswith("seller@127.0.0.1:")
    assert body["nip05"] == body["lud16"]  # the same name@host serves NIP-05 and LNURL


async def test_a_zap_on_a_job_request_pays_for_it_and_leaves_a_valid_receipt(node, customer):
    signer, link = customer
    web, engine = node["web"], node["engine"].engine
    agent = engine.agents[0]
    request = signer.sign(5001, "", [["i", TEXT, "text"]], created_at=int(time.time()))
    assert (await link.publish(request))[0]
    for _ in range(100):
        if await link.query([{"kinds": [7000], "#e": [request.id]}]):
            break
        await asyncio.sleep(0.05)
    zap = _zap_request(signer, agent.pubkey, node["relay"].url, PRICE, target=request.id)
    async with httpx.AsyncClient() as http:
        answer = (
            await http.get(f"{web.url}/lnurlp/seller/callback", params={"amount": PRICE, "nostr": zap})
        ).json()
    invoice = bolt11.decode(answer["pr"])
    assert invoice.amount_msat == PRICE
    assert invoice.description_hash == nip57.description_hash(zap).hex()
    await node["wallet"].wallet.pay(answer["pr"])
    result = receipt = None
    for _ in range(100):
        results = await link.query([{"kinds": [6001], "#e": [request.id]}])
        receipts = await link.query([{"kinds": [9735], "#e": [request.id]}])
        if results and receipts:
            result, receipt = results[0], receipts[0]
            break
        await asyncio.sleep(0.05)
    assert result is not None, "the zap paid for the job"
    checked = nip57.validate_zap_receipt(receipt, nostr_pubkey=web.node_signer.pubkey)
    assert checked.amount_msat == PRICE and checked.sender == signer.pubkey
    assert checked.zapped_event == request.id
    ledger = await node["engine"].store.ledger()
    assert ledger["seller"]["paid"] == PRICE
    # The same customer zaps again: no second run, and the money is owed back.
    again = _zap_request(signer, agent.pubkey, node["relay"].url, PRICE, target=request.id)
    async with httpx.AsyncClient() as http:
        second = (
            await http.get(f"{web.url}/lnurlp/seller/callback", params={"amount": PRICE, "nostr": again})
        ).json()
    await node["wallet"].wallet.pay(second["pr"])
    for _ in range(100):
        if len(await link.query([{"kinds": [9735], "#e": [request.id]}])) == 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert len(await link.query([{"kinds": [6001], "#e": [request.id]}])) == 1
    ledger = await node["engine"].store.ledger()
    assert ledger["seller"] == {"paid": PRICE, "refund_owed": PRICE, "pending": PRICE}  # + the unused quote
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{web.url}/metrics")).text
    assert f'dvm_paid_msat_total{{agent="seller"}} {float(PRICE)}' in metrics
    assert 'dvm_invoices_total{agent="seller"} 1.0' in metrics


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("amount", "amount"),
        ("two p", "p tag"),
        ("no relays", "relays"),
        ("wrong recipient", "p tag is not this endpoint"),
    ],
)
async def test_bad_zap_requests_are_refused_with_a_reason(node, customer, change, reason):
    signer, _ = customer
    web, agent = node["web"], node["engine"].engine.agents[0]
    tags = [["p", agent.pubkey], ["relays", "ws://127.0.0.1:1"], ["amount", str(PRICE)]]
    amount = PRICE
    if change == "amount":
        amount = PRICE + 1000
    elif change == "two p":
        tags.append(["p", "ab" * 32])
    elif change == "no relays":
        tags = [t for t in tags if t[0] != "relays"]
    elif change == "wrong recipient":
        tags[0] = ["p", "ab" * 32]
    zap = signer.sign(nip57.ZAP_REQUEST_KIND, "", tags, created_at=int(time.time())).raw
    async with httpx.AsyncClient() as http:
        reply = await http.get(f"{web.url}/lnurlp/seller/callback", params={"amount": amount, "nostr": zap})
    assert reply.status_code == 400
    assert reply.json()["status"] == "ERROR" and reason in reply.json()["reason"].lower()


async def test_health_and_metrics(node):
    async with httpx.AsyncClient() as http:
        health = (await http.get(f"{node['web'].url}/health")).json()
        metrics = (await http.get(f"{node['web'].url}/metrics")).text
    assert health == {"status": "ok"}
    assert "dvm_requests_total" in metrics and "relay_connections" in metrics
