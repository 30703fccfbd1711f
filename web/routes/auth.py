"""Logging in and out with a NIP-07 extension, and the operator page (``web/auth.py`` has the rules).

    GET  /login         the login page (``login.html`` + ``/static/login.js``)
    POST /login/nonce   {"nonce": ...}: a challenge for the login event
    POST /login         body: the signed kind 27235 event -> {"pubkey": ...} and the session cookie
    POST /logout        CSRF-checked; clears the cookie, 303 to /
    GET  /operator      the node's agents, for the keys in ``[web] operators``
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from dvm.jobs import State
from web import auth
from web.context import WebContext
from web.templates import render

MAX_LOGIN_BYTES = 16_384  # a login event is well under 1 KiB
NO_STORE = {"Cache-Control": "no-store"}

def routes(ctx: WebContext) -> list[Route]:
    nonces = auth.Nonces()
    app_origin = auth.origin_of(ctx.base_url)

    async def login_page(request: Request) -> Response:
        return render("login.html", login_url=auth.login_url(ctx.base_url), **auth.page_context(request, ctx))

    async def nonce(request: Request) -> JSONResponse:
        return JSONResponse({"nonce": nonces.issue(time.time())}, headers=NO_STORE)

    async def login(request: Request) -> JSONResponse:
        origin = request.headers.get("origin")
        if origin is not None and origin.lower() != app_origin:
            return _refused(f"wrong origin {origin}: log in from {app_origin}", 403)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            # Also keeps cross-site forms out: they cannot send JSON without a CORS preflight.
            return _refused("send the signed login event as application/json", 400)
        body = await request.body()
        if len(body) > MAX_LOGIN_BYTES:
            return _refused("login request is too large", 400)
        now = time.time()
        try:
            pubkey = auth.check_login(body, nonces=nonces, origin=ctx.base_url, now=now)
        except auth.LoginRefused as exc:
            return _refused(exc.reason, exc.status_code)
        response = JSONResponse({"pubkey": pubkey}, headers=NO_STORE)
        cookie = auth.session_cookie(auth.make_session(pubkey, ctx.session_secret, now), secure=ctx.secure)
        response.headers.append("set-cookie", cookie)
        return response

    async def logout(request: Request) -> Response:
        await auth.require_csrf(request, ctx)
        response = RedirectResponse("/", status_code=303)
        response.headers.append("set-cookie", auth.clear_session_cookie(secure=ctx.secure))
        return response

    async def operator(request: Request) -> Response:
        page = auth.page_context(request, ctx)
        if page["user"] is None:
            return RedirectResponse("/login", status_code=303)
        if not auth.is_operator(page["user"], ctx):
            refused = "Only the node's operators may see this page. Your key is not in [web] operators."
            return render("operator.html", 403, refused=refused, agents=[], refunds=[], failures=[], **page)
        refunds, failures = [], []
        if ctx.engine is not None:
            ledger = await ctx.engine.store.ledger()
            refunds = [(agent, states["refund_owed"]) for agent, states in sorted(ledger.items())
                       if states.get("refund_owed")]
            failures = await ctx.engine.store.recent(State.FAILED, limit=20)
        response = render("operator.html", refused="", agents=_agents(ctx), refunds=refunds, failures=failures,
                          **page)
        response.headers.update(NO_STORE)
        return response

    async def operator_change(request: Request) -> Response:
        """Pause, resume or reprice an agent (a form on the operator page)."""
        await auth.require_csrf(request, ctx)
        user = auth.current_user(request, ctx)
        if not auth.is_operator(user, ctx):
            return PlainTextResponse("only the node's operators may change agents", status_code=403)
        if ctx.engine is None:
            return PlainTextResponse("the job engine is not running", status_code=503)
        name = request.path_params["name"]
        fields = parse_qs((await request.body())[:4096].decode(errors="replace"))
        action = next(iter(fields.get("action", ())), "")
        try:
            if action in ("pause", "resume"):
                await ctx.engine.set_paused(name, action == "pause")
            elif action == "price":
                text = next(iter(fields.get("price_sats", ())), "").strip()
                if not (text.isascii() and text.isdigit()) or len(text) > 12:
                    return PlainTextResponse("price: a whole number of sats, please", status_code=400)
                await ctx.engine.set_price(name, int(text) * 1000)
            else:
                return PlainTextResponse(f"unknown action {action[:20]!r}", status_code=400)
        except KeyError:
            return PlainTextResponse(f"no agent named {name[:40]!r}", status_code=404)
        return RedirectResponse("/operator", status_code=303)

    return [
        Route("/operator/agents/{name}", operator_change, methods=["POST"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login/nonce", nonce, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/operator", operator, methods=["GET"]),
    ]


def _agents(ctx: WebContext) -> list[dict[str, object]]:
    if ctx.engine is None:
        return []
    return [
        {
            "name": agent.name,
            "pubkey": agent.pubkey,
            "price_msat": agent.config.price_msat,
            "per_kb_msat": agent.config.price_per_kb_msat,
            "kinds": sorted(agent.handlers),
            "paused": agent.paused,
            "unavailable": sorted(agent.unavailable.items()),
        }
        for agent in ctx.engine.agents
    ]


def _refused(reason: str, status: int) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=NO_STORE)
