"""The NWC wallet: a Lightning wallet reached over Nostr (NIP-47, Nostr Wallet Connect).

Spec: ``shared/specs/nips/47.md``. DESIGN.md section 6. The wallet service
(Alby Hub, a custodian, a bridge to the user's node) listens on the relays of
the connection URI, ``nostr+walletconnect://<service pubkey>?relay=...&secret=
...&lud16=...``; we sign requests (kind 23194) with the URI's ``secret`` and
read the answers (kind 23195, ``e`` = our request) and notifications (23196
NIP-04, 23197 NIP-44) addressed to its public key.

- Connecting: the service's info event (kind 13194, "Info Event") says which
  encryption it speaks (NIP-44 is preferred; no ``encryption`` tag means
  NIP-04 only, "Encryption") and whether it sends ``payment_received``
  notifications. Without them, the invoices this object made are polled with
  ``lookup_invoice`` every ``poll_interval`` seconds until they expire; with
  them, they are polled every ``reconcile_interval`` seconds all the same,
  because notifications are ephemeral events and one sent while our relay
  link was down is gone.
- Requests carry an ``expiration`` tag at our timeout, so a service that only
  sees a ``pay_invoice`` after we gave up ignores it ("Request and Response
  Events"). Error answers become :class:`NwcError` (or
  :class:`NwcPaymentFailed` for ``pay_invoice``) with NIP-47's code.
- NIP-47 knows BOLT11 only: no offers, and paying one is :class:`PaymentFailed`.
- Invoice labels are ours alone (NIP-47 has none); they are kept in memory
  and not checked for uniqueness.

The URI's secret is a spending key: it lives in a :class:`~nips.nip01.Signer`
and never reaches a log line, an error message or a ``repr``.

Why not nostr-sdk's ``NostrWalletConnect`` (0.45.1): its Python binding has no
way to receive notifications, it reports NIP-47 errors only as text
(``NostrSdkError.Generic("message [RateLimited]")``), and it is one more
UniFFI client to shut down by hand; our own :class:`~node.links.RelayPool`
reconnects, authenticates (NIP-42, with the connection key) and verifies
every event already.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import parse_qs, urlsplit

from dvm.encryption import DecryptionFailed, Scheme, decrypt, encrypt
from nips.nip01 import Event, Signer, is_hex64
from node.links import RelayPool
from node.wallet import Invoice, OnSettled, Payment, PaymentFailed, Settlement, WalletError, report

log = logging.getLogger(__name__)

INFO_KIND = 13194
REQUEST_KIND = 23194
RESPONSE_KIND = 23195
NOTIFICATION_KINDS: dict[Scheme, int] = {"nip04": 23196, "nip44": 23197}
ENCRYPTION_TAGS: dict[Scheme, str] = {"nip44": "nip44_v2", "nip04": "nip04"}
URI_SCHEMES = ("nostr+walletconnect", "nostrwalletconnect")

MAX_ERROR_MESSAGE = 300  # the service's own words, quoted in ours
REPORTED_MEMORY = 10_000  # payment hashes already handed to on_settled
PARALLEL_LOOKUPS = 8  # lookup_invoice requests in flight at once while watching invoices


class NwcError(WalletError):
    """Raised when the wallet service answered with a NIP-47 error; ``code`` is NIP-47's."""

    def __init__(self, method: str, code: str, message: str) -> None:
        super().__init__(f"NWC {method}: {code}: {message[:MAX_ERROR_MESSAGE]}")
        self.method = method
        self.code = code


class NwcPaymentFailed(NwcError, PaymentFailed):
    """Raised when the wallet service answered ``pay_invoice`` with an error: nothing was paid."""


class NwcNoAnswer(WalletError):
    """Raised when no answer came in time; a ``pay_invoice`` may still have gone through."""


