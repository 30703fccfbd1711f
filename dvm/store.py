"""``node.sqlite3``: jobs, their outbox of signed events, auction bids, announcements.

Exactly-once delivery rests on two rules kept here:

* a job row is created once per request id (``claim``), so a request seen on
  three relays, or again after a restart, is one job;
* a state change and the signed events that announce it are written in one
  transaction (``transition``), and the engine publishes only after it
  commits. After a crash the unsent events are published again (``unsent``);
  they are the same signed events with the same ids, so relays store each
  once and customers never see two results.

All SQL runs on one thread that owns the connection (as aiosqlite does), with
group commit: the operations queued while one transaction commits go into the
next one, so many jobs share one fsync. ``synchronous=FULL`` in WAL mode: a
committed transition survives power loss, not only a crash.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from dvm.jobs import State
from nips.nip01 import Event

T = TypeVar("T")

SCHEMA = [
    # version 1
    """
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,   -- the request event id
        kind        INTEGER NOT NULL,
        customer    TEXT NOT NULL,
        agent       TEXT NOT NULL DEFAULT '',  -- agent name once one took the job
        state       TEXT NOT NULL,
        request     TEXT NOT NULL,      -- the request event JSON
        price_msat  INTEGER,
        reason      TEXT NOT NULL DEFAULT '',
        seen_at     INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX jobs_active ON jobs(state) WHERE state NOT IN
        ('done', 'failed', 'cancelled', 'declined', 'expired');
    CREATE TABLE outbox (
        event_id  TEXT PRIMARY KEY,
        job_id    TEXT NOT NULL,
        event     TEXT NOT NULL,
        sent      INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_unsent ON outbox(sent) WHERE sent = 0;
    CREATE TABLE bids (
        job_id      TEXT PRIMARY KEY,
        agent       TEXT NOT NULL,
        amount_msat INTEGER NOT NULL,
        nonce       TEXT NOT NULL,
        commit_id   TEXT NOT NULL,
        revealed    INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE announcements (
        agent     TEXT PRIMARY KEY,
        pubkey    TEXT NOT NULL,
        d         TEXT NOT NULL,
        event_id  TEXT NOT NULL,
        digest    TEXT NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # version 2: the ledger. One row per invoice a job was quoted (or payment
    # that reached it another way); `state` moves pending -> paid ->
    # (refund_owed -> refunded), or pending -> expired.
    """
    CREATE TABLE payments (
        payment_hash  TEXT PRIMARY KEY,
        job_id        TEXT NOT NULL,
        agent         TEXT NOT NULL,
        amount_msat   INTEGER NOT NULL,   -- the price quoted
        received_msat INTEGER NOT NULL DEFAULT 0,
        bolt11        TEXT NOT NULL DEFAULT '',
        source        TEXT NOT NULL DEFAULT 'invoice',  -- invoice, offer, zap
        state         TEXT NOT NULL DEFAULT 'pending',
        created_at    INTEGER NOT NULL,
        settled_at    INTEGER
    );
    CREATE INDEX payments_job ON payments(job_id);
    """,
    # version 3: zaps (NIP-57) to the node's agents, from LNURL callback to receipt.
    """
    CREATE TABLE zaps (
        payment_hash TEXT PRIMARY KEY,
        agent        TEXT NOT NULL,
        request      TEXT NOT NULL,     -- the kind 9734 zap request, exactly as received
        target       TEXT NOT NULL DEFAULT '',  -- its e tag: the event zapped
        amount_msat  INTEGER NOT NULL,
        bolt11       TEXT NOT NULL,
        receipt      TEXT NOT NULL DEFAULT '',  -- the kind 9735 receipt, once paid
        created_at   INTEGER NOT NULL
    );
    """,
]


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    kind: int
    customer: str
    agent: str
    state: State
    request: str
    price_msat: int | None
    reason: str
    seen_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class BidRecord:
    job_id: str
    agent: str
    amount_msat: int
    nonce: str
    commit_id: str
    revealed: bool


@dataclass(frozen=True, slots=True)
class Announcement:
    agent: str
    pubkey: str
    d: str
    event_id: str
    digest: str


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    payment_hash: str
    job_id: str
    agent: str
    amount_msat: int
    received_msat: int
    bolt11: str
    source: str
    state: str
    created_at: int
    settled_at: int | None


@dataclass(frozen=True, slots=True)
class ZapRecord:
    payment_hash: str
    agent: str
    request: str
    target: str
    amount_msat: int
    bolt11: str
    receipt: str
    created_at: int


class StaleState(Exception):
    """Raised when a transition expected a state the job is no longer in."""


_STOP = object()


class JobStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._ops: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="job-store", daemon=True)
        self._thread.start()
        await ready

    async def close(self) -> None:
        if self._thread is None:
            return
        self._ops.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    # --- jobs --------------------------------------------------------------

    async def claim(self, request: Event) -> JobRecord | None:
        """Record a request seen for the first time; None if it is known already."""

        def op(db: sqlite3.Connection) -> JobRecord | None:
            now = int(time.time())
            cur = db.execute(
                "INSERT OR IGNORE INTO jobs (id, kind, customer, state, request, seen_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (request.id, request.kind, request.pubkey, State.RECEIVED.value, request.raw, now, now),
            )
            if cur.rowcount != 1:
                return None
            return JobRecord(
                request.id, request.kind, request.pubkey, "", State.RECEIVED, request.raw, None, "", now, now
            )

        return await self._call(op)

    async def transition(
        self,
        job_id: str,
        expected: State,
        new: State,
        *,
        agent: str | None = None,
        price_msat: int | None = None,
        reason: str | None = None,
        outbox: Sequence[Event] = (),
        payment: PaymentRecord | None = None,
        settle: tuple[str, int] | None = None,
        refund_owed: bool = False,
        expire: bool = False,
    ) -> None:
        """Move a job from ``expected`` to ``new`` and store its announcements, atomically.

        Raises :class:`StaleState` (and writes nothing) if the job is not in
        ``expected``: another path (a cancellation, an award) got there first.
        Money moves with the state, in the same transaction: ``payment`` records
        a new quote, ``settle`` = (payment hash, msat received) marks it paid,
        ``refund_owed`` flags the job's paid payments for a refund, ``expire``
        its pending quotes as expired.
        """

        def op(db: sqlite3.Connection) -> None:
            sets, args = ["state = ?", "updated_at = ?"], [new.value, int(time.time())]
            for column, value in (("agent", agent), ("price_msat", price_msat), ("reason", reason)):
                if value is not None:
                    sets.append(f"{column} = ?")
                    args.append(value)
            cur = db.execute(
                f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND state = ?",
                (*args, job_id, expected.value),
            )
            if cur.rowcount != 1:
                raise StaleState(f"job {job_id[:12]} is not {expected.value}")
            db.executemany(
                "INSERT OR IGNORE INTO outbox (event_id, job_id, event) VALUES (?, ?, ?)",
                [(event.id, job_id, event.raw) for event in outbox],
            )
            if payment is not None:
                _insert_payment(db, payment)
            if settle is not None:
                cur = db.execute(
                    "UPDATE payments SET state = 'paid', received_msat = ?, settled_at = ?"
                    " WHERE payment_hash = ? AND state = 'pending'",
                    (settle[1], int(time.time()), settle[0]),
                )
                if cur.rowcount != 1:
                    raise StaleState(f"payment {settle[0][:12]} is not pending")
            if refund_owed:
                db.execute(
                    "UPDATE payments SET state = 'refund_owed' WHERE job_id = ? AND state = 'paid'",
                    (job_id,),
                )
            if expire:
                db.execute(
                    "UPDATE payments SET state = 'expired' WHERE job_id = ? AND state = 'pending'", (job_id,)
                )

        await self._call(op)

    # --- zaps -------------------------------------------------------------------

    async def add_zap(self, zap: ZapRecord) -> None:
        await self._call(
            lambda db: db.execute(
                "INSERT INTO zaps VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (zap.payment_hash, zap.agent, zap.request, zap.target, zap.amount_msat, zap.bolt11,
                 zap.receipt, zap.created_at),
            )
        )

    async def zap(self, payment_hash: str) -> ZapRecord | None:
        rows = await self._call(
            lambda db: db.execute("SELECT * FROM zaps WHERE payment_hash = ?", (payment_hash,)).fetchall()
        )
        return ZapRecord(*rows[0]) if rows else None

    async def set_zap_receipt(self, payment_hash: str, receipt: str) -> None:
        """Store the receipt once; False-y no-op when one is there already."""
        await self._call(
            lambda db: db.execute(
                "UPDATE zaps SET receipt = ? WHERE payment_hash = ? AND receipt = ''", (receipt, payment_hash)
            )
        )

    async def job_of_event(self, event_id: str) -> str | None:
        """The job an event we published belongs to (a feedback event someone zapped)."""
        rows = await self._call(
            lambda db: db.execute("SELECT job_id FROM outbox WHERE event_id = ?", (event_id,)).fetchall()
        )
        return rows[0][0] if rows else None

    # --- the ledger ------------------------------------------------------------

    async def add_payment(self, payment: PaymentRecord) -> None:
        """Record money that reached a job outside its quote (an offer, a late payment)."""
        await self._call(lambda db: _insert_payment(db, payment))

    async def payment(self, payment_hash: str) -> PaymentRecord | None:
        rows = await self._call(
            lambda db: db.execute(f"{_SELECT_PAYMENT} WHERE payment_hash = ?", (payment_hash,)).fetchall()
        )
        return PaymentRecord(*rows[0]) if rows else None

    async def payments_of(self, job_id: str) -> list[PaymentRecord]:
        rows = await self._call(
            lambda db: db.execute(f"{_SELECT_PAYMENT} WHERE job_id = ? ORDER BY created_at", (job_id,)).fetchall()
        )
        return [PaymentRecord(*row) for row in rows]

    async def set_payment_state(self, payment_hash: str, state: str, *, received_msat: int | None = None) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE payments SET state = ?, received_msat = coalesce(?, received_msat),"
                " settled_at = coalesce(settled_at, ?) WHERE payment_hash = ?",
                (state, received_msat, int(time.time()) if received_msat is not None else None, payment_hash),
            )

        await self._call(op)

    async def ledger(self) -> dict[str, dict[str, int]]:
        """msat by agent and payment state (pending, paid, refund_owed, refunded, expired)."""
        rows = await self._call(
            lambda db: db.execute(
                "SELECT agent, state, sum(CASE WHEN received_msat > 0 THEN received_msat ELSE amount_msat END)"
                " FROM payments GROUP BY agent, state"
            ).fetchall()
        )
        ledger: dict[str, dict[str, int]] = {}
        for agent, state, total in rows:
            ledger.setdefault(agent, {})[state] = total
        return ledger

    async def add_outbox(self, job_id: str, events: Sequence[Event]) -> None:
        """Store announcements that change no state (partial feedback, reveals)."""

        def op(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR IGNORE INTO outbox (event_id, job_id, event) VALUES (?, ?, ?)",
                [(event.id, job_id, event.raw) for event in events],
            )

        await self._call(op)

    async def mark_sent(self, event_ids: Iterable[str]) -> None:
        ids = [(eid,) for eid in event_ids]
        await self._call(lambda db: db.executemany("UPDATE outbox SET sent = 1 WHERE event_id = ?", ids))

    async def unsent(self) -> list[tuple[str, str]]:
        """(job id, event JSON) of announcements stored but not confirmed published."""
        return await self._call(
            lambda db: db.execute("SELECT job_id, event FROM outbox WHERE sent = 0 ORDER BY rowid").fetchall()
        )

    async def outbox_of(self, job_id: str) -> list[str]:
        return await self._call(
            lambda db: [
                row[0]
                for row in db.execute("SELECT event FROM outbox WHERE job_id = ? ORDER BY rowid", (job_id,))
            ]
        )

    async def get(self, job_id: str) -> JobRecord | None:
        rows = await self._call(lambda db: db.execute(f"{_SELECT_JOB} WHERE id = ?", (job_id,)).fetchall())
        return _job(rows[0]) if rows else None

    async def active(self) -> list[JobRecord]:
        """Jobs not in a final state, oldest first: the work to resume after a restart."""
        rows = await self._call(
            lambda db: db.execute(
                f"{_SELECT_JOB} WHERE state NOT IN ('done', 'failed', 'cancelled', 'declined', 'expired')"
                " ORDER BY seen_at, id"
            ).fetchall()
        )
        return [_job(row) for row in rows]

    async def recent(self, state: State, *, limit: int = 20) -> list[JobRecord]:
        """The last jobs to enter ``state``, newest first (the operator's recent errors)."""
        rows = await self._call(
            lambda db: db.execute(
                f"{_SELECT_JOB} WHERE state = ? ORDER BY updated_at DESC, id LIMIT ?", (state.value, limit)
            ).fetchall()
        )
        return [_job(row) for row in rows]

    async def counts(self) -> dict[tuple[int, str], int]:
        """Number of jobs by (kind, state), for metrics."""
        rows = await self._call(
            lambda db: db.execute("SELECT kind, state, count(*) FROM jobs GROUP BY kind, state").fetchall()
        )
        return {(kind, state): n for kind, state, n in rows}

    # --- auction bids ------------------------------------------------------

    async def save_bid(self, bid: BidRecord) -> None:
        await self._call(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO bids VALUES (?, ?, ?, ?, ?, ?)",
                (bid.job_id, bid.agent, bid.amount_msat, bid.nonce, bid.commit_id, int(bid.revealed)),
            )
        )

    async def bid(self, job_id: str) -> BidRecord | None:
        rows = await self._call(lambda db: db.execute("SELECT * FROM bids WHERE job_id = ?", (job_id,)).fetchall())
        if not rows:
            return None
        job, agent, amount, nonce, commit_id, revealed = rows[0]
        return BidRecord(job, agent, amount, nonce, commit_id, bool(revealed))

    # --- announcements and small state --------------------------------------

    async def announcements(self) -> dict[str, Announcement]:
        rows = await self._call(lambda db: db.execute("SELECT * FROM announcements").fetchall())
        return {row[0]: Announcement(*row) for row in rows}

    async def save_announcement(self, a: Announcement) -> None:
        await self._call(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO announcements VALUES (?, ?, ?, ?, ?)",
                (a.agent, a.pubkey, a.d, a.event_id, a.digest),
            )
        )

    async def forget_announcement(self, agent: str) -> None:
        await self._call(lambda db: db.execute("DELETE FROM announcements WHERE agent = ?", (agent,)))

    async def get_meta(self, key: str) -> str | None:
        rows = await self._call(lambda db: db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall())
        return rows[0][0] if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._call(lambda db: db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value)))

    # --- the store thread ----------------------------------------------------

    async def _call(self, op: Callable[[sqlite3.Connection], T]) -> T:
        assert self._loop is not None and self._thread is not None, "call open() first"
        future: asyncio.Future[T] = self._loop.create_future()
        self._ops.put((op, future))
        return await future

    def _run(self, ready: asyncio.Future[None]) -> None:
        assert self._loop is not None
        try:
            db = _connect(self.path)
        except BaseException as exc:
            self._loop.call_soon_threadsafe(_settle, ready, None, exc)
            return
        self._loop.call_soon_threadsafe(_settle, ready, None, None)
        try:
            while True:
                batch = [self._ops.get()]
                while len(batch) < 512:
                    try:
                        batch.append(self._ops.get_nowait())
                    except queue.Empty:
                        break
                stop = any(item is _STOP for item in batch)
                self._commit([item for item in batch if item is not _STOP], db)
                if stop:
                    return
        finally:
            db.close()

    def _commit(self, batch: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]], db: sqlite3.Connection) -> None:
        """Run a batch in one transaction; each op in a savepoint, so one failure fails only it."""
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for op, future in batch:
                db.execute("SAVEPOINT op")
                try:
                    value = op(db)
                    if isinstance(value, sqlite3.Cursor):
                        # Never let a cursor reach the event loop's thread: freed
                        # there, it would finalize a statement under our feet.
                        value.close()
                        value = None
                except Exception as exc:
                    db.execute("ROLLBACK TO op")
                    results.append((future, None, exc))
                else:
                    results.append((future, value, None))
                db.execute("RELEASE op")
            db.execute("COMMIT")
        except sqlite3.Error as exc:  # the commit itself failed: nothing of the batch is stored
            if db.in_transaction:
                db.execute("ROLLBACK")
            results = [(future, None, exc) for _, future in batch]
        assert self._loop is not None
        for future, value, error in results:
            self._loop.call_soon_threadsafe(_settle, future, value, error)


_SELECT_PAYMENT = (
    "SELECT payment_hash, job_id, agent, amount_msat, received_msat, bolt11, source, state,"
    " created_at, settled_at FROM payments"
)


def _insert_payment(db: sqlite3.Connection, p: PaymentRecord) -> None:
    db.execute(
        "INSERT INTO payments (payment_hash, job_id, agent, amount_msat, received_msat, bolt11, source,"
        " state, created_at, settled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (p.payment_hash, p.job_id, p.agent, p.amount_msat, p.received_msat, p.bolt11, p.source, p.state,
         p.created_at, p.settled_at),
    )


_SELECT_JOB = (
    "SELECT id, kind, customer, agent, state, request, price_msat, reason, seen_at, updated_at FROM jobs"
)


def _job(row: tuple[Any, ...]) -> JobRecord:
    jid, kind, customer, agent, state, request, price, reason, seen_at, updated_at = row
    return JobRecord(jid, kind, customer, agent, State(state), request, price, reason, seen_at, updated_at)


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(SCHEMA[version:], start=version + 1):
        db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    return db
