"""The node's web app (Starlette), served by uvicorn inside ``timmy run`` (``node.app.WebPart``).

Each route group is a module in ``web/routes/`` exposing ``routes(ctx)``;
``create_app`` only assembles them around one :class:`web.context.WebContext`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from web.context import WebContext
from web.routes import lnurl

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATIC = __file__.rsplit("/", 1)[0] + "/static"


def create_app(ctx: WebContext) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def prometheus(request: Request) -> Response:
        return Response(ctx.metrics() if ctx.metrics else b"", media_type=METRICS_TYPE)

    routes: list[Route | Mount] = [Route("/health", health), Route("/metrics", prometheus)]
    if ctx.zaps is not None:
        routes += lnurl.routes(ctx.zaps)
    for name in ("nip05", "auth", "api", "pages", "hire", "federation", "blossom"):
        module = _optional(name)
        if module is not None:
            routes += module.routes(ctx)
    routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    return Starlette(routes=routes)


def _optional(name: str):  # type: ignore[no-untyped-def]
    """Route groups land one by one; a missing module is a group not built yet."""
    import importlib

    try:
        return importlib.import_module(f"web.routes.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"web.routes.{name}":
            raise
        return None
