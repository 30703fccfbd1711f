"""Fixtures of the engine tests: real relays over real websockets, engines, customers.

A :class:`Customer` is a key plus a link to a relay: it publishes signed
requests and collects what agents answer, the way any Nostr client would.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from dvm.agents import build_agents
from dvm.engine import Engine
from dvm.handlers import discover
from dvm.store import JobStore
from nips.nip01 import Event, Signer
from node.config import AgentConfig, EngineSettings
from node.links import RelayLink, RelayPool
from relay.server import RelayServer
from relay.settings import RelaySettings
from relay.store.memory import MemoryStore


class Customer:
    def __init__(self, url: str) -> None:
        self.signer = Signer(os.urandom(32))
        self.link = RelayLink(url, min_backoff=0.05)
        self.inbox: asyncio.Queue[Event] = asyncio.Queue()
        self._subs = 0

    @property
    def pubkey(self) -> str:
        return self.signer.pubkey

    async def start(self) -> None:
        await self.link.start()
        assert await self.link.wait_connected(5)
        # Everything addressed to us: feedback and results carry our p tag.
        self.link.subscribe("inbox", [{"#p": [self.pubkey]}], lambda e, _: self.inbox.put_nowait(e))

    async def request(
        self, kind: int, tags: Sequence[Sequence[str]], content: str = "", created_at: int | None = None
    ) -> Event:
        import time

        event = self.signer.sign(
            kind, content, [list(t) for t in tags], created_at=created_at or int(time.time())
        )
        ok, message = await self.link.publish(event)
        assert ok, message
        return event

    async def answers(
        self, request_id: str, until: Callable[[list[Event]], bool], timeout: float = 10.0
    ) -> list[Event]:
        """Events answering ``request_id`` (first e tag), collected until ``until(seen)``."""
        seen: list[Event] = []
        async with asyncio.timeout(timeout):
            while not until(seen):
                event = await self.inbox.get()
                if event.first_tag_value("e") == request_id:
                    seen.append(event)
        return seen

    async def result(self, request_id: str, timeout: float = 10.0) -> tuple[list[Event], Event]:
        """(all answers, the result or error feedback that ended the job)."""
        answers = await self.answers(request_id, lambda seen: any(_final(e) for e in seen), timeout)
        return answers, next(e for e in answers if _final(e))

    async def stop(self) -> None:
        await self.link.stop()


def _final(event: Event) -> bool:
    if 6000 <= event.kind <= 6999:
        return True
    return event.kind == 7000 and event.first_tag_value("status") in ("error", "payment-required")


def status(event: Event) -> str:
    return event.first_tag_value("status") or ""


@pytest.fixture
async def start_relay() -> AsyncIterator[Callable[[], Awaitable[RelayServer]]]:
    servers: list[RelayServer] = []

    async def start() -> RelayServer:
        server = RelayServer(RelaySettings(host="127.0.0.1", port=0), MemoryStore())
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def relay(start_relay: Callable[[], Awaitable[RelayServer]]) -> RelayServer:
    return await start_relay()


StartEngine = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def start_engine(tmp_path: Path) -> AsyncIterator[StartEngine]:
    """``await start_engine([AgentConfig...], [relay urls], db=..., **engine settings)``."""
    running: list[tuple[Engine, JobStore, RelayPool]] = []
    keys: dict[str, Signer] = {}

    async def start(
        agents: Sequence[AgentConfig],
        urls: Sequence[str],
        *,
        db: Path | None = None,
        node_key: Signer | None = None,
        retired: Sequence[str] = (),
        wallet: Any = None,
        services: Any = None,
        **settings: Any,
    ) -> Engine:
        signers = {a.name: keys.setdefault(a.name, Signer(os.urandom(32))) for a in agents}
        store = JobStore(db or tmp_path / f"node{len(running)}.sqlite3")
        await store.open()
        pool = RelayPool(urls, min_backoff=0.05)
        await pool.start()
        assert await pool.wait_connected(5)
        engine = Engine(
            build_agents(agents, signers, discover()),
            store,
            pool,
            settings=EngineSettings(**settings),
            home_relay=urls[0],
            node_pubkey=(node_key or keys.setdefault("(node)", Signer(os.urandom(32)))).pubkey,
            federation_relays=urls[1:],
            retired_signers={name: keys[name] for name in retired},
            wallet=wallet,
            services=services,
        )
        if wallet is not None:
            await wallet.start(engine.billing.on_settled)
        await engine.start()
        running.append((engine, store, pool))
        return engine

    async def stop(engine: Engine) -> None:
        for item in running:
            if item[0] is engine:
                running.remove(item)
                await _shutdown(*item)
                return

    start.stop = stop  # type: ignore[attr-defined]
    start.keys = keys  # type: ignore[attr-defined]
    yield start
    for item in reversed(running):
        await _shutdown(*item)


async def _shutdown(engine: Engine, store: JobStore, pool: RelayPool) -> None:
    await engine.stop()
    await pool.stop()
    await store.close()


@pytest.fixture
async def customer(relay: RelayServer) -> AsyncIterator[Customer]:
    c = Customer(relay.url)
    await c.start()
    yield c
    await c.stop()


SUMMARIZER = AgentConfig("summarizer", "Summarizes.", kinds=(5001,))
POW = AgentConfig("pow", "Proof of work.", kinds=(5970,))

TEXT = (
    "The relay stores every event the node signs. "
    "Bitcoin payments settle jobs over Lightning. "
    "Agents on the node bid for jobs in sealed auctions. "
    "The weather was pleasant that day. "
    "A sealed auction lets agents bid without seeing each other's bids."
)


async def wait_state(engine: Engine, job_id: str, state: str, timeout: float = 5.0) -> None:
    """Wait until the job's stored state is ``state`` (results are published before the last commit)."""
    async with asyncio.timeout(timeout):
        while True:
            record = await engine.store.get(job_id)
            if record is not None and record.state.value == state:
                return
            await asyncio.sleep(0.02)
