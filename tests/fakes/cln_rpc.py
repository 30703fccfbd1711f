"""A FAKE Core Lightning JSON-RPC server, for tests only.

No Lightning daemon installs on these machines (no lightningd in Debian or
PyPI), so ``node/wallet/cln.py`` is tested against this stand-in. It moves no
money and knows no network. What it does imitate is what a CLN client sees:

- the wire: a unix socket; JSON-RPC 2.0 requests, each one JSON object with no
  delimiter (pyln-client writes ``{"jsonrpc": "2.0", "id": ..., "method": ...,
  "params": {...}}`` and, with a reply filter, ``"filter": {...}``); each reply
  one JSON object followed by a blank line (``"\\n\\n"``), which is how
  pyln-client finds its end. Requests on one connection are answered in order;
  pyln-client opens a connection per call, preceded by a ``notifications``
  request when it wants progress messages;
- parameters as CLN binds them: by name or by position, unknown names,
  missing required ones and malformed values refused with code -32602 and
  CLN's messages; an unknown method is -32601 ``Unknown command 'x'``;
- the methods the wallet uses, with CLN's fields and error codes:
  ``getinfo``, ``invoice`` (900 duplicate label; descriptions over 639 bytes
  refused unless ``deschashonly``), ``listinvoices``, ``waitanyinvoice`` (904
  on timeout), ``waitinvoice``, ``offer``, ``listoffers``, ``fetchinvoice``,
  ``pay`` (205 when there is no route), ``listfunds``.

Invoices are real BOLT11 strings on regtest (``lnbcrt...``), signed with the
fake node's key, with ``payment_hash = sha256(preimage)``; with
``deschashonly`` the ``h`` field is ``sha256(description)``. Offers are real
BOLT12 offers on regtest, made with ``nips.bolt12``, and their ``offer_id`` is
the spec's Merkle root, as CLN's is. The invoices ``fetchinvoice`` returns are
signed BOLT12 TLV streams (``lni1...``) without the blinded paths a real one
must carry (there is no network to reach the node through): only this fake
pays them.

Payments: ``pay`` succeeds on the fake's own unpaid invoices (settling them,
which wakes ``waitanyinvoice``, as if the payer were another node) and on
invoices made with :meth:`FakeCln.external_invoice`; anything else finds no
route. Tests drive incoming payments with :meth:`FakeCln.settle`.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bolt11
import coincurve
from bolt11.models.features import Feature, Features, FeatureState
from bolt11.models.tags import TagChar, Tags
from bolt11.types import Bolt11, MilliSatoshi

from nips import bolt12

# common/jsonrpc_errors.h
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
LIGHTNINGD = -1
PAY_ROUTE_NOT_FOUND = 205
PAY_INVOICE_EXPIRED = 207
INVOICE_LABEL_ALREADY_EXISTS = 900
INVOICE_PREIMAGE_ALREADY_EXISTS = 901
INVOICE_EXPIRED_DURING_WAIT = 903
INVOICE_WAIT_TIMED_OUT = 904
OFFER_ALREADY_DISABLED = 1001
OFFER_TIMEOUT = 1005

BOLT11_FIELD_BYTE_LIMIT = 639
MAX_LABEL_BYTES = 128
DEFAULT_EXPIRY = 7 * 24 * 3600
DEFAULT_CLTV = 18
BOLT12_INVOICE_EXPIRY = 7200
# Regtest's genesis block hash, in the byte order BOLT12's offer_chains uses.
REGTEST_CHAIN = bytes.fromhex("06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f")

# BOLT12 TLV types of the invoice_request and invoice parts (bolt12-offer-encoding.md)
INVREQ_METADATA = 0
INVREQ_AMOUNT = 82
INVREQ_PAYER_ID = 88
INVREQ_PAYER_NOTE = 89
INVOICE_CREATED_AT = 164
INVOICE_PAYMENT_HASH = 168
INVOICE_AMOUNT = 170
INVOICE_NODE_ID = 176
SIGNATURE = 240
INVOICE_SIGNATURE_TAG = b"lightning" + b"invoice" + b"signature"


class RpcFail(Exception):
    """Raised by a method to answer with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass
