"""node/links.py against our relay over real websockets, and its message handling alone."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest

from nips.nip01 import Event, Signer
from node.links import LinkClosed, QueryRefused, RelayLink, RelayPool
from relay.server import RelayServer
from relay.settings import AuthRules, RelaySettings
from relay.store.memory import MemoryStore
from tests.helpers import make_event

FAST = {"min_backoff": 0.02, "max_backoff": 0.1, "connect_timeout": 1.0}
SECRET = "57fde8fa854468b1273a44d8cccc7900fe33b6cf4e4a34b1c4cef647a88dd603"

StartRelay = Callable[..., Awaitable[RelayServer]]
OpenLink = Callable[..., Awaitable[RelayLink]]


@pytest.fixture
async def start_relay() -> AsyncIterator[StartRelay]:
    """``await start_relay(store=None, port=0, **settings)``; every relay is stopped at the end."""
    started: list[RelayServer] = []

    async def start(
        store: MemoryStore | None = None, port: int = 0, **settings: Any
    ) -> RelayServer:
        server = RelayServer(
            RelaySettings(host="127.0.0.1", port=port, **settings), store or MemoryStore()
        )
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def relay(start_relay: StartRelay) -> RelayServer:
    return await start_relay()


@pytest.fixture
async def open_link() -> AsyncIterator[OpenLink]:
    """``await open_link(url, signer=None, connect=True)``: a started link, stopped at the end."""
    made: list[RelayLink] = []

    async def open_(url: str, signer: Signer | None = None, connect: bool = True) -> RelayLink:
        link = RelayLink(url, signer=signer, **FAST)
        made.append(link)
        await link.start()
        if connect:
            assert await link.wait_connected(3)
        return link

    yield open_
    for link in made:
        await link.stop()


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def dead_url() -> str:
    """A local port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}"


def link_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("relay link")]


# --- publish ------------------------------------------------------------------------


async def test_publish_returns_the_relays_ok(relay: RelayServer, open_link: OpenLink):
    link = await open_link(relay.url)
    assert await link.publish(make_event()) == (True, "")


async def test_a_duplicate_counts_as_accepted(relay: RelayServer, open_link: OpenLink):
    link = await open_link(relay.url)
    event = make_event()
    await link.publish(event)
    accepted, message = await link.publish(event)
    assert accepted and message.startswith("duplicate:")


async def test_a_rejected_event_gives_the_relays_reason(relay: RelayServer, open_link: OpenLink):
    link = await open_link(relay.url)
    accepted, message = await link.publish(make_event(created_at=int(time.time()) + 3600))
    assert not accepted and message.startswith("invalid: created_at")


async def test_publish_without_a_connection_times_out_with_a_reason(open_link: OpenLink):
    link = await open_link(dead_url(), connect=False)
    accepted, message = await link.publish(make_event(), timeout=0.2)
    assert not accepted and message.startswith("timeout: not connected")
    assert not link.connected
    assert link.last_error is not None and "Connect" in link.last_error


async def test_stop_fails_pending_publishes_and_ends_every_task(open_link: OpenLink):
    link = await open_link(dead_url(), connect=False)
    pending = asyncio.create_task(link.publish(make_event(), timeout=5))
    await asyncio.sleep(0.05)
    await link.stop()
    with pytest.raises(LinkClosed):
        await pending
    with pytest.raises(LinkClosed):
        await link.publish(make_event())
    assert link_tasks() == []


# --- queries and subscriptions ------------------------------------------------------


async def test_query_returns_stored_matches_newest_first(relay: RelayServer, open_link: OpenLink):
    link = await open_link(relay.url)
    now = int(time.time())
    notes = [make_event(created_at=now - age) for age in (3, 1, 2)]
    for event in [*notes, make_event(kind=7)]:
        await link.publish(event)
    found = await link.query([{"kinds": [1]}])
    assert [e.id for e in found] == [notes[1].id, notes[2].id, notes[0].id]
    assert link._queries == {}


async def test_a_refused_query_raises_with_the_reason(start_relay: StartRelay, open_link: OpenLink):
    relay = await start_relay(auth=AuthRules(auth_required_for_reads=True))
    link = await open_link(relay.url)
    with pytest.raises(QueryRefused, match=r"^auth-required:"):
        await link.query([{"kinds": [1]}])


async def test_a_subscription_gets_stored_then_live_events(relay: RelayServer, open_link: OpenLink):
    reader, writer = await open_link(relay.url), await open_link(relay.url)
    stored, live = make_event(), make_event()
    await writer.publish(stored)
    got: list[tuple[str, str]] = []
    eose: list[str] = []
    reader.subscribe("notes", [{"kinds": [1]}], lambda e, url: got.append((e.id, url)), eose.append)
    await until(lambda: eose == [relay.url])
    assert got == [(stored.id, relay.url)]
    await writer.publish(live)
    await until(lambda: len(got) == 2)
    assert got[1] == (live.id, relay.url)


