"""SQLite event store on aiosqlite: WAL, group commit, a tag index.

Layout (schema version 1, see ``_MIGRATIONS``):

- ``events``: one row per stored event; ``id`` and ``pubkey`` as 32-byte
  blobs (half the index size of hex, and blob order is hex order, so the
  "lowest id first" tie rule is a plain ``ORDER BY id``); ``d`` is the address
  identifier ("" for replaceable kinds, NULL for regular ones), unique per
  ``(pubkey, kind, d)``; ``raw`` is the event's JSON, served as is.
- ``tags``: the first value of every single-letter tag (NIP-01 "Tags"), keyed
  ``(name, value, created_at DESC, event_rowid)`` so a tag query walks newest
  first and stops at its limit.
- ``deleted_ids`` / ``deleted_addrs``: NIP-09 tombstones, so a deleted event
  that arrives later is refused.

Writes go through one connection and one transaction per
:meth:`SqliteStore.save_many` call: a batch costs one fsync. Reads use a second
connection, which WAL lets run while a write commits. Each call is a single
function run on the connection's thread, not one hop per statement.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import aiosqlite

from nips.nip01 import Event, Filter, KindClass, is_hex64, kind_class
from nips.nip09 import DELETION_KIND, deletion_targets
from relay.store.base import SaveResult

T = TypeVar("T")

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")

# Each migration runs in one transaction; PRAGMA user_version counts those applied.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE events (
            rowid INTEGER PRIMARY KEY,
            id BLOB NOT NULL UNIQUE,
            pubkey BLOB NOT NULL,
            kind INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            d TEXT,
            expires_at INTEGER,
            raw TEXT NOT NULL
        )""",
        # One index per author, not one per (author, kind): each random-key index
        # costs a page write per event at scale. kind rides along to be checked in it.
        "CREATE INDEX events_pubkey ON events (pubkey, created_at DESC, id, kind)",
        "CREATE INDEX events_kind ON events (kind, created_at DESC, id)",
        "CREATE INDEX events_created ON events (created_at DESC, id)",
        "CREATE UNIQUE INDEX events_address ON events (pubkey, kind, d) WHERE d IS NOT NULL",
        "CREATE INDEX events_expiry ON events (expires_at) WHERE expires_at IS NOT NULL",
        # kind rides along so "#e + kinds" (reaction counts...) filters without a lookup.
        """CREATE TABLE tags (
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            event_rowid INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            PRIMARY KEY (name, value, created_at DESC, event_rowid)
        ) WITHOUT ROWID""",
        "CREATE INDEX tags_event ON tags (event_rowid)",
        """CREATE TABLE deleted_ids (
            id BLOB NOT NULL,
            pubkey BLOB NOT NULL,
            PRIMARY KEY (id, pubkey)
        ) WITHOUT ROWID""",
        """CREATE TABLE deleted_addrs (
            address TEXT PRIMARY KEY,
            until_created_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

# Only a known id is ignored; a second row at one address would be a bug, and fails the batch.
_INSERT_EVENT = (
    "INSERT INTO events (id, pubkey, kind, created_at, d, expires_at, raw)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
_INSERT_TAG = (
    "INSERT OR IGNORE INTO tags (name, value, created_at, event_rowid, kind) VALUES (?, ?, ?, ?, ?)"
)
_AT_ADDRESS = "SELECT rowid, id, created_at FROM events WHERE pubkey = ? AND kind = ? AND d = ?"
_DELETED_UNTIL = "SELECT until_created_at FROM deleted_addrs WHERE address = ?"
_ADDRESSED = (KindClass.REPLACEABLE, KindClass.ADDRESSABLE)
_NOT_EXPIRED = "(e.expires_at IS NULL OR e.expires_at > ?)"


class SqliteStore:
    """:class:`relay.store.base.EventStore` in one SQLite file.

    ``synchronous`` is the SQLite pragma: ``FULL`` (default) makes a stored
    event survive power loss, ``NORMAL`` only a crash of the process.
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}")
        self._path = os.fspath(path)
        self._synchronous = synchronous.upper()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    async def open(self) -> None:
        try:
            self._writer = await self._connect()
            await _run(self._writer, _prepare_writer, self._synchronous)
            if self._path == ":memory:":  # a second connection would see another database
                self._reader = self._writer
            else:
                self._reader = await self._connect()
                await _run(self._reader, _prepare_reader)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        if reader is not None and reader is not writer:
            await reader.close()
        if writer is not None:
            await writer.close()

    async def schema_version(self) -> int:
        return await _run(self._open_writer(), _user_version)

    async def save_many(self, events: Sequence[Event]) -> list[SaveResult]:
        if not events:
            return []
        return await _run(self._open_writer(), _save_batch, events)

    async def query(self, filters: Sequence[Filter], *, now: int, default_limit: int) -> list[str]:
        selects = []
        for flt in filters:
            limit = default_limit if flt.limit is None else flt.limit
            select = _select(flt, now, "e.raw, e.created_at, e.id") if flt.can_match else None
            if select is not None and limit > 0:
                sql, params, order = select
                selects.append((f"{sql} ORDER BY {order} LIMIT ?", [*params, limit]))
        if not selects:
            return []
        return await _run(self._open_reader(), _fetch_raw, selects)

    async def count(self, filters: Sequence[Filter], *, now: int) -> int:
        parts: list[str] = []
        params: list[Any] = []
        for flt in filters:
            select = _select(flt, now, "e.rowid") if flt.can_match else None
            if select is not None:
                parts.append(select[0])
                params.extend(select[1])
        if not parts:
            return 0
        sql = f"SELECT COUNT(*) FROM ({' UNION '.join(parts)})"
        return await _run(self._open_reader(), _fetch_int, sql, params)

    async def purge_expired(self, now: int) -> int:
        return await _run(self._open_writer(), _purge_expired, now)

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: we write BEGIN/COMMIT ourselves, one per batch.
        return await aiosqlite.connect(self._path, isolation_level=None, cached_statements=512)

    def _open_writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("SqliteStore is not open")
        return self._writer

    def _open_reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("SqliteStore is not open")
        return self._reader


