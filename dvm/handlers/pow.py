"""Kind 5970, event PoW delegation: mine a NIP-13 nonce for the customer's event.

Spec: ``shared/specs/dvm-kinds/5970.md`` (sections "Input", "Params",
"Output"); NIP-13 (proof of work: the id has at least N leading zero bits, and
the event carries ``["nonce", "<counter>", "<target difficulty>"]``); the id is
computed as in NIP-01 ("Events and signatures").

Input: one ``text`` input, the unsigned event as JSON, with ``pubkey``,
``created_at``, ``kind``, ``tags`` and ``content`` (``id`` and ``sig`` may be
present and are dropped: both change with the nonce). The pubkey is required
because it is part of what the id hashes.

Param ``pow`` (required): the target number of leading zero bits.

Output: the event as JSON (``application/json``) with the nonce tag and the
mined ``id``, and no ``sig``: the customer signs it. An existing nonce tag is
replaced where it stood; otherwise the nonce tag is appended.

Mining runs in a worker thread. The serialised event is split around the
counter once, the hash of the part before it is computed once, and each
attempt only hashes the counter and the rest. Each extra bit of difficulty
doubles the expected work: about 2**N attempts, some 1-2 million a second.

Settings (an agent's ``settings.pow`` in node.toml):

- ``max_difficulty`` (default 20): the highest ``pow`` accepted.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import hashlib
import multiprocessing
import os
import threading
from dataclasses import dataclass, replace

import orjson

from dvm.handlers import HandlerError, JobContext, Output, Settings
from nips.nip01 import InvalidEvent, check_fields, compute_id, serialize_for_id
from nips.nip90 import JobRequest

DEFAULT_MAX_DIFFICULTY = 20
# Attempts between looks at the stop flag: ~10 ms of work.
STOP_CHECK_EVERY = 10_000
CHUNK = 100_000  # attempts per call to a worker process: ~0.1 s
_REQUIRED = ("pubkey", "created_at", "kind", "tags", "content")
_DROPPED = ("id", "sig")


@dataclass(frozen=True, slots=True)
class UnsignedEvent:
    pubkey: str
    created_at: int
    kind: int
    tags: list[list[str]]
    content: str

    @property
    def id(self) -> str:
        return compute_id(self.pubkey, self.created_at, self.kind, self.tags, self.content)

    def to_json(self) -> str:
        """NIP-01 field order, with the id and without a signature."""
        return orjson.dumps(
            {
                "id": self.id,
                "pubkey": self.pubkey,
                "created_at": self.created_at,
                "kind": self.kind,
                "tags": self.tags,
                "content": self.content,
            }
        ).decode()


def parse_unsigned(text: str) -> UnsignedEvent:
    """The customer's event, shape-checked; raises :class:`HandlerError` saying what is wrong."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:  # also for lone surrogates, which have no UTF-8 form
        raise HandlerError("the input is not valid JSON: send the event as a JSON object") from None
    if not isinstance(obj, dict):
        raise HandlerError("the input must be a JSON object (an unsigned event)")
    unknown = sorted(set(obj) - {*_REQUIRED, *_DROPPED})
    if unknown:
        raise HandlerError(f"the event has unknown fields: {', '.join(unknown)[:80]}")
    for name in _REQUIRED:
        if name not in obj:
            raise HandlerError(f"the event needs a {name}")
    pubkey, created_at, kind, tags, content = (obj[name] for name in _REQUIRED)
    try:
        check_fields(pubkey, created_at, kind, tags, content)
    except InvalidEvent as exc:
        raise HandlerError(f"the event's {exc}") from None
    return UnsignedEvent(pubkey, created_at, kind, tags, content)


