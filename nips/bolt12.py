"""BOLT 12: offers (``lno1...``) and the invoice_request fields a payee reads.

Spec: ``shared/specs/other/bolt12-offer-encoding.md``, sections "Encoding" (the
bech32-style string with no checksum, ``+`` joins, case), "Signature Calculation"
(the Merkle root: :func:`offer_id`, invoice_request signatures), "TLV Fields for
Offers" and "Requirements For Offers" (what a reader must refuse), and "TLV Fields
for ``invoice_request``" / "Requirements for Invoice Requests" (the reader's checks
that need no store of offers). Blinded paths are BOLT 4's ``blinded_path``; TLV
records, ``BigSize`` and ``tu64`` are BOLT 1's. Test vectors:
``shared/specs/other/bolt12-vectors/``.

Pure module: no I/O. Every refusal is a :class:`Bolt12Error` whose ``reason`` says
which kind of fault it was::

    ValueError
     +-- Bolt12Error (.reason: Reason, .detail: str)

Decoding is strict about encodings (minimal ``BigSize`` and ``tu64``, zero bech32
padding) so that re-encoding a decoded offer gives the same bytes, and so the same
:func:`offer_id`.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any, NamedTuple

from coincurve import PrivateKey, PublicKey, PublicKeyXOnly

OFFER_PREFIX = "lno"
INVOICE_REQUEST_PREFIX = "lnr"
INVOICE_PREFIX = "lni"
PREFIXES = (OFFER_PREFIX, INVOICE_REQUEST_PREFIX, INVOICE_PREFIX)

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_WORD = {char: value for value, char in enumerate(_CHARSET)}
_JOIN = re.compile(r"\+[ \t\n\r\f\v]*")

_OFFER_RANGES = ((1, 79), (1_000_000_000, 1_999_999_999))
_INVREQ_RANGES = ((0, 159), (1_000_000_000, 2_999_999_999))
_SIGNATURE_RANGE = (240, 1000)
_MAX_TU64 = 2**64 - 1


class Reason(enum.Enum):
    """Why a BOLT 12 string was refused; the categories of the spec's test vectors."""

    BAD_STRING = "bad string"  # case, '+' joins, characters, separator, padding
    WRONG_PREFIX = "wrong prefix"  # not lno/lnr/lni, or not the kind asked for
    MALFORMED_TLV = "malformed TLV stream"  # truncated, non-minimal BigSize, order
    TYPE_OUT_OF_RANGE = "TLV type out of range"
    UNKNOWN_EVEN_TYPE = "unknown even TLV type"
    BAD_FIELD = "bad field"  # length, UTF-8, tu64, point, blinded path
    UNKNOWN_EVEN_FEATURE = "unknown even feature bit"
    INVALID = "invalid"  # well formed, but a reader MUST NOT accept it
    BAD_SIGNATURE = "bad signature"


