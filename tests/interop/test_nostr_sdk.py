"""rust-nostr's ``nostr-sdk`` (Python binding, 0.45.1) against our relay.

The SDK is a full client with its own rules: it verifies what it receives,
answers NIP-42 challenges through an ``Authenticator`` and resends an event
refused with ``auth-required``. A client does not see its own events on its
own subscriptions, so live tests use two clients.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import timedelta

import nostr_sdk as sdk
import pytest

from relay.server import RelayServer

pytestmark = pytest.mark.interop

TIMEOUT = timedelta(seconds=5)

Connect = Callable[..., Awaitable[sdk.Client]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(relay, keys=None)``: a connected Client; with keys it answers AUTH."""
    # SignerAuthenticator calls back into Python objects: the binding needs our loop.
    sdk.uniffi_set_event_loop(asyncio.get_running_loop())
    clients: list[sdk.Client] = []

    async def open_client(relay: RelayServer, keys: sdk.Keys | None = None) -> sdk.Client:
        builder = sdk.ClientBuilder()
        if keys is not None:
            builder = builder.authenticator(sdk.SignerAuthenticator(keys))
        client = builder.build()
        clients.append(client)
        await client.add_relay(sdk.RelayUrl.parse(relay.url))
        output = await client.try_connect(TIMEOUT)
        assert not output.failed, output.failed
        return client

    yield open_client
    for client in clients:
        await client.shutdown()


def build(
    keys: sdk.Keys,
    content: str = "",
    *,
    kind: int = 1,
    tags: Iterable[list[str]] = (),
    created_at: int | None = None,
) -> sdk.Event:
    builder = sdk.EventBuilder(sdk.Kind(kind), content).tags([sdk.Tag.parse(t) for t in tags])
    if created_at is not None:
        builder = builder.custom_created_at(sdk.Timestamp.from_secs(created_at))
    return builder.finalize(keys)


def hex_id(event: sdk.Event) -> str:
    return event.id().to_hex()


async def send(client: sdk.Client, event: sdk.Event) -> tuple[bool, str]:
    """(accepted, reason): the SDK reports refusals with the relay's OK message."""
    output = await client.send_event(event)
    if output.success:
        return True, ""
    return False, next(iter(output.failed.values()), "no relay answered")


async def fetch(client: sdk.Client, *filters: sdk.Filter) -> set[str]:
    events = await client.fetch_events(sdk.ReqTarget.auto(list(filters)), TIMEOUT)
    return {hex_id(event) for event in events}


def author(keys: sdk.Keys) -> sdk.Filter:
    return sdk.Filter().author(keys.public_key())


async def next_message(
    stream: sdk.ClientNotificationStream, wanted: Callable[[sdk.ClientNotification], bool]
) -> sdk.ClientNotification:
    async def scan() -> sdk.ClientNotification:
        while True:
            notification = await stream.next()
            assert notification is not None, "notification stream ended"
            if wanted(notification):
                return notification

    return await asyncio.wait_for(scan(), TIMEOUT.total_seconds())


def relay_message(notification: sdk.ClientNotification) -> list[object] | None:
    if not notification.is_message():
        return None
    parsed: list[object] = json.loads(notification.message.as_json())
    return parsed


# --- NIP-01 --------------------------------------------------------------------------


