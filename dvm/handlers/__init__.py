"""Job handlers: one module per NIP-90 job kind, found by :func:`discover`.

A handler module exposes ``HANDLER``, an object with the :class:`Handler`
interface. Adding a kind to the node is adding a module here; the engine,
the announcements and ``timmy agents`` pick it up without other changes.

The engine does the protocol work (parsing, encryption, payment, feedback,
persistence). A handler sees a :class:`JobContext`: the parsed request, its
inputs resolved to text, the agent's settings for it, and a way to report
progress. It returns an :class:`Output` or raises :class:`HandlerError`, whose
message goes to the customer in a ``7000 error``.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nips.nip90 import JobRequest

Settings = Mapping[str, str | int | float | bool]


class HandlerError(Exception):
    """The job cannot be done; ``str()`` is the reason shown to the customer."""


@dataclass(frozen=True, slots=True)
class Output:
    content: str
    mime: str = "text/plain"
    tags: tuple[tuple[str, ...], ...] = ()  # extra tags for the result event, e.g. ("sort", "globalPagerank")


async def _no_progress(info: str, partial: str = "") -> None:
    return None


@dataclass(slots=True)
class JobContext:
    """What a handler gets for one job."""

    request: JobRequest
    # The request's inputs in order, resolved by the engine: a `text` input is
    # its data, an `event` input the event's content (a NIP-94 kind 1063 file
    # event: its `url`), a `job` input the content of that job's result; a
    # `url` input is the URL itself.
    texts: list[str]
    settings: Settings = field(default_factory=dict)
    # Set when the job is cancelled or timed out. Handlers that run work in a
    # thread must poll it: a thread cannot be stopped from outside.
    stop: threading.Event = field(default_factory=threading.Event)
    # Publishes `partial` feedback: progress("3/10 chunks", sample_text).
    progress: Callable[..., Awaitable[None]] = _no_progress
    # The node's services a handler may use, by name: "reputation"
    # (reputation.service.ReputationService), "blobs" (node.blobs.BlobStore),
    # "memory" (dvm.memory.MemoryService). A node may lack any of them.
    services: Mapping[str, Any] = field(default_factory=dict)


class Handler(Protocol):
    kind: int  # the job request kind served (5000-5999)
    name: str  # short identifier used in logs and metrics, e.g. "summarize"
    title: str  # one line for humans, used in NIP-89 announcements

    def check_settings(self, settings: Settings) -> None:
        """Raise ``ValueError`` naming the bad key if ``settings`` are unusable."""

    def unavailable(self, settings: Settings) -> str | None:
        """Why this handler cannot serve with these settings (then it is not announced), or None."""

    def validate(self, request: JobRequest, settings: Settings) -> None:
        """Cheap checks before the job is accepted; raise :class:`HandlerError`."""

    async def run(self, ctx: JobContext) -> Output:
        """Do the work; raise :class:`HandlerError` with a reason on failure."""


class WithoutSettings:
    """For handlers that take no settings and can always serve: the two checks, done."""

    def check_settings(self, settings: Settings) -> None:
        if settings:
            raise ValueError(f"no settings are known, got {', '.join(settings)}")

    def unavailable(self, settings: Settings) -> str | None:
        return None


def discover() -> dict[int, Handler]:
    """Every ``HANDLER`` in this package, by kind; two modules claiming one kind is a bug."""
    found: dict[int, Handler] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        handler = getattr(importlib.import_module(f"{__name__}.{module.name}"), "HANDLER", None)
        if handler is None:
            continue
        if handler.kind in found:
            raise RuntimeError(f"kind {handler.kind} has two handlers: {found[handler.kind].name}, {handler.name}")
        found[handler.kind] = handler
    return found
