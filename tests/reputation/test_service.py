"""The reputation service against a real relay: ratings, payment proofs, revocations, NIP-85."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from nips import nip57
from nips.nip01 import Signer
from nips.nip89 import HandlerInfo, handler_content, handler_tags
from node.links import RelayPool
from node.wallet.dev import DevWallet
from relay.server import RelayServer
from relay.settings import RelaySettings
from relay.store.memory import MemoryStore
from reputation.labels import attestation_tags
from reputation.service import ReputationService

NOW = int(time.time())
PRICE = 50_000


@pytest.fixture
async def relay():
    server = RelayServer(RelaySettings(host="127.0.0.1", port=0), MemoryStore())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def pool(relay):
    pool = RelayPool([relay.url], min_backoff=0.05)
    await pool.start()
    assert await pool.wait_connected(5)
    yield pool
    await pool.stop()


class World:
    """A node (its key signs zap receipts), one of its agents, a root, customers."""

    def __init__(self, pool: RelayPool, tmp_path) -> None:
        self.pool = pool
        self.node, self.agent, self.root = (Signer(os.urandom(32)) for _ in range(3))
        self.wallet = DevWallet(tmp_path / "w.sqlite3", os.urandom(32))
        self.wallet.open()

    async def publish(self, *events) -> None:
        for event in events:
            results = await self.pool.publish(event)
            assert all(ok for ok, _ in results.values()), results

    async def announce(self) -> None:
        info = HandlerInfo(pubkey=self.agent.pubkey, d="x", kinds=(5001,), node=self.node.pubkey)
        await self.publish(self.agent.sign(31990, handler_content(info), handler_tags(info), created_at=NOW))

    async def job(self, customer: Signer, *, quote: bool = True) -> tuple:
        """request, a payment-required quote with a real invoice, a result; (request, result, preimage)."""
        request = customer.sign(5001, "", [["i", os.urandom(8).hex(), "text"]], created_at=NOW - 100)
        invoice = await self.wallet.create_invoice(PRICE, label=request.id, description="job")
        events = [request]
        if quote:
            events.append(self.agent.sign(
                7000, "", [["status", "payment-required"], ["amount", str(PRICE), invoice.bolt11],
                           ["e", request.id], ["p", customer.pubkey]], created_at=NOW - 90,
            ))
        result = self.agent.sign(6001, "done", [["e", request.id], ["p", customer.pubkey]], created_at=NOW - 80)
        events.append(result)
        await self.publish(*events)
        payment = await self.wallet.pay(invoice.bolt11)
        return request, result, payment.preimage

    def rating(self, customer: Signer, result, *, label="service-quality", preimage: str = ""):
        tags = attestation_tags(self.agent.pubkey, label, event_ref=result.id)
        if preimage:
            tags.append(["preimage", preimage])
        content = "bad" if label in ("warning", "dispute") else "good"
        return customer.sign(1985, content, tags, created_at=NOW - 10)

    def receipt(self, customer: Signer, zapped: str, signer: Signer | None = None):
        """A zap receipt for PRICE from ``customer`` on ``zapped``, signed by the node's key."""
        import bolt11
        from bolt11.models.tags import TagChar, Tags
        from bolt11.types import Bolt11, MilliSatoshi

        request = customer.sign(9734, "", [["p", self.agent.pubkey], ["e", zapped], ["relays", "ws://x"],
                                           ["amount", str(PRICE)]], created_at=NOW - 50)
        preimage = os.urandom(32)
        tags = Tags()
        tags.add(TagChar.payment_hash, hashlib.sha256(preimage).hexdigest())
        tags.add(TagChar.payment_secret, os.urandom(32).hex())
        tags.add(TagChar.description_hash, nip57.description_hash(request.raw).hex())
        invoice = bolt11.encode(Bolt11(currency="bcrt", date=NOW - 50, tags=tags,
                                       amount_msat=MilliSatoshi(PRICE)), os.urandom(32).hex())
        parsed = nip57.parse_zap_request(request.raw)
        receipt_tags = nip57.receipt_tags(parsed, bolt11=invoice, preimage=preimage.hex())
        return (signer or self.node).sign(9735, "", receipt_tags, created_at=NOW - 40)


