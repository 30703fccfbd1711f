"""Kind 5312 "verify reputation" through the engine, Vertex-style, from the node's trust graph."""

from __future__ import annotations

import asyncio
import os
import time

import orjson

from nips.nip01 import Signer
from node.config import AgentConfig
from reputation.service import ReputationService

from .conftest import Customer, status

REPUTATION = AgentConfig("reputation", kinds=(5312,))


async def test_verify_reputation_ranks_the_target_and_its_followers(relay, start_engine, customer: Customer):
    root, a, b, target = (Signer(os.urandom(32)) for _ in range(4))
    now = int(time.time())
    for author, followed in ((root, [a]), (a, [target]), (b, [target])):
        ok, _ = await customer.link.publish(author.sign(3, "", [["p", f.pubkey] for f in followed], created_at=now))
        assert ok
    from node.links import RelayPool

    pool = RelayPool([relay.url])
    await pool.start()
    service = ReputationService(pool, roots=[root.pubkey])
    await service.load()
    await start_engine([REPUTATION], [relay.url], services={"reputation": service})
    request = await customer.request(
        5312,
        [["param", "target", target.pubkey], ["param", "sort", "personalizedPagerank"],
         ["param", "source", root.pubkey], ["param", "limit", "10"]],
    )
    _, result = await customer.result(request.id)
    assert result.kind == 6312
    content = orjson.loads(result.content)
    assert content[0]["pubkey"] == target.pubkey
    assert (content[0]["followers"], content[0]["follows"]) == (2, 0)
    assert [row["pubkey"] for row in content[1:]] == [a.pubkey, b.pubkey]  # a is trusted by the root
    assert content[1]["rank"] > content[2]["rank"] == 0.0
    assert result.first_tag_value("sort") == "personalizedPagerank"
    assert result.first_tag_value("source") == root.pubkey
    assert result.first_tag_value("nodes") == "4"
    # followerCount and the default (globalPagerank) work too.
    request = await customer.request(5312, [["param", "target", target.pubkey], ["param", "sort", "followerCount"]])
    _, result = await customer.result(request.id)
    assert orjson.loads(result.content)[0]["rank"] == 2.0
    await pool.stop()


async def test_bad_verify_requests_get_an_error(relay, start_engine, customer: Customer):
    from node.links import RelayPool

    pool = RelayPool([relay.url])
    await pool.start()
    service = ReputationService(pool, roots=[])
    await start_engine([REPUTATION], [relay.url], services={"reputation": service})
    for tags, reason in (
        ([], "param target is required"),
        ([["param", "target", "nobody"]], "is not a pubkey"),
        ([["param", "target", "ab" * 32], ["param", "sort", "random"]], "param sort"),
        ([["param", "target", "ab" * 32], ["param", "limit", "1000"]], "param limit"),
    ):
        request = await customer.request(5312, [*tags, ["t", os.urandom(4).hex()]])
        _, final = await customer.result(request.id)
        assert status(final) == "error" and reason in final.tags[0][2], (tags, final.tags[0])
    await asyncio.sleep(0)
    await pool.stop()