async def test_subscribing_again_replaces_the_filters(relay: RelayServer, open_link: OpenLink):
    reader, writer = await open_link(relay.url), await open_link(relay.url)
    got: list[int] = []
    reader.subscribe("s", [{"kinds": [1]}], lambda e, _: got.append(e.kind))
    reader.subscribe("s", [{"kinds": [7]}], lambda e, _: got.append(e.kind))
    await asyncio.sleep(0.05)
    await writer.publish(make_event(kind=1))
    await writer.publish(make_event(kind=7))
    await until(lambda: got == [7])


async def test_unsubscribe_ends_delivery(relay: RelayServer, open_link: OpenLink):
    reader, writer = await open_link(relay.url), await open_link(relay.url)
    got: list[Event] = []
    eose: list[str] = []
    reader.subscribe("s", [{"kinds": [1]}], lambda e, _: got.append(e), eose.append)
    await until(lambda: bool(eose))
    reader.unsubscribe("s")
    await asyncio.sleep(0.05)
    await writer.publish(make_event())
    await reader.query([{"kinds": [1]}])  # a round trip after the event's fan-out
    assert got == []


# --- what the relay sends, without a socket -----------------------------------------


def feed(link: RelayLink, *message: Any) -> None:
    link._handle(orjson.dumps(list(message)))


def test_events_that_fail_a_check_are_dropped(caplog: pytest.LogCaptureFixture):
    link = RelayLink("ws://relay.invalid")
    got: list[str] = []
    link.subscribe("s", [{"kinds": [1]}], lambda e, _: got.append(e.id))
    good = make_event()
    bad_sig = {**good.to_dict(), "sig": ("0" if good.sig[0] != "0" else "1") + good.sig[1:]}
    bad_id = {**make_event().to_dict(), "content": "changed"}
    other_kind = make_event(kind=7)
    with caplog.at_level(logging.DEBUG, logger="node.links"):
        feed(link, "EVENT", "s", bad_sig)
        feed(link, "EVENT", "s", bad_id)
        feed(link, "EVENT", "s", other_kind.to_dict())
        feed(link, "EVENT", "unknown", make_event().to_dict())
        feed(link, "EVENT", "s", good.to_dict())
        feed(link, "EVENT", "s", good.to_dict())
        for junk in (b"not json", b"{}", b"[]", b"[1]", b'["EVENT"]', b'["OK", 1]', b'["HELLO"]'):
            link._handle(junk)
    assert got == [good.id]
    assert "bad signature" in caplog.text
    assert "matches none of the filters" in caplog.text


def test_a_failing_callback_is_logged_and_the_link_goes_on(caplog: pytest.LogCaptureFixture):
    link = RelayLink("ws://relay.invalid")
    got: list[Event] = []

    def on_event(event: Event, url: str) -> None:
        got.append(event)
        raise RuntimeError("engine bug")

    link.subscribe("s", [{}], on_event)
    feed(link, "EVENT", "s", make_event().to_dict())
    feed(link, "EVENT", "s", make_event().to_dict())
    assert len(got) == 2
    failures = [r for r in caplog.records if r.exc_info is not None]
    assert len(failures) == 2 and "RuntimeError: engine bug" in caplog.text


def test_a_closed_subscription_is_logged_and_kept_for_the_next_connection(
    caplog: pytest.LogCaptureFixture,
):
    link = RelayLink("ws://relay.invalid")
    link.subscribe("s", [{}], lambda e, _: None)
    with caplog.at_level(logging.INFO, logger="node.links"):
        feed(link, "CLOSED", "s", "error: shutting down")
        feed(link, "NOTICE", "be nice")
    assert "closed subscription s: error: shutting down" in caplog.text
    assert "NOTICE from relay ws://relay.invalid: be nice" in caplog.text
    assert link._subs["s"].refused == "error: shutting down"


def test_a_resent_subscription_asks_only_for_recent_events():
    link = RelayLink("ws://relay.invalid")
    link.subscribe("s", [{"kinds": [1]}, {"kinds": [7], "since": 5}], lambda e, _: None)
    assert orjson.loads(link._req_message("s", link._subs["s"])) == [
        "REQ",
        "s",
        {"kinds": [1]},
        {"kinds": [7], "since": 5},
    ]
    feed(link, "EVENT", "s", make_event(created_at=1_000_000).to_dict())
    feed(link, "EVENT", "s", make_event(created_at=900_000).to_dict())
    assert orjson.loads(link._req_message("s", link._subs["s"]))[2:] == [
        {"kinds": [1], "since": 1_000_000 - 60},
        {"kinds": [7], "since": 5},
    ]


# --- reconnection -------------------------------------------------------------------


