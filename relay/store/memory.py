"""In-memory event store: the reference backend.

Plain dicts and linear scans, written to be obviously correct rather than
fast. The conformance suite runs every backend against the same cases, and
this one is the yardstick; tests of other parts of the relay use it too.
Nothing survives :meth:`MemoryStore.close`.
"""

from __future__ import annotations

from collections.abc import Sequence

from nips.nip01 import Event, Filter, newest_first_key, supersedes
from nips.nip09 import DELETION_KIND, deletion_targets
from relay.store.base import SaveResult


def is_expired(event: Event, now: int) -> bool:
    expiration = event.expiration
    return expiration is not None and expiration <= now


class MemoryStore:
    """:class:`relay.store.base.EventStore` on dicts."""

    def __init__(self) -> None:
        self._events: dict[str, Event] = {}
        self._by_address: dict[str, str] = {}  # address -> id of the version kept
        self._deleted_ids: set[tuple[str, str]] = set()  # (id, author of the deletion)
        self._deleted_until: dict[str, int] = {}  # address -> newest deleted created_at

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def save_many(self, events: Sequence[Event]) -> list[SaveResult]:
        return [self._save(event) for event in events]

    async def query(self, filters: Sequence[Filter], *, now: int, default_limit: int) -> list[str]:
        found: dict[str, Event] = {}
        for flt in filters:
            if not flt.can_match:
                continue
            limit = default_limit if flt.limit is None else flt.limit
            for event in sorted(self._matching(flt, now), key=newest_first_key)[:limit]:
                found[event.id] = event
        return [event.raw for event in sorted(found.values(), key=newest_first_key)]

    async def count(self, filters: Sequence[Filter], *, now: int) -> int:
        found: set[str] = set()
        for flt in filters:
            if flt.can_match:
                found.update(event.id for event in self._matching(flt, now))
        return len(found)

    async def purge_expired(self, now: int) -> int:
        expired = [event for event in self._events.values() if is_expired(event, now)]
        for event in expired:
            self._remove(event)
        return len(expired)

    def _matching(self, flt: Filter, now: int) -> list[Event]:
        return [e for e in self._events.values() if flt.matches(e) and not is_expired(e, now)]

    def _save(self, event: Event) -> SaveResult:
        if event.kind != DELETION_KIND and (event.id, event.pubkey) in self._deleted_ids:
            return SaveResult.DELETED
        if event.id in self._events:
            return SaveResult.DUPLICATE
        address = event.address
        if address is not None:
            if self._deleted_until.get(address, -1) >= event.created_at:
                return SaveResult.DELETED
            kept_id = self._by_address.get(address)
            if kept_id is not None:
                kept = self._events[kept_id]
                if not supersedes(event, kept):
                    return SaveResult.REPLACED_NEWER
                self._remove(kept)
            self._by_address[address] = event.id
        self._events[event.id] = event
        if event.kind == DELETION_KIND:
            self._apply_deletion(event)
        return SaveResult.STORED

    def _apply_deletion(self, deletion: Event) -> None:
        ids, addresses = deletion_targets(deletion)
        for event_id in ids:
            self._deleted_ids.add((event_id, deletion.pubkey))
            target = self._events.get(event_id)
            if target and target.pubkey == deletion.pubkey and target.kind != DELETION_KIND:
                self._remove(target)
        for address in addresses:
            until = max(self._deleted_until.get(address, -1), deletion.created_at)
            self._deleted_until[address] = until
            kept_id = self._by_address.get(address)
            if kept_id is not None and self._events[kept_id].created_at <= until:
                self._remove(self._events[kept_id])

    def _remove(self, event: Event) -> None:
        del self._events[event.id]
        address = event.address
        if address is not None and self._by_address.get(address) == event.id:
            del self._by_address[address]
