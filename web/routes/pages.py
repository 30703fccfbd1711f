"""The node's pages for people, rendered on the server and readable without JavaScript.

    GET /               the node: agents and prices, relays, job counts, earnings
    GET /agents/{name}  one agent: keys, NIP-05, how to pay it, its reputation explained
    GET /jobs/{id}      one job as the store holds it

A part of the node that is not running (no engine, no reputation service)
shows as "unavailable", never as zeros that look like data.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import segno
from markupsafe import Markup
from nostr_sdk import PublicKey
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from dvm.jobs import State
from web import auth
from web.context import WebContext
from web.templates import render

if TYPE_CHECKING:
    from dvm.agents import Agent
    from dvm.engine import Engine
    from reputation.model import Contribution
    from reputation.service import ReputationService

UNAVAILABLE = "unavailable"
LEDGER_STATES = ("paid", "pending", "refund_owed", "refunded", "expired")
EXPLAINED = 50  # contributions listed on an agent page, heaviest first
JOB_ID = re.compile(r"[0-9a-f]{64}")


def routes(ctx: WebContext) -> list[Route]:
    async def overview(request: Request) -> HTMLResponse:
        engine = ctx.engine
        return _page(
            request, ctx, "overview.html",
            agents=[_summary(a, ctx) for a in engine.agents] if engine else None,
            relays=_relays(engine) if engine else None,
            jobs=_jobs_by_state(await engine.store.counts()) if engine else None,
            earnings=_earnings(engine, await engine.store.ledger()) if engine else None,
        )

    async def agent_page(request: Request) -> HTMLResponse:
        name = request.path_params["name"]
        if ctx.engine is None:
            return _page(request, ctx, "agent.html", 503, agent_name=name, agent=None, unavailable=True)
        agent = next((a for a in ctx.engine.agents if a.name == name), None)
        if agent is None:
            return _page(request, ctx, "agent.html", 404, agent_name=name, agent=None)
        return _page(request, ctx, "agent.html", agent_name=name, agent=_profile(agent, ctx))

    async def job_page(request: Request) -> HTMLResponse:
        job_id = request.path_params["id"].lower()
        if ctx.engine is None:
            return _page(request, ctx, "job.html", 503, job_id=job_id, job=None, unavailable=True)
        record = await ctx.engine.store.get(job_id) if JOB_ID.fullmatch(job_id) else None
        if record is None:
            return _page(request, ctx, "job.html", 404, job_id=job_id, job=None)
        agents = {a.name for a in ctx.engine.agents}
        events, verdict = await _signed_record(ctx, job_id)
        return _page(
            request, ctx, "job.html",
            job_id=job_id,
            job=record,
            title=_kind_title(ctx.engine, record.kind),
            customer_npub=npub(record.customer),
            agent_known=record.agent in agents,
            price=sats(record.price_msat) if record.price_msat is not None else "not set",
            seen=_when(record.seen_at),
            updated=_when(record.updated_at),
            events=events,
            verdict=verdict,
        )

    return [
        Route("/", overview),
        Route("/agents/{name}", agent_page),
        Route("/jobs/{id}", job_page),
    ]


async def _signed_record(ctx: WebContext, job_id: str) -> tuple[list[dict[str, Any]] | None, Any]:
    """Every event of the job on the node's relays, each signature checked here again, and
    the verdict ``timmy audit`` gives (the same code: ``dvm.client.audit_job``)."""
    from dvm.client import audit_job
    from nips.nip01 import verify_signature

    if ctx.links is None:
        return None, None
    try:
        found = await ctx.links.query([{"ids": [job_id]}, {"#e": [job_id], "limit": 500}], timeout=5.0)
    except Exception:  # every relay failed: say so rather than show an empty log
        return None, None
    request = next((e for e in found if e.id == job_id), None)
    rows = [
        {
            "id": e.id,
            "kind": e.kind,
            "author": npub(e.pubkey),
            "what": _describe(e),
            "verified": verify_signature(e),
            "when": _when(e.created_at),
        }
        for e in sorted(found, key=lambda e: (e.created_at, e.kind))
    ]
    return rows, audit_job(request, found) if request is not None else None


def _describe(event: Any) -> str:
    if 5000 <= event.kind <= 5999:
        return "request"
    if 6000 <= event.kind <= 6999:
        return "result"
    names = {7000: "feedback", 7010: "auction commitment", 7011: "auction reveal", 7012: "auction award",
             9735: "zap receipt", 1985: "rating", 5: "deletion"}
    name = names.get(event.kind, f"kind {event.kind}")
    status = event.first_tag_value("status")
    return f"{name}: {status}" if status else name


def _page(
    request: Request, ctx: WebContext, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render with what ``base.html`` needs: the node's name, who is signed in, their CSRF token."""
    wallet = ctx.wallet
    return render(
        template, status_code,
        **auth.page_context(request, ctx),
        wallet=wallet.name if wallet else None,
        not_real_money=wallet is not None and not wallet.real_money,
        **context,
    )


# --- what the pages show ---------------------------------------------------------


def sats(msat: int) -> str:
    """``21 sats``, ``1 sat``, ``0.5 sats``: prices are set in msat, shown in sats."""
    whole, rest = divmod(msat, 1000)
    number = f"{whole:,}" if not rest else f"{msat / 1000:,.3f}".rstrip("0")
    return f"{number} sat" if msat == 1000 else f"{number} sats"


