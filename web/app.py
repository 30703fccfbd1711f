"""The node's web app (Starlette): LNURL-pay and zaps for now; the client pages join later.

Served by uvicorn inside ``timmy run`` (``node.app.WebPart``). Each route group
is a module in ``web/routes/``; ``create_app`` only assembles them.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.zaps import Zaps
from web.routes import lnurl

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_app(*, zaps: Zaps | None, metrics: Callable[[], bytes] | None = None) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def prometheus(request: Request) -> Response:
        return Response(metrics() if metrics else b"", media_type=METRICS_TYPE)

    routes = [Route("/health", health), Route("/metrics", prometheus)]
    if zaps is not None:
        routes += lnurl.routes(zaps)
    return Starlette(routes=routes)
