"""relay/server.py over real websockets on 127.0.0.1, with the in-memory store."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator

import coincurve
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from nips.nip01 import Filter
from relay.server import RelayServer
from relay.settings import RelayLimits, RelaySettings
from relay.store.memory import MemoryStore
from tests.helpers import make_event


@pytest.fixture
async def relay() -> AsyncIterator[RelayServer]:
    store = MemoryStore()
    await store.open()
    server = RelayServer(RelaySettings(port=0, limits=RelayLimits(max_connections_per_ip=5)), store)
    await server.start()
    yield server
    await server.stop()
    await store.close()


async def send(ws: ClientConnection, *parts: object) -> None:
    await ws.send(json.dumps(list(parts)))


async def recv(ws: ClientConnection) -> list:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


def http_get(url: str, accept: str = "*/*") -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read()


async def test_nip11_document_is_truthful(relay: RelayServer):
    url = relay.url.replace("ws://", "http://")
    status, ctype, body = await asyncio.to_thread(http_get, url, "application/nostr+json")
    doc = json.loads(body)
    assert status == 200 and ctype == "application/nostr+json"
    assert {1, 9, 11, 40, 42, 45, 70} <= set(doc["supported_nips"])
    assert doc["limitation"]["max_message_length"] == relay.settings.limits.max_message_length
    assert doc["limitation"]["max_subscriptions"] == relay.settings.limits.max_subscriptions


async def test_metrics_count_what_happened(relay: RelayServer):
    async with connect(relay.url) as ws:
        await send(ws, "EVENT", make_event().to_dict())
        assert (await recv(ws))[2] is True
        await ws.send("garbage")
        await recv(ws)
    url = relay.url.replace("ws://", "http://") + "/metrics"
    _, _, body = await asyncio.to_thread(http_get, url)
    text = body.decode()
    assert "relay_events_stored_total 1.0" in text
    assert "relay_notices_total 1.0" in text
    assert "relay_events_rejected_total{" not in text  # nothing was refused


async def test_metrics_count_refusals_by_prefix_but_not_auth(relay: RelayServer):
    key = coincurve.PrivateKey()
    async with connect(relay.url) as ws:
        expired = make_event(tags=[["expiration", "1"]])
        await send(ws, "EVENT", expired.to_dict())
        assert (await recv(ws))[2] is False
        auth = make_event(key, kind=22242, tags=[["relay", relay.url], ["challenge", "wrong"]])
        await send(ws, "AUTH", auth.to_dict())
        assert (await recv(ws))[2] is False  # a failed AUTH is not a refused event
    _, _, body = await asyncio.to_thread(
        http_get, relay.url.replace("ws://", "http://") + "/metrics"
    )
    text = body.decode()
    assert 'relay_events_rejected_total{reason="invalid"} 1.0' in text
    assert "relay_events_received_total 1.0" in text


async def test_live_subscribers_get_new_events_from_other_connections(relay: RelayServer):
    key = coincurve.PrivateKey()
    author = key.public_key_xonly.format().hex()
    async with connect(relay.url) as reader, connect(relay.url) as writer:
        await send(reader, "REQ", "feed", {"authors": [author], "limit": 0})
        assert await recv(reader) == ["EOSE", "feed"]
        event = make_event(key, content="live")
        await send(writer, "EVENT", event.to_dict())
        assert (await recv(writer))[2] is True
        assert await recv(reader) == ["EVENT", "feed", event.to_dict()]


async def test_ephemeral_events_are_broadcast_not_stored(relay: RelayServer):
    async with connect(relay.url) as reader, connect(relay.url) as writer:
        await send(reader, "REQ", "eph", {"kinds": [20001]})
        assert await recv(reader) == ["EOSE", "eph"]
        event = make_event(kind=20001, content="now or never")
        await send(writer, "EVENT", event.to_dict())
        assert (await recv(writer))[:3] == ["OK", event.id, True]
        assert (await recv(reader))[2]["id"] == event.id
        await send(writer, "REQ", "later", {"kinds": [20001]})
        assert await recv(writer) == ["EOSE", "later"]


async def test_dm_is_delivered_only_to_its_parties(relay: RelayServer):
    alice, bob = coincurve.PrivateKey(), coincurve.PrivateKey()
    bob_pub = bob.public_key_xonly.format().hex()
    dm = make_event(alice, kind=4, content="secret?iv=abc", tags=[["p", bob_pub]])
    async with connect(relay.url) as snoop, connect(relay.url) as bob_ws:
        await send(snoop, "REQ", "all", {})  # no kinds: asks for everything
        assert await recv(snoop) == ["EOSE", "all"]
        await send(bob_ws, "EVENT", dm.to_dict())
        assert (await recv(bob_ws))[2] is True
        await send(snoop, "REQ", "again", {})
        assert await recv(snoop) == ["EOSE", "again"]  # neither live nor stored
        await send(bob_ws, "REQ", "dms", {"kinds": [4], "#p": [bob_pub]})
        challenge_msg, closed_msg = await recv(bob_ws), await recv(bob_ws)
        assert challenge_msg[0] == "AUTH" and closed_msg[2].startswith("auth-required:")
        challenge = challenge_msg[1]
        auth = make_event(bob, kind=22242, tags=[["relay", relay.url], ["challenge", challenge]])
        await send(bob_ws, "AUTH", auth.to_dict())
        assert (await recv(bob_ws))[2] is True
        await send(bob_ws, "REQ", "dms", {"kinds": [4], "#p": [bob_pub]})
        assert (await recv(bob_ws))[2]["id"] == dm.id


async def test_too_many_connections_from_one_address_get_429(relay: RelayServer):
    sockets = [await connect(relay.url) for _ in range(5)]
    with pytest.raises(InvalidStatus) as refused:
        await connect(relay.url)
    assert refused.value.response.status_code == 429
    for ws in sockets:
        await ws.close()


async def test_plain_http_gets_a_hint(relay: RelayServer):
    status, _, body = await asyncio.to_thread(http_get, relay.url.replace("ws://", "http://"))
    assert status == 200 and b"Nostr relay" in body


async def test_stop_answers_pending_writes(relay: RelayServer):
    ws = await connect(relay.url)
    events = [make_event(content=str(i)) for i in range(50)]
    for event in events:
        await send(ws, "EVENT", event.to_dict())
    answers: list = []

    async def read_all() -> None:
        async for message in ws:
            answers.append(json.loads(message))

    reader = asyncio.create_task(read_all())
    await asyncio.sleep(0.01)
    await relay.stop()
    await asyncio.wait_for(reader, 5)
    acked = {a[1] for a in answers if a[0] == "OK" and a[2]}
    stored = await relay.store.query([Filter()], now=0, default_limit=100)
    # Every OK true we sent is backed by a stored event.
    assert acked and acked <= {json.loads(raw)["id"] for raw in stored}


async def test_frames_far_over_the_limit_close_the_connection(relay: RelayServer):
    # Up to 4x max_message_length the protocol answers specifically (see
    # test_protocol); beyond, websockets closes with 1009 "message too big".
    from websockets.exceptions import ConnectionClosedError

    async with connect(relay.url, max_size=None) as ws:
        await ws.send("x" * (16 * relay.settings.limits.max_message_length))
        with pytest.raises(ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_close_ends_live_delivery(relay: RelayServer):
    async with connect(relay.url) as reader, connect(relay.url) as writer:
        await send(reader, "REQ", "feed", {"kinds": [1], "limit": 0})
        assert await recv(reader) == ["EOSE", "feed"]
        await send(reader, "CLOSE", "feed")
        await send(reader, "REQ", "other", {"kinds": [7], "limit": 0})
        assert await recv(reader) == ["EOSE", "other"]
        await send(writer, "EVENT", make_event(kind=1).to_dict())
        await recv(writer)
        reaction = make_event(kind=7)
        await send(writer, "EVENT", reaction.to_dict())
        await recv(writer)
        # The kind-1 event went nowhere: the next thing the reader sees is the reaction.
        assert (await recv(reader))[2]["id"] == reaction.id


async def test_fragmented_message_is_reassembled(relay: RelayServer):
    event = make_event(content="in pieces")
    text = json.dumps(["EVENT", event.to_dict()])
    async with connect(relay.url) as ws:
        await ws.send([text[:10], text[10:40], text[40:]])  # one message, three frames
        assert await recv(ws) == ["OK", event.id, True, ""]


async def test_invalid_utf8_closes_with_1007(relay: RelayServer):
    from websockets.exceptions import ConnectionClosedError

    async with connect(relay.url) as ws:
        ws.protocol.send_text(b'["REQ","s",{"#t":["\xff"]}]')  # a text frame that is not UTF-8
        ws.send_data()
        with pytest.raises(ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007


async def test_client_that_stops_reading_is_cut_off(
    relay: RelayServer, monkeypatch: pytest.MonkeyPatch
):
    import relay.server as server_module

    monkeypatch.setattr(server_module, "MAX_OUTBOX", 20)
    key = coincurve.PrivateKey()
    author = key.public_key_xonly.format().hex()
    # max_queue=1: the client library stops reading its socket, so the relay's writes back up.
    sluggard = await connect(relay.url, max_queue=1)
    await send(sluggard, "REQ", "all", {"authors": [author], "limit": 0})
    await asyncio.sleep(0.05)
    (sluggard_id,) = relay.clients
    async with connect(relay.url) as writer:
        for i in range(300):
            await send(writer, "EVENT", make_event(key, content=f"{i}" + "x" * 60_000).to_dict())
            await recv(writer)
            if sluggard_id not in relay.clients:
                break
    assert sluggard_id not in relay.clients, "a client that never reads was kept"
    sluggard.transport.abort()
