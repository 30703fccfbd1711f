"""Blossom: the node's blob store (``node/blobs.py``) over HTTP, at the root of the domain.

    PUT     /upload             store the body; a kind 24242 ``upload`` token   201 new, 200 known
    HEAD    /upload             BUD-06: would that upload be taken?             200 or the PUT's error
    GET     /<sha256>[.ext]     the blob, with Range requests                   200, 206, 416
    HEAD    /<sha256>[.ext]     its headers only                                200
    DELETE  /<sha256>[.ext]     forget the signer's upload; ``delete`` token    204
    GET     /list/<pubkey>      its uploads, newest first (cursor, limit, since, until)

Specs: ``shared/specs/other/blossom-bud-01.md`` (retrieval, CORS, errors),
``blossom-bud-02.md`` (upload, descriptor); tokens are BUD-11
(``nips/blossom.py``), list and delete BUD-12, ``HEAD /upload`` BUD-06.

Every response carries ``Access-Control-Allow-Origin: *`` and every error an
``X-Reason`` (BUD-01 "Cross origin headers", "Error responses"). Reading is
open to all; uploads need a token, and a key in ``ctx.blob_uploaders`` when
that is not empty. Blob paths are matched strictly enough (32+ hex characters
first) that they never shadow the node's pages.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from starlette.convertors import Convertor, register_url_convertor
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nips import blossom
from nips.nip01 import is_hex64
from node.blobs import BLOB_NAME, BlobError, BlobStore, normal_type
from web.context import WebContext

MAX_PAGE = 1_000  # descriptors per /list answer; clients page on with `cursor`
MAX_REASON = 300  # characters of X-Reason: tag values quoted back are the client's
# Blobs are immutable by name, so caches may keep them.
CACHE = "public, max-age=31536000, immutable"
# Uploads are anyone's bytes served from the node's own origin: an HTML or SVG
# blob must not run script next to the login cookie, nor be sniffed into one.
UNTRUSTED = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}
PREFLIGHT = {
    "Access-Control-Allow-Headers": "Authorization, *",
    "Access-Control-Allow-Methods": "GET, HEAD, PUT, DELETE",
    "Access-Control-Max-Age": "86400",
}
# Without this a browser app cannot read why it was refused.
EXPOSED = "X-Reason, Content-Length, Content-Range, Accept-Ranges"
# Routed to the endpoint, which answers 405 itself for those it does not serve.
EVERY_METHOD = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "POST", "PATCH"]

Endpoint = Callable[[Request], Awaitable[Response]]
Method = Callable[[Request, BlobStore], Awaitable[Response]]


class Refused(Exception):
    """Raised by an endpoint to answer an error: its status and the X-Reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BlobPathConvertor(Convertor[str]):
    """A path segment that is meant as a blob: 32+ hex characters, then anything.

    Loose on purpose: a malformed hash is still ours to answer with 400; the
    endpoint checks for exactly 64 lowercase hex and an optional extension.
    """

    regex = r"[0-9A-Fa-f]{32,}[^/]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("blossom_blob", BlobPathConvertor())