def leading_zero_bits(digest: bytes) -> int:
    """NIP-13 difficulty of a 32-byte id."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def with_nonce(event: UnsignedEvent, counter: str, target: int) -> UnsignedEvent:
    """``event`` with one nonce tag, where the first one stood or else at the end."""
    nonce = ["nonce", counter, str(target)]
    tags: list[list[str]] = []
    placed = False
    for tag in event.tags:
        if tag[0] != "nonce":
            tags.append(tag)
        elif not placed:
            tags.append(nonce)
            placed = True
    if not placed:
        tags.append(nonce)
    return replace(event, tags=tags)


def search(prefix: bytes, suffix: bytes, target: int, start: int, count: int) -> int | None:
    """The first counter in ``[start, start + count)`` whose id has ``target`` zero bits.

    A pure function of bytes and ints, so it can run in another process.
    """
    head = hashlib.sha256(prefix)
    # The id has `target` leading zero bits exactly when, read as a big-endian
    # number, it is below 2**(256 - target); equal-length bytes compare that way.
    bound = (1 << (256 - target)).to_bytes(32, "big")
    for counter in range(start, start + count):
        h = head.copy()
        h.update(b"%d%s" % (counter, suffix))
        if h.digest() < bound:
            return counter
    return None


def mine(event: UnsignedEvent, target: int, stop: threading.Event) -> UnsignedEvent:
    """``event`` with a nonce that gives its id ``target`` leading zero bits.

    Blocking, in this process; raises :class:`HandlerError` soon after ``stop`` is set.
    """
    if target == 0:
        return with_nonce(event, "0", 0)
    prefix, suffix = _split_at_counter(event, target)
    start = 0
    while not stop.is_set():
        found = search(prefix, suffix, target, start, STOP_CHECK_EVERY)
        if found is not None:
            return with_nonce(event, str(found), target)
        start += STOP_CHECK_EVERY
    raise HandlerError(f"stopped after {start} attempts: the job was cancelled or timed out")


async def mine_elsewhere(event: UnsignedEvent, target: int, stop: threading.Event) -> UnsignedEvent:
    """:func:`mine` in worker processes, a chunk at a time.

    Hashing in Python holds the GIL: in a thread it would starve the relay and
    the engine sharing this process. Between chunks ``stop`` is checked, so a
    cancelled job costs at most one more chunk.
    """
    prefix, suffix = _split_at_counter(event, target)
    loop = asyncio.get_running_loop()
    start = 0
    while not stop.is_set():
        found = await loop.run_in_executor(_workers(), search, prefix, suffix, target, start, CHUNK)
        if found is not None:
            return with_nonce(event, str(found), target)
        start += CHUNK
    raise HandlerError(f"stopped after {start} attempts: the job was cancelled or timed out")


_pool: concurrent.futures.ProcessPoolExecutor | None = None


def _workers() -> concurrent.futures.ProcessPoolExecutor:
    """One pool of mining processes for the node, started on first use."""
    global _pool
    if _pool is None:
        # forkserver: forking a process that runs threads and an event loop is unsafe.
        context = multiprocessing.get_context("forkserver")
        _pool = concurrent.futures.ProcessPoolExecutor(os.cpu_count() or 2, mp_context=context)
        atexit.register(_pool.shutdown, wait=False, cancel_futures=True)
    return _pool


def _split_at_counter(event: UnsignedEvent, target: int) -> tuple[bytes, bytes]:
    """The serialised event before and after the nonce counter.

    A placeholder counter marks the spot; one that also occurs elsewhere in
    the event (a tag or the content could hold anything) is not used.
    """
    for attempt in range(100):
        marker = f"nonce-counter-{attempt}"
        pending = with_nonce(event, marker, target)
        serialised = serialize_for_id(
            pending.pubkey, pending.created_at, pending.kind, pending.tags, pending.content
        )
        parts = serialised.split(marker.encode())
        if len(parts) == 2:
            return parts[0], parts[1]
    raise HandlerError("the event cannot be mined: it contains too many nonce placeholders")


# --- the handler ----------------------------------------------------------------


class EventPow:
    kind = 5970
    name = "pow"
    title = "Proof of work (NIP-13) for an unsigned event"

    def check_settings(self, settings: Settings) -> None:
        for key in settings:
            if key != "max_difficulty":
                raise ValueError(f"unknown setting {key!r} (known: max_difficulty)")
        _max_difficulty(settings)

    def unavailable(self, settings: Settings) -> str | None:
        return None

    def validate(self, request: JobRequest, settings: Settings) -> None:
        _target(request, _max_difficulty(settings))
        if len(request.inputs) != 1 or request.inputs[0].type != "text":
            raise HandlerError("send exactly one text input: the unsigned event as JSON")
        parse_unsigned(request.inputs[0].data)

    async def run(self, ctx: JobContext) -> Output:
        target = _target(ctx.request, _max_difficulty(ctx.settings))
        if len(ctx.texts) != 1:
            raise HandlerError("send exactly one text input: the unsigned event as JSON")
        event = parse_unsigned(ctx.texts[0])
        if target == 0:
            return Output(with_nonce(event, "0", 0).to_json(), "application/json")
        try:
            mined = await mine_elsewhere(event, target, ctx.stop)
        except asyncio.CancelledError:
            ctx.stop.set()
            raise
        return Output(mined.to_json(), "application/json")


def _max_difficulty(settings: Settings) -> int:
    value = settings.get("max_difficulty", DEFAULT_MAX_DIFFICULTY)
    if type(value) is not int or not 1 <= value <= 256:
        raise ValueError("max_difficulty must be an integer between 1 and 256")
    return value


def _target(request: JobRequest, cap: int) -> int:
    for key, _ in request.params:
        if key != "pow":
            raise HandlerError(f"unknown param {key!r} (known: pow)")
    values = request.param_values("pow")
    if not values:
        raise HandlerError("param pow is required: the number of leading zero bits wanted")
    if len(values) > 1:
        raise HandlerError("param pow: given more than once")
    text = values[0].strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 3:
        raise HandlerError(f"param pow: expected a whole number of bits, got {values[0][:20]!r}")
    target = int(text)
    if target < 1:
        raise HandlerError("param pow: must be at least 1")
    if target > cap:
        raise HandlerError(f"param pow: {target} is above this provider's limit of {cap}")
    return target


HANDLER = EventPow()
