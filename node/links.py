"""The node's Nostr relay client: long-lived links to relays, alone or as a pool.

The job engine talks to relays through this module -- the node's own relay and
the shared federation relays. A :class:`RelayLink` is one websocket that
reconnects with backoff and keeps its subscriptions alive across reconnections;
a :class:`RelayPool` uses several links as one, deduplicating events by id.

Spec: ``shared/specs/nips/01.md`` ("From relay to client", the ``OK``,
``EOSE``, ``CLOSED`` and ``NOTICE`` messages) and ``shared/specs/nips/42.md``
("Protocol flow": answering ``AUTH`` and retrying after ``auth-required:``).

Nothing a relay sends is trusted: every event is shape-checked, its id
recomputed, its signature verified, and it must match the filters of the
subscription it came on. Everything a relay sends is handled synchronously by
``RelayLink._handle``, which only queues outgoing messages; the socket is read
and written by the link's own task.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from nips.nip01 import (
    Event,
    Filter,
    InvalidEvent,
    Signer,
    newest_first_key,
    parse_event,
    parse_filter,
    verify_signature,
)
from nips.nip42 import AUTH_KIND

log = logging.getLogger(__name__)

OnEvent = Callable[[Event, str], None]
OnEose = Callable[[str], None]

MAX_MESSAGE_SIZE = 4 * 1024 * 1024
PING_INTERVAL = 20.0
CLOSE_TIMEOUT = 2.0  # stop() must not hang on a relay that ignores our close frame
STABLE_SECONDS = 10.0  # a connection that lasted this long resets the backoff
# On a reconnection, subscriptions ask again from a little before the newest event
# they saw: relays' clocks and authors' clocks disagree by seconds.
RESUME_OVERLAP = 60
LINK_RECENT_IDS = 10_000  # per subscription of one link: duplicates after a reconnection
POOL_RECENT_IDS = 100_000  # per subscription of a pool: the same event from several relays


class LinkClosed(Exception):
    """Raised when a publish or query cannot finish because its link was stopped."""


class QueryRefused(Exception):
    """Raised when a relay answers a query with ``CLOSED``; the message is the relay's reason."""


