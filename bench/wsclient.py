"""A minimal RFC 6455 websocket client for load generation.

The ``websockets`` library spends tens of microseconds per message on futures,
queues and UTF-8 checks; a benchmark client sharing two cores with the relay
cannot afford that. This client is an :class:`asyncio.Protocol`: outgoing
messages are framed once, ahead of time (:func:`text_frame`), and incoming
frames are split in :meth:`Connection.data_received` and handed to
:meth:`Connection.on_message` as raw bytes, with no per-message task switch.

What it leaves out on purpose: extensions (no permessage-deflate is offered),
TLS, and random masking keys. RFC 6455 section 5.3 requires client frames to be
masked; a frame masked with the key ``00 00 00 00`` is a valid masked frame
whose payload bytes are unchanged, which lets frames be built once and reused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
from typing import TypeVar

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_ZERO_MASK = b"\x00\x00\x00\x00"


class HandshakeFailed(ConnectionError):
    """Raised when the server does not answer the opening handshake with 101 and the right accept key."""


def frame(payload: bytes, opcode: int = 1) -> bytes:
    """One final, masked (zero key) client frame (RFC 6455 section 5.2)."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        header = bytes((first, 0x80 | n))
    elif n < 65536:
        header = bytes((first, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + _ZERO_MASK + payload


def text_frame(payload: bytes) -> bytes:
    return frame(payload, 1)


class Connection(asyncio.Protocol):
    """One websocket connection; subclasses override :meth:`on_message`.

    ``quickack``: acknowledge every TCP segment at once (Linux ``TCP_QUICKACK``)
    instead of delaying ACKs. Only for diagnosis: it hides the ~40 ms stall a
    server that writes many small frames without ``TCP_NODELAY`` causes with any
    ordinary client.
    """

    quickack = False

    def __init__(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._handshake = b""
        self._buffer = b""
        self._fragments: list[bytes] = []
        self._accept = b""
        self.close_frame: bytes | None = None  # the relay's close frame payload, if it sent one

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        key = base64.b64encode(os.urandom(16))
        self._accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.send(
            b"GET / HTTP/1.1\r\n"
            b"Host: " + f"{self.host}:{self.port}".encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(
                exc or HandshakeFailed("connection closed during the handshake")
            )
        if not self.closed.done():
            self.closed.set_result(None)
        self.on_close()

    def data_received(self, data: bytes) -> None:
        if self.quickack:
            sock = self.transport.get_extra_info("socket") if self.transport else None
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if not self.opened.done():
            data = self._read_handshake(data)
            if not data:
                return
        buf = self._buffer + data if self._buffer else data
        end = len(buf)
        pos = 0
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            stop = start + length
            if stop > end:
                break
            self._frame_received(b0, buf[start:stop])
            pos = stop
        self._buffer = buf[pos:]

    # -- frames ---------------------------------------------------------------

    def _read_handshake(self, data: bytes) -> bytes:
        self._handshake += data
        head, sep, rest = self._handshake.partition(b"\r\n\r\n")
        if not sep:
            return b""
        lines = head.split(b"\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])
        }
        if (
            lines[0].split(b" ")[1:2] != [b"101"]
            or headers.get(b"sec-websocket-accept") != self._accept
        ):
            self.opened.set_exception(HandshakeFailed(lines[0].decode(errors="replace")))
            assert self.transport is not None
            self.transport.close()
            return b""
        self.opened.set_result(None)
        return rest

    def _frame_received(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        final = b0 & 0x80
        if opcode in (1, 2):
            if final:
                self.on_message(payload)
            else:
                self._fragments = [payload]
        elif opcode == 0:
            self._fragments.append(payload)
            if final:
                message, self._fragments = b"".join(self._fragments), []
                self.on_message(message)
        elif opcode == 9:  # ping
            self.send(frame(payload, 10))
        elif opcode == 8:  # close: echo the status code and drop the connection
            self.close_frame = payload
            self.send(frame(payload[:2], 8))
            assert self.transport is not None
            self.transport.close()

    # -- API --------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write one or more pre-built frames."""
        assert self.transport is not None
        self.transport.write(data)

    def describe_close(self) -> str | None:
        """Why the connection is closed, when it is: the relay's close code and reason."""
        if not self.closed.done():
            return None
        if self.close_frame is None:
            return "TCP closed without a close frame"
        code = int.from_bytes(self.close_frame[:2], "big") if len(self.close_frame) >= 2 else None
        return f"close {code} {self.close_frame[2:].decode(errors='replace')}".strip()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(b"\x03\xe8", 8))
            self.transport.close()

    def on_message(self, payload: bytes) -> None:
        """Called with each complete text or binary message."""

    def on_close(self) -> None:
        """Called once when the TCP connection is gone."""


C = TypeVar("C", bound=Connection)


async def connect(factory: type[C], host: str, port: int, timeout: float = 10.0) -> C:
    """Open a connection built by ``factory(host, port)`` and wait for the handshake."""
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: factory(host, port), host, port), timeout
    )
    await asyncio.wait_for(conn.opened, timeout)
    return conn


async def connect_many(
    factory: type[C], host: str, port: int, n: int, parallel: int = 50
) -> list[C]:
    """Open ``n`` connections, at most ``parallel`` handshakes at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one() -> C:
        async with gate:
            return await connect(factory, host, port)

    return list(await asyncio.gather(*(one() for _ in range(n))))


def message_type(payload: bytes) -> bytes:
    """The first element of a relay message (``b"EVENT"``, ``b"OK"``, ``b"EOSE"``...) without parsing JSON."""
    start = payload.find(b'"') + 1
    return payload[start : payload.find(b'"', start)]
