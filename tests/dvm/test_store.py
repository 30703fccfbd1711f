"""Tests for dvm/store.py: jobs, their outbox, bids, announcements; group commit on one thread."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dvm.jobs import State
from dvm.store import Announcement, BidRecord, JobStore, StaleState
from nips.nip01 import Event, Signer

CUSTOMER = Signer(os.urandom(32))
AGENT = Signer(os.urandom(32))


def job_request(n: int = 0, kind: int = 5001) -> Event:
    return CUSTOMER.sign(kind, "", [["i", f"input {n}", "text"]], created_at=1_700_000_000 + n)


def answer(request: Event, status: str = "processing", n: int = 0) -> Event:
    tags = [["status", status], ["e", request.id], ["p", request.pubkey]]
    return AGENT.sign(7000, "", tags, created_at=1_700_000_100 + n)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "node.sqlite3"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[JobStore]:
    store = JobStore(path)
    await store.open()
    yield store
    await store.close()


async def reopen(store: JobStore) -> JobStore:
    await store.close()
    again = JobStore(store.path)
    await again.open()
    return again


# --- claim ---------------------------------------------------------------------------


async def test_claim_records_a_request_once(store):
    request = job_request()
    record = await store.claim(request)
    assert record is not None
    assert (record.id, record.kind, record.customer, record.state) == (
        request.id,
        5001,
        CUSTOMER.pubkey,
        State.RECEIVED,
    )
    assert (record.agent, record.price_msat, record.reason, record.request) == (
        "",
        None,
        "",
        request.raw,
    )
    assert await store.claim(request) is None
    assert await store.get(request.id) == record


async def test_claim_is_remembered_after_a_restart(store):
    request = job_request()
    record = await store.claim(request)
    store = await reopen(store)
    try:
        assert await store.claim(request) is None
        assert await store.get(request.id) == record
    finally:
        await store.close()


async def test_same_request_claimed_concurrently_is_one_job(store):
    request = job_request()
    records = await asyncio.gather(*(store.claim(request) for _ in range(20)))
    assert sum(r is not None for r in records) == 1
    assert await store.counts() == {(5001, "received"): 1}


async def test_get_of_an_unknown_job_is_none(store):
    assert await store.get("0" * 64) is None


# --- transition and the outbox -----------------------------------------------------------


async def test_transition_moves_the_job_and_sets_its_columns(store):
    request = job_request()
    await store.claim(request)
    await store.transition(
        request.id, State.RECEIVED, State.PAYMENT_REQUIRED, agent="summarizer", price_msat=21000
    )
    await store.transition(request.id, State.PAYMENT_REQUIRED, State.FAILED, reason="too long")
    record = await store.get(request.id)
    assert record is not None
    assert (record.state, record.agent, record.price_msat, record.reason) == (
        State.FAILED,
        "summarizer",
        21000,
        "too long",
    )


async def test_transition_from_the_wrong_state_raises_and_writes_nothing(store):
    request = job_request()
    await store.claim(request)
    await store.transition(request.id, State.RECEIVED, State.CANCELLED)
    with pytest.raises(StaleState, match="is not received"):
        await store.transition(
            request.id, State.RECEIVED, State.PROCESSING, agent="late", outbox=[answer(request)]
        )
    record = await store.get(request.id)
    assert record is not None and (record.state, record.agent) == (State.CANCELLED, "")
    assert await store.unsent() == []
    assert await store.outbox_of(request.id) == []


async def test_transition_of_an_unknown_job_is_stale(store):
    with pytest.raises(StaleState):
        await store.transition(
            "0" * 64, State.RECEIVED, State.PROCESSING, outbox=[answer(job_request())]
        )
    assert await store.unsent() == []


async def test_transition_whose_outbox_cannot_be_stored_changes_nothing(store):
    request = job_request()
    await store.claim(request)
    unstorable = dataclasses.replace(answer(request), raw=["not", "text"])  # type: ignore[arg-type]
    with pytest.raises(sqlite3.Error):
        await store.transition(
            request.id, State.RECEIVED, State.PROCESSING, outbox=[answer(request, n=1), unstorable]
        )
    record = await store.get(request.id)
    assert record is not None and record.state is State.RECEIVED
    assert await store.unsent() == []


async def test_outbox_events_are_unsent_until_marked_sent(store):
    request = job_request()
    await store.claim(request)
    processing, partial = answer(request, "processing"), answer(request, "partial", n=1)
    await store.transition(
        request.id, State.RECEIVED, State.PROCESSING, outbox=[processing, partial]
    )
    assert await store.unsent() == [(request.id, processing.raw), (request.id, partial.raw)]
    await store.mark_sent([processing.id])
    assert await store.unsent() == [(request.id, partial.raw)]
    await store.mark_sent([partial.id, "f" * 64])
    assert await store.unsent() == []
    assert await store.outbox_of(request.id) == [processing.raw, partial.raw]


async def test_the_same_signed_event_is_stored_once(store):
    request = job_request()
    await store.claim(request)
    event = answer(request)
    await store.transition(request.id, State.RECEIVED, State.PROCESSING, outbox=[event, event])
    await store.add_outbox(request.id, [event])
    assert await store.unsent() == [(request.id, event.raw)]


async def test_add_outbox_changes_no_state(store):
    request = job_request()
    await store.claim(request)
    event = answer(request, "partial")
    await store.add_outbox(request.id, [event])
    record = await store.get(request.id)
    assert record is not None and record.state is State.RECEIVED
    assert await store.outbox_of(request.id) == [event.raw]


async def test_unsent_events_survive_a_restart(store):
    request = job_request()
    await store.claim(request)
    sent, pending = answer(request, "processing"), answer(request, "partial", n=1)
    await store.transition(request.id, State.RECEIVED, State.PROCESSING, outbox=[sent, pending])
    await store.mark_sent([sent.id])
    store = await reopen(store)
    try:
        assert await store.unsent() == [(request.id, pending.raw)]
    finally:
        await store.close()


# --- active jobs ---------------------------------------------------------------------------


async def test_active_jobs_are_the_unfinished_ones_oldest_first(store):
    requests = [job_request(n) for n in range(8)]
    for request in requests:
        await store.claim(request)
    paths = [
        [],
        [State.BIDDING],
        [State.WAITING_INPUT],
        [State.PAYMENT_REQUIRED, State.EXPIRED],
        [State.PROCESSING, State.DELIVERING, State.DONE],
        [State.FAILED],
        [State.CANCELLED],
        [State.DECLINED],
    ]
    for request, path in zip(requests, paths, strict=True):
        state = State.RECEIVED
        for new in path:
            await store.transition(request.id, state, new)
            state = new
    expected = {
        requests[0].id: State.RECEIVED,
        requests[1].id: State.BIDDING,
        requests[2].id: State.WAITING_INPUT,
    }
    assert {r.id: r.state for r in await store.active()} == expected
    store = await reopen(store)
    try:
        active = await store.active()
        assert {r.id: r.state for r in active} == expected
        assert [(r.seen_at, r.id) for r in active] == sorted((r.seen_at, r.id) for r in active)
        counts = await store.counts()
        assert counts[(5001, "done")] == 1 and sum(counts.values()) == 8
    finally:
        await store.close()


# --- bids, announcements, meta ---------------------------------------------------------------


async def test_bid_round_trips_and_is_replaced(store):
    assert await store.bid("a" * 64) is None
    bid = BidRecord("a" * 64, "summarizer", 1500, "ab" * 16, "c" * 64, revealed=False)
    await store.save_bid(bid)
    assert await store.bid("a" * 64) == bid
    revealed = dataclasses.replace(bid, revealed=True)
    await store.save_bid(revealed)
    store = await reopen(store)
    try:
        assert await store.bid("a" * 64) == revealed
    finally:
        await store.close()


async def test_announcements_round_trip_and_are_forgotten(store):
    assert await store.announcements() == {}
    first = Announcement("summarizer", AGENT.pubkey, "summarizer", "e" * 64, "digest1")
    other = Announcement("pow", CUSTOMER.pubkey, "pow", "f" * 64, "digest2")
    await store.save_announcement(first)
    await store.save_announcement(other)
    newer = dataclasses.replace(first, event_id="1" * 64, digest="digest3")
    await store.save_announcement(newer)
    assert await store.announcements() == {"summarizer": newer, "pow": other}
    await store.forget_announcement("pow")
    await store.forget_announcement("never announced")
    assert await store.announcements() == {"summarizer": newer}


async def test_meta_round_trips(store):
    assert await store.get_meta("node_key") is None
    await store.set_meta("node_key", "one")
    await store.set_meta("node_key", "two")
    await store.set_meta("empty", "")
    store = await reopen(store)
    try:
        assert await store.get_meta("node_key") == "two"
        assert await store.get_meta("empty") == ""
    finally:
        await store.close()


# --- group commit and the file ------------------------------------------------------------------


async def test_many_concurrent_claims_all_land(store, path):
    requests = [job_request(n) for n in range(500)]
    records = await asyncio.gather(*(store.claim(r) for r in requests))
    assert [r.id for r in records if r is not None] == [r.id for r in requests]
    assert await store.counts() == {(5001, "received"): 500}
    again = await asyncio.gather(*(store.claim(r) for r in requests))
    assert again == [None] * 500
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_many_concurrent_transitions_all_land(store):
    requests = [job_request(n) for n in range(200)]
    await asyncio.gather(*(store.claim(r) for r in requests))
    await asyncio.gather(
        *(
            store.transition(r.id, State.RECEIVED, State.PROCESSING, outbox=[answer(r)])
            for r in requests
        )
    )
    assert await store.counts() == {(5001, "processing"): 200}
    assert len(await store.unsent()) == 200


async def test_a_failing_operation_does_not_fail_its_batch(store):
    known = job_request(1000)
    await store.claim(known)
    fresh = [job_request(n) for n in range(100)]
    results = await asyncio.gather(
        *(store.claim(r) for r in fresh[:50]),
        store.transition(known.id, State.PROCESSING, State.DONE, outbox=[answer(known)]),
        store.transition(known.id, State.RECEIVED, State.BIDDING, price_msat=2**70),
        *(store.claim(r) for r in fresh[50:]),
        return_exceptions=True,
    )
    assert isinstance(results[50], StaleState)
    assert isinstance(results[51], OverflowError)
    claimed = results[:50] + results[52:]
    assert [r.id for r in claimed] == [r.id for r in fresh]
    assert (await store.get(known.id)).state is State.RECEIVED
    assert await store.unsent() == []
    assert await store.counts() == {(5001, "received"): 101}


async def test_schema_version_is_the_latest_migration(store, path):
    from dvm.store import SCHEMA

    await store.claim(job_request())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(SCHEMA) == 3
        tables = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    assert {"jobs", "outbox", "bids", "announcements", "meta", "payments"} <= tables
    store = await reopen(store)  # opening a current file migrates nothing
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3


async def test_close_twice_is_harmless(path):
    store = JobStore(path)
    await store.close()
    await store.open()
    await store.close()
    await store.close()


async def test_open_fails_on_a_path_that_cannot_be_a_database(tmp_path):
    store = JobStore(tmp_path / "missing" / "node.sqlite3")
    with pytest.raises(sqlite3.Error):
        await store.open()


async def test_a_version_1_file_is_migrated_and_keeps_its_jobs(path):
    from dvm.store import SCHEMA

    with sqlite3.connect(path) as db:
        db.executescript(f"BEGIN; {SCHEMA[0]}; PRAGMA user_version = 1; COMMIT;")
        db.execute(
            "INSERT INTO jobs (id, kind, customer, state, request, seen_at, updated_at)"
            " VALUES ('ab', 5001, 'cd', 'received', '{}', 1, 1)"
        )
    store = JobStore(path)
    await store.open()
    try:
        assert (await store.get("ab")).kind == 5001
        assert await store.ledger() == {}
    finally:
        await store.close()
