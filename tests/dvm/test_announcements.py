"""What agents publish about themselves: profile, relay list, NIP-89 handler, heartbeat."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson

from nips.nip89 import parse_handler
from node.config import AgentConfig

from .conftest import SUMMARIZER


async def _announced(link, pubkey, kinds=(0, 10002, 31990, 30078)):
    await asyncio.sleep(0.3)
    events = await link.query([{"authors": [pubkey], "kinds": list(kinds)}])
    return {e.kind: e for e in events}


async def test_each_agent_announces_profile_relays_handler_and_heartbeat(relay, start_engine, customer):
    writer = AgentConfig("writer", kinds=(5050,), settings={"textgen": {"endpoint": ""}})
    engine = await start_engine([SUMMARIZER, writer], [relay.url], heartbeat_seconds=10)
    summarizer = engine.agents[0]
    got = await _announced(customer.link, summarizer.pubkey)
    assert orjson.loads(got[0].content)["name"] == "summarizer"
    assert got[10002].tag_values("r") == [relay.url]
    info = parse_handler(got[31990])
    assert info is not None and info.kinds == (5001,) and info.encryption_supported
    assert info.node == engine.node_pubkey and info.price_msat == 0
    assert info.relays == (relay.url,)
    beat = got[30078]
    assert beat.first_tag_value("d") == "timmy:heartbeat"
    expires = int(beat.first_tag_value("expiration"))
    assert time.time() + 25 <= expires <= time.time() + 31  # three intervals
    # An agent whose only handler is unavailable (no endpoint) announces no kinds.
    writer_events = await _announced(customer.link, engine.agents[1].pubkey, (31990,))
    assert 31990 not in writer_events or parse_handler(writer_events[31990]) is None


async def test_announcements_are_republished_only_on_change(relay, start_engine, customer, tmp_path):
    db = tmp_path / "node.sqlite3"
    engine = await start_engine([SUMMARIZER], [relay.url], db=db)
    pubkey = engine.agents[0].pubkey
    first = (await _announced(customer.link, pubkey))[31990]
    await start_engine.stop(engine)
    engine = await start_engine([SUMMARIZER], [relay.url], db=db)
    assert (await _announced(customer.link, pubkey))[31990].id == first.id
    await start_engine.stop(engine)
    await asyncio.sleep(1.1)  # a new created_at, so the replacement wins
    changed = dataclasses.replace(SUMMARIZER, about="Now with better summaries.", price_msat=5)
    engine = await start_engine([changed], [relay.url], db=db)
    latest = (await _announced(customer.link, pubkey))[31990]
    assert latest.id != first.id
    assert parse_handler(latest).about == "Now with better summaries."
    assert parse_handler(latest).price_msat == 5


async def test_an_agent_removed_from_the_config_has_its_announcement_deleted(
    relay, start_engine, customer, tmp_path
):
    db = tmp_path / "node.sqlite3"
    pow_agent = AgentConfig("pow", kinds=(5970,))
    engine = await start_engine([SUMMARIZER, pow_agent], [relay.url], db=db)
    gone = engine.agents[1].pubkey
    announcement = (await _announced(customer.link, gone))[31990]
    await start_engine.stop(engine)
    await start_engine([SUMMARIZER], [relay.url], db=db, retired=["pow"])
    await asyncio.sleep(0.3)
    deletions = await customer.link.query([{"authors": [gone], "kinds": [5]}])
    assert len(deletions) == 1
    assert announcement.id in deletions[0].tag_values("e")
    assert f"31990:{gone}:{announcement.d_tag}" in deletions[0].tag_values("a")
    # The relay honoured it (NIP-09): the announcement is gone.
    assert not await customer.link.query([{"authors": [gone], "kinds": [31990]}])


async def test_a_clean_stop_leaves_an_offline_heartbeat(relay, start_engine, customer):
    from dvm.client import discover_agents

    engine = await start_engine([SUMMARIZER], [relay.url])
    pubkey = engine.agents[0].pubkey
    async with asyncio.timeout(5):
        while [item.alive for item in await discover_agents(customer.link)] != [True]:
            await asyncio.sleep(0.05)
    await start_engine.stop(engine)
    beat = (await _announced(customer.link, pubkey, (30078,)))[30078]
    assert orjson.loads(beat.content)["status"] == "offline"
    assert beat.expiration is None
    assert [item.alive for item in await discover_agents(customer.link)] == [False]
