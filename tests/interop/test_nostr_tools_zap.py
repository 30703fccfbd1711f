"""nostr-tools zaps the payment-required feedback of a Timmy agent; the zap pays for the job."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest
from nostr_sdk import Keys

from nips import nip57
from nips.nip01 import Signer, parse_event
from node.config import loads
from node.links import RelayLink
from tests.helpers import node_in_process

from .conftest import INTEROP_DIR

PRICE = 8_000


@pytest.fixture
async def node(tmp_path):
    config = loads(f'[relay]\nport = 0\n[web]\nport = 0\n[[agents]]\nname = "seller"\nkinds = [5001]\nprice_msat = {PRICE}\n')
    async with node_in_process(config, tmp_path, {"node": Keys.generate(), "agent-seller": Keys.generate()}) as parts:
        yield parts


async def test_nostr_tools_zap_pays_for_the_job(node_modules, node):
    relay_url, web = node["relay"].url, node["web"]
    customer = Signer(os.urandom(32))
    link = RelayLink(relay_url)
    await link.start()
    request = customer.sign(5001, "", [["i", "Zap to pay. Then the agent works.", "text"]], created_at=int(time.time()))
    assert (await link.publish(request))[0]
    # nostr-tools zaps an event's author: the customer zaps the agent's
    # payment-required feedback (NIP-90: "zap the event requesting the payment").
    for _ in range(100):
        quotes = await link.query([{"kinds": [7000], "#e": [request.id]}])
        if quotes:
            break
        await asyncio.sleep(0.05)
    quote = quotes[0]
    assert quote.first_tag_value("status") == "payment-required"
    proc = await asyncio.create_subprocess_exec(
        "node", str(INTEROP_DIR / "nostr_tools_zap.mjs"), web.url, relay_url, "seller", quote.raw, str(PRICE),
        cwd=INTEROP_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    if not line:
        pytest.fail(f"the nostr-tools script failed: {(await proc.stderr.read()).decode()}")
    first = json.loads(line)
    assert first["problem"] is None and first["pr"], first  # nostr-tools likes its own request; we answered
    await node["wallet"].wallet.pay(first["pr"])
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out)
    assert seen["verified"] and seen["signerIsNostrPubkey"] and seen["descriptionProblem"] is None
    receipt = nip57.validate_zap_receipt(parse_event(seen["receipt"]), nostr_pubkey=web.node_signer.pubkey)
    assert receipt.amount_msat == PRICE and receipt.sender == seen["sender"]
    for _ in range(100):
        if await link.query([{"kinds": [6001], "#e": [request.id]}]):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the zap did not pay for the job")
    await link.stop()
