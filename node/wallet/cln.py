"""The Core Lightning wallet: a CLN node driven over its JSON-RPC unix socket.

DESIGN.md section 6. The socket is ``<lightning-dir>/<network>/lightning-rpc``;
pyln-client speaks to it. pyln-client is synchronous and opens one connection
per call, so every call here runs on a thread of its own and the event loop
never blocks (see :func:`_in_thread`).

- Invoices: CLN's ``invoice``. For a zap (NIP-57) the invoice must commit to
  ``sha256(zap request)``; CLN hashes the description itself
  (``deschashonly``), so the caller passes the zap request as ``description``
  together with its hash, and we check that they agree before asking.
- Settlements: ``waitanyinvoice`` in a loop, from the highest ``pay_index``
  at the first start, kept in memory: a reconnection, or a restart of the
  same wallet object, resumes where it stopped, so nothing paid meanwhile is
  missed. A fresh wallet object starts from the present; invoices paid while
  none ran are the caller's to :meth:`ClnWallet.lookup`.
- Offers (BOLT12): one ``offer`` per label, amount ``any``.
- Balance: an approximation (see :meth:`ClnWallet.balance`).

Preimages come back from ``pay``, ``listinvoices`` and ``waitanyinvoice``;
they are never logged (pyln's own debug log of every reply is switched off).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pyln.client import LightningRpc, Millisatoshi, RpcError

from node.wallet import Invoice, OnSettled, Payment, PaymentFailed, Settlement, WalletError, report

log = logging.getLogger(__name__)

T = TypeVar("T")

# CLN's JSON-RPC error codes (common/jsonrpc_errors.h) that change what we do.
METHOD_NOT_FOUND = -32601
PAY_IN_PROGRESS = 200
INVOICE_WAIT_TIMED_OUT = 904

NORMAL_CHANNEL = "CHANNELD_NORMAL"

# pyln logs every request and every reply at debug level, preimages included.
_PYLN_LOG = logging.Logger("node.wallet.cln.pyln")
_PYLN_LOG.disabled = True


class ClnError(WalletError):
    """Raised when Core Lightning answered a call with a JSON-RPC error; ``code`` is CLN's."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"Core Lightning {method}: {message}")
        self.code = code


class ClnUnreachable(WalletError):
    """Raised when the RPC socket cannot be reached, or dropped the call before answering."""


