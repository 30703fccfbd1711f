"""Helpers shared by the test suites: real, signed events."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import coincurve

from nips.nip01 import Event, compute_id, parse_event


def make_event(
    key: coincurve.PrivateKey | None = None,
    *,
    kind: int = 1,
    content: str = "",
    tags: Iterable[Sequence[str]] = (),
    created_at: int | None = None,
) -> Event:
    """Build, sign (BIP-340) and parse an event; a fresh key is made when ``key`` is None."""
    key = key or coincurve.PrivateKey()
    pubkey = key.public_key_xonly.format().hex()
    created = int(time.time()) if created_at is None else created_at
    tag_list = [list(tag) for tag in tags]
    event_id = compute_id(pubkey, created, kind, tag_list, content)
    sig = key.sign_schnorr(bytes.fromhex(event_id)).hex()
    return parse_event(
        {
            "id": event_id,
            "pubkey": pubkey,
            "created_at": created,
            "kind": kind,
            "tags": tag_list,
            "content": content,
            "sig": sig,
        }
    )
