"""Hiring an agent from the browser (``web/routes/hire.py``, ``web/static/hire.js``).

The browser tests drive Debian's Chromium with the NIP-07 shim, as
``test_browser.py`` does, against a real node: the page's own JavaScript
signs the job, talks to the node's relay, pays through ``/hire/pay`` and
publishes the rating. Each job gets a card of its own; the relay connection
comes back by itself after a real drop. Screenshots are kept as artifacts.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from nostr_sdk import Keys
from playwright.async_api import Locator, Page, expect

from node.links import RelayLink
from tests.web.chromium import shot, signed_in
from web import auth

if TYPE_CHECKING:
    from tests.web.conftest import StartNode

TEXT = (
    "Lightning payments settle in seconds because they move along channels that are already open. "
    "Each hop forwards the payment only when it can claim the same amount from the next one. "
    "The receiver reveals a preimage, and that secret unlocks every hop back to the sender."
)
SUMMARY = "Each hop forwards the payment"  # the extractive summarizer keeps this sentence
OTHER_TEXT = (
    "Relays store events and forward them to subscribers. "
    "Anyone can run a relay on a small computer at home. "
    "Clients publish to several relays so that no single one can silence them."
)
OTHER_SUMMARY = "Relays store events and forward them"  # the summary of OTHER_TEXT, in its own card
SUMMARIZER = 5001


@pytest.fixture
async def free_node(start_node: StartNode) -> dict[str, Any]:
    """A node whose agents all work for free (conftest's ``node`` prices them)."""
    return await start_node("", name="free-node", prices={})


async def _hire(page: Page, url: str, choice: str, text: str, bid_sats: str = "") -> Locator:
    """Fill in the form and send it; the new job's card (the newest comes first)."""
    await page.goto(url + "/hire")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Hire an agent")
    return await _hire_here(page, choice, text, bid_sats)


async def _hire_here(page: Page, choice: str, text: str, bid_sats: str = "") -> Locator:
    cards = page.locator("article.job-card")
    before = await cards.count()
    await page.get_by_label("Capability").select_option(choice)
    await page.get_by_label("Input text").fill(text)
    await page.get_by_label("Most you will pay (sats)").fill(bid_sats)
    await page.get_by_role("button", name="Hire").click()
    await expect(cards).to_have_count(before + 1)
    job_id = await cards.first.get_attribute("data-job-id")  # the newest: pin it down by its id
    card = page.locator(f'article.job-card[data-job-id="{job_id}"]')
    await expect(page.locator("#hire-message")).to_contain_text("published to")
    await expect(card.locator(".job-state")).not_to_have_text("publishing")
    return card


def _updates(card: Locator) -> Locator:
    return card.get_by_role("list", name="Updates")


PAY_DEV = "Pay with the dev wallet (not real money)"
JOB_LINK = re.compile(r"^/jobs/[0-9a-f]{64}$")


# --- in the browser --------------------------------------------------------------------


async def test_logged_out_visitors_are_asked_to_log_in(free_node, browser):
    page = await browser.new_page()
    await page.goto(free_node["web"].url + "/hire")
    await expect(page.get_by_role("link", name="Log in").last).to_be_visible()
    await expect(page.get_by_text("to hire an agent")).to_be_visible()
    assert await page.get_by_label("Input text").count() == 0


async def test_hiring_the_free_summarizer_shows_its_result_and_rating_publishes_a_label(
    free_node, browser, identities
):
    url = free_node["web"].url
    context, page, _ = await signed_in(browser, url)
    card = await _hire(page, url, "summarizer:5001", TEXT)
    await expect(card.get_by_role("link", name="See the job on this node")).to_have_attribute("href", JOB_LINK)
    await expect(_updates(card)).to_contain_text("processing")
    await expect(card.locator(".result-content")).to_contain_text(SUMMARY, timeout=15_000)
    await expect(card.locator(".job-state")).to_have_text("result received")
    await shot(page, "result")

    await card.get_by_role("button", name="Report a problem").click()
    await expect(card.locator(".rating-status")).to_have_text(
        "Say what went wrong before reporting a problem."
    )
    await expect(card.get_by_label("What went wrong")).to_be_focused()
    await card.get_by_role("button", name="Good service").click()
    await expect(card.get_by_role("status").filter(has_text="Rated")).to_be_visible()
    await shot(page, "rated")

    agent = identities["agent-summarizer"].public_key().to_hex()
    link = RelayLink(free_node["web"].context.relay_url)
    await link.start()
    try:
        labels = await link.query([{"kinds": [1985], "#p": [agent], "#L": ["ai.wot"]}])
        results = await link.query([{"kinds": [SUMMARIZER + 1000], "authors": [agent]}])
    finally:
        await link.stop()
    assert len(labels) == 1
    label = labels[0]
    assert ["l", "service-quality", "ai.wot"] in [list(t) for t in label.tags]
    assert [t[1] for t in label.tags if t[0] == "e"] == [results[0].id]
    await context.close()


async def test_two_jobs_on_one_page_each_get_their_own_result(free_node, browser):
    url = free_node["web"].url
    context, page, _ = await signed_in(browser, url)
    first = await _hire(page, url, "summarizer:5001", TEXT)
    second = await _hire_here(page, "summarizer:5001", OTHER_TEXT)
    assert await first.get_attribute("data-job-id") != await second.get_attribute("data-job-id")
    await expect(second.locator(".result-content")).to_contain_text(OTHER_SUMMARY, timeout=15_000)
    await expect(first.locator(".result-content")).to_contain_text(SUMMARY, timeout=15_000)
    await expect(first.locator(".result-content")).not_to_contain_text(OTHER_SUMMARY)
    await expect(second.locator(".result-content")).not_to_contain_text(SUMMARY)
    # Each card has its own rating controls, labelled for its own field.
    await first.get_by_role("button", name="Good service").click()
    await expect(first.locator(".rating-status")).to_have_text("Rated")
    await expect(second.locator(".rating-status")).to_have_text("")
    assert await page.get_by_label("What went wrong").count() == 2
    await shot(page, "two-results")
    await context.close()


async def test_hiring_a_priced_agent_is_paid_with_the_dev_wallet(node, browser):
    url = node["web"].url
    context, page, _ = await signed_in(browser, url)
    card = await _hire(page, url, "summarizer:5001", TEXT, bid_sats="100")
    await expect(_updates(card)).to_contain_text("payment-required: 22 sats")
    await expect(card.locator(".job-state")).to_have_text("payment required")
    await expect(card.locator(".invoice")).to_contain_text("lnbcrt")
    qr = card.get_by_role("img", name="QR code of the invoice")
    await expect(qr).to_be_visible()
    assert await qr.evaluate("img => img.naturalWidth") > 100
    await expect(card.locator(".pay-elsewhere")).to_be_hidden()  # this node's own invoice
    await shot(page, "payment-required")

    await card.get_by_role("button", name=PAY_DEV).click()
    await expect(card.locator(".payment-status")).to_contain_text("Paid 22 sats")
    await expect(card.locator(".result-content")).to_contain_text(SUMMARY, timeout=15_000)
    await shot(page, "paid-result")
    await context.close()


async def test_the_result_still_arrives_when_the_relay_drops_and_comes_back(node, browser):
    """The node's relay is stopped for real while a job waits; the page reconnects and catches up."""
    url = node["web"].url
    relay = node["relay"]
    port = int(relay.url.rsplit(":", 1)[1])
    context, page, _ = await signed_in(browser, url)
    card = await _hire(page, url, "summarizer:5001", TEXT, bid_sats="100")
    await expect(_updates(card)).to_contain_text("payment-required: 22 sats")

    await relay.stop()
    connection = card.locator(".job-connection")
    await expect(connection).to_contain_text("the connection dropped; trying again in")
    # Paid while the relay is down: the agent works, its news waits for the relay.
    await card.get_by_role("button", name=PAY_DEV).click()
    await expect(card.locator(".payment-status")).to_contain_text("Paid 22 sats")
    await expect(connection).to_contain_text("could not connect; trying again in")
    await shot(page, "relay-down")
    # Back where the page looks, on the same database. Its metrics are registered
    # already: an in-process restart would register them twice.
    relay.settings = dataclasses.replace(relay.settings, port=port)
    relay.registry = None
    await relay.start()

    await expect(connection).to_contain_text("reconnected", timeout=20_000)
    await expect(card.locator(".result-content")).to_contain_text(SUMMARY, timeout=20_000)
    await expect(_updates(card).get_by_text("payment-required")).to_have_count(1)  # no repeats
    await expect(_updates(card).get_by_text("result received")).to_have_count(1)
    await shot(page, "caught-up")
    await card.get_by_role("button", name="Good service").click()
    await expect(card.locator(".rating-status")).to_have_text("Rated")
    await context.close()


async def test_a_bid_below_the_price_is_refused_with_the_reason(node, browser):
    url = node["web"].url
    context, page, _ = await signed_in(browser, url)
    card = await _hire(page, url, "summarizer:5001", TEXT, bid_sats="1")
    await expect(_updates(card)).to_contain_text("error: ")
    await expect(_updates(card)).to_contain_text("below the price")
    await expect(card.locator(".job-state")).to_have_text("failed")
    await context.close()


# --- over HTTP -------------------------------------------------------------------------


def _session(node) -> tuple[dict[str, str], str]:
    """A logged-in session's cookie and its CSRF token."""
    ctx = node["web"].context
    value = auth.make_session(
        Keys.generate().public_key().to_hex(), ctx.session_secret, time.time()
    )
    return {auth.cookie_name(ctx.secure): value}, auth.csrf_token(value, ctx.session_secret)


async def _post_pay(node, body: Any, *, cookies=None, csrf: str | None = None) -> httpx.Response:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    async with httpx.AsyncClient(base_url=node["web"].url, cookies=cookies) as client:
        return await client.post("/hire/pay", json=body, headers=headers)


async def test_paying_needs_a_login_and_the_csrf_token(node):
    invoice = await node["web"].context.wallet.create_invoice(5_000, label="test:pay-refused")
    body = {"bolt11": invoice.bolt11}
    assert (await _post_pay(node, body)).status_code == 403
    cookies, csrf = _session(node)
    assert (await _post_pay(node, body, cookies=cookies)).status_code == 403
    assert (await _post_pay(node, body, cookies=cookies, csrf="0" * 64)).status_code == 403
    assert (await _post_pay(node, body, csrf=csrf)).status_code == 403
    assert await node["web"].context.wallet.lookup(invoice.payment_hash) is None


async def test_paying_settles_a_dev_invoice_once(node):
    wallet = node["web"].context.wallet
    invoice = await wallet.create_invoice(5_000, label="test:pay-ok")
    cookies, csrf = _session(node)
    paid = await _post_pay(node, {"bolt11": invoice.bolt11}, cookies=cookies, csrf=csrf)
    assert paid.status_code == 200 and paid.json() == {"paid_msat": 5_000}
    assert await wallet.lookup(invoice.payment_hash) is not None
    again = await _post_pay(node, {"bolt11": invoice.bolt11}, cookies=cookies, csrf=csrf)
    assert again.status_code == 400 and again.json()["error"] == "invoice already paid"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"bolt11": "lnbcrt-garbage"}, "not a BOLT11 invoice"),
        ({"bolt11": ""}, 'send JSON {"bolt11"'),
        (["lnbcrt1"], 'send JSON {"bolt11"'),
        ({"invoice": "x"}, 'send JSON {"bolt11"'),
    ],
)
async def test_paying_garbage_is_a_400_that_says_why(node, body, reason):
    cookies, csrf = _session(node)
    answer = await _post_pay(node, body, cookies=cookies, csrf=csrf)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(reason)