class Bolt12Error(ValueError):
    """Raised when a BOLT 12 string or message is malformed or breaks the spec's rules."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


# --- the string ("Encoding") -----------------------------------------------------------


def decode_string(text: str) -> tuple[str, bytes]:
    """The prefix and TLV bytes of a bolt12 string, after removing ``+`` joins.

    ``+`` followed by whitespace may only sit between two bech32 characters; the
    string must be all lower or all upper case; there is no checksum, and the
    bits left over after the last whole byte must be fewer than five and zero.
    """
    pieces = _JOIN.split(text)
    for left, right in pairwise(pieces):
        if left[-1:].lower() not in _WORD or right[:1].lower() not in _WORD:
            raise Bolt12Error(Reason.BAD_STRING, "'+' must join two bech32 characters")
    joined = "".join(pieces)
    if joined not in (joined.lower(), joined.upper()):
        raise Bolt12Error(Reason.BAD_STRING, "mixed upper and lower case")
    prefix, separator, words = joined.lower().rpartition("1")
    if not separator:
        raise Bolt12Error(Reason.BAD_STRING, "no '1' separator after the prefix")
    if prefix not in PREFIXES:
        raise Bolt12Error(Reason.WRONG_PREFIX, f"unknown prefix {prefix!r}")
    if not words:
        raise Bolt12Error(Reason.BAD_STRING, "nothing after the separator")
    bad = next((char for char in words if char not in _WORD), None)
    if bad is not None:
        raise Bolt12Error(Reason.BAD_STRING, f"{bad!r} is not a bech32 character")
    return prefix, _words_to_bytes(words)


def _words_to_bytes(words: str) -> bytes:
    acc = bits = 0
    out = bytearray()
    for char in words:
        acc = (acc << 5 | _WORD[char]) & 0xFFF
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append(acc >> bits & 0xFF)
    if bits > 4:
        raise Bolt12Error(Reason.BAD_STRING, f"{bits} bits of padding (at most 4)")
    if acc & ((1 << bits) - 1):
        raise Bolt12Error(Reason.BAD_STRING, "non-zero padding bits")
    return bytes(out)


def encode_string(prefix: str, data: bytes) -> str:
    """``prefix`` + ``1`` + ``data`` as bech32 characters, lower case, without ``+``.

    Writers SHOULD use upper case for QR codes: ``encode_string(...).upper()``.
    """
    acc = bits = 0
    words = []
    for byte in data:
        acc = (acc << 8 | byte) & 0xFFF
        bits += 8
        while bits >= 5:
            bits -= 5
            words.append(_CHARSET[acc >> bits & 31])
    if bits:
        words.append(_CHARSET[acc << (5 - bits) & 31])
    return f"{prefix}1{''.join(words)}"


def _expect(text: str, prefix: str) -> bytes:
    got, data = decode_string(text)
    if got != prefix:
        raise Bolt12Error(Reason.WRONG_PREFIX, f"expected {prefix}1..., got {got}1...")
    return data


# --- TLV streams (BOLT 1) ----------------------------------------------------------------

Record = tuple[int, bytes]


def bigsize(value: int) -> bytes:
    """BOLT 1 ``BigSize``: the shortest of 1, 3, 5 or 9 bytes that holds ``value``."""
    if value < 0xFD:
        return bytes([value])
    if value <= 0xFFFF:
        return b"\xfd" + value.to_bytes(2, "big")
    if value <= 0xFFFF_FFFF:
        return b"\xfe" + value.to_bytes(4, "big")
    return b"\xff" + value.to_bytes(8, "big")


_BIGSIZE_WIDTH = {0xFD: (2, 0xFD), 0xFE: (4, 0x1_0000), 0xFF: (8, 0x1_0000_0000)}


def _read_bigsize(data: bytes, pos: int, what: str) -> tuple[int, int]:
    if pos >= len(data):
        raise Bolt12Error(Reason.MALFORMED_TLV, f"truncated in {what}")
    if data[pos] not in _BIGSIZE_WIDTH:
        return data[pos], pos + 1
    width, minimum = _BIGSIZE_WIDTH[data[pos]]
    end = pos + 1 + width
    if end > len(data):
        raise Bolt12Error(Reason.MALFORMED_TLV, f"truncated in {what}")
    value = int.from_bytes(data[pos + 1 : end], "big")
    if value < minimum:
        raise Bolt12Error(Reason.MALFORMED_TLV, f"{what} is not a minimal BigSize")
    return value, end


def parse_tlv_stream(data: bytes) -> list[Record]:
    """The (type, value) records of a TLV stream, whose types must strictly increase."""
    records: list[Record] = []
    pos = 0
    while pos < len(data):
        kind, pos = _read_bigsize(data, pos, "a type")
        if records and kind <= records[-1][0]:
            raise Bolt12Error(
                Reason.MALFORMED_TLV, f"type {kind} after type {records[-1][0]}: not increasing"
            )
        length, pos = _read_bigsize(data, pos, f"the length of type {kind}")
        if pos + length > len(data):
            raise Bolt12Error(Reason.MALFORMED_TLV, f"value of type {kind} is truncated")
        records.append((kind, data[pos : pos + length]))
        pos += length
    return records


def _tlv(kind: int, value: bytes) -> bytes:
    return bigsize(kind) + bigsize(len(value)) + value


def encode_tlv_stream(records: Iterable[Record]) -> bytes:
    """The bytes of ``records``, sorted by type; a type given twice is an error."""
    ordered = sorted(records)
    for (a, _), (b, _) in pairwise(ordered):
        if a == b:
            raise Bolt12Error(Reason.MALFORMED_TLV, f"type {a} given twice")
    return b"".join(_tlv(kind, value) for kind, value in ordered)


# --- field types ----------------------------------------------------------------------


def _bad(name: str, why: str) -> Bolt12Error:
    return Bolt12Error(Reason.BAD_FIELD, f"{name} {why}")


def _read_bytes(name: str, value: bytes) -> bytes:
    return value


def _read_utf8(name: str, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(name, "is not valid UTF-8") from None


def _write_utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise Bolt12Error(Reason.BAD_FIELD, f"{text!r} cannot be written as UTF-8") from None


def _read_tu64(name: str, value: bytes) -> int:
    if len(value) > 8:
        raise _bad(name, "is longer than 8 bytes")
    if value[:1] == b"\x00":
        raise _bad(name, "has a leading zero byte (tu64 must be minimal)")
    return int.from_bytes(value, "big")


def _write_tu64(number: int) -> bytes:
    if not 0 <= number <= _MAX_TU64:
        raise Bolt12Error(Reason.BAD_FIELD, f"{number} does not fit in a tu64")
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def _read_point(name: str, value: bytes) -> bytes:
    if len(value) != 33 or value[0] not in (2, 3):
        raise _bad(name, "is not a 33-byte compressed point")
    try:
        PublicKey(value)
    except ValueError:
        raise _bad(name, "is not a point on secp256k1") from None
    return value


def _fixed(size: int) -> Callable[[str, bytes], bytes]:
    def read(name: str, value: bytes) -> bytes:
        if len(value) != size:
            raise _bad(name, f"must be {size} bytes, not {len(value)}")
        return value

    return read


def _read_chains(name: str, value: bytes) -> tuple[bytes, ...]:
    if len(value) % 32:
        raise _bad(name, f"length {len(value)} is not a multiple of 32")
    return tuple(value[i : i + 32] for i in range(0, len(value), 32))


def _unknown_even_bit(features: bytes) -> int | None:
    """The lowest even bit set in a feature bitmap; we know no BOLT 12 feature bits."""
    for index, byte in enumerate(reversed(features)):
        for bit in range(0, 8, 2):
            if byte >> bit & 1:
                return index * 8 + bit
    return None


@dataclass(frozen=True, slots=True)
class BlindedHop:
    """BOLT 4 ``onionmsg_hop``: one hop of a blinded path."""

    blinded_node_id: bytes
    encrypted_recipient_data: bytes


@dataclass(frozen=True, slots=True)
class BlindedPath:
    """BOLT 4 ``blinded_path``: a route to the issuer for the invoice_request.

    ``first_node_id`` is a 33-byte point or a 9-byte ``sciddir`` (a direction byte,
    0 or 1, then a short_channel_id).
    """

    first_node_id: bytes
    path_key: bytes
    hops: tuple[BlindedHop, ...]

    @property
    def final_node_id(self) -> bytes:
        """Where the invoice_request goes (spec: "final ``blinded_node_id``")."""
        return self.hops[-1].blinded_node_id


class _Reader:
    """A cursor over a field's bytes whose running out is the field's fault."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data, self.pos = name, data, 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise _bad(self.name, "is truncated")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def point(self, what: str) -> bytes:
        return _read_point(f"{what} in {self.name}", self.take(33))

    @property
    def done(self) -> bool:
        return self.pos == len(self.data)


