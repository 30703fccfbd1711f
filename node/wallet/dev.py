"""The dev wallet: real BOLT11 invoices, paid by hand. Not real money.

The embedded default, so that ``make run`` sells paid jobs with nothing else
installed. Invoices are real BOLT11 strings on regtest (``lnbcrt...``, which
no mainnet wallet will pay by mistake), signed with the node's key; each has
a fresh preimage. Nothing moves on any network: an invoice is settled when
someone calls :meth:`DevWallet.pay` on it, in this process or in another one
(``timmy pay <bolt11>``) sharing the same file, ``DIR/wallet-dev.sqlite3``.
The running node notices another process's payments by polling SQLite's
``data_version`` every 20 ms.

BOLT12: each agent gets a persistent offer (``nips.bolt12``); paying it
with a payer note (``timmy pay lno1... --note <job id>``) creates and settles
an invoice carrying that note, as ``fetchinvoice`` + ``pay`` would.
The ``bolt11`` package needs ``bitstring<5`` (pinned in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from node.wallet import Invoice, OnSettled, Payment, PaymentFailed, Settlement, WalletError

log = logging.getLogger(__name__)

CURRENCY = "bcrt"  # regtest: says "not real money" in the invoice itself
POLL_SECONDS = 0.02
FLOAT_MSAT = 1_000_000_000  # the pretend balance a fresh dev wallet starts with
NOT_REAL = "dev wallet: not real money"

SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (
    payment_hash TEXT PRIMARY KEY,
    label        TEXT NOT NULL UNIQUE,
    bolt11       TEXT NOT NULL,
    amount_msat  INTEGER NOT NULL,
    preimage     TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    paid_at      INTEGER,
    pay_index    INTEGER UNIQUE,
    payer_note   TEXT NOT NULL DEFAULT '',
    offer_id     TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS spent (
    payment_hash TEXT PRIMARY KEY,
    amount_msat  INTEGER NOT NULL,
    paid_at      INTEGER NOT NULL
);
"""


