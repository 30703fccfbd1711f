"""The federation as the node's relays show it: Timmy nodes, their agents, recent jobs.

    GET /federation.json  nodes and their agents (NIP-89), job edges of the last 24 h, relays
    GET /federation       the same as tables, plus an SVG drawing (``federation.js``)

Everything comes from ``ctx.links`` (the relays the node reads): kind 31990
announcements group agents by the Timmy node they name; providers naming no
node go under "other providers". Jobs are NIP-90 results (6000-6999) by the
known agents and kind 7000 feedback by anyone, reduced to customer -> agent
edges counted in distinct job requests. Only public events are read: nothing
here is secret.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from nips.nip01 import Event
from nips.nip89 import HANDLER_KIND, HandlerInfo, parse_handler
from web import auth
from web.context import WebContext
from web.routes.pages import sats
from web.templates import render

WINDOW = 86_400  # seconds of jobs shown
QUERY_TIMEOUT = 5.0
OTHER = "other providers"
RESULT_KINDS = range(6000, 7000)
FEEDBACK_KIND = 7000


def routes(ctx: WebContext) -> list[Route]:
    async def as_json(request: Request) -> Response:
        data = await federation(ctx)
        status = 200 if data["available"] else 503
        return Response(orjson.dumps(data), status_code=status, media_type="application/json")

    async def page(request: Request) -> HTMLResponse:
        data = await federation(ctx)
        names = {a["pubkey"]: a["name"] for n in data["nodes"] for a in n["agents"]}
        per_agent: dict[str, int] = defaultdict(int)
        for edge in data["jobs"]:
            per_agent[edge["agent"]] += edge["jobs"]
        job_rows = [
            {"agent": agent, "name": names.get(agent, ""), "jobs": n}
            for agent, n in sorted(per_agent.items(), key=lambda item: (-item[1], item[0]))
        ]
        return render(
            "federation.html",
            200 if data["available"] else 503,
            **auth.page_context(request, ctx),
            data=data,
            job_rows=job_rows,
            sats=sats,
        )

    return [Route("/federation.json", as_json), Route("/federation", page)]


async def federation(ctx: WebContext, now: int | None = None) -> dict[str, Any]:
    """The federation as plain data (what ``/federation.json`` serves)."""
    now = int(time.time()) if now is None else now
    data: dict[str, Any] = {
        "available": ctx.links is not None,
        "this_node": ctx.node_pubkey,
        "generated_at": now,
        "window": WINDOW,
        "nodes": [],
        "jobs": [],
        "relays": [],
        "error": "",
    }
    pool = ctx.links
    if pool is None:
        data["error"] = "the node reads no relays"
        return data
    data["relays"] = [
        {"url": r["url"], "connected": bool(r["connected"]), "last_error": r["last_error"] or ""}
        for r in pool.status()
    ]
    try:
        announcements = await pool.query([{"kinds": [HANDLER_KIND], "limit": 1000}], QUERY_TIMEOUT)
    except Exception as exc:  # every relay failed: say so, do not show an empty federation as data
        data["available"] = False
        data["error"] = f"no relay answered: {type(exc).__name__}"
        return data
    agents = _agents(announcements)
    data["nodes"] = _nodes(agents, ctx.node_pubkey)
    since = now - WINDOW
    filters: list[dict[str, Any]] = [{"since": since, "kinds": [FEEDBACK_KIND], "limit": 500}]
    if agents:
        filters.append({"authors": sorted(agents), "since": since, "limit": 500})
    try:
        events = await pool.query(filters, QUERY_TIMEOUT)
    except Exception as exc:
        data["error"] = f"recent jobs unavailable: {type(exc).__name__}"
        events = []
    data["jobs"] = _edges(events, since)
    return data


def _agents(announcements: list[Event]) -> dict[str, HandlerInfo]:
    """The newest announcement of each provider, its kinds merged over all its ``d`` tags."""
    newest: dict[str, HandlerInfo] = {}
    kinds: dict[str, set[int]] = defaultdict(set)
    seen: set[str] = set()
    for event in announcements:  # newest first
        info = parse_handler(event)
        if info is None or info.address() in seen:
            continue
        seen.add(info.address())
        newest.setdefault(info.pubkey, info)
        kinds[info.pubkey].update(info.kinds)
    return {pk: _with_kinds(info, kinds[pk]) for pk, info in newest.items()}


def _with_kinds(info: HandlerInfo, kinds: set[int]) -> HandlerInfo:
    return replace(info, kinds=tuple(sorted(kinds)))


def _nodes(agents: dict[str, HandlerInfo], this_node: str) -> list[dict[str, Any]]:
    groups: dict[str, list[HandlerInfo]] = defaultdict(list)
    for info in agents.values():
        groups[info.node].append(info)
    nodes = []
    for node, infos in groups.items():
        label = "this node" if node and node == this_node else ("Timmy node" if node else OTHER)
        nodes.append(
            {
                "node": node,
                "label": label,
                "agents": [
                    {
                        "pubkey": i.pubkey,
                        "name": i.name,
                        "kinds": list(i.kinds),
                        "price_msat": i.price_msat,
                        "price_per_kb_msat": i.price_per_kb_msat,
                    }
                    for i in sorted(infos, key=lambda i: (i.name, i.pubkey))
                ],
            }
        )
    # This node first, then other Timmy nodes, the unnamed group last.
    nodes.sort(key=lambda n: (n["label"] != "this node", n["node"] == "", n["node"]))
    return nodes


def _edges(events: list[Event], since: int) -> list[dict[str, Any]]:
    """customer -> agent, counted in distinct job requests (the ``e`` tag) of results and feedback."""
    jobs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for event in events:
        if event.created_at < since or not (
            event.kind == FEEDBACK_KIND or event.kind in RESULT_KINDS
        ):
            continue
        customer, request = event.first_tag_value("p"), event.first_tag_value("e")
        if not customer or not request or customer == event.pubkey:
            continue
        jobs[(customer, event.pubkey)].add(request)
    edges: list[dict[str, Any]] = [
        {"customer": c, "agent": a, "jobs": len(ids)} for (c, a), ids in jobs.items()
    ]
    edges.sort(key=lambda e: (-e["jobs"], e["agent"], e["customer"]))
    return edges
