"""Batching of the two expensive steps of accepting an event.

Signatures are checked on a worker thread (coincurve releases the GIL, so this
uses the second core) and events are stored in one transaction per batch
(group commit: one fsync for many events). A :class:`Batcher` runs a batch
with whatever queued up while the previous batch was running, so batches grow
with load and latency stays one round when idle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from nips.nip01 import Event, verify_signature

log = logging.getLogger("timmy.relay")

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Feed items one by one; ``process`` sees them in batches of at most ``max_batch``.

    Each item's ``on_done`` is called with its result, or with the exception
    that failed its batch. Callbacks rather than a future and a task per item:
    at 10,000 events a second the per-item bookkeeping is what shows.
    """

    def __init__(
        self, process: Callable[[list[T]], Awaitable[Sequence[R]]], max_batch: int
    ) -> None:
        self._process = process
        self._max_batch = max_batch
        self._queue: list[tuple[T, Callable[[R | Exception], None]]] = []
        self._runner: asyncio.Task[None] | None = None

    def submit(self, item: T, on_done: Callable[[R | Exception], None]) -> None:
        self._queue.append((item, on_done))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    results: Sequence[R | Exception] = await self._process(
                        [item for item, _ in batch]
                    )
                except Exception as exc:  # e.g. the store failed: every waiter hears about it
                    results = [exc] * len(batch)
                for (_, on_done), result in zip(batch, results, strict=True):
                    try:
                        on_done(result)
                    except Exception:
                        log.exception("batch callback failed")
        finally:
            self._runner = None

    async def close(self) -> None:
        """Finish what is queued (events already acknowledged must not be dropped)."""
        while self._runner is not None:
            await asyncio.shield(self._runner)


def verify_all(events: Sequence[Event]) -> list[bool]:
    return [verify_signature(event) for event in events]


class SignatureChecker:
    """Verifies signatures in batches on one worker thread."""

    def __init__(self, max_batch: int = 64) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")
        self._batcher: Batcher[Event, bool] = Batcher(self._verify_batch, max_batch)

    async def _verify_batch(self, events: list[Event]) -> list[bool]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, verify_all, events)

    def submit(self, event: Event, on_done: Callable[[bool | Exception], None]) -> None:
        self._batcher.submit(event, on_done)

    async def close(self) -> None:
        await self._batcher.close()
        self._pool.shutdown(wait=True)
