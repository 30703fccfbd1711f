"""The node's reputation service: read the relays, keep scores fresh, publish NIP-85 ranks.

I/O shell around the pure parts: ``ingest.Ledger`` (events -> facts),
``graph`` (personalized PageRank from the operator's roots over follows and
positive attestations), ``scoring`` (Timmy's score, explained) and ``aiwot``
(the ``ai.wot`` score, for interop). It subscribes through the node's relay
pool to labels, zap receipts, follow lists, label revocations and handler
announcements; when a rating points at a job it fetches that job's events
(request, quotes, result, zap receipts) to see whether it was paid.

Scores are recomputed at most once per ``debounce`` seconds, PageRank warm
started from the last ranks. After each recomputation the node publishes a
kind 30382 assertion (NIP-85, ``rank`` 0-100) for each agent it knows whose
rank changed, signed by its reputation key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from nips.nip01 import Event, Signer
from reputation import aiwot, graph, scoring
from reputation.ingest import Ledger
from reputation.model import NAMESPACE, NEGATIVE_TYPES, TYPE_MULTIPLIERS

if TYPE_CHECKING:
    from node.links import RelayPool

log = logging.getLogger(__name__)

ASSERTION_KIND = 30382
SUBSCRIPTION = "reputation"


class ReputationService:
    name = "reputation"

    def __init__(
        self,
        pool: RelayPool,
        *,
        roots: Sequence[str],
        signer: Signer | None = None,
        subjects: Callable[[], Iterable[str]] = lambda: (),
        debounce: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.roots = list(roots)
        self.signer = signer  # signs NIP-85 assertions; None publishes nothing
        self.subjects = subjects  # the pubkeys to publish assertions about
        self.debounce = debounce
        self.clock = clock
        self.ledger = Ledger()
        self.trust_graph = graph.TrustGraph()
        self.ranks: graph.Ranks | None = None
        self.reports: dict[str, scoring.ScoreReport] = {}
        self._published: dict[str, int] = {}
        self._dirty = asyncio.Event()
        self._fetched: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self.pool.subscribe(SUBSCRIPTION, self.filters(), self._on_event)
        self._spawn(self._recompute_loop())
        self._dirty.set()

    async def load(self) -> None:
        """One pass instead of a subscription (the CLI): query, fetch the jobs rated, score."""
        for event in await self.pool.query(self.filters(), timeout=10.0):
            self.take(event)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.recompute()

    def filters(self) -> list[dict[str, Any]]:
        return [
            {"kinds": [1985], "#L": [NAMESPACE], "limit": 5000},
            {"kinds": [5], "#k": ["1985"], "limit": 5000},
            {"kinds": [9735], "limit": 5000},
            {"kinds": [3], "limit": 5000},
            {"kinds": [31990], "limit": 5000},
        ]

    async def stop(self) -> None:
        self.pool.unsubscribe(SUBSCRIPTION)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- reading ---------------------------------------------------------------------

    def _on_event(self, event: Event, relay: str) -> None:
        self.take(event)

    def take(self, event: Event) -> None:
        """One event from a relay (or a one-shot query): facts in, recomputation scheduled."""
        if self.ledger.add(event):
            self._dirty.set()
        if event.kind == 1985:
            ref = event.first_tag_value("e")
            if ref and ref not in self._fetched:
                self._fetched.add(ref)
                self._spawn(self._fetch_job(ref))

    async def _fetch_job(self, ref: str) -> None:
        """The events of the job a rating points at: request, quotes, results, zap receipts."""
        try:
            found = await self.pool.query([{"ids": [ref]}, {"#e": [ref], "limit": 200}], timeout=5.0)
            requests = {e.first_tag_value("e") for e in found if e.kind != 1985} - {None, ref}
            if requests:
                found += await self.pool.query(
                    [{"ids": sorted(requests)}, {"#e": sorted(requests), "limit": 200}],  # type: ignore[arg-type]
                    timeout=5.0,
                )
        except Exception as exc:  # every relay failed; the rating counts as unpaid for now
            log.debug("could not fetch job %s: %s", ref[:12], exc)
            return
        # Requests first, then answers, then receipts: each step needs the last.
        for event in sorted(found, key=lambda e: (_order(e.kind), e.created_at)):
            self.ledger.add(event)
        self._dirty.set()

    # --- scoring --------------------------------------------------------------------

    async def _recompute_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.debounce)
            self._dirty.clear()
            try:
                self.recompute()
            except Exception:
                log.exception("reputation: recomputing scores failed")
                continue
            await self._publish_assertions()

    def recompute(self) -> None:
        attestations = self.ledger.current()
        g = graph.TrustGraph()
        for author, keys in self.ledger.follow_lists().items():
            g.set_follows(author, keys)
        for a in attestations:
            if a.label not in NEGATIVE_TYPES and a.attester != a.target:
                g.add_edge(a.attester, a.target, TYPE_MULTIPLIERS[a.label])
        self.trust_graph = g
        seeds = {root: 1.0 for root in self.roots}
        self.ranks = graph.personalized_pagerank(g, seeds) if g.node_count else None
        trust = _trust_map(self.ranks, attestations, self.roots)
        self.reports = scoring.score_all(
            attestations, trust=trust, roots=self.roots, now=int(self.clock()), revoked=frozenset()
        )

    def score(self, pubkey: str) -> scoring.ScoreReport | None:
        return self.reports.get(pubkey)

    def rank(self, pubkey: str) -> float:
        """0-100; 0 for a key nobody vouched for. Used for auction tie-breaks and min_reputation."""
        report = self.reports.get(pubkey)
        return float(report.score) if report is not None else 0.0

    def aiwot(self, pubkey: str) -> aiwot.AiWotScore:
        return aiwot.aiwot_score(pubkey, self.ledger.current(), now=int(self.clock()))

    async def _publish_assertions(self) -> None:
        if self.signer is None:
            return
        now = int(self.clock())
        # Our agents, and every Timmy agent whose announcement we have read.
        for pubkey in sorted(set(self.subjects()) | set(self.ledger.zap_servers)):
            rank = round(self.rank(pubkey))
            if self._published.get(pubkey) == rank:
                continue
            tags = [["d", pubkey], ["rank", str(rank)]]
            event = self.signer.sign(ASSERTION_KIND, "", tags, created_at=now)
            results = await self.pool.publish(event)
            if any(ok for ok, _ in results.values()):
                self._published[pubkey] = rank


def _order(kind: int) -> int:
    if 5000 <= kind <= 5999:
        return 0
    if kind == 9735:
        return 2
    return 1


def _trust_map(
    ranks: graph.Ranks | None, attestations: Iterable[Any], roots: Sequence[str]
) -> dict[str, float]:
    if ranks is None:
        return {}
    keys = {a.attester for a in attestations} | set(roots)
    return {k: ranks.rank(k) for k in keys}