def _read_paths(name: str, value: bytes) -> tuple[BlindedPath, ...]:
    reader = _Reader(name, value)
    paths = []
    while not reader.done:
        if reader.data[reader.pos] in (0, 1):
            first = reader.take(9)
        else:
            first = reader.point("first_node_id")
        path_key = reader.point("path_key")
        num_hops = reader.take(1)[0]
        if num_hops == 0:
            raise _bad(name, "has a blinded path with zero hops")
        hops = []
        for _ in range(num_hops):
            node_id = reader.point("blinded_node_id")
            size = int.from_bytes(reader.take(2), "big")
            hops.append(BlindedHop(node_id, reader.take(size)))
        paths.append(BlindedPath(first, path_key, tuple(hops)))
    if not paths:
        raise _bad(name, "holds no paths")
    return tuple(paths)


def _write_paths(paths: tuple[BlindedPath, ...]) -> bytes:
    out = bytearray()
    for path in paths:
        if not 1 <= len(path.hops) <= 255:
            raise Bolt12Error(Reason.BAD_FIELD, "a blinded path has 1 to 255 hops")
        out += path.first_node_id + path.path_key + bytes([len(path.hops)])
        for hop in path.hops:
            data = hop.encrypted_recipient_data
            out += hop.blinded_node_id + len(data).to_bytes(2, "big") + data
    return bytes(out)