async def test_send_and_fetch_with_filters(relay: RelayServer, connect: Connect) -> None:
    client = await connect(relay)
    alice, bob = sdk.Keys.generate(), sdk.Keys.generate()
    t = int(sdk.Timestamp.now().as_secs()) - 100
    notes = [
        build(alice, "one", created_at=t + 1, tags=[["t", "timmy"]]),
        build(alice, "two", created_at=t + 2),
        build(alice, "three", created_at=t + 3, tags=[["t", "timmy"]]),
        build(alice, "+", kind=7, created_at=t + 4),
        build(bob, "bob", created_at=t + 5, tags=[["t", "timmy"]]),
    ]
    for event in notes:
        assert await send(client, event) == (True, "")
    one, two, three, reaction, bobs = (hex_id(e) for e in notes)

    assert await fetch(client, author(alice)) == {one, two, three, reaction}
    assert await fetch(client, author(alice).kind(sdk.Kind(7))) == {reaction}
    both = sdk.Filter().authors([alice.public_key(), bob.public_key()])
    assert await fetch(client, both.hashtag("timmy")) == {one, three, bobs}
    assert await fetch(client, sdk.Filter().ids([notes[0].id(), notes[4].id()])) == {one, bobs}
    window = (
        author(alice).since(sdk.Timestamp.from_secs(t + 2)).until(sdk.Timestamp.from_secs(t + 3))
    )
    assert await fetch(client, window) == {two, three}
    assert await fetch(client, author(alice).kind(sdk.Kind(1)).limit(2)) == {three, two}
    assert await fetch(client, author(bob), author(alice).kind(sdk.Kind(7))) == {bobs, reaction}
    # Sending it again is a duplicate, which NIP-01 still answers with OK true.
    assert await send(client, notes[0]) == (True, "")


async def test_subscription_receives_event_from_another_client(
    relay: RelayServer, connect: Connect
) -> None:
    reader, writer = await connect(relay), await connect(relay)
    alice = sdk.Keys.generate()
    stream = reader.notifications()
    subscription = await reader.subscribe(sdk.ReqTarget.auto([author(alice).kind(sdk.Kind(1))]))
    assert not subscription.failed, subscription.failed
    await next_message(stream, lambda n: relay_message(n) == ["EOSE", subscription.id])

    assert await send(writer, build(alice, "+", kind=7)) == (True, "")  # not matching
    fresh = build(alice, "live")
    assert await send(writer, fresh) == (True, "")
    got = await next_message(stream, lambda n: n.is_new_event())
    assert got.subscription_id == subscription.id
    assert hex_id(got.event) == hex_id(fresh)
    assert got.event.verify()


async def test_count(relay: RelayServer, connect: Connect) -> None:
    client = await connect(relay)
    alice = sdk.Keys.generate()
    for i in range(3):
        assert await send(client, build(alice, f"note {i}", tags=[["t", "counted"]])) == (True, "")
    assert await send(client, build(alice, "+", kind=7)) == (True, "")
    handle = await client.relay(sdk.RelayUrl.parse(relay.url))
    assert handle is not None
    assert await handle.count_events(author(alice), TIMEOUT) == 4
    assert await handle.count_events(author(alice).hashtag("counted"), TIMEOUT) == 3
    # NIP-45: COUNT ignores limit.
    assert await handle.count_events(author(alice).limit(1), TIMEOUT) == 4


async def test_replaceable_and_addressable_keep_newest(
    relay: RelayServer, connect: Connect
) -> None:
    client = await connect(relay)
    alice = sdk.Keys.generate()
    t = int(sdk.Timestamp.now().as_secs()) - 100
    meta_v1 = build(alice, '{"name":"v1"}', kind=0, created_at=t)
    meta_v2 = build(alice, '{"name":"v2"}', kind=0, created_at=t + 10)
    meta_old = build(alice, '{"name":"old"}', kind=0, created_at=t + 5)
    a_v1 = build(alice, "a v1", kind=30078, created_at=t, tags=[["d", "a"]])
    a_v2 = build(alice, "a v2", kind=30078, created_at=t + 10, tags=[["d", "a"]])
    b_v1 = build(alice, "b v1", kind=30078, created_at=t + 1, tags=[["d", "b"]])
    for event in (meta_v1, meta_v2, meta_old, a_v1, a_v2, b_v1):
        assert await send(client, event) == (True, "")

    assert await fetch(client, author(alice).kind(sdk.Kind(0))) == {hex_id(meta_v2)}
    addressable = author(alice).kind(sdk.Kind(30078))
    assert await fetch(client, addressable) == {hex_id(a_v2), hex_id(b_v1)}
    assert await fetch(client, addressable.identifier("a")) == {hex_id(a_v2)}
    assert await fetch(client, sdk.Filter().ids([meta_v1.id(), a_v1.id()])) == set()


