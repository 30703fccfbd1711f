"""Accessibility in Chromium: axe-core on every page, the keyboard alone, and no colour-only status.

axe-core comes from npm (``tests/interop/package.json``, installed with the
other test packages) and runs inside the page; a violation of impact serious
or critical fails the test, with where it is and how to fix it. Every
finding, minor ones included, is kept as a JSON artifact beside a grayscale
screenshot of the page, which shows what a reader without colour gets.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from dvm.client import JobSpec, build_request
from nips.nip01 import Signer
from node.links import RelayLink
from tests.web.chromium import ROOT, artifact_name, artifacts, shot, signed_in, with_extension
from web import auth

AXE = ROOT / "tests/interop/node_modules/axe-core/axe.min.js"
FAILING_IMPACTS = ("serious", "critical")
OPERATOR = Signer(bytes(range(1, 33)).hex())
TEXT = (
    "Lightning payments settle in seconds because they move along channels that are already open. "
    "Each hop forwards the payment only when it can claim the same amount from the next one."
)
PAY_DEV = "Pay with the dev wallet (not real money)"

# The element with focus: what it is, and whether a sighted keyboard user can see where it is.
FOCUSED = """() => {
  const el = document.activeElement;
  const name = (el.labels && el.labels.length ? el.labels[0].textContent : el.textContent) || "";
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    what: `${el.tagName.toLowerCase()} ${name.replace(/\\s+/g, " ").trim()}`,
    ring: el.matches(":focus-visible") && style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
    onScreen: box.width > 0 && box.height > 0 && box.left >= 0 && box.top >= 0 && box.right <= innerWidth,
  };
}"""

# axe's violations, and what it could not decide alone ("incomplete": for a person to check).
AUDIT = """async () => {
  const results = await axe.run(document, { resultTypes: ["violations", "incomplete"] });
  const brief = (v) => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
  });
  return { violations: results.violations.map(brief), incomplete: results.incomplete.map(brief) };
}"""

# Status shown in words: every badge of state says what it means in text.
WORDLESS_STATUS = """() => [...document.querySelectorAll(".status-ok, .status-down, .badge")]
  .filter((el) => !/[a-z]{3}/i.test(el.textContent))
  .map((el) => el.outerHTML)"""


@pytest.fixture
async def operated_node(start_node) -> dict[str, Any]:
    """The priced node, with OPERATOR allowed on the operator pages."""
    return await start_node(web=f'operators = ["{OPERATOR.pubkey}"]')


async def _job(node: dict[str, Any], customer: Signer) -> str:
    """A job waiting for payment on the node: published as any customer would, seen by the engine."""
    request = build_request(JobSpec(5001, [(TEXT, "text")]), customer, int(time.time()))
    link = RelayLink(node["relay"].url)
    await link.start()
    try:
        assert (await link.publish(request))[0]
    finally:
        await link.stop()
    store = node["web"].context.engine.store
    for _ in range(100):
        if await store.get(request.id) is not None:
            return request.id
        await asyncio.sleep(0.05)
    raise AssertionError("the engine never took the job")


async def _operator_context(browser: Browser, node: dict[str, Any]) -> BrowserContext:
    """A browser with the NIP-07 shim and OPERATOR's session cookie (logging in is tested elsewhere)."""
    ctx = node["web"].context
    context = await with_extension(browser)
    cookie = auth.make_session(OPERATOR.pubkey, ctx.session_secret, time.time())
    await context.add_cookies(
        [{"name": auth.cookie_name(ctx.secure), "value": cookie, "url": node["web"].url}]
    )
    return context


async def _audit(page: Page, step: str) -> list[str]:
    """axe-core on the page as it is now: the serious and critical findings, one line each.

    Every finding goes to ``<step>.axe.json`` beside a grayscale screenshot.
    """
    await page.add_script_tag(path=str(AXE))
    report = await page.evaluate(AUDIT)
    (artifacts() / f"{artifact_name(step)}.axe.json").write_text(json.dumps(report, indent=2))
    found = report["violations"]
    wordless = await page.evaluate(WORDLESS_STATUS)
    grey = await page.add_style_tag(content="html { filter: grayscale(100%); }")
    await shot(page, f"{step}-grayscale")
    await grey.evaluate("style => style.remove()")
    problems = [
        f"{step}: {v['id']} ({v['impact']}): {v['help']} at {n['target']}: {n['summary']} ({v['helpUrl']})"
        for v in found
        if v["impact"] in FAILING_IMPACTS
        for n in v["nodes"]
    ]
    return problems + [f"{step}: a status shown without words: {html}" for html in wordless]


