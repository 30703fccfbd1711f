"""Semantic memory: the text of the events the node reads, embedded and searchable by meaning.

Kind 5302 jobs (``shared/specs/dvm-kinds/5302.md``, "Nostr Content Search")
search it; ``docs/memory.md`` has the design and its measured numbers.

What is indexed (:func:`memory_text`), for the kinds configured in ``[memory]``:

- kind 1 notes: the content;
- kind 30023 long-form articles (NIP-23): the ``title`` tag, then the content;
- job results, kinds 6000-6999 (NIP-90 "Job result"): the content when it is
  prose, not when the result is encrypted (an ``encrypted`` tag), JSON, or a
  bare URL;
- kind 30078 (NIP-78, application data) only under the *agents' memory*
  convention: ``d`` = ``timmy:memory:<slug>``, the content being a note an
  agent or operator wants remembered, in plain text (an optional ``title``
  tag is prepended like a long-form title). Being addressable, writing the
  same ``d`` again replaces the memory; a NIP-09 deletion of its address
  forgets it;
- any other kind configured: the content.

Texts shorter than :data:`MIN_TEXT_CHARS` are skipped. Replaceable and
addressable events keep only their newest version (NIP-01 "Kinds"); a NIP-09
kind 5 deletion from the author removes what it names, and is remembered so
that the deleted event is not indexed again if it arrives later.

Two layers, as elsewhere in the node: :class:`MemoryIndex` is synchronous
storage and search on one SQLite connection, confined to the thread that
opened it; :class:`MemoryService` is the asyncio shell that subscribes to the
relays, embeds in a worker thread and writes through a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np
import orjson

from dvm.embedding import DIMENSIONS, Embedder, EmbedderUnavailable
from nips.nip01 import Event
from nips.nip09 import DELETION_KIND, deletion_targets
from nips.nip90 import is_encrypted

if TYPE_CHECKING:
    from collections.abc import Callable

    from node.links import RelayPool

log = logging.getLogger(__name__)

LONG_FORM_KIND = 30023
APP_DATA_KIND = 30078
MEMORY_PREFIX = "timmy:memory"  # d tags of kind 30078 events that are agents' memories
RESULT_KINDS = range(6000, 7000)
MIN_TEXT_CHARS = 12
SNIPPET_CHARS = 280
MODEL = "all-MiniLM-L6-v2-int8/mean/l2"  # what the stored vectors mean; another model means re-embedding

# Re-ranked rows per query: the binary scan's shortlist. With real MiniLM
# vectors, 100,000 rows and k=10 (bench/search.py), recall@10 is 0.95 at 100,
# 0.98 at 200, 0.994 at 400, 0.999 at 800; 400 costs ~0.4 ms more than 100.
CANDIDATES = 400
_BITS_WORDS = DIMENSIONS // 64
_FAR = np.uint16(DIMENSIONS + 1)  # a hamming distance no real row reaches


class MemoryUnavailable(RuntimeError):
    """Raised when the memory cannot work here: pysqlite3, sqlite-vec or the model is missing."""


class Outcome(enum.Enum):
    """What :meth:`MemoryIndex.add` did with one event."""

    ADDED = "added"
    REPLACED = "replaced"  # a newer version of an addressable event took the old one's place
    DUPLICATE = "duplicate"  # the same event id is indexed already
    STALE = "stale"  # a newer version of it is indexed
    DELETED = "deleted"  # its author deleted it (NIP-09) before it arrived
    NO_TEXT = "no-text"  # nothing in it to index


class Hit(NamedTuple):
    event_id: str
    kind: int
    score: float  # cosine similarity to the query, -1 to 1


# --- what to embed ------------------------------------------------------------------


def memory_text(event: Event) -> str | None:
    """The text the index embeds for ``event``, or None when it has none worth indexing."""
    kind, content = event.kind, event.content
    if kind == LONG_FORM_KIND:
        text = _titled(event, content)
    elif kind in RESULT_KINDS:
        if is_encrypted(event) or _not_prose(content):
            return None
        text = content
    elif kind == APP_DATA_KIND:
        if not event.d_tag.startswith(MEMORY_PREFIX):
            return None  # other applications' data: settings, state, not text
        text = _titled(event, content)
    else:
        text = content
    text = text.strip()
    return text if len(text) >= MIN_TEXT_CHARS else None


def _titled(event: Event, content: str) -> str:
    title = (event.first_tag_value("title") or "").strip()
    return f"{title}\n\n{content}" if title else content


def _not_prose(content: str) -> bool:
    """JSON (a structured result) or one bare URL (a file result)."""
    text = content.strip()
    if text[:1] in ("{", "["):
        try:
            orjson.loads(text)
            return True
        except orjson.JSONDecodeError:
            return False
    return text.startswith(("http://", "https://")) and not any(c.isspace() for c in text)


def _newer(created_at: int, event_id: str, old_created_at: int, old_id: str) -> bool:
    """NIP-01 "Kinds": the later ``created_at`` wins; on a tie, the lowest id."""
    if created_at != old_created_at:
        return created_at > old_created_at
    return event_id < old_id


# --- the index -------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    rowid INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    pubkey TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    address TEXT,
    snippet TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_address ON documents(address) WHERE address IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_author ON documents(pubkey, created_at);
CREATE TABLE IF NOT EXISTS vectors (
    rowid INTEGER PRIMARY KEY,
    bits BLOB NOT NULL,
    embedding BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS deleted_ids (
    event_id TEXT NOT NULL,
    pubkey TEXT NOT NULL,
    PRIMARY KEY (event_id, pubkey)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deleted_addresses (
    address TEXT PRIMARY KEY,
    until INTEGER NOT NULL
) WITHOUT ROWID;
"""


