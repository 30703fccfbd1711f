"""`timmy job rate` and `timmy reputation` against a running node, as its operator uses them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from node.keys import Keystore
from tests.helpers import RunningNode

PASS = "cli reputation test passphrase"
TEXT = "Ratings follow work. A paid rating weighs more. Zaps on ratings add weight."


@pytest.fixture
def node(tmp_path: Path):
    with RunningNode(tmp_path, PASS) as running:
        yield running


async def test_rate_a_job_with_a_zap_and_see_it_in_the_reputation(node):
    data, relay = node.data, node.relay
    await asyncio.sleep(2.0)
    rc, _, err = await node.cli("job", "submit", "--data", str(data), "--relay", relay, "--kind", "5001",
                            "--input", TEXT)
    assert rc == 0, err
    request_id = err.split("request ", 1)[1].split()[0]
    rc, out, err = await node.cli("job", "rate", request_id, "--data", str(data), "--relay", relay,
                              "--label", "service-quality", "--comment", "fast and right", "--zap", "21")
    assert rc == 0, err
    agent = out.split("rated ", 1)[1].split()[0]
    label_id = out.split("service-quality: ", 1)[1].split()[0]
    assert "zapped 21 sats" in out
    assert agent == Keystore(data).public_key("agent-summarizer") or len(agent) == 64
    await asyncio.sleep(1.0)  # the receipt reaches the relay
    rc, out, err = await node.cli("reputation", agent, "--data", str(data), "--relay", relay, "--json",
                              "--explain")
    assert rc == 0, err
    report = json.loads(out)
    assert report["score"] > 0
    [rating] = [row for row in report["explanation"] if row["event"] == label_id]
    assert rating["label"] == "service-quality" and rating["counted"]
    assert rating["zap_sats"] == 21
    rc, out, _ = await node.cli("reputation", agent, "--data", str(data), "--relay", relay, "--explain")
    assert "service-quality" in out and "score" in out


async def test_only_the_customer_rates_and_warnings_need_a_reason(node):
    data, relay = node.data, node.relay
    await asyncio.sleep(2.0)
    rc, _, err = await node.cli("job", "rate", "ab" * 32, "--data", str(data), "--relay", relay, "--label",
                            "warning")
    assert rc == 2 and "--label warning needs --comment" in err
    rc, _, err = await node.cli("job", "rate", "ab" * 32, "--data", str(data), "--relay", relay, "--label",
                            "service-quality")
    assert rc == 2 and "not found on the relay" in err
