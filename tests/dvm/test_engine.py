"""The engine against a real relay over websockets, with a customer client."""

from __future__ import annotations

import asyncio

import orjson

from nips.nip01 import verify_signature
from node.config import AgentConfig

from .conftest import SUMMARIZER, TEXT, Customer, status, wait_state


async def test_summarization_job_gets_processing_then_a_result(relay, start_engine, customer: Customer):
    engine = await start_engine([SUMMARIZER], [relay.url])
    request = await customer.request(5001, [["i", TEXT, "text"], ["param", "length", "1 sentences"]])
    answers, result = await customer.result(request.id)
    agent = engine.agents[0]
    assert result.kind == 6001
    assert result.pubkey == agent.pubkey and verify_signature(result)
    assert next(status(e) for e in answers if e.kind == 7000) == "processing"
    assert orjson.loads(result.first_tag_value("request")) == request.to_dict()
    assert result.tag_values("e") == [request.id]
    assert result.tag_values("p") == [customer.pubkey]
    assert ["i", TEXT, "text"] in result.tags
    assert result.first_tag_value("amount") == "0"
    assert "auction" in result.content or "sealed" in result.content.lower()


async def test_a_request_seen_on_two_relays_is_one_job(start_relay, start_engine):
    home, shared = await start_relay(), await start_relay()
    engine = await start_engine([SUMMARIZER], [home.url, shared.url])
    customers = [Customer(home.url), Customer(shared.url)]
    for c in customers:
        await c.start()
    # The same signed request, published on both relays.
    request = await customers[0].request(5001, [["i", TEXT, "text"]])
    ok, _ = await customers[1].link.publish(request)
    assert ok
    await customers[0].result(request.id)
    await asyncio.sleep(0.3)
    results = await customers[0].link.query([{"kinds": [6001], "#e": [request.id]}])
    assert len(results) == 1
    # The request from the shared relay is also in the home relay: the audit log.
    assert await customers[0].link.query([{"ids": [request.id]}])
    await wait_state(engine, request.id, "done")
    for c in customers:
        await c.stop()


async def test_requests_for_other_providers_are_left_alone(relay, start_engine, customer):
    await start_engine([SUMMARIZER], [relay.url])
    other = "ab" * 32
    request = await customer.request(5001, [["i", TEXT, "text"], ["p", other]])
    open_request = await customer.request(5001, [["i", TEXT, "text"]])
    await customer.result(open_request.id)
    assert not await customer.link.query([{"#e": [request.id], "kinds": [7000, 6001]}])


async def test_bad_requests_get_a_specific_7000_error(relay, start_engine, customer):
    engine = await start_engine([SUMMARIZER], [relay.url], max_input_bytes=1000)
    agent = engine.agents[0].pubkey
    cases = {
        "unknown kind": (5300, [["i", "x", "text"], ["p", agent]], "kind 5300 is not served"),
        "malformed i": (5001, [["i", "x", "sound"]], "input type 'sound' is not one of"),
        "short i": (5001, [["i", "x"]], "malformed i tag"),
        "bad event id": (5001, [["i", "xyz", "event"]], "must be a hex event id"),
        "oversized": (5001, [["i", "w " * 600, "text"]], "input too large: 1200 bytes (limit 1000)"),
        "bad param": (5001, [["i", TEXT, "text"], ["param", "length", "lots"]], "param length"),
        "bad bid": (5001, [["i", TEXT, "text"], ["bid", "-3"]], "is not an amount"),
    }
    for name, (kind, tags, reason) in cases.items():
        request = await customer.request(kind, tags)
        _, final = await customer.result(request.id)
        assert final.kind == 7000 and status(final) == "error", name
        info = next(t for t in final.tags if t[0] == "status")[2]
        assert reason in info, (name, info)
        assert final.pubkey == agent


def _priced(name: str, price: int) -> AgentConfig:
    return AgentConfig(name, kinds=(5001,), price_msat=price)


async def test_local_agents_compete_and_only_the_cheapest_answers_at_the_second_price(
    relay, start_engine, customer
):
    engine = await start_engine([_priced("a", 300), _priced("b", 100), _priced("c", 200)], [relay.url])
    cheapest = next(a for a in engine.agents if a.name == "b")
    request = await customer.request(5001, [["i", TEXT, "text"]])
    _, final = await customer.result(request.id)
    assert status(final) == "payment-required"
    assert final.pubkey == cheapest.pubkey
    assert final.first_tag_value("amount") == "200"  # the second-lowest ask
    await asyncio.sleep(0.3)
    answers = await customer.link.query([{"#e": [request.id]}])
    assert {e.pubkey for e in answers} == {cheapest.pubkey}


async def test_a_bid_below_every_price_gets_a_clear_error(relay, start_engine, customer):
    await start_engine([_priced("a", 5000)], [relay.url])
    request = await customer.request(5001, [["i", TEXT, "text"], ["bid", "1000"]])
    _, final = await customer.result(request.id)
    assert status(final) == "error"
    assert "bid 1000 msat is below the price of 5000 msat" in final.tags[0][2]


