"""`timmy job submit`, `timmy agents` and `timmy audit` as a user runs them, against a live engine."""

from __future__ import annotations

import asyncio
import json

from nostr_sdk import PublicKey

from node.config import AgentConfig
from tests.helpers import timmy

from .conftest import SUMMARIZER, TEXT


async def _timmy(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *timmy(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


async def test_job_submit_prints_the_result_and_the_progress(relay, start_engine):
    await start_engine([SUMMARIZER], [relay.url])
    rc, out, err = await _timmy(
        "job", "submit", "--relay", relay.url, "--kind", "5001", "--input", TEXT,
        "--param", "length=1 sentences",
    )
    assert rc == 0, err
    assert out.strip() and out.strip() in TEXT
    assert "processing" in err and "result from" in err


async def test_job_submit_exits_1_on_an_error_answer(relay, start_engine):
    await start_engine([SUMMARIZER], [relay.url])
    rc, out, err = await _timmy(
        "job", "submit", "--relay", relay.url, "--kind", "5001", "--input", TEXT, "--param", "length=lots",
    )
    assert rc == 1 and not out
    assert "job failed" in err and "param length" in err


async def test_job_submit_times_out_with_status_1(relay):
    rc, _, err = await _timmy(
        "job", "submit", "--relay", relay.url, "--kind", "5001", "--input", TEXT, "--timeout", "1"
    )
    assert rc == 1 and "no result within 1 s" in err


async def test_job_submit_encrypted_to_an_npub(relay, start_engine):
    engine = await start_engine([SUMMARIZER], [relay.url])
    npub = PublicKey.parse(engine.agents[0].pubkey).to_bech32()
    rc, out, err = await _timmy(
        "job", "submit", "--relay", relay.url, "--kind", "5001", "--input", TEXT, "--to", npub, "--encrypt",
    )
    assert rc == 0, err
    assert out.strip() in TEXT


async def test_job_submit_auction_then_audit(relay, start_engine):
    cheap = AgentConfig("cheap", kinds=(5001,))
    dear = AgentConfig("dear", kinds=(5001,), price_msat=50)
    await start_engine([cheap], [relay.url])
    await start_engine([dear], [relay.url])
    rc, out, err = await _timmy(
        "job", "submit", "--relay", relay.url, "--kind", "5001", "--input", TEXT, "--auction",
        "--commit-seconds", "1", "--reveal-seconds", "1", "--bid", "100",
    )
    # The free agent wins and is paid the second price: the dearer one's ask.
    assert rc == 1 and "payment required: 50 msat" in err, err
    request_id = err.split("request ", 1)[1].split()[0]
    rc, out, err = await _timmy("audit", request_id, "--relay", relay.url, "--json")
    assert rc == 0, err
    verdict = json.loads(out)
    assert verdict["valid"] and verdict["price_msat"] == 50


async def test_agents_lists_live_agents(relay, start_engine):
    engine = await start_engine([SUMMARIZER, AgentConfig("pow", kinds=(5970,), price_msat=7)], [relay.url])
    await asyncio.sleep(0.3)
    rc, out, err = await _timmy("agents", "--relay", relay.url, "--json")
    assert rc == 0, err
    listed = {row["name"]: row for row in map(json.loads, out.splitlines())}
    assert listed["summarizer"]["kinds"] == [5001] and listed["summarizer"]["alive"]
    assert listed["pow"]["price_msat"] == 7
    assert listed["pow"]["node"] == engine.node_pubkey


async def test_bad_usage_is_refused_with_a_clear_message(relay):
    rc, _, err = await _timmy("job", "submit", "--relay", relay.url, "--kind", "42", "--input", "x")
    assert rc == 2 and "job request kinds are 5000-5999" in err
    rc, _, err = await _timmy("job", "submit", "--relay", relay.url, "--kind", "5001", "--input", "x", "--encrypt")
    assert rc == 2 and "--encrypt needs --to" in err
    rc, _, err = await _timmy("audit", "nothex", "--relay", relay.url)
    assert rc == 2 and "is not an event id" in err
    rc, _, err = await _timmy("audit", "ab" * 32, "--relay", relay.url)
    assert rc == 2 and "not found on the relay" in err
