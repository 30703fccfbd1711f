"""NIP-05: the node's agents as ``name@domain`` identifiers (``shared/specs/nips/05.md``).

    GET /.well-known/nostr.json?name=<local-part>

Answers ``{"names": {name: hex pubkey}, "relays": {hex pubkey: [relay urls]}}``:
every agent without ``name``, that one agent with it, ``{"names": {}}`` for a
name the node does not have. The relays are the ones the agents announce in
their NIP-65 lists. Served with ``Access-Control-Allow-Origin: *`` (spec
section "Allowing access from JavaScript apps") and never a redirect.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from web.context import WebContext

CORS = {"Access-Control-Allow-Origin": "*"}


def routes(ctx: WebContext) -> list[Route]:
    async def nostr_json(request: Request) -> JSONResponse:
        return JSONResponse(names(ctx, request.query_params.get("name")), headers=CORS)

    return [Route("/.well-known/nostr.json", nostr_json)]


def names(ctx: WebContext, name: str | None) -> dict[str, Any]:
    """The ``nostr.json`` document for ``name`` (every agent when None)."""
    engine = ctx.engine
    if engine is None:
        return {"names": {}}
    agents = [a for a in engine.agents if name is None or a.name == name.lower()]
    if not agents:
        return {"names": {}}
    relays = engine.relays()
    return {
        "names": {agent.name: agent.pubkey for agent in agents},
        "relays": {agent.pubkey: list(relays) for agent in agents},
    }
