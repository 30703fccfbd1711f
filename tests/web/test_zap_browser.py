"""Zapping an agent from its page (``web/templates/agent.html``, ``web/static/zap.js``).

Real Chromium with the NIP-07 shim against a real node, as ``test_hire.py``
does: the page's JavaScript reads the LNURL-pay document, signs the kind 9734
zap request, gets the invoice from the callback and pays it through
``/hire/pay``; the node then publishes a kind 9735 receipt to its relay.
"""

from __future__ import annotations

import asyncio

import httpx
from playwright.async_api import expect

from nips import nip57
from node.links import RelayLink
from tests.web.chromium import shot, signed_in


async def _receipts(relay_url: str, pubkey: str, *, wait: float = 5.0) -> list:
    link = RelayLink(relay_url)
    await link.start()
    try:
        for _ in range(int(wait * 10)):
            receipts = await link.query([{"kinds": [nip57.ZAP_RECEIPT_KIND], "#p": [pubkey]}])
            if receipts:
                return receipts
            await asyncio.sleep(0.1)
        return []
    finally:
        await link.stop()


async def test_logged_out_visitors_see_no_zap_form(node, browser):
    page = await browser.new_page()
    await page.goto(node["web"].url + "/agents/summarizer")
    await expect(page.get_by_role("heading", name="Lightning address (zaps)")).to_be_visible()
    assert await page.get_by_role("button", name="Zap summarizer").count() == 0
    await page.close()


async def test_zapping_an_agent_with_the_dev_wallet_publishes_a_valid_receipt(
    node,
    browser,
    identities,
):
    web = node["web"]
    url = web.url
    agent = identities["agent-summarizer"].public_key().to_hex()
    context, page, _ = await signed_in(browser, url)
    await page.goto(url + "/agents/summarizer")
    # The shim makes a fresh key on every page load: this page's key signs the zap.
    zapper = await page.evaluate("() => window.nostr.getPublicKey()")

    amount = page.get_by_label("Amount (sats)")
    await expect(amount).to_have_value("21")
    await page.get_by_role("button", name="Zap summarizer").click()
    await expect(page.locator("#zap-bolt11")).to_contain_text("lnbcrt")
    await shot(page, "zap-invoice")

    await page.get_by_role("button", name="Pay with the dev wallet (not real money)").click()
    await expect(page.get_by_role("status")).to_contain_text("Zapped 21 sats")
    await shot(page, "zap-paid")
    await context.close()

    receipts = await _receipts(web.context.relay_url, agent)
    assert len(receipts) == 1
    receipt = nip57.validate_zap_receipt(
        receipts[0], nostr_pubkey=web.node_signer.pubkey, expected_recipient=agent
    )
    assert receipt.amount_msat == 21_000
    assert receipt.request.event.pubkey == zapper
    assert [web.context.relay_url] == receipt.request.event.tag_values("relays")


async def test_a_bad_amount_is_refused_in_text(node, browser):
    url = node["web"].url
    context, page, _ = await signed_in(browser, url)
    await page.goto(url + "/agents/summarizer")
    await page.get_by_label("Amount (sats)").fill("0")
    await page.get_by_role("button", name="Zap summarizer").click()
    await expect(page.locator("#zap-status")).to_have_text(
        "The amount must be a whole number of sats, at least 1."
    )
    await page.get_by_label("Amount (sats)").fill("200000000")  # above maxSendable (1 BTC)
    await page.get_by_role("button", name="Zap summarizer").click()
    await expect(page.locator("#zap-status")).to_contain_text(
        "The amount must be between 1 sat and"
    )
    assert await page.locator("#zap-invoice").is_hidden()
    # The LNURL document the page reads is the node's own.
    async with httpx.AsyncClient(base_url=url) as client:
        lnurl = (await client.get("/.well-known/lnurlp/summarizer")).json()
    assert lnurl["allowsNostr"] is True
    assert lnurl["nostrPubkey"] == node["web"].node_signer.pubkey
    await context.close()
