"""Paid jobs: settlement -> ``processing`` latency through a node, and dev invoice creation rate.

``python -m bench.payments [--jobs 50] [--seconds 5]``

* ``settlement``: a real ``timmy run`` (dev wallet) with one agent charging
  21 sat per kind 5001 job. For each job, the customer waits for the
  ``payment-required`` quote, pays the invoice through the dev wallet's file
  (as ``timmy pay`` does, from this other process), and times from the end of
  that payment to the ``processing`` feedback reaching it over the relay. That
  path includes the node noticing another process's payment (it polls the
  wallet file every 20 ms), the exactly-once transition, and the relay.
* ``invoices``: ``DevWallet.create_invoice`` in a loop for ``--seconds``:
  BOLT11 encoding and signing plus one durable SQLite insert each.

Prints one JSON object; with ``--out`` also writes it there.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from typing import Any

from bench.jobs import _percentiles, start_node, stop_node
from bench.report import emit, machine
from nips.nip01 import Event, Signer
from node.links import RelayLink
from node.wallet.dev import DevWallet

PRICE = 21_000
AGENT = f'\n[[agents]]\nname = "seller"\nkinds = [5001]\nprice_msat = {PRICE}\n'


async def settlement(workdir: Path, jobs: int) -> dict[str, Any]:
    proc, url = start_node(workdir, agents=AGENT)
    wallet = DevWallet(workdir / "node" / "wallet-dev.sqlite3", os.urandom(32))
    link = RelayLink(url, min_backoff=0.05)
    inbox: asyncio.Queue[Event] = asyncio.Queue()
    customer = Signer(os.urandom(32))
    try:
        await link.start()
        if not await link.wait_connected(30):
            raise RuntimeError("node did not start")
        await asyncio.sleep(1.0)
        wallet.open()
        link.subscribe("mine", [{"kinds": [7000], "#p": [customer.pubkey]}], lambda e, _: inbox.put_nowait(e))
        samples = []
        for n in range(jobs):
            request = customer.sign(5001, "", [["i", "Pay first. Then work.", "text"], ["t", str(n)]],
                                    created_at=int(time.time()))
            await link.publish(request)
            quote = await _next(inbox, request.id, "payment-required")
            bolt11 = next(t for t in quote.tags if t[0] == "amount")[2]
            await wallet.pay(bolt11)
            paid = time.perf_counter()
            await _next(inbox, request.id, "processing")
            samples.append(time.perf_counter() - paid)
        return {"jobs": jobs, **_percentiles(samples)}
    finally:
        wallet.close()
        await link.stop()
        stop_node(proc)


async def _next(inbox: asyncio.Queue[Event], request_id: str, status: str) -> Event:
    async with asyncio.timeout(30):
        while True:
            event = await inbox.get()
            if event.first_tag_value("e") == request_id and event.first_tag_value("status") == status:
                return event


async def invoices(workdir: Path, seconds: float) -> dict[str, Any]:
    wallet = DevWallet(workdir / "bench-wallet.sqlite3", os.urandom(32))
    wallet.open()
    try:
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            await wallet.create_invoice(PRICE, label=f"bench:{count}", description="bench")
            count += 1
        elapsed = time.perf_counter() - started
    finally:
        wallet.close()
    return {"invoices": count, "per_second": round(count / elapsed, 1), "ms_each": round(elapsed / count * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-payments-"))
    try:
        result = {
            "benchmark": "payments",
            "machine": machine(),
            "settlement_to_processing": asyncio.run(settlement(workdir, args.jobs)),
            "dev_invoices": asyncio.run(invoices(workdir, args.seconds)),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    emit(result, args.out)


if __name__ == "__main__":
    main()
