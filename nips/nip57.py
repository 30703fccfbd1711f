"""NIP-57: Lightning zaps -- zap requests (kind 9734) and zap receipts (kind 9735).

Spec: ``shared/specs/nips/57.md``. Appendix D (the LNURL server's checks of the
``nostr`` query parameter) is :func:`validate_zap_request`; Appendix E (what the
server publishes once the invoice is paid) is :func:`description_hash` and
:func:`receipt_tags`; Appendix F (a client's checks of a receipt) is
:func:`validate_zap_receipt`.

Pure: no I/O, no clock. Every refusal is a :class:`ZapError` whose message can go
straight into an LNURL ``{"status": "ERROR", "reason": ...}`` reply.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
from bolt11 import Bolt11
from bolt11 import decode as decode_invoice

from nips.nip01 import (
    MAX_KIND,
    Event,
    EventId,
    InvalidEvent,
    KindClass,
    PubKey,
    is_hex64,
    kind_class,
    parse_event,
    verify_signature,
)

ZAP_REQUEST_KIND = 9734
ZAP_RECEIPT_KIND = 9735


class ZapError(ValueError):
    """Raised when a zap request or zap receipt fails a NIP-57 check; ``str()`` says which."""


@dataclass(frozen=True, slots=True)
class ZapRequest:
    """A kind-9734 event that passed Appendix D.

    ``description`` is the exact JSON text the request arrived as: the invoice's
    description hash commits to these bytes, so they must not be re-serialised.
    ``receipt_author`` is the optional uppercase ``P`` tag, which Appendix D.8 says
    must equal the pubkey of the zap receipt; the zap's sender is ``event.pubkey``.
    """

    event: Event
    description: str
    recipient: PubKey
    event_id: EventId | None
    address: str | None
    receipt_author: PubKey | None
    amount_msat: int | None
    relays: tuple[str, ...]
    lnurl: str | None
    target_kind: int | None

    @property
    def sender(self) -> PubKey:
        return self.event.pubkey

    @property
    def content(self) -> str:
        """The zap comment."""
        return self.event.content


@dataclass(frozen=True, slots=True)
class ZapReceipt:
    """A kind-9735 event that passed Appendix F, with the zap request inside it."""

    event: Event
    request: ZapRequest
    amount_msat: int
    bolt11: str
    preimage: str | None

    @property
    def recipient(self) -> PubKey:
        return self.request.recipient

    @property
    def sender(self) -> PubKey:
        return self.request.sender

    @property
    def zapped_event(self) -> EventId | None:
        return self.request.event_id

    @property
    def paid_at(self) -> int:
        """The receipt's ``created_at``, which Appendix E sets to the invoice's paid-at time."""
        return self.event.created_at


# --- zap requests (Appendix D) ---------------------------------------------------------


def is_event_coordinate(value: str) -> bool:
    """``<kind>:<pubkey>:<d>`` naming an addressable event, or a replaceable one with empty d."""
    kind, sep1, rest = value.partition(":")
    pubkey, sep2, d = rest.partition(":")
    if not (sep1 and sep2 and kind.isascii() and kind.isdigit() and is_hex64(pubkey)):
        return False
    number = int(kind)
    if str(number) != kind or number > MAX_KIND:
        return False
    cls = kind_class(number)
    return cls is KindClass.ADDRESSABLE or (cls is KindClass.REPLACEABLE and d == "")


def _values(event: Event, name: str) -> list[str]:
    """The value of every ``name`` tag; a tag with no value still counts, as ""."""
    return [tag[1] if len(tag) > 1 else "" for tag in event.tags if tag[0] == name]


def _at_most_one(event: Event, name: str) -> str | None:
    values = _values(event, name)
    if len(values) > 1:
        raise ZapError(f"zap request must have at most one {name} tag")
    return values[0] if values else None


def _decode_request(zap_request: str | Event) -> tuple[Event, str]:
    if isinstance(zap_request, Event):
        return zap_request, zap_request.raw
    try:
        return parse_event(orjson.loads(zap_request)), zap_request
    except orjson.JSONDecodeError:
        raise ZapError("zap request is not valid JSON") from None
    except InvalidEvent as exc:
        raise ZapError(f"zap request is not a valid event: {exc}") from None


def parse_zap_request(zap_request: str | Event) -> ZapRequest:
    """Check what Appendix D asks of any zap request, whatever the amount paid.

    The signature is checked last, as it is the only costly step.
    """
    event, description = _decode_request(zap_request)
    if event.kind != ZAP_REQUEST_KIND:
        raise ZapError(f"zap request must be kind {ZAP_REQUEST_KIND}")
    if not event.tags:
        raise ZapError("zap request has no tags")

    recipients = _values(event, "p")
    if len(recipients) != 1:
        raise ZapError("zap request must have exactly one p tag")
    if not is_hex64(recipients[0]):
        raise ZapError("zap request p tag is not a hex pubkey")

    event_id = _at_most_one(event, "e")
    if event_id is not None and not is_hex64(event_id):
        raise ZapError("zap request e tag is not a hex event id")

    relays = tuple(url for tag in event.tags if tag[0] == "relays" for url in tag[1:])
    if not relays:
        raise ZapError("zap request must have a relays tag naming at least one relay")

    amount = _at_most_one(event, "amount")
    if amount is not None and not (amount.isascii() and amount.isdigit()):
        raise ZapError("zap request amount tag is not a whole number of millisats")

    address = _at_most_one(event, "a")
    if address is not None and not is_event_coordinate(address):
        raise ZapError("zap request a tag is not a valid event coordinate")

    receipt_author = _at_most_one(event, "P")
    if receipt_author is not None and not is_hex64(receipt_author):
        raise ZapError("zap request P tag is not a hex pubkey")

    if not verify_signature(event):
        raise ZapError("zap request signature does not verify")

    k = event.first_tag_value("k") or ""
    return ZapRequest(
        event=event,
        description=description,
        recipient=PubKey(recipients[0]),
        event_id=EventId(event_id) if event_id is not None else None,
        address=address,
        receipt_author=PubKey(receipt_author) if receipt_author is not None else None,
        amount_msat=int(amount) if amount is not None else None,
        relays=tuple(dict.fromkeys(relays)),
        lnurl=event.first_tag_value("lnurl"),
        target_kind=int(k) if k.isascii() and k.isdigit() else None,
    )


def validate_zap_request(
    zap_request: str | Event,
    *,
    amount_msat: int,
    recipient: str | None = None,
    receipt_pubkey: str | None = None,
) -> ZapRequest:
    """The LNURL server's checks of the ``nostr`` query parameter (Appendix D).

    ``zap_request`` is the URL-decoded JSON text (kept byte for byte as the invoice
    description) or an already parsed event. ``amount_msat`` is the ``amount`` query
    parameter; ``recipient`` the pubkey this LNURL endpoint serves, which the ``p``
    tag must name; ``receipt_pubkey`` the server's ``nostrPubkey``, which a ``P`` tag,
    when present, must equal.
    """
    request = parse_zap_request(zap_request)
    if request.amount_msat is not None and request.amount_msat != amount_msat:
        raise ZapError(
            f"zap request amount tag ({request.amount_msat}) does not match "
            f"the amount query parameter ({amount_msat})"
        )
    if recipient is not None and request.recipient != recipient:
        raise ZapError("zap request p tag is not this endpoint's pubkey")
    if (
        receipt_pubkey is not None
        and request.receipt_author is not None
        and request.receipt_author != receipt_pubkey
    ):
        raise ZapError("zap request P tag is not this server's nostrPubkey")
    return request


def description_hash(zap_request_json: str) -> bytes:
    """SHA-256 of the invoice description, which is the zap request's JSON text as received."""
    return hashlib.sha256(zap_request_json.encode()).digest()


