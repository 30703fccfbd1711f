from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.store.base import EventStore
from relay.store.memory import MemoryStore
from relay.store.sqlite import SqliteStore


def new_store(kind: str, tmp_path: Path) -> EventStore:
    if kind == "memory":
        return MemoryStore()
    return SqliteStore(tmp_path / "events.sqlite3", synchronous="NORMAL")


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    """An opened store of each backend; every backend must pass the same tests."""
    opened = new_store(request.param, tmp_path)
    await opened.open()
    yield opened
    await opened.close()