class _RecentIds:
    """A bounded set of event ids that forgets the least recently added first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; True when it was not remembered already."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


@dataclass(slots=True)
class _Subscription:
    filters: list[dict[str, Any]]
    matchers: list[Filter]
    on_event: OnEvent
    on_eose: OnEose | None
    seen: _RecentIds
    newest: int | None = None  # created_at of the newest event delivered
    refused: str | None = None  # the relay CLOSED it: not asked again until we reconnect


@dataclass(slots=True)
class _Query:
    filters: list[dict[str, Any]]
    matchers: list[Filter]
    done: asyncio.Future[None]
    events: dict[str, Event] = field(default_factory=dict)
    closed_by_relay: bool = False


@dataclass(slots=True)
class _Publish:
    message: str
    result: asyncio.Future[tuple[bool, str]]
    waiters: int = 0


def _settle(
    future: asyncio.Future[Any], result: Any = None, error: Exception | None = None
) -> None:
    if future.done():  # its waiter gave up (timeout, cancellation) before the answer came
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _close_reason(ws: ClientConnection) -> str:
    reason = f": {ws.close_reason}" if ws.close_reason else ""
    return f"the relay closed the connection (code {ws.close_code}{reason})"


class RelayLink:
    """One relay connection that reconnects with exponential backoff and keeps its subscriptions."""

    def __init__(
        self,
        url: str,
        *,
        signer: Signer | None = None,
        min_backoff: float = 0.25,
        max_backoff: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._signer = signer
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._connect_timeout = connect_timeout
        self._subs: dict[str, _Subscription] = {}
        self._queries: dict[str, _Query] = {}
        self._publishes: dict[str, _Publish] = {}
        self._query_ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._ws: ClientConnection | None = None
        self._is_connected = asyncio.Event()
        self._outbox: deque[str] = deque()
        self._outbox_ready = asyncio.Event()
        self._last_error: str | None = None
        # NIP-42 state of the current connection.
        self._auth_id: str | None = None  # our AUTH event awaiting its OK
        self._authed = False
        self._auth_retried: set[tuple[str, str]] = set()  # ("EVENT", id) / ("REQ", sub id)
        self._after_auth: list[tuple[tuple[str, str], list[Any]]] = []  # key, refusal

    def __repr__(self) -> str:
        return f"RelayLink({self.url!r}, connected={self.connected})"

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def last_error(self) -> str | None:
        """Why the last connection attempt or connection failed; None if none has."""
        return self._last_error

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; returns at once."""
        self._launch()

    def _launch(self) -> None:
        self._stopping = False
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"relay link {self.url}")

    async def wait_connected(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._is_connected.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Close the socket, end the task, and fail what still waits with :class:`LinkClosed`."""
        self._stopping = True
        task, self._task = self._task, None
        if self._ws is not None:
            await self._ws.close()  # the close handshake, bounded by CLOSE_TIMEOUT
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        closed = LinkClosed(f"the link to {self.url} was stopped")
        for pub in self._publishes.values():
            _settle(pub.result, error=closed)
        for query in self._queries.values():
            _settle(query.done, error=closed)

    # --- subscriptions --------------------------------------------------------------

    def subscribe(
        self,
        sub_id: str,
        filters: list[dict[str, Any]],
        on_event: OnEvent,
        on_eose: OnEose | None = None,
    ) -> None:
        """Keep ``sub_id`` open on this relay, across reconnections, until unsubscribed.

        ``on_event(event, relay_url)`` gets each new, verified, matching event once;
        ``on_eose(relay_url)`` is called at each end of stored events. Subscribing
        again with the same id replaces the filters. Raises ``InvalidFilter``.
        """
        matchers = [parse_filter(f) for f in filters]
        old = self._subs.get(sub_id)
        # The ids already delivered under this id stay delivered: the new REQ must
        # not hand them to the caller a second time.
        seen = old.seen if old is not None else _RecentIds(LINK_RECENT_IDS)
        sub = _Subscription(list(filters), matchers, on_event, on_eose, seen)
        self._subs[sub_id] = sub
        self._send(self._req_message(sub_id, sub))

    def unsubscribe(self, sub_id: str) -> None:
        sub = self._subs.pop(sub_id, None)
        if sub is not None and sub.refused is None:
            self._send(orjson.dumps(["CLOSE", sub_id]).decode())

    def _req_message(self, sub_id: str, sub: _Subscription) -> str:
        filters = sub.filters
        if sub.newest is not None:
            since = max(0, sub.newest - RESUME_OVERLAP)
            filters = [f if "since" in f else {**f, "since": since} for f in filters]
        return orjson.dumps(["REQ", sub_id, *filters]).decode()

    # --- requests -------------------------------------------------------------------

    async def publish(self, event: Event, timeout: float = 10.0) -> tuple[bool, str]:
        """Send ``event`` and wait for the relay's ``OK``: ``(accepted, message)``.

        Waits for a connection if there is none; an event sent on a connection that
        dropped is sent again on the next one. ``duplicate:`` counts as accepted.
        After ``timeout`` seconds returns ``(False, "timeout: ...")``.
        """
        if self._stopping:
            raise LinkClosed(f"the link to {self.url} is stopped")
        pub = self._publishes.get(event.id)
        if pub is None:
            loop = asyncio.get_running_loop()
            pub = _Publish(f'["EVENT",{event.raw}]', loop.create_future())
            self._publishes[event.id] = pub
            self._send(pub.message)
        pub.waiters += 1
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(pub.result)
        except TimeoutError:
            return False, self._timeout_reason("no OK", timeout)
        finally:
            pub.waiters -= 1
            if pub.waiters == 0 and self._publishes.get(event.id) is pub:
                del self._publishes[event.id]

    async def query(self, filters: list[dict[str, Any]], timeout: float = 10.0) -> list[Event]:
        """The stored events matching ``filters``, newest first, up to the relay's ``EOSE``.

        Raises :class:`QueryRefused` when the relay answers ``CLOSED``, and
        ``TimeoutError`` when no ``EOSE`` comes within ``timeout`` seconds.
        """
        if self._stopping:
            raise LinkClosed(f"the link to {self.url} is stopped")
        sub_id = f"q:{next(self._query_ids)}"
        loop = asyncio.get_running_loop()
        query = _Query(list(filters), [parse_filter(f) for f in filters], loop.create_future())
        self._queries[sub_id] = query
        self._send(orjson.dumps(["REQ", sub_id, *filters]).decode())
        try:
            async with asyncio.timeout(timeout):
                await query.done
        except TimeoutError:
            raise TimeoutError(self._timeout_reason("no EOSE", timeout)) from None
        finally:
            del self._queries[sub_id]
            if not query.closed_by_relay:
                self._send(orjson.dumps(["CLOSE", sub_id]).decode())
        return sorted(query.events.values(), key=newest_first_key)

    def _timeout_reason(self, missing: str, timeout: float) -> str:
        if not self.connected:
            return f"timeout: not connected to {self.url} ({self._last_error or 'connecting'})"
        return f"timeout: {missing} from {self.url} within {timeout:g} s"

    # --- the connection -------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self._min_backoff
        while not self._stopping:
            opened_at: float | None = None
            try:
                async with self._dial() as ws:
                    opened_at = loop.time()
                    await self._session(ws)
                error = _close_reason(ws)
            except (OSError, WebSocketException) as exc:  # OSError covers TimeoutError
                error = _describe(exc)
            except Exception as exc:  # a bug of ours must not end the link for good
                log.exception("relay link %s failed", self.url)
                error = _describe(exc)
            finally:
                self._disconnected()
            if self._stopping:
                break
            if opened_at is not None and loop.time() - opened_at > STABLE_SECONDS:
                backoff = self._min_backoff
            delay = max(self._min_backoff, random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, self._max_backoff)
            # A relay that stays down is reported once, not at every attempt.
            repeated = opened_at is None and error == self._last_error
            log.log(
                logging.DEBUG if repeated else logging.WARNING,
                "relay %s: %s; retrying in %.2f s",
                self.url,
                error,
                delay,
            )
            self._last_error = error
            await asyncio.sleep(delay)

    def _dial(self) -> connect:
        return connect(
            self.url,
            open_timeout=self._connect_timeout,
            ping_interval=PING_INTERVAL,
            close_timeout=CLOSE_TIMEOUT,
            max_size=MAX_MESSAGE_SIZE,
            compression=None,  # Nostr messages are small: deflate costs more CPU than it saves
        )

    async def _session(self, ws: ClientConnection) -> None:
        self._connected(ws)
        writer = asyncio.create_task(self._write(ws), name=f"relay link writer {self.url}")
        try:
            async for data in ws:
                self._handle(data)
        finally:
            writer.cancel()
            await asyncio.wait([writer])

    async def _write(self, ws: ClientConnection) -> None:
        outbox = self._outbox
        try:
            while True:
                while outbox:
                    await ws.send(outbox.popleft())
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
        except ConnectionClosed:
            pass  # the reader sees the close as well and ends the session
        except Exception:
            log.exception("relay link %s could not send", self.url)
            await ws.close()

    def _connected(self, ws: ClientConnection) -> None:
        log.info("connected to relay %s", self.url)
        self._ws = ws
        self._auth_id, self._authed = None, False
        self._auth_retried.clear()
        self._after_auth.clear()
        self._outbox.clear()
        for sub_id, sub in self._subs.items():
            sub.refused = None
            self._send(self._req_message(sub_id, sub))
        for sub_id, query in self._queries.items():
            self._send(orjson.dumps(["REQ", sub_id, *query.filters]).decode())
        for pub in self._publishes.values():
            if not pub.result.done():
                self._send(pub.message)
        self._is_connected.set()

    def _disconnected(self) -> None:
        self._ws = None
        self._is_connected.clear()
        self._outbox.clear()

    def _send(self, message: str) -> None:
        # Nothing is queued while disconnected: _connected() sends everything still wanted.
        if self._ws is not None:
            self._outbox.append(message)
            self._outbox_ready.set()

    # --- messages from the relay ----------------------------------------------------

    def _handle(self, data: str | bytes) -> None:
        """Act on one message from the relay: deliver, settle, answer (NIP-01, NIP-42)."""
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.debug("relay %s sent something that is not JSON", self.url)
            return
        verb = message[0] if isinstance(message, list) and message else None
        handler = self._VERBS.get(verb) if isinstance(verb, str) else None
        if handler is None:
            log.debug("relay %s sent an unknown message: %.200s", self.url, data)
            return
        handler(self, message)

    def _on_event(self, message: list[Any]) -> None:
        if len(message) != 3 or not isinstance(message[1], str):
            log.debug("relay %s sent a malformed EVENT message", self.url)
            return
        sub_id = message[1]
        sub, query = self._subs.get(sub_id), self._queries.get(sub_id)
        if sub is None and query is None:
            log.debug("relay %s sent an event for unknown subscription %.64r", self.url, sub_id)
            return
        try:
            event = parse_event(message[2])
        except InvalidEvent as exc:
            log.debug("relay %s sent an invalid event: %s", self.url, exc)
            return
        # Duplicates are dropped before the signature check, the expensive step.
        if sub is not None and event.id not in sub.seen and self._trustworthy(event, sub.matchers):
            sub.seen.add(event.id)
            sub.newest = max(sub.newest or 0, event.created_at)
            self._call(sub.on_event, event, self.url)
        elif (
            query is not None
            and event.id not in query.events
            and self._trustworthy(event, query.matchers)
        ):
            query.events[event.id] = event

    def _trustworthy(self, event: Event, matchers: list[Filter]) -> bool:
        if not any(f.matches(event) for f in matchers):
            log.debug("relay %s sent event %s that matches none of the filters", self.url, event.id)
            return False
        if not verify_signature(event):
            log.debug("relay %s sent event %s with a bad signature", self.url, event.id)
            return False
        return True

    def _on_ok(self, message: list[Any]) -> None:
        if len(message) < 3 or not isinstance(message[1], str) or not isinstance(message[2], bool):
            log.debug("relay %s sent a malformed OK message", self.url)
            return
        event_id, accepted = message[1], message[2]
        reason = message[3] if len(message) > 3 and isinstance(message[3], str) else ""
        if event_id == self._auth_id:
            self._on_auth_answer(accepted, reason)
            return
        pub = self._publishes.get(event_id)
        if pub is None:
            return  # its publish() gave up waiting
        if (
            not accepted
            and reason.startswith("auth-required:")
            and self._retry_after_auth(("EVENT", event_id), message)
        ):
            return
        # Some relays answer false for an event they already hold.
        _settle(pub.result, (accepted or reason.startswith("duplicate:"), reason))

    def _on_eose(self, message: list[Any]) -> None:
        if len(message) < 2 or not isinstance(message[1], str):
            return
        sub, query = self._subs.get(message[1]), self._queries.get(message[1])
        if sub is not None and sub.on_eose is not None:
            self._call(sub.on_eose, self.url)
        elif query is not None:
            _settle(query.done)

    def _on_closed(self, message: list[Any]) -> None:
        if len(message) < 2 or not isinstance(message[1], str):
            return
        sub_id = message[1]
        reason = message[2] if len(message) > 2 and isinstance(message[2], str) else ""
        sub, query = self._subs.get(sub_id), self._queries.get(sub_id)
        if sub is None and query is None:
            return
        if reason.startswith("auth-required:") and self._retry_after_auth(("REQ", sub_id), message):
            return
        if sub is not None:
            log.warning("relay %s closed subscription %s: %s", self.url, sub_id, reason)
            sub.refused = reason
        elif query is not None:
            query.closed_by_relay = True
            _settle(query.done, error=QueryRefused(reason))

    def _on_notice(self, message: list[Any]) -> None:
        if len(message) >= 2 and isinstance(message[1], str):
            log.info("NOTICE from relay %s: %.500s", self.url, message[1])

    # --- NIP-42 ---------------------------------------------------------------------

    def _on_auth(self, message: list[Any]) -> None:
        if len(message) != 2 or not isinstance(message[1], str):
            log.debug("relay %s sent a malformed AUTH message", self.url)
            return
        if self._signer is None:
            log.debug("relay %s asks for AUTH; this link has no key", self.url)
            return
        tags = [["relay", self.url], ["challenge", message[1]]]
        event = self._signer.sign(AUTH_KIND, "", tags, created_at=int(time.time()))
        self._auth_id = event.id
        self._send(f'["AUTH",{event.raw}]')

    def _retry_after_auth(self, key: tuple[str, str], refusal: list[Any]) -> bool:
        """Arrange to send the refused EVENT or REQ ``key`` again once authenticated.

        False when we cannot authenticate or already retried it on this
        connection; the caller then takes the refusal as final.
        """
        if self._signer is None or key in self._auth_retried:
            return False
        self._auth_retried.add(key)
        if self._authed:  # it crossed our AUTH on the wire
            self._resend(key)
        else:  # our AUTH is on its way, or the challenge is
            self._after_auth.append((key, refusal))
        return True

    def _on_auth_answer(self, accepted: bool, reason: str) -> None:
        self._auth_id = None
        waiting, self._after_auth = self._after_auth, []
        if accepted:
            self._authed = True
            log.info("authenticated to relay %s", self.url)
            for key, _ in waiting:
                self._resend(key)
        else:
            log.warning("relay %s refused our AUTH: %s", self.url, reason)
            for _, refusal in waiting:  # already retried: now handled as final
                self._VERBS[refusal[0]](self, refusal)

    def _resend(self, key: tuple[str, str]) -> None:
        kind, ident = key
        pub, sub, query = (
            self._publishes.get(ident),
            self._subs.get(ident),
            self._queries.get(ident),
        )
        if kind == "EVENT" and pub is not None:
            self._send(pub.message)
        elif kind == "REQ" and sub is not None:
            self._send(self._req_message(ident, sub))
        elif kind == "REQ" and query is not None:
            self._send(orjson.dumps(["REQ", ident, *query.filters]).decode())

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("callback %r for relay %s raised", callback, self.url)

    _VERBS: ClassVar[dict[str, Callable[[RelayLink, list[Any]], None]]] = {
        "EVENT": _on_event,
        "OK": _on_ok,
        "EOSE": _on_eose,
        "CLOSED": _on_closed,
        "NOTICE": _on_notice,
        "AUTH": _on_auth,
    }


@dataclass(slots=True)
class _PoolSubscription:
    filters: list[dict[str, Any]]
    on_event: OnEvent
    on_eose: OnEose | None
    seen: _RecentIds

    def deliver(self, event: Event, relay_url: str) -> None:
        if self.seen.add(event.id):
            self.on_event(event, relay_url)


class RelayPool:
    """Several RelayLinks used as one: publish everywhere, subscribe everywhere, events deduplicated by id."""

    def __init__(
        self, urls: Iterable[str], *, signer: Signer | None = None, **link_options: float
    ) -> None:
        self._signer = signer
        self._link_options = link_options
        self.links: dict[str, RelayLink] = {}
        self._subs: dict[str, _PoolSubscription] = {}
        self._started = False
        for url in urls:
            self.add(url)

    async def start(self) -> None:
        self._started = True
        for link in self.links.values():
            await link.start()

    async def stop(self) -> None:
        self._started = False
        await asyncio.gather(*(link.stop() for link in self.links.values()))

    async def wait_connected(self, timeout: float) -> bool:
        """True when every link is connected within ``timeout`` seconds."""
        done = await asyncio.gather(*(link.wait_connected(timeout) for link in self.links.values()))
        return all(done)

    def add(self, url: str) -> RelayLink:
        """The link to ``url``, made (and started, if the pool is) when it is new."""
        link = self.links.get(url)
        if link is None:
            link = RelayLink(url, signer=self._signer, **self._link_options)
            self.links[url] = link
            for sub_id, sub in self._subs.items():
                link.subscribe(sub_id, sub.filters, sub.deliver, sub.on_eose)
            if self._started:
                link._launch()
        return link

    def subscribe(
        self,
        sub_id: str,
        filters: list[dict[str, Any]],
        on_event: OnEvent,
        on_eose: OnEose | None = None,
    ) -> None:
        """As :meth:`RelayLink.subscribe` on every link; ``on_event`` sees each event id once."""
        old = self._subs.get(sub_id)
        seen = old.seen if old is not None else _RecentIds(POOL_RECENT_IDS)
        sub = _PoolSubscription(list(filters), on_event, on_eose, seen)
        self._subs[sub_id] = sub
        for link in self.links.values():
            link.subscribe(sub_id, sub.filters, sub.deliver, on_eose)

    def unsubscribe(self, sub_id: str) -> None:
        if self._subs.pop(sub_id, None) is not None:
            for link in self.links.values():
                link.unsubscribe(sub_id)

    async def publish(
        self, event: Event, timeout: float = 10.0, urls: Iterable[str] | None = None
    ) -> dict[str, tuple[bool, str]]:
        """Publish to every link (or to ``urls``, adding links for new ones), in parallel."""
        if urls is None:
            links = list(self.links.values())
        else:
            links = [self.add(url) for url in dict.fromkeys(urls)]
        results = await asyncio.gather(*(_publish_one(link, event, timeout) for link in links))
        return {link.url: result for link, result in zip(links, results, strict=True)}

    async def query(self, filters: list[dict[str, Any]], timeout: float = 10.0) -> list[Event]:
        """Query every link in parallel; merged, deduplicated, newest first.

        A relay that fails or times out is skipped; raises the first failure
        only when every relay failed.
        """
        links = list(self.links.values())
        answers = await asyncio.gather(
            *(link.query(filters, timeout) for link in links), return_exceptions=True
        )
        merged: dict[str, Event] = {}
        failures: list[Exception] = []
        for link, answer in zip(links, answers, strict=True):
            if isinstance(answer, Exception):
                log.warning("query to relay %s failed: %s", link.url, _describe(answer))
                failures.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                merged.update((event.id, event) for event in answer)
        if links and len(failures) == len(links):
            raise failures[0]
        return sorted(merged.values(), key=newest_first_key)

    def status(self) -> list[dict[str, Any]]:
        return [
            {"url": link.url, "connected": link.connected, "last_error": link.last_error}
            for link in self.links.values()
        ]


async def _publish_one(link: RelayLink, event: Event, timeout: float) -> tuple[bool, str]:
    try:
        return await link.publish(event, timeout)
    except LinkClosed as exc:
        return False, f"error: {exc}"
