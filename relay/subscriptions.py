"""Live subscriptions: which open REQs want a newly stored event.

NIP-01, "From client to relay": after the initial query a subscription keeps
receiving new events that match any of its filters (``limit`` no longer
applies). Checking every filter of every connection for every event does not
scale, so each filter is filed once under its most selective field -- ``ids``,
then ``authors``, then one tag filter, then ``kinds`` -- and an event only
looks up the posting lists for its own id, pubkey, tags and kind. Filters with
none of these fields sit in a catch-all list. Candidates are confirmed with
:meth:`Filter.matches`, so the index only has to never miss, not be exact.

Pure module: no I/O, no asyncio.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from nips.nip01 import Event, Filter

Key = tuple[int, str]  # (connection id, subscription id)
# ("id", value) | ("author", value) | ("tag", letter, value) | ("kind", k)
PostingKey = tuple[str, ...] | tuple[str, int]
_Entry = tuple[Key, int]  # a subscription and the position of one of its filters


def _posting_keys(f: Filter) -> Iterator[PostingKey]:
    """The lists ``f`` is filed under: the values of its most selective field."""
    if f.ids is not None:
        yield from (("id", v) for v in f.ids)
    elif f.authors is not None:
        yield from (("author", v) for v in f.authors)
    elif f.tags:
        letter, values = min(f.tags.items(), key=lambda item: len(item[1]))
        yield from (("tag", letter, v) for v in values)
    elif f.kinds is not None:
        yield from (("kind", k) for k in f.kinds)


def _event_keys(event: Event) -> Iterator[PostingKey]:
    """Every list a filter matching ``event`` could be filed under."""
    yield ("id", event.id)
    yield ("author", event.pubkey)
    yield ("kind", event.kind)
    # Same rule as Filter.matches: any tag, matched on its first value.
    for tag in event.tags:
        if len(tag) >= 2:
            yield ("tag", tag[0], tag[1])


class SubscriptionIndex:
    """Open subscriptions, indexed so :meth:`matching` looks at few filters."""

    def __init__(self) -> None:
        self._filters: dict[Key, list[Filter]] = {}
        self._by_conn: dict[int, set[str]] = {}
        self._postings: dict[PostingKey, set[_Entry]] = {}
        self._catch_all: set[_Entry] = set()

    def __len__(self) -> int:
        return len(self._filters)

    def count_for(self, conn_id: int) -> int:
        return len(self._by_conn.get(conn_id, ()))

    def add(self, key: Key, filters: Sequence[Filter]) -> None:
        """Open subscription ``key``, replacing one already open under that key."""
        self.remove(key)
        kept = [f for f in filters if f.can_match]
        self._filters[key] = kept
        self._by_conn.setdefault(key[0], set()).add(key[1])
        for position, f in enumerate(kept):
            entry = (key, position)
            postings = list(_posting_keys(f))
            if not postings:
                self._catch_all.add(entry)
            for pk in postings:
                self._postings.setdefault(pk, set()).add(entry)

    def remove(self, key: Key) -> None:
        """Close subscription ``key``; closing one that is not open is not an error."""
        kept = self._filters.pop(key, None)
        if kept is None:
            return
        conn_subs = self._by_conn[key[0]]
        conn_subs.discard(key[1])
        if not conn_subs:
            del self._by_conn[key[0]]
        for position, f in enumerate(kept):
            entry = (key, position)
            self._catch_all.discard(entry)
            for pk in _posting_keys(f):
                entries = self._postings[pk]
                entries.discard(entry)
                if not entries:
                    del self._postings[pk]

    def remove_connection(self, conn_id: int) -> None:
        """Close every subscription of one connection."""
        for sub_id in list(self._by_conn.get(conn_id, ())):
            self.remove((conn_id, sub_id))

    def matching(self, event: Event) -> set[Key]:
        """Keys of the subscriptions with at least one filter matching ``event``."""
        found: set[Key] = set()
        candidates: list[set[_Entry]] = [self._catch_all]
        for pk in _event_keys(event):
            entries = self._postings.get(pk)
            if entries:
                candidates.append(entries)
        for entries in candidates:
            for key, position in entries:
                if key not in found and self._filters[key][position].matches(event):
                    found.add(key)
        return found
