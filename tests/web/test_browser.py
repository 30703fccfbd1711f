"""The pages in a real browser: Debian's Chromium, headless, driven by Playwright.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium``
(``.ci/run`` installs it). Screenshots are kept as artifacts (``chromium.shot``); their
paths are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import itertools

from playwright.async_api import Page, expect

from tests.web.chromium import shot, signed_in


async def _focused(page: Page) -> str:
    """The focused element as ``tag text``."""
    return await page.evaluate(
        "() => `${document.activeElement.tagName.toLowerCase()} ${document.activeElement.textContent.trim()}`"
    )


async def test_the_overview_reads_and_works_from_the_keyboard(node, browser):
    url = node["web"].url
    page = await browser.new_page()
    await page.goto(url + "/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("timmy")
    await expect(page.get_by_role("link", name="summarizer", exact=True)).to_be_visible()
    await expect(page.get_by_text("dev wallet: not real money")).to_be_visible()
    await expect(page.get_by_role("table", name="Relays the node reads jobs from and publishes to")).to_contain_text(
        "connected"
    )
    skip = page.get_by_role("link", name="Skip to content")
    await page.keyboard.press("Tab")
    assert await _focused(page) == "a Skip to content"
    await expect(skip).to_be_in_viewport()  # hidden off-screen until focused
    await page.keyboard.press("Tab")
    assert await _focused(page) == "a timmy"
    await page.keyboard.press("Tab")
    assert await _focused(page) == "a Hire an agent"
    await page.keyboard.press("Tab")
    assert await _focused(page) == "a Federation"
    await page.keyboard.press("Tab")
    assert await _focused(page) == "a Log in"
    for _ in range(4):
        await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Enter")
    assert page.url == url + "/#main"
    await shot(page, "overview")
    await page.get_by_role("link", name="pow", exact=True).click()
    await expect(page).to_have_url(url + "/agents/pow")


async def test_an_agent_page_shows_keys_and_qr_codes(node, browser):
    page = await browser.new_page()
    await page.goto(node["web"].url + "/agents/summarizer")
    await expect(page.get_by_role("heading", level=1)).to_have_text("summarizer")
    await expect(page.get_by_text("npub1", exact=False).first).to_be_visible()
    offer = page.get_by_role("img", name="QR code of summarizer's BOLT12 offer")
    await expect(offer).to_be_visible()
    box = await offer.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    await expect(page.get_by_role("img", name="QR code of summarizer's lightning address")).to_be_visible()
    headings = await page.locator("h1, h2, h3").evaluate_all("els => els.map(e => Number(e.tagName[1]))")
    assert headings[0] == 1 and all(b - a <= 1 for a, b in itertools.pairwise(headings))
    await shot(page, "agent")


async def test_the_pages_read_without_javascript(node, browser):
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(node["web"].url + "/")
    await expect(page.get_by_text("1.5 sats per job")).to_be_visible()
    await page.goto(node["web"].url + "/agents/pow")
    await expect(page.get_by_text("Timmy score: no attestations yet")).to_be_visible()
    await context.close()


async def test_logging_in_through_a_nip07_extension(node, browser):
    url = node["web"].url
    context, page, pubkey = await signed_in(browser, url)  # the login page, clicked as a person would
    await expect(page.get_by_text(f"signed in as {pubkey[:12]}")).to_be_visible()
    await shot(page, "signed-in")
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(url + "/")
    await expect(page.get_by_role("link", name="Log in")).to_be_visible()
    await context.close()
