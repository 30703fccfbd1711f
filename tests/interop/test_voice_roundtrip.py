"""nostr-tools (Node) has text read aloud and transcribed by a whole Timmy node.

The node runs in-process as ``timmy run`` would (relay, engine, blob store,
web app with Blossom), with its speaker (kind 5250) and listener (kind 5000)
agents on the real models. The customer is nostr-tools: it hires the
speaker, fetches the audio from the node's Blossom URL with Node's own
``fetch``, and hires the listener with that URL; the words must come back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nostr_sdk import Keys

from nips.nip01 import parse_event, verify_signature
from node.config import loads
from tests.helpers import node_in_process
from tests.speech import speech_models, word_errors, words

from .conftest import INTEROP_DIR

TEXT = "The quick brown fox jumps over the lazy dog. Please send the report to the office before noon tomorrow."
SCRIPT = INTEROP_DIR / "nostr_tools_voice.mjs"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    folder = speech_models()
    config = loads(f"""
[relay]
port = 0
[web]
port = 0
[memory]
enabled = false
[[agents]]
name = "speaker"
kinds = [5250]
time_limit_seconds = 120.0
concurrency = 1
settings.tts = {{ model_dir = "{folder}" }}
[[agents]]
name = "listener"
kinds = [5000]
time_limit_seconds = 120.0
concurrency = 1
""")
    identities = {"node": Keys.generate(), "agent-speaker": Keys.generate(), "agent-listener": Keys.generate()}
    async with node_in_process(config, tmp_path, identities) as parts:
        yield parts


async def test_nostr_tools_speaks_fetches_and_transcribes(node_modules: Path, node: dict[str, Any]) -> None:
    engine = node["engine"].engine
    agents = {agent.name: agent for agent in engine.agents}
    assert 5250 in agents["speaker"].handlers and 5000 in agents["listener"].handlers
    proc = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), node["relay"].url, agents["speaker"].pubkey, agents["listener"].pubkey, TEXT,
        cwd=INTEROP_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out)

    for job, agent in ((seen["speech"], agents["speaker"]), (seen["transcript"], agents["listener"])):
        assert all(a["verified"] for a in job["answers"]), "nostr-tools verified every answer"
        for answer in job["answers"]:
            event = parse_event(answer["event"])
            assert verify_signature(event) and event.pubkey == agent.pubkey
            assert event.first_tag_value("e") == job["request"]["id"]
            assert event.tag_values("p") == [seen["customer"]]

    spoken = parse_event(seen["speech"]["result"])
    assert spoken.kind == 6250
    blob_url = spoken.content
    sha256 = spoken.first_tag_value("x")
    assert blob_url == f"{node['web'].url.rstrip('/')}/{sha256}.wav"
    assert spoken.first_tag_value("m") == "audio/wav"
    fetched = seen["fetched"]
    assert (fetched["status"], fetched["type"], fetched["riff"]) == (200, "audio/wav", "RIFF")
    assert fetched["sha256"] == sha256 and str(fetched["size"]) == spoken.first_tag_value("size")

    transcript = parse_event(seen["transcript"]["result"])
    assert transcript.kind == 6000 and transcript.content.startswith("WEBVTT")
    assert ["i", blob_url, "url"] in transcript.tags
    heard = " ".join(line for line in transcript.content.splitlines()[1:] if line and "-->" not in line)
    assert word_errors(words(TEXT), words(heard)) <= 2, heard