# --- zap receipts (Appendix E) ---------------------------------------------------------


def receipt_tags(
    zap_request: ZapRequest, *, bolt11: str, preimage: str | None = None
) -> list[list[str]]:
    """The tags of the kind-9735 receipt for a paid invoice (Appendix E).

    The caller signs them with empty content and ``created_at`` = the invoice's
    paid-at time, so that publishing twice gives the same event.
    """
    tags = [["p", zap_request.recipient]]
    if zap_request.event_id is not None:
        tags.append(["e", zap_request.event_id])
    if zap_request.address is not None:
        tags.append(["a", zap_request.address])
    if zap_request.target_kind is not None:
        tags.append(["k", str(zap_request.target_kind)])
    tags.append(["P", zap_request.sender])
    tags.append(["bolt11", bolt11])
    tags.append(["description", zap_request.description])
    if preimage is not None:
        tags.append(["preimage", preimage])
    return tags


# --- validating receipts (Appendix F) --------------------------------------------------


def _decode_bolt11(bolt11: str) -> Bolt11:
    try:
        return decode_invoice(bolt11)
    # The decoder raises whatever its dependencies raise on garbage: bitstring's
    # ReadError (an IndexError), coincurve's errors, its own Bolt11Exception.
    except Exception as exc:
        raise ZapError(f"zap receipt bolt11 tag is not a valid invoice: {exc}") from None


