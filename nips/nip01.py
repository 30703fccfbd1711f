"""NIP-01: the basic protocol flow -- events, ids, signatures and filters.

Spec: ``shared/specs/nips/01.md`` (sections "Events and signatures", "Kinds",
"Communication between clients and relays", "From client to relay").

Pure module: no I/O. Everything that arrives from the network goes through
:func:`parse_event` / :func:`parse_filter`, which raise :class:`InvalidEvent` /
:class:`InvalidFilter` with a message meant for the sender.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any, NewType

import orjson
from coincurve import PrivateKey, PublicKeyXOnly

EventId = NewType("EventId", str)
PubKey = NewType("PubKey", str)

_HEX = frozenset("0123456789abcdef")
MAX_KIND = 65535
# SQLite and JavaScript both hold integers up to 2**53 exactly; larger
# timestamps are nonsense anyway.
MAX_TIMESTAMP = 2**53 - 1


class InvalidEvent(ValueError):
    """Raised when an event is malformed, has a wrong id or a bad signature."""


class InvalidFilter(ValueError):
    """Raised when a REQ/COUNT filter is malformed."""


class KindClass(enum.Enum):
    """Storage semantics of a kind (NIP-01 "Kinds")."""

    REGULAR = "regular"
    REPLACEABLE = "replaceable"
    EPHEMERAL = "ephemeral"
    ADDRESSABLE = "addressable"


def kind_class(kind: int) -> KindClass:
    if kind in (0, 3) or 10000 <= kind < 20000:
        return KindClass.REPLACEABLE
    if 20000 <= kind < 30000:
        return KindClass.EPHEMERAL
    if 30000 <= kind < 40000:
        return KindClass.ADDRESSABLE
    return KindClass.REGULAR


def is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX.issuperset(value)


@dataclass(frozen=True, slots=True)
class Event:
    """A parsed, shape-checked Nostr event.

    ``raw`` is the event as compact JSON, kept so relays can store and forward
    it without serialising again.
    """

    id: EventId
    pubkey: PubKey
    created_at: int
    kind: int
    tags: list[list[str]]
    content: str
    sig: str
    raw: str = field(repr=False, compare=False)

    @property
    def kind_class(self) -> KindClass:
        return kind_class(self.kind)

    def first_tag_value(self, name: str) -> str | None:
        for tag in self.tags:
            if len(tag) >= 2 and tag[0] == name:
                return tag[1]
        return None

    def tag_values(self, name: str) -> list[str]:
        return [tag[1] for tag in self.tags if len(tag) >= 2 and tag[0] == name]

    @property
    def d_tag(self) -> str:
        """The ``d`` identifier of an addressable event ("" when absent)."""
        return self.first_tag_value("d") or ""

    @property
    def address(self) -> str | None:
        """``kind:pubkey:d`` for replaceable and addressable events (NIP-01 ``a`` tag)."""
        cls = self.kind_class
        if cls is KindClass.ADDRESSABLE:
            return f"{self.kind}:{self.pubkey}:{self.d_tag}"
        if cls is KindClass.REPLACEABLE:
            return f"{self.kind}:{self.pubkey}:"
        return None

    @property
    def expiration(self) -> int | None:
        """NIP-40 expiration timestamp, or None if absent or unreadable."""
        value = self.first_tag_value("expiration")
        if value is None or not value.isdigit():
            return None
        return int(value)

    @property
    def is_protected(self) -> bool:
        """NIP-70: the event carries the ``["-"]`` tag."""
        return any(tag == ["-"] for tag in self.tags)

    def indexed_tags(self) -> list[tuple[str, str]]:
        """(letter, first value) pairs of single-letter tags, as NIP-01 says relays index them."""
        return [
            (tag[0], tag[1])
            for tag in self.tags
            if len(tag) >= 2 and len(tag[0]) == 1 and tag[0].isascii() and tag[0].isalpha()
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pubkey": self.pubkey,
            "created_at": self.created_at,
            "kind": self.kind,
            "tags": self.tags,
            "content": self.content,
            "sig": self.sig,
        }


def serialize_for_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> bytes:
    """The NIP-01 serialisation ``[0,pubkey,created_at,kind,tags,content]`` as UTF-8.

    orjson writes compact JSON, does not escape non-ASCII, and escapes control
    characters exactly as ``JSON.stringify`` does, which is what NIP-01 asks for.
    """
    return orjson.dumps([0, pubkey, created_at, kind, tags, content])


def compute_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> EventId:
    return EventId(hashlib.sha256(serialize_for_id(pubkey, created_at, kind, tags, content)).hexdigest())


def check_fields(pubkey: object, created_at: object, kind: object, tags: object, content: object) -> None:
    """The types and ranges of the fields an event id is computed from; :class:`InvalidEvent` if wrong.

    Also for unsigned events (a NIP-13 proof-of-work job's input, say).
    """
    if not is_hex64(pubkey):
        raise InvalidEvent("pubkey must be 64 lowercase hex characters")
    if type(created_at) is not int or not 0 <= created_at <= MAX_TIMESTAMP:
        raise InvalidEvent("created_at must be a non-negative integer")
    if type(kind) is not int or not 0 <= kind <= MAX_KIND:
        raise InvalidEvent(f"kind must be an integer between 0 and {MAX_KIND}")
    if not isinstance(content, str):
        raise InvalidEvent("content must be a string")
    if not isinstance(tags, list) or not all(
        isinstance(tag, list) and tag and all(isinstance(v, str) for v in tag) for tag in tags
    ):
        raise InvalidEvent("tags must be a list of non-empty lists of strings")


def parse_event(obj: object) -> Event:
    """Check the shape of a decoded event object and build an :class:`Event`.

    Checks types and field formats and that ``id`` is the hash of the content.
    Does **not** check the signature (see :func:`verify_signature`), so callers
    can batch that expensive step.
    """
    if not isinstance(obj, dict):
        raise InvalidEvent("event must be a JSON object")
    try:
        eid, pubkey, created_at = obj["id"], obj["pubkey"], obj["created_at"]
        kind, tags, content, sig = obj["kind"], obj["tags"], obj["content"], obj["sig"]
    except KeyError as missing:
        raise InvalidEvent(f"event is missing field {missing}") from None
    if len(obj) != 7:
        raise InvalidEvent("event has unknown fields")
    if not is_hex64(eid):
        raise InvalidEvent("id must be 64 lowercase hex characters")
    if not (isinstance(sig, str) and len(sig) == 128 and _HEX.issuperset(sig)):
        raise InvalidEvent("sig must be 128 lowercase hex characters")
    check_fields(pubkey, created_at, kind, tags, content)
    try:
        canonical = serialize_for_id(pubkey, created_at, kind, tags, content)
    except TypeError:  # lone surrogates cannot be encoded as UTF-8
        raise InvalidEvent("event contains text that is not valid UTF-8") from None
    if hashlib.sha256(canonical).hexdigest() != eid:
        raise InvalidEvent("event id does not match the hash of its content")
    raw = orjson.dumps(obj).decode()
    return Event(EventId(eid), PubKey(pubkey), created_at, kind, tags, content, sig, raw)


def verify_signature(event: Event) -> bool:
    """BIP-340 Schnorr check of ``sig`` over ``id`` by ``pubkey``."""
    try:
        key = PublicKeyXOnly(bytes.fromhex(event.pubkey))
        return bool(key.verify(bytes.fromhex(event.sig), bytes.fromhex(event.id)))
    except ValueError:  # pubkey is not a point on the curve
        return False


class Signer:
    """A secret key that signs events (BIP-340); the engine's and clients' way to author.

    Kept as a coincurve key: signing is ~40 us, and the secret never leaves
    memory. ``repr`` shows only the public key.
    """

    __slots__ = ("_key", "pubkey")

    def __init__(self, secret: bytes | str) -> None:
        self._key = PrivateKey(bytes.fromhex(secret) if isinstance(secret, str) else secret)
        self.pubkey = PubKey(self._key.public_key_xonly.format().hex())

    def __repr__(self) -> str:
        return f"Signer(pubkey={self.pubkey})"

    def secret_hex(self) -> str:
        """For NIP-04/44 encryption, which needs the secret; never log it."""
        return self._key.secret.hex()

    def sign(
        self,
        kind: int,
        content: str = "",
        tags: list[list[str]] | None = None,
        *,
        created_at: int,
    ) -> Event:
        tags = [list(tag) for tag in tags or []]
        eid = compute_id(self.pubkey, created_at, kind, tags, content)
        sig = self._key.sign_schnorr(bytes.fromhex(eid)).hex()
        obj = {
            "id": eid,
            "pubkey": self.pubkey,
            "created_at": created_at,
            "kind": kind,
            "tags": tags,
            "content": content,
            "sig": sig,
        }
        return Event(eid, self.pubkey, created_at, kind, tags, content, sig, orjson.dumps(obj).decode())


def event_from_json(text: str | bytes) -> Event:
    """Parse, check and verify an event given as JSON text."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON: {exc}") from None
    event = parse_event(obj)
    if not verify_signature(event):
        raise InvalidEvent("signature does not verify")
    return event