async def test_the_bid_filters_local_asks(relay, start_engine, customer):
    engine = await start_engine([_priced("a", 0), _priced("b", 900)], [relay.url])
    request = await customer.request(5001, [["i", TEXT, "text"], ["bid", "10"]])
    _, final = await customer.result(request.id)
    assert final.kind == 6001 and final.pubkey == engine.agents[0].pubkey
    assert final.first_tag_value("amount") == "0"  # alone within the bid: its own ask


async def test_encrypted_requests_get_encrypted_results_in_the_same_scheme(relay, start_engine, customer):
    import nostr_sdk

    engine = await start_engine([SUMMARIZER], [relay.url])
    agent = engine.agents[0]
    secret = nostr_sdk.SecretKey.parse(customer.signer.secret_hex())
    peer = nostr_sdk.PublicKey.parse(agent.pubkey)
    private = orjson.dumps([["i", TEXT, "text"], ["param", "length", "1 sentences"]]).decode()
    schemes = {
        "nip04": (nostr_sdk.nip04_encrypt(secret, peer, private), nostr_sdk.nip04_decrypt),
        "nip44": (
            nostr_sdk.nip44_encrypt(secret, peer, private, nostr_sdk.Nip44Version.V2),
            nostr_sdk.nip44_decrypt,
        ),
    }
    for name, (ciphertext, decrypt) in schemes.items():
        request = await customer.request(5001, [["p", agent.pubkey], ["encrypted"]], ciphertext)
        _, result = await customer.result(request.id)
        assert result.kind == 6001, name
        assert ["encrypted"] in result.tags
        assert not result.tag_values("i"), "an encrypted job's inputs stay private"
        assert TEXT not in result.content
        plain = decrypt(secret, peer, result.content)
        assert plain and plain in TEXT, name


async def test_encrypted_request_that_does_not_decrypt_gets_an_error(relay, start_engine, customer):
    engine = await start_engine([SUMMARIZER], [relay.url])
    agent = engine.agents[0]
    request = await customer.request(5001, [["p", agent.pubkey], ["encrypted"]], "bm9wZQ==?iv=bm9wZQ==")
    _, final = await customer.result(request.id)
    assert status(final) == "error" and "cannot decrypt params" in final.tags[0][2]


async def test_chained_job_waits_for_its_input_result(relay, start_engine, customer):
    await start_engine([SUMMARIZER], [relay.url])
    first = await customer.request(5001, [["i", TEXT, "text"], ["param", "length", "3 sentences"]])
    _, first_result = await customer.result(first.id)
    chained = await customer.request(
        5001, [["i", first.id, "job"], ["param", "length", "1 sentences"]]
    )
    _, result = await customer.result(chained.id)
    assert result.kind == 6001 and result.content in first_result.content


async def test_chained_job_on_a_job_not_done_yet_waits_then_runs(relay, start_engine, customer):
    engine = await start_engine([SUMMARIZER], [relay.url])
    # The input job is addressed to someone else: nobody here will answer it.
    upstream = await customer.request(5001, [["i", TEXT, "text"], ["p", "cd" * 32]])
    chained = await customer.request(5001, [["i", upstream.id, "job"]])
    await asyncio.sleep(0.5)
    record = await engine.store.get(chained.id)
    assert record is not None and record.state.value == "waiting_input"
    # Another provider delivers the upstream result.
    other = Customer(relay.url)
    await other.start()
    result = other.signer.sign(
        6001, "Agents bid in sealed auctions.", [["e", upstream.id], ["p", customer.pubkey]],
        created_at=upstream.created_at,
    )
    assert (await other.link.publish(result))[0]
    _, final = await customer.result(chained.id)
    assert final.kind == 6001 and final.content == "Agents bid in sealed auctions."
    await other.stop()


async def test_cancellation_by_deletion_stops_the_job(relay, start_engine, customer):
    slow_pow = AgentConfig("pow", kinds=(5970,), settings={"pow": {"max_difficulty": 60}})
    engine = await start_engine([slow_pow], [relay.url])
    unsigned = orjson.dumps({"kind": 1, "content": "x", "tags": [], "created_at": 1, "pubkey": customer.pubkey}).decode()
    request = await customer.request(5970, [["i", unsigned, "text"], ["param", "pow", "60"]])
    await customer.answers(request.id, lambda seen: any(status(e) == "processing" for e in seen))
    deletion = customer.signer.sign(5, "", [["e", request.id], ["k", "5970"]], created_at=request.created_at + 1)
    assert (await customer.link.publish(deletion))[0]
    answers = await customer.answers(request.id, lambda seen: any(status(e) == "error" for e in seen))
    error = next(e for e in answers if status(e) == "error")
    assert "cancelled" in error.tags[0][2]
    record = await engine.store.get(request.id)
    assert record is not None and record.state.value == "cancelled"
    assert engine.agents[0].running == 0


