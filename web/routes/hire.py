"""Hiring an agent from the browser: the customer's side of NIP-90, in the page.

    GET  /hire        the form: a capability (agent and kind), the input text, a bid
    POST /hire/pay    pay a job's invoice with the node's dev wallet (not real money)
    GET  /qr?data=    a QR code as SVG, for invoices shown by ``hire.js``

The page only renders the form; ``web/static/hire.js`` signs the request with
the user's NIP-07 extension and talks to the node's relay itself, as any Nostr
client would. The server never signs for the user. ``/hire/pay`` exists so a
demo can be paid end to end: it is open only with the dev wallet, to a
logged-in user, with the session's CSRF token.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
import segno
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from node.wallet import WalletError
from web import auth
from web.context import WebContext
from web.routes.pages import price, sats
from web.templates import render

if TYPE_CHECKING:
    from dvm.agents import Agent
    from nips.nip89 import HandlerInfo

MAX_QR_DATA = 2_000  # characters; a BOLT11 invoice is well under 1,000
MAX_PAY_BODY = 4_096  # bytes of JSON: {"bolt11": "..."}
SVG = "image/svg+xml"


def routes(ctx: WebContext) -> list[Route]:
    async def hire_page(request: Request) -> HTMLResponse:
        wallet = ctx.wallet
        return render(
            "hire.html",
            **auth.page_context(request, ctx),
            relay_url=ctx.relay_url,
            capabilities=(
                _capabilities(ctx.engine.agents) + await _federation_capabilities(ctx) if ctx.engine else None
            ),
            dev_wallet=wallet is not None and not wallet.real_money,
        )

    async def pay(request: Request) -> JSONResponse:
        await auth.require_csrf(request, ctx)  # 403 when logged out or without the token
        wallet = ctx.wallet
        if wallet is None:
            return _error(503, "this node has no wallet")
        if wallet.real_money:
            return _error(403, "only the dev wallet pays from this page: pay with your own wallet")
        bolt11 = _bolt11_of(await request.body())
        if bolt11 is None:
            return _error(400, 'send JSON {"bolt11": "<invoice>"}')
        try:
            payment = await wallet.pay(bolt11)
        except WalletError as exc:
            return _error(400, str(exc))
        return JSONResponse({"paid_msat": payment.amount_msat})

    async def qr(request: Request) -> Response:
        data = request.query_params.get("data", "")
        if not data:
            return _error(400, "give the text to encode as ?data=")
        if len(data) > MAX_QR_DATA:
            return _error(413, f"data is longer than {MAX_QR_DATA:,} characters")
        return Response(qr_svg(data), media_type=SVG, headers={"Cache-Control": "max-age=3600"})

    return [
        Route("/hire", hire_page, methods=["GET"]),
        Route("/hire/pay", pay, methods=["POST"]),
        Route("/qr", qr, methods=["GET"]),
    ]


def qr_svg(data: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(data, error="m").save(buffer, kind="svg", scale=4, dark="#000", light="#fff")
    return buffer.getvalue()


def _capabilities(agents: Sequence[Agent]) -> list[dict[str, Any]]:
    """One choice per (agent, kind) it serves now; kinds it cannot serve are left out."""
    return [
        {
            "value": f"{agent.name}:{kind}",
            "agent": agent.name,
            "pubkey": agent.pubkey,
            "kind": kind,
            "title": handler.title,
            "price": price(agent),
        }
        for agent in agents
        for kind, handler in sorted(agent.handlers.items())
    ]


async def _federation_capabilities(ctx: WebContext) -> list[dict[str, Any]]:
    """Agents of other nodes and providers, from the NIP-89 announcements on the relays we read.

    Each comes with the relay its announcement names, where the browser sends
    the request; one we cannot reach from a browser (no ws:// or wss://) is left out.
    """
    from nips.nip89 import HANDLER_KIND, parse_handler

    if ctx.links is None or ctx.engine is None:
        return []
    ours = {a.pubkey for a in ctx.engine.agents}
    try:
        found = await ctx.links.query([{"kinds": [HANDLER_KIND], "limit": 500}], timeout=2.0)
    except Exception:  # the relays did not answer: offer this node's agents only
        return []
    choices: dict[tuple[str, int], dict[str, Any]] = {}
    for info in filter(None, map(parse_handler, found)):
        relay = next((r for r in info.relays if r.startswith(("ws://", "wss://"))), "")
        if info.pubkey in ours or not relay:
            continue
        for kind in info.kinds:
            choices.setdefault((info.pubkey, kind), {
                "value": f"{info.pubkey[:16]}:{kind}",
                "agent": info.name or info.pubkey[:12], "pubkey": info.pubkey, "kind": kind,
                "title": info.about, "price": _announced_price(info), "relay": relay,
            })
    return sorted(choices.values(), key=lambda c: (c["kind"], c["agent"]))


def _announced_price(info: HandlerInfo) -> str:
    """The price an announcement gives, in the words ``pages.price`` uses for our own agents."""
    if info.price_msat is None:
        return "price not announced"
    parts = [f"{sats(info.price_msat)} per job"] if info.price_msat else []
    if info.price_per_kb_msat:
        parts.append(f"{sats(info.price_per_kb_msat)} per started KiB of input")
    return " + ".join(parts) or "free"


def _bolt11_of(body: bytes) -> str | None:
    if len(body) > MAX_PAY_BODY:
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    bolt11 = payload.get("bolt11") if isinstance(payload, dict) else None
    return bolt11.strip() if isinstance(bolt11, str) and bolt11.strip() else None


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)