class ClnWallet:
    name = "cln"
    real_money = True

    def __init__(
        self,
        rpc_path: Path,
        *,
        wait_timeout: int = 5,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        self.rpc_path = rpc_path
        self._rpc = LightningRpc(str(rpc_path), logger=_PYLN_LOG)
        # Each waitanyinvoice blocks at most this long, so a stopped watcher's
        # thread ends by itself soon after (its late answer is dropped).
        self._wait_timeout = wait_timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._pay_index: int | None = None  # the last pay_index reported
        self._on_settled: OnSettled | None = None
        self._watcher: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------

    async def start(self, on_settled: OnSettled) -> None:
        """Raises :class:`WalletError` when the node cannot be reached at all."""
        if self._watcher is not None:
            raise RuntimeError("ClnWallet already started")
        if self._pay_index is None:
            listed = await self._call(
                "listinvoices", reply_filter={"invoices": [{"pay_index": True}]}
            )
            indexes = (int(inv.get("pay_index", 0)) for inv in listed.get("invoices", []))
            self._pay_index = max(indexes, default=0)
        self._on_settled = on_settled
        self._watcher = asyncio.create_task(self._watch(), name="cln-settlements")

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    # --- receiving -------------------------------------------------------------

    async def create_invoice(
        self,
        amount_msat: int,
        *,
        label: str,
        description: str = "",
        description_hash: bytes | None = None,
        expiry: int = 3600,
    ) -> Invoice:
        """With ``description_hash``, ``description`` must be its preimage (the zap request):
        CLN computes the hash itself and puts only the hash in the invoice."""
        params: dict[str, Any] = {
            "amount_msat": amount_msat,
            "label": label,
            "description": description,
            "expiry": expiry,
        }
        if description_hash is not None:
            if hashlib.sha256(description.encode()).digest() != description_hash:
                raise WalletError(
                    "Core Lightning hashes the description itself: with description_hash, "
                    "description must be the text whose sha256 it is"
                )
            params["deschashonly"] = True
        made = await self._call("invoice", params)
        return Invoice(
            bolt11=made["bolt11"],
            payment_hash=made["payment_hash"],
            amount_msat=amount_msat,
            expires_at=int(made["expires_at"]),
            label=label,
            description="" if description_hash is not None else description,
            description_hash=description_hash.hex() if description_hash is not None else "",
        )

    async def lookup(self, payment_hash: str) -> Settlement | None:
        """None while unpaid, and for a payment hash this node never issued."""
        listed = await self._call("listinvoices", {"payment_hash": payment_hash})
        for invoice in listed.get("invoices", []):
            if invoice.get("status") == "paid":
                return _settlement(invoice)
        return None

    async def _watch(self) -> None:
        backoff = self._min_backoff
        while True:
            try:
                paid = await self._call(
                    "waitanyinvoice",
                    {"lastpay_index": self._pay_index, "timeout": self._wait_timeout},
                )
            except ClnError as exc:
                if exc.code == INVOICE_WAIT_TIMED_OUT:
                    backoff = self._min_backoff
                    continue
                log.warning("%s; retrying in %.1f s", exc, backoff)
            except ClnUnreachable as exc:
                log.warning("%s; retrying in %.1f s", exc, backoff)
            else:
                backoff = self._min_backoff
                self._pay_index = max(self._pay_index or 0, int(paid.get("pay_index", 0)))
                self._report(paid)
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _report(self, paid: dict[str, Any]) -> None:
        if paid.get("status") != "paid" or self._on_settled is None:
            return
        report(self._on_settled, _settlement(paid), log)

    # --- paying ----------------------------------------------------------------

    async def pay(self, bolt11: str, *, amount_msat: int | None = None) -> Payment:
        """A BOLT11 invoice, or a BOLT12 offer (``lno1...``: ``fetchinvoice`` first).

        ``amount_msat`` only for an invoice or offer without an amount (CLN refuses
        it otherwise). :class:`PaymentFailed` when CLN says the payment failed; a
        plain :class:`WalletError` when the outcome is unknown (the socket dropped,
        or the payment is still in flight).
        """
        invoice, amount = bolt11, amount_msat
        if bolt11.strip().lower().startswith("lno"):
            fetched = await self._pay_call("fetchinvoice", {"offer": bolt11, "amount_msat": amount})
            invoice, amount = fetched["invoice"], None  # the invoice states the amount
        paid = await self._pay_call("pay", {"bolt11": invoice, "amount_msat": amount})
        status = paid.get("status")
        if status == "failed":
            raise PaymentFailed("Core Lightning pay: failed")
        if status != "complete":
            raise WalletError(f"Core Lightning pay: {status!r}, the payment may still complete")
        amount_paid = _msat(paid["amount_msat"])
        sent = _msat(paid.get("amount_sent_msat", paid["amount_msat"]))
        return Payment(
            payment_hash=paid["payment_hash"],
            preimage=paid["payment_preimage"],
            amount_msat=amount_paid,
            fee_msat=sent - amount_paid,
        )

    async def _pay_call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._call(method, params)
        except ClnError as exc:
            if exc.code == PAY_IN_PROGRESS:
                raise  # not a failure: it may still succeed
            raise PaymentFailed(str(exc)) from None

    # --- offers and balance ----------------------------------------------------

    async def offer(self, label: str, description: str) -> str | None:
        """The active offer labelled ``label``, made the first time.

        CLN identifies an offer by its contents, not its label: two labels with
        the same description get the same offer (logged), so give agents
        distinct descriptions. None when this CLN has no offers support.
        """
        try:
            listed = await self._call("listoffers", {"active_only": True})
            for existing in listed.get("offers", []):
                if existing.get("label") == label:
                    return str(existing["bolt12"])
            made = await self._call(
                "offer", {"amount": "any", "description": description, "label": label}
            )
        except ClnError as exc:
            if exc.code == METHOD_NOT_FOUND:
                return None
            raise
        if made.get("label", label) != label:
            log.warning(
                "offer for %r is the one already made for %r: same description",
                label,
                made["label"],
            )
        return str(made["bolt12"])

    async def balance(self) -> int:
        """What our side holds in channels that are open and whose peer is connected.

        An upper bound on what one payment can send: it ignores the channel
        reserve, HTLCs in flight and fees, and on-chain funds not in channels.
        """
        funds = await self._call("listfunds")
        return sum(
            _msat(channel.get("our_amount_msat", 0))
            for channel in funds.get("channels", [])
            if channel.get("state") == NORMAL_CHANNEL and channel.get("connected")
        )

    # --- the socket ------------------------------------------------------------

    async def _call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        reply_filter: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        payload = {key: value for key, value in (params or {}).items() if value is not None}
        try:
            reply = await _in_thread(
                lambda: self._rpc.call(method, payload, filter=reply_filter), f"cln-{method}"
            )
        except RpcError as exc:  # before ValueError: it is one
            if isinstance(exc.error, dict):
                code = int(exc.error.get("code", 0))
                raise ClnError(method, code, str(exc.error.get("message", ""))) from None
            raise ClnUnreachable(f"Core Lightning {method}: {exc.error}") from None
        except (OSError, ValueError) as exc:
            raise ClnUnreachable(f"Core Lightning at {self.rpc_path}: {exc}") from exc
        if not isinstance(reply, dict):
            raise ClnUnreachable(f"Core Lightning {method}: answer is not an object")
        return reply


async def _in_thread(call: Callable[[], T], name: str) -> T:
    """Run a blocking call on a daemon thread of its own and await its result.

    Not ``asyncio.to_thread``: a cancelled ``waitanyinvoice`` goes on blocking
    until its timeout, and the default executor would hold the loop's (and the
    interpreter's) shutdown until then. A daemon thread is simply left to
    finish; its late result is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(result: T | None, error: BaseException | None) -> None:
        if future.done():  # the caller was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = call(), None
        except Exception as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed while we waited
            loop.call_soon_threadsafe(deliver, result, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future


def _settlement(invoice: dict[str, Any]) -> Settlement:
    return Settlement(
        payment_hash=invoice["payment_hash"],
        amount_msat=_msat(invoice.get("amount_received_msat", 0)),
        preimage=invoice.get("payment_preimage", ""),
        settled_at=int(invoice.get("paid_at", 0)),
        label=str(invoice.get("label", "")),
        payer_note=invoice.get("invreq_payer_note", ""),
        offer_id=invoice.get("local_offer_id", ""),
    )


def _msat(value: Any) -> int:
    """CLN gives integers; releases before 23.x gave strings like ``"1000msat"``."""
    return int(Millisatoshi(value))