async def test_the_link_reconnects_resumes_and_delivers_what_waited(
    start_relay: StartRelay, open_link: OpenLink
):
    store = MemoryStore()
    first = await start_relay(store)
    link = await open_link(first.url)
    got: list[str] = []
    link.subscribe("notes", [{"kinds": [1]}], lambda e, _: got.append(e.id))
    now = int(time.time())
    seen_before = make_event(created_at=now - 5)
    await link.publish(seen_before)
    await until(lambda: got == [seen_before.id])

    port = first.port
    await first.stop()
    await until(lambda: not link.connected)
    sent = make_event(created_at=now)
    waiting = asyncio.create_task(link.publish(sent, timeout=5))
    missed, too_old = make_event(created_at=now), make_event(created_at=now - 600)
    await store.save_many([missed, too_old])  # as if other clients wrote them meanwhile

    await start_relay(store, port=port)
    assert await link.wait_connected(3)
    assert await waiting == (True, "")
    await until(lambda: {missed.id, sent.id} <= set(got))
    assert too_old.id not in got  # not asked again: older than the newest seen, minus 60 s
    assert got.count(seen_before.id) == 1
    assert link.last_error is not None and "closed" in link.last_error


# --- NIP-42 -------------------------------------------------------------------------


async def test_a_link_with_a_key_authenticates_to_write(
    start_relay: StartRelay, open_link: OpenLink
):
    relay = await start_relay(auth=AuthRules(auth_required_for_writes=True))
    anonymous = await open_link(relay.url)
    accepted, message = await anonymous.publish(make_event())
    assert not accepted and message.startswith("auth-required:")
    # Sent before the challenge arrives: refused, then sent again after AUTH.
    signed_in = await open_link(relay.url, signer=Signer(SECRET), connect=False)
    assert await signed_in.publish(make_event()) == (True, "")
    assert await signed_in.publish(make_event()) == (True, "")


async def test_a_link_with_a_key_authenticates_to_read(
    start_relay: StartRelay, open_link: OpenLink
):
    relay = await start_relay(auth=AuthRules(auth_required_for_reads=True))
    link = await open_link(relay.url, signer=Signer(SECRET), connect=False)
    got: list[str] = []
    link.subscribe("s", [{"kinds": [1]}], lambda e, _: got.append(e.id))
    assert await link.query([{"kinds": [1]}]) == []
    event = make_event()
    await link.publish(event)
    await until(lambda: got == [event.id])


async def test_a_refused_auth_makes_the_refusal_final(
    start_relay: StartRelay, open_link: OpenLink, caplog: pytest.LogCaptureFixture
):
    relay = await start_relay(
        auth=AuthRules(auth_required_for_writes=True), public_url="ws://somewhere.else"
    )
    link = await open_link(relay.url, signer=Signer(SECRET), connect=False)
    accepted, message = await link.publish(make_event())
    assert not accepted and message.startswith("auth-required:")
    assert "refused our AUTH: invalid: AUTH relay tag" in caplog.text


# --- the pool -----------------------------------------------------------------------


@pytest.fixture
async def pool_of_two(start_relay: StartRelay) -> AsyncIterator[RelayPool]:
    a, b = await start_relay(), await start_relay()
    pool = RelayPool([a.url, b.url], **FAST)
    await pool.start()
    assert await pool.wait_connected(3)
    yield pool
    await pool.stop()


async def test_the_pool_delivers_an_event_once_across_relays(pool_of_two: RelayPool):
    got: list[str] = []
    pool_of_two.subscribe("s", [{"kinds": [1]}], lambda e, _: got.append(e.id))
    event = make_event()
    results = await pool_of_two.publish(event)
    assert list(results.values()) == [(True, ""), (True, "")]
    links = pool_of_two.links.values()
    await until(lambda: all(event.id in link._subs["s"].seen for link in links))
    assert got == [event.id]


async def test_the_pool_merges_queries(pool_of_two: RelayPool):
    a, b = list(pool_of_two.links)
    now = int(time.time())
    only_a, only_b, both = (make_event(created_at=now - age) for age in (3, 2, 1))
    await pool_of_two.publish(only_a, urls=[a])
    await pool_of_two.publish(only_b, urls=[b])
    await pool_of_two.publish(both)
    found = await pool_of_two.query([{"kinds": [1]}])
    assert [e.id for e in found] == [both.id, only_b.id, only_a.id]


async def test_the_pool_skips_a_failing_relay_unless_all_fail(pool_of_two: RelayPool):
    await pool_of_two.publish(make_event())
    dead = pool_of_two.add(dead_url())
    assert len(await pool_of_two.query([{"kinds": [1]}], timeout=0.3)) == 1
    assert [s["connected"] for s in pool_of_two.status()] == [True, True, False]
    assert pool_of_two.status()[2]["url"] == dead.url
    lonely = RelayPool([dead.url], **FAST)
    await lonely.start()
    with pytest.raises(TimeoutError):
        await lonely.query([{"kinds": [1]}], timeout=0.2)
    await lonely.stop()


async def test_publishing_to_a_new_url_adds_a_link(pool_of_two: RelayPool, start_relay: StartRelay):
    third = await start_relay()
    results = await pool_of_two.publish(make_event(), urls=[third.url])
    assert results == {third.url: (True, "")}
    assert third.url in pool_of_two.links and pool_of_two.links[third.url].connected
