"""An event answered ``OK true`` survives SIGKILL of the relay (``relay.store.base`` contract).

The relay runs as a real process (``timmy relay``) on a SQLite file with the
shipped durability setting. Several connections publish as fast as the relay
acknowledges; once enough OKs have come back, with events still in flight,
the process is killed with SIGKILL. A fresh relay on the same data must then
serve every acknowledged event. This is done at a few different moments, on
the same data, so each restart also recovers the previous crash's WAL.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import coincurve
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import free_port, make_event, timmy

pytestmark = pytest.mark.slow

CONNECTIONS = 4
WINDOW = 256  # events in flight per connection: enough to keep the relay's batches full
KILL_AFTER = (1_500, 4_000, 600)  # OKs before each SIGKILL
EVENTS_PER_CONNECTION = 2_500  # per round: far more than are acknowledged before the kill
QUERY_CHUNK = 1_000  # max_filter_values
# Rates would refuse a flood from one address; everything else stays as shipped.
NO_RATE_LIMITS = {
    "events_per_minute_per_ip": 0,
    "events_per_minute_per_pubkey": 0,
    "reqs_per_minute_per_ip": 0,
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A node data dir from ``timmy init``, its relay limits opened for a flood."""
    data = tmp_path / "node"
    env = {**os.environ, "TIMMY_PASSPHRASE": "durability test passphrase"}
    subprocess.run(
        [*timmy(), "init", "--data", str(data), "--log-n", "8"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    config = data / "node.toml"
    text = config.read_text(encoding="utf-8")
    for key, value in NO_RATE_LIMITS.items():
        text, replaced = re.subn(rf"(?m)^{key}\s*=\s*\d+", f"{key} = {value}", text)
        assert replaced == 1, f"{key} not found in {config}"
    config.write_text(text, encoding="utf-8")
    return data


@dataclass
class RelayProcess:
    data: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*timmy(), "relay", "--data", str(self.data), "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout: float = 20) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"relay exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
        pytest.fail(f"relay did not listen within {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    def reap(self) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=10)

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.reap()


@dataclass
class Flood:
    """Shared state of the publishers of one round."""

    relay: RelayProcess
    kill_after: int
    acked: set[str] = field(default_factory=set)
    rejected: list[str] = field(default_factory=list)
    sent: int = 0
    in_flight_at_kill: int | None = None

    def on_ok(self, message: list[object]) -> None:
        event_id, accepted = message[1], message[2]
        if accepted is True:
            self.acked.add(str(event_id))
        else:
            self.rejected.append(f"{event_id}: {message[3]}")
        if self.in_flight_at_kill is None and len(self.acked) >= self.kill_after:
            self.in_flight_at_kill = self.sent - len(self.acked) - len(self.rejected)
            self.relay.kill()


async def publish(url: str, events: list[str], flood: Flood) -> None:
    """Send ``events`` (raw JSON) keeping ``WINDOW`` unanswered; stop when the relay dies."""
    window = asyncio.Semaphore(WINDOW)

    async def read_oks(ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                message = orjson.loads(raw)
                if message[0] == "OK":
                    flood.on_ok(message)
                    window.release()
        finally:
            for _ in range(WINDOW):  # wake the sender, which then sees the reader is done
                window.release()

    try:
        async with connect(url, max_size=None, compression=None) as ws:
            reader = asyncio.create_task(read_oks(ws))
            try:
                for raw in events:
                    await window.acquire()
                    if reader.done():
                        break
                    await ws.send(f'["EVENT",{raw}]')
                    flood.sent += 1
                await reader
            finally:
                reader.cancel()
    except (ConnectionClosed, OSError):
        pass  # the kill


def signed_events(count: int, key: coincurve.PrivateKey, round_no: int) -> list[str]:
    return [
        make_event(key, content=f"round {round_no} event {i}", tags=[["t", "durability"]]).raw
        for i in range(count)
    ]


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def stored_ids(url: str, wanted: set[str]) -> set[str]:
    """Which of ``wanted`` the relay serves, asked by id."""
    found: set[str] = set()
    async with connect(url, max_size=None) as ws:
        for n, chunk in enumerate(chunks(sorted(wanted), QUERY_CHUNK)):
            sub_id = f"check{n}"
            await ws.send(orjson.dumps(["REQ", sub_id, {"ids": chunk, "limit": len(chunk)}]))
            while True:
                message = orjson.loads(await ws.recv())
                if message[0] == "EVENT" and message[1] == sub_id:
                    found.add(message[2]["id"])
                elif message[0] == "EOSE" and message[1] == sub_id:
                    break
                elif message[0] == "CLOSED":
                    pytest.fail(f"query refused: {message}")
            await ws.send(orjson.dumps(["CLOSE", sub_id]))
    return found


async def test_acknowledged_events_survive_sigkill(data_dir: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    keys = [coincurve.PrivateKey() for _ in range(CONNECTIONS)]
    acked_so_far: set[str] = set()
    relay = RelayProcess(data_dir, tmp_path / "relay.log")
    try:
        for round_no, kill_after in enumerate(KILL_AFTER):
            batches = [signed_events(EVENTS_PER_CONNECTION, key, round_no) for key in keys]
            relay = RelayProcess(data_dir, tmp_path / "relay.log")
            relay.start()
            await relay.wait_ready()
            flood = Flood(relay, kill_after)
            await asyncio.wait_for(
                asyncio.gather(*(publish(relay.url, batch, flood) for batch in batches)),
                timeout=30,
            )
            status = relay.reap()
            assert status == -signal.SIGKILL, (
                f"round {round_no}: relay was not killed mid-stream (exit {status}, "
                f"{len(flood.acked)} OKs of {flood.sent} sent):\n{relay.log.read_text()}"
            )
            assert flood.rejected == [], flood.rejected[:5]
            assert flood.in_flight_at_kill, "nothing was in flight when the relay was killed"
            acked_so_far |= flood.acked

            relay = RelayProcess(data_dir, tmp_path / "relay.log")
            relay.start()
            await relay.wait_ready()
            found = await stored_ids(relay.url, acked_so_far)
            lost = acked_so_far - found
            assert not lost, (
                f"round {round_no}: {len(lost)} of {len(acked_so_far)} acknowledged events "
                f"lost after SIGKILL, e.g. {sorted(lost)[:3]}"
            )
            assert relay.terminate() == 0, relay.log.read_text()
    finally:
        if relay.proc is not None and relay.proc.poll() is None:
            relay.proc.kill()
            relay.proc.wait(timeout=10)
    assert time.monotonic() - started < 60