async def _pages(page: Page, url: str, job_id: str, step: str) -> list[str]:
    problems = []
    for name, path in [
        ("overview", "/"),
        ("agent", "/agents/summarizer"),
        ("job", f"/jobs/{job_id}"),
        ("hire", "/hire"),
        ("login", "/login"),
        ("operator", "/operator"),
        ("federation", "/federation"),
    ]:
        await page.goto(url + path)
        await page.wait_for_load_state("load")
        if name == "federation":
            await page.wait_for_selector('#federation-map[data-drawn="true"]')
        problems += await _audit(page, f"{step}-{name}")
    return problems


async def test_every_page_logged_out_passes_axe(operated_node, browser, identities):
    job_id = await _job(operated_node, Signer(identities["customer"].secret_key().to_hex()))
    page = await browser.new_page()  # no extension either: the login page says what to install
    problems = await _pages(page, operated_node["web"].url, job_id, "logged-out")
    assert not problems, "\n".join(problems)


async def test_every_page_logged_in_passes_axe_with_a_job_on_the_hire_page(
    operated_node, browser, identities
):
    url = operated_node["web"].url
    job_id = await _job(operated_node, Signer(identities["customer"].secret_key().to_hex()))
    context = await _operator_context(browser, operated_node)
    page = await context.new_page()
    problems = await _pages(page, url, job_id, "operator")

    # The hire page as it fills in: a job card waiting for payment, then with its result.
    await page.goto(url + "/hire")
    await page.get_by_label("Input text").fill(TEXT)
    await page.get_by_label("Most you will pay (sats)").fill("100")
    await page.get_by_role("button", name="Hire").click()
    card = page.locator("article.job-card").first
    await expect(card.get_by_role("button", name=PAY_DEV)).to_be_visible()
    problems += await _audit(page, "hire-payment-required")
    await card.get_by_role("button", name=PAY_DEV).click()
    await expect(card.locator(".result-content")).not_to_be_empty(timeout=15_000)
    problems += await _audit(page, "hire-result")
    await context.close()
    assert not problems, "\n".join(problems)


async def _tab_until(page: Page, target: str, most: int = 25) -> list[str]:
    """Press Tab until ``target`` (``tag name``) has focus; what had focus on the way.

    Each stop must show where focus is (a focus ring, on screen).
    """
    seen = []
    for _ in range(most):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(FOCUSED)
        seen.append(focused["what"])
        assert focused["ring"], f"no visible focus ring on {focused['what']}"
        assert focused["onScreen"], f"{focused['what']} has focus but is off screen"
        if focused["what"] == target:
            return seen
    raise AssertionError(f"{target!r} never got focus; Tab went through {seen}")


async def test_logging_in_with_the_keyboard_alone(node, browser):
    url = node["web"].url
    context = await with_extension(browser)
    page = await context.new_page()
    await page.goto(url + "/login")
    order = await _tab_until(page, "button Log in with your Nostr extension")
    assert order == [
        "a Skip to content",
        "a timmy",
        "a Hire an agent",
        "a Federation",
        "a Log in",
        "a NIP-07",
        "button Log in with your Nostr extension",
    ]
    await page.keyboard.press("Enter")
    await page.wait_for_url(url + "/")
    await expect(page.get_by_text("signed in as")).to_be_visible()
    await context.close()


async def test_hiring_paying_and_rating_with_the_keyboard_alone(node, browser):
    url = node["web"].url
    context, page, _ = await signed_in(browser, url)
    await page.goto(url + "/hire")
    order = await _tab_until(page, "select Capability")
    assert order == [
        "a Skip to content",
        "a timmy",
        "a Hire an agent",
        "a Federation",
        "button Log out",
        "select Capability",
    ]
    capability = page.get_by_label("Capability")
    await page.keyboard.press("ArrowDown")
    await expect(capability).to_have_value("pow:5970")
    await page.keyboard.press("ArrowUp")
    await expect(capability).to_have_value("summarizer:5001")
    assert await _tab_until(page, "textarea Input text", most=1)
    await page.keyboard.type(TEXT)
    assert await _tab_until(page, "input Most you will pay (sats)", most=1)
    await page.keyboard.type("100")
    assert await _tab_until(page, "button Hire", most=1)
    await page.keyboard.press("Enter")

    card = page.locator("article.job-card").first
    pay = card.get_by_role("button", name=PAY_DEV)
    await expect(pay).to_be_visible()
    # From the form, Tab goes on into the new card: its link, then its payment.
    assert await _tab_until(page, f"button {PAY_DEV}", most=3) == [
        "a See the job on this node",
        f"button {PAY_DEV}",
    ]
    await shot(page, "pay-focused")
    await page.keyboard.press("Enter")
    await expect(card.locator(".payment-status")).to_contain_text("Paid 22 sats")
    await expect(card.get_by_role("button", name="Good service")).to_be_visible(timeout=15_000)
    await _tab_until(page, "button Good service", most=10)
    await page.keyboard.press("Space")
    await expect(card.locator(".rating-status")).to_have_text("Rated")
    await shot(page, "rated")
    await context.close()