async def test_a_deletion_by_someone_else_does_not_cancel(relay, start_engine, customer):
    engine = await start_engine([SUMMARIZER], [relay.url])
    request = await customer.request(5001, [["i", TEXT, "text"]])
    stranger = Customer(relay.url)
    await stranger.start()
    fake = stranger.signer.sign(5, "", [["e", request.id]], created_at=request.created_at)
    await stranger.link.publish(fake)
    _, final = await customer.result(request.id)
    assert final.kind == 6001
    await stranger.stop()
    await wait_state(engine, request.id, "done")


async def test_time_limit_gives_an_error_and_the_node_goes_on(relay, start_engine, customer):
    slow_pow = AgentConfig(
        "pow", kinds=(5970,), time_limit_seconds=0.3, settings={"pow": {"max_difficulty": 60}}
    )
    engine = await start_engine([slow_pow, SUMMARIZER], [relay.url])
    unsigned = orjson.dumps({"kind": 1, "content": "x", "tags": [], "created_at": 1, "pubkey": customer.pubkey}).decode()
    request = await customer.request(5970, [["i", unsigned, "text"], ["param", "pow", "60"]])
    _, final = await customer.result(request.id)
    assert status(final) == "error" and "time limit of 0.3 s exceeded" in final.tags[0][2]
    after = await customer.request(5001, [["i", TEXT, "text"]])
    assert (await customer.result(after.id))[1].kind == 6001
    assert engine.agents[0].running == 0


async def test_a_handler_that_raises_gives_an_error_and_the_node_goes_on(relay, start_engine, customer):
    engine = await start_engine([SUMMARIZER], [relay.url])
    handler = engine.agents[0].handlers[5001]

    class Broken:
        kind, name, title = handler.kind, handler.name, handler.title
        check_settings = handler.check_settings
        unavailable = handler.unavailable
        validate = handler.validate

        async def run(self, ctx):
            raise RuntimeError("disk on fire")

    engine.agents[0].handlers[5001] = Broken()
    request = await customer.request(5001, [["i", TEXT, "text"]])
    _, final = await customer.result(request.id)
    assert status(final) == "error" and "internal error in summarize: RuntimeError" in final.tags[0][2]
    assert "disk on fire" not in final.tags[0][2]  # internals stay in the log
    engine.agents[0].handlers[5001] = handler
    again = await customer.request(5001, [["i", TEXT, "text"], ["t", "again"]])
    assert (await customer.result(again.id))[1].kind == 6001


async def test_answers_also_go_to_the_relays_the_customer_names(start_relay, start_engine):
    home, theirs = await start_relay(), await start_relay()
    engine = await start_engine([SUMMARIZER], [home.url])
    customer = Customer(home.url)
    await customer.start()
    request = await customer.request(5001, [["i", TEXT, "text"], ["relays", theirs.url, "not a url"]])
    await customer.result(request.id)
    watcher = Customer(theirs.url)
    await watcher.start()
    for _ in range(50):
        if await watcher.link.query([{"kinds": [6001], "#e": [request.id]}]):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the result never reached the customer's relay")
    # The node does not take jobs from a relay a customer named.
    stray = await watcher.request(5001, [["i", TEXT, "text"], ["t", "stray"]])
    await asyncio.sleep(0.5)
    assert await engine.store.get(stray.id) is None
    await customer.stop()
    await watcher.stop()


async def test_text_generation_streams_partial_feedback_then_the_result(relay, start_engine, customer):
    from tests.fakes.openai_server import FakeOpenAI

    async with FakeOpenAI(chunk_delay=0.15) as fake:
        writer = AgentConfig(
            "writer", kinds=(5050,), settings={"textgen": {"endpoint": fake.base_url, "model": "fake-model"}}
        )
        engine = await start_engine([writer], [relay.url])
        assert 5050 in engine.agents[0].handlers
        words = "one two three four five six seven eight nine ten eleven twelve"
        request = await customer.request(5050, [["i", words, "text"]])
        answers, result = await customer.result(request.id, timeout=15)
    assert result.kind == 6050
    assert result.content.split() == list(reversed(words.split()))  # the fake reverses the prompt
    partial = [e for e in answers if status(e) == "partial"]
    assert partial, "a generation of ~2 s reports progress"
    assert all(e.content and e.content in result.content for e in partial)


async def test_a_paused_agent_takes_no_new_jobs_and_says_so_when_addressed(relay, start_engine, customer):
    engine = await start_engine([SUMMARIZER], [relay.url])
    agent = engine.agents[0]
    await engine.set_paused("summarizer", True)
    addressed = await customer.request(5001, [["i", TEXT, "text"], ["p", agent.pubkey]])
    _, final = await customer.result(addressed.id)
    assert status(final) == "error" and "paused" in final.tags[0][2]
    open_request = await customer.request(5001, [["i", TEXT, "text"], ["t", "open"]])
    await wait_state(engine, open_request.id, "declined")
    await engine.set_paused("summarizer", False)
    again = await customer.request(5001, [["i", TEXT, "text"], ["t", "again"]])
    assert (await customer.result(again.id))[1].kind == 6001
