"""nostr-tools (Node) hires a Timmy agent: request in, 7000 and 6001 out, all valid NIP-90."""

from __future__ import annotations

import asyncio
import json
import os

import orjson
import pytest

from dvm.agents import build_agents
from dvm.engine import Engine
from dvm.handlers import discover
from dvm.store import JobStore
from nips.nip01 import Signer, parse_event, verify_signature
from node.config import AgentConfig, EngineSettings
from node.links import RelayPool

from .conftest import INTEROP_DIR

TEXT = (
    "Timmy agents sell work over Nostr. The weather is mild today. "
    "Each Timmy agent signs its results with its own key."
)
SCRIPT = INTEROP_DIR / "nostr_tools_dvm.mjs"


@pytest.fixture
async def engine(relay, tmp_path):
    store = JobStore(tmp_path / "node.sqlite3")
    await store.open()
    pool = RelayPool([relay.url])
    await pool.start()
    agents = build_agents(
        [AgentConfig("summarizer", kinds=(5001,))], {"summarizer": Signer(os.urandom(32))}, discover()
    )
    engine = Engine(agents, store, pool, settings=EngineSettings(), home_relay=relay.url,
                    node_pubkey=Signer(os.urandom(32)).pubkey)
    await engine.start()
    yield engine
    await engine.stop()
    await pool.stop()
    await store.close()


async def _hire(url: str, mode: str, agent: str) -> dict:
    proc = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), url, mode, agent, TEXT, cwd=INTEROP_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


@pytest.mark.parametrize("mode", ["plain", "encrypted"])
async def test_nostr_tools_customer_gets_valid_feedback_and_result(node_modules, engine, relay, mode):
    agent = engine.agents[0]
    seen = await _hire(relay.url, mode, agent.pubkey)
    request = parse_event(seen["request"])
    answers = [parse_event(a["event"]) for a in seen["answers"]]
    assert all(a["verified"] for a in seen["answers"]), "nostr-tools verified every answer"
    assert all(verify_signature(e) for e in answers)
    feedback = [e for e in answers if e.kind == 7000]
    result = next(e for e in answers if e.kind == 6001)
    assert [e.first_tag_value("status") for e in feedback][:1] == ["processing"]
    for event in answers:
        assert event.pubkey == agent.pubkey
        assert event.first_tag_value("e") == request.id
        assert event.tag_values("p") == [seen["customer"]]
    assert orjson.loads(result.first_tag_value("request"))["id"] == request.id
    assert result.first_tag_value("amount") == "0"
    if mode == "plain":
        assert ["i", TEXT, "text"] in result.tags
        assert "Timmy agent" in result.content
    else:
        assert ["encrypted"] in result.tags and not result.tag_values("i")
        assert "Timmy agent" in seen["decrypted"] and "Timmy agent" not in result.content