# --- the connection URI and the info event ------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionUri:
    """A parsed ``nostr+walletconnect://`` URI ("Nostr Wallet Connect URI")."""

    wallet_pubkey: str
    relays: tuple[str, ...]
    secret: bytes = field(repr=False)
    lud16: str = ""

    @classmethod
    def parse(cls, text: str) -> ConnectionUri:
        """Raises :class:`WalletError`, whose message never quotes the URI (it holds the secret)."""
        try:
            parts = urlsplit(text.strip())
            query = parse_qs(parts.query)
        except ValueError:
            raise WalletError("NWC URI: not a URI") from None
        if parts.scheme.lower() not in URI_SCHEMES:
            raise WalletError("NWC URI: the scheme must be nostr+walletconnect://")
        pubkey = (parts.netloc or parts.path.lstrip("/")).lower()
        if not is_hex64(pubkey):
            raise WalletError("NWC URI: the wallet service's public key must be 64 hex characters")
        relays = tuple(dict.fromkeys(query.get("relay", [])))
        if not relays:
            raise WalletError("NWC URI: no relay")
        for relay in relays:
            if urlsplit(relay).scheme not in ("ws", "wss"):
                raise WalletError(f"NWC URI: relay {relay!r} is not a ws:// or wss:// URL")
        secrets = query.get("secret", [])
        if len(secrets) != 1 or not is_hex64(secrets[0].lower()):
            raise WalletError("NWC URI: the secret must be one value of 64 hex characters")
        try:
            Signer(secrets[0])
        except ValueError:
            raise WalletError("NWC URI: the secret is not a valid secp256k1 key") from None
        lud16 = query.get("lud16", [""])[0]
        return cls(pubkey, relays, bytes.fromhex(secrets[0]), lud16)


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What the wallet service's info event (kind 13194) advertises."""

    methods: frozenset[str]
    notifications: frozenset[str]
    encryption: frozenset[Scheme]

    @classmethod
    def from_event(cls, event: Event | None) -> ServiceInfo:
        """No info event, or no ``encryption`` tag: NIP-04 only, no notifications."""
        if event is None:
            return cls(frozenset(), frozenset(), frozenset({"nip04"}))
        tag = event.first_tag_value("encryption")
        names = tag.split() if tag is not None else ["nip04"]
        schemes = frozenset(s for s, name in ENCRYPTION_TAGS.items() if name in names)
        return cls(
            frozenset(event.content.split()),
            frozenset((event.first_tag_value("notifications") or "").split()),
            schemes,
        )

    @property
    def scheme(self) -> Scheme:
        """NIP-44 whenever the service speaks it; NIP-04 otherwise."""
        return "nip44" if "nip44" in self.encryption else "nip04"

    @property
    def notifies_payments(self) -> bool:
        return "payment_received" in self.notifications


# --- answers and transactions (pure) -----------------------------------------------


def result_of(method: str, answer: object) -> dict[str, Any]:
    """The ``result`` of a decrypted response, or the NIP-47 error it carries, raised."""
    if not isinstance(answer, dict):
        raise WalletError(f"NWC {method}: the answer is not a JSON object")
    error = answer.get("error")
    if error:
        code = str(error.get("code") or "OTHER") if isinstance(error, dict) else "OTHER"
        message = str(error.get("message") or "") if isinstance(error, dict) else str(error)
        failure = NwcPaymentFailed if method == "pay_invoice" else NwcError
        raise failure(method, code, message)
    result_type = answer.get("result_type")
    if result_type is not None and result_type != method:
        raise WalletError(f"NWC {method}: the answer is for {str(result_type)[:40]!r}")
    result = answer.get("result")
    if not isinstance(result, dict):
        raise WalletError(f"NWC {method}: the answer has no result")
    return result


def settlement_of(transaction: dict[str, Any], label: str = "") -> Settlement | None:
    """The settlement a NIP-47 transaction object describes; None unless settled and sound.

    Settled is ``state == "settled"``, or, from services older than the
    ``state`` field, a ``settled_at``. The preimage must hash to the payment hash.
    """
    state = transaction.get("state")
    settled = state == "settled" if state is not None else bool(transaction.get("settled_at"))
    payment_hash = transaction.get("payment_hash")
    preimage = transaction.get("preimage")
    if not settled or not isinstance(payment_hash, str) or not _proves(preimage, payment_hash):
        return None
    return Settlement(
        payment_hash=payment_hash,
        amount_msat=_int(transaction.get("amount")),
        preimage=preimage,
        settled_at=_int(transaction.get("settled_at")) or int(time.time()),
        label=label,
    )