def open_database(path: str) -> Any:
    """A pysqlite3 connection (autocommit) with sqlite-vec loaded."""
    try:
        import pysqlite3.dbapi2 as sqlite3
        import sqlite_vec
    except ImportError as exc:
        # The standard sqlite3 of most Python builds cannot load extensions.
        raise MemoryUnavailable(f"semantic memory needs pysqlite3-binary and sqlite-vec: {exc}") from exc
    db = sqlite3.connect(path, isolation_level=None)
    db.enable_load_extension(True)
    db.load_extension(sqlite_vec.loadable_path())
    db.enable_load_extension(False)
    return db


class _Rows:
    """What a search scans, in memory, one slot per indexed row: bits, filter columns, liveness.

    Slots are appended; a removed row's slot is marked dead and reused only
    after a reopen. Arrays grow by doubling.
    """

    def __init__(self) -> None:
        self.size = 0
        self.rowids = np.zeros(0, np.int64)
        # One row per 64-bit word of the bits: a search then runs over long contiguous arrays.
        self.bits = np.zeros((_BITS_WORDS, 0), np.uint64)
        self.kinds = np.zeros(0, np.int32)
        self.created = np.zeros(0, np.int64)
        self.authors = np.zeros(0, np.int32)
        self.live = np.zeros(0, bool)
        self.author_ids: dict[str, int] = {}
        self.slot_of: dict[int, int] = {}

    def append(self, rowid: int, bits: bytes, kind: int, pubkey: str, created_at: int) -> None:
        if self.size == len(self.rowids):
            self._grow(max(1024, 2 * self.size))
        slot = self.size
        self.rowids[slot] = rowid
        self.bits[:, slot] = np.frombuffer(bits, np.uint64)
        self.kinds[slot] = kind
        self.created[slot] = created_at
        self.authors[slot] = self.author_ids.setdefault(pubkey, len(self.author_ids))
        self.live[slot] = True
        self.slot_of[rowid] = slot
        self.size += 1

    def extend(self, found: list[tuple[int, bytes, int, str, int]]) -> None:
        """Append many rows at once (the load at open): ``append``'s arguments, in bulk."""
        if not found:
            return
        self._grow(max(1024, self.size + len(found)))
        rowids, bits, kinds, pubkeys, created = zip(*found, strict=True)
        end = self.size + len(found)
        self.rowids[self.size : end] = rowids
        self.bits[:, self.size : end] = np.frombuffer(b"".join(bits), np.uint64).reshape(-1, _BITS_WORDS).T
        self.kinds[self.size : end] = kinds
        self.created[self.size : end] = created
        ids = self.author_ids
        self.authors[self.size : end] = [ids.setdefault(p, len(ids)) for p in pubkeys]
        self.live[self.size : end] = True
        self.slot_of.update(zip(rowids, range(self.size, end), strict=True))
        self.size = end

    def remove(self, rowid: int) -> None:
        slot = self.slot_of.pop(rowid, None)
        if slot is not None:
            self.live[slot] = False

    def _grow(self, capacity: int) -> None:
        for name in ("rowids", "kinds", "created", "authors", "live"):
            old = getattr(self, name)
            new = np.zeros(capacity, old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)
        bits = np.zeros((_BITS_WORDS, capacity), np.uint64)
        bits[:, : self.size] = self.bits[:, : self.size]
        self.bits = bits

    def hamming(self, query_bits: np.ndarray) -> np.ndarray:
        """Bits differing between the query's 384 and each slot's, as uint16."""
        distances = np.zeros(self.size, np.uint16)
        for word, plane in zip(query_bits, self.bits[:, : self.size], strict=True):
            distances += np.bitwise_count(plane ^ word)
        return distances

    def matching(
        self,
        authors: Iterable[str] | None,
        since: int | None,
        until: int | None,
        kinds: Iterable[int] | None,
    ) -> np.ndarray:
        """A boolean mask over the slots ``[0, size)``: live rows that pass the filters."""
        mask = self.live[: self.size].copy()
        if authors is not None:
            ids = [self.author_ids[a] for a in authors if a in self.author_ids]
            mask &= np.isin(self.authors[: self.size], np.array(ids, np.int32))
        if since is not None:
            mask &= self.created[: self.size] >= since
        if until is not None:
            mask &= self.created[: self.size] <= until
        if kinds is not None:
            mask &= np.isin(self.kinds[: self.size], np.array(list(kinds), np.int32))
        return mask


