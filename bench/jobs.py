"""Job round trip through a real node: request published -> result received.

``python -m bench.jobs [--jobs 500] [--seconds 10] [--inflight 1,16,64]``

Starts ``timmy run`` (relay + links + engine, as shipped, rate limits off) on
a fresh data directory, then one customer connection publishes trivial kind
5001 jobs (a three-sentence summary) and waits for each kind 6001 result:

* ``latency``: one job at a time (``--jobs`` of them): p50/p99 of the round trip;
* ``throughput``: ``N`` jobs kept in flight for ``--seconds``: results per
  second and the round trip under that load.

Prints one JSON object; with ``--out`` also writes it there.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from typing import Any

from bench.relays import ROOT, free_port
from bench.report import emit, int_list, machine
from nips.nip01 import Event, Signer
from node.config import default_toml
from node.links import RelayLink

TEXT = "The node runs jobs. Results come back over the relay. Each job is small."
PASSPHRASE = "bench passphrase"
NO_LIMITS = ("events_per_minute_per_ip", "events_per_minute_per_pubkey", "reqs_per_minute_per_ip")


def start_node(workdir: Path, agents: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A ``timmy run`` on a fresh data dir with rate limits off; (process, relay URL).

    ``agents``: ``[[agents]]`` tables replacing the default agents.
    """
    timmy = str(Path(sys.executable).with_name("timmy"))
    data = workdir / "node"
    data.mkdir(parents=True)
    env = {**os.environ, "TIMMY_PASSPHRASE": PASSPHRASE}
    text = default_toml()
    for key in NO_LIMITS:
        text = re.sub(rf"(?m)^{key}\s*=\s*\d+", f"{key} = 0", text)
    text = text.replace("[web]\nhost = \"127.0.0.1\"\nport = 8080", "[web]\nhost = \"127.0.0.1\"\nport = 0")
    if agents is not None:
        text = text[: text.index("[[agents]]")] + text[text.index("[logging]"):] + agents
    (data / "node.toml").write_text(text)
    subprocess.run([timmy, "init", "--data", str(data), "--log-n", "8"], env=env, check=True,
                   capture_output=True)
    port = free_port()
    log = (workdir / "node.log").open("wb")
    command = [timmy, "run", "--data", str(data), "--relay-port", str(port)]
    if os.environ.get("BENCH_PROFILE"):  # a cProfile of the node, written when it stops
        command = [sys.executable, "-m", "cProfile", "-o", os.environ["BENCH_PROFILE"], "-m", "node.cli",
                   *command[1:]]
    proc = subprocess.Popen(command,
                            env={**env, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"ws://127.0.0.1:{port}"


def stop_node(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


class Customer:
    def __init__(self, link: RelayLink) -> None:
        self.link = link
        self.signer = Signer(os.urandom(32))
        self.waiting: dict[str, tuple[float, asyncio.Future[float]]] = {}
        self.counter = 0
        link.subscribe("results", [{"kinds": [6001], "#p": [self.signer.pubkey]}], self._on_result)

    def _on_result(self, event: Event, relay: str) -> None:
        entry = self.waiting.pop(event.first_tag_value("e") or "", None)
        if entry is not None and not entry[1].done():
            entry[1].set_result(time.perf_counter() - entry[0])

    async def job(self) -> float:
        self.counter += 1
        request = self.signer.sign(
            5001, "", [["i", TEXT, "text"], ["param", "length", "1 sentences"], ["t", str(self.counter)]],
            created_at=int(time.time()),
        )
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[request.id] = (time.perf_counter(), done)
        ok, message = await self.link.publish(request)
        if not ok:
            raise RuntimeError(f"request refused: {message}")
        return await asyncio.wait_for(done, 30)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50_ms": round(pick(0.50), 2), "p90_ms": round(pick(0.90), 2),
            "p99_ms": round(pick(0.99), 2), "mean_ms": round(statistics.fmean(samples) * 1000, 2)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    proc, url = start_node(workdir)
    link = RelayLink(url, min_backoff=0.05)
    try:
        await link.start()
        if not await link.wait_connected(30):
            raise RuntimeError(f"node did not start: {(workdir / 'node.log').read_text()[-2000:]}")
        await asyncio.sleep(1.0)  # announcements out of the way
        customer = Customer(link)
        for _ in range(20):  # warm up
            await customer.job()
        latency = [await customer.job() for _ in range(args.jobs)]
        result: dict[str, Any] = {"latency": {"jobs": args.jobs, **_percentiles(latency)}, "throughput": []}
        print(json.dumps(result["latency"]), file=sys.stderr)
        for inflight in args.inflight:
            samples: list[float] = []
            deadline = time.perf_counter() + args.seconds

            async def worker(samples: list[float] = samples, deadline: float = deadline) -> None:
                while time.perf_counter() < deadline:
                    samples.append(await customer.job())

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(inflight)))
            elapsed = time.perf_counter() - started
            result["throughput"].append(
                {"inflight": inflight, "jobs": len(samples), "jobs_per_s": round(len(samples) / elapsed, 1),
                 **_percentiles(samples)}
            )
        return result
    finally:
        await link.stop()
        stop_node(proc)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--inflight", type=int_list, default=[1, 16, 64])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the node's data dir and log")
    args = parser.parse_args()
    result = {"benchmark": "jobs", "machine": machine(), **asyncio.run(run(args))}
    emit(result, args.out)


if __name__ == "__main__":
    main()
