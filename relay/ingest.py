"""Batching of the two expensive steps of accepting an event.

Signatures are checked on a worker thread (coincurve releases the GIL, so this
uses the second core) and events are stored in one transaction per batch
(group commit: one fsync for many events). A :class:`Batcher` runs a batch
with whatever queued up while the previous batch was running, so batches grow
with load and latency stays one round when idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from nips.nip01 import Event, verify_signature

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Feed items one by one; ``process`` sees them in batches of at most ``max_batch``."""

    def __init__(
        self, process: Callable[[list[T]], Awaitable[Sequence[R]]], max_batch: int
    ) -> None:
        self._process = process
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    results = await self._process([item for item, _ in batch])
                except Exception as exc:  # the store failed: every waiter hears about it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
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

    def __init__(self, max_batch: int = 512) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")
        self._batcher: Batcher[Event, bool] = Batcher(self._verify_batch, max_batch)

    async def _verify_batch(self, events: list[Event]) -> list[bool]:
        return await asyncio.get_running_loop().run_in_executor(self._pool, verify_all, events)

    async def verify(self, event: Event) -> bool:
        return await self._batcher.submit(event)

    async def close(self) -> None:
        await self._batcher.close()
        self._pool.shutdown(wait=True)
