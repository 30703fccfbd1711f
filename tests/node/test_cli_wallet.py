"""`timmy job submit --pay`, `timmy pay` and `timmy wallet` against a running node with the dev wallet."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import free_port, timmy

PASS = "cli wallet test passphrase"
PRICE = 21_000
TEXT = "Paid work starts after payment. The dev wallet settles its own invoices. Nothing real moves."


@pytest.fixture
def node(tmp_path: Path):
    data = tmp_path / "node"
    data.mkdir()
    (data / "node.toml").write_text(f'[[agents]]\nname = "seller"\nkinds = [5001]\nprice_msat = {PRICE}\n')
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


async def test_submit_with_pay_pays_the_quote_and_gets_the_result(node):
    data, relay, env = node
    await asyncio.sleep(2.0)  # the node is up
    rc, out, err = await _run(
        env, "job", "submit", "--data", str(data), "--relay", relay, "--kind", "5001", "--input", TEXT, "--pay"
    )
    assert rc == 0, err
    assert out.strip() in TEXT
    assert "payment-required" in err and f"paid {PRICE} msat" in err
    rc, out, err = await _run(env, "wallet", "--data", str(data), "--json")
    assert rc == 0, err
    rows = {row["agent"]: row for row in map(json.loads, out.splitlines())}
    assert rows["seller"]["paid"] == PRICE and rows["seller"]["refund_owed"] == 0
    rc, out, _ = await _run(env, "wallet", "--data", str(data))
    assert "dev wallet: not real money" in out and "seller" in out


async def test_without_pay_the_quote_ends_the_wait(node):
    data, relay, env = node
    await asyncio.sleep(2.0)
    rc, _, err = await _run(env, "job", "submit", "--data", str(data), "--relay", relay, "--kind", "5001",
                            "--input", TEXT)
    assert rc == 1 and f"payment required: {PRICE} msat (lnbcrt" in err
    invoice = err.split("(lnbcrt", 1)[1].split(")")[0]
    rc, out, err = await _run(env, "pay", "--data", str(data), "lnbcrt" + invoice)
    assert rc == 0, err
    assert f"paid {PRICE} msat" in out and "not real money" in out
    rc, _, err = await _run(env, "pay", "--data", str(data), "lnbcrt" + invoice)
    assert rc == 2 and "already paid" in err
    rc, _, err = await _run(env, "pay", "--data", str(data), "not an invoice")
    assert rc == 2 and "payment failed" in err
