"""The lnd wallet: LND over gRPC (DESIGN.md section 6). Real money.

It calls lnd's own services (``lnrpc.Lightning``, ``routerrpc.Router``) through
the stubs compiled from lnd's protos that the ``lnd-grpc-client`` package ships
(``lndgrpc.compiled``), on ``grpc.aio``. The package's client classes are not
used: they are synchronous and import ``protobuf3-to-dict``, which breaks on
protobuf 7.

Authentication is lnd's: TLS with the node's ``tls.cert`` as the only trusted
root, and on every call a ``macaroon`` metadata entry holding the hex of a
macaroon file (invoice + offchain permissions are enough). That hex is a
bearer secret: it lives in the call credentials and is never logged, and it
is masked out of every error message.

Settlements come from ``SubscribeInvoices``. lnd numbers settled invoices
(``settle_index``, from 1) and, when asked for a non-zero index, first replays
those settled after it. The wallet resumes from the last index it reported:
after a reconnection from memory, after a restart from ``state_file`` when it
has one. Without one it starts from "now" (index 0 asks for no replay), so
payments that arrived while it was stopped are found only by :meth:`lookup`.

LND has no BOLT12: :meth:`LndWallet.offer` is None and paying an offer fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import grpc
from lndgrpc.compiled import lightning_pb2 as ln
from lndgrpc.compiled import lightning_pb2_grpc as ln_grpc
from lndgrpc.compiled import router_pb2 as router
from lndgrpc.compiled import router_pb2_grpc as router_grpc

from node.wallet import Invoice, OnSettled, Payment, PaymentFailed, Settlement, WalletError

log = logging.getLogger(__name__)

CALL_TIMEOUT_SECONDS = 30.0
PAY_TIMEOUT_SECONDS = 60  # lnd stops trying new routes after this
FEE_LIMIT_PPM = 10_000  # pay at most 1% in routing fees...
FEE_FLOOR_MSAT = 10_000  # ...or 10 sat, so that small payments can route at all
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
GRPC_OPTIONS = (
    ("grpc.max_receive_message_length", 50 * 1024 * 1024),
    ("grpc.max_reconnect_backoff_ms", int(BACKOFF_MAX_SECONDS * 1000)),
)
# Errors after which a payment may or may not have been sent.
_OUTCOME_UNKNOWN = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
}


class LndWallet:
    name = "lnd"
    real_money = True

    def __init__(
        self, host: str, tls_cert: Path, macaroon: Path, *, state_file: Path | None = None
    ) -> None:
        self.host = host  # "127.0.0.1:10009"
        self.tls_cert = tls_cert
        self.macaroon = macaroon
        self.state_file = state_file  # remembers the last settle_index reported
        self._macaroon_hex = ""
        self._channel: grpc.aio.Channel | None = None
        self._lightning: Any = None
        self._router: Any = None
        self._on_settled: OnSettled | None = None
        self._follower: asyncio.Task[None] | None = None
        self._settle_index = 0
        # lnd invoices have no label: these remember the ones this process made.
        self._hash_of_label: dict[str, str] = {}
        self._label_of_hash: dict[str, str] = {}

    # --- lifecycle -------------------------------------------------------------

    async def start(self, on_settled: OnSettled) -> None:
        cert, self._macaroon_hex = self._read_credentials()
        self._channel = grpc.aio.secure_channel(
            self.host, _credentials(cert, self._macaroon_hex), options=GRPC_OPTIONS
        )
        self._lightning = ln_grpc.LightningStub(self._channel)
        self._router = router_grpc.RouterStub(self._channel)
        try:
            info = await self._call("connecting", self._lightning.GetInfo, ln.GetInfoRequest())
        except WalletError:
            await self.stop()
            raise
        networks = ", ".join(f"{c.chain} {c.network}" for c in info.chains)
        log.info("lnd wallet: %s (lnd %s, %s) at %s", info.alias, info.version, networks, self.host)
        if not info.synced_to_chain:
            log.warning("lnd wallet: lnd is not synced to the chain yet; payments may fail")
        self._settle_index = self._load_settle_index()
        self._on_settled = on_settled
        self._follower = asyncio.create_task(self._follow_settlements(), name="lnd settlements")

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
            self._follower = None
        if self._channel is not None:
            await self._channel.close()  # cancels the calls still open
            self._channel = self._lightning = self._router = None

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
        if label in self._hash_of_label:
            raise WalletError(f"duplicate label {label!r}")
        request = ln.Invoice(value_msat=amount_msat, expiry=expiry)
        if description_hash is not None:
            request.description_hash = description_hash
        else:
            request.memo = description
        reply = await self._call("AddInvoice", self._stubs()[0].AddInvoice, request)
        payment_hash = reply.r_hash.hex()
        self._hash_of_label[label] = payment_hash
        self._label_of_hash[payment_hash] = label
        return Invoice(
            bolt11=reply.payment_request,
            payment_hash=payment_hash,
            amount_msat=amount_msat,
            expires_at=_bolt11_timestamp(reply.payment_request) + expiry,
            label=label,
            description="" if description_hash is not None else description,
            description_hash=description_hash.hex() if description_hash is not None else "",
        )

    async def lookup(self, payment_hash: str) -> Settlement | None:
        try:
            request = ln.PaymentHash(r_hash=bytes.fromhex(payment_hash))
        except ValueError:
            raise WalletError(f"not a payment hash: {payment_hash!r}") from None
        try:
            invoice = await self._stubs()[0].LookupInvoice(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise self._error("LookupInvoice", exc) from None
        return self._settlement(invoice)

    async def pay(self, bolt11: str, *, amount_msat: int | None = None) -> Payment:
        invoice = bolt11.strip().removeprefix("lightning:").removeprefix("LIGHTNING:")
        if invoice.lower().startswith("lno"):
            raise PaymentFailed("this backend cannot pay BOLT12 offers")
        request = router.SendPaymentRequest(
            payment_request=invoice, timeout_seconds=PAY_TIMEOUT_SECONDS, no_inflight_updates=True
        )
        invoiced = _bolt11_amount_msat(invoice)
        if invoiced is None:
            if not amount_msat:
                raise PaymentFailed("the invoice has no amount: say how much to pay")
            request.amt_msat = amount_msat
        elif amount_msat is not None and amount_msat != invoiced:
            raise PaymentFailed(f"the invoice asks for {invoiced} msat, not {amount_msat}")
        request.fee_limit_msat = _fee_limit_msat(invoiced or amount_msat or 0)
        stream = self._stubs()[1].SendPaymentV2(request, timeout=PAY_TIMEOUT_SECONDS + 30)
        try:
            async for update in stream:
                if update.status == ln.Payment.SUCCEEDED:
                    return Payment(
                        update.payment_hash,
                        update.payment_preimage,
                        update.value_msat,
                        update.fee_msat,
                    )
                if update.status == ln.Payment.FAILED:
                    reason = ln.PaymentFailureReason.Name(update.failure_reason)
                    raise PaymentFailed(f"lnd could not pay: {reason}")
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _OUTCOME_UNKNOWN:
                raise self._error("SendPaymentV2 (the payment's outcome is unknown)", exc) from None
            raise self._error("SendPaymentV2", exc, PaymentFailed) from None
        finally:
            stream.cancel()
        raise WalletError(
            "lnd ended the payment stream without an outcome: check `lncli listpayments` before paying again"
        )

    async def offer(self, label: str, description: str) -> str | None:
        return None  # LND has no BOLT12

    async def balance(self) -> int:
        reply = await self._call(
            "ChannelBalance", self._stubs()[0].ChannelBalance, ln.ChannelBalanceRequest()
        )
        return int(reply.local_balance.msat)

    # --- settlements ---------------------------------------------------------------

    async def _follow_settlements(self) -> None:
        loop = asyncio.get_running_loop()
        delay = BACKOFF_FIRST_SECONDS
        while True:
            started = loop.time()
            stream = self._stubs()[0].SubscribeInvoices(
                ln.InvoiceSubscription(settle_index=self._settle_index)
            )
            try:
                async for invoice in stream:
                    delay = BACKOFF_FIRST_SECONDS
                    self._report(invoice)
                why = "lnd ended the invoice subscription"
            except grpc.aio.AioRpcError as exc:
                why = str(self._error("SubscribeInvoices", exc))
            finally:
                stream.cancel()
            if loop.time() - started > BACKOFF_MAX_SECONDS:
                delay = BACKOFF_FIRST_SECONDS  # it had been up a while: a fresh failure
            log.warning("lnd wallet: %s; subscribing again in %.1f s", why, delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, BACKOFF_MAX_SECONDS)

    def _report(self, invoice: Any) -> None:
        settlement = self._settlement(invoice)
        if settlement is None or invoice.settle_index <= self._settle_index:
            return  # an invoice added, or one reported already
        self._settle_index = invoice.settle_index
        try:
            assert self._on_settled is not None
            self._on_settled(settlement)
        except Exception:
            log.exception("lnd wallet: reporting settlement %s failed", settlement.payment_hash)
        self._save_settle_index()

    def _settlement(self, invoice: Any) -> Settlement | None:
        if invoice.state != ln.Invoice.SETTLED:
            return None
        payment_hash = invoice.r_hash.hex()
        return Settlement(
            payment_hash=payment_hash,
            amount_msat=invoice.amt_paid_msat,
            preimage=invoice.r_preimage.hex(),
            settled_at=invoice.settle_date,
            label=self._label_of_hash.get(payment_hash, ""),
        )

    def _load_settle_index(self) -> int:
        if self.state_file is None or not self.state_file.exists():
            return 0
        try:
            return int(json.loads(self.state_file.read_text())["settle_index"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "lnd wallet: ignoring %s (%s); reporting settlements from now on",
                self.state_file,
                exc,
            )
            return 0

    def _save_settle_index(self) -> None:
        if self.state_file is None:
            return
        temporary = self.state_file.with_name(self.state_file.name + ".tmp")
        try:
            temporary.write_text(json.dumps({"settle_index": self._settle_index}))
            os.replace(temporary, self.state_file)
        except OSError as exc:
            log.error("lnd wallet: cannot save %s: %s", self.state_file, exc)

    # --- plumbing ----------------------------------------------------------------------

    def _read_credentials(self) -> tuple[bytes, str]:
        try:
            cert = self.tls_cert.read_bytes()
            macaroon = self.macaroon.read_bytes()
        except OSError as exc:
            raise WalletError(f"lnd wallet: cannot read {exc.filename}: {exc.strerror}") from None
        text = macaroon.strip()
        if re.fullmatch(rb"(?:[0-9a-fA-F]{2})+", text):  # a macaroon already written out in hex
            return cert, text.decode().lower()
        return cert, macaroon.hex()

    def _stubs(self) -> tuple[Any, Any]:
        if self._channel is None:
            raise WalletError("lnd wallet: not started")
        return self._lightning, self._router

    async def _call(self, doing: str, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            raise self._error(doing, exc) from None

    def _error(
        self, doing: str, exc: grpc.aio.AioRpcError, kind: type[WalletError] = WalletError
    ) -> WalletError:
        code, details = exc.code(), exc.details() or ""
        text = f"lnd at {self.host}: {doing}: {code.name}: {details}{_hint(code, details)}"
        if self._macaroon_hex:
            text = text.replace(self._macaroon_hex, "[macaroon]")
        return kind(text)


class _MacaroonAuth:
    """Puts the macaroon on every call; shows nothing of it in a repr."""

    def __init__(self, macaroon_hex: str) -> None:
        self._metadata = (("macaroon", macaroon_hex),)

    def __call__(
        self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        callback(self._metadata, None)

    def __repr__(self) -> str:
        return "<macaroon>"


def _credentials(cert: bytes, macaroon_hex: str) -> grpc.ChannelCredentials:
    return grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(root_certificates=cert),
        grpc.metadata_call_credentials(_MacaroonAuth(macaroon_hex), name="macaroon"),
    )


def _hint(code: grpc.StatusCode, details: str) -> str:
    """What an operator should check, for the errors that come from a wrong configuration."""
    lowered = details.lower()
    if "macaroon" in lowered or "verification failed" in lowered or "permission denied" in lowered:
        return " (check wallet.lnd_macaroon: a macaroon of this lnd with invoice and offchain permissions)"
    if code == grpc.StatusCode.UNAVAILABLE and any(
        w in lowered for w in ("ssl", "tls", "handshake", "certificate")
    ):
        return " (TLS failed: check wallet.lnd_tls_cert, it must be this lnd's tls.cert)"
    if code == grpc.StatusCode.UNAVAILABLE:
        return " (is lnd running and listening there?)"
    return ""


def _fee_limit_msat(amount_msat: int) -> int:
    return max(FEE_FLOOR_MSAT, amount_msat * FEE_LIMIT_PPM // 1_000_000)


# --- the two things read from a BOLT11 string (BOLT 11, "Human-Readable Part" and "Data Part")

_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_HRP = re.compile(r"ln[a-z]+?(\d*)([munp]?)")
_MSAT_PER_UNIT = {"": 100_000_000_000, "m": 100_000_000, "u": 100_000, "n": 100}


def _bolt11_amount_msat(bolt11: str) -> int | None:
    """The amount in the human-readable part, or None for an invoice without one."""
    match = _HRP.fullmatch(bolt11.lower().rpartition("1")[0])
    if match is None:
        raise PaymentFailed("not a BOLT11 invoice")
    digits, unit = match.groups()
    if not digits:
        return None
    if unit == "p":  # a tenth of a millisatoshi
        return int(digits) // 10
    return int(digits) * _MSAT_PER_UNIT[unit]


def _bolt11_timestamp(bolt11: str) -> int:
    """The creation time: the first 35 bits of the data part."""
    data = bolt11.lower().rpartition("1")[2]
    timestamp = 0
    for char in data[:7]:
        timestamp = timestamp * 32 + _BECH32_CHARSET.index(char)
    return timestamp