# --- filters -----------------------------------------------------------------

_FILTER_LIST_KEYS = ("ids", "authors", "kinds")


@dataclass(frozen=True, slots=True)
class Filter:
    """One NIP-01 filter. ``None`` means the condition is absent."""

    ids: frozenset[str] | None = None
    authors: frozenset[str] | None = None
    kinds: frozenset[int] | None = None
    tags: dict[str, frozenset[str]] = field(default_factory=dict)
    since: int | None = None
    until: int | None = None
    limit: int | None = None

    def matches(self, event: Event) -> bool:
        if self.ids is not None and event.id not in self.ids:
            return False
        if self.authors is not None and event.pubkey not in self.authors:
            return False
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.since is not None and event.created_at < self.since:
            return False
        if self.until is not None and event.created_at > self.until:
            return False
        for letter, wanted in self.tags.items():
            if not any(
                len(tag) >= 2 and tag[0] == letter and tag[1] in wanted for tag in event.tags
            ):
                return False
        return True

    @property
    def can_match(self) -> bool:
        """False when the filter provably matches nothing (an empty list, since > until).

        ``limit`` plays no part: it only bounds the initial query, and NIP-01 says it
        MUST be ignored afterwards, so ``limit: 0`` still matches live events.
        """
        if any(s is not None and not s for s in (self.ids, self.authors, self.kinds)):
            return False
        if any(not values for values in self.tags.values()):
            return False
        return not (self.since is not None and self.until is not None and self.since > self.until)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.ids is not None:
            out["ids"] = sorted(self.ids)
        if self.authors is not None:
            out["authors"] = sorted(self.authors)
        if self.kinds is not None:
            out["kinds"] = sorted(self.kinds)
        for letter, values in self.tags.items():
            out["#" + letter] = sorted(values)
        for key in ("since", "until", "limit"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def _nonneg_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise InvalidFilter(f"{key} must be a non-negative integer")
    return value


def parse_filter(obj: object, *, max_values: int = 10_000) -> Filter:
    """Build a :class:`Filter` from its JSON object, rejecting unknown or mistyped fields.

    ``ids``, ``authors``, ``#e`` and ``#p`` must hold exact 64-character lowercase hex
    (NIP-01, "From client to relay").
    """
    if not isinstance(obj, dict):
        raise InvalidFilter("filter must be a JSON object")
    tags: dict[str, frozenset[str]] = {}
    lists: dict[str, frozenset[Any]] = {}
    for key, value in obj.items():
        if key in ("since", "until", "limit"):
            continue
        is_tag = len(key) == 2 and key[0] == "#" and key[1].isascii() and key[1].isalpha()
        if key not in _FILTER_LIST_KEYS and not is_tag:
            raise InvalidFilter(f"unknown filter field {key!r}")
        if not isinstance(value, list):
            raise InvalidFilter(f"{key} must be a list")
        if len(value) > max_values:
            raise InvalidFilter(f"{key} has more than {max_values} values")
        if key in ("ids", "authors"):
            if not all(is_hex64(v) for v in value):
                raise InvalidFilter(f"{key} must hold 64-character lowercase hex strings")
            lists[key] = frozenset(value)
        elif key == "kinds":
            if not all(type(v) is int and 0 <= v <= MAX_KIND for v in value):
                raise InvalidFilter(f"kinds must hold integers between 0 and {MAX_KIND}")
            lists[key] = frozenset(value)
        else:
            if not all(isinstance(v, str) for v in value):
                raise InvalidFilter(f"{key} must hold strings")
            if key in ("#e", "#p") and not all(is_hex64(v) for v in value):
                raise InvalidFilter(f"{key} must hold 64-character lowercase hex strings")
            tags[key[1]] = frozenset(value)
    return Filter(
        ids=lists.get("ids"),
        authors=lists.get("authors"),
        kinds=lists.get("kinds"),
        tags=tags,
        since=_nonneg_int(obj, "since"),
        until=_nonneg_int(obj, "until"),
        limit=_nonneg_int(obj, "limit"),
    )


def newest_first_key(event: Event) -> tuple[int, str]:
    """Sort key for query results: newest first, ties by lowest id (NIP-01 ``limit``).

    Use with ``sorted(..., key=newest_first_key)``; it negates ``created_at``.
    """
    return (-event.created_at, event.id)


def supersedes(new: Event, old: Event) -> bool:
    """True when ``new`` replaces ``old`` at the same address.

    Later ``created_at`` wins; on a tie the lowest id is kept (NIP-01 "Kinds").
    """
    if new.created_at != old.created_at:
        return new.created_at > old.created_at
    return new.id < old.id
