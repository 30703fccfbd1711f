"""Hiring an agent of another node from this node's hire page, in Chromium.

Two real nodes, "near" and "far", federate over a third-party relay
(``nostr-relay`` from PyPI, as in ``tests/interop/test_federation.py``); each
has its own relay, wallet and data directory. The customer opens near's
``/hire``, which lists far's agents from their NIP-89 announcements on the
shared relay; the page signs the request and sends it to the relay far's
announcement names, and follows the job there.

far's invoice is far's wallet's: near's dev wallet cannot settle it, so the
page offers no dev-wallet button for it and says how it gets paid. Here far's
dev wallet settles it as ``timmy pay`` would (another ``DevWallet`` on far's
wallet file, noticed by the running node), and the result and the rating go
over far's relay.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from playwright.async_api import Page, expect

from node.app import DEV_WALLET_DB
from node.links import RelayLink
from node.wallet import PaymentFailed
from node.wallet.dev import DevWallet
from tests.web.chromium import shot, signed_in
from tests.web.conftest import new_identities

if TYPE_CHECKING:
    from nostr_sdk import Keys

    from tests.web.conftest import StartNode

pytestmark = pytest.mark.interop

TEXT = (
    "Lightning payments settle in seconds because they move along channels that are already open. "
    "Each hop forwards the payment only when it can claim the same amount from the next one. "
    "The receiver reveals a preimage, and that secret unlocks every hop back to the sender."
)
SUMMARY = "Each hop forwards the payment"
PAY_DEV = "Pay with the dev wallet (not real money)"


@pytest.fixture
def far_keys() -> dict[str, Keys]:
    return new_identities()


@pytest.fixture
async def federation(
    start_node: StartNode, nostr_relay: str, far_keys
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(near, far): two nodes federated over the shared nostr-relay."""
    federate = f'[federation]\nrelays = ["{nostr_relay}"]\n'
    near = await start_node(federate, name="near")
    far = await start_node(federate, name="far", keys=far_keys)
    return near, far


async def _open_hire_page_listing(page: Page, url: str, choice: str) -> None:
    """near's /hire, once far's announcement has reached it through the shared relay."""
    for _ in range(50):
        await page.goto(url + "/hire")
        if await page.locator(f'#capability option[value="{choice}"]').count():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{choice} never appeared on {url}/hire")


async def test_hiring_an_agent_of_another_node_paid_to_that_nodes_wallet(
    federation, far_keys, browser, tmp_path
):
    near, far = federation
    agent = far_keys["agent-summarizer"].public_key().to_hex()
    far_relay = far["relay"].url
    choice = f"{agent[:16]}:5001"
    url = near["web"].url

    context, page, _ = await signed_in(browser, url)
    await _open_hire_page_listing(page, url, choice)
    option = page.locator(f'#capability option[value="{choice}"]')
    await expect(option).to_have_attribute("data-relay", far_relay)
    await expect(option).to_contain_text(
        "summarizer: Summarizes text and notes. (kind 5001), 21 sats per job + 1 sat per started KiB of input,"
        " on another node"
    )
    await page.get_by_label("Capability").select_option(choice)
    await page.get_by_label("Input text").fill(TEXT)
    await page.get_by_label("Most you will pay (sats)").fill("100")
    await page.get_by_role("button", name="Hire").click()
    await expect(page.locator("#hire-message")).to_contain_text("published to summarizer")
    card = page.locator("article.job-card").first
    job_id = await card.get_attribute("data-job-id")
    assert job_id

    await expect(card.locator(".job-where")).to_have_text(
        f"This agent runs on another node; the job's events are on {far_relay}."
    )
    assert await card.get_by_role("link", name="See the job on this node").count() == 0
    await expect(card.get_by_role("list", name="Updates")).to_contain_text(
        "payment-required: 22 sats"
    )
    bolt11 = (await card.locator(".invoice").text_content() or "").strip()
    assert bolt11.startswith("lnbcrt")
    await expect(card.get_by_role("img", name="QR code of the invoice")).to_be_visible()
    await expect(card.get_by_role("button", name=PAY_DEV)).to_be_hidden()
    await expect(card.locator(".pay-elsewhere")).to_contain_text(
        "pay it with your own Lightning wallet"
    )
    await expect(card.locator(".pay-regtest")).to_contain_text("timmy pay")
    await shot(page, "remote-payment-required")

    # near's dev wallet really cannot pay it: the button would have been a lie.
    with pytest.raises(PaymentFailed, match="only pay invoices it issued itself"):
        await near["wallet"].wallet.pay(bolt11)
    # far's wallet can: a second handle on far's wallet file, as `timmy pay` opens it.
    payer = DevWallet(
        tmp_path / "far" / DEV_WALLET_DB, bytes.fromhex(far_keys["node"].secret_key().to_hex())
    )
    payer.open()
    try:
        payment = await payer.pay(bolt11)
    finally:
        payer.close()
    assert payment.amount_msat == 22_000
    assert await far["wallet"].wallet.lookup(payment.payment_hash) is not None
    assert await near["wallet"].wallet.lookup(payment.payment_hash) is None

    await expect(card.locator(".result-content")).to_contain_text(SUMMARY, timeout=20_000)
    await expect(card.locator(".job-state")).to_have_text("result received")
    await card.get_by_role("button", name="Good service").click()
    await expect(card.locator(".rating-status")).to_have_text("Rated")
    await shot(page, "remote-rated")
    await context.close()

    link = RelayLink(far_relay)
    await link.start()
    try:
        results = await link.query([{"kinds": [6001], "#e": [job_id], "authors": [agent]}])
        labels = await link.query([{"kinds": [1985], "#p": [agent], "#L": ["ai.wot"]}])
    finally:
        await link.stop()
    assert len(results) == 1 and SUMMARY in results[0].content
    assert [t[1] for t in labels[0].tags if t[0] == "e"] == [results[0].id]
