"""Pre-signed benchmark events, generated once with coincurve and cached in ``bench/out/``.

A data set is ``count`` kind-1 notes by ``authors`` keys. By default event ``i``
is written by author ``i % authors``, so any prefix of the file covers every
author evenly. With ``group=G`` the authors come in groups of G: the file is a
run of blocks, each holding all events of G authors interleaved, so a prefix of
whole blocks is a complete store of fewer authors (used where a relay can only
be filled part of the way). Keys are derived from the data set's name. Each event has a few tags (``t``, ``p``,
``client``) and is well under nostr-relay's 4 KiB size limit.

The cache is one JSON event per line plus a ``.meta.json``. It is rebuilt when
its events are older than :data:`MAX_AGE` seconds, because relays reject events
that are too old (nostr-relay: one year).
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from coincurve import PrivateKey, PublicKeyXOnly

OUT = Path(__file__).resolve().parent / "out"
EVENTS_DIR = OUT / "events"
MAX_AGE = 30 * 86400
_CHUNK = 20_000


def secret_key(name: str, author: int) -> bytes:
    return hashlib.sha256(f"timmy-bench/{name}/{author}".encode()).digest()


def pubkeys(name: str, authors: int) -> list[str]:
    return [PublicKeyXOnly.from_secret(secret_key(name, a)).format().hex() for a in range(authors)]


def sign_event(
    key: PrivateKey, pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str
) -> bytes:
    """A complete signed event as compact JSON."""
    serialized = orjson.dumps([0, pubkey, created_at, kind, tags, content])
    event_id = hashlib.sha256(serialized).digest()
    sig = key.sign_schnorr(event_id, os.urandom(32))
    return orjson.dumps(
        {
            "id": event_id.hex(),
            "pubkey": pubkey,
            "created_at": created_at,
            "kind": kind,
            "tags": tags,
            "content": content,
            "sig": sig.hex(),
        }
    )


def author_of(i: int, count: int, authors: int, group: int) -> int:
    if not group:
        return i % authors
    block = group * (count // authors)
    return (i // block) * group + i % group


def _note(
    secrets: list[PrivateKey], keys: list[str], count: int, base: int, group: int, i: int
) -> bytes:
    authors = len(keys)
    author = author_of(i, count, authors, group)
    # An author writes at most once per `stride` events: one second apart, newest last.
    stride = group or authors
    created_at = base - (count - 1 - i) // stride
    tags = [["t", "bench"], ["p", keys[(author + 1) % authors]], ["client", "timmy-bench"]]
    content = (
        f"benchmark note {i} from author {author}: the quick brown fox jumps over the lazy dog"
    )
    return sign_event(secrets[author], keys[author], created_at, 1, tags, content)


@functools.cache
def _keyring(name: str, authors: int) -> tuple[list[PrivateKey], list[str]]:
    secrets = [PrivateKey(secret_key(name, a)) for a in range(authors)]
    return secrets, [PublicKeyXOnly.from_secret(s.secret).format().hex() for s in secrets]


def _generate_chunk(args: tuple[str, int, int, int, int, int, int]) -> bytes:
    name, authors, count, base, group, start, stop = args
    secrets, keys = _keyring(name, authors)
    return b"".join(_note(secrets, keys, count, base, group, i) + b"\n" for i in range(start, stop))


def dataset_path(name: str, count: int, authors: int, group: int = 0) -> Path:
    suffix = f"-g{group}" if group else ""
    return EVENTS_DIR / f"{name}-{count}-{authors}{suffix}.jsonl"


def ensure_dataset(name: str, count: int, authors: int, group: int = 0) -> Path:
    """Path of the cached data set, generating it (on every core) when missing or stale."""
    if group and (count % authors or authors % group):
        raise ValueError("with group, count must be a multiple of authors and authors of group")
    path = dataset_path(name, count, authors, group)
    meta_path = path.with_suffix(".meta.json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if time.time() - meta["created_at_base"] < MAX_AGE:
            return path
    EVENTS_DIR.mkdir(parents=True, exist_ok=True)
    base = int(time.time()) - 60
    chunks = [
        (name, authors, count, base, group, s, min(s + _CHUNK, count))
        for s in range(0, count, _CHUNK)
    ]
    tmp = path.with_suffix(".tmp")
    started = time.perf_counter()
    with (
        multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1) as pool,
        tmp.open("wb") as f,
    ):
        for block in pool.imap(_generate_chunk, chunks):
            f.write(block)
    tmp.replace(path)
    meta = {
        "name": name,
        "count": count,
        "authors": authors,
        "group": group,
        "created_at_base": base,
        "generate_seconds": round(time.perf_counter() - started, 2),
    }
    meta_path.write_text(json.dumps(meta))
    return path


def read_events(path: Path, limit: int | None = None) -> list[bytes]:
    """Raw JSON of the first ``limit`` events of a data set."""
    return list(iter_events(path, limit))


def iter_events(path: Path, limit: int | None = None) -> Iterator[bytes]:
    with path.open("rb") as f:
        for n, line in enumerate(f):
            if limit is not None and n >= limit:
                return
            yield line.rstrip(b"\n")


def single_note(tag: str, n: int) -> bytes:
    """A fresh signed note tagged ``["t", tag]`` (used where each run needs new ids)."""
    secret = secret_key("single", n)
    pubkey = PublicKeyXOnly.from_secret(secret).format().hex()
    return sign_event(
        PrivateKey(secret), pubkey, int(time.time()), 1, [["t", tag]], f"{tag} {n} {time.time_ns()}"
    )