async def _service(pool, world, **kw) -> ReputationService:
    service = ReputationService(pool, roots=[world.root.pubkey], **kw)
    await service.load()
    return service


async def test_a_rating_proven_paid_by_preimage_weighs_more_than_an_unpaid_one(pool, tmp_path):
    world = World(pool, tmp_path)
    await world.announce()
    payer, stingy = Signer(os.urandom(32)), Signer(os.urandom(32))
    _, result, preimage = await world.job(payer)
    _, result2, _ = await world.job(stingy)
    await world.publish(world.rating(payer, result, preimage=preimage), world.rating(stingy, result2))
    service = await _service(pool, world)
    report = service.score(world.agent.pubkey)
    by_rater = {c.attestation.attester: c for c in report.contributions}
    assert by_rater[payer.pubkey].attestation.paid_msat == PRICE
    assert by_rater[stingy.pubkey].attestation.paid_msat == 0
    assert by_rater[payer.pubkey].weight > by_rater[stingy.pubkey].weight
    assert report.score > 0


async def test_a_wrong_preimage_proves_nothing(pool, tmp_path):
    world = World(pool, tmp_path)
    customer = Signer(os.urandom(32))
    _, result, _ = await world.job(customer)
    await world.publish(world.rating(customer, result, preimage=os.urandom(32).hex()))
    service = await _service(pool, world)
    assert service.score(world.agent.pubkey).contributions[0].attestation.paid_msat == 0


async def test_zap_receipts_prove_payment_only_when_signed_by_the_agents_node(pool, tmp_path):
    world = World(pool, tmp_path)
    await world.announce()
    honest, forger = Signer(os.urandom(32)), Signer(os.urandom(32))
    request, result, _ = await world.job(honest, quote=False)
    request2, result2, _ = await world.job(forger, quote=False)
    await world.publish(
        world.receipt(honest, request.id),
        world.receipt(forger, request2.id, signer=forger),  # anyone can sign a receipt; only the node's counts
        world.rating(honest, result),
        world.rating(forger, result2),
    )
    service = await _service(pool, world)
    paid = {c.attestation.attester: c.attestation.paid_msat for c in service.score(world.agent.pubkey).contributions}
    assert paid == {honest.pubkey: PRICE, forger.pubkey: 0}


async def test_trust_flows_from_the_roots_through_follows(pool, tmp_path):
    world = World(pool, tmp_path)
    friend, stranger = Signer(os.urandom(32)), Signer(os.urandom(32))
    _, result, _ = await world.job(friend)
    _, result2, _ = await world.job(stranger)
    await world.publish(
        world.root.sign(3, "", [["p", friend.pubkey]], created_at=NOW - 500),
        world.rating(friend, result),
        world.rating(stranger, result2),
    )
    service = await _service(pool, world)
    weights = {c.attestation.attester: c.weight for c in service.score(world.agent.pubkey).contributions}
    assert weights[friend.pubkey] > 20 * weights[stranger.pubkey] > 0


async def test_revocation_by_the_attester_only(pool, tmp_path):
    world = World(pool, tmp_path)
    customer = Signer(os.urandom(32))
    _, result, _ = await world.job(customer)
    rating = world.rating(customer, result)
    fake = Signer(os.urandom(32)).sign(5, "", [["e", rating.id], ["k", "1985"]], created_at=NOW)
    await world.publish(rating, fake)
    service = await _service(pool, world)
    assert service.score(world.agent.pubkey).raw > 0
    await world.publish(customer.sign(5, "changed my mind", [["e", rating.id], ["k", "1985"]], created_at=NOW))
    service = await _service(pool, world)
    report = service.score(world.agent.pubkey)
    assert report is None or report.raw == 0


