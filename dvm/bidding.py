"""This node's agents in federated sealed-bid auctions (``docs/protocol/auction.md``).

For a request that opens an auction, the engine's local winner (see
``dvm.agents.local_auction``) bids its ask, which is its declared cost: in a
second-price auction that is the bid a bidder cannot improve on
(``docs/adr/0003-second-price-auction.md``). The steps:

1. commit (kind 7010) at once, stored with its secret nonce before it is
   published, so a restart can still reveal it;
2. reveal (kind 7011) once ``commit_until`` has passed;
3. wait for the customer's award (kind 7012). If none comes within
   :data:`AWARD_GRACE` seconds after ``reveal_until``, the node acts for the
   customer: it recomputes the award from the relay log and, if its agent
   won, publishes that award itself. Then the winner goes on with the normal
   NIP-90 flow at the award price; a loser falls silent.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from dvm.jobs import State, Step
from dvm.store import BidRecord
from nips import auction
from nips.nip01 import Event

if TYPE_CHECKING:
    from dvm.engine import Engine, Job

log = logging.getLogger(__name__)

AWARD_GRACE = 3.0  # seconds after reveal_until the customer has to publish an award


class Bidding:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._awards: dict[str, asyncio.Future[Event]] = {}  # request id -> customer's award
        self._received: dict[str, dict[str, int]] = {}  # request id -> event id -> receipt time

    def subscribe(self, since: int) -> None:
        kinds = [str(k) for k in self.engine.kinds]
        if not kinds:
            return
        filters = [
            {
                "kinds": [auction.COMMIT_KIND, auction.REVEAL_KIND, auction.AWARD_KIND],
                "#k": kinds,
                "since": since,
            }
        ]
        self.engine.pool.subscribe("auctions", filters, self._on_event)

    def unsubscribe(self) -> None:
        self.engine.pool.unsubscribe("auctions")

    def _on_event(self, event: Event, relay: str) -> None:
        request_id = event.first_tag_value("e") or ""
        job = self.engine.jobs.get(request_id)
        if job is None or job.state is not State.BIDDING:
            return
        self._received.setdefault(request_id, {}).setdefault(event.id, int(self.engine.clock()))
        self.engine.keep(event, relay)
        if event.kind == auction.AWARD_KIND and event.pubkey == job.event.pubkey:
            future = self._awards.setdefault(request_id, asyncio.get_running_loop().create_future())
            if not future.done():
                future.set_result(event)

    async def enter(self, job: Job, terms: auction.AuctionTerms, ask_msat: int) -> None:
        agent = job.agent
        assert agent is not None
        now = int(self.engine.clock())
        if now >= terms.commit_until:
            log.info("job %s: auction closed for commitments; not bidding", job.id[:12])
            await self.engine._move(job, Step.DECLINE)
            return
        if terms.min_reputation is not None and self.engine.reputation(agent.pubkey) < terms.min_reputation:
            # By our own reckoning the awarder would not count this bid.
            log.info("job %s: %s is below min_reputation %g; not bidding", job.id[:12], agent.name,
                     terms.min_reputation)
            await self.engine._move(job, Step.DECLINE)
            return
        nonce = secrets.token_hex(32)
        tags = auction.commit_tags(terms, agent.pubkey, ask_msat, nonce)
        commit = agent.signer.sign(auction.COMMIT_KIND, "", tags, created_at=now)
        await self.engine.store.save_bid(BidRecord(job.id, agent.name, ask_msat, nonce, commit.id, False))
        if await self.engine._move(job, Step.BID, extra=[commit]):
            self.engine.metrics.auction("entered")
            job.task = self.engine._spawn(self._follow(job, terms))

    async def resume(self, job: Job) -> None:
        assert job.request is not None
        terms = auction.auction_terms(job.request)
        assert terms is not None
        job.task = self.engine._spawn(self._follow(job, terms))

    async def _follow(self, job: Job, terms: auction.AuctionTerms) -> None:
        bid = await self.engine.store.bid(job.id)
        assert bid is not None and job.agent is not None
        try:
            if not bid.revealed and not await self._reveal(job, terms, bid):
                await self._lose(job, "too late to reveal")
                return
            award = await self._award(job, terms)
        finally:
            self._received.pop(job.id, None)
            self._awards.pop(job.id, None)
        if award is None:
            await self._lose(job, "no award")
            return
        if award.winner != job.agent.pubkey or award.winner_commit != bid.commit_id:
            await self._lose(job, "another bidder won")
            return
        if award.price_msat is None or award.price_msat < bid.amount_msat:
            await self.engine._fail(job, f"award price {award.price_msat} msat is below our bid")
            return
        self.engine.metrics.auction("won")
        job.price_msat = award.price_msat
        await self.engine.proceed(job)

    async def _reveal(self, job: Job, terms: auction.AuctionTerms, bid: BidRecord) -> bool:
        # Reveals must be created after commit_until (whole seconds), by reveal_until.
        await _sleep_until(self.engine, terms.commit_until + 1)
        now = int(self.engine.clock())
        if now > terms.reveal_until:
            return False
        assert job.agent is not None
        tags = auction.reveal_tags(terms, bid.commit_id, bid.amount_msat, bid.nonce)
        reveal = job.agent.signer.sign(auction.REVEAL_KIND, "", tags, created_at=now)
        await self.engine.store.add_outbox(job.id, [reveal])
        await self.engine.store.save_bid(
            BidRecord(bid.job_id, bid.agent, bid.amount_msat, bid.nonce, bid.commit_id, True)
        )
        await self.engine._publish(job, [reveal])
        return True

    async def _award(self, job: Job, terms: auction.AuctionTerms) -> auction.PublishedAward | None:
        """The customer's award, or one computed (and published if we won) for it."""
        future = self._awards.setdefault(job.id, asyncio.get_running_loop().create_future())
        if not future.done():
            for event in await self._query(job, [auction.AWARD_KIND]):
                if event.pubkey == job.event.pubkey:
                    future.set_result(event)
                    break
        wait = terms.reveal_until + AWARD_GRACE - self.engine.clock()
        try:
            event = await asyncio.wait_for(asyncio.shield(future), max(wait, 0.01))
        except TimeoutError:
            return await self._award_for_customer(job, terms)
        try:
            return auction.parse_award(event)
        except auction.AuctionError as exc:
            log.warning("job %s: customer's award is malformed (%s)", job.id[:12], exc)
            return await self._award_for_customer(job, terms)

    async def _award_for_customer(
        self, job: Job, terms: auction.AuctionTerms
    ) -> auction.PublishedAward | None:
        events = await self._query(job, [auction.COMMIT_KIND, auction.REVEAL_KIND])
        decided = auction.decide(
            terms, events, received_at=self._received.get(job.id), reputation=self.engine.reputation
        )
        winner = decided.winner
        assert job.agent is not None
        if winner is None or winner.bidder != job.agent.pubkey:
            return None
        tags = auction.award_tags(terms, decided)
        event = job.agent.signer.sign(auction.AWARD_KIND, "", tags, created_at=int(self.engine.clock()))
        await self.engine.store.add_outbox(job.id, [event])
        await self.engine._publish(job, [event])
        log.info("job %s: no award from the customer; published ours", job.id[:12])
        return auction.parse_award(event)

    async def _query(self, job: Job, kinds: list[int]) -> list[Event]:
        try:
            return await self.engine.pool.query([{"kinds": kinds, "#e": [job.id]}], timeout=5.0)
        except Exception as exc:  # every relay failed; decide on what we saw live
            log.warning("job %s: auction query failed: %s", job.id[:12], exc)
            return []

    async def _lose(self, job: Job, why: str) -> None:
        log.info("job %s: auction lost (%s)", job.id[:12], why)
        self.engine.metrics.auction("lost")
        await self.engine._move(job, Step.LOSE)


async def _sleep_until(engine: Any, when: float) -> None:
    """Sleep until the wall clock reads ``when``: the loop's timer may wake a little
    early, and a reveal stamped one second early does not count."""
    while (delay := when - engine.clock()) > 0:
        await asyncio.sleep(max(delay, 0.001))