def _proves(preimage: object, payment_hash: str) -> TypeGuard[str]:
    """Whether ``preimage`` is the hex preimage of ``payment_hash``."""
    return (
        is_hex64(preimage)
        and hashlib.sha256(bytes.fromhex(str(preimage))).hexdigest() == payment_hash
    )


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _decode_bolt11(text: str) -> Any:
    import bolt11

    return bolt11.decode(text)


@dataclass(slots=True)
class _Made:
    """An invoice this object made, watched until it is settled or expired."""

    label: str
    expires_at: int
    reported: bool = False


# --- the wallet ---------------------------------------------------------------------


class NwcWallet:
    name = "nwc"
    real_money = True

    def __init__(
        self,
        uri: str,
        *,
        timeout: float = 30.0,
        poll_interval: float = 1.0,
        reconcile_interval: float = 60.0,
    ) -> None:
        self._uri = ConnectionUri.parse(uri)
        self._signer = Signer(self._uri.secret)
        self._timeout = timeout
        self._poll_interval = poll_interval
        self._reconcile_interval = reconcile_interval
        self._connecting = asyncio.Lock()
        self._lookups = asyncio.Semaphore(PARALLEL_LOOKUPS)
        self._pool: RelayPool | None = None
        self._info: ServiceInfo | None = None
        self._answers: dict[str, asyncio.Future[object]] = {}  # request id -> decrypted answer
        self._made: dict[str, _Made] = {}  # payment hash -> our invoice, while watched
        self._reported: OrderedDict[str, None] = OrderedDict()
        self._on_settled: OnSettled | None = None
        self._poller: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"NwcWallet(service={self._uri.wallet_pubkey}, relays={list(self._uri.relays)})"

    @property
    def lud16(self) -> str:
        return self._uri.lud16

    # --- lifecycle -------------------------------------------------------------

    async def start(self, on_settled: OnSettled) -> None:
        """Raises :class:`WalletError` when no relay of the URI answers."""
        if self._poller is not None:
            raise RuntimeError("NwcWallet already started")
        info = await self._connect()
        self._on_settled = on_settled
        if info.notifies_payments:
            interval = self._reconcile_interval
        else:
            interval = self._poll_interval
            log.info("NWC service sends no payment notifications: polling every %g s", interval)
        self._poller = asyncio.create_task(self._watch(interval), name="nwc-settlements")

    async def stop(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        self._on_settled = None
        # Not under the lock: a _connect() still waiting for the info event sees its
        # pool stopped (LinkClosed) and gives up.
        pool, self._pool, self._info = self._pool, None, None
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(WalletError("NWC wallet stopped before the answer came"))
        if pool is not None:
            await pool.stop()

    async def _connect(self) -> ServiceInfo:
        """Open the relay links and read the info event, once; later calls return at once."""
        async with self._connecting:
            if self._info is not None:
                return self._info
            pool = self._pool = RelayPool(self._uri.relays, signer=self._signer)
            await pool.start()
            service = self._uri.wallet_pubkey
            try:
                found = await pool.query(
                    [{"kinds": [INFO_KIND], "authors": [service], "limit": 1}], self._timeout
                )
            except Exception as exc:  # TimeoutError, QueryRefused, LinkClosed
                if self._pool is pool:
                    self._pool = None
                await pool.stop()
                raise WalletError(f"NWC: the wallet's relays did not answer: {exc}") from None
            if self._pool is not pool:
                await pool.stop()
                raise WalletError("NWC wallet stopped while connecting")
            info = ServiceInfo.from_event(found[0] if found else None)
            kinds = [RESPONSE_KIND]
            if info.notifies_payments:
                kinds.append(NOTIFICATION_KINDS[info.scheme])
            pool.subscribe(
                "nwc",
                [{"kinds": kinds, "authors": [service], "#p": [self._signer.pubkey]}],
                self._on_event,
            )
            if not found:
                log.warning(
                    "NWC service %s has no info event: assuming NIP-04, no notifications", service
                )
            log.info(
                "NWC wallet %s via %s: %s, notifications %s",
                service,
                ", ".join(self._uri.relays),
                info.scheme,
                "on" if info.notifies_payments else "off",
            )
            self._info = info
            return info

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
        """With ``description_hash``, ``description`` (the zap request, say) is sent along too:
        services differ in which they use. The invoice must commit to the hash."""
        if amount_msat <= 0:
            raise WalletError("amount must be positive")
        params: dict[str, Any] = {"amount": amount_msat, "expiry": expiry}
        if description:
            params["description"] = description
        if description_hash is not None:
            params["description_hash"] = description_hash.hex()
        made = await self._request("make_invoice", params)
        bolt11 = made.get("invoice")
        if not isinstance(bolt11, str) or not bolt11:
            raise WalletError("NWC make_invoice: the answer has no invoice")
        try:
            decoded = _decode_bolt11(bolt11)
        except Exception as exc:  # the bolt11 package raises a family of its own
            raise WalletError(f"NWC make_invoice: the invoice does not decode: {exc}") from None
        payment_hash = str(made.get("payment_hash") or decoded.payment_hash)
        if payment_hash != decoded.payment_hash:
            raise WalletError("NWC make_invoice: the payment hash is not the invoice's")
        if description_hash is not None and decoded.description_hash != description_hash.hex():
            raise WalletError(
                "NWC make_invoice: the invoice does not commit to the description hash"
            )
        expires_at = _int(made.get("expires_at")) or int(decoded.expiry_time)
        self._made[payment_hash] = _Made(label, expires_at)
        return Invoice(
            bolt11=bolt11,
            payment_hash=payment_hash,
            amount_msat=decoded.amount_msat or amount_msat,
            expires_at=expires_at,
            label=label,
            description="" if description_hash is not None else description,
            description_hash=description_hash.hex() if description_hash is not None else "",
        )

    async def lookup(self, payment_hash: str) -> Settlement | None:
        """None while unpaid, and for a payment hash the service does not know."""
        try:
            found = await self._request("lookup_invoice", {"payment_hash": payment_hash})
        except NwcError as exc:
            if exc.code == "NOT_FOUND":
                return None
            raise
        made = self._made.get(payment_hash)
        return settlement_of(found, made.label if made is not None else "")

    async def _watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for payment_hash, made in list(self._made.items()):
                if made.reported and made.expires_at < now:
                    del self._made[payment_hash]  # kept till now for its label
            watched = [(h, made) for h, made in self._made.items() if not made.reported]
            answers = await asyncio.gather(
                *(self._lookup_watched(payment_hash) for payment_hash, _ in watched),
                return_exceptions=True,
            )
            failures: list[Exception] = []
            for (payment_hash, made), answer in zip(watched, answers, strict=True):
                if isinstance(answer, Settlement):
                    self._report(answer)
                elif isinstance(answer, Exception):
                    failures.append(answer)
                elif isinstance(answer, BaseException):
                    raise answer
                elif made.expires_at < now:  # looked up once more after it expired: done
                    self._made.pop(payment_hash, None)
            if failures:
                log.warning("NWC: %d invoice lookups failed: %s", len(failures), failures[0])

    async def _lookup_watched(self, payment_hash: str) -> Settlement | None:
        async with self._lookups:  # a round of many invoices must not flood the service
            return await self.lookup(payment_hash)

    def _report(self, settlement: Settlement) -> None:
        if self._on_settled is None or settlement.payment_hash in self._reported:
            return
        self._reported[settlement.payment_hash] = None
        made = self._made.get(settlement.payment_hash)
        if made is not None:
            made.reported = True
        if len(self._reported) > REPORTED_MEMORY:
            self._reported.popitem(last=False)
        report(self._on_settled, settlement, log)

    # --- paying, offers, balance -------------------------------------------------

    async def pay(self, bolt11: str, *, amount_msat: int | None = None) -> Payment:
        """A BOLT11 invoice. :class:`NwcPaymentFailed` when the service refused or failed;
        :class:`NwcNoAnswer` (a plain :class:`WalletError`) when the outcome is unknown."""
        text = bolt11.strip()
        if text.lower().startswith("lno"):
            raise PaymentFailed("NWC pays BOLT11 invoices only: NIP-47 has no BOLT12 offers")
        try:
            decoded = _decode_bolt11(text)
        except Exception as exc:
            raise PaymentFailed(f"not a BOLT11 invoice: {exc}") from None
        params: dict[str, Any] = {"invoice": text}
        if amount_msat is not None:
            params["amount"] = amount_msat
        paid = await self._request("pay_invoice", params)
        preimage = paid.get("preimage")
        if not _proves(preimage, decoded.payment_hash):
            raise WalletError(
                "NWC pay_invoice: the service's preimage does not match the invoice; "
                "the payment may or may not have gone through"
            )
        return Payment(
            payment_hash=decoded.payment_hash,
            preimage=preimage,
            amount_msat=amount_msat or decoded.amount_msat or 0,
            fee_msat=_int(paid.get("fees_paid")),
        )

    async def offer(self, label: str, description: str) -> str | None:
        return None

    async def balance(self) -> int:
        answer = await self._request("get_balance", {})
        return _int(answer.get("balance"))

    # --- the wire --------------------------------------------------------------

    async def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one request and wait for its answer, at most ``timeout`` seconds in all."""
        info = await self._connect()
        pool = self._pool
        if pool is None:
            raise WalletError("NWC wallet stopped")
        service = self._uri.wallet_pubkey
        body = json.dumps({"method": method, "params": params})
        now = int(time.time())
        tags = [
            ["p", service],
            ["encryption", ENCRYPTION_TAGS[info.scheme]],
            ["expiration", str(now + math.ceil(self._timeout))],
        ]
        content = encrypt(self._signer, service, body, info.scheme)
        request = self._signer.sign(REQUEST_KIND, content, tags, created_at=now)
        answer = self._answers[request.id] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self._timeout):
                sent = await pool.publish(request, self._timeout)
                if not any(accepted for accepted, _ in sent.values()):
                    reasons = "; ".join(f"{url}: {reason}" for url, (_, reason) in sent.items())
                    raise WalletError(f"NWC {method}: no relay took the request ({reasons})")
                return result_of(method, await answer)
        except TimeoutError:
            raise NwcNoAnswer(
                f"NWC {method}: no answer from the wallet service within {self._timeout:g} s"
            ) from None
        finally:
            del self._answers[request.id]

    def _on_event(self, event: Event, _relay: str) -> None:
        if event.kind == RESPONSE_KIND:
            self._on_response(event)
        else:
            self._on_notification(event)

    def _on_response(self, event: Event) -> None:
        answer = self._answers.get(event.first_tag_value("e") or "")
        if answer is None or answer.done():
            return  # not ours, or its request gave up
        try:
            answer.set_result(json.loads(self._decrypt(event)))
        except (DecryptionFailed, ValueError) as exc:
            answer.set_exception(WalletError(f"NWC: unreadable answer: {exc}"))

    def _on_notification(self, event: Event) -> None:
        try:
            body = json.loads(self._decrypt(event))
        except (DecryptionFailed, ValueError) as exc:
            log.warning("NWC: unreadable notification %s: %s", event.id, exc)
            return
        if not isinstance(body, dict) or body.get("notification_type") != "payment_received":
            return
        transaction = body.get("notification")
        if not isinstance(transaction, dict):
            return
        state = transaction.get("state")
        if state is None:  # payment_received means settled; old services say nothing more
            transaction = {**transaction, "state": "settled"}
        made = self._made.get(str(transaction.get("payment_hash")))
        settlement = settlement_of(transaction, made.label if made is not None else "")
        if settlement is None:
            log.warning("NWC: notification %s is not a sound settlement; ignored", event.id)
            return
        self._report(settlement)

    def _decrypt(self, event: Event) -> str:
        plaintext, _ = decrypt(self._signer, event.pubkey, event.content)
        return plaintext