def price(agent: Agent) -> str:
    cfg = agent.config
    parts = []
    if cfg.price_msat:
        parts.append(f"{sats(cfg.price_msat)} per job")
    if cfg.price_per_kb_msat:
        parts.append(f"{sats(cfg.price_per_kb_msat)} per started KiB of input")
    return " + ".join(parts) or "free"


def npub(pubkey: str) -> str:
    return str(PublicKey.parse(pubkey).to_bech32())


@functools.lru_cache(maxsize=256)
def qr_svg(text: str, label: str) -> Markup:
    """``text`` as an inline SVG QR code: an image named ``label`` for screen readers.

    Cached: an agent's offer and address rarely change, and drawing them is most
    of an agent page's time (about 10 ms of its 12)."""
    svg = segno.make(text, error="m").svg_inline(scale=4, dark="#000", light="#fff", title=label, svgclass="qr")
    return Markup(svg.replace("<svg ", '<svg role="img" ', 1))


@dataclass(frozen=True, slots=True)
class Capability:
    kind: int
    title: str  # the handler's one line; empty when the kind is not served
    why_not: str = ""


def _capabilities(agent: Agent) -> list[Capability]:
    return [
        Capability(kind, agent.handlers[kind].title)
        if kind in agent.handlers
        else Capability(kind, "", agent.unavailable.get(kind, "not served"))
        for kind in agent.config.kinds
    ]


def _score(reputation: ReputationService | None, pubkey: str) -> str:
    if reputation is None:
        return UNAVAILABLE
    report = reputation.score(pubkey)
    return "no attestations yet" if report is None else f"{report.score:.1f} of 100"


def _summary(agent: Agent, ctx: WebContext) -> dict[str, Any]:
    return {
        "name": agent.name,
        "about": agent.config.about,
        "capabilities": _capabilities(agent),
        "price": price(agent),
        "score": _score(ctx.reputation, agent.pubkey),
    }


def _profile(agent: Agent, ctx: WebContext) -> dict[str, Any]:
    assert ctx.engine is not None
    offer = ctx.engine.billing.offers.get(agent.name, "") if ctx.wallet else None
    lud16 = ctx.zaps.lud16(agent.name) if ctx.zaps else None
    reputation = ctx.reputation
    report = reputation.score(agent.pubkey) if reputation else None
    contributions = report.contributions if report else ()
    aiwot = reputation.aiwot(agent.pubkey) if reputation else None
    return {
        **_summary(agent, ctx),
        "picture": agent.config.picture,
        "pubkey": agent.pubkey,
        "npub": npub(agent.pubkey),
        "nip05": f"{agent.name}@{ctx.domain}",
        "offer": offer,
        "offer_qr": qr_svg(offer, f"QR code of {agent.name}'s BOLT12 offer") if offer else None,
        "lud16": lud16,
        "lud16_qr": qr_svg(lud16, f"QR code of {agent.name}'s lightning address") if lud16 else None,
        "reputation": reputation is not None,
        "contributions": [_explained(c) for c in contributions[:EXPLAINED]],
        "contribution_count": len(contributions),
        "aiwot": None if aiwot is None else f"{aiwot.display:.1f} (diversity {aiwot.diversity:.2f})",
    }


def _explained(contribution: Contribution) -> dict[str, str]:
    """One row of a score's explanation."""
    factors = " \N{MULTIPLICATION SIGN} ".join(f"{name} {value:.2f}" for name, value in contribution.factors)
    attester = contribution.attestation.attester
    return {
        "label": contribution.attestation.label,
        "attester": attester[:8] + "…" + attester[-4:],
        "attester_full": attester,
        "weight": f"{contribution.weight:+.2f}",
        "factors": factors or "none",
        "counted": "counted" if contribution.counted else f"not counted: {contribution.why_not}",
    }


def _relays(engine: Engine) -> list[dict[str, Any]]:
    rows = []
    for link in engine.pool.status():
        role = "this node's relay" if link["url"] == engine.home_relay else "federation"
        rows.append({**link, "role": role})
    return rows


def _jobs_by_state(counts: Mapping[tuple[int, str], int]) -> list[tuple[str, int]]:
    totals: Counter[str] = Counter()
    for (_, state), n in counts.items():
        totals[state] += n
    return [(state.value.replace("_", " "), totals[state.value]) for state in State if totals[state.value]]


def _earnings(engine: Engine, ledger: Mapping[str, Mapping[str, int]]) -> list[dict[str, Any]]:
    """sats by payment state for every agent, and for any agent no longer configured that earned."""
    names = [a.name for a in engine.agents] + sorted(set(ledger) - {a.name for a in engine.agents})
    return [
        {"agent": name, **{state: sats(ledger.get(name, {}).get(state, 0)) for state in LEDGER_STATES}}
        for name in names
    ]


def _kind_title(engine: Engine, kind: int) -> str:
    titles = {k: h.title for a in engine.agents for k, h in a.handlers.items()}
    return titles.get(kind, "")


def _when(timestamp: int) -> dict[str, str]:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return {"iso": moment.isoformat(), "text": moment.strftime("%Y-%m-%d %H:%M:%S UTC")}
