"""Tests for dvm/handlers/search.py: kind 5302, content search over the node's semantic memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import coincurve
import orjson
import pytest

from dvm.embedding import Embedder
from dvm.handlers import HandlerError, JobContext, discover
from dvm.handlers.search import HANDLER, parse_query, parse_users
from dvm.memory import MemoryService
from nips.nip01 import Event
from nips.nip90 import JobRequest, parse_request
from node.links import RelayLink, RelayPool
from relay.server import RelayServer
from tests.helpers import make_event

PK = "6e468422dfb74a5738702a8823b9b28168abab8655faacb6853cd0ee15deee93"
NPUB = "npub1dergggklka99wwrs92yz8wdjs952h2ux2ha2ed598ngwu9w7a6fsh9xzpc"
PK2 = "ab" * 32
NOW = int(time.time())


def request(*params: tuple[str, str], text: str | None = "shipyard") -> JobRequest:
    tags = [["i", text, "text"]] if text is not None else []
    return parse_request(make_event(kind=5302, tags=tags + [["param", k, v] for k, v in params]))


def test_the_handler_is_found() -> None:
    assert discover()[5302] is HANDLER and HANDLER.name == "search"


def test_defaults() -> None:
    assert parse_query(request()) == (None, None, None, 20)


def test_the_spec_example() -> None:
    # shared/specs/dvm-kinds/5302.md, "Example"
    req = request(("max_results", "100"), ("users", f'[["p", "{PK}"]]'))
    assert parse_query(req) == ([PK], None, None, 100)


@pytest.mark.parametrize(
    "value",
    [
        f'[["p", "{PK}"], ["p", "{PK2}", "wss://relay.example"]]',
        f'["{PK}", "{PK2}"]',
        f"{PK}, {PK2}",
        f"{NPUB} {PK2}",
        f'[["p", "{NPUB}"], "{PK2}", "{PK}"]',
    ],
)
def test_users_in_every_accepted_form(value: str) -> None:
    assert list(dict.fromkeys(parse_users(value))) == [PK, PK2]


def test_users_params_add_up_and_an_empty_list_means_everyone() -> None:
    assert parse_query(request(("users", PK), ("users", f'["{PK2}", "{PK}"]')))[0] == [PK, PK2]
    assert parse_query(request(("users", "[]")))[0] is None


def test_time_bounds() -> None:
    assert parse_query(request(("since", "1700000000"), ("until", "1700000100")))[1:3] == (1700000000, 1700000100)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ((("users", '[["p", "xyz"]]'),), "'xyz' is not a pubkey"),
        ((("users", '[["e", "' + PK + '"]]'),), "is not a \\[\"p\", <pubkey>\\] tag"),
        ((("users", '[["p", '),), "not valid JSON"),
        ((("users", '{"p": "x"}'),), "users: expected a JSON list"),
        ((("users", "npub1notreallyakey"),), "is not a pubkey"),
        ((("since", "yesterday"),), "param since: expected unix seconds"),
        ((("until", "-5"),), "param until: expected unix seconds"),
        ((("since", "200"), ("until", "100")), "since \\(200\\) is after until \\(100\\)"),
        ((("max_results", "0"),), "max_results: expected 1-100"),
        ((("max_results", "101"),), "max_results: expected 1-100"),
        ((("max_results", "ten"),), "max_results: expected 1-100"),
        ((("limit", "10"),), "unknown param 'limit'"),
    ],
)
def test_bad_params_say_what_is_wrong(params: tuple[tuple[str, str], ...], message: str) -> None:
    with pytest.raises(HandlerError, match=message):
        HANDLER.validate(request(*params), {})


def test_too_many_users() -> None:
    keys = [coincurve.PrivateKey().public_key_xonly.format().hex() for _ in range(1001)]
    with pytest.raises(HandlerError, match="at most 1000 pubkeys"):
        parse_query(request(("users", orjson.dumps(keys).decode())))


def test_a_request_without_input_is_refused() -> None:
    with pytest.raises(HandlerError, match="no input"):
        HANDLER.validate(request(text=None), {})


def test_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="no settings"):
        HANDLER.check_settings({"k": 3})
    assert HANDLER.unavailable({}) is None


async def test_a_node_without_memory_says_so() -> None:
    with pytest.raises(HandlerError, match="this node keeps no semantic memory"):
        await HANDLER.run(JobContext(request=request(), texts=["shipyard"]))


async def test_an_empty_search_text_is_refused() -> None:
    with pytest.raises(HandlerError, match="empty"):
        await HANDLER.run(JobContext(request=request(text=" "), texts=[" "], services={"memory": object()}))


# --- a run against a real memory service, fed by a real relay --------------------------------


NOTES = [
    "The shipyard launched a new cargo vessel this week.",
    "Our relay now supports NIP-42 authentication for paid users.",
    "I baked sourdough bread this morning and it came out great.",
    "Dockworkers at the harbour finished repairing the old ferry.",
    "Lightning invoices for the summarizer jobs are settled in seconds.",
]


@pytest.fixture
async def memory(relay: RelayServer, tmp_path: Path) -> AsyncIterator[tuple[MemoryService, list[Event]]]:
    alice, bob = coincurve.PrivateKey(), coincurve.PrivateKey()
    events = [
        make_event(alice if i % 2 == 0 else bob, content=text, created_at=NOW - 100 + i)
        for i, text in enumerate(NOTES)
    ]
    pool = RelayPool([relay.url], min_backoff=0.05)
    await pool.start()
    service = MemoryService(tmp_path / "memory.sqlite3", pool, (1,), embedder=Embedder())
    await service.start()
    publisher = RelayLink(relay.url, min_backoff=0.05)
    await publisher.start()
    for event in events:
        assert (await publisher.publish(event))[0]
    async with asyncio.timeout(20):
        while (await service.stats())["documents"] != len(events):
            await asyncio.sleep(0.02)
    yield service, events
    await publisher.stop()
    await service.stop()
    await pool.stop()


async def search(service: MemoryService, text: str, *params: tuple[str, str]) -> tuple[list[list[str]], dict[str, str]]:
    req = request(*params, text=text)
    HANDLER.validate(req, {})
    output = await HANDLER.run(JobContext(request=req, texts=[text], services={"memory": service}))
    assert output.mime == "application/json"
    scores = {tag[1]: tag[2] for tag in output.tags if tag[0] == "score"}
    return orjson.loads(output.content), scores


async def test_results_are_e_tags_best_first(memory: tuple[MemoryService, list[Event]]) -> None:
    service, events = memory
    tags, scores = await search(service, "shipbuilding news", ("max_results", "2"))
    assert tags == [["e", events[0].id], ["e", events[3].id]]
    assert list(scores) == [events[0].id, events[3].id]
    assert 1 >= float(scores[events[0].id]) >= float(scores[events[3].id]) > 0


async def test_users_and_time_filters(memory: tuple[MemoryService, list[Event]]) -> None:
    service, events = memory
    bob = events[1].pubkey
    tags, _ = await search(service, "ships and harbours", ("users", f'[["p", "{bob}"]]'))
    assert tags[0] == ["e", events[3].id]
    assert {t[1] for t in tags} == {events[1].id, events[3].id}
    tags, _ = await search(service, "ships and harbours", ("since", str(NOW - 98)), ("until", str(NOW - 97)))
    assert tags == [["e", events[3].id], ["e", events[2].id]]
    tags, _ = await search(service, "ships", ("users", PK2))
    assert tags == []


async def test_a_node_whose_model_is_missing_says_so(relay: RelayServer, tmp_path: Path) -> None:
    pool = RelayPool([relay.url], min_backoff=0.05)
    await pool.start()
    service = MemoryService(tmp_path / "m.sqlite3", pool, (1,), embedder=Embedder(model_path=tmp_path / "none.onnx"))
    await service.start()  # the node goes on without it
    try:
        assert "none.onnx is missing" in str((await service.stats())["unavailable"])
        with pytest.raises(HandlerError, match=r"semantic memory is unavailable: .*none\.onnx is missing"):
            await HANDLER.run(JobContext(request=request(), texts=["shipyard"], services={"memory": service}))
    finally:
        await service.stop()
        await pool.stop()