async def test_live_service_publishes_nip85_ranks_for_its_subjects(pool, tmp_path):
    world = World(pool, tmp_path)
    customer = Signer(os.urandom(32))
    _, result, _ = await world.job(customer)
    service = ReputationService(
        pool, roots=[world.root.pubkey], signer=world.node, subjects=lambda: [world.agent.pubkey], debounce=0.05
    )
    await service.start()
    try:
        await world.publish(
            world.root.sign(3, "", [["p", customer.pubkey]], created_at=NOW - 500),
            world.rating(customer, result),
        )
        assertion = None
        for _ in range(100):
            found = await pool.query([{"kinds": [30382], "authors": [world.node.pubkey]}])
            if found and found[0].first_tag_value("rank") != "0":
                assertion = found[0]
                break
            await asyncio.sleep(0.05)
        assert assertion is not None, "a rank assertion appears once the rating counts"
        assert assertion.first_tag_value("d") == world.agent.pubkey
        assert int(assertion.first_tag_value("rank")) == round(service.rank(world.agent.pubkey)) > 0
    finally:
        await service.stop()


async def test_events_in_any_order_and_twice_count_once(pool, tmp_path):
    """A receipt seen before the announcement and the rating it zaps still counts, once."""
    from reputation.ingest import Ledger

    world = World(pool, tmp_path)
    customer = Signer(os.urandom(32))
    _, result, _ = await world.job(customer, quote=False)
    rating = world.rating(customer, result)
    receipt = world.receipt(customer, rating.id)
    info = HandlerInfo(pubkey=world.agent.pubkey, d="x", kinds=(5001,), node=world.node.pubkey)
    announcement = world.agent.sign(31990, handler_content(info), handler_tags(info), created_at=NOW)
    ledger = Ledger()
    for event in (receipt, receipt, rating, announcement, receipt):
        ledger.add(event)
    [counted] = ledger.current()
    assert counted.zap_sats == PRICE // 1000


async def test_sybil_ring_of_1000_and_a_spammer_lose_to_3_paid_jobs_from_trusted_customers(pool, tmp_path):
    """The whole pipeline (events -> graph -> PageRank -> score), Sybil case of the issue."""
    world = World(pool, tmp_path)
    await world.announce()
    honest_agent, sybil_target = world.agent, Signer(os.urandom(32))
    service = ReputationService(pool, roots=[world.root.pubkey])

    def label(author, target, ref=""):
        tags = attestation_tags(target.pubkey if hasattr(target, "pubkey") else target, "service-quality",
                                event_ref=ref)
        return author.sign(1985, "great", tags, created_at=NOW - 5)

    # 1,000 fresh keys following and rating each other and the Sybil target.
    ring = [Signer(os.urandom(32)) for _ in range(1000)]
    for i, key in enumerate(ring):
        peer = ring[(i + 1) % len(ring)]
        service.ledger.add(key.sign(3, "", [["p", peer.pubkey], ["p", sybil_target.pubkey]], created_at=NOW - 9))
        service.ledger.add(label(key, peer))
        service.ledger.add(label(key, sybil_target))
    # One key spamming 10,000 ratings of the Sybil target.
    spammer = Signer(os.urandom(32))
    for n in range(10_000):
        service.ledger.add(spammer.sign(1985, f"great {n}", attestation_tags(sybil_target.pubkey, "service-quality"),
                                        created_at=NOW - 5))
    # 3 customers the root follows, each with a paid job rated (preimage proof).
    customers = [Signer(os.urandom(32)) for _ in range(3)]
    await world.publish(world.root.sign(3, "", [["p", c.pubkey] for c in customers], created_at=NOW - 9))
    for customer in customers:
        _, result, preimage = await world.job(customer)
        await world.publish(world.rating(customer, result, preimage=preimage))
    await service.load()
    honest, sybil = service.rank(honest_agent.pubkey), service.rank(sybil_target.pubkey)
    assert sybil < 1.0, f"1,000-key ring + 10,000 spam ratings: {sybil:.2f} of 100"
    # The root follows the 3 customers: each gets ~0.28 of a root's trust, so their
    # paid history (capped together at 1.5 raw) decides: ~27 of 100.
    assert honest > 20, f"3 paid, rated jobs from trusted customers: {honest:.1f} of 100"
    assert honest > 25 * sybil