def _nearest(distances: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` smallest distances, in no order.

    Distances are small integers (0-385): a histogram finds the cut-off in
    one pass, several times faster than ``argpartition``.
    """
    reached = np.cumsum(np.bincount(distances, minlength=int(_FAR) + 1))
    cutoff = int(np.searchsorted(reached, count))  # the smallest distance with `count` rows at or under it
    inside = np.flatnonzero(distances < cutoff)
    at_edge = np.flatnonzero(distances == cutoff)[: count - len(inside)]
    return np.concatenate([inside, at_edge])


class MemoryIndex:
    """Embedded events in SQLite, searched by a binary-quantised scan then an exact re-rank.

    Each row keeps its float32 vector and its sign bits (``vec_quantize_binary``
    of sqlite-vec: one bit per dimension, 48 bytes). A search computes the
    hamming distance from the query's bits to every row that passes the filters
    (the bits and filter columns live in memory, loaded at open), shortlists
    the ``candidates`` nearest, reads their float vectors in one query and
    ranks them by cosine. When the filters leave ``candidates`` rows or fewer,
    all of them are ranked by cosine: the answer is exact.

    Not thread-safe: use it from the thread that made it (SQLite enforces it);
    only ``len()``, which reads no SQL, may be asked from anywhere.
    """

    def __init__(self, path: Path | str, *, candidates: int = CANDIDATES) -> None:
        self.path = str(path)
        self.candidates = candidates
        self._db = open_database(self.path)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "mmap_size=1073741824",  # float vectors are read at random by the re-rank
            "cache_size=-65536",
            "temp_store=MEMORY",
        ):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(_SCHEMA)
        self._rows = _Rows()
        self._check_model()
        self._load()

    def close(self) -> None:
        self._db.close()

    def _check_model(self) -> None:
        stored = self._meta("model")
        if stored is not None and stored != MODEL:
            # Vectors of another model mean nothing to this one; the relay still has
            # the events, so the index starts over and is refilled from there.
            log.warning("memory index %s was built with %s; starting over", self.path, stored)
            with self._transaction():
                for table in ("documents", "vectors", "meta"):
                    self._db.execute(f"DELETE FROM {table}")
        self._set_meta("model", MODEL)

    def _load(self) -> None:
        query = (
            "SELECT d.rowid, v.bits, d.kind, d.pubkey, d.created_at"
            " FROM documents d JOIN vectors v ON v.rowid = d.rowid ORDER BY d.rowid"
        )
        self._rows.extend(self._db.execute(query).fetchall())

    # --- the high-water mark -------------------------------------------------------

    def mark(self) -> int | None:
        """``created_at`` up to which every event received has been handled; None before the first."""
        value = self._meta("since")
        return int(value) if value is not None else None

    def set_mark(self, created_at: int) -> None:
        self._set_meta("since", str(created_at))

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # --- writing -------------------------------------------------------------------

    def wanted(self, events: Sequence[Event]) -> list[bool]:
        """Whether each event would be added: not indexed, not deleted, not older than what is.

        Asked before embedding, so that events seen again (a restart's overlap,
        a second relay) cost a lookup rather than a model run.
        """
        return [self._verdict(event) is None for event in events]

    def add(self, events: Sequence[Event], vectors: np.ndarray) -> list[Outcome]:
        """Index ``events`` with their unit ``vectors`` (one row each), in one transaction."""
        if len(events) != len(vectors):
            raise ValueError(f"{len(events)} events but {len(vectors)} vectors")
        outcomes: list[Outcome] = []
        with self._transaction():
            for event, vector in zip(events, vectors, strict=True):
                outcomes.append(self._add_one(event, vector))
        return outcomes

    def supersede(self, event: Event) -> bool:
        """A new version of an addressable event has nothing to index: forget the older one.

        True when a row was removed.
        """
        if event.address is None:
            return False
        with self._transaction():
            old = self._at_address(event.address)
            if old is None or not _newer(event.created_at, event.id, old[1], old[2]):
                return False
            self._remove(old[0])
            return True

    def delete(self, deletion: Event) -> int:
        """Apply a NIP-09 kind 5 deletion: remove what it names of its author's; rows removed."""
        if deletion.kind != DELETION_KIND:
            return 0
        ids, addresses = deletion_targets(deletion)
        removed = 0
        with self._transaction():
            for event_id in ids:
                self._db.execute(
                    "INSERT OR IGNORE INTO deleted_ids(event_id, pubkey) VALUES (?, ?)",
                    (event_id, deletion.pubkey),
                )
                row = self._db.execute(
                    "SELECT rowid FROM documents WHERE event_id = ? AND pubkey = ?",
                    (event_id, deletion.pubkey),
                ).fetchone()
                if row:
                    self._remove(row[0])
                    removed += 1
            for address in addresses:
                # NIP-09: an address is deleted up to the deletion's created_at only.
                self._db.execute(
                    "INSERT INTO deleted_addresses(address, until) VALUES (?, ?)"
                    " ON CONFLICT(address) DO UPDATE SET until = max(until, excluded.until)",
                    (address, deletion.created_at),
                )
                rows = self._db.execute(
                    "SELECT rowid FROM documents WHERE address = ? AND created_at <= ?",
                    (address, deletion.created_at),
                ).fetchall()
                for (rowid,) in rows:
                    self._remove(rowid)
                    removed += 1
        return removed

    def _verdict(self, event: Event) -> Outcome | None:
        """Why ``event`` is not to be added, or None (add it)."""
        db = self._db
        if db.execute("SELECT 1 FROM documents WHERE event_id = ?", (event.id,)).fetchone():
            return Outcome.DUPLICATE
        if db.execute(
            "SELECT 1 FROM deleted_ids WHERE event_id = ? AND pubkey = ?", (event.id, event.pubkey)
        ).fetchone():
            return Outcome.DELETED
        address = event.address
        if address is not None:
            row = db.execute("SELECT until FROM deleted_addresses WHERE address = ?", (address,)).fetchone()
            if row and event.created_at <= row[0]:
                return Outcome.DELETED
            old = self._at_address(address)
            if old is not None and not _newer(event.created_at, event.id, old[1], old[2]):
                return Outcome.STALE
        return None

    def _add_one(self, event: Event, vector: np.ndarray) -> Outcome:
        verdict = self._verdict(event)
        if verdict is not None:
            return verdict
        text = memory_text(event)
        if text is None:
            return Outcome.NO_TEXT
        outcome = Outcome.ADDED
        address = event.address
        if address is not None:
            old = self._at_address(address)
            if old is not None:
                self._remove(old[0])
                outcome = Outcome.REPLACED
        embedding = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        cursor = self._db.execute(
            "INSERT INTO documents(event_id, kind, pubkey, created_at, address, snippet)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (event.id, event.kind, event.pubkey, event.created_at, address, text[:SNIPPET_CHARS]),
        )
        rowid = cursor.lastrowid
        (bits,) = self._db.execute("SELECT vec_quantize_binary(?)", (embedding,)).fetchone()
        self._db.execute(
            "INSERT INTO vectors(rowid, bits, embedding) VALUES (?, ?, ?)", (rowid, bits, embedding)
        )
        self._changes.append((rowid, bits, event.kind, event.pubkey, event.created_at))
        return outcome

    def _at_address(self, address: str) -> tuple[int, int, str] | None:
        row = self._db.execute(
            "SELECT rowid, created_at, event_id FROM documents WHERE address = ?", (address,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def _remove(self, rowid: int) -> None:
        self._db.execute("DELETE FROM documents WHERE rowid = ?", (rowid,))
        self._db.execute("DELETE FROM vectors WHERE rowid = ?", (rowid,))
        self._changes.append(rowid)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT; the in-memory rows follow only once the commit is done."""
        self._changes: list[int | tuple[int, bytes, int, str, int]] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        for change in self._changes:
            if isinstance(change, int):
                self._rows.remove(change)
            else:
                self._rows.append(*change)

    # --- reading -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows.slot_of)

    def stats(self) -> dict[str, int]:
        page_count = self._db.execute("PRAGMA page_count").fetchone()[0]
        page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return {
            "documents": len(self),
            "authors": len(self._rows.author_ids),
            "bytes": page_count * page_size,
            "candidates": self.candidates,
        }

    def snippet(self, event_id: str) -> str | None:
        row = self._db.execute("SELECT snippet FROM documents WHERE event_id = ?", (event_id,)).fetchone()
        return row[0] if row else None

    def search(
        self,
        vector: np.ndarray,
        k: int = 10,
        *,
        authors: Iterable[str] | None = None,
        since: int | None = None,
        until: int | None = None,
        kinds: Iterable[int] | None = None,
    ) -> list[Hit]:
        """The ``k`` rows most similar to the unit ``vector`` that pass the filters, best first.

        ``authors`` (pubkeys), ``since`` and ``until`` (``created_at``, inclusive)
        and ``kinds`` each narrow the rows when given; an empty ``authors``
        matches nothing.
        """
        rows = self._rows
        mask = rows.matching(authors, since, until, kinds)
        slots = np.flatnonzero(mask)
        shortlist = max(self.candidates, k)
        if len(slots) > shortlist:
            query_bits = np.packbits(vector > 0, bitorder="little").view(np.uint64)
            # Scanning every slot and masking beats gathering the matching ones
            # first unless the filters are very selective, when we do not get here.
            distances = rows.hamming(query_bits)
            distances[~mask] = _FAR
            slots = _nearest(distances, shortlist)
        return self._rank(np.sort(rows.rowids[slots]), vector, k)

    def _rank(self, rowids: np.ndarray, vector: np.ndarray, k: int) -> list[Hit]:
        if len(rowids) == 0:
            return []
        found = self._db.execute(
            "SELECT rowid, embedding FROM vectors WHERE rowid IN (SELECT value FROM json_each(?))",
            (orjson.dumps(rowids.tolist()),),
        ).fetchall()
        ids = np.array([r for r, _ in found], np.int64)
        matrix = np.frombuffer(b"".join(e for _, e in found), np.float32).reshape(len(found), DIMENSIONS)
        # Not `matrix @ vector`: OpenBLAS threads a product this size, and on a
        # busy machine waiting for its threads costs tens of milliseconds.
        scores = np.einsum("ij,j->i", matrix, np.asarray(vector, np.float32))
        best = np.argsort(-scores, kind="stable")[:k]
        return self._hits([(int(ids[i]), float(scores[i])) for i in best])

    def _hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        described = {
            rowid: (event_id, kind)
            for rowid, event_id, kind in self._db.execute(
                "SELECT rowid, event_id, kind FROM documents WHERE rowid IN (SELECT value FROM json_each(?))",
                (orjson.dumps([rowid for rowid, _ in ranked]),),
            )
        }
        return [Hit(*described[rowid], score) for rowid, score in ranked]

    def exact_search(
        self,
        vector: np.ndarray,
        k: int = 10,
        *,
        authors: Iterable[str] | None = None,
        since: int | None = None,
        until: int | None = None,
        kinds: Iterable[int] | None = None,
    ) -> list[Hit]:
        """As :meth:`search`, by cosine over every matching row in SQL (sqlite-vec): the reference."""
        where: list[str] = ["1"]
        params: list[str | int] = []
        if authors is not None:
            authors = list(authors)
            where.append(f"d.pubkey IN ({','.join('?' * len(authors))})")
            params += authors
        if since is not None:
            where.append("d.created_at >= ?")
            params.append(since)
        if until is not None:
            where.append("d.created_at <= ?")
            params.append(until)
        if kinds is not None:
            kinds = list(kinds)
            where.append(f"d.kind IN ({','.join('?' * len(kinds))})")
            params += kinds
        query = (
            "SELECT d.event_id, d.kind, 1.0 - vec_distance_cosine(vec_f32(v.embedding), ?) AS score"
            " FROM documents d JOIN vectors v ON v.rowid = d.rowid"
            f" WHERE {' AND '.join(where)} ORDER BY score DESC, d.rowid LIMIT ?"
        )
        embedding = np.ascontiguousarray(vector, np.float32).tobytes()
        rows = self._db.execute(query, (embedding, *params, k)).fetchall()
        return [Hit(event_id, kind, float(score)) for event_id, kind, score in rows]


# --- the service -----------------------------------------------------------------------

SUBSCRIPTION = "memory"
QUEUE_SIZE = 10_000  # events waiting to be embedded; beyond it the oldest are dropped
BATCH_SIZE = 32  # events embedded at once: a model run of ~0.2-0.5 s on two cores
RESUME_OVERLAP = 60  # seconds asked again before the mark: authors' clocks disagree
BACKLOG_LIMIT = 5000  # the most stored events asked per filter at start

_R = TypeVar("_R")


class MemoryService:
    """Indexes, as they arrive from the node's relays, the events of ``kinds``; searches them.

    Events come from a subscription on the pool (``node.links``: shape, id,
    signature and filter already checked) into a bounded queue; a task takes
    them in batches, embeds their text in the embedding thread and writes them
    to the :class:`MemoryIndex` in the index's thread. The event loop only
    queues.

    When the queue is full the *oldest* waiting event is dropped. Back-pressure
    is not possible: the subscription shares the pool's websockets with the
    job engine, and blocking it would stall jobs. Nothing is lost for good:
    the relay still holds the event, and the stored high-water mark (the
    ``since`` of the subscription at the next start) is held below the oldest
    event dropped, so the next start asks for it again. Dropping the oldest
    rather than the newest keeps what is likeliest to be searched for soon.
    """

    name = "memory"

    def __init__(
        self,
        path: Path,
        pool: RelayPool,
        kinds: Sequence[int],
        *,
        embedder: Embedder | None = None,
        queue_size: int = QUEUE_SIZE,
        batch_size: int = BATCH_SIZE,
        candidates: int = CANDIDATES,
    ) -> None:
        self.path = Path(path)
        self.pool = pool
        self.kinds = tuple(dict.fromkeys(kinds))
        self.embedder = embedder or Embedder()
        self.batch_size = batch_size
        self.candidates = candidates
        self.index: MemoryIndex | None = None
        self.unavailable: str | None = None  # why searching cannot work, e.g. no model
        self.dropped = 0
        self._queue: deque[Event] = deque()
        self._queue_size = queue_size
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._newest: int | None = None  # created_at of the newest event handled
        self._floor: int | None = None  # created_at of the oldest event dropped
        self._index_thread: ThreadPoolExecutor | None = None
        self._embed_thread: ThreadPoolExecutor | None = None
        self._worker: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Events received and not yet indexed."""
        return len(self._queue)

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._index_thread = ThreadPoolExecutor(1, thread_name_prefix="memory-index")
        self._embed_thread = ThreadPoolExecutor(1, thread_name_prefix="memory-embed")
        # A node without its model or SQLite extension still runs; 5302 jobs say why they fail.
        try:
            await self._in_embedder(self.embedder.load)
            self.index = await self._in_index(MemoryIndex, self.path, candidates=self.candidates)
        except (EmbedderUnavailable, MemoryUnavailable) as exc:
            self.unavailable = str(exc)
            log.error("semantic memory is off: %s", exc)
            return
        mark = await self._in_index(self.index.mark)
        self._newest = mark
        self.pool.subscribe(SUBSCRIPTION, self.filters(mark), self._on_event)
        self._worker = asyncio.create_task(self._work(), name="memory indexer")
        log.info("semantic memory: %d documents, indexing kinds %s", len(self.index), self.kinds)

    def filters(self, mark: int | None) -> list[dict[str, Any]]:
        since = {"since": max(0, mark - RESUME_OVERLAP)} if mark is not None else {}
        return [
            {"kinds": list(self.kinds), "limit": BACKLOG_LIMIT, **since},
            {"kinds": [DELETION_KIND], "limit": BACKLOG_LIMIT, **since},
        ]

    async def stop(self) -> None:
        self.pool.unsubscribe(SUBSCRIPTION)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.wait([self._worker])
            self._worker = None
        if self.index is not None and self._index_thread is not None:
            index, self.index = self.index, None
            await self._in_index(index.close)
        for thread in (self._embed_thread, self._index_thread):
            if thread is not None:
                thread.shutdown(wait=True)
        self._embed_thread = self._index_thread = None

    async def stats(self) -> dict[str, int | str | None]:
        """The index's size and the indexer's state, for status pages and tests."""
        index = self.index
        found: dict[str, int | str | None] = {"unavailable": self.unavailable}
        if index is not None:
            found.update(await self._in_index(index.stats))
            found["mark"] = await self._in_index(index.mark)
        found.update(pending=self.pending, dropped=self.dropped)
        return found

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Until every event received so far is indexed (tests, benchmarks)."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    # --- searching -----------------------------------------------------------------

    async def search(
        self,
        query: str,
        *,
        k: int = 10,
        authors: Sequence[str] | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> list[Hit]:
        """The ``k`` indexed events nearest in meaning to ``query``, best first.

        Raises :class:`MemoryUnavailable` when the model or the SQLite
        extension is missing, ``RuntimeError`` when the service is not started.
        """
        if self.unavailable is not None:
            raise MemoryUnavailable(self.unavailable)
        index = self.index
        if index is None:
            raise RuntimeError("the memory service is not started")
        vector = (await self._in_embedder(self.embedder.embed, [query]))[0]
        return await self._in_index(
            index.search, vector, k, authors=authors, since=since, until=until
        )

    # --- indexing ------------------------------------------------------------------

    def _on_event(self, event: Event, relay: str) -> None:
        if len(self._queue) >= self._queue_size:
            self._hold_mark_below(self._queue.popleft().created_at)
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("semantic memory is behind: %d events dropped (the next start asks again)", self.dropped)
        self._queue.append(event)
        self._idle.clear()
        self._arrived.set()

    async def _work(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._arrived.clear()
                await self._arrived.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            try:
                await self._take(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad batch must not end indexing; its events come back at the next start.
                log.exception("semantic memory: indexing %d events failed", len(batch))
                self._hold_mark_below(min(e.created_at for e in batch))
            else:
                self._newest = max([self._newest or 0, *(e.created_at for e in batch)])
            if not self._queue:
                await self._save_mark()

    async def _take(self, batch: list[Event]) -> None:
        """Index one batch in arrival order: deletions split it so each sees what came before."""
        run: list[Event] = []
        for event in batch:
            if event.kind == DELETION_KIND:
                await self._index_run(run)
                run = []
                assert self.index is not None
                await self._in_index(self.index.delete, event)
            else:
                run.append(event)
        await self._index_run(run)

    async def _index_run(self, events: list[Event]) -> None:
        index = self.index
        if not events or index is None:
            return
        wanted = await self._in_index(index.wanted, events)
        texts: list[str] = []
        to_add: list[Event] = []
        to_supersede: list[Event] = []
        for event, want in zip(events, wanted, strict=True):
            if not want or event.kind not in self.kinds:
                continue
            text = memory_text(event)
            if text is not None:
                texts.append(text)
                to_add.append(event)
            elif event.address is not None:
                to_supersede.append(event)  # e.g. a memory emptied: the old text must go
        for event in to_supersede:
            await self._in_index(index.supersede, event)
        if to_add:
            vectors = await self._in_embedder(self.embedder.embed, texts)
            await self._in_index(index.add, to_add, vectors)

    def _hold_mark_below(self, created_at: int) -> None:
        """An event at ``created_at`` was not indexed: the next start must ask for it again."""
        self._floor = created_at if self._floor is None else min(self._floor, created_at)

    async def _save_mark(self) -> None:
        """Store how far every received event is handled; only called with the queue empty."""
        if self._newest is None or self.index is None:
            return
        # An author's clock ahead of ours must not push the next start's `since` past now.
        mark = min(self._newest, int(time.time()))
        if self._floor is not None:
            mark = min(mark, self._floor - 1)
        await self._in_index(self.index.set_mark, mark)

    # --- threads ---------------------------------------------------------------------

    async def _in_index(self, fn: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
        return await _run_in(self._index_thread, fn, *args, **kwargs)

    async def _in_embedder(self, fn: Callable[..., _R], *args: Any) -> _R:
        return await _run_in(self._embed_thread, fn, *args)


async def _run_in(thread: ThreadPoolExecutor | None, fn: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
    if thread is None:
        raise RuntimeError("the memory service is not started")
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(thread, lambda: fn(*args, **kwargs))
