"""The engine acts on reputation: local tie-breaks and an auction's min_reputation."""

from __future__ import annotations

import os
import time

from dvm.client import JobSpec, build_request
from nips.nip01 import Signer
from node.config import AgentConfig
from node.links import RelayPool
from reputation.labels import attestation_tags
from reputation.service import ReputationService

from .conftest import TEXT, Customer, wait_state


async def _reputed(relay, start_engine, customer: Customer):
    """Two agents with the same ask; a customer the root trusts has rated one of them."""
    root, rater = Signer(os.urandom(32)), Signer(os.urandom(32))
    pool = RelayPool([relay.url])
    await pool.start()
    service = ReputationService(pool, roots=[root.pubkey])
    engine = await start_engine(
        [AgentConfig("plain", kinds=(5001,)), AgentConfig("rated", kinds=(5001,))],
        [relay.url],
        services={"reputation": service},
    )
    rated = next(a for a in engine.agents if a.name == "rated")
    now = int(time.time())
    job = rater.sign(5001, "", [["i", "x", "text"], ["p", "ab" * 32]], created_at=now - 60)
    result = rated.signer.sign(6001, "ok", [["e", job.id], ["p", rater.pubkey]], created_at=now - 50)
    label = rater.sign(1985, "good", attestation_tags(rated.pubkey, "service-quality", event_ref=result.id),
                       created_at=now - 40)
    follow = root.sign(3, "", [["p", rater.pubkey]], created_at=now - 30)
    for event in (job, result, label, follow):
        assert (await customer.link.publish(event))[0]
    await service.load()
    assert service.rank(rated.pubkey) > 1.0
    return engine, rated, pool


async def test_equal_asks_go_to_the_agent_with_the_better_reputation(relay, start_engine, customer):
    _, rated, pool = await _reputed(relay, start_engine, customer)
    for n in range(3):
        request = await customer.request(5001, [["i", TEXT, "text"], ["t", str(n)]])
        _, result = await customer.result(request.id)
        assert result.pubkey == rated.pubkey
    await pool.stop()


async def test_agents_below_min_reputation_do_not_bid(relay, start_engine, customer):
    engine, rated, pool = await _reputed(relay, start_engine, customer)
    service = engine.services["reputation"]
    # Another node on the same relay, whose only agent nobody has rated.
    other = await start_engine([AgentConfig("newcomer", kinds=(5001,))], [relay.url],
                               services={"reputation": service})
    threshold = service.rank(rated.pubkey) / 2
    spec = JobSpec(5001, [(TEXT, "text")], auction_seconds=(2, 1))
    for minimum, bidders in ((None, {rated.pubkey, other.agents[0].pubkey}), (threshold, {rated.pubkey})):
        draft = build_request(spec, customer.signer, int(time.time()))
        tags = [*draft.tags, ["t", str(minimum)]]
        if minimum is not None:
            tags.append(["param", "min_reputation", f"{minimum:.1f}"])
        request = customer.signer.sign(5001, "", tags, created_at=draft.created_at)
        assert (await customer.link.publish(request))[0]
        await wait_state(engine, request.id, "bidding")
        if minimum is not None:
            await wait_state(other, request.id, "declined")
        else:
            await wait_state(other, request.id, "bidding")
        commits = await customer.link.query([{"kinds": [7010], "#e": [request.id]}])
        assert {c.pubkey for c in commits} == bidders, minimum
    await pool.stop()