async def test_qr_codes_are_svg_and_bounded(node):
    async with httpx.AsyncClient(base_url=node["web"].url) as client:
        svg = await client.get("/qr", params={"data": "lnbcrt1example"})
        assert svg.status_code == 200
        assert svg.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in svg.content
        assert (await client.get("/qr", params={"data": "x" * 2_000})).status_code == 200
        too_long = await client.get("/qr", params={"data": "x" * 2_001})
        assert too_long.status_code == 413 and "2,000" in too_long.json()["error"]
        assert (await client.get("/qr")).status_code == 400


async def test_the_form_lists_each_agent_kind_with_its_price(node):
    cookies, _ = _session(node)
    async with httpx.AsyncClient(base_url=node["web"].url, cookies=cookies) as client:
        page = (await client.get("/hire")).text
    assert 'value="summarizer:5001"' in page
    assert "21 sats per job + 1 sat per started KiB of input" in page
    assert 'aria-live="polite"' in page
    assert "Pay with the dev wallet (not real money)" in page


async def test_agents_of_other_nodes_are_offered_with_their_own_relay(node):
    """A NIP-89 announcement from another node (read from the relays) becomes a choice on /hire."""
    import os

    from nips.nip01 import Signer
    from nips.nip89 import HandlerInfo, handler_content, handler_tags

    remote = Signer(os.urandom(32))
    info = HandlerInfo(pubkey=remote.pubkey, d="far", kinds=(5002,), name="far-translator", about="Translates.",
                       relays=("wss://relay.example.org",), node="ab" * 32, price_msat=7000,
                       price_per_kb_msat=500)
    link = RelayLink(node["relay"].url)
    await link.start()
    assert (await link.publish(remote.sign(31990, handler_content(info), handler_tags(info),
                                           created_at=int(time.time()))))[0]
    await link.stop()
    cookies, _ = _session(node)
    async with httpx.AsyncClient(base_url=node["web"].url, cookies=cookies) as client:
        page = (await client.get("/hire")).text
    assert f'data-pubkey="{remote.pubkey}"' in page
    assert 'data-relay="wss://relay.example.org"' in page
    assert "far-translator: Translates. (kind 5002), 7 sats per job + 0.5 sats per started KiB of input, on another node" in page
    assert 'value="summarizer:5001"' in page  # this node's own agents are still there


@pytest.mark.parametrize(
    ("price_msat", "per_kb_msat", "shown"),
    [
        (None, None, "price not announced"),
        (0, None, "free"),
        (0, 0, "free"),
        (1_500, None, "1.5 sats per job"),  # not rounded down to "1 sats"
        (0, 1_000, "1 sat per started KiB of input"),
        (21_000, 1_000, "21 sats per job + 1 sat per started KiB of input"),
    ],
)
def test_an_announced_price_reads_as_our_own_prices_do(price_msat, per_kb_msat, shown):
    from nips.nip89 import HandlerInfo
    from web.routes.hire import _announced_price

    info = HandlerInfo(pubkey="ab" * 32, d="x", kinds=(5001,), price_msat=price_msat, price_per_kb_msat=per_kb_msat)
    assert _announced_price(info) == shown
