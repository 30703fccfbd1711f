"""The EventStore conformance suite: every backend must pass all of it.

The ``store`` fixture (conftest.py) yields each backend opened; cases follow
NIP-01 (filters, kinds, ordering), NIP-09 (deletion), NIP-40 (expiration) and
NIP-45 (count). SqliteStore-only cases (persistence, schema) are at the end.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path
from typing import Any

import coincurve
import orjson
import pytest

from nips.nip01 import Event, Filter, newest_first_key, parse_filter
from relay.store.base import EventStore, SaveResult
from relay.store.memory import MemoryStore
from relay.store.sqlite import SCHEMA_VERSION, SqliteStore
from tests.helpers import make_event

NOW = 1_700_000_000
ALICE, BOB = coincurve.PrivateKey(), coincurve.PrivateKey()
STORED, DUPLICATE = SaveResult.STORED, SaveResult.DUPLICATE
REPLACED_NEWER, DELETED = SaveResult.REPLACED_NEWER, SaveResult.DELETED


def f(**fields: Any) -> Filter:
    """A filter from its JSON fields; ``tag_x=[...]`` stands for ``"#x": [...]``."""
    obj = {("#" + k[4:] if k.startswith("tag_") else k): v for k, v in fields.items()}
    return parse_filter(obj)


async def ids(
    store: EventStore, *filters: Filter, now: int = NOW, default_limit: int = 500
) -> list[str]:
    raws = await store.query(filters, now=now, default_limit=default_limit)
    return [orjson.loads(raw)["id"] for raw in raws]


def newest_first(*events: Event) -> list[str]:
    return [e.id for e in sorted(events, key=newest_first_key)]


def note(key: coincurve.PrivateKey = ALICE, at: int = NOW - 100, **kw: Any) -> Event:
    return make_event(key, created_at=at, **kw)


def pubkey(key: coincurve.PrivateKey) -> str:
    return key.public_key_xonly.format().hex()


def deletion(key: coincurve.PrivateKey, *targets: Event | str, at: int = NOW - 50) -> Event:
    tags = []
    for target in targets:
        if isinstance(target, str):
            tags.append(["a", target])
        else:
            tags.append(["e", target.id])
    return make_event(key, kind=5, tags=tags, created_at=at)


# --- storing -------------------------------------------------------------------


async def test_stores_and_serves_the_raw_json(store: EventStore) -> None:
    event = note(content="hello")
    assert await store.save_many([event]) == [STORED]
    assert await store.query([f(ids=[event.id])], now=NOW, default_limit=10) == [event.raw]


async def test_same_event_twice_is_duplicate(store: EventStore) -> None:
    event = note()
    assert await store.save_many([event]) == [STORED]
    assert await store.save_many([event]) == [DUPLICATE]
    assert await ids(store, f()) == [event.id]


async def test_duplicate_within_one_batch(store: EventStore) -> None:
    event = note()
    assert await store.save_many([event, event]) == [STORED, DUPLICATE]


async def test_empty_batch(store: EventStore) -> None:
    assert await store.save_many([]) == []


async def test_results_follow_input_order(store: EventStore) -> None:
    a, b, c = note(content="a"), note(content="b"), note(content="c")
    await store.save_many([b])
    assert await store.save_many([a, b, c]) == [STORED, DUPLICATE, STORED]


# --- filters -------------------------------------------------------------------


@pytest.fixture
async def sample(store: EventStore) -> dict[str, Event]:
    """Six events with distinct times, authors, kinds and tags."""
    target = note(BOB, at=NOW - 1000, content="target")
    events = {
        "target": target,
        "reply": note(ALICE, at=NOW - 900, tags=[["e", target.id], ["p", pubkey(BOB)]]),
        "reaction": note(ALICE, at=NOW - 800, kind=7, content="+", tags=[["e", target.id]]),
        "topic": note(BOB, at=NOW - 700, tags=[["t", "nostr"], ["t", "python", "ignored"]]),
        "comment": note(BOB, at=NOW - 600, kind=1111, tags=[["E", target.id], ["K", "1"]]),
        "second_value": note(ALICE, at=NOW - 500, tags=[["t", "rust", "nostr"]]),
    }
    assert await store.save_many(list(events.values())) == [STORED] * len(events)
    return events


async def test_filter_by_ids(store: EventStore, sample: dict[str, Event]) -> None:
    wanted = [sample["reply"].id, sample["topic"].id]
    assert await ids(store, f(ids=wanted)) == newest_first(sample["reply"], sample["topic"])
    assert await ids(store, f(ids=["ab" * 32])) == []


async def test_filter_by_authors(store: EventStore, sample: dict[str, Event]) -> None:
    bobs = [e for e in sample.values() if e.pubkey == pubkey(BOB)]
    assert await ids(store, f(authors=[pubkey(BOB)])) == newest_first(*bobs)
    both = await ids(store, f(authors=[pubkey(ALICE), pubkey(BOB)]))
    assert both == newest_first(*sample.values())


async def test_filter_by_kinds(store: EventStore, sample: dict[str, Event]) -> None:
    assert await ids(store, f(kinds=[7])) == [sample["reaction"].id]
    assert await ids(store, f(kinds=[7, 1111])) == newest_first(
        sample["reaction"], sample["comment"]
    )
    assert await ids(store, f(kinds=[2])) == []


async def test_filter_by_e_and_p_tags(store: EventStore, sample: dict[str, Event]) -> None:
    target = sample["target"]
    assert await ids(store, f(tag_e=[target.id])) == newest_first(
        sample["reply"], sample["reaction"]
    )
    assert await ids(store, f(tag_p=[pubkey(BOB)])) == [sample["reply"].id]
    assert await ids(store, f(tag_e=[target.id], kinds=[7])) == [sample["reaction"].id]
    assert await ids(store, f(tag_e=[target.id], tag_p=[pubkey(BOB)])) == [sample["reply"].id]


async def test_filter_by_t_tag_uses_first_value_only(
    store: EventStore, sample: dict[str, Event]
) -> None:
    assert await ids(store, f(tag_t=["python"])) == [sample["topic"].id]
    assert await ids(store, f(tag_t=["ignored"])) == []
    # "nostr" is the second value of the rust tag: not indexed (NIP-01 "Tags").
    assert await ids(store, f(tag_t=["nostr"])) == [sample["topic"].id]
    both = await ids(store, f(tag_t=["nostr", "rust"]))
    assert both == newest_first(sample["topic"], sample["second_value"])


async def test_event_matching_several_tag_values_comes_once(store: EventStore) -> None:
    event = note(tags=[["t", "a"], ["t", "b"], ["t", "a"]])
    await store.save_many([event])
    assert await ids(store, f(tag_t=["a", "b"])) == [event.id]
    assert await store.count([f(tag_t=["a", "b"])], now=NOW) == 1


async def test_filter_by_uppercase_tag(store: EventStore, sample: dict[str, Event]) -> None:
    assert await ids(store, f(tag_E=[sample["target"].id])) == [sample["comment"].id]
    assert await ids(store, f(tag_K=["1"])) == [sample["comment"].id]
    assert await ids(store, f(tag_k=["1"])) == []


async def test_since_and_until_are_inclusive(store: EventStore, sample: dict[str, Event]) -> None:
    assert await ids(store, f(since=NOW - 600)) == newest_first(
        sample["comment"], sample["second_value"]
    )
    assert await ids(store, f(until=NOW - 900)) == newest_first(sample["target"], sample["reply"])
    window = await ids(store, f(since=NOW - 800, until=NOW - 700))
    assert window == newest_first(sample["reaction"], sample["topic"])
    assert await ids(store, f(since=NOW - 800, until=NOW - 900)) == []
    tagged = await ids(store, f(tag_e=[sample["target"].id], since=NOW - 850))
    assert tagged == [sample["reaction"].id]


async def test_limit_keeps_the_newest(store: EventStore, sample: dict[str, Event]) -> None:
    everything = newest_first(*sample.values())
    assert await ids(store, f(limit=2)) == everything[:2]
    assert await ids(store, f(authors=[pubkey(ALICE)], limit=1)) == [sample["second_value"].id]
    assert await ids(store, f(limit=0)) == []


async def test_default_limit_applies_without_limit(
    store: EventStore, sample: dict[str, Event]
) -> None:
    everything = newest_first(*sample.values())
    assert await ids(store, f(), default_limit=3) == everything[:3]
    assert await ids(store, f(limit=5), default_limit=3) == everything[:5]


async def test_filters_are_a_union_without_duplicates(
    store: EventStore, sample: dict[str, Event]
) -> None:
    got = await ids(store, f(kinds=[7]), f(authors=[pubkey(ALICE)]), f(ids=[sample["target"].id]))
    alices = [e for e in sample.values() if e.pubkey == pubkey(ALICE)]
    assert got == newest_first(*alices, sample["target"])


async def test_each_filter_has_its_own_limit(store: EventStore, sample: dict[str, Event]) -> None:
    got = await ids(store, f(authors=[pubkey(ALICE)], limit=1), f(authors=[pubkey(BOB)], limit=1))
    assert got == newest_first(sample["second_value"], sample["comment"])


async def test_empty_lists_match_nothing(store: EventStore, sample: dict[str, Event]) -> None:
    for empty in (f(ids=[]), f(authors=[]), f(kinds=[]), f(tag_t=[])):
        assert await ids(store, empty) == []
        assert await store.count([empty], now=NOW) == 0
    assert await ids(store) == []


async def test_ties_go_to_the_lowest_id(store: EventStore) -> None:
    same_time = [note(content=str(n), at=NOW - 10) for n in range(8)]
    older = note(content="older", at=NOW - 11)
    await store.save_many([older, *same_time])
    lowest = sorted(e.id for e in same_time)
    assert await ids(store, f(limit=3)) == lowest[:3]
    assert await ids(store, f(authors=[pubkey(ALICE)], kinds=[1], limit=3)) == lowest[:3]
    assert await ids(store, f()) == [*lowest, older.id]
    union = await ids(store, f(ids=lowest[4:]), f(ids=lowest[:2]), f(ids=[older.id]))
    assert union == [*lowest[:2], *lowest[4:], older.id]


async def test_ties_in_tag_queries_go_to_the_lowest_id(store: EventStore) -> None:
    same_time = [note(content=str(n), at=NOW - 10, tags=[["t", "x"]]) for n in range(6)]
    await store.save_many(same_time)
    lowest = sorted(e.id for e in same_time)
    assert await ids(store, f(tag_t=["x"], limit=2)) == lowest[:2]
    assert await ids(store, f(tag_t=["x", "y"], limit=2)) == lowest[:2]


# --- replaceable and addressable events ----------------------------------------


@pytest.mark.parametrize("kind", [0, 3, 10002])
async def test_newer_replaceable_replaces_older(store: EventStore, kind: int) -> None:
    old, new = note(kind=kind, at=NOW - 20), note(kind=kind, at=NOW - 10)
    assert await store.save_many([old]) == [STORED]
    assert await store.save_many([new]) == [STORED]
    assert await ids(store, f(kinds=[kind])) == [new.id]
    assert await ids(store, f(authors=[pubkey(ALICE)], kinds=[kind])) == [new.id]
    assert await ids(store, f(authors=[pubkey(BOB)], kinds=[kind])) == []
    assert await store.save_many([old]) == [REPLACED_NEWER]
    assert await store.save_many([new]) == [DUPLICATE]
    assert await ids(store, f(ids=[old.id])) == []


@pytest.mark.parametrize("kind", [0, 3, 10002])
async def test_older_replaceable_arriving_later_is_refused(store: EventStore, kind: int) -> None:
    old, new = note(kind=kind, at=NOW - 20), note(kind=kind, at=NOW - 10)
    assert await store.save_many([new, old]) == [STORED, REPLACED_NEWER]
    assert await ids(store, f(authors=[pubkey(ALICE)])) == [new.id]


async def test_replaced_version_leaves_the_tag_index(store: EventStore) -> None:
    old = note(kind=0, at=NOW - 20, tags=[["t", "old"]])
    new = note(kind=0, at=NOW - 10)
    await store.save_many([old])
    await store.save_many([new])
    assert await ids(store, f(tag_t=["old"])) == []
    assert await store.count([f(tag_t=["old"])], now=NOW) == 0


@pytest.mark.parametrize("arrival", ["low-first", "high-first"])
async def test_replaceable_tie_keeps_the_lowest_id(store: EventStore, arrival: str) -> None:
    a, b = note(kind=0, content="a", at=NOW - 10), note(kind=0, content="b", at=NOW - 10)
    low, high = sorted([a, b], key=lambda e: e.id)
    if arrival == "low-first":
        assert await store.save_many([low]) == [STORED]
        assert await store.save_many([high]) == [REPLACED_NEWER]
    else:
        assert await store.save_many([high, low]) == [STORED, STORED]
    assert await ids(store, f(kinds=[0])) == [low.id]


async def test_replaceable_versions_of_different_authors_coexist(store: EventStore) -> None:
    mine, yours = note(ALICE, kind=0), note(BOB, kind=0)
    await store.save_many([mine, yours])
    assert await ids(store, f(kinds=[0])) == newest_first(mine, yours)


async def test_addressable_events_are_keyed_by_d(store: EventStore) -> None:
    post_a1 = note(kind=30023, at=NOW - 30, tags=[["d", "a"]], content="1")
    post_b = note(kind=30023, at=NOW - 25, tags=[["d", "b"]])
    post_a2 = note(kind=30023, at=NOW - 20, tags=[["d", "a"]], content="2")
    assert await store.save_many([post_a1, post_b, post_a2]) == [STORED] * 3
    assert await ids(store, f(kinds=[30023])) == newest_first(post_a2, post_b)
    mine = f(authors=[pubkey(ALICE)], kinds=[30023, 0])
    assert await ids(store, mine) == newest_first(post_a2, post_b)
    assert await ids(store, f(authors=[pubkey(ALICE)], kinds=[30023], until=NOW - 21)) == [
        post_b.id
    ]
    assert await ids(store, f(tag_d=["a"])) == [post_a2.id]
    assert await store.save_many([post_a1]) == [REPLACED_NEWER]


async def test_addressable_without_d_is_the_empty_d(store: EventStore) -> None:
    no_d = note(kind=30023, at=NOW - 20)
    empty_d = note(kind=30023, at=NOW - 10, tags=[["d", ""]])
    other_kind = note(kind=30024, at=NOW - 10)
    assert await store.save_many([no_d, empty_d, other_kind]) == [STORED] * 3
    assert await ids(store, f(authors=[pubkey(ALICE)])) == newest_first(empty_d, other_kind)


# --- NIP-09 deletion -----------------------------------------------------------


async def test_deletion_by_e_removes_the_authors_event(store: EventStore) -> None:
    doomed, kept = note(content="doomed", tags=[["t", "x"]]), note(content="kept")
    await store.save_many([doomed, kept])
    request = deletion(ALICE, doomed)
    assert await store.save_many([request]) == [STORED]
    assert await ids(store, f(authors=[pubkey(ALICE)])) == newest_first(kept, request)
    assert await ids(store, f(tag_t=["x"])) == []
    assert await ids(store, f(tag_e=[doomed.id])) == [request.id]


async def test_deleted_event_arriving_later_is_refused(store: EventStore) -> None:
    doomed = note()
    assert await store.save_many([deletion(ALICE, doomed)]) == [STORED]
    assert await store.save_many([doomed]) == [DELETED]
    assert await ids(store, f(ids=[doomed.id])) == []


async def test_deletion_by_someone_else_deletes_nothing(store: EventStore) -> None:
    victim, later = note(ALICE, content="victim"), note(ALICE, content="later")
    await store.save_many([victim])
    assert await store.save_many([deletion(BOB, victim, later)]) == [STORED]
    assert await ids(store, f(ids=[victim.id])) == [victim.id]
    assert await store.save_many([later]) == [STORED]


async def test_deletion_and_target_in_one_batch(store: EventStore) -> None:
    first, second = note(content="1"), note(content="2")
    results = await store.save_many([first, deletion(ALICE, first, second), second])
    assert results == [STORED, STORED, DELETED]
    assert await ids(store, f(kinds=[1])) == []


async def test_deletion_by_e_of_a_replaceable_event(store: EventStore) -> None:
    profile = note(kind=0)
    await store.save_many([profile, deletion(ALICE, profile)])
    assert await ids(store, f(kinds=[0])) == []
    newer = note(kind=0, at=NOW - 10)
    assert await store.save_many([newer]) == [STORED]


async def test_deletion_of_a_deletion_does_nothing(store: EventStore) -> None:
    doomed = note()
    first = deletion(ALICE, doomed)
    second = deletion(ALICE, first, at=NOW - 40)
    assert await store.save_many([doomed, first, second]) == [STORED] * 3
    assert await ids(store, f(kinds=[5])) == newest_first(first, second)
    assert await ids(store, f(ids=[doomed.id])) == []
    other = make_event(ALICE, kind=5, content="again", created_at=NOW - 30)
    assert await store.save_many([deletion(ALICE, other, at=NOW - 20), other]) == [STORED] * 2
    assert other.id in await ids(store, f(kinds=[5]))


async def test_deletion_by_a_removes_versions_up_to_its_time(store: EventStore) -> None:
    address = f"30023:{pubkey(ALICE)}:post"
    old = note(kind=30023, at=NOW - 100, tags=[["d", "post"]])
    other_d = note(kind=30023, at=NOW - 100, tags=[["d", "other"]])
    await store.save_many([old, other_d])
    assert await store.save_many([deletion(ALICE, address, at=NOW - 50)]) == [STORED]
    assert await ids(store, f(kinds=[30023])) == [other_d.id]
    at_deletion_time = note(kind=30023, at=NOW - 50, tags=[["d", "post"]], content="same second")
    before = note(kind=30023, at=NOW - 60, tags=[["d", "post"]], content="before")
    assert await store.save_many([before, at_deletion_time]) == [DELETED, DELETED]
    newer = note(kind=30023, at=NOW - 40, tags=[["d", "post"]], content="newer")
    assert await store.save_many([newer]) == [STORED]
    assert await ids(store, f(kinds=[30023])) == newest_first(newer, other_d)


async def test_deletion_by_a_spares_a_newer_stored_version(store: EventStore) -> None:
    newer = note(kind=10002, at=NOW - 10)
    await store.save_many([newer])
    await store.save_many([deletion(ALICE, f"10002:{pubkey(ALICE)}:", at=NOW - 50)])
    assert await ids(store, f(kinds=[10002])) == [newer.id]


async def test_deletion_by_a_of_someone_elses_address_does_nothing(store: EventStore) -> None:
    profile = note(ALICE, kind=0, at=NOW - 100)
    await store.save_many([profile])
    await store.save_many([deletion(BOB, f"0:{pubkey(ALICE)}:", at=NOW - 50)])
    assert await ids(store, f(kinds=[0])) == [profile.id]
    assert await store.save_many([note(ALICE, kind=0, at=NOW - 90)]) == [STORED]


async def test_malformed_deletion_tags_are_ignored(store: EventStore) -> None:
    kept = note()
    await store.save_many([kept])
    tags = [
        ["e", "not-hex"],
        ["a", "nonsense"],
        ["a", f"x:{pubkey(ALICE)}:"],
        ["a", f"1:{pubkey(ALICE)}:"],
    ]
    request = make_event(ALICE, kind=5, tags=tags, created_at=NOW - 10)
    assert await store.save_many([request]) == [STORED]
    assert await ids(store, f(kinds=[1])) == [kept.id]


# --- NIP-40 expiration ---------------------------------------------------------


def expiring(at: int, **kw: Any) -> Event:
    return note(tags=[["expiration", str(at)]], **kw)


async def test_expired_events_are_not_served(store: EventStore) -> None:
    soon, later, never = expiring(NOW + 10), expiring(NOW + 1000), note(content="never")
    await store.save_many([soon, later, never])
    assert set(await ids(store, f())) == {soon.id, later.id, never.id}
    assert set(await ids(store, f(), now=NOW + 10)) == {later.id, never.id}
    assert await store.count([f()], now=NOW + 10) == 2
    assert await ids(store, f(ids=[soon.id]), now=NOW + 10) == []


async def test_purge_deletes_expired_events(store: EventStore) -> None:
    gone, stays = expiring(NOW), expiring(NOW + 1)
    await store.save_many([gone, stays, note(content="plain", tags=[["t", "x"]])])
    assert await store.purge_expired(NOW) == 1
    assert await store.purge_expired(NOW) == 0
    assert await store.count([f()], now=0) == 2
    assert await store.save_many([stays]) == [DUPLICATE]


async def test_purged_events_leave_the_tag_index(store: EventStore) -> None:
    tagged = note(tags=[["expiration", str(NOW)], ["t", "x"]])
    await store.save_many([tagged])
    await store.purge_expired(NOW)
    assert await ids(store, f(tag_t=["x"]), now=0) == []


async def test_unreadable_expiration_is_ignored(store: EventStore) -> None:
    odd = note(tags=[["expiration", "soon"]])
    await store.save_many([odd])
    assert await ids(store, f(), now=NOW + 10**9) == [odd.id]


# --- NIP-45 count --------------------------------------------------------------


async def test_count_several_filters_counts_each_event_once(
    store: EventStore, sample: dict[str, Event]
) -> None:
    assert await store.count([f(kinds=[7])], now=NOW) == 1
    alice = f(authors=[pubkey(ALICE)])
    assert await store.count([alice, f(kinds=[7]), f(tag_e=[sample["target"].id])], now=NOW) == 3
    assert await store.count([alice, f(authors=[pubkey(BOB)])], now=NOW) == 6
    assert await store.count([], now=NOW) == 0


async def test_count_ignores_limits(store: EventStore, sample: dict[str, Event]) -> None:
    assert await store.count([f(limit=1)], now=NOW) == 6
    assert await store.count([f(limit=0, kinds=[1])], now=NOW) == 4


# --- SqliteStore only -------------------------------------------------------------


async def test_sqlite_keeps_everything_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    first = SqliteStore(path)
    await first.open()
    profile, doomed = note(kind=0), note(content="doomed")
    await first.save_many([profile, doomed, deletion(ALICE, doomed), note(tags=[["t", "x"]])])
    await first.close()

    second = SqliteStore(path)
    await second.open()
    assert await second.save_many([doomed, profile]) == [DELETED, DUPLICATE]
    assert await second.count([f(tag_t=["x"])], now=NOW) == 1
    assert await second.count([f()], now=NOW) == 3
    await second.close()


async def test_sqlite_commits_before_save_many_returns(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.save_many([note(content=str(n)) for n in range(3)])
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3
    await store.close()


async def test_sqlite_reads_and_writes_interleave(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.sqlite3")
    await store.open()
    batches = [[note(content=f"{b}-{n}") for n in range(20)] for b in range(10)]
    readers = [store.query([f(limit=5)], now=NOW, default_limit=5) for _ in range(10)]
    await asyncio.gather(*(store.save_many(batch) for batch in batches), *readers)
    assert await store.count([f()], now=NOW) == 200
    await store.close()


async def test_sqlite_records_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    store = SqliteStore(path)
    await store.open()
    assert await store.schema_version() == SCHEMA_VERSION >= 1
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SqliteStore(path)
    with pytest.raises(RuntimeError, match="newer"):
        await store.open()
    with pytest.raises(RuntimeError, match="not open"):
        await store.save_many([note()])


def test_sqlite_rejects_unknown_synchronous_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteStore(tmp_path / "x.sqlite3", synchronous="SOMETIMES")


async def test_sqlite_in_memory_database_works(tmp_path: Path) -> None:
    store = SqliteStore(":memory:")
    await store.open()
    event = note()
    assert await store.save_many([event]) == [STORED]
    assert await ids(store, f()) == [event.id]
    await store.close()


# --- both backends agree on random histories -----------------------------------


def _random_history(rng: random.Random, keys: list[coincurve.PrivateKey]) -> list[Event]:
    events: list[Event] = []
    for _ in range(120):
        key = rng.choice(keys)
        at = NOW - rng.randrange(40)
        roll = rng.random()
        tags = [["t", rng.choice("abc")]] if rng.random() < 0.5 else []
        if rng.random() < 0.15:
            tags.append(["expiration", str(NOW + rng.randrange(-5, 5))])
        if roll < 0.1 and events:
            target = rng.choice(events)
            pk = target.pubkey
            ref = (
                ["a", f"{target.kind}:{pk}:{target.d_tag}"] if target.address else ["e", target.id]
            )
            events.append(make_event(key, kind=5, tags=[ref], created_at=at))
        elif roll < 0.3:
            events.append(make_event(key, kind=rng.choice([0, 10002]), tags=tags, created_at=at))
        elif roll < 0.45:
            tags.append(["d", rng.choice(["x", "y", ""])])
            events.append(make_event(key, kind=30023, tags=tags, created_at=at))
        elif roll < 0.55 and events:
            events.append(rng.choice(events))  # a resend
        else:
            tags.append(["p", rng.choice(keys).public_key_xonly.format().hex()])
            events.append(make_event(key, kind=rng.choice([1, 7]), tags=tags, created_at=at))
    return events


@pytest.mark.parametrize("seed", range(4))
async def test_sqlite_agrees_with_memory(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    keys = [coincurve.PrivateKey() for _ in range(3)]
    history = _random_history(rng, keys)
    memory, sqlite = MemoryStore(), SqliteStore(tmp_path / "db.sqlite3")
    await sqlite.open()
    start = 0
    while start < len(history):
        size = rng.randrange(1, 20)
        batch = history[start : start + size]
        start += size
        assert await sqlite.save_many(batch) == await memory.save_many(batch)
    authors = [k.public_key_xonly.format().hex() for k in keys]
    probes = [
        [f()],
        [f(limit=7)],
        [f(kinds=[0, 10002, 30023])],
        [f(authors=authors[:1], kinds=[1, 7], limit=5)],
        [f(tag_t=["a"]), f(tag_t=["b", "c"], limit=3)],
        [f(tag_p=authors[1:], kinds=[7]), f(authors=authors[2:])],
        [f(since=NOW - 20, until=NOW - 10), f(kinds=[5])],
        [f(authors=authors[:2], kinds=[0, 30023]), f(authors=authors[2:], kinds=[10002], limit=1)],
        [f(authors=authors, kinds=[0, 1], since=NOW - 30)],
    ]
    for filters in probes:
        for now in (NOW - 10, NOW + 10):
            want = await memory.query(filters, now=now, default_limit=10)
            assert await sqlite.query(filters, now=now, default_limit=10) == want
            assert await sqlite.count(filters, now=now) == await memory.count(filters, now=now)
    assert await sqlite.purge_expired(NOW) == await memory.purge_expired(NOW)
    assert await sqlite.query([f()], now=0, default_limit=500) == await memory.query(
        [f()], now=0, default_limit=500
    )
    await sqlite.close()