def _check_preimage(preimage: str, payment_hash: str) -> None:
    try:
        raw = bytes.fromhex(preimage)
    except ValueError:
        raise ZapError("zap receipt preimage tag is not hex") from None
    if hashlib.sha256(raw).hexdigest() != payment_hash.lower():
        raise ZapError("zap receipt preimage does not hash to the invoice's payment hash")


def _check_copied_tags(event: Event, request: ZapRequest) -> None:
    """The receipt's p, e, a and P tags say what the zap request says (Appendix E)."""
    if _values(event, "p") != [request.recipient]:
        raise ZapError("zap receipt p tag does not match the zap request's p tag")
    if _values(event, "e") != ([request.event_id] if request.event_id is not None else []):
        raise ZapError("zap receipt e tag does not match the zap request's e tag")
    if _values(event, "a") != ([request.address] if request.address is not None else []):
        raise ZapError("zap receipt a tag does not match the zap request's a tag")
    if any(sender != request.sender for sender in _values(event, "P")):
        raise ZapError("zap receipt P tag is not the zap request's pubkey")


def validate_zap_receipt(
    event: Event,
    *,
    nostr_pubkey: str,
    expected_recipient: str | None = None,
    lnurl: str | None = None,
) -> ZapReceipt:
    """A client's checks of a kind-9735 receipt (Appendix F, and Appendix E's invariants).

    ``nostr_pubkey`` is the recipient's LNURL ``nostrPubkey``. ``expected_recipient``,
    when given, must be the zapped pubkey; ``lnurl``, when given, must match the zap
    request's ``lnurl`` tag if it has one.
    """
    if event.kind != ZAP_RECEIPT_KIND:
        raise ZapError(f"zap receipt must be kind {ZAP_RECEIPT_KIND}")
    if event.pubkey != nostr_pubkey:
        raise ZapError("zap receipt is not signed by the recipient's LNURL nostrPubkey")
    if not verify_signature(event):
        raise ZapError("zap receipt signature does not verify")

    bolt11 = event.first_tag_value("bolt11")
    if bolt11 is None:
        raise ZapError("zap receipt has no bolt11 tag")
    invoice = _decode_bolt11(bolt11)
    if invoice.amount_msat is None:
        raise ZapError("zap receipt invoice has no amount")
    description = event.first_tag_value("description")
    if description is None:
        raise ZapError("zap receipt has no description tag")
    if invoice.description_hash is None:
        raise ZapError("zap receipt invoice has no description hash")
    if description_hash(description).hex() != invoice.description_hash.lower():
        raise ZapError("zap receipt description does not hash to the invoice's description hash")

    try:
        request = parse_zap_request(description)
    except ZapError as exc:
        raise ZapError(f"zap receipt description: {exc}") from None
    amount_msat = int(invoice.amount_msat)
    if request.amount_msat is not None and request.amount_msat != amount_msat:
        raise ZapError(
            f"zap receipt invoice amount ({amount_msat}) does not match "
            f"the zap request's amount tag ({request.amount_msat})"
        )
    _check_copied_tags(event, request)
    if request.receipt_author is not None and request.receipt_author != event.pubkey:
        raise ZapError("zap request P tag is not the zap receipt's pubkey")

    preimage = event.first_tag_value("preimage")
    if preimage is not None:
        _check_preimage(preimage, invoice.payment_hash)
    if expected_recipient is not None and request.recipient != expected_recipient:
        raise ZapError("zap receipt is for a different recipient")
    if lnurl is not None and request.lnurl is not None and request.lnurl.lower() != lnurl.lower():
        raise ZapError("zap request lnurl tag is not the recipient's lnurl")
    return ZapReceipt(event, request, amount_msat, bolt11, preimage)
