"""Tests for dvm/handlers/pow.py: kind 5970, NIP-13 proof of work for a customer's event."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import pytest

from dvm.handlers import HandlerError, JobContext
from dvm.handlers.pow import HANDLER, leading_zero_bits
from nips.nip90 import JobRequest, parse_request
from tests.helpers import make_event

PUBKEY = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"


def unsigned(**changes: Any) -> dict[str, Any]:
    event = {
        "kind": 1,
        "content": "do work!",
        "created_at": 1735252123,
        "tags": [["t", "nostr"], ["p", PUBKEY]],
        "pubkey": PUBKEY,
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


def request(data: str, *params: tuple[str, str]) -> JobRequest:
    tags = [["i", data, "text"], *(["param", k, v] for k, v in params)]
    return parse_request(make_event(kind=5970, tags=tags))


async def mine(event: dict[str, Any] | str, pow_bits: int, **settings: int) -> dict[str, Any]:
    data = event if isinstance(event, str) else json.dumps(event, indent=2)
    req = request(data, ("pow", str(pow_bits)))
    HANDLER.validate(req, settings)
    out = await HANDLER.run(JobContext(request=req, texts=[data], settings=settings))
    assert out.mime == "application/json"
    mined: dict[str, Any] = json.loads(out.content)
    return mined


def zero_bits(hex_id: str) -> int:
    """Counted independently of the handler: leading '0' characters of the binary form."""
    binary = "".join(f"{int(c, 16):04b}" for c in hex_id)
    return len(binary) - len(binary.lstrip("0"))


def nip01_id(event: dict[str, Any]) -> str:
    """NIP-01 id computed with the standard library's json, not the node's serializer."""
    fields = [
        0,
        event["pubkey"],
        event["created_at"],
        event["kind"],
        event["tags"],
        event["content"],
    ]
    serialized = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(serialized.encode()).hexdigest()


async def test_mined_id_has_the_leading_zeros() -> None:
    mined = await mine(unsigned(), 14)
    assert zero_bits(mined["id"]) >= 14
    assert mined["id"] == nip01_id(mined)
    assert set(mined) == {"id", "pubkey", "created_at", "kind", "tags", "content"}  # no sig


async def test_only_the_nonce_tag_is_added() -> None:
    original = unsigned(content='unicode \u00e9\U0001f41d "quoted" \\ and a\nnewline')
    mined = await mine(original, 10)
    for field in ("pubkey", "created_at", "kind", "content"):
        assert mined[field] == original[field]
    *kept, nonce = mined["tags"]
    assert kept == original["tags"]
    assert nonce[0] == "nonce" and nonce[2] == "10" and nonce[1].isdigit()
    assert zero_bits(mined["id"]) >= 10 and mined["id"] == nip01_id(mined)


async def test_an_existing_nonce_tag_is_replaced_where_it_stood() -> None:
    tags = [["t", "a"], ["nonce", "999999", "4"], ["t", "b"], ["nonce", "1", "2"]]
    mined = await mine(unsigned(tags=tags), 8)
    assert [t[0] for t in mined["tags"]] == ["t", "nonce", "t"]
    assert mined["tags"][1][2] == "8"
    assert zero_bits(mined["id"]) >= 8 and mined["id"] == nip01_id(mined)


async def test_id_and_sig_in_the_input_are_dropped() -> None:
    mined = await mine(unsigned(id="00" * 32, sig="11" * 64), 6)
    assert "sig" not in mined
    assert mined["id"] == nip01_id(mined)


async def test_content_that_looks_like_the_counter_placeholder() -> None:
    mined = await mine(unsigned(content="nonce-counter-0 nonce-counter-1", tags=[]), 8)
    assert mined["content"] == "nonce-counter-0 nonce-counter-1"
    assert zero_bits(mined["id"]) >= 8 and mined["id"] == nip01_id(mined)


async def test_the_spec_example_with_a_pubkey_added() -> None:
    data = '{\n  "kind": 1,\n  "content": "do work!",\n  "created_at": 1735252123,\n  "tags": []\n}'
    with pytest.raises(HandlerError, match=r"^the event needs a pubkey$"):
        HANDLER.validate(request(data, ("pow", "12")), {})
    with_key = data.replace('"tags": []', f'"tags": [],\n  "pubkey": "{PUBKEY}"')
    mined = await mine(with_key, 12)
    assert zero_bits(mined["id"]) >= 12


def test_leading_zero_bits() -> None:
    assert leading_zero_bits(bytes(32)) == 256
    assert leading_zero_bits(b"\x00\x0f" + b"\xff" * 30) == 12
    assert leading_zero_bits(b"\x80" + bytes(31)) == 0


# --- refusals ---------------------------------------------------------------------


def test_difficulty_above_the_cap_is_refused() -> None:
    data = json.dumps(unsigned())
    with pytest.raises(HandlerError, match="21 is above this provider's limit of 20"):
        HANDLER.validate(request(data, ("pow", "21")), {})
    with pytest.raises(HandlerError, match="limit of 8"):
        HANDLER.validate(request(data, ("pow", "9")), {"max_difficulty": 8})
    HANDLER.validate(request(data, ("pow", "24")), {"max_difficulty": 24})


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ((), "param pow is required"),
        ((("pow", "lots"),), "expected a whole number"),
        ((("pow", "-3"),), "expected a whole number"),
        ((("pow", "\u00b2"),), "expected a whole number"),
        ((("pow", "0"),), "at least 1"),
        ((("pow", "4"), ("pow", "5")), "more than once"),
        ((("pow", "4"), ("difficulty", "5")), "unknown param 'difficulty'"),
    ],
)
def test_bad_pow_params(params: tuple[tuple[str, str], ...], reason: str) -> None:
    with pytest.raises(HandlerError, match=reason):
        HANDLER.validate(request(json.dumps(unsigned()), *params), {})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps(unsigned(pubkey=None)), "^the event needs a pubkey$"),
        (json.dumps(unsigned(content=None)), "^the event needs a content$"),
        (json.dumps(unsigned(pubkey="npub1xyz")), "pubkey must be 64 lowercase hex"),
        (json.dumps(unsigned(pubkey=PUBKEY.upper())), "pubkey must be 64 lowercase hex"),
        (json.dumps(unsigned(kind="1")), "kind must be an integer"),
        (json.dumps(unsigned(kind=70000)), "kind must be an integer"),
        (json.dumps(unsigned(created_at=-1)), "created_at must be"),
        (json.dumps(unsigned(created_at=1.5)), "created_at must be"),
        (json.dumps(unsigned(content=5)), "content must be a string"),
        (json.dumps(unsigned(tags=[["t", 1]])), "tags must be a list"),
        (json.dumps(unsigned(tags=[[]])), "tags must be a list"),
        (json.dumps(unsigned(tags={"t": "x"})), "tags must be a list"),
        (json.dumps(unsigned(extra=True)), "unknown fields: extra"),
        (
            '{"kind":1,"content":"\\ud800","created_at":1,"tags":[],"pubkey":"' + PUBKEY + '"}',
            "not valid JSON",
        ),
    ],
)
def test_bad_events_are_refused_with_a_reason(data: str, reason: str) -> None:
    with pytest.raises(HandlerError, match=reason):
        HANDLER.validate(request(data, ("pow", "8")), {})


def test_inputs_must_be_one_text() -> None:
    data = json.dumps(unsigned())
    two = [["i", data, "text"], ["i", data, "text"], ["param", "pow", "8"]]
    url = [["i", "https://example.com/e.json", "url"], ["param", "pow", "8"]]
    none = [["param", "pow", "8"]]
    for tags in (two, url, none):
        with pytest.raises(HandlerError, match="exactly one text input"):
            HANDLER.validate(parse_request(make_event(kind=5970, tags=tags)), {})


# --- stopping ---------------------------------------------------------------------


async def test_stop_is_honoured_quickly() -> None:
    data = json.dumps(unsigned())
    req = request(data, ("pow", "60"))  # ~2**60 attempts: it would never finish
    ctx = JobContext(request=req, texts=[data], settings={"max_difficulty": 64})
    asyncio.get_running_loop().call_later(0.05, ctx.stop.set)
    started = time.perf_counter()
    with pytest.raises(HandlerError, match="stopped"):
        await HANDLER.run(ctx)
    assert time.perf_counter() - started < 1


async def test_cancelling_the_job_stops_the_thread() -> None:
    data = json.dumps(unsigned())
    req = request(data, ("pow", "60"))
    ctx = JobContext(request=req, texts=[data], settings={"max_difficulty": 64})
    task = asyncio.create_task(HANDLER.run(ctx))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ctx.stop.is_set()


# --- settings ---------------------------------------------------------------------


def test_settings() -> None:
    HANDLER.check_settings({})
    HANDLER.check_settings({"max_difficulty": 32})
    assert HANDLER.unavailable({}) is None
    for bad in (0, 257, "20", True, 2.5):
        with pytest.raises(ValueError, match="max_difficulty"):
            HANDLER.check_settings({"max_difficulty": bad})
    with pytest.raises(ValueError, match="'difficulty'"):
        HANDLER.check_settings({"difficulty": 20})