class _Invoice:
    label: str
    invstring: str
    is_bolt12: bool
    payment_hash: str
    preimage: str
    amount_msat: int | None
    description: str | None
    expires_at: int
    created_index: int
    updated_index: int = 0
    pay_index: int = 0
    amount_received_msat: int = 0
    paid_at: int = 0
    local_offer_id: str | None = None
    payer_note: str | None = None

    def status(self, now: float) -> str:
        if self.pay_index:
            return "paid"
        return "expired" if now > self.expires_at else "unpaid"

    def as_json(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"label": self.label}
        fields["bolt12" if self.is_bolt12 else "bolt11"] = self.invstring
        fields["payment_hash"] = self.payment_hash
        if self.amount_msat is not None:
            fields["amount_msat"] = self.amount_msat
        fields["status"] = self.status(time.time())
        if self.pay_index:
            fields["pay_index"] = self.pay_index
            fields["amount_received_msat"] = self.amount_received_msat
            fields["paid_at"] = self.paid_at
            fields["payment_preimage"] = self.preimage
        if self.description is not None:
            fields["description"] = self.description
        fields["expires_at"] = self.expires_at
        if self.local_offer_id is not None:
            fields["local_offer_id"] = self.local_offer_id
            if self.payer_note is not None:
                fields["invreq_payer_note"] = self.payer_note
        fields["created_index"] = self.created_index
        if self.updated_index:
            fields["updated_index"] = self.updated_index
        return fields


@dataclass(frozen=True)
class _External:
    payment_hash: str
    preimage: str
    amount_msat: int
    destination: str


