"""The relay's I/O shell: websockets in, actions of ``relay.protocol`` carried out.

This module moves bytes and runs the effects the protocol asks for: it verifies
and stores events (through ``relay.ingest``), answers queries from the store,
fans new events out to live subscriptions (through ``relay.subscriptions``),
and serves the NIP-11 document and Prometheus metrics over plain HTTP on the
same port. Protocol rules live in ``relay/protocol.py``, not here.

The websocket layer is picows: a Cython implementation whose frames reach us
through callbacks (``Client.on_ws_frame``) instead of an ``async for`` per
connection, and whose sends are synchronous writes. It leaves to us what
the ``websockets`` library used to do above single frames: reassembling
fragmented messages, the size limit of a whole message, answering a CLOSE, and
a bounded outbox for clients that stop reading.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import secrets
import struct
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from http import HTTPStatus
from typing import Any

import aiofastnet  # picows' dependency: its transports, which picows itself uses by default
import orjson
from multidict import CIMultiDict
from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

# Not in picows' public API nor its stubs; see RelayServer.start() for why we build it.
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from nips import nip11
from nips.nip01 import Event, Filter, KindClass
from relay import protocol
from relay.ingest import Batcher, SignatureChecker
from relay.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from relay.metrics import RelayMetrics
from relay.policies import default_policies, limitation
from relay.protocol import (
    Count,
    Publish,
    Refuse,
    RelayConnection,
    Send,
    Subscribe,
    Unsubscribe,
)
from relay.settings import RelaySettings
from relay.store.base import EventStore, SaveResult
from relay.subscriptions import SubscriptionIndex

log = logging.getLogger("timmy.relay")

SUPPORTED_NIPS = [1, 9, 11, 40, 42, 45, 70]
VERSION = "0.1.0"
# A client that stops reading while its subscriptions match is cut off rather
# than allowed to grow our memory without bound.
MAX_OUTBOX = 10_000
WRITE_BATCH = 256  # messages framed per socket write
# websockets pinged every 30 s and waited 60 s for the pong; picows pings only
# connections that have been silent, and caps the wait at the idle time.
PING_IDLE_SECONDS = 30  # ping a client silent this long ...
PING_REPLY_SECONDS = 30  # ... and drop it if no pong comes back within this
HANDSHAKE_SECONDS = 10
CLOSE_SECONDS = 3  # a client that ignores our close frame must not hold up shutdown


class Client(WSListener):
    """One websocket and its protocol state, with an ordered outbox.

    picows calls the ``on_ws_*`` methods from the event loop as frames arrive.
    Outgoing messages are queued and written once per loop iteration: a REQ
    answered with 500 events, or a batch of OKs, becomes one socket write
    instead of one per message.
    """

    def __init__(self, server: RelayServer, ip: str, conn: RelayConnection) -> None:
        self.server = server
        self.ip = ip
        self.conn = conn
        self.open = False  # the handshake completed and the server counts this client
        self.transport: WSTransport | None = None
        self._fragments: list[bytes] = []  # a fragmented message so far
        self._fragments_size = 0
        self._fragments_text = False
        self._outbox: deque[str] = deque()
        self._flush_scheduled = False
        self._paused = False  # the socket's send buffer is over its high-water mark
        self._gone = False  # closing or closed: nothing more to read or write
        self.closed = asyncio.get_running_loop().create_future()

    # --- picows callbacks ---------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.open = True
        self.server._connected(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._gone = True
        self._outbox.clear()
        if self.open:
            self.open = False
            self.server._forget(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # picows hands us frames, not messages. PING is answered by picows itself
        # (enable_auto_pong); the pongs to its own pings never reach us.
        if self._gone:  # frames already buffered when we gave up on this client
            return
        if transport.is_close_frame_sent and frame.msg_type is not WSMsgType.CLOSE:
            return  # closing (stop() or an error): only the client's CLOSE matters now
        try:
            self._on_frame(transport, frame)
        except _Fail as fail:
            # Raising WSProtocolError to picows would do the same, plus an ERROR log
            # line for every misbehaving client.
            self._gone = True
            self._outbox.clear()
            transport.send_close(fail.code, fail.reason)
            transport.disconnect()

    def _on_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            if self._fragments:
                raise _Fail(WSCloseCode.PROTOCOL_ERROR, "expected a continuation frame")
            if frame.fin:  # the common case: a whole message in one frame
                self._receive(_payload(frame, kind is WSMsgType.TEXT))
            else:
                self._fragments_text = kind is WSMsgType.TEXT
                self._add_fragment(frame)
        elif kind is WSMsgType.CONTINUATION:
            if not self._fragments:
                raise _Fail(WSCloseCode.PROTOCOL_ERROR, "unexpected continuation frame")
            self._add_fragment(frame)
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments, self._fragments_size = [], 0
                self._receive(_decode(data) if self._fragments_text else data)
        elif kind is WSMsgType.CLOSE:
            # Answer the client's close (echoing its code, as RFC 6455 asks) unless this
            # is the answer to ours; either way the handshake is over: hang up.
            if not transport.is_close_frame_sent:
                code = frame.get_close_code()
                transport.send_close(WSCloseCode.OK if code is WSCloseCode.NO_INFO else code)
            transport.disconnect()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._schedule_flush()

    # --- incoming -----------------------------------------------------------------------

    def _add_fragment(self, frame: WSFrame) -> None:
        # picows limits single frames (max_frame_size); a message in many frames is ours to limit.
        self._fragments_size += frame.payload_size
        if self._fragments_size > self.server.max_message_size:
            raise _Fail(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
        self._fragments.append(frame.get_payload_as_bytes())

    def _receive(self, data: str | bytes) -> None:
        self.server._carry_out(self, self.conn.receive(data, time.time()))

    # --- outgoing -----------------------------------------------------------------------

    def send(self, message: str) -> None:
        self.send_many((message,))

    def send_many(self, messages: Sequence[str]) -> None:
        if self._gone:
            return
        if len(self._outbox) + len(messages) > MAX_OUTBOX:
            # The client stopped reading (its socket stayed paused while this piled up).
            self._gone = True
            self._outbox.clear()
            if self.transport is not None:
                self.transport.disconnect(graceful=False)
            return
        self._outbox.extend(messages)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and not self._paused and self._outbox:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        transport = self.transport
        if self._gone or transport is None or transport.is_close_frame_sent:
            self._outbox.clear()
            return
        outbox, write = self._outbox, transport.underlying_transport.write
        # Frame what is queued ourselves and write it in one call: transport.send()
        # would make a send() system call per message. Server frames are unmasked, so
        # framing is only a header. A write over the buffer's high-water mark calls
        # pause_writing() at once, which stops this loop until resume_writing().
        while outbox and not self._paused:
            buf = bytearray()
            for _ in range(min(len(outbox), WRITE_BATCH)):
                payload = outbox.popleft().encode()
                buf += _text_header(len(payload))
                buf += payload
            write(buf)

    async def flush(self) -> None:
        """Let the queued messages go out (used before closing)."""
        while self._outbox and not self.closed.done():
            await asyncio.sleep(0.01)


class _Fail(Exception):
    """Close the connection with this code: the client broke the websocket protocol."""

    def __init__(self, code: WSCloseCode, reason: str) -> None:
        super().__init__(code, reason)
        self.code, self.reason = code, reason


def _text_header(size: int) -> bytes:
    """RFC 6455 header of an unmasked, final text frame carrying ``size`` bytes."""
    if size < 126:
        return bytes((0x81, size))
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size)
    return struct.pack("!BBQ", 0x81, 127, size)


def _payload(frame: WSFrame, text: bool) -> str | bytes:
    if not text:
        return frame.get_payload_as_bytes()
    try:
        return frame.get_payload_as_utf8_text()
    except UnicodeDecodeError:
        raise _Fail(WSCloseCode.INVALID_TEXT, "invalid UTF-8") from None


def _decode(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise _Fail(WSCloseCode.INVALID_TEXT, "invalid UTF-8") from None


class RelayServer:
    """A NIP-01 relay on ``settings.host:settings.port`` storing into ``store``.

    The store must already be open; the caller owns it.
    """

    def __init__(
        self, settings: RelaySettings, store: EventStore, *, metrics: RelayMetrics | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics or RelayMetrics()
        self.policies = default_policies(settings)
        self.index = SubscriptionIndex()
        self.clients: dict[int, Client] = {}
        self._conn_ids = itertools.count(1)
        self._per_ip: dict[str, int] = {}
        self._signatures = SignatureChecker()
        self._writes: Batcher[Event, SaveResult] = Batcher(store.save_many, max_batch=1024)
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._purger: asyncio.Task[None] | None = None
        # Messages above the advertised limit still reach the protocol, which answers
        # them specifically; far larger ones are cut off with close code 1009.
        self.max_message_size = max(4 * settings.limits.max_message_length, 1 << 20)
        self._info = orjson.dumps(
            nip11.information_document(
                name=settings.name,
                description=settings.description,
                supported_nips=SUPPORTED_NIPS,
                version=VERSION,
                limitation=limitation(settings),
                pubkey=settings.operator_pubkey,
                contact=settings.contact,
            )
        )

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        picows_log = logging.getLogger("picows.server")

        def new_protocol() -> WSProtocol:
            # What picows.ws_create_server() builds, except that the HTTP handler gets the
            # peer's address: its listener factory sees only the request, and the
            # per-address connection limit has to be answered with an HTTP 429.
            ws: WSProtocol = WSProtocol(
                None,  # host:port, client side only
                None,  # path, client side only
                False,  # server side
                lambda request: self._http(request, _remote_ip(ws.transport)),
                picows_log,
                True,  # disconnect_on_exception
                HANDSHAKE_SECONDS,
                True,  # enable_auto_ping
                PING_IDLE_SECONDS,
                PING_REPLY_SECONDS,
                WSAutoPingStrategy.PING_WHEN_IDLE,
                True,  # enable_auto_pong
                self.max_message_size,  # max_frame_size
                None,  # extra headers, client side only
                16 * 1024,  # initial read buffer
            )
            return ws

        self._server = await aiofastnet.create_server(
            loop, new_protocol, self.settings.host, self.settings.port
        )
        if not self.settings.public_url:  # port 0 asks for any free port: name the real one
            self.settings = dataclasses.replace(self.settings, public_url=self.url)
        self._purger = asyncio.create_task(self._purge_expired_forever())
        log.info("relay listening on %s", self.url)

    @property
    def port(self) -> int:
        assert self._server is not None, "call start() first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """Where this relay listens (``settings.public_url`` is what it tells clients)."""
        return f"ws://{self.settings.host}:{self.port}"

    async def stop(self) -> None:
        """Stop accepting, finish pending writes (they were promised an OK), close sockets."""
        if self._server is None:
            return
        self._server.close()  # stop listening; open connections carry on for now
        if self._purger is not None:
            self._purger.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self._signatures.close()  # may still hand events to the writer
        await self._writes.close()
        clients = list(self.clients.values())
        if clients:  # one deadline for all: a client that stopped reading must not stall us
            await asyncio.wait([asyncio.create_task(c.flush()) for c in clients], timeout=2)
        # Close handshake: send 1001 and wait for the client's reply (Client.on_ws_frame
        # then hangs up); cut off whoever has not answered in time.
        for client in clients:
            assert client.transport is not None
            client.transport.send_close(WSCloseCode.GOING_AWAY)
        if clients:
            await asyncio.wait([c.closed for c in clients], timeout=CLOSE_SECONDS)
        for client in clients:
            if not client.closed.done():
                assert client.transport is not None
                client.transport.disconnect(graceful=False)
        await self._server.wait_closed()
        self._server = None
        log.info("relay stopped")

    # --- HTTP: NIP-11 and metrics ------------------------------------------------------

    def _http(self, request: WSUpgradeRequest, ip: str) -> Client | WSUpgradeResponseWithListener:
        """Every HTTP request; a listener for the websocket upgrades we accept.

        picows answers a response other than 101 with ``Connection: close``.
        """
        headers = request.headers
        if request.path == b"/metrics":
            return _response(HTTPStatus.OK, METRICS_CONTENT_TYPE, self.metrics.render())
        if nip11.MEDIA_TYPE in headers.get("Accept", ""):
            return _response(HTTPStatus.OK, nip11.MEDIA_TYPE, self._info, nip11.cors_headers())
        if "websocket" not in headers.get("Upgrade", "").lower():
            text = b"This is a Nostr relay. Connect to it with a Nostr client over websockets.\n"
            return _response(HTTPStatus.OK, "text/plain; charset=utf-8", text)
        if self._per_ip.get(ip, 0) >= self.settings.limits.max_connections_per_ip:
            return _response(
                HTTPStatus.TOO_MANY_REQUESTS, "text/plain", b"rate-limited: too many connections\n"
            )
        conn = RelayConnection(
            next(self._conn_ids),
            settings=self.settings,
            policies=self.policies,
            ip=ip,
            challenge=secrets.token_hex(16),
        )
        return Client(self, ip, conn)  # picows checks the upgrade headers and answers 101

    # --- one connection -------------------------------------------------------------

    def _connected(self, client: Client) -> None:
        ip, conn = client.ip, client.conn
        self.clients[conn.conn_id] = client
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        self.metrics.connections.inc()
        self._carry_out(client, conn.greeting())

    def _forget(self, client: Client) -> None:
        conn, ip = client.conn, client.ip
        self.index.remove_connection(conn.conn_id)
        self.metrics.subscriptions.set(len(self.index))
        del self.clients[conn.conn_id]
        self._per_ip[ip] -= 1
        if not self._per_ip[ip]:
            del self._per_ip[ip]
        self.metrics.connections.dec()

    def _carry_out(self, client: Client, actions: Sequence[protocol.Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if action.message.startswith('["NOTICE"'):
                    self.metrics.notices.inc()
                client.send(action.message)
            elif isinstance(action, Refuse):
                self.metrics.events_received.inc()
                self.metrics.reject(action.message)
                client.send(protocol.ok(action.event_id, False, action.message))
            elif isinstance(action, Publish):
                self.metrics.events_received.inc()
                self._publish(client, action.event)
            elif isinstance(action, Subscribe):
                if client.conn.conn_id in self.clients:
                    self._subscribe(client, action)
            elif isinstance(action, Unsubscribe):
                self.index.remove((client.conn.conn_id, action.sub_id))
                self.metrics.subscriptions.set(len(self.index))
            elif isinstance(action, Count):
                self._spawn(self._count(client, action))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- EVENT ------------------------------------------------------------------------

    # Accepting an event is a chain of callbacks, not a task per event: verify
    # (batched, worker thread) -> after-signature policies -> store (batched,
    # one transaction) -> fan out -> OK.

    def _publish(self, client: Client, event: Event) -> None:
        self._signatures.submit(event, lambda valid: self._on_verified(client, event, valid))

    def _on_verified(self, client: Client, event: Event, valid: bool | Exception) -> None:
        if valid is not True:
            return self._answer(client, event, False, "invalid: signature does not verify")
        rejection = client.conn.check_author(event, time.time())
        if rejection is not None:
            return self._answer(client, event, False, rejection.message)
        if event.kind_class is KindClass.EPHEMERAL:
            self._fan_out(event)
            return self._answer(client, event, True, "")
        self._writes.submit(event, lambda result: self._on_saved(client, event, result))

    def _on_saved(self, client: Client, event: Event, result: SaveResult | Exception) -> None:
        if isinstance(result, Exception):
            log.error("storing event %s failed: %r", event.id, result)
            return self._answer(client, event, False, "error: could not store the event, try again")
        if result is SaveResult.STORED:
            self.metrics.events_stored.inc()
            self._fan_out(event)
        self._answer(client, event, result.accepted, result.message)

    def _answer(self, client: Client, event: Event, accepted: bool, message: str) -> None:
        if not accepted:
            self.metrics.reject(message)
        client.send(protocol.ok(event.id, accepted, message))

    def _fan_out(self, event: Event) -> None:
        private = event.kind in self.policies.private_kinds
        tagged = event.tag_values("p") if private else []
        for conn_id, sub_id in self.index.matching(event):
            client = self.clients.get(conn_id)
            if client is None or (
                private and not client.conn.may_read(event.kind, event.pubkey, tagged)
            ):
                continue
            client.send(protocol.event_message(sub_id, event.raw))
            self.metrics.events_broadcast.inc()

    # --- REQ, COUNT -------------------------------------------------------------------

    def _subscribe(self, client: Client, action: Subscribe) -> None:
        # Live first, then stored: an event stored meanwhile is sent, perhaps twice, never lost.
        self.index.add((client.conn.conn_id, action.sub_id), action.filters)
        self.metrics.subscriptions.set(len(self.index))
        self._spawn(self._send_stored(client, action))

    async def _send_stored(self, client: Client, action: Subscribe) -> None:
        started = time.perf_counter()
        try:
            raws = await self.store.query(
                action.filters,
                now=int(time.time()),
                default_limit=self.settings.limits.default_limit,
            )
        except Exception:
            log.exception("query failed")
            client.send(protocol.closed(action.sub_id, "error: could not query the database"))
            return
        self.metrics.query_seconds.observe(time.perf_counter() - started)
        if self._may_hold_private(action.filters):
            raws = [raw for raw in raws if self._private_visible(client, raw)]
        client.send_many(
            [*protocol.event_messages(action.sub_id, raws), protocol.eose(action.sub_id)]
        )

    async def _count(self, client: Client, action: Count) -> None:
        started = time.perf_counter()
        try:
            n = await self.store.count(action.filters, now=int(time.time()))
        except Exception:
            log.exception("count failed")
            client.send(protocol.closed(action.sub_id, "error: could not query the database"))
            return
        self.metrics.query_seconds.observe(time.perf_counter() - started)
        client.send(protocol.count_reply(action.sub_id, n))

    def _may_hold_private(self, filters: Sequence[Filter]) -> bool:
        private = self.policies.private_kinds
        return bool(private) and any(f.kinds is None or f.kinds & private for f in filters)

    def _private_visible(self, client: Client, raw: str) -> bool:
        obj = orjson.loads(raw)
        if obj["kind"] not in self.policies.private_kinds:
            return True
        tagged = [t[1] for t in obj["tags"] if len(t) >= 2 and t[0] == "p"]
        return client.conn.may_read(obj["kind"], obj["pubkey"], tagged)

    # --- NIP-40 -------------------------------------------------------------------------

    async def _purge_expired_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.purge_interval_seconds)
            try:
                purged = await self.store.purge_expired(int(time.time()))
            except Exception:
                log.exception("purging expired events failed")
                continue
            if purged:
                log.info("purged %d expired events", purged)


def _remote_ip(transport: WSTransport) -> str:
    address = transport.underlying_transport.get_extra_info("peername")
    return str(address[0]) if address else "unknown"


def _response(
    status: HTTPStatus, content_type: str, body: bytes, extra: Sequence[tuple[str, str]] = ()
) -> WSUpgradeResponseWithListener:
    response = WSUpgradeResponse()
    response.version = b"HTTP/1.1"
    response.status = status
    # picows adds Content-Length (and Connection: close) itself.
    response.headers = CIMultiDict([("Content-Type", content_type), *extra])
    response.body = body
    return WSUpgradeResponseWithListener(response, None)