_BIP353_CHARS = re.compile(r"[0-9A-Za-z._-]*")


def _read_bip353(name: str, value: bytes) -> tuple[str, str]:
    reader = _Reader(name, value)
    user = reader.take(reader.take(1)[0])
    domain = reader.take(reader.take(1)[0])
    if not reader.done:
        raise _bad(name, "has trailing bytes")
    parts = (user.decode("latin-1"), domain.decode("latin-1"))
    if not all(_BIP353_CHARS.fullmatch(part) for part in parts):
        raise _bad(name, "may hold only 0-9, a-z, A-Z, '-', '_' and '.'")
    return parts


def _write_bip353(name: tuple[str, str]) -> bytes:
    user, domain = (part.encode("ascii") for part in name)
    return bytes([len(user)]) + user + bytes([len(domain)]) + domain


class _Field(NamedTuple):
    name: str  # the spec's name, for messages
    attr: str  # the dataclass attribute
    read: Callable[[str, bytes], Any]
    write: Callable[[Any], bytes]


def _join(chains: tuple[bytes, ...]) -> bytes:
    return b"".join(chains)


# "TLV Fields for Offers"
_OFFER_FIELDS = {
    2: _Field("offer_chains", "chains", _read_chains, _join),
    4: _Field("offer_metadata", "metadata", _read_bytes, bytes),
    6: _Field("offer_currency", "currency", _read_utf8, _write_utf8),
    8: _Field("offer_amount", "amount", _read_tu64, _write_tu64),
    10: _Field("offer_description", "description", _read_utf8, _write_utf8),
    12: _Field("offer_features", "features", _read_bytes, bytes),
    14: _Field("offer_absolute_expiry", "absolute_expiry", _read_tu64, _write_tu64),
    16: _Field("offer_paths", "paths", _read_paths, _write_paths),
    18: _Field("offer_issuer", "issuer", _read_utf8, _write_utf8),
    20: _Field("offer_quantity_max", "quantity_max", _read_tu64, _write_tu64),
    22: _Field("offer_issuer_id", "issuer_id", _read_point, bytes),
}

# "TLV Fields for invoice_request", less the offer fields it mirrors
_INVREQ_FIELDS = {
    0: _Field("invreq_metadata", "metadata", _read_bytes, bytes),
    80: _Field("invreq_chain", "chain", _fixed(32), bytes),
    82: _Field("invreq_amount", "amount", _read_tu64, _write_tu64),
    84: _Field("invreq_features", "features", _read_bytes, bytes),
    86: _Field("invreq_quantity", "quantity", _read_tu64, _write_tu64),
    88: _Field("invreq_payer_id", "payer_id", _read_point, bytes),
    89: _Field("invreq_payer_note", "payer_note", _read_utf8, _write_utf8),
    90: _Field("invreq_paths", "paths", _read_paths, _write_paths),
    91: _Field("invreq_bip_353_name", "bip_353_name", _read_bip353, _write_bip353),
    240: _Field("signature", "signature", _fixed(64), bytes),
}