class FakeCln:
    """``async with FakeCln(path) as fake:`` serves ``path`` until the block ends.

    :meth:`stop` and :meth:`start` again keep every invoice, offer and payment,
    as a restarted lightningd would. ``calls`` lists every ``(method, params)``
    received; ``channels`` is what ``listfunds`` reports.
    """

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.calls: list[tuple[str, Any]] = []
        self.channels: list[dict[str, Any]] = []
        self.waiting = 0  # waitanyinvoice / waitinvoice calls now blocked
        self._key = coincurve.PrivateKey()
        self._invoices: dict[str, _Invoice] = {}  # by label, in creation order
        self._offers: dict[str, dict[str, Any]] = {}  # by offer_id
        self._external: dict[str, _External] = {}  # by invstring
        self._payments: dict[str, dict[str, Any]] = {}  # pay's answers, by payment hash
        self._created = 0
        self._updated = 0
        self._paid = 0
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._methods: dict[str, Callable[..., Awaitable[Any]]] = {
            name[len("_rpc_") :]: method
            for name, method in inspect.getmembers(self, inspect.iscoroutinefunction)
            if name.startswith("_rpc_")
        }

    @property
    def node_id(self) -> str:
        return self._key.public_key.format().hex()

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.socket_path))

    async def stop(self) -> None:
        """Close the socket and every connection, as a lightningd that exits."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        self.socket_path.unlink(missing_ok=True)

    async def __aenter__(self) -> FakeCln:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- test controls (not RPC) -----------------------------------------------

    def settle(self, label: str, amount_msat: int | None = None) -> dict[str, Any]:
        """Simulate an incoming payment of the invoice ``label``; returns it as listed."""
        invoice = self._invoices[label]
        now = time.time()
        if invoice.status(now) != "unpaid":
            raise ValueError(f"invoice {label!r} is {invoice.status(now)}")
        received = amount_msat if amount_msat is not None else invoice.amount_msat
        if received is None:
            raise ValueError(f"invoice {label!r} has no amount: give amount_msat")
        self._paid += 1
        self._updated += 1
        invoice.pay_index = self._paid
        invoice.updated_index = self._updated
        invoice.amount_received_msat = received
        invoice.paid_at = int(now)
        self._changed.set()
        self._changed = asyncio.Event()
        return invoice.as_json()

    def external_invoice(self, amount_msat: int, *, routable: bool = True) -> str:
        """A BOLT11 invoice of another node; ``pay`` finds a route to it only if ``routable``."""
        other = coincurve.PrivateKey()
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        invstring = _encode_bolt11(
            other, amount_msat, payment_hash, os.urandom(32), "elsewhere", None, 3600
        )
        if routable:
            self._external[invstring] = _External(
                payment_hash, preimage.hex(), amount_msat, other.public_key.format().hex()
            )
        return invstring

    # --- the wire --------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        buffer = b""
        try:
            while True:
                try:
                    split = split_json_object(buffer)
                except ValueError:
                    await _send(
                        writer, _error(None, INVALID_REQUEST, "Invalid token in json input")
                    )
                    return
                if split is None:
                    chunk = await reader.read(65536)
                    if not chunk:
                        return
                    buffer += chunk
                    continue
                request, buffer = split
                await _send(writer, await self._answer(request))
        except ConnectionError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _answer(self, raw: bytes) -> dict[str, Any]:
        try:
            request = json.loads(raw)
        except ValueError:
            return _error(None, INVALID_REQUEST, "Invalid token in json input")
        request_id = request.get("id")
        method = request.get("method")
        if "id" not in request:
            return _error(None, INVALID_REQUEST, "No id")
        if not isinstance(method, str):
            return _error(request_id, INVALID_REQUEST, "Expected string for method")
        params = request.get("params", {})
        self.calls.append((method, params))
        handler = self._methods.get(method)
        if handler is None:
            return _error(request_id, METHOD_NOT_FOUND, f"Unknown command '{method}'")
        try:
            result = await handler(**_bind(handler, params))
        except RpcFail as failure:
            return {"jsonrpc": "2.0", "id": request_id, "error": failure.as_json()}
        if "filter" in request:
            result = apply_filter(result, request["filter"])
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    # --- methods (named _rpc_<method>; parameters in CLN's order) --------------

    async def _rpc_notifications(self, enable: Any) -> dict[str, Any]:
        _bool("enable", enable, default=False)
        return {}

    async def _rpc_getinfo(self) -> dict[str, Any]:
        return {
            "id": self.node_id,
            "alias": "FAKECLN",
            "color": "02bf81",
            "num_peers": len(self.channels),
            "num_pending_channels": 0,
            "num_active_channels": sum(c["state"] == "CHANNELD_NORMAL" for c in self.channels),
            "num_inactive_channels": 0,
            "address": [],
            "binding": [{"type": "local socket", "socket": str(self.socket_path)}],
            "version": "v25.02-fake",
            "blockheight": 101,
            "network": "regtest",
            "fees_collected_msat": 0,
            "lightning-dir": str(self.socket_path.parent),
        }

    async def _rpc_invoice(
        self,
        amount_msat: Any,
        label: Any,
        description: Any,
        expiry: Any = None,
        fallbacks: Any = None,
        preimage: Any = None,
        exposeprivatechannels: Any = None,
        cltv: Any = None,
        deschashonly: Any = None,
    ) -> dict[str, Any]:
        amount = _msat("amount_msat", amount_msat, allow_any=True)
        if amount == 0:
            raise _bad("amount_msat", amount_msat, "should be positive msat or 'any'")
        label = _label("label", label)
        if not isinstance(description, str):
            raise _bad("description", description, "should be a string (without \\u)")
        seconds = _u64("expiry", expiry, default=DEFAULT_EXPIRY)
        final_cltv = _u64("cltv", cltv, default=DEFAULT_CLTV)
        hash_only = _bool("deschashonly", deschashonly, default=False)
        if fallbacks is not None or exposeprivatechannels is not None:
            raise RpcFail(INVALID_PARAMS, "fake: fallbacks and route hints are not implemented")
        if len(label.encode()) > MAX_LABEL_BYTES:
            raise RpcFail(INVALID_PARAMS, f"Label '{label}' over {MAX_LABEL_BYTES} bytes")
        if len(description.encode()) > BOLT11_FIELD_BYTE_LIMIT and not hash_only:
            raise RpcFail(
                INVALID_PARAMS,
                f"Descriptions greater than {BOLT11_FIELD_BYTE_LIMIT} bytes not yet supported "
                f"(description length {len(description.encode())})",
            )
        secret = _hex32("preimage", preimage) if preimage is not None else os.urandom(32)
        payment_hash = hashlib.sha256(secret).hexdigest()
        if any(inv.payment_hash == payment_hash for inv in self._invoices.values()):
            raise RpcFail(INVOICE_PREIMAGE_ALREADY_EXISTS, "preimage already used")
        if label in self._invoices:
            raise RpcFail(INVOICE_LABEL_ALREADY_EXISTS, f"Duplicate label '{label}'")
        # CLN derives the payment secret from the preimage (lightningd/invoice.c).
        payment_secret = hashlib.sha256(bytes([secret[0] ^ 1]) + secret[1:]).digest()
        desc_hash = hashlib.sha256(description.encode()).digest() if hash_only else None
        invstring = _encode_bolt11(
            self._key,
            amount,
            payment_hash,
            payment_secret,
            description,
            desc_hash,
            seconds,
            cltv=final_cltv,
        )
        invoice = self._add_invoice(
            label, invstring, False, payment_hash, secret.hex(), amount, description, seconds
        )
        return {
            "payment_hash": payment_hash,
            "expires_at": invoice.expires_at,
            "bolt11": invstring,
            "payment_secret": payment_secret.hex(),
            "created_index": invoice.created_index,
        }

    async def _rpc_listinvoices(
        self,
        label: Any = None,
        invstring: Any = None,
        payment_hash: Any = None,
        offer_id: Any = None,
        index: Any = None,
        start: Any = None,
        limit: Any = None,
    ) -> dict[str, Any]:
        if sum(x is not None for x in (label, invstring, payment_hash, offer_id)) > 1:
            raise RpcFail(
                INVALID_PARAMS,
                "Can only specify one of {label}, {invstring}, {payment_hash} or {offer_id}",
            )
        if index is not None and index not in ("created", "updated"):
            raise _bad("index", index, "should be 'created' or 'updated'")
        if (start is not None or limit is not None) and index is None:
            which = "start" if start is not None else "limit"
            raise RpcFail(INVALID_PARAMS, f"Can only specify {{{which}}} with {{index}}")
        first = _u64("start", start, default=0)
        most = _u64("limit", limit, default=None)
        selected = list(self._invoices.values())
        if label is not None:
            wanted = _label("label", label)
            selected = [inv for inv in selected if inv.label == wanted]
        elif invstring is not None:
            selected = [inv for inv in selected if inv.invstring == invstring]
        elif payment_hash is not None:
            wanted = _hex32("payment_hash", payment_hash).hex()
            selected = [inv for inv in selected if inv.payment_hash == wanted]
        elif offer_id is not None:
            wanted = _hex32("offer_id", offer_id).hex()
            selected = [inv for inv in selected if inv.local_offer_id == wanted]
        if index == "created":
            selected = [inv for inv in selected if inv.created_index >= first]
        elif index == "updated":
            selected = sorted(
                (inv for inv in selected if inv.updated_index and inv.updated_index >= first),
                key=lambda inv: inv.updated_index,
            )
        if most is not None:
            selected = selected[:most]
        return {"invoices": [inv.as_json() for inv in selected]}

    async def _rpc_waitanyinvoice(self, lastpay_index: Any = None, timeout: Any = None) -> Any:
        after = _u64("lastpay_index", lastpay_index, default=0)
        seconds = _u64("timeout", timeout, default=None)
        deadline = None if seconds is None else time.monotonic() + seconds
        self.waiting += 1
        try:
            while True:
                paid = [inv for inv in self._invoices.values() if inv.pay_index > after]
                if paid:
                    return min(paid, key=lambda inv: inv.pay_index).as_json()
                await self._wait_for_change(deadline)
        finally:
            self.waiting -= 1

    async def _rpc_waitinvoice(self, label: Any) -> Any:
        wanted = _label("label", label)
        if wanted not in self._invoices:
            raise RpcFail(LIGHTNINGD, "Label not found")
        invoice = self._invoices[wanted]
        self.waiting += 1
        try:
            while invoice.status(time.time()) == "unpaid":
                # An unpaid invoice wakes its waiter when it expires.
                await self._wait_for_change(time.monotonic() + invoice.expires_at - time.time())
        except RpcFail:
            pass
        finally:
            self.waiting -= 1
        if invoice.status(time.time()) == "paid":
            return invoice.as_json()
        raise RpcFail(INVOICE_EXPIRED_DURING_WAIT, "invoice expired during wait", invoice.as_json())

    async def _rpc_offer(
        self,
        amount: Any,
        description: Any = None,
        issuer: Any = None,
        label: Any = None,
        quantity_max: Any = None,
        absolute_expiry: Any = None,
        recurrence: Any = None,
        recurrence_base: Any = None,
        recurrence_paywindow: Any = None,
        recurrence_limit: Any = None,
        single_use: Any = None,
        fronting_nodes: Any = None,
    ) -> dict[str, Any]:
        unsupported = (
            quantity_max,
            absolute_expiry,
            recurrence,
            recurrence_base,
            recurrence_paywindow,
            recurrence_limit,
            fronting_nodes,
        )
        if any(value is not None for value in unsupported):
            raise RpcFail(INVALID_PARAMS, "fake: only amount, description, issuer, label")
        msat = _msat("amount", amount, allow_any=True)
        for name, value in (("description", description), ("issuer", issuer), ("label", label)):
            if value is not None and not isinstance(value, str):
                raise _bad(name, value, "should be a string")
        if msat is not None and description is None:
            raise RpcFail(
                INVALID_PARAMS,
                "description is required for the user to know what it was they paid for",
            )
        made_offer = bolt12.Offer(
            chains=(REGTEST_CHAIN,),
            amount=msat,
            description=description,
            issuer=issuer,
            issuer_id=self._key.public_key.format(),
        )
        offer_id = bolt12.offer_id(made_offer)
        existing = self._offers.get(offer_id)
        if existing is not None:
            if not existing["active"]:
                raise RpcFail(OFFER_ALREADY_DISABLED, "Already exists, but isn't active")
            return {**existing, "created": False}
        made: dict[str, Any] = {
            "offer_id": offer_id,
            "active": True,
            "single_use": _bool("single_use", single_use, default=False),
            "bolt12": bolt12.encode_offer(made_offer),
            "used": False,
        }
        if label is not None:
            made["label"] = label
        self._offers[offer_id] = made
        return {**made, "created": True}

    async def _rpc_listoffers(
        self, offer_id: Any = None, active_only: Any = None
    ) -> dict[str, Any]:
        active = _bool("active_only", active_only, default=False)
        wanted = _hex32("offer_id", offer_id).hex() if offer_id is not None else None
        return {
            "offers": [
                dict(offer)
                for offer in self._offers.values()
                if (wanted is None or offer["offer_id"] == wanted)
                and (offer["active"] or not active)
            ]
        }

    async def _rpc_fetchinvoice(
        self,
        offer: Any,
        amount_msat: Any = None,
        quantity: Any = None,
        recurrence_counter: Any = None,
        recurrence_start: Any = None,
        recurrence_label: Any = None,
        timeout: Any = None,
        payer_note: Any = None,
        payer_metadata: Any = None,
        bip353: Any = None,
    ) -> dict[str, Any]:
        if not isinstance(offer, str):
            raise _bad("offer", offer, "should be a string")
        try:
            decoded = bolt12.decode_offer(offer)
        except bolt12.Bolt12Error as exc:
            raise _bad("offer", offer, f"Unparsable offer: {exc}") from None
        msat = _msat("amount_msat", amount_msat, allow_any=False)
        if decoded.amount is not None and msat is not None:
            raise RpcFail(INVALID_PARAMS, "amount_msat parameter unnecessary")
        if decoded.amount is None and msat is None:
            raise RpcFail(INVALID_PARAMS, "amount_msat parameter required")
        if payer_note is not None and not isinstance(payer_note, str):
            raise _bad("payer_note", payer_note, "should be a string")
        offer_id = bolt12.offer_id(decoded)
        ours = self._offers.get(offer_id)
        if ours is None or not ours["active"]:
            # Nobody answers the invoice request (the fake knows no other node).
            raise RpcFail(OFFER_TIMEOUT, "Timeout waiting for response")
        amount = msat if msat is not None else decoded.amount
        assert amount is not None
        payer = coincurve.PrivateKey()
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).digest()
        invstring = self._bolt12_invoice(offer, payer, payment_hash, amount, msat, payer_note)
        label = f"{offer_id}-{payer.public_key.format().hex()}-0"
        invoice = self._add_invoice(
            label,
            invstring,
            True,
            payment_hash.hex(),
            preimage.hex(),
            amount,
            decoded.description,
            BOLT12_INVOICE_EXPIRY,
        )
        invoice.local_offer_id = offer_id
        invoice.payer_note = payer_note
        ours["used"] = True
        return {"invoice": invstring, "changes": {}}

    async def _rpc_pay(
        self,
        bolt11: Any,
        amount_msat: Any = None,
        label: Any = None,
        riskfactor: Any = None,
        maxfeepercent: Any = None,
        retry_for: Any = None,
        maxdelay: Any = None,
        exemptfee: Any = None,
        localinvreqid: Any = None,
        exclude: Any = None,
        maxfee: Any = None,
        description: Any = None,
        partial_msat: Any = None,
    ) -> dict[str, Any]:
        if not isinstance(bolt11, str):
            raise _bad("bolt11", bolt11, "should be a string")
        msat = _msat("amount_msat", amount_msat, allow_any=False)
        own = next((inv for inv in self._invoices.values() if inv.invstring == bolt11), None)
        external = self._external.get(bolt11)
        if own is None and external is None:
            amount = self._check_payable(bolt11)
        else:
            amount = own.amount_msat if own is not None else external.amount_msat  # type: ignore[union-attr]
        if amount is not None and msat is not None:
            raise RpcFail(INVALID_PARAMS, "amount_msat parameter unnecessary")
        if amount is None and msat is None:
            raise RpcFail(INVALID_PARAMS, "amount_msat parameter required")
        if own is None and external is None:
            raise RpcFail(PAY_ROUTE_NOT_FOUND, "Could not find a route")
        amount = amount if amount is not None else msat
        assert amount is not None
        if own is not None:
            return self._pay_own(own, amount)
        assert external is not None
        return self._pay_external(external)

    async def _rpc_listfunds(self, spent: Any = None) -> dict[str, Any]:
        _bool("spent", spent, default=False)
        return {"outputs": [], "channels": [dict(channel) for channel in self.channels]}

    # --- helpers ---------------------------------------------------------------

    def _add_invoice(
        self,
        label: str,
        invstring: str,
        is_bolt12: bool,
        payment_hash: str,
        preimage: str,
        amount_msat: int | None,
        description: str | None,
        expiry: int,
    ) -> _Invoice:
        self._created += 1
        invoice = _Invoice(
            label=label,
            invstring=invstring,
            is_bolt12=is_bolt12,
            payment_hash=payment_hash,
            preimage=preimage,
            amount_msat=amount_msat,
            description=description,
            expires_at=int(time.time()) + expiry,
            created_index=self._created,
        )
        self._invoices[label] = invoice
        return invoice

    def _bolt12_invoice(
        self,
        offer: str,
        payer: coincurve.PrivateKey,
        payment_hash: bytes,
        amount: int,
        requested_msat: int | None,
        payer_note: str | None,
    ) -> str:
        """The offer's fields, the invoice_request's, the invoice's, signed; no paths."""
        records = bolt12.parse_tlv_stream(bolt12.decode_string(offer)[1])
        records += [
            (INVREQ_METADATA, os.urandom(16)),
            (INVREQ_PAYER_ID, payer.public_key.format()),
            (INVOICE_CREATED_AT, _tu64(int(time.time()))),
            (INVOICE_PAYMENT_HASH, payment_hash),
            (INVOICE_AMOUNT, _tu64(amount)),
            (INVOICE_NODE_ID, self._key.public_key.format()),
        ]
        if requested_msat is not None:
            records.append((INVREQ_AMOUNT, _tu64(requested_msat)))
        if payer_note is not None:
            records.append((INVREQ_PAYER_NOTE, payer_note.encode()))
        root = bolt12.merkle_root(bolt12.encode_tlv_stream(records))
        signature = self._key.sign_schnorr(bolt12.tagged_hash(INVOICE_SIGNATURE_TAG, root))
        records.append((SIGNATURE, signature))
        return bolt12.encode_string(bolt12.INVOICE_PREFIX, bolt12.encode_tlv_stream(records))

    async def _wait_for_change(self, deadline: float | None) -> None:
        changed = self._changed
        if deadline is None:
            await changed.wait()
            return
        try:
            await asyncio.wait_for(changed.wait(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise RpcFail(
                INVOICE_WAIT_TIMED_OUT, "Timed out while waiting for invoice to be paid"
            ) from None

    def _check_payable(self, invstring: str) -> int | None:
        """The amount of a BOLT11 invoice the fake did not make; -32602 if it is not one."""
        try:
            decoded = bolt11.decode(invstring)
        except Exception as exc:
            raise RpcFail(INVALID_PARAMS, f"Invalid bolt11: {exc or type(exc).__name__}") from None
        if decoded.has_expired():
            raise RpcFail(PAY_INVOICE_EXPIRED, "Invoice expired")
        return int(decoded.amount_msat) if decoded.amount_msat else None

    def _pay_own(self, invoice: _Invoice, amount: int) -> dict[str, Any]:
        if invoice.payment_hash not in self._payments:
            if invoice.status(time.time()) == "expired":
                raise RpcFail(PAY_INVOICE_EXPIRED, "Invoice expired")
            self.settle(invoice.label, amount)
            self._payments[invoice.payment_hash] = _pay_result(
                self.node_id, invoice.payment_hash, invoice.preimage, amount, 0
            )
        return self._payments[invoice.payment_hash]

    def _pay_external(self, external: _External) -> dict[str, Any]:
        fee = 1 + external.amount_msat // 1000  # 1 msat base + 1000 ppm
        return self._payments.setdefault(
            external.payment_hash,
            _pay_result(
                external.destination,
                external.payment_hash,
                external.preimage,
                external.amount_msat,
                fee,
            ),
        )


# --- JSON-RPC plumbing ------------------------------------------------------------


def split_json_object(buffer: bytes) -> tuple[bytes, bytes] | None:
    """The first whole JSON object in ``buffer`` and the bytes after it; None while incomplete.

    Raises ValueError when ``buffer`` holds something other than an object.
    """
    stripped = buffer.lstrip()
    if not stripped:
        return None
    if stripped[:1] != b"{":
        raise ValueError("not a JSON object")
    depth = 0
    in_string = escaped = False
    for i, byte in enumerate(stripped):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"{[":
            depth += 1
        elif byte in b"}]":
            depth -= 1
            if depth == 0:
                return stripped[: i + 1], stripped[i + 1 :]
    return None


async def _send(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
    writer.write(json.dumps(reply).encode() + b"\n\n")
    await writer.drain()


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _bind(handler: Callable[..., Any], params: Any) -> dict[str, Any]:
    """CLN's parameter binding: by position (an array) or by name (an object)."""
    signature = inspect.signature(handler)
    names = list(signature.parameters)
    if isinstance(params, list):
        if len(params) > len(names):
            raise RpcFail(
                INVALID_PARAMS, f"too many parameters: got {len(params)}, expected {len(names)}"
            )
        given = {
            name: value for name, value in zip(names, params, strict=False) if value is not None
        }
    elif isinstance(params, dict):
        for name in params:
            if name not in names:
                raise RpcFail(
                    INVALID_PARAMS,
                    f"unknown parameter: {name}, this may be caused by a failure to autodetect "
                    "key=value-style parameters. Please try using the -k flag and explicit "
                    "key=value pairs of parameters.",
                )
        given = dict(params)
    else:
        raise RpcFail(INVALID_PARAMS, "Expected array or object for params")
    for name, parameter in signature.parameters.items():
        if parameter.default is inspect.Parameter.empty and name not in given:
            raise RpcFail(INVALID_PARAMS, f"missing required parameter: {name}")
    return given


def apply_filter(value: Any, shape: Any) -> Any:
    """CLN's reply filter: keep the members named ``true``; ``[shape]`` applies to each element."""
    if shape is True:
        return value
    if isinstance(shape, dict) and isinstance(value, dict):
        return {key: apply_filter(value[key], sub) for key, sub in shape.items() if key in value}
    if isinstance(shape, list) and len(shape) == 1 and isinstance(value, list):
        return [apply_filter(item, shape[0]) for item in value]
    return value


def _bad(name: str, value: Any, why: str) -> RpcFail:
    return RpcFail(INVALID_PARAMS, f"{name}: {why}: invalid token '{json.dumps(value)}'")


def _msat(name: str, value: Any, *, allow_any: bool) -> int | None:
    if value is None or (allow_any and value == "any"):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"(\d+)(msat|sat)?", value)
        if match:
            return int(match[1]) * (1000 if match[2] == "sat" else 1)
    raise _bad(
        name,
        value,
        "should be positive msat or 'any'" if allow_any else "should be a millisatoshi amount",
    )


def _u64(name: str, value: Any, *, default: int | None) -> Any:
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise _bad(name, value, "should be an unsigned 64 bit integer")


def _bool(name: str, value: Any, *, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise _bad(name, value, "should be 'true' or 'false'")


def _label(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)  # CLN keeps a number label as its JSON text
    raise _bad(name, value, "should be a string or number")


def _hex32(name: str, value: Any) -> bytes:
    if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return bytes.fromhex(value)
    raise _bad(name, value, "should be a 32 byte hex value")


def _pay_result(
    destination: str, payment_hash: str, preimage: str, amount: int, fee: int
) -> dict[str, Any]:
    return {
        "destination": destination,
        "payment_hash": payment_hash,
        "created_at": time.time(),
        "parts": 1,
        "amount_msat": amount,
        "amount_sent_msat": amount + fee,
        "payment_preimage": preimage,
        "status": "complete",
    }


# --- BOLT11 -----------------------------------------------------------------------


def _encode_bolt11(
    key: coincurve.PrivateKey,
    amount_msat: int | None,
    payment_hash: str,
    payment_secret: bytes,
    description: str,
    description_hash: bytes | None,
    expiry: int,
    *,
    cltv: int = DEFAULT_CLTV,
) -> str:
    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash)
    tags.add(TagChar.payment_secret, payment_secret.hex())
    if description_hash is not None:
        tags.add(TagChar.description_hash, description_hash.hex())
    else:
        tags.add(TagChar.description, description)
    tags.add(TagChar.expire_time, expiry)
    tags.add(TagChar.min_final_cltv_expiry, cltv)
    tags.add(
        TagChar.features,
        Features.from_feature_list(
            {
                Feature.var_onion_optin: FeatureState.required,
                Feature.payment_secret: FeatureState.required,
            }
        ),
    )
    invoice = Bolt11(
        currency="bcrt",
        date=int(time.time()),
        tags=tags,
        amount_msat=MilliSatoshi(amount_msat) if amount_msat else None,
    )
    return str(bolt11.encode(invoice, key.secret.hex()))


def _tu64(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")
