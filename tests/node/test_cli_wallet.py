"""`timmy job submit --pay`, `timmy pay` and `timmy wallet` against a running node with the dev wallet."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.helpers import RunningNode

PASS = "cli wallet test passphrase"
PRICE = 21_000
TEXT = "Paid work starts after payment. The dev wallet settles its own invoices. Nothing real moves."


@pytest.fixture
def node(tmp_path: Path):
    toml = f'[[agents]]\nname = "seller"\nkinds = [5001]\nprice_msat = {PRICE}\n'
    with RunningNode(tmp_path, PASS, toml) as running:
        yield running


async def test_submit_with_pay_pays_the_quote_and_gets_the_result(node):
    data, relay = node.data, node.relay
    await asyncio.sleep(2.0)  # the node is up
    rc, out, err = await node.cli(
        "job", "submit", "--data", str(data), "--relay", relay, "--kind", "5001", "--input", TEXT, "--pay"
    )
    assert rc == 0, err
    assert out.strip() in TEXT
    assert "payment-required" in err and f"paid {PRICE} msat" in err
    rc, out, err = await node.cli("wallet", "--data", str(data), "--json")
    assert rc == 0, err
    rows = {row["agent"]: row for row in map(json.loads, out.splitlines())}
    assert rows["seller"]["paid"] == PRICE and rows["seller"]["refund_owed"] == 0
    rc, out, _ = await node.cli("wallet", "--data", str(data))
    assert "dev wallet: not real money" in out and "seller" in out


async def test_without_pay_the_quote_ends_the_wait(node):
    data, relay = node.data, node.relay
    await asyncio.sleep(2.0)
    rc, _, err = await node.cli("job", "submit", "--data", str(data), "--relay", relay, "--kind", "5001",
                            "--input", TEXT)
    assert rc == 1 and f"payment required: {PRICE} msat (lnbcrt" in err
    invoice = err.split("(lnbcrt", 1)[1].split(")")[0]
    rc, out, err = await node.cli("pay", "--data", str(data), "lnbcrt" + invoice)
    assert rc == 0, err
    assert f"paid {PRICE} msat" in out and "not real money" in out
    rc, _, err = await node.cli("pay", "--data", str(data), "lnbcrt" + invoice)
    assert rc == 2 and "already paid" in err
    rc, _, err = await node.cli("pay", "--data", str(data), "not an invoice")
    assert rc == 2 and "payment failed" in err