class DevWallet:
    name = "dev"
    real_money = False

    def __init__(self, path: Path, node_secret: bytes) -> None:
        self.path = path
        self._secret = node_secret
        self._db: sqlite3.Connection | None = None
        self._on_settled: OnSettled | None = None
        self._poller: asyncio.Task[None] | None = None
        self._reported = 0  # highest pay_index handed to on_settled

    # --- lifecycle -------------------------------------------------------------

    def open(self) -> None:
        """Open the file without starting the settlement watch (for ``timmy pay``)."""
        if self._db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA busy_timeout = 5000")
            db.executescript(SCHEMA)
            os.chmod(self.path, 0o600)
            self._db = db

    async def start(self, on_settled: OnSettled) -> None:
        self.open()
        self._on_settled = on_settled
        self._reported = self._db_one("SELECT coalesce(max(pay_index), 0) FROM invoices")
        self._poller = asyncio.create_task(self._watch(), name="dev wallet")
        log.warning("%s: invoices are settled by `timmy pay`, nothing moves on any network", NOT_REAL)

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- the interface ---------------------------------------------------------------

    async def create_invoice(
        self,
        amount_msat: int,
        *,
        label: str,
        description: str = "",
        description_hash: bytes | None = None,
        expiry: int = 3600,
    ) -> Invoice:
        if amount_msat <= 0:
            raise WalletError("amount must be positive")
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        now = int(time.time())
        bolt11 = _encode(self._secret, amount_msat, payment_hash, now, expiry, description, description_hash)
        try:
            self._execute(
                "INSERT INTO invoices (payment_hash, label, bolt11, amount_msat, preimage, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (payment_hash, label, bolt11, amount_msat, preimage.hex(), now + expiry),
            )
        except sqlite3.IntegrityError:
            raise WalletError(f"duplicate label {label!r}") from None
        return Invoice(
            bolt11, payment_hash, amount_msat, now + expiry, label, description,
            description_hash.hex() if description_hash else "",
        )

    async def lookup(self, payment_hash: str) -> Settlement | None:
        rows = self._rows(f"{_SETTLED} WHERE payment_hash = ? AND paid_at IS NOT NULL", (payment_hash,))
        return _settlement(rows[0]) if rows else None

    async def pay(self, bolt11: str, *, amount_msat: int | None = None, note: str = "") -> Payment:
        """Settle one of this wallet's invoices (or pay one of its offers, with ``note``)."""
        if bolt11.lower().startswith("lno"):
            return await self._pay_offer(bolt11, amount_msat, note)
        import bolt11 as codec

        try:
            decoded = codec.decode(bolt11)
        except Exception as exc:  # the package raises a family of its own
            raise PaymentFailed(f"not a BOLT11 invoice: {exc}") from None
        rows = self._rows(
            "SELECT amount_msat, preimage, expires_at, paid_at FROM invoices WHERE payment_hash = ?",
            (decoded.payment_hash,),
        )
        if not rows:
            raise PaymentFailed(f"{NOT_REAL}: it can only pay invoices it issued itself")
        amount, preimage, expires_at, paid_at = rows[0]
        if paid_at is not None:
            raise PaymentFailed("invoice already paid")
        if expires_at < time.time():
            raise PaymentFailed("invoice expired")
        self._settle(decoded.payment_hash)
        self._poke()
        return Payment(decoded.payment_hash, preimage, amount, 0)

    async def offer(self, label: str, description: str) -> str | None:
        from nips import bolt12

        issuer = _pubkey33(self._secret)
        offer = bolt12.make_offer(issuer, description, issuer=label)
        return bolt12.encode_offer(offer)

    async def balance(self) -> int:
        received = self._db_one("SELECT coalesce(sum(amount_msat), 0) FROM invoices WHERE paid_at IS NOT NULL")
        spent = self._db_one("SELECT coalesce(sum(amount_msat), 0) FROM spent")
        return FLOAT_MSAT + received - spent

    # --- internals ---------------------------------------------------------------

    async def _pay_offer(self, text: str, amount_msat: int | None, note: str) -> Payment:
        from nips import bolt12

        try:
            offer = bolt12.decode_offer(text)
        except bolt12.Bolt12Error as exc:
            raise PaymentFailed(f"not a BOLT12 offer: {exc}") from None
        if offer.issuer_id != _pubkey33(self._secret):
            raise PaymentFailed(f"{NOT_REAL}: it can only pay its own offers")
        amount = amount_msat or offer.amount
        if not amount:
            raise PaymentFailed("this offer has no amount: give one")
        offer_id = bolt12.offer_id(offer)
        invoice = await self.create_invoice(
            amount, label=f"offer:{offer_id[:16]}:{os.urandom(4).hex()}", description=offer.description or ""
        )
        self._execute(
            "UPDATE invoices SET payer_note = ?, offer_id = ? WHERE payment_hash = ?",
            (note, offer_id, invoice.payment_hash),
        )
        return await self.pay(invoice.bolt11)

    def _settle(self, payment_hash: str) -> None:
        assert self._db is not None
        now = int(time.time())
        self._db.execute("BEGIN IMMEDIATE")
        try:
            index = self._db.execute("SELECT coalesce(max(pay_index), 0) + 1 FROM invoices").fetchone()[0]
            self._db.execute(
                "UPDATE invoices SET paid_at = ?, pay_index = ? WHERE payment_hash = ? AND paid_at IS NULL",
                (now, index, payment_hash),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _poke(self) -> None:
        """Report new settlements now (payments made in this process need not wait for the poll)."""
        if self._on_settled is None:
            return
        rows = self._rows(
            f"{_SETTLED} WHERE pay_index > ? ORDER BY pay_index", (self._reported,)
        )
        for row in rows:
            self._reported = max(self._reported, row[-1])
            self._on_settled(_settlement(row))

    async def _watch(self) -> None:
        version = None
        while True:
            current = self._db_one("PRAGMA data_version")
            if current != version:
                version = current
                try:
                    self._poke()
                except Exception:
                    log.exception("dev wallet: reporting a settlement failed")
            await asyncio.sleep(POLL_SECONDS)

    def _execute(self, sql: str, args: tuple[object, ...] = ()) -> None:
        assert self._db is not None, "open() first"
        self._db.execute(sql, args)

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        assert self._db is not None, "open() first"
        return self._db.execute(sql, args).fetchall()

    def _db_one(self, sql: str) -> int:
        return int(self._rows(sql)[0][0])


_SETTLED = (
    "SELECT payment_hash, amount_msat, preimage, paid_at, label, payer_note, offer_id, pay_index FROM invoices"
)


def _settlement(row: tuple[Any, ...]) -> Settlement:
    payment_hash, amount, preimage, paid_at, label, note, offer_id, _ = row
    return Settlement(payment_hash, amount, preimage, paid_at, label, note, offer_id)


def _pubkey33(secret: bytes) -> bytes:
    from coincurve import PrivateKey

    return bytes(PrivateKey(secret).public_key.format(compressed=True))


def _encode(
    secret: bytes,
    amount_msat: int,
    payment_hash: str,
    now: int,
    expiry: int,
    description: str,
    description_hash: bytes | None,
) -> str:
    import bolt11
    from bolt11.models.tags import TagChar, Tags
    from bolt11.types import Bolt11, MilliSatoshi

    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash)
    tags.add(TagChar.payment_secret, os.urandom(32).hex())
    if description_hash is not None:
        tags.add(TagChar.description_hash, description_hash.hex())
    else:
        tags.add(TagChar.description, description)
    tags.add(TagChar.expire_time, expiry)
    invoice = Bolt11(currency=CURRENCY, date=now, tags=tags, amount_msat=MilliSatoshi(amount_msat))
    return str(bolt11.encode(invoice, secret.hex()))
