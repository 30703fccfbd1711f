"""The JSON API, authenticated per request with NIP-98 (``nips/nip98.py``).

    GET /api/agents      [{name, pubkey, kinds, price_msat, rank}]
    GET /api/jobs/{id}   the job record; only for its customer or an operator

A missing or bad ``Authorization: Nostr ...`` header is a 401 with
``WWW-Authenticate: Nostr`` and ``{"error": reason}``. The URL a client signs
is the one it reached: ``base_url`` plus the path and query.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dvm.store import JobRecord
from nips import nip98
from nips.nip01 import is_hex64
from web.auth import is_operator
from web.context import WebContext

CHALLENGE = {"WWW-Authenticate": nip98.SCHEME}

Endpoint = Callable[[Request, str], Awaitable[JSONResponse]]


def routes(ctx: WebContext) -> list[Route]:
    def authenticated(endpoint: Endpoint) -> Callable[[Request], Awaitable[JSONResponse]]:
        """The endpoint, called with the pubkey that signed the request's NIP-98 header."""

        async def checked(request: Request) -> JSONResponse:
            try:
                pubkey = nip98.check_http_auth(
                    request.headers.get("authorization"),
                    url=signed_url(ctx, request),
                    method=request.method,
                    now=time.time(),
                    body=await request.body() or None,
                )
            except nip98.Nip98Error as exc:
                return JSONResponse({"error": str(exc)}, status_code=401, headers=CHALLENGE)
            return await endpoint(request, pubkey)

        return checked

    async def agents(request: Request, pubkey: str) -> JSONResponse:
        return JSONResponse(_agents(ctx))

    async def job(request: Request, pubkey: str) -> JSONResponse:
        job_id = request.path_params["id"]
        record = await ctx.engine.store.get(job_id) if ctx.engine and is_hex64(job_id) else None
        if record is None:
            return JSONResponse({"error": f"no job {job_id}"}, status_code=404)
        if pubkey != record.customer and not is_operator(pubkey, ctx):
            return JSONResponse(
                {"error": "only the job's customer or an operator may see it"}, status_code=403
            )
        return JSONResponse(job_json(record))

    return [
        Route("/api/agents", authenticated(agents), methods=["GET"]),
        Route("/api/jobs/{id}", authenticated(job), methods=["GET"]),
    ]


def signed_url(ctx: WebContext, request: Request) -> str:
    """The absolute URL the client reached (behind a proxy too): base_url, path, query."""
    query = request.url.query
    return ctx.base_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


def _agents(ctx: WebContext) -> list[dict[str, Any]]:
    if ctx.engine is None:
        return []
    return [
        {
            "name": agent.name,
            "pubkey": agent.pubkey,
            "kinds": sorted(agent.handlers),
            "price_msat": agent.config.price_msat,
            "rank": ctx.reputation.rank(agent.pubkey) if ctx.reputation else None,
        }
        for agent in ctx.engine.agents
    ]


def job_json(record: JobRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "kind": record.kind,
        "customer": record.customer,
        "agent": record.agent,
        "state": record.state.value,
        "request": orjson.loads(record.request),
        "price_msat": record.price_msat,
        "reason": record.reason,
        "seen_at": record.seen_at,
        "updated_at": record.updated_at,
    }
