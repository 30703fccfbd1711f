"""Kind 5302, "Nostr content search": the notes nearest in meaning to a text, from the node's memory.

Spec: ``shared/specs/dvm-kinds/5302.md`` ("Input": the text to search for;
"Params": ``users``, ``since``, ``until``, ``max_results``; "Output": the
content is a JSON-stringified list of ``e`` or ``a`` tags).

The search is by meaning, not by words: the query and the indexed events are
embedded by the same sentence model and compared by cosine (``dvm.memory``,
``docs/memory.md``). What the node has indexed is what its relays carried of
the kinds in ``[memory] kinds``.

Input: the request's inputs resolved to text, joined by newlines (usually one
``text`` input).

Params, all optional:

- ``users``: whose events to search. As the spec's example, a JSON list of
  ``["p", <pubkey>]`` tags; also accepted: a JSON list of pubkeys, or
  pubkeys separated by commas or spaces. A pubkey is 64 hex characters or an
  npub. Several ``users`` params add up; an empty list means everyone.
- ``since``, ``until``: unix seconds, inclusive bounds on ``created_at``.
- ``max_results``: 1 to 100, default 20.

Output: ``application/json``, the list of ``["e", <event id>]`` tags, best
match first, e.g. ``[["e","5c83..."],["e","9f1e..."]]`` (the spec's example
omits the brackets of the list, which would not be JSON). The result event
also carries one ``["score", <event id>, <cosine 0-1>]`` tag per match, in
the same order, for clients that want to cut off weak matches.

Settings: none.
"""

from __future__ import annotations

import re

import orjson

from dvm.handlers import HandlerError, JobContext, Output, Settings, WithoutSettings
from nips.nip01 import is_hex64
from nips.nip90 import JobRequest

PARAMS = ("users", "since", "until", "max_results")
DEFAULT_MAX_RESULTS = 20
MAX_RESULTS = 100
MAX_USERS = 1000
MAX_QUERY_CHARS = 2000  # the model reads 256 word pieces; more is never seen
_SEPARATORS = re.compile(r"[\s,]+")


class ContentSearch(WithoutSettings):
    kind = 5302
    name = "search"
    title = "Content search: notes and articles on this node's relays, found by meaning"

    def validate(self, request: JobRequest, settings: Settings) -> None:
        if not request.inputs:
            raise HandlerError("no input: give the text to search for as an [\"i\", <text>, \"text\"] tag")
        parse_query(request)

    async def run(self, ctx: JobContext) -> Output:
        users, since, until, max_results = parse_query(ctx.request)
        text = "\n".join(t for t in ctx.texts if t.strip()).strip()
        if not text:
            raise HandlerError("the search text is empty")
        service = ctx.services.get("memory")
        if service is None:
            raise HandlerError("this node keeps no semantic memory")
        from dvm.embedding import EmbedderUnavailable
        from dvm.memory import MemoryUnavailable

        try:
            hits = await service.search(
                text[:MAX_QUERY_CHARS], k=max_results, authors=users, since=since, until=until
            )
        except (EmbedderUnavailable, MemoryUnavailable) as exc:
            raise HandlerError(f"this node's semantic memory is unavailable: {exc}") from exc
        content = orjson.dumps([["e", hit.event_id] for hit in hits]).decode()
        tags = tuple(("score", hit.event_id, f"{max(hit.score, 0.0):.4f}") for hit in hits)
        return Output(content, "application/json", tags)


def parse_query(request: JobRequest) -> tuple[list[str] | None, int | None, int | None, int]:
    """(users or None for everyone, since, until, max_results) from the params; raises HandlerError."""
    for key, _ in request.params:
        if key not in PARAMS:
            raise HandlerError(f"unknown param {key!r} (known: {', '.join(PARAMS)})")
    users: list[str] = []
    for value in request.param_values("users"):
        users += parse_users(value)
    if len(users) > MAX_USERS:
        raise HandlerError(f"param users: at most {MAX_USERS} pubkeys, got {len(users)}")
    since = _timestamp(request.param("since"), "since")
    until = _timestamp(request.param("until"), "until")
    if since is not None and until is not None and since > until:
        raise HandlerError(f"param since ({since}) is after until ({until})")
    text = request.param("max_results") or str(DEFAULT_MAX_RESULTS)
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_RESULTS:
        raise HandlerError(f"param max_results: expected 1-{MAX_RESULTS}, got {text[:10]!r}")
    return (list(dict.fromkeys(users)) or None), since, until, int(text)


def parse_users(value: str) -> list[str]:
    """The pubkeys (hex) of one ``users`` param: ``[["p", pk], ...]``, ``[pk, ...]`` or ``pk, pk``."""
    text = value.strip()
    if text.startswith(("[", "{")):
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise HandlerError("param users: not valid JSON (expected [[\"p\", <pubkey>], ...])") from None
        if not isinstance(items, list):
            raise HandlerError("param users: expected a JSON list")
        return [_pubkey(_user_item(item)) for item in items]
    return [_pubkey(word) for word in _SEPARATORS.split(text) if word]


def _user_item(item: object) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, list) and len(item) >= 2 and item[0] == "p" and isinstance(item[1], str):
        return item[1]
    raise HandlerError(f"param users: {orjson.dumps(item).decode()[:40]} is not a [\"p\", <pubkey>] tag")


def _pubkey(value: str) -> str:
    if is_hex64(value):
        return value
    if value.startswith("npub1"):
        from nostr_sdk import PublicKey

        try:
            return str(PublicKey.parse(value).to_hex())
        except Exception:
            pass
    raise HandlerError(f"param users: {value[:20]!r} is not a pubkey (hex or npub)")


def _timestamp(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise HandlerError(f"param {name}: expected unix seconds, got {value[:20]!r}")
    return int(value)


HANDLER = ContentSearch()