async def test_deletion(relay: RelayServer, connect: Connect) -> None:
    client = await connect(relay)
    alice, mallory = sdk.Keys.generate(), sdk.Keys.generate()
    t = int(sdk.Timestamp.now().as_secs()) - 100
    doomed = build(alice, "to be deleted", created_at=t)
    kept = build(alice, "to be kept", created_at=t + 1)
    article = build(alice, "draft", kind=30023, created_at=t + 2, tags=[["d", "post"]])
    for event in (doomed, kept, article):
        assert await send(client, event) == (True, "")
    forged = build(mallory, kind=5, created_at=t + 3, tags=[["e", hex_id(kept)]])
    deletion = build(
        alice,
        kind=5,
        created_at=t + 4,
        tags=[["e", hex_id(doomed)], ["a", f"30023:{alice.public_key().to_hex()}:post"]],
    )
    assert await send(client, forged) == (True, "")
    assert await send(client, deletion) == (True, "")

    assert await fetch(client, author(alice)) == {hex_id(kept), hex_id(deletion)}
    accepted, reason = await send(client, doomed)
    assert not accepted
    assert reason.startswith("blocked:")
    assert await fetch(client, sdk.Filter().ids([doomed.id(), article.id()])) == set()


# --- NIP-42, NIP-70 ---------------------------------------------------------------------


async def test_auth_required_for_writes(auth_write_relay: RelayServer, connect: Connect) -> None:
    alice = sdk.Keys.generate()
    anonymous = await connect(auth_write_relay)
    note = build(alice, "members only")
    accepted, reason = await send(anonymous, note)
    assert not accepted
    assert reason.startswith("auth-required:")

    member = await connect(auth_write_relay, alice)
    assert await send(member, note) == (True, "")
    # Reading needs no AUTH on this relay.
    assert await fetch(anonymous, author(alice)) == {hex_id(note)}


async def test_auth_required_for_reads(auth_read_relay: RelayServer, connect: Connect) -> None:
    alice = sdk.Keys.generate()
    anonymous = await connect(auth_read_relay)
    note = build(alice, "readable after auth")
    assert await send(anonymous, note) == (True, "")  # writing needs no AUTH here

    stream = anonymous.notifications()
    assert await fetch(anonymous, author(alice)) == set()
    closed = await next_message(stream, lambda n: (relay_message(n) or [""])[0] == "CLOSED")
    reason = relay_message(closed)[2]  # type: ignore[index]
    assert isinstance(reason, str)
    assert reason.startswith("auth-required:")

    member = await connect(auth_read_relay, sdk.Keys.generate())
    assert await fetch(member, author(alice)) == {hex_id(note)}
    handle = await member.relay(sdk.RelayUrl.parse(auth_read_relay.url))
    assert handle is not None
    assert await handle.count_events(author(alice), TIMEOUT) == 1


async def test_protected_event_only_from_its_author(relay: RelayServer, connect: Connect) -> None:
    alice = sdk.Keys.generate()
    protected = build(alice, "only from alice", tags=[["-"]])
    assert protected.is_protected()

    anonymous = await connect(relay)
    accepted, reason = await send(anonymous, protected)
    assert not accepted
    assert reason.startswith("auth-required:")

    someone_else = await connect(relay, sdk.Keys.generate())
    accepted, reason = await send(someone_else, protected)
    assert not accepted
    assert reason.startswith("restricted:")

    herself = await connect(relay, alice)
    assert await send(herself, protected) == (True, "")
    assert await fetch(anonymous, sdk.Filter().id(protected.id())) == {hex_id(protected)}
