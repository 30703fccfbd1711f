"""LNURL-pay for every agent (LUD-06, LUD-16) with NIP-57 zaps: the HTTP shell of ``node.zaps``.

    GET /.well-known/lnurlp/<agent>              the payRequest (allowsNostr, nostrPubkey)
    GET /lnurlp/<agent>/callback?amount=&nostr=  an invoice: {"pr": "lnbc...", "routes": []}

Errors are LNURL's ``{"status": "ERROR", "reason": ...}`` with a 4xx status.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from node.zaps import LnurlError, Zaps

CORS = {"Access-Control-Allow-Origin": "*"}  # LNURL is fetched by web wallets from any origin


def routes(zaps: Zaps) -> list[Route]:
    async def pay_request(request: Request) -> JSONResponse:
        try:
            return JSONResponse(zaps.pay_request(request.path_params["agent"]), headers=CORS)
        except LnurlError as exc:
            return _error(str(exc), 404)

    async def callback(request: Request) -> JSONResponse:
        query = request.query_params
        try:
            answer = await zaps.callback(request.path_params["agent"], query.get("amount"), query.get("nostr"))
        except LnurlError as exc:
            status = 404 if str(exc).startswith("no agent") else 400
            return _error(str(exc), status)
        return JSONResponse(answer, headers=CORS)

    return [
        Route("/.well-known/lnurlp/{agent}", pay_request),
        Route("/lnurlp/{agent}/callback", callback),
    ]


def _error(reason: str, status: int) -> JSONResponse:
    return JSONResponse({"status": "ERROR", "reason": reason}, status_code=status, headers=CORS)
