"""A FAKE NIP-47 wallet service (Nostr Wallet Connect), for tests only.

No Lightning node runs on these machines, so ``node/wallet/nwc.py`` is tested
against this stand-in. It moves no money and knows no Lightning network. What
it does imitate is everything an NWC client sees, over a real relay and in the
real wire protocol of ``shared/specs/nips/47.md``:

- its own key; the connection URI (``nostr+walletconnect://<its pubkey>?relay=
  ...&secret=...&lud16=...``) carries a client secret it made, and only that
  secret's public key is authorized ("Nostr Wallet Connect URI");
- the info event, kind 13194 (replaceable, so the relay keeps it), with the
  supported methods in ``content``, a ``notifications`` tag and an
  ``encryption`` tag, each of which a test may leave out ("Info Event");
- requests, kind 23194 ``#p`` its pubkey, decrypted with NIP-44 when the
  request's ``encryption`` tag says ``nip44_v2`` and NIP-04 when it says
  ``nip04`` or nothing; the response, kind 23195 with ``e`` = the request's id
  and ``p`` = the requester, in the same scheme ("Request and Response
  Events", "Encryption"); a request past its ``expiration`` tag is ignored;
- errors with NIP-47's codes: ``UNAUTHORIZED`` for any key but the client's,
  ``UNSUPPORTED_ENCRYPTION``, ``NOT_IMPLEMENTED`` for unknown methods,
  ``NOT_FOUND`` and ``PAYMENT_FAILED`` ("Error codes", "Commands");
- ``payment_received`` notifications to the client: kind 23197 (NIP-44) and,
  when NIP-04 is supported too, kind 23196 (NIP-04), as "Notification events"
  asks of a service speaking both.

Methods: ``make_invoice`` (real BOLT11 on regtest, ``lnbcrt...``, signed by
the fake's key, ``payment_hash = sha256(preimage)``, ``h`` field for a
description hash), ``lookup_invoice``, ``pay_invoice`` (succeeds only on the
fake's own unpaid invoices, settling them as if another node had paid;
anything else is ``PAYMENT_FAILED``), ``get_balance``.

Tests drive incoming payments with :meth:`FakeNwcService.settle`, force error
answers through :attr:`FakeNwcService.errors` and silence through
:attr:`FakeNwcService.unanswered`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

import bolt11
from bolt11.models.tags import TagChar, Tags
from bolt11.types import Bolt11, MilliSatoshi

from dvm.encryption import Scheme, decrypt, encrypt
from nips.nip01 import Event, Signer
from node.links import RelayLink

INFO_KIND = 13194
REQUEST_KIND = 23194
RESPONSE_KIND = 23195
NOTIFICATION_NIP04_KIND = 23196
NOTIFICATION_NIP44_KIND = 23197

METHODS = ("pay_invoice", "get_balance", "make_invoice", "lookup_invoice")


@dataclass
class FakeInvoice:
    bolt11: str
    payment_hash: str
    preimage: str
    amount_msat: int
    description: str
    description_hash: str
    created_at: int
    expires_at: int
    settled_at: int | None = None

    def state(self, now: float) -> str:
        if self.settled_at is not None:
            return "settled"
        return "expired" if now > self.expires_at else "pending"

    def transaction(self, now: float) -> dict[str, Any]:
        """The NIP-47 transaction object (``make_invoice``, ``lookup_invoice``, notifications)."""
        settled = self.settled_at is not None
        return {
            "type": "incoming",
            "state": self.state(now),
            "invoice": self.bolt11,
            "description": self.description,
            "description_hash": self.description_hash,
            "preimage": self.preimage if settled else None,
            "payment_hash": self.payment_hash,
            "amount": self.amount_msat,
            "fees_paid": 0,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "settled_at": self.settled_at,
            "metadata": {},
        }


@dataclass(frozen=True)
class Received:
    """A request as the fake saw it (for tests' assertions)."""

    method: str
    scheme: Scheme
    author: str
    params: dict[str, Any]


class NwcRefusal(Exception):
    """Raised by a method handler to answer with a NIP-47 error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class FakeNwcService:
    """A NIP-47 wallet service on ``relay_url`` serving one client connection.

    ``encryption``: the ``encryption`` tag of the info event (None leaves the tag
    out: NIP-04 only, as legacy services do). ``notifications``: whether it
    advertises and sends ``payment_received``. ``publish_info=False`` publishes
    no info event at all.
    """

    def __init__(
        self,
        relay_url: str,
        *,
        encryption: str | None = "nip44_v2 nip04",
        notifications: bool = True,
        publish_info: bool = True,
        balance_msat: int = 50_000_000,
    ) -> None:
        self.relay_url = relay_url
        self.encryption = encryption
        self.notifications = notifications
        self.publish_info = publish_info
        self.balance_msat = balance_msat
        self.signer = Signer(os.urandom(32))
        self.client_secret = os.urandom(32)
        self.client_pubkey = Signer(self.client_secret).pubkey
        self.invoices: dict[str, FakeInvoice] = {}
        self.received: list[Received] = []
        self.notifications_sent: list[tuple[int, str]] = []  # (kind, payment hash)
        # Tests set these: a method answered with (code, message), or not answered at all.
        self.errors: dict[str, tuple[str, str]] = {}
        self.unanswered: set[str] = set()
        self._link = RelayLink(relay_url, min_backoff=0.05, max_backoff=0.2)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pubkey(self) -> str:
        return self.signer.pubkey

    @property
    def uri(self) -> str:
        return self.uri_with(self.client_secret)

    def uri_with(self, secret: bytes) -> str:
        """A connection URI for this service with any client secret (an unauthorized one too)."""
        return (
            f"nostr+walletconnect://{self.pubkey}?relay={quote(self.relay_url, safe='')}"
            f"&secret={secret.hex()}&lud16=fake%40example.com"
        )

    @property
    def schemes(self) -> list[Scheme]:
        """The encryption schemes it speaks: the info tag's, or NIP-04 alone without one."""
        if self.encryption is None:
            return ["nip04"]
        names = self.encryption.split()
        offered: list[tuple[Scheme, str]] = [("nip44", "nip44_v2"), ("nip04", "nip04")]
        return [scheme for scheme, name in offered if name in names]

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Publish the info event and listen; returns once the relay serves the subscription live."""
        await self._link.start()
        if self.publish_info:
            accepted, message = await self._link.publish(self._info_event())
            assert accepted, message
        listening = asyncio.Event()
        self._link.subscribe(
            "nwc-requests",
            [{"kinds": [REQUEST_KIND], "#p": [self.pubkey]}],
            self._on_request,
            lambda _url: listening.set(),
        )
        await asyncio.wait_for(listening.wait(), 5)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._link.stop()

    async def __aenter__(self) -> FakeNwcService:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def _info_event(self) -> Event:
        content = " ".join(METHODS) + (" notifications" if self.notifications else "")
        tags = []
        if self.encryption is not None:
            tags.append(["encryption", self.encryption])
        if self.notifications:
            tags.append(["notifications", "payment_received"])
        return self.signer.sign(INFO_KIND, content, tags, created_at=int(time.time()))

    # --- test controls ---------------------------------------------------------------

    async def settle(self, payment_hash: str) -> None:
        """Mark one of its invoices paid, as if another node paid it, and notify the client."""
        invoice = self.invoices[payment_hash]
        if invoice.settled_at is None:
            invoice.settled_at = int(time.time())
            self.balance_msat += invoice.amount_msat
        await self._notify(invoice)

    def methods_received(self) -> list[str]:
        return [r.method for r in self.received]

    # --- requests --------------------------------------------------------------------

    def _on_request(self, event: Event, _url: str) -> None:
        expiration = event.expiration
        if expiration is not None and expiration < time.time():
            return
        task = asyncio.create_task(self._answer(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: Event) -> None:
        tag = request.first_tag_value("encryption") or "nip04"
        scheme: Scheme = "nip44" if tag == "nip44_v2" else "nip04"
        if tag not in ("nip44_v2", "nip04") or scheme not in self.schemes:
            reply_scheme: Scheme = "nip44" if "?iv=" not in request.content else "nip04"
            error = {"code": "UNSUPPORTED_ENCRYPTION", "message": f"{tag} is not supported"}
            await self._respond(
                request, reply_scheme, {"result_type": "", "error": error, "result": None}
            )
            return
        plaintext, _ = decrypt(self.signer, request.pubkey, request.content)
        body = json.loads(plaintext)
        method = str(body.get("method", ""))
        params = body.get("params") or {}
        self.received.append(Received(method, scheme, request.pubkey, params))
        if method in self.unanswered:
            return
        try:
            if request.pubkey != self.client_pubkey:
                raise NwcRefusal("UNAUTHORIZED", "no wallet is connected to this public key")
            if method in self.errors:
                raise NwcRefusal(*self.errors[method])
            handler = self._HANDLERS.get(method)
            if handler is None:
                raise NwcRefusal("NOT_IMPLEMENTED", f"{method} is not implemented")
            result = await handler(self, params)
        except NwcRefusal as refusal:
            answer = {
                "result_type": method,
                "error": {"code": refusal.code, "message": str(refusal)},
                "result": None,
            }
        else:
            answer = {"result_type": method, "error": None, "result": result}
        await self._respond(request, scheme, answer)

    async def _respond(self, request: Event, scheme: Scheme, answer: dict[str, Any]) -> None:
        content = encrypt(self.signer, request.pubkey, json.dumps(answer), scheme)
        tags = [["e", request.id], ["p", request.pubkey]]
        event = self.signer.sign(RESPONSE_KIND, content, tags, created_at=int(time.time()))
        await self._link.publish(event)

    async def _notify(self, invoice: FakeInvoice) -> None:
        if not self.notifications:
            return
        body = json.dumps(
            {
                "notification_type": "payment_received",
                "notification": invoice.transaction(time.time()),
            }
        )
        kinds = {"nip44": NOTIFICATION_NIP44_KIND, "nip04": NOTIFICATION_NIP04_KIND}
        for scheme in self.schemes:
            content = encrypt(self.signer, self.client_pubkey, body, scheme)
            event = self.signer.sign(
                kinds[scheme], content, [["p", self.client_pubkey]], created_at=int(time.time())
            )
            await self._link.publish(event)
            self.notifications_sent.append((kinds[scheme], invoice.payment_hash))

    # --- methods ---------------------------------------------------------------------

    async def _make_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = params.get("amount")
        if not isinstance(amount, int) or amount <= 0:
            raise NwcRefusal("OTHER", "amount must be a positive number of msat")
        description = str(params.get("description") or "")
        description_hash = str(params.get("description_hash") or "")
        expiry = int(params.get("expiry") or 86_400)
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        now = int(time.time())
        invoice = FakeInvoice(
            bolt11=self._encode(amount, payment_hash, now, expiry, description, description_hash),
            payment_hash=payment_hash,
            preimage=preimage.hex(),
            amount_msat=amount,
            description="" if description_hash else description,
            description_hash=description_hash,
            created_at=now,
            expires_at=now + expiry,
        )
        self.invoices[payment_hash] = invoice
        return invoice.transaction(now)

    async def _lookup_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        payment_hash = params.get("payment_hash")
        if payment_hash is None and params.get("invoice"):
            payment_hash = bolt11.decode(params["invoice"]).payment_hash
        invoice = self.invoices.get(str(payment_hash))
        if invoice is None:
            raise NwcRefusal("NOT_FOUND", "no such invoice")
        return invoice.transaction(time.time())

    async def _pay_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            payment_hash = bolt11.decode(str(params.get("invoice", ""))).payment_hash
        except Exception:
            raise NwcRefusal("OTHER", "not a BOLT11 invoice") from None
        invoice = self.invoices.get(payment_hash)
        if invoice is None or invoice.state(time.time()) != "pending":
            raise NwcRefusal("PAYMENT_FAILED", "no route found")
        await self.settle(payment_hash)
        self.balance_msat -= invoice.amount_msat  # it paid itself: in, then out
        return {"preimage": invoice.preimage, "fees_paid": 0}

    async def _get_balance(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"balance": self.balance_msat}

    _HANDLERS: ClassVar[
        dict[str, Callable[[FakeNwcService, dict[str, Any]], Awaitable[dict[str, Any]]]]
    ] = {
        "make_invoice": _make_invoice,
        "lookup_invoice": _lookup_invoice,
        "pay_invoice": _pay_invoice,
        "get_balance": _get_balance,
    }

    def _encode(
        self,
        amount: int,
        payment_hash: str,
        now: int,
        expiry: int,
        description: str,
        description_hash: str,
    ) -> str:
        tags = Tags()
        tags.add(TagChar.payment_hash, payment_hash)
        tags.add(TagChar.payment_secret, os.urandom(32).hex())
        if description_hash:
            tags.add(TagChar.description_hash, description_hash)
        else:
            tags.add(TagChar.description, description)
        tags.add(TagChar.expire_time, expiry)
        invoice = Bolt11(currency="bcrt", date=now, tags=tags, amount_msat=MilliSatoshi(amount))
        return str(bolt11.encode(invoice, self.signer.secret_hex()))
