"""Killed with SIGKILL mid-work and restarted, the node finishes every job exactly once.

A real ``timmy run`` process (relay + links + engine) takes 100 proof-of-work
jobs, each long enough that many are in flight at once. Once some results
are out, the process is killed with SIGKILL and started again on the same data
directory, twice. A customer connected throughout must end with exactly one
result per request, each a valid NIP-13 mining of its input.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from nips.nip01 import compute_id
from node.config import load
from node.links import LinkClosed
from tests.helpers import free_port, timmy

from .conftest import Customer

pytestmark = pytest.mark.slow

JOBS = 100
DIFFICULTY = 17  # ~130,000 hashes, ~0.1 s each: with 4 at a time, 100 jobs take seconds
PASSPHRASE = "restart test passphrase"


def _leading_zero_bits(hex_id: str) -> int:
    value = int(hex_id, 16)
    return 256 - value.bit_length()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "node"
    env = {**os.environ, "TIMMY_PASSPHRASE": PASSPHRASE}
    subprocess.run(
        [*timmy(), "init", "--data", str(data), "--log-n", "8"],
        env=env, check=True, capture_output=True, timeout=60,
    )
    config = data / "node.toml"
    text = config.read_text(encoding="utf-8")
    text, n = re.subn(r"(?m)^events_per_minute_per_pubkey\s*=\s*\d+", "events_per_minute_per_pubkey = 0", text)
    assert n == 1
    config.write_text(text, encoding="utf-8")
    assert load(config).relay.limits.events_per_minute_per_pubkey == 0
    return data


class Node:
    def __init__(self, data: Path, port: int) -> None:
        self.data, self.port = data, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data / "node.log"

    def start(self) -> None:
        env = {**os.environ, "TIMMY_PASSPHRASE": PASSPHRASE}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*timmy(), "run", "--data", str(self.data), "--relay-port", str(self.port), "--web-port", "0"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def _wait_for_log(node: Node, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in node.log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the node's log after {timeout} s")
        await asyncio.sleep(0.05)


async def test_sigkill_during_100_jobs_each_finishes_exactly_once(data_dir: Path):
    node = Node(data_dir, free_port())
    node.start()
    customer = Customer(f"ws://127.0.0.1:{node.port}")
    try:
        # Requests sent while the engine starts would be counted as resumed.
        await _wait_for_log(node, "engine ready", timeout=30)
        await customer.start()
        unsigned = {}
        requests = []
        for n in range(JOBS):
            draft = {"kind": 1, "content": f"job {n}", "tags": [], "created_at": 1_700_000_000 + n,
                     "pubkey": customer.pubkey}
            event = await customer.request(
                5970, [["i", orjson.dumps(draft).decode(), "text"], ["param", "pow", str(DIFFICULTY)]]
            )
            unsigned[event.id] = draft
            requests.append(event.id)
        for kill_after in (10, 40):
            await _wait_results(customer, requests, kill_after, timeout=60)
            node.kill()
            node.start()
        await _wait_results(customer, requests, JOBS, timeout=90)
        await asyncio.sleep(1.0)  # anything republished after the restart has arrived
        results = []
        for chunk in range(0, JOBS, 50):
            results += await customer.link.query(
                [{"kinds": [6970], "#e": requests[chunk:chunk + 50], "limit": 500}]
            )
        per_request: dict[str, int] = {}
        for result in results:
            per_request[result.first_tag_value("e")] = per_request.get(result.first_tag_value("e"), 0) + 1
            mined = orjson.loads(result.content)
            draft = unsigned[result.first_tag_value("e")]
            assert mined["content"] == draft["content"]
            mined_id = compute_id(mined["pubkey"], mined["created_at"], mined["kind"], mined["tags"], mined["content"])
            assert _leading_zero_bits(mined_id) >= DIFFICULTY
        assert per_request == {rid: 1 for rid in requests}, "every job has exactly one result"
    finally:
        await customer.stop()
        node.stop()
    log = node.log.read_text(errors="replace")
    resumed = [int(n) for n in re.findall(r"resuming (\d+) jobs", log)]
    assert len(resumed) == 2 and min(resumed) >= 10, f"the kills must hit jobs in flight: {resumed}"


async def _wait_results(customer: Customer, requests: list[str], count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = 0
        try:
            for chunk in range(0, len(requests), 50):
                found += len(
                    await customer.link.query(
                        [{"kinds": [6970], "#e": requests[chunk:chunk + 50], "limit": 500}], timeout=10
                    )
                )
        except (TimeoutError, LinkClosed):  # the node is restarting
            continue
        if found >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {found} of {count} results within {timeout} s")
