"""Kind 5312, "verify reputation", compatible with Vertex's service.

Spec: ``shared/specs/other/vertex-verify-reputation-5312.md`` (params
``target`` (required), ``source``, ``sort``, ``limit``; the result's content is
a JSON list whose first entry is the target with its ``rank``, ``follows`` and
``followers``, then its top followers by rank; result tags ``sort``,
``source`` (personalized only) and ``nodes``) and ``vertex-algos.md`` (the
sorts ``followerCount``, ``globalPagerank``, ``personalizedPagerank``).

The graph is the node's reputation service's: follow lists plus positive
``ai.wot`` attestations, as read from the relays it follows.

Settings: none.
"""

from __future__ import annotations

import orjson

from dvm.handlers import HandlerError, JobContext, Output, Settings, WithoutSettings
from nips.nip01 import is_hex64
from nips.nip90 import JobRequest

SORTS = ("followerCount", "globalPagerank", "personalizedPagerank")
DEFAULT_SORT = "globalPagerank"
DEFAULT_LIMIT = 5
MAX_LIMIT = 100
PARAMS = ("target", "source", "sort", "limit")


class VerifyReputation(WithoutSettings):
    kind = 5312
    name = "reputation"
    title = "Verify reputation: rank of a pubkey and its top followers (Vertex-compatible)"

    def validate(self, request: JobRequest, settings: Settings) -> None:
        _query(request)

    async def run(self, ctx: JobContext) -> Output:
        target, source, sort, limit = _query(ctx.request)
        service = ctx.services.get("reputation")
        if service is None:
            raise HandlerError("this node runs no reputation service")
        from reputation import graph

        g = service.trust_graph
        if sort == "followerCount":
            def rank(key: str) -> float:
                return float(g.followers(key))
        else:
            if sort == "globalPagerank":
                ranks = graph.pagerank(g) if g.node_count else None
            else:
                ranks = graph.personalized_pagerank(g, {source or ctx.request.customer: 1.0}) if g.node_count else None

            def rank(key: str) -> float:
                return ranks.rank(key) if ranks is not None else 0.0

        first = {"pubkey": target, "rank": rank(target), "follows": g.follows(target), "followers": g.followers(target)}
        followers = sorted(g.followers_of(target), key=lambda k: (-rank(k), k))[:limit]
        content = [first] + [{"pubkey": k, "rank": rank(k)} for k in followers]
        tags: list[tuple[str, ...]] = [("sort", sort)]
        if sort == "personalizedPagerank":
            tags.append(("source", source or ctx.request.customer))
        tags.append(("nodes", str(g.node_count)))
        return Output(orjson.dumps(content).decode(), "application/json", tuple(tags))


def _query(request: JobRequest) -> tuple[str, str, str, int]:
    for key, _ in request.params:
        if key not in PARAMS:
            raise HandlerError(f"unknown param {key!r} (known: {', '.join(PARAMS)})")
    target = _pubkey(request.param("target"), "target")
    if not target:
        raise HandlerError("param target is required: the pubkey whose reputation you want")
    source = _pubkey(request.param("source"), "source")
    sort = request.param("sort", DEFAULT_SORT) or DEFAULT_SORT
    if sort not in SORTS:
        raise HandlerError(f"param sort: {sort!r} is not one of {', '.join(SORTS)}")
    limit_text = request.param("limit", str(DEFAULT_LIMIT)) or str(DEFAULT_LIMIT)
    if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise HandlerError(f"param limit: expected 1-{MAX_LIMIT}, got {limit_text[:10]!r}")
    return target, source, sort, int(limit_text)


def _pubkey(value: str | None, name: str) -> str:
    if not value:
        return ""
    if is_hex64(value):
        return value
    if value.startswith("npub1"):
        from nostr_sdk import PublicKey

        try:
            return str(PublicKey.parse(value).to_hex())
        except Exception:
            pass
    raise HandlerError(f"param {name}: {value[:20]!r} is not a pubkey (hex or npub)")


HANDLER = VerifyReputation()
