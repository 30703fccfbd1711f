"""`timmy job rate` and `timmy reputation` against a running node, as its operator uses them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from node.keys import Keystore
from tests.helpers import free_port, timmy

PASS = "cli reputation test passphrase"
TEXT = "Ratings follow work. A paid rating weighs more. Zaps on ratings add weight."


@pytest.fixture
def node(tmp_path: Path):
    data = tmp_path / "node"
    env = {**os.environ, "TIMMY_PASSPHRASE": PASS}
    subprocess.run([*timmy(), "init", "--data", str(data), "--log-n", "8"], env=env, check=True,
                   capture_output=True, timeout=60)
    port = free_port()
    log = (tmp_path / "node.log").open("wb")
    proc = subprocess.Popen(
        [*timmy(), "run", "--data", str(data), "--relay-port", str(port), "--web-port", "0"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    yield data, f"ws://127.0.0.1:{port}", env
    proc.terminate()
    proc.wait(20)
    log.close()


async def _run(env, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *timmy(), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_rate_a_job_with_a_zap_and_see_it_in_the_reputation(node):
    data, relay, env = node
    await asyncio.sleep(2.0)
    rc, _, err = await _run(env, "job", "submit", "--data", str(data), "--relay", relay, "--kind", "5001",
                            "--input", TEXT)
    assert rc == 0, err
    request_id = err.split("request ", 1)[1].split()[0]
    rc, out, err = await _run(env, "job", "rate", request_id, "--data", str(data), "--relay", relay,
                              "--label", "service-quality", "--comment", "fast and right", "--zap", "21")
    assert rc == 0, err
    agent = out.split("rated ", 1)[1].split()[0]
    label_id = out.split("service-quality: ", 1)[1].split()[0]
    assert "zapped 21 sats" in out
    assert agent == Keystore(data).public_key("agent-summarizer") or len(agent) == 64
    await asyncio.sleep(1.0)  # the receipt reaches the relay
    rc, out, err = await _run(env, "reputation", agent, "--data", str(data), "--relay", relay, "--json",
                              "--explain")
    assert rc == 0, err
    report = json.loads(out)
    assert report["score"] > 0
    [rating] = [row for row in report["explanation"] if row["event"] == label_id]
    assert rating["label"] == "service-quality" and rating["counted"]
    assert rating["zap_sats"] == 21
    rc, out, _ = await _run(env, "reputation", agent, "--data", str(data), "--relay", relay, "--explain")
    assert "service-quality" in out and "score" in out


async def test_only_the_customer_rates_and_warnings_need_a_reason(node):
    data, relay, env = node
    await asyncio.sleep(2.0)
    rc, _, err = await _run(env, "job", "rate", "ab" * 32, "--data", str(data), "--relay", relay, "--label",
                            "warning")
    assert rc == 2 and "--label warning needs --comment" in err
    rc, _, err = await _run(env, "job", "rate", "ab" * 32, "--data", str(data), "--relay", relay, "--label",
                            "service-quality")
    assert rc == 2 and "not found on the relay" in err