def _in(kind: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(low <= kind <= high for low, high in ranges)


def _read_fields(
    records: Iterable[Record], fields: dict[int, _Field]
) -> tuple[dict[str, Any], tuple[Record, ...]]:
    """Known fields by attribute, and the unknown records (already checked odd)."""
    values: dict[str, Any] = {}
    unknown = []
    for kind, value in records:
        spec = fields.get(kind)
        if spec is None:
            unknown.append((kind, value))
        else:
            values[spec.attr] = spec.read(spec.name, value)
    return values, tuple(unknown)


def _write_fields(obj: object, fields: dict[int, _Field]) -> list[Record]:
    return [
        (kind, spec.write(getattr(obj, spec.attr)))
        for kind, spec in fields.items()
        if getattr(obj, spec.attr) is not None
    ]


def _check_types(
    records: Iterable[Record], known: Iterable[int], ranges: Sequence[tuple[int, int]]
) -> None:
    known_types = frozenset(known)
    for kind, _ in records:
        if not _in(kind, ranges):
            raise Bolt12Error(Reason.TYPE_OUT_OF_RANGE, f"type {kind} is outside {_show(ranges)}")
        if kind % 2 == 0 and kind not in known_types:
            raise Bolt12Error(Reason.UNKNOWN_EVEN_TYPE, f"type {kind} is even and unknown")


def _show(ranges: Iterable[tuple[int, int]]) -> str:
    return " and ".join(f"{low}-{high}" for low, high in ranges)


# --- Merkle root ("Signature Calculation") --------------------------------------------


def tagged_hash(tag: bytes, message: bytes) -> bytes:
    """H(tag, msg) = SHA256(SHA256(tag) || SHA256(tag) || msg), as BIP-340."""
    tag_hash = hashlib.sha256(tag).digest()
    return hashlib.sha256(tag_hash + tag_hash + message).digest()


def _branch(a: bytes, b: bytes) -> bytes:
    return tagged_hash(b"LnBranch", min(a, b) + max(a, b))


def merkle_root(stream: bytes) -> bytes:
    """The Merkle root of a TLV stream, leaving out signature types (240-1000).

    Each TLV's leaf H("LnLeaf", tlv) is paired with its nonce leaf
    H("LnNonce" || first-tlv, type); pairs are joined level by level, and an odd
    node at the end of a level moves up unpaired, which puts the deepest subtree
    on the lowest types, as the spec asks.
    """
    tlvs = [
        (kind, _tlv(kind, value))
        for kind, value in parse_tlv_stream(stream)
        if not _in(kind, [_SIGNATURE_RANGE])
    ]
    if not tlvs:
        raise Bolt12Error(Reason.INVALID, "no TLVs to hash")
    nonce_tag = b"LnNonce" + tlvs[0][1]
    level = [
        _branch(tagged_hash(b"LnLeaf", tlv), tagged_hash(nonce_tag, bigsize(kind)))
        for kind, tlv in tlvs
    ]
    while len(level) > 1:
        joined = [_branch(a, b) for a, b in zip(level[::2], level[1::2], strict=False)]
        level = joined + level[-1:] if len(level) % 2 else joined
    return level[0]


_NOT_READ_BACK = (
    "does not read back as given: a known type in unknown, or a field not of its declared type"
)


# --- offers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """The fields of an offer ("TLV Fields for Offers"); None means absent.

    ``amount`` is in msat unless ``currency`` (ISO 4217) is set, in which case it
    is in that currency's minor unit. ``quantity_max`` 0 means "any quantity".
    ``unknown`` holds the odd TLVs we do not know, kept so the offer re-encodes
    (and hashes) as it came.
    """

    chains: tuple[bytes, ...] | None = None
    metadata: bytes | None = None
    currency: str | None = None
    amount: int | None = None
    description: str | None = None
    features: bytes | None = None
    absolute_expiry: int | None = None
    paths: tuple[BlindedPath, ...] | None = None
    issuer: str | None = None
    quantity_max: int | None = None
    issuer_id: bytes | None = None
    unknown: tuple[Record, ...] = ()

    @property
    def amount_msat(self) -> int | None:
        """The amount when it is in msat (no ``offer_currency``), else None."""
        return self.amount if self.currency is None else None

    def expired(self, now: int) -> bool:
        """Whether ``now`` (unix seconds) is after ``offer_absolute_expiry``."""
        return self.absolute_expiry is not None and now > self.absolute_expiry


def _offer_records(offer: Offer) -> list[Record]:
    return _write_fields(offer, _OFFER_FIELDS) + list(offer.unknown)


def _offer_from_records(records: Iterable[Record]) -> Offer:
    values, unknown = _read_fields(records, _OFFER_FIELDS)
    return Offer(**values, unknown=unknown)


def check_offer(offer: Offer) -> None:
    """The reader's MUST NOTs of "Requirements For Offers" that need no clock or chain list.

    The caller still checks expiry (:meth:`Offer.expired`) and that it accepts
    one of the ``chains`` (bitcoin when None).
    """
    if offer.chains == ():
        raise Bolt12Error(Reason.INVALID, "offer_chains is present but lists no chain")
    if offer.features is not None and (bit := _unknown_even_bit(offer.features)) is not None:
        raise Bolt12Error(Reason.UNKNOWN_EVEN_FEATURE, f"offer_features sets unknown bit {bit}")
    if offer.amount is not None and offer.description is None:
        raise Bolt12Error(Reason.INVALID, "offer_amount is set but offer_description is not")
    if offer.amount == 0:
        raise Bolt12Error(Reason.INVALID, "offer_amount must be greater than zero")
    if offer.currency is not None and offer.amount is None:
        raise Bolt12Error(Reason.INVALID, "offer_currency is set but offer_amount is not")
    if offer.issuer_id is None and not offer.paths:
        raise Bolt12Error(Reason.INVALID, "neither offer_issuer_id nor offer_paths is set")


def decode_offer(text: str) -> Offer:
    """Read an ``lno1...`` string; :class:`Bolt12Error` if a reader must not respond to it."""
    records = parse_tlv_stream(_expect(text, OFFER_PREFIX))
    _check_types(records, _OFFER_FIELDS, _OFFER_RANGES)
    offer = _offer_from_records(records)
    check_offer(offer)
    return offer


def encode_offer(offer: Offer) -> str:
    """The ``lno1...`` string of ``offer``; :class:`Bolt12Error` if a reader would refuse it."""
    text = encode_string(OFFER_PREFIX, encode_tlv_stream(_offer_records(offer)))
    if decode_offer(text) != offer:
        raise Bolt12Error(Reason.INVALID, _NOT_READ_BACK)
    return text


def offer_id(offer: Offer) -> str:
    """The offer's Merkle root (hex): what invoice_requests and invoices for it share."""
    return merkle_root(encode_tlv_stream(_offer_records(offer))).hex()


def make_offer(
    issuer_id: bytes, description: str, issuer: str = "", amount_msat: int | None = None
) -> Offer:
    """A pathless offer payable to the node key ``issuer_id`` (33-byte compressed point).

    Empty ``description`` and ``issuer`` are left out; an amount needs a description.
    """
    offer = Offer(
        amount=amount_msat,
        description=description or None,
        issuer=issuer or None,
        issuer_id=issuer_id,
    )
    encode_offer(offer)
    return offer


# --- invoice requests -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceRequest:
    """The fields of an invoice_request we read ("TLV Fields for ``invoice_request``").

    ``offer`` holds the offer fields it mirrors (for a request made from no offer
    they need not form a valid offer); ``offer_id(request.offer)`` names the offer
    it pays. ``amount`` is ``invreq_amount`` in msat.
    """

    metadata: bytes
    payer_id: bytes
    offer: Offer = field(default_factory=Offer)
    chain: bytes | None = None
    amount: int | None = None
    features: bytes | None = None
    quantity: int | None = None
    payer_note: str | None = None
    paths: tuple[BlindedPath, ...] | None = None
    bip_353_name: tuple[str, str] | None = None
    signature: bytes | None = None
    unknown: tuple[Record, ...] = ()

    @property
    def is_for_offer(self) -> bool:
        """A response to an offer (it has ``offer_issuer_id`` or ``offer_paths``)."""
        return self.offer.issuer_id is not None or self.offer.paths is not None


def _invoice_request_records(request: InvoiceRequest) -> list[Record]:
    return (
        _offer_records(request.offer)
        + _write_fields(request, _INVREQ_FIELDS)
        + list(request.unknown)
    )


def _signature_message(stream: bytes) -> bytes:
    return tagged_hash(b"lightninginvoice_requestsignature", merkle_root(stream))


def _signature_ok(payer_id: bytes, signature: bytes, stream: bytes) -> bool:
    """BIP-340 check against the x coordinate of ``payer_id`` (a checked point)."""
    return bool(PublicKeyXOnly(payer_id[1:]).verify(signature, _signature_message(stream)))


def _check_invoice_request(request: InvoiceRequest) -> None:
    """The reader's rejections of "Requirements for Invoice Requests" that need no offer store.

    The caller still checks that ``request.offer`` matches a live offer of its own
    (compare :func:`offer_id`), the chain, and currency conversions.
    """
    for name, features in (("offer", request.offer.features), ("invreq", request.features)):
        if features is not None and (bit := _unknown_even_bit(features)) is not None:
            raise Bolt12Error(
                Reason.UNKNOWN_EVEN_FEATURE, f"{name}_features sets unknown bit {bit}"
            )
    offer = request.offer
    if request.is_for_offer:
        _check_against_offer(request, offer)
    else:
        present = [
            name
            for name, value in (
                ("offer_chains", offer.chains),
                ("offer_features", offer.features),
                ("offer_quantity_max", offer.quantity_max),
            )
            if value is not None
        ]
        if present:
            raise Bolt12Error(Reason.INVALID, f"{', '.join(present)} without an offer")
        if request.amount is None:
            raise Bolt12Error(Reason.INVALID, "invreq_amount is required without an offer")


def _check_against_offer(request: InvoiceRequest, offer: Offer) -> None:
    if request.signature is None:
        raise Bolt12Error(Reason.BAD_SIGNATURE, "a request for an offer must be signed")
    if offer.quantity_max is None:
        if request.quantity is not None:
            raise Bolt12Error(Reason.INVALID, "invreq_quantity for an offer without quantities")
    elif request.quantity is None or request.quantity == 0:
        raise Bolt12Error(Reason.INVALID, "the offer needs an invreq_quantity above zero")
    elif 0 < offer.quantity_max < request.quantity:
        raise Bolt12Error(Reason.INVALID, "invreq_quantity is above offer_quantity_max")
    if offer.amount is None:
        if request.amount is None:
            raise Bolt12Error(Reason.INVALID, "invreq_amount is required when the offer has none")
    elif request.amount is not None and offer.currency is None:
        expected = offer.amount * (request.quantity or 1)
        if request.amount < expected:
            raise Bolt12Error(
                Reason.INVALID, f"invreq_amount is below the expected {expected} msat"
            )


def decode_invoice_request(text: str) -> InvoiceRequest:
    """Read an ``lnr1...`` string, checking its signature when it has one."""
    stream = _expect(text, INVOICE_REQUEST_PREFIX)
    records = parse_tlv_stream(stream)
    _check_types(
        records,
        [*_OFFER_FIELDS, *_INVREQ_FIELDS],
        [*_INVREQ_RANGES, _SIGNATURE_RANGE],
    )
    offer_part = [(kind, value) for kind, value in records if _in(kind, _OFFER_RANGES)]
    rest = [(kind, value) for kind, value in records if not _in(kind, _OFFER_RANGES)]
    values, unknown = _read_fields(rest, _INVREQ_FIELDS)
    for attr, name in (("metadata", "invreq_metadata"), ("payer_id", "invreq_payer_id")):
        if attr not in values:
            raise Bolt12Error(Reason.INVALID, f"{name} is missing")
    request = InvoiceRequest(**values, offer=_offer_from_records(offer_part), unknown=unknown)
    signature = request.signature
    if signature is not None and not _signature_ok(request.payer_id, signature, stream):
        raise Bolt12Error(Reason.BAD_SIGNATURE, "signature does not verify with invreq_payer_id")
    _check_invoice_request(request)
    return request


def encode_invoice_request(request: InvoiceRequest) -> str:
    """The ``lnr1...`` string of ``request`` as it stands (sign it first with :func:`sign_invoice_request`)."""
    text = encode_string(
        INVOICE_REQUEST_PREFIX, encode_tlv_stream(_invoice_request_records(request))
    )
    if decode_invoice_request(text) != request:
        raise Bolt12Error(Reason.INVALID, _NOT_READ_BACK)
    return text


def sign_invoice_request(request: InvoiceRequest, payer_secret: bytes) -> InvoiceRequest:
    """``request`` with its BIP-340 ``signature`` by the key of ``invreq_payer_id``."""
    key = PrivateKey(payer_secret)
    if key.public_key.format() != request.payer_id:
        raise Bolt12Error(Reason.BAD_SIGNATURE, "payer_secret is not the key of invreq_payer_id")
    unsigned = replace(request, signature=None)
    message = _signature_message(encode_tlv_stream(_invoice_request_records(unsigned)))
    return replace(request, signature=key.sign_schnorr(message))
