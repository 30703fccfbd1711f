"""Lightning wallets behind one small interface (DESIGN.md section 6).

:class:`Wallet` is what the engine and the web app use; the backends are
``dev`` (the embedded default: real BOLT11 strings, settled by hand, not real
money), ``cln`` (Core Lightning over its JSON-RPC socket), ``lnd`` (gRPC) and
``nwc`` (NIP-47 Nostr Wallet Connect). Amounts are millisatoshis everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class WalletError(Exception):
    """Raised when the wallet cannot do what was asked; ``str()`` says why, without secrets."""


class PaymentFailed(WalletError):
    """Raised when paying an invoice failed (no route, expired, refused)."""


@dataclass(frozen=True, slots=True)
class Invoice:
    bolt11: str
    payment_hash: str  # hex
    amount_msat: int
    expires_at: int  # unix seconds
    label: str = ""  # the caller's name for it (e.g. "job:<request id>"); unique per wallet
    description: str = ""
    description_hash: str = ""  # hex; set instead of description for zaps (NIP-57)


@dataclass(frozen=True, slots=True)
class Settlement:
    """An incoming invoice that was paid."""

    payment_hash: str
    amount_msat: int  # what was received (may exceed the invoice amount)
    preimage: str  # hex
    settled_at: int
    label: str = ""
    payer_note: str = ""  # BOLT12 payer note, when the payment came through an offer
    offer_id: str = ""  # the BOLT12 offer it paid, when it did


@dataclass(frozen=True, slots=True)
class Payment:
    """An outgoing payment that succeeded."""

    payment_hash: str
    preimage: str
    amount_msat: int
    fee_msat: int


OnSettled = Callable[[Settlement], None]


def report(on_settled: OnSettled, settlement: Settlement, log: logging.Logger) -> None:
    """Hand a settlement to the node; a listener's failure is logged, never the backend's problem."""
    log.info("invoice paid: %s, %d msat", settlement.label or settlement.payment_hash, settlement.amount_msat)
    try:
        on_settled(settlement)
    except Exception:
        log.exception("on_settled failed for %s", settlement.payment_hash)


class Wallet(Protocol):
    name: str  # "dev", "cln", "lnd", "nwc"
    real_money: bool  # False only for the dev wallet; shown wherever invoices show

    async def start(self, on_settled: OnSettled) -> None:
        """Connect, and from now on call ``on_settled`` for every incoming payment.

        Settlements may be reported more than once (a reconnection, a restart);
        callers deduplicate by ``payment_hash``.
        """

    async def stop(self) -> None: ...

    async def create_invoice(
        self,
        amount_msat: int,
        *,
        label: str,
        description: str = "",
        description_hash: bytes | None = None,
        expiry: int = 3600,
    ) -> Invoice:
        """A BOLT11 invoice; with ``description_hash`` the invoice commits to it (``h`` field)."""

    async def lookup(self, payment_hash: str) -> Settlement | None:
        """The settlement of one of our invoices, or None while it is unpaid."""

    async def pay(self, bolt11: str, *, amount_msat: int | None = None) -> Payment:
        """Pay an invoice (BOLT11, or a BOLT12 offer where the backend can); :class:`PaymentFailed`."""

    async def offer(self, label: str, description: str) -> str | None:
        """A persistent BOLT12 offer (``lno1...``) for ``label`` (an agent), the same one each
        time; None when the backend has no BOLT12."""

    async def balance(self) -> int:
        """Spendable msat."""