def routes(ctx: WebContext) -> list[Route]:
    store = ctx.blobs
    if store is None:
        return []
    domain = (urlsplit(ctx.base_url).hostname or "").lower() or None

    def authorize(request: Request, verb: str, sha256: str | None) -> blossom.Authorization:
        """The request's checked token (401), and for uploads the server's key list (403)."""
        try:
            auth = blossom.check_authorization(
                request.headers.get("authorization"),
                verb=verb,
                now=time.time(),
                domain=domain,
                sha256=sha256,
            )
        except blossom.AuthRefused as exc:
            raise Refused(401, str(exc)) from None
        if verb == "upload" and ctx.blob_uploaders and auth.pubkey not in ctx.blob_uploaders:
            raise Refused(403, "this server takes uploads only from the keys it lists")
        return auth

    async def upload(request: Request, store: BlobStore) -> Response:
        length = _integer(request.headers.get("content-length"), "Content-Length")
        if length is not None:
            _fits(store, length)
        expected = _sha256_header(request)
        auth = authorize(request, "upload", expected)
        sha256, tmp = await _receive(request, store)
        try:
            if expected is not None and sha256 != expected:
                raise Refused(409, f"X-SHA-256 is {expected} but the body hashes to {sha256}")
            try:
                auth.check_blob(sha256)  # the x tags, now that the hash is known
            except blossom.AuthRefused as exc:
                raise Refused(401, str(exc)) from None
            mime = normal_type(request.headers.get("content-type"))
            # put_file fsyncs the whole body: a worker thread, not the event loop.
            blob, new = await asyncio.to_thread(store.put_file, tmp, sha256, mime, auth.pubkey)
        except BlobError as exc:
            raise Refused(413, str(exc)) from None
        finally:
            tmp.unlink(missing_ok=True)  # gone already when stored
        return JSONResponse(store.descriptor(blob), status_code=201 if new else 200)

    async def upload_check(request: Request, store: BlobStore) -> Response:
        """BUD-06: the PUT's checks, on the X-SHA-256 and X-Content-Length it announces."""
        length = _integer(request.headers.get("x-content-length"), "X-Content-Length")
        if length is None:
            raise Refused(411, "missing X-Content-Length header")
        _fits(store, length)
        sha256 = _sha256_header(request)
        if sha256 is None:
            raise Refused(400, "missing X-SHA-256 header")
        authorize(request, "upload", sha256)
        return Response(status_code=200)

    async def get_blob(request: Request, store: BlobStore) -> Response:
        sha256 = _blob_path(request.path_params["name"])
        found = store.get(sha256)
        if found is None:
            raise Refused(404, f"blob {sha256} not found")
        # FileResponse answers HEAD, Range (206) and bad ranges (416) itself.
        headers = {"Cache-Control": CACHE, **UNTRUSTED}
        return FileResponse(store.path(sha256), media_type=found.type, headers=headers)

    async def delete(request: Request, store: BlobStore) -> Response:
        sha256 = _blob_path(request.path_params["name"])
        auth = authorize(request, "delete", sha256)
        if store.get(sha256) is None:
            raise Refused(404, f"blob {sha256} not found")
        if not store.delete(sha256, auth.pubkey):
            raise Refused(403, "this key did not upload that blob")
        return Response(status_code=204)

    async def listing(request: Request, store: BlobStore) -> Response:
        pubkey = request.path_params["pubkey"]
        if not is_hex64(pubkey):
            raise Refused(400, "the pubkey must be 64 lowercase hex characters")
        query = request.query_params
        since = _integer(query.get("since"), "since")
        until = _integer(query.get("until"), "until")
        limit = min(_integer(query.get("limit"), "limit") or MAX_PAGE, MAX_PAGE)
        blobs = store.list(pubkey, since, until)
        cursor = query.get("cursor")
        if cursor:  # BUD-12: the page after that blob, without it
            names = [b.sha256 for b in blobs]
            if cursor not in names:
                raise Refused(400, "cursor is not one of this pubkey's blobs")
            blobs = blobs[names.index(cursor) + 1 :]
        return JSONResponse([store.descriptor(b) for b in blobs[:limit]])

    def route(path: str, methods: dict[str, Method]) -> Route:
        endpoint = answering(store, methods)
        return Route(path, endpoint, methods=EVERY_METHOD, middleware=[Middleware(CrossOrigin)])

    return [
        route("/upload", {"PUT": upload, "HEAD": upload_check}),
        route("/list/{pubkey}", {"GET": listing, "HEAD": listing}),
        route("/{name:blossom_blob}", {"GET": get_blob, "HEAD": get_blob, "DELETE": delete}),
    ]


def answering(store: BlobStore, methods: dict[str, Method]) -> Endpoint:
    """One path's endpoint: dispatch on the method, answer preflights, turn :class:`Refused` into a response.

    The route takes every method, so that even a 405 is ours, with CORS and a reason.
    """
    allow = ", ".join(methods)

    async def answer(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=PREFLIGHT)
        method = methods.get(request.method)
        try:
            if method is None:
                raise Refused(405, f"{request.method} is not allowed here (allowed: {allow})")
            return await method(request, store)
        except Refused as exc:
            response = _error(exc.status, exc.reason)
            if exc.status == 405:
                response.headers["Allow"] = allow
            return response

    return answer


class CrossOrigin:
    """BUD-01 "Cross origin headers": ``Access-Control-Allow-Origin: *`` on every response.

    ASGI middleware rather than a header per response, so answers made
    inside FileResponse (416, a malformed Range) carry it too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", b"*"),
                    (b"access-control-expose-headers", EXPOSED.encode()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)


async def _receive(request: Request, store: BlobStore) -> tuple[str, Path]:
    """The body streamed to a temporary file under the store, hashed on the way: (sha256, path).

    The limit is enforced while streaming too: a chunked body has no
    Content-Length to refuse early.
    """
    fd, tmp = store.temp_file()
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                _fits(store, size)
                digest.update(chunk)
                out.write(chunk)
    except ClientDisconnect:
        tmp.unlink(missing_ok=True)
        raise Refused(400, "the upload was interrupted") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest.hexdigest(), tmp


def _fits(store: BlobStore, size: int) -> None:
    if size > store.max_bytes:
        raise Refused(413, f"blob too large: the limit is {store.max_bytes} bytes")


def _integer(value: str | None, name: str) -> int | None:
    """A non-negative integer header or query parameter; None when absent, 400 when malformed."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdecimal()) or len(value) > 18:
        raise Refused(400, f"{name} must be a non-negative integer")
    return int(value)


def _sha256_header(request: Request) -> str | None:
    value = request.headers.get("x-sha-256")
    if value is not None and not is_hex64(value):
        raise Refused(400, "X-SHA-256 must be 64 lowercase hex characters")
    return value


def _blob_path(name: str) -> str:
    """The sha256 of ``/<sha256>[.ext]`` (BUD-01 "GET /sha256"); 400 when malformed."""
    match = BLOB_NAME.fullmatch(name)
    if match is None:
        raise Refused(
            400, "the path must be a sha256 in 64 lowercase hex characters, then an optional .ext"
        )
    return match.group(1)


def _error(status: int, reason: str) -> Response:
    # Header values are Latin-1; a reason quoting a client's tag may not be.
    printable = "".join(c if " " <= c <= "~" else "?" for c in reason)[:MAX_REASON]
    headers = {"X-Reason": printable}
    if status == 401:  # RFC 9110 section 11.6.1: a 401 names the scheme it wants
        headers["WWW-Authenticate"] = "Nostr"
    return Response(printable, status_code=status, media_type="text/plain", headers=headers)
