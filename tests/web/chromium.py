"""Headless Debian Chromium for the web tests, through Playwright (which never downloads a browser).

``browser`` is the fixture (re-exported by ``conftest.py``); ``signed_in`` logs a
page in through a NIP-07 shim: the nostr-tools browser bundle plus ``shim.js``,
which act as the extension would; ``shot`` keeps a screenshot where CI collects
artifacts: ``$TIMMY_ARTIFACTS/web/`` when that is set, else ``test-artifacts/web/``
at the repository root, named ``<test module>--<test>--<step>.png``.
"""

from __future__ import annotations

import os
import re
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


def artifacts() -> Path:
    """Where screenshots go: ``$TIMMY_ARTIFACTS/web`` or ``test-artifacts/web``, made if missing."""
    folder = Path(os.environ.get("TIMMY_ARTIFACTS") or ROOT / "test-artifacts") / "web"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def artifact_name(step: str) -> str:
    """``<module>--<test>--<step>``, from the test pytest is running now, safe as a file name."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "unknown::unknown").rsplit(" (", 1)[0]
    module, _, test = current.partition("::")
    name = f"{Path(module).stem}--{test}--{step}"
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", name).strip("-")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium; .ci/run does)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        await launched.close()


async def with_extension(browser: Browser) -> BrowserContext:
    """A browser context whose pages have the NIP-07 shim as ``window.nostr``, not logged in."""
    assert NOSTR_TOOLS.exists(), f"{NOSTR_TOOLS} is missing: run `make test` once (npm ci in tests/interop)"
    context = await browser.new_context()
    # Playwright wraps init scripts in a function: make the bundle's global global.
    await context.add_init_script(script=NOSTR_TOOLS.read_text() + "\nwindow.NostrTools = NostrTools;")
    await context.add_init_script(path=SHIM)
    return context


async def signed_in(browser: Browser, url: str) -> tuple[BrowserContext, Page, str]:
    """A browser context with the NIP-07 shim, logged in through the login page."""
    context = await with_extension(browser)
    page = await context.new_page()
    await page.goto(url + "/login")
    pubkey = await page.evaluate("() => window.nostr.getPublicKey()")
    await page.get_by_role("button", name="Log in with your Nostr extension").click()
    await page.wait_for_url(url + "/")
    return context, page, pubkey


async def shot(page: Page, step: str) -> Path:
    """A full-page screenshot of ``page`` at ``step`` of the running test, kept as an artifact."""
    path = artifacts() / f"{artifact_name(step)}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    print(f"screenshot: {path}")
    return path
