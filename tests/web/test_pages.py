"""The overview, agent and job pages of a running node, fetched over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from html import unescape

import httpx
from nostr_sdk import PublicKey

from dvm.jobs import State
from nips.nip01 import Signer
from node.links import RelayLink
from reputation.labels import attestation_tags
from web.app import create_app
from web.context import WebContext
from web.routes.pages import sats

TEXT = "Pages show what the node does. Agents take jobs. Jobs cost sats."


async def _get(node, path: str) -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=False) as http:
        return await http.get(node["web"].url + path)


def _agent(node, name: str):
    return next(a for a in node["engine"].engine.agents if a.name == name)


def _text(html: str) -> str:
    """The page as a reader gets it: tags dropped, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def _publish(node, *events) -> None:
    link = RelayLink(node["relay"].url)
    await link.start()
    try:
        for event in events:
            assert (await link.publish(event))[0]
    finally:
        await link.stop()


async def _until(check, seconds: float = 5.0):
    for _ in range(int(seconds / 0.05)):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def test_prices_are_shown_in_sats():
    assert sats(0) == "0 sats"
    assert sats(1_000) == "1 sat"
    assert sats(1_500) == "1.5 sats"
    assert sats(21_000_000) == "21,000 sats"
    assert sats(1) == "0.001 sats"


