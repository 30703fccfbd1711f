"""The federation view of a running node: JSON, server-rendered tables and the SVG in Chromium."""

from __future__ import annotations

import asyncio
import os
import re
import time
from html import unescape

import httpx
import pytest

from nips.nip01 import Signer
from nips.nip89 import HANDLER_KIND, HandlerInfo, handler_content, handler_tags
from node.links import RelayLink
from tests.web.chromium import shot


def _announced(node) -> set[str]:
    """The node's agents that serve some kind now, so announce themselves. The writer has
    no language model configured; the voice agents depend on the models installed here."""
    return {a.name for a in node["engine"].engine.agents if a.handlers}


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def _get(node, path: str) -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=False) as http:
        return await http.get(node["web"].url + path)


async def _announce_other_node(node) -> tuple[str, Signer]:
    """A second "node" announcing one agent to this node's relay; returns the node key and the agent."""
    other_node = Signer(os.urandom(32)).pubkey
    agent = Signer(os.urandom(32))
    info = HandlerInfo(
        pubkey=agent.pubkey,
        d="translator",
        kinds=(5002,),
        name="far-translator",
        node=other_node,
        price_msat=7_000,
    )
    event = agent.sign(
        HANDLER_KIND, handler_content(info), handler_tags(info), created_at=int(time.time())
    )
    link = RelayLink(node["relay"].url)
    await link.start()
    try:
        assert (await link.publish(event))[0]
    finally:
        await link.stop()
    return other_node, agent


async def _federation(node, want: int) -> dict:
    """``/federation.json`` once it lists ``want`` agents (the node announces its own after a moment)."""
    data: dict = {}
    for _ in range(100):
        response = await _get(node, "/federation.json")
        assert (
            response.status_code == 200 and response.headers["content-type"] == "application/json"
        )
        data = response.json()
        if sum(len(n["agents"]) for n in data["nodes"]) >= want:
            return data
        await asyncio.sleep(0.1)
    raise AssertionError(f"federation never listed {want} agents: {data}")


async def test_the_federation_lists_this_node_and_another(node):
    other_node, agent = await _announce_other_node(node)
    data = await _federation(node, len(_announced(node)) + 1)
    this_node = node["web"].context.node_pubkey
    assert data["this_node"] == this_node
    by_key = {n["node"]: n for n in data["nodes"]}
    assert set(by_key) == {this_node, other_node}
    assert data["nodes"][0]["node"] == this_node and data["nodes"][0]["label"] == "this node"
    assert {a["name"] for a in by_key[this_node]["agents"]} == _announced(node)
    summarizer = next(a for a in by_key[this_node]["agents"] if a["name"] == "summarizer")
    assert summarizer["price_msat"] == 21_000 and 5001 in summarizer["kinds"]
    assert by_key[other_node]["agents"] == [
        {
            "pubkey": agent.pubkey,
            "name": "far-translator",
            "kinds": [5002],
            "price_msat": 7_000,
            "price_per_kb_msat": 0,
        }
    ]
    assert data["relays"] and all(r["connected"] for r in data["relays"])
    assert isinstance(data["jobs"], list)

    page = await _get(node, "/federation")
    assert page.status_code == 200
    text = _text(page.text)
    assert "Nodes and the agents they announce" in text
    for name in (*_announced(node), "far-translator"):
        assert name in text
    assert "this node" in text and "Timmy node" in text and other_node[:16] in text
    assert "7 sats per job" in text and "connected" in text
    assert 'role="img"' in page.text and "<title" in page.text


async def test_a_job_shows_as_an_edge(node):
    """Feedback from an agent to a customer counts as one job on the customer -> agent edge."""
    await _federation(node, len(_announced(node)))
    agent, customer = Signer(os.urandom(32)), Signer(os.urandom(32))
    request = "ab" * 32
    now = int(time.time())
    events = [
        agent.sign(
            7000,
            "",
            [["status", "processing"], ["e", request], ["p", customer.pubkey]],
            created_at=now,
        ),
        agent.sign(
            7000,
            "",
            [["status", "success"], ["e", request], ["p", customer.pubkey]],
            created_at=now,
        ),
    ]
    link = RelayLink(node["relay"].url)
    await link.start()
    try:
        for event in events:
            assert (await link.publish(event))[0]
    finally:
        await link.stop()
    data = (await _get(node, "/federation.json")).json()
    assert {"customer": customer.pubkey, "agent": agent.pubkey, "jobs": 1} in data["jobs"]
    assert "Jobs per agent in the last 24 hours" in _text((await _get(node, "/federation")).text)


async def test_the_map_is_drawn_in_chromium(node, browser):
    await _announce_other_node(node)
    data = await _federation(node, len(_announced(node)) + 1)
    agents = sum(len(n["agents"]) for n in data["nodes"])
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(node["web"].url + "/federation")
    await page.wait_for_selector('#federation-map[data-drawn="true"]')
    assert await page.locator("#federation-map circle.agent-circle").count() == agents
    assert await page.locator("#federation-map circle").count() >= agents + len(data["nodes"])
    assert await page.get_by_role("img", name="Map of the federation").count() == 1
    assert not errors
    await shot(page, "map")


@pytest.mark.parametrize("path", ["/federation", "/federation.json"])
async def test_no_secrets_in_the_view(node, path):
    body = (await _get(node, path)).text
    assert "nsec1" not in body and "secret" not in body.lower()
