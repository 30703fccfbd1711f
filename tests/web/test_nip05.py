"""NIP-05 over real HTTP: every agent is name@domain, with its relays (shared/specs/nips/05.md)."""

from __future__ import annotations

import asyncio

import httpx
import orjson

from node.config import DEFAULT_AGENTS
from node.links import RelayLink
from web.context import WebContext
from web.routes.nip05 import names


async def _get(node, query: str = "") -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=False) as http:
        return await http.get(f"{node['web'].url}/.well-known/nostr.json{query}")


async def test_a_named_agent_maps_to_its_hex_key_and_relays(node):
    engine = node["engine"].engine
    pow_agent = next(a for a in engine.agents if a.name == "pow")
    answer = await _get(node, "?name=pow")
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "names": {"pow": pow_agent.pubkey},
        "relays": {pow_agent.pubkey: [node["relay"].url]},
    }
    assert pow_agent.pubkey == pow_agent.pubkey.lower() and len(pow_agent.pubkey) == 64


async def test_without_a_name_every_agent_is_listed(node):
    agents = node["engine"].engine.agents
    body = (await _get(node)).json()
    assert body["names"] == {a.name: a.pubkey for a in agents}
    assert set(body["names"]) == {a.name for a in DEFAULT_AGENTS}  # served kinds or not
    assert body["relays"] == {a.pubkey: [node["relay"].url] for a in agents}


async def test_an_unknown_name_maps_to_nothing(node):
    for query in ("?name=nobody", "?name=", "?name=_", "?name=pow%00"):
        answer = await _get(node, query)
        assert answer.status_code == 200, query
        assert answer.json() == {"names": {}}, query
        assert answer.headers["access-control-allow-origin"] == "*"


async def test_names_are_matched_in_lower_case(node):
    body = (await _get(node, "?name=POW")).json()
    assert list(body["names"]) == ["pow"]


async def test_an_agents_profile_verifies_against_this_server(node):
    """What a client does: read nip05 from the kind 0, fetch nostr.json, compare keys."""
    agent = next(a for a in node["engine"].engine.agents if a.name == "pow")
    link = RelayLink(node["relay"].url)
    await link.start()
    try:
        for _ in range(100):
            profiles = await link.query([{"kinds": [0], "authors": [agent.pubkey]}])
            if profiles:
                break
            await asyncio.sleep(0.05)
    finally:
        await link.stop()
    assert profiles, "the agent announced its profile"
    local, domain = orjson.loads(profiles[0].content)["nip05"].split("@")
    assert f"http://{domain}" == node["web"].url
    body = (await _get(node, f"?name={local}")).json()
    assert body["names"][local] == profiles[0].pubkey


def test_without_an_engine_nobody_is_known():
    assert names(WebContext(), None) == {"names": {}}
    assert names(WebContext(), "pow") == {"names": {}}
