"""The relay's I/O shell: websockets in, actions of ``relay.protocol`` carried out.

This module moves bytes and runs the effects the protocol asks for: it verifies
and stores events (through ``relay.ingest``), answers queries from the store,
fans new events out to live subscriptions (through ``relay.subscriptions``),
and serves the NIP-11 document and Prometheus metrics over plain HTTP on the
same port. Protocol rules live in ``relay/protocol.py``, not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidState
from websockets.http11 import Request, Response
from websockets.protocol import State

from nips import nip11
from nips.nip01 import Event, Filter, KindClass
from relay import protocol
from relay.ingest import Batcher, SignatureChecker
from relay.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from relay.metrics import RelayMetrics
from relay.policies import default_policies, limitation
from relay.protocol import Count, Publish, RelayConnection, Send, Subscribe, Unsubscribe
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


class Client:
    """One websocket and its protocol state, with an ordered outbox."""

    def __init__(self, ws: ServerConnection, conn: RelayConnection) -> None:
        self.ws = ws
        self.conn = conn
        self._outbox: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self.writer = asyncio.create_task(self._write_loop())

    def send(self, message: str) -> None:
        if len(self._outbox) >= MAX_OUTBOX:
            self._outbox.clear()
            self.writer.cancel()
            self.ws.transport.abort()
            return
        self._outbox.append(message)
        self._wakeup.set()

    async def _write_loop(self) -> None:
        ws, frames = self.ws, self.ws.protocol
        with contextlib.suppress(ConnectionClosed, ConnectionError, InvalidState):
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._outbox:
                    if frames.state is not State.OPEN:
                        return
                    # Frame everything queued, then write and drain once. ws.send()
                    # would write and drain per message: ~10 us each, against ~2 us
                    # here, which is most of the cost of a 50-event REQ.
                    for _ in range(min(len(self._outbox), WRITE_BATCH)):
                        frames.send_text(self._outbox.popleft().encode())
                    ws.send_data()
                    await ws.drain()

    async def flush(self) -> None:
        """Let the writer send what is queued (used before closing)."""
        while self._outbox and not self.writer.done():
            await asyncio.sleep(0.01)


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
        self._server: Server | None = None
        self._purger: asyncio.Task[None] | None = None
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
        limits = self.settings.limits
        self._server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            process_request=self._http,
            # Frames above the advertised limit still reach the protocol, which answers
            # them specifically; far larger ones are cut off by websockets itself.
            max_size=max(4 * limits.max_message_length, 1 << 20),
            max_queue=64,
            compression=None,
            ping_interval=30,
            ping_timeout=60,
            close_timeout=3,  # a client that ignores our close frame must not hold up shutdown
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
        self._server.server.close()  # stop listening; open connections carry on for now
        if self._purger is not None:
            self._purger.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self._signatures.close()  # may still hand events to the writer
        await self._writes.close()
        for client in list(self.clients.values()):
            await asyncio.wait_for(client.flush(), timeout=2)
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        log.info("relay stopped")

    # --- HTTP: NIP-11 and metrics ------------------------------------------------------

    def _http(self, ws: ServerConnection, request: Request) -> Response | None:
        ip = _remote_ip(ws)
        if request.path == "/metrics":
            return _response(HTTPStatus.OK, METRICS_CONTENT_TYPE, self.metrics.render())
        if nip11.MEDIA_TYPE in request.headers.get("Accept", ""):
            return _response(HTTPStatus.OK, nip11.MEDIA_TYPE, self._info, nip11.cors_headers())
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            text = b"This is a Nostr relay. Connect to it with a Nostr client over websockets.\n"
            return _response(HTTPStatus.OK, "text/plain; charset=utf-8", text)
        if self._per_ip.get(ip, 0) >= self.settings.limits.max_connections_per_ip:
            return _response(
                HTTPStatus.TOO_MANY_REQUESTS, "text/plain", b"rate-limited: too many connections\n"
            )
        return None

    # --- one connection -------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        ip = _remote_ip(ws)
        conn = RelayConnection(
            next(self._conn_ids),
            settings=self.settings,
            policies=self.policies,
            ip=ip,
            challenge=secrets.token_hex(16),
        )
        client = Client(ws, conn)
        self.clients[conn.conn_id] = client
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        self.metrics.connections.inc()
        try:
            self._carry_out(client, conn.greeting())
            async for data in ws:
                self._carry_out(client, conn.receive(data, time.time()))
        except ConnectionClosed:
            pass
        finally:
            self._forget(client, ip)

    def _forget(self, client: Client, ip: str) -> None:
        conn = client.conn
        self.index.remove_connection(conn.conn_id)
        self.metrics.subscriptions.set(len(self.index))
        del self.clients[conn.conn_id]
        self._per_ip[ip] -= 1
        if not self._per_ip[ip]:
            del self._per_ip[ip]
        self.metrics.connections.dec()
        client.writer.cancel()

    def _carry_out(self, client: Client, actions: Sequence[protocol.Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if action.message.startswith('["NOTICE"'):
                    self.metrics.notices.inc()
                elif action.message.startswith('["OK"'):
                    self.metrics.events_received.inc()
                    self.metrics.reject(orjson.loads(action.message)[3])
                client.send(action.message)
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
        for raw in raws:
            client.send(protocol.event_message(action.sub_id, raw))
        client.send(protocol.eose(action.sub_id))

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


def _remote_ip(ws: ServerConnection) -> str:
    address = ws.remote_address
    return str(address[0]) if address else "unknown"


def _response(
    status: HTTPStatus, content_type: str, body: bytes, extra: Sequence[tuple[str, str]] = ()
) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
    return Response(status.value, status.phrase, headers, body)
