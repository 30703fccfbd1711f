"""A real node for the web tests: relay, links, dev wallet, reputation, engine and web app.

The default agents run with prices set, so pages have sats to show. Pages are
fetched over real HTTP from ``nodes["web"].url``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nostr_sdk import Keys

from node.config import loads
from tests.helpers import node_in_process
from tests.web.chromium import browser  # noqa: F401  (the Chromium fixture, for every web test)

BASE = "[relay]\nport = 0\n[web]\nport = 0\n"
# (price_msat, price_per_kb_msat) of the default agents in these tests.
PRICES = {"summarizer": (21_000, 1_000), "pow": (1_500, 0), "reputation": (0, 0), "writer": (100_000, 0)}

StartNode = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def identities() -> dict[str, Keys]:
    names = ("node", "customer", "agent-summarizer", "agent-pow", "agent-reputation", "agent-writer")
    return {name: Keys.generate() for name in names}


@pytest.fixture
async def start_node(tmp_path: Path, identities: dict[str, Keys]) -> AsyncIterator[StartNode]:
    """Starts a node (``extra`` TOML appended to the config); stops it after the test."""
    async with contextlib.AsyncExitStack() as nodes:

        async def start(extra: str = "") -> dict[str, Any]:
            config = loads(BASE + extra)
            agents = tuple(
                dataclasses.replace(a, price_msat=PRICES[a.name][0], price_per_kb_msat=PRICES[a.name][1])
                for a in config.agents
            )
            config = dataclasses.replace(config, agents=agents)
            return await nodes.enter_async_context(node_in_process(config, tmp_path, identities))

        yield start


@pytest.fixture
async def node(start_node: StartNode) -> dict[str, Any]:
    return await start_node()
