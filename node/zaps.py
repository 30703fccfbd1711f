"""NIP-57 zaps to the node's agents: LNURL-pay answers, invoices, receipts.

Spec: ``shared/specs/nips/57.md`` ("Protocol flow", Appendix D for the
callback's checks, Appendix E for the receipt) and LUD-06/LUD-16 for LNURL-pay.
This is the logic; ``web/routes/lnurl.py`` is its HTTP shell.

* ``pay_request(agent)`` is the static LNURL-pay document, with
  ``allowsNostr`` and ``nostrPubkey`` (the node's key signs receipts).
* ``callback(agent, amount, nostr)`` checks the zap request exactly as
  Appendix D says, makes an invoice whose description hash is the sha256 of
  the zap request's JSON text (as received), and records it.
* On settlement the receipt (kind 9735) is signed, stored, then published to
  the zap request's relays and the node's relays; stored first, so a restart
  republishes rather than re-signs. A zap on a job request (or on its
  feedback) also pays for the job: ``dvm.billing`` reads the same record.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from dvm.store import JobStore, ZapRecord
from nips import nip57
from nips.nip01 import Signer, parse_event
from node.wallet import Settlement, Wallet, WalletError

if TYPE_CHECKING:
    from node.links import RelayPool

log = logging.getLogger(__name__)

MIN_SENDABLE = 1_000  # msat
MAX_SENDABLE = 100_000_000_000  # 1 BTC
MAX_RECEIPT_RELAYS = 5  # of the zap request's `relays`, the receipt goes to at most this many


class LnurlError(Exception):
    """Raised for a callback that cannot be served; ``str()`` is the LNURL ``reason``."""


class Zaps:
    def __init__(
        self,
        *,
        agents: Mapping[str, str],  # name -> pubkey
        wallet: Wallet,
        store: JobStore,
        signer: Signer,
        pool: RelayPool,
        replies: RelayPool,
        base_url: str,
    ) -> None:
        self.agents = dict(agents)
        self.wallet = wallet
        self.store = store
        self.signer = signer
        self.pool = pool  # the node's relays
        self.replies = replies  # the zappers' relays: publish only
        self.base_url = base_url.rstrip("/")
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def domain(self) -> str:
        return self.base_url.split("://", 1)[-1]

    def lud16(self, agent: str) -> str:
        return f"{agent}@{self.domain}"

    def metadata(self, agent: str) -> str:
        """LUD-06 metadata: its exact text is hashed into plain (non-zap) invoices."""
        entries = [["text/plain", f"Pay {agent}, a Timmy agent"], ["text/identifier", self.lud16(agent)]]
        return orjson.dumps(entries).decode()

    def pay_request(self, agent: str) -> dict[str, Any]:
        self._known(agent)
        return {
            "tag": "payRequest",
            "callback": f"{self.base_url}/lnurlp/{agent}/callback",
            "minSendable": MIN_SENDABLE,
            "maxSendable": MAX_SENDABLE,
            "metadata": self.metadata(agent),
            "commentAllowed": 0,
            "allowsNostr": True,
            "nostrPubkey": self.signer.pubkey,
        }

    async def callback(self, agent: str, amount_text: str | None, nostr: str | None) -> dict[str, Any]:
        pubkey = self._known(agent)
        amount = _amount(amount_text)
        if nostr is None:  # a plain LNURL payment, no zap
            invoice = await self._invoice(agent, amount, self.metadata(agent), label=f"lnurl:{agent}")
            return {"pr": invoice.bolt11, "routes": []}
        try:
            request = nip57.validate_zap_request(nostr, amount_msat=amount, recipient=pubkey)
        except nip57.ZapError as exc:
            raise LnurlError(f"invalid zap request: {exc}") from None
        invoice = await self._invoice(agent, amount, request.description, label=f"zap:{request.event.id}")
        await self.store.add_zap(
            ZapRecord(
                invoice.payment_hash, agent, request.description, request.event_id or "", amount,
                invoice.bolt11, "", int(time.time()),
            )
        )
        return {"pr": invoice.bolt11, "routes": []}

    async def _invoice(self, agent: str, amount: int, description: str, *, label: str) -> Any:
        try:
            return await self.wallet.create_invoice(
                amount,
                label=f"{label}:{hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:8]}",
                description=description,
                description_hash=hashlib.sha256(description.encode()).digest(),
            )
        except WalletError as exc:
            log.error("no invoice for a payment to %s: %s", agent, exc)
            raise LnurlError("the wallet could not make an invoice; try again later") from None

    def _known(self, agent: str) -> str:
        pubkey = self.agents.get(agent)
        if pubkey is None:
            raise LnurlError(f"no agent named {agent!r} here")
        return pubkey

    # --- receipts ---------------------------------------------------------------

    def on_settled(self, settlement: Settlement) -> None:
        """The wallet's callback; publishing the receipt happens in a task we own."""
        task = asyncio.get_running_loop().create_task(self.settled(settlement))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("publishing a zap receipt failed", exc_info=task.exception())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def settled(self, s: Settlement) -> None:
        zap = await self.store.zap(s.payment_hash)
        if zap is None:
            return
        if not zap.receipt:
            request = nip57.parse_zap_request(zap.request)
            tags = nip57.receipt_tags(request, bolt11=zap.bolt11, preimage=s.preimage)
            receipt = self.signer.sign(nip57.ZAP_RECEIPT_KIND, "", tags, created_at=s.settled_at)
            await self.store.set_zap_receipt(zap.payment_hash, receipt.raw)
            zap = await self.store.zap(s.payment_hash)
            assert zap is not None
        receipt = parse_event(orjson.loads(zap.receipt))
        await self.pool.publish(receipt)
        relays = list(nip57.parse_zap_request(zap.request).relays)[:MAX_RECEIPT_RELAYS]
        others = [url for url in relays if url.startswith(("ws://", "wss://")) and url not in self.pool.links]
        if others:
            await self.replies.publish(receipt, urls=others)
        log.info("zap of %d msat to %s: receipt %s", zap.amount_msat, zap.agent, receipt.id[:12])


def _amount(text: str | None) -> int:
    if text is None or not text.isascii() or not text.isdigit():
        raise LnurlError("amount (msat) is required")
    amount = int(text)
    if not MIN_SENDABLE <= amount <= MAX_SENDABLE:
        raise LnurlError(f"amount must be between {MIN_SENDABLE} and {MAX_SENDABLE} msat")
    return amount
