"""Real nodes for the web tests: relay, links, dev wallet, reputation, engine and web app.

The default agents run with prices set, so pages have sats to show. Pages are
fetched over real HTTP from ``nodes["web"].url``. Semantic memory is off: no
page needs it, and its model would only slow every test down.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from nostr_sdk import Keys

from node.config import DEFAULT_AGENTS, AgentConfig, loads
from tests.helpers import node_in_process
from tests.interop.conftest import nostr_relay  # noqa: F401  (a third-party relay, for federation)
from tests.web.chromium import browser  # noqa: F401  (the Chromium fixture, for every web test)

BASE = "[relay]\nport = 0\n[memory]\nenabled = false\n[web]\nport = 0\n"  # [web] last: see start_node
# (price_msat, price_per_kb_msat) of the default agents in these tests; the others work for free.
PRICES = {"summarizer": (21_000, 1_000), "pow": (1_500, 0), "reputation": (0, 0), "writer": (100_000, 0)}

StartNode = Callable[..., Awaitable[dict[str, Any]]]


def _priced(agent: AgentConfig, prices: Mapping[str, tuple[int, int]]) -> AgentConfig:
    price, per_kb = prices.get(agent.name, (0, 0))
    return dataclasses.replace(agent, price_msat=price, price_per_kb_msat=per_kb)


def new_identities() -> dict[str, Keys]:
    """Fresh keys for a node, a customer and every default agent, by keystore name."""
    names = ("node", "customer", *(f"agent-{agent.name}" for agent in DEFAULT_AGENTS))
    return {name: Keys.generate() for name in names}


@pytest.fixture
def identities() -> dict[str, Keys]:
    return new_identities()


@pytest.fixture
async def start_node(tmp_path: Path, identities: dict[str, Keys]) -> AsyncIterator[StartNode]:
    """Starts a node (``extra`` TOML appended to the config); stops it after the test.

    ``web`` holds lines for the ``[web]`` table (``operators = [...]``): it is
    the last table of ``BASE``, and ``extra`` goes after them.

    Each ``name`` gets its own data directory (and so its own dev wallet);
    ``keys`` replaces the ``identities`` fixture, for a second node; ``prices``
    replaces ``PRICES`` (``{}``: every agent works for free).
    """
    async with contextlib.AsyncExitStack() as nodes:

        async def start(
            extra: str = "",
            *,
            web: str = "",
            name: str = "node",
            keys: Mapping[str, Keys] | None = None,
            prices: Mapping[str, tuple[int, int]] = PRICES,
        ) -> dict[str, Any]:
            config = loads(BASE + web + "\n" + extra)
            config = dataclasses.replace(config, agents=tuple(_priced(a, prices) for a in config.agents))
            home = tmp_path / name
            home.mkdir()
            return await nodes.enter_async_context(node_in_process(config, home, keys or identities))

        yield start


@pytest.fixture
async def node(start_node: StartNode) -> dict[str, Any]:
    return await start_node()
