"""Headless Debian Chromium for the web tests, through Playwright (which never downloads a browser).

``browser`` is the fixture (re-exported by ``conftest.py``); ``signed_in`` logs a
page in through a NIP-07 shim: the nostr-tools browser bundle plus ``shim.js``,
which act as the extension would; ``shot`` keeps a screenshot under ``tmp_path``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
NOSTR_TOOLS = ROOT / "tests/interop/node_modules/nostr-tools/lib/nostr.bundle.js"
SHIM = Path(__file__).with_name("shim.js")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium; .ci/run does)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        await launched.close()


async def signed_in(browser: Browser, url: str) -> tuple[BrowserContext, Page, str]:
    """A browser context with the NIP-07 shim, logged in through the login page."""
    assert NOSTR_TOOLS.exists(), f"{NOSTR_TOOLS} is missing: run `make test` once (npm ci in tests/interop)"
    context = await browser.new_context()
    # Playwright wraps init scripts in a function: make the bundle's global global.
    await context.add_init_script(script=NOSTR_TOOLS.read_text() + "\nwindow.NostrTools = NostrTools;")
    await context.add_init_script(path=SHIM)
    page = await context.new_page()
    await page.goto(url + "/login")
    pubkey = await page.evaluate("() => window.nostr.getPublicKey()")
    await page.get_by_role("button", name="Log in with your Nostr extension").click()
    await page.wait_for_url(url + "/")
    return context, page, pubkey


async def shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    print(f"screenshot: {path}")
