"""NIP-89 handler announcements (kind 31990) for NIP-90 service providers.

Spec: ``shared/specs/nips/89.md`` ("Handler information") and
``shared/specs/dvm-kinds/nip89.md`` (the DVM use: one ``k`` tag per job
kind, profile data in ``content`` with ``encryptionSupported``).

What a Timmy agent announces, beyond the spec (all optional for readers):

* ``content`` also holds ``"timmy": {"node": <node pubkey>, "price_msat": n,
  "price_per_kb_msat": n, "auction": true, "bolt12": "lno1..."}`` so
  customers see prices, the agent's BOLT12 offer and which agents share a node;
* a ``["relays", url, ...]`` tag (the same shape as NIP-90's) naming where the
  agent reads job requests;
* ``["t", "timmy"]`` so Timmy nodes can find each other's agents.

Pure module: it builds and reads tags and content; signing and publishing are
the caller's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from nips.nip01 import Event
from nips.nip90 import is_request_kind

HANDLER_KIND = 31990
RECOMMENDATION_KIND = 31989
TIMMY_TAG = "timmy"
_KIND = re.compile(r"[1-9][0-9]{0,4}")


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    """A provider as it announces itself; read back by :func:`parse_handler`."""

    pubkey: str
    d: str
    kinds: tuple[int, ...]
    name: str = ""
    about: str = ""
    picture: str = ""
    encryption_supported: bool = False
    relays: tuple[str, ...] = ()
    node: str = ""  # the Timmy node hosting the agent ("" for other providers)
    price_msat: int | None = None
    price_per_kb_msat: int | None = None
    bolt12: str = ""  # the agent's persistent BOLT12 offer, when its wallet has one
    created_at: int = 0

    def address(self) -> str:
        return f"{HANDLER_KIND}:{self.pubkey}:{self.d}"


def handler_content(info: HandlerInfo) -> str:
    body: dict[str, object] = {
        "name": info.name,
        "about": info.about,
        "encryptionSupported": info.encryption_supported,
    }
    if info.picture:
        body["picture"] = body["image"] = info.picture  # both spellings are in use
    if info.node:
        timmy: dict[str, object] = {
            "node": info.node,
            "price_msat": info.price_msat or 0,
            "price_per_kb_msat": info.price_per_kb_msat or 0,
            "auction": True,
        }
        if info.bolt12:
            timmy["bolt12"] = info.bolt12
        body[TIMMY_TAG] = timmy
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()


def handler_tags(info: HandlerInfo) -> list[list[str]]:
    tags = [["d", info.d]] + [["k", str(kind)] for kind in info.kinds]
    if info.relays:
        tags.append(["relays", *info.relays])
    if info.node:
        tags.append(["t", TIMMY_TAG])
    return tags


def parse_handler(event: Event) -> HandlerInfo | None:
    """A 31990 event announcing NIP-90 job kinds, or None if it announces none.

    Lenient about ``content`` (any JSON object, or none at all: NIP-89 says
    to fall back to the kind 0 profile then), strict about kinds.
    """
    if event.kind != HANDLER_KIND:
        return None
    # ASCII digits only: str.isdigit() also takes superscripts, which int() refuses.
    numbers = [int(k) for k in event.tag_values("k") if _KIND.fullmatch(k)]
    kinds = tuple(sorted({k for k in numbers if is_request_kind(k)}))
    if not kinds:
        return None
    try:
        body = orjson.loads(event.content) if event.content.strip() else {}
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    extension = body.get(TIMMY_TAG)
    timmy: dict[str, object] = extension if isinstance(extension, dict) else {}
    relays: list[str] = []
    for tag in event.tags:
        if tag and tag[0] == "relays":
            relays.extend(tag[1:])
    return HandlerInfo(
        pubkey=event.pubkey,
        d=event.d_tag,
        kinds=kinds,
        name=_text(body.get("name")),
        about=_text(body.get("about")),
        picture=_text(body.get("picture") or body.get("image")),
        encryption_supported=body.get("encryptionSupported") is True,
        relays=tuple(relays),
        node=_text(timmy.get("node")),
        price_msat=_int(timmy.get("price_msat")),
        price_per_kb_msat=_int(timmy.get("price_per_kb_msat")),
        bolt12=_text(timmy.get("bolt12")),
        created_at=event.created_at,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
