"""Helpers shared by the test suites: real, signed events."""

from __future__ import annotations

import shutil
import socket
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

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


def timmy() -> list[str]:
    """The CLI: the installed script, else the module in this interpreter."""
    script = Path(sys.executable).with_name("timmy")
    if script.exists():
        return [str(script)]
    found = shutil.which("timmy")
    return [found] if found else [sys.executable, "-m", "node.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
