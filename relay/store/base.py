"""The storage protocol every relay backend implements.

A backend stores events with NIP-01 kind semantics (regular, replaceable,
addressable; ephemeral events never reach it), NIP-09 deletions and NIP-40
expiry, and answers filters newest first. All backends run the same
conformance suite in ``tests/relay/store/``.

Durability contract: when :meth:`EventStore.save_many` returns, every event it
reported as ``STORED`` survives a crash of the process (SIGKILL).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

from nips.nip01 import Event, Filter


class SaveResult(enum.Enum):
    """What the store did with one event; each maps to one NIP-01 ``OK`` answer."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # already had this exact event
    REPLACED_NEWER = "replaced-newer"  # a newer version at its address is stored
    DELETED = "deleted"  # its author deleted it (NIP-09) before it arrived

    @property
    def accepted(self) -> bool:
        """Whether the relay answers ``OK true`` (it has the event or something newer)."""
        return self is not SaveResult.DELETED

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    SaveResult.STORED: "",
    SaveResult.DUPLICATE: "duplicate: already have this event",
    SaveResult.REPLACED_NEWER: "duplicate: have a newer version of this event",
    SaveResult.DELETED: "blocked: this event was deleted by its author",
}


class EventStore(Protocol):
    """Async storage of events. Implementations: ``sqlite.SqliteStore``, ``memory.MemoryStore``."""

    async def open(self) -> None:
        """Create or migrate the schema; must be called once before use."""

    async def close(self) -> None:
        """Flush and release resources."""

    async def save_many(self, events: Sequence[Event]) -> list[SaveResult]:
        """Store a batch (one transaction); results in input order.

        - Regular events are inserted; an already-stored id is ``DUPLICATE``.
        - Replaceable (0, 3, 10000-19999) and addressable (30000-39999, keyed by
          ``d``) events replace the stored version at their address when
          :func:`nips.nip01.supersedes` says so; otherwise ``REPLACED_NEWER``.
        - Kind 5 (NIP-09) deletes the referenced events of the same author:
          ``e`` tags by id, ``a`` tags every version up to the deletion's
          ``created_at``. Kind-5 events themselves are never deleted this way.
          The deletion is remembered, so a deleted event arriving later is
          ``DELETED``.
        - Events with a NIP-40 ``expiration`` tag are stored with it and never
          served after it.
        """
        ...

    async def query(self, filters: Sequence[Filter], *, now: int, default_limit: int) -> list[str]:
        """Raw JSON of the events matching any filter, without duplicates.

        Each filter contributes at most ``limit`` events (``default_limit`` when
        it has none), newest first with ties broken by lowest id. The union is
        ordered the same way. Events expired at ``now`` are left out.
        """
        ...

    async def count(self, filters: Sequence[Filter], *, now: int) -> int:
        """Number of distinct unexpired events matching any filter (NIP-45), ignoring limits."""
        ...

    async def purge_expired(self, now: int) -> int:
        """Delete events whose expiration is at or before ``now``; return how many."""
        ...