async def _run(db: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(connection, *args)`` on the connection's own thread, in one hop.

    aiosqlite has no public call for this; ``_execute`` is the queue its own
    methods use (present from 0.17 to at least 0.22).
    """
    return await db._execute(fn, db._conn, *args)  # type: ignore[no-untyped-call,no-any-return]


# --- connection setup and migrations (run on the connection's thread) --------


def _tune(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA temp_store = MEMORY")
    # 64 MiB of page cache per connection (two connections): this bounds the
    # store's memory. Memory-mapping the file instead made an author query on a
    # 1M-event store ~0.25 ms faster, but every mapped page counts in the
    # relay's RSS (961 MB with 1M events, see docs/benchmarks.md).
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA mmap_size = 0")


def _prepare_writer(conn: sqlite3.Connection, synchronous: str) -> None:
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")  # checked against _SYNCHRONOUS
    # Checkpoint every 32 MiB of WAL instead of 4: pages hot across batches
    # (table tail, time indexes) are then copied once, not after every commit.
    conn.execute("PRAGMA wal_autocheckpoint = 8192")
    _tune(conn)
    _migrate(conn)


def _prepare_reader(conn: sqlite3.Connection) -> None:
    _tune(conn)
    conn.execute("PRAGMA query_only = ON")


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _migrate(conn: sqlite3.Connection) -> None:
    version = _user_version(conn)
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"database schema {version} is newer than this code ({SCHEMA_VERSION})")
    for number, statements in enumerate(_MIGRATIONS[version:], start=version + 1):
        with _transaction(conn):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type else "COMMIT")


# --- writes --------------------------------------------------------------------


def _save_batch(conn: sqlite3.Connection, events: Sequence[Event]) -> list[SaveResult]:
    with _transaction(conn):
        batch = _Batch(conn, events)
        results = [batch.save(event) for event in events]
        batch.flush_tags()
    return results


class _Batch:
    """One ``save_many`` transaction, applied event by event in input order.

    Two lookups are batched: tag rows wait in ``tag_rows`` until the end (or
    until rows are deleted, so no tag can outlive its event), and the id
    tombstones of the whole batch are read in one query up front.
    """

    def __init__(self, conn: sqlite3.Connection, events: Sequence[Event]) -> None:
        self.conn = conn
        self.tag_rows: list[tuple[str, str, int, int, int]] = []
        self.tombstones = _tombstones(conn, {event.id for event in events})

    def save(self, event: Event) -> SaveResult:
        event_id, pubkey = bytes.fromhex(event.id), bytes.fromhex(event.pubkey)
        if event.kind != DELETION_KIND and (event_id, pubkey) in self.tombstones:
            return SaveResult.DELETED
        address = event.address
        d = None
        if address is not None:
            d = event.d_tag if event.kind_class is KindClass.ADDRESSABLE else ""
            until = self.conn.execute(_DELETED_UNTIL, (address,)).fetchone()
            if until is not None and until[0] >= event.created_at:
                return SaveResult.DELETED
            kept = self.conn.execute(_AT_ADDRESS, (pubkey, event.kind, d)).fetchone()
            if kept is not None:
                if kept[1] == event_id:
                    return SaveResult.DUPLICATE
                # nip01.supersedes on the stored columns: blob order is hex order.
                if (-kept[2], kept[1]) < (-event.created_at, event_id):
                    return SaveResult.REPLACED_NEWER
                self.delete_rows([kept[0]])
        cursor = self.conn.execute(
            _INSERT_EVENT,
            (event_id, pubkey, event.kind, event.created_at, d, event.expiration, event.raw),
        )
        if cursor.rowcount == 0:
            return SaveResult.DUPLICATE
        rowid = cursor.lastrowid
        assert rowid is not None
        self.tag_rows += [
            (name, value, event.created_at, rowid, event.kind)
            for name, value in event.indexed_tags()
        ]
        if event.kind == DELETION_KIND:
            self.apply_deletion(event, pubkey)
        return SaveResult.STORED

    def apply_deletion(self, deletion: Event, pubkey: bytes) -> None:
        ids, addresses = deletion_targets(deletion)
        for hex_id in ids:
            target = bytes.fromhex(hex_id)
            self.tombstones.add((target, pubkey))
            self.conn.execute(
                "INSERT OR IGNORE INTO deleted_ids (id, pubkey) VALUES (?, ?)", (target, pubkey)
            )
            rows = self.conn.execute(
                "SELECT rowid FROM events WHERE id = ? AND pubkey = ? AND kind != ?",
                (target, pubkey, DELETION_KIND),
            ).fetchall()
            self.delete_rows([row[0] for row in rows])
        for address in addresses:
            kind, _, d = address.split(":", 2)
            self.conn.execute(
                "INSERT INTO deleted_addrs (address, until_created_at) VALUES (?, ?)"
                " ON CONFLICT (address) DO UPDATE SET until_created_at ="
                " max(until_created_at, excluded.until_created_at)",
                (address, deletion.created_at),
            )
            rows = self.conn.execute(
                "SELECT rowid FROM events WHERE pubkey = ? AND kind = ? AND d = ?"
                " AND created_at <= ?",
                (pubkey, int(kind), d, deletion.created_at),
            ).fetchall()
            self.delete_rows([row[0] for row in rows])

    def delete_rows(self, rowids: Iterable[int]) -> None:
        self.flush_tags()  # a pending tag row may belong to one of these events
        params = [(rowid,) for rowid in rowids]
        self.conn.executemany("DELETE FROM tags WHERE event_rowid = ?", params)
        self.conn.executemany("DELETE FROM events WHERE rowid = ?", params)

    def flush_tags(self) -> None:
        if self.tag_rows:
            self.conn.executemany(_INSERT_TAG, self.tag_rows)
            self.tag_rows = []


def _tombstones(conn: sqlite3.Connection, hex_ids: Iterable[str]) -> set[tuple[bytes, bytes]]:
    """(id, pubkey) pairs of the deletion requests naming any of these ids."""
    ids = _blobs(hex_ids)
    found: set[tuple[bytes, bytes]] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        sql = f"SELECT id, pubkey FROM deleted_ids WHERE id IN ({_marks(len(chunk))})"
        found.update(conn.execute(sql, chunk))
    return found


def _purge_expired(conn: sqlite3.Connection, now: int) -> int:
    with _transaction(conn):
        conn.execute(
            "DELETE FROM tags WHERE event_rowid IN"
            " (SELECT rowid FROM events WHERE expires_at <= ?)",
            (now,),
        )
        return conn.execute("DELETE FROM events WHERE expires_at <= ?", (now,)).rowcount


# --- reads ---------------------------------------------------------------------


def _fetch_raw(conn: sqlite3.Connection, selects: list[tuple[str, list[Any]]]) -> list[str]:
    if len(selects) == 1:
        sql, params = selects[0]
        return [row[0] for row in conn.execute(sql, params)]
    found: dict[bytes, tuple[int, bytes, str]] = {}
    for sql, params in selects:
        for raw, created_at, event_id in conn.execute(sql, params):
            found[event_id] = (-created_at, event_id, raw)
    return [raw for _, _, raw in sorted(found.values())]


def _fetch_int(conn: sqlite3.Connection, sql: str, params: list[Any]) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _blobs(values: Iterable[str]) -> list[bytes]:
    return [bytes.fromhex(value) for value in sorted(values) if is_hex64(value)]


def _select(flt: Filter, now: int, columns: str) -> tuple[str, list[Any], str] | None:
    """``SELECT columns FROM ... WHERE ...`` for one filter, its parameters and ORDER BY.

    None when the filter can match nothing. Where SQLite's planner, which has
    no statistics, could pick a poor index, the access path is chosen here:

    - ``ids``: the id index;
    - else a tag (the one with the fewest values): the tag index, newest first;
    - else ``authors``: the author index, or, when every kind asked for is
      replaceable or addressable, the address index (one row per address);
    - else ``kinds``, else ``created_at``.

    Conditions the path does not cover are checked per candidate row.
    """
    where = [_NOT_EXPIRED]
    params: list[Any] = [now]
    tags = sorted(flt.tags.items(), key=lambda item: len(item[1]))
    source, order, t = "events e", "e.created_at DESC, e.id", "e"
    if flt.ids is None and tags:
        (name, values), tags = tags[0], tags[1:]
        if len(values) == 1:
            # One value: each event has at most one row, so a plain join walks newest first.
            source = "tags t JOIN events e ON e.rowid = t.event_rowid"
            order, t = "t.created_at DESC, e.id", "t"
            where += ["t.name = ?", "t.value = ?"]
            params += [name, *values]
        else:
            where.append(
                "e.rowid IN (SELECT event_rowid FROM tags"
                f" WHERE name = ? AND value IN ({_marks(len(values))}))"
            )
            params += [name, *sorted(values)]
    elif flt.ids is None and flt.authors is not None:
        kinds = flt.kinds or ()
        if kinds and all(kind_class(kind) in _ADDRESSED for kind in kinds):
            source = "events e INDEXED BY events_address"
        else:
            source = "events e INDEXED BY events_pubkey"
    for name, values in tags:
        where.append(
            "EXISTS (SELECT 1 FROM tags x WHERE x.event_rowid = e.rowid AND x.name = ?"
            f" AND x.value IN ({_marks(len(values))}))"
        )
        params += [name, *sorted(values)]
    hex_columns: tuple[tuple[str, frozenset[str] | None], ...] = (
        ("e.id", flt.ids),
        ("e.pubkey", flt.authors),
    )
    for column, hex_values in hex_columns:
        if hex_values is not None:
            blobs = _blobs(hex_values)
            if not blobs:
                return None
            where.append(f"{column} IN ({_marks(len(blobs))})")
            params += blobs
    if flt.kinds is not None:
        where.append(f"{t}.kind IN ({_marks(len(flt.kinds))})")
        params += sorted(flt.kinds)
    if source.endswith("events_address"):
        where.append("e.d IS NOT NULL")  # true for these kinds; lets the partial index serve
    if flt.since is not None:
        where.append(f"{t}.created_at >= ?")
        params.append(flt.since)
    if flt.until is not None:
        where.append(f"{t}.created_at <= ?")
        params.append(flt.until)
    return f"SELECT {columns} FROM {source} WHERE {' AND '.join(where)}", params, order