async def test_the_overview_lists_the_agents_with_prices_and_scores(node):
    page = await _get(node, "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html, text = page.text, _text(page.text)
    assert "<script" not in html.lower()
    for name in ("summarizer", "pow", "reputation", "writer"):
        assert f'<a href="/agents/{name}">{name}</a>' in html
    assert "21 sats per job + 1 sat per started KiB of input" in text
    assert "1.5 sats per job" in text
    assert "5001: Extractive summary of text, events or job results" in text
    assert "5970: Proof of work (NIP-13) for an unsigned event" in text
    # The writer has no language model configured: said so, not hidden.
    assert "5050: unavailable (no endpoint configured)" in text
    # Nobody has rated these agents yet: no made-up score.
    assert text.count("no attestations yet") == len(node["engine"].engine.agents)


async def test_the_overview_shows_relays_jobs_earnings_and_the_dev_wallet(node):
    text = _text((await _get(node, "/")).text)
    assert "dev wallet: not real money" in text
    assert f"{node['relay'].url} this node's relay connected none" in text
    assert "No jobs yet." in text
    assert "Wallet: dev (not real money)" in text
    assert "summarizer 0 sats 0 sats 0 sats 0 sats 0 sats" in text


async def test_a_federation_relay_that_is_down_says_so_in_words(start_node):
    node = await start_node('[federation]\nrelays = ["ws://127.0.0.1:1"]\n')
    html = (await _get(node, "/")).text
    text = _text(html)
    row = re.search(r"ws://127\.0\.0\.1:1 federation not connected (.+?) Jobs", text)
    assert row, text
    assert row.group(1) != "none"  # the connection error, e.g. "connection refused"
    assert 'class="status-down">not connected<' in html


async def test_an_agent_page_has_its_keys_nip05_prices_and_payment_codes(node):
    agent = _agent(node, "summarizer")
    page = await _get(node, "/agents/summarizer")
    assert page.status_code == 200
    html, text = page.text, _text(page.text)
    assert "<script" not in html.lower()
    npub = PublicKey.parse(agent.pubkey).to_bech32()
    assert npub.startswith("npub1") and npub in text
    assert agent.pubkey in text
    assert f"NIP-05 summarizer@{node['web'].context.domain}" in text
    assert "Price: 21 sats per job + 1 sat per started KiB of input" in text
    assert "5001 Extractive summary of text, events or job results served" in text
    offer = node["engine"].engine.billing.offers["summarizer"]
    assert offer.startswith("lno1") and f"<code>{offer}</code>" in html
    lud16 = node["web"].zaps.lud16("summarizer")
    assert f"<code>{lud16}</code>" in html
    # A QR code for each, drawn on the server and named for screen readers.
    assert html.count('<svg role="img"') == 2
    assert "<title>QR code of summarizer's BOLT12 offer</title>" in html
    assert "<title>QR code of summarizer's lightning address</title>" in html
    assert "dev wallet: not real money" in text
    assert "Timmy score: no attestations yet" in text
    assert "ai.wot score: 0.0 (diversity 0.00)" in text
    assert "No attestations about summarizer yet." in text


async def test_an_unavailable_kind_is_shown_with_its_reason(node):
    text = _text((await _get(node, "/agents/writer")).text)
    assert "5050 no handler unavailable: no endpoint configured" in text


async def test_the_score_is_explained_attestation_by_attestation(node, identities):
    agent = _agent(node, "pow")
    customer = Signer(identities["customer"].secret_key().to_hex())
    now = int(time.time())
    await _publish(
        node,
        customer.sign(1985, "fast and right", attestation_tags(agent.pubkey, "service-quality"), created_at=now),
        agent.signer.sign(1985, "I am great", attestation_tags(agent.pubkey, "general-trust"), created_at=now),
    )
    reputation = node["web"].context.reputation

    async def explained():
        report = reputation.score(agent.pubkey)
        return report is not None and len(report.contributions) == 2

    await _until(explained)
    html = (await _get(node, "/agents/pow")).text
    text = _text(html)
    assert "Why this score" in text
    assert f"service-quality {customer.pubkey[:8]}…{customer.pubkey[-4:]}" in text
    assert "general-trust" in text and "not counted: self-attestation" in text
    assert f'title="{customer.pubkey}"' in html
    assert re.search(r"Timmy score: \d+\.\d of 100", text)


async def test_unknown_agents_and_jobs_are_404_pages(node):
    for path in ("/agents/nobody", "/jobs/" + "0" * 64, "/jobs/not-an-id", "/jobs/%3Cscript%3E"):
        page = await _get(node, path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html")
        assert "<script>" not in page.text
    assert "This node has no agent named nobody" in _text((await _get(node, "/agents/nobody")).text)
    assert "This node has no job with id" in (await _get(node, "/jobs/" + "0" * 64)).text


async def test_a_job_page_shows_what_the_store_holds(node, identities):
    customer = Signer(identities["customer"].secret_key().to_hex())
    request = customer.sign(5001, "", [["i", TEXT, "text"]], created_at=int(time.time()))
    await _publish(node, request)
    store = node["engine"].store

    async def quoted():
        record = await store.get(request.id)
        return record if record is not None and record.state == State.PAYMENT_REQUIRED else None

    record = await _until(quoted)
    page = await _get(node, f"/jobs/{request.id}")
    assert page.status_code == 200
    text = _text(page.text)
    assert f"Id {request.id}" in text
    assert "State payment required" in text
    assert "Kind 5001: Extractive summary of text, events or job results" in text
    assert PublicKey.parse(customer.pubkey).to_bech32() in text
    assert '<a href="/agents/summarizer">summarizer</a>' in page.text
    assert f"Price {sats(record.price_msat)}" in text and record.price_msat == 22_000
    # The signed record: the request and the quote, each verified, and the audit's verdict.
    assert "request" in text and "feedback: payment-required" in text
    assert text.count("verified") >= 2 and "DOES NOT VERIFY" not in text
    assert "Verdict: valid" in text and "timmy audit" in text
    # The overview counts it, and the quoted invoice is pending.
    overview = _text((await _get(node, "/")).text)
    assert "payment required 1" in overview
    assert "summarizer 0 sats 22 sats" in overview


async def _get_app(ctx: WebContext, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://timmy.test") as http:
        return await http.get(path)


async def test_without_an_engine_everything_it_knows_is_unavailable():
    page = await _get_app(WebContext(node_name="bare"), "/")
    assert page.status_code == 200
    text = _text(page.text)
    for part in ("Agents", "Relays", "Job counts", "Earnings"):
        assert f"{part}: unavailable" in text
    assert "Wallet: unavailable" in text
    assert "0 sats" not in text and "No jobs yet" not in text
    assert (await _get_app(WebContext(), "/agents/pow")).status_code == 503
    assert (await _get_app(WebContext(), "/jobs/" + "0" * 64)).status_code == 503


async def test_without_the_reputation_service_scores_are_unavailable(node):
    ctx = dataclasses.replace(node["web"].context, reputation=None)
    overview = _text((await _get_app(ctx, "/")).text)
    agents = node["engine"].engine.agents
    # Every agent's score, and each kind an agent cannot serve (the writer's, at least).
    assert overview.count("unavailable") == len(agents) + sum(len(a.unavailable) for a in agents)
    agent = _text((await _get_app(ctx, "/agents/pow")).text)
    assert "Timmy score: unavailable" in agent and "ai.wot score: unavailable" in agent
    assert "Why this score" not in agent
