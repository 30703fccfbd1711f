"""Web client speed: page time to first byte, and the NIP-07 login round trip.

``python -m bench.web [--requests 300]``

Starts a real ``timmy run`` (relay, engine, wallet, reputation, web, the
default agents) and, over loopback with one keep-alive HTTP connection:

* ``ttfb``: for each page, ``--requests`` GETs, timed from sending the request
  to the first byte of the response (httpx's response headers arriving);
* ``login``: the whole login as a browser does it, minus the extension's UI:
  ``POST /login/nonce``, sign the kind 27235 event (here with our own signer,
  as a NIP-07 extension would), ``POST /login``; timed end to end.

Prints one JSON object; with ``--out`` also writes it there.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import os
import re
import shutil
import tempfile
import time
from typing import Any

import httpx

from bench.jobs import _percentiles, start_node, stop_node
from bench.report import emit, machine
from nips.nip01 import Signer

PAGES = ("/", "/agents/summarizer", "/.well-known/nostr.json", "/login", "/health")


def _web_url(log: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"web ready at (http://\S+) ", log.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise RuntimeError(f"the web app did not start: {log.read_text()[-2000:]}")


def ttfb(http: httpx.Client, path: str, n: int) -> dict[str, Any]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        with http.stream("GET", path) as response:
            samples.append(time.perf_counter() - started)  # headers are in: the first byte came
            response.read()
            status = response.status_code
    return {"status": status, **_percentiles(samples)}


def login(http: httpx.Client, base: str, n: int) -> dict[str, Any]:
    samples = []
    for _ in range(n):
        signer = Signer(os.urandom(32))
        started = time.perf_counter()
        nonce = http.post("/login/nonce", headers={"Origin": base}).json()["nonce"]
        event = signer.sign(
            27235, "", [["u", f"{base}/login"], ["method", "POST"], ["challenge", nonce]],
            created_at=int(time.time()),
        )
        reply = http.post("/login", content=event.raw, headers={"Origin": base, "Content-Type": "application/json"})
        samples.append(time.perf_counter() - started)
        if reply.status_code != 200:
            raise RuntimeError(f"login refused: {reply.text}")
        http.cookies.clear()
    return _percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-web-"))
    proc, _ = start_node(workdir)
    try:
        base = _web_url(workdir / "node.log")
        time.sleep(1.0)
        with httpx.Client(base_url=base, timeout=10) as http:
            for path in PAGES:  # warm up
                http.get(path)
            result = {
                "benchmark": "web",
                "machine": machine(),
                "ttfb": {path: ttfb(http, path, args.requests) for path in PAGES},
                "login": login(http, base, max(50, args.requests // 5)),
            }
    finally:
        stop_node(proc)
        shutil.rmtree(workdir, ignore_errors=True)
    emit(result, args.out)


if __name__ == "__main__":
    main()
