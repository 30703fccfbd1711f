"""Tests for dvm/embedding.py and dvm/memory.py: the model, the index, the service on a real relay."""

from __future__ import annotations

import ast
import asyncio
import re
import sysconfig
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import coincurve
import numpy as np
import pytest

from dvm.embedding import DIMENSIONS, Embedder, EmbedderUnavailable, mean_pool
from dvm.memory import MemoryIndex, MemoryService, Outcome, _nearest, memory_text
from nips.nip01 import Event
from node.links import RelayLink, RelayPool
from relay.server import RelayServer
from tests.helpers import make_event

NOW = int(time.time())


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    model = Embedder()
    model.load()
    return model


def unit(seed: int, n: int = 1) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def note(text: str, key: coincurve.PrivateKey | None = None, **fields: object) -> Event:
    return make_event(key, content=text, **fields)  # type: ignore[arg-type]


# --- what is embedded ------------------------------------------------------------------


def test_memory_text_per_kind() -> None:
    assert memory_text(note("Lightning settles jobs in seconds")) == "Lightning settles jobs in seconds"
    article = note("The body of the article.", kind=30023, tags=[["d", "a"], ["title", "On relays"]])
    assert memory_text(article) == "On relays\n\nThe body of the article."
    assert memory_text(note("A summary of the input text.", kind=6001)) == "A summary of the input text."
    memory = note("The operator prefers short answers.", kind=30078, tags=[["d", "timmy:memory:style"]])
    assert memory_text(memory) == "The operator prefers short answers."


@pytest.mark.parametrize(
    ("content", "kind", "tags"),
    [
        ("gm", 1, []),  # too short
        ("   \n\t   ", 1, []),
        ('{"rank": 3, "pubkey": "abc"}', 6312, []),  # a structured result
        ('[{"pubkey": "abc", "rank": 0.5}]', 6312, []),
        ("https://node.example/blobs/abc.wav", 6250, []),  # a file result
        ("a private summary of a private text", 6001, [["encrypted"]]),
        ('{"theme": "dark", "language": "en"}', 30078, [["d", "some.app:settings"]]),
        ("a note about something else entirely", 30078, [["d", "notes"]]),
    ],
)
def test_memory_text_skips(content: str, kind: int, tags: list[list[str]]) -> None:
    assert memory_text(note(content, kind=kind, tags=tags)) is None


def test_a_result_that_merely_starts_with_a_bracket_is_prose() -> None:
    text = "[draft] The relay keeps every event the node signs."
    assert memory_text(note(text, kind=6050)) == text


# --- the embedder ---------------------------------------------------------------------


def test_mean_pool_ignores_padding_and_normalises() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]], np.float32)
    mask = np.array([[1, 1, 0]])
    assert np.allclose(mean_pool(hidden, mask), [[1.0, 0.0]])


def test_similar_sentences_score_higher(embedder: Embedder) -> None:
    pairs = [
        ("A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."),
        (
            "Lightning payments settle jobs quickly",
            "Bitcoin invoices are paid over the Lightning network",
            "My cat sleeps on the sofa all afternoon",
        ),
        (
            "How do I run my own Nostr relay?",
            "Setting up a relay server for the Nostr protocol",
            "The recipe needs two cups of flour",
        ),
    ]
    for anchor, close, far in pairs:
        a, b, c = embedder.embed([anchor, close, far])
        assert a @ b > a @ c + 0.2, (anchor, float(a @ b), float(a @ c))


def test_vectors_are_unit_and_do_not_depend_on_the_batch(embedder: Embedder) -> None:
    texts = ["short", "a much longer sentence that needs many more word pieces than the first one", ""]
    together = embedder.embed(texts)
    assert together.shape == (3, DIMENSIONS) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.concatenate([embedder.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)  # padding must not leak into the mean
    assert embedder.embed([]).shape == (0, DIMENSIONS)


def test_a_long_text_is_truncated_not_refused(embedder: Embedder) -> None:
    assert embedder.embed(["word " * 5000]).shape == (1, DIMENSIONS)


def test_missing_model_files_say_which(tmp_path: Path) -> None:
    missing = Embedder(model_path=tmp_path / "model.onnx")
    with pytest.raises(EmbedderUnavailable, match=r"model file .*model\.onnx is missing"):
        missing.embed(["hello"])
    with pytest.raises(EmbedderUnavailable, match="tokenizer file"):
        Embedder(tokenizer_path=tmp_path / "tokenizer.json").load()


# --- the index -------------------------------------------------------------------------


@pytest.fixture
def index(tmp_path: Path) -> MemoryIndex:
    ix = MemoryIndex(tmp_path / "memory.sqlite3", candidates=4)
    yield ix  # type: ignore[misc]
    ix.close()


def test_search_finds_the_nearest_and_adding_twice_is_one_row(index: MemoryIndex) -> None:
    events = [note(f"note number {i} about the node") for i in range(20)]
    vectors = unit(1, 20)
    assert index.add(events, vectors) == [Outcome.ADDED] * 20
    assert index.add(events[:3], vectors[:3]) == [Outcome.DUPLICATE] * 3
    assert len(index) == 20
    query = vectors[7] + 0.1 * unit(2)[0]
    query /= np.linalg.norm(query)
    hits = index.search(query, 5)
    assert hits[0].event_id == events[7].id and hits[0].kind == 1
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert index.snippet(events[7].id) == "note number 7 about the node"


def test_the_index_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite3"
    first = MemoryIndex(path)
    events = [note(f"remembered note {i}") for i in range(3)]
    first.add(events, unit(3, 3))
    first.set_mark(1234)
    first.close()
    second = MemoryIndex(path)
    assert len(second) == 3 and second.mark() == 1234
    assert second.search(unit(3, 3)[1], 1)[0].event_id == events[1].id
    second.close()


def test_an_event_without_text_is_not_added(index: MemoryIndex) -> None:
    assert index.add([note("gm")], unit(4)) == [Outcome.NO_TEXT]
    assert len(index) == 0


def test_addressable_events_keep_the_newest(index: MemoryIndex) -> None:
    key = coincurve.PrivateKey()

    def memory(text: str, at: int) -> Event:
        return note(text, key, kind=30078, tags=[["d", "timmy:memory:diet"]], created_at=at)

    old, new = memory("The operator eats no meat.", NOW - 100), memory("The operator eats fish.", NOW)
    assert index.add([old], unit(5)) == [Outcome.ADDED]
    assert index.add([new], unit(6)) == [Outcome.REPLACED]
    assert index.add([old], unit(5)) == [Outcome.STALE]  # a late copy of the old version
    assert index.wanted([old, new]) == [False, False]
    assert len(index) == 1
    assert index.search(unit(5)[0], 5)[0].event_id == new.id
    # Another author's event at the "same" d tag is another address.
    other = note("Somebody else's memory note.", kind=30078, tags=[["d", "timmy:memory:diet"]])
    assert index.add([other], unit(7)) == [Outcome.ADDED]
    # Emptied: nothing to index, but the old text must go.
    emptied = memory("", NOW + 10)
    assert index.supersede(emptied) and len(index) == 1


def test_a_tie_on_created_at_keeps_the_lowest_id(index: MemoryIndex) -> None:
    key = coincurve.PrivateKey()
    a, b = (note(f"version {c} of the article", key, kind=30023, tags=[["d", "x"]], created_at=NOW) for c in "ab")
    low, high = sorted([a, b], key=lambda e: e.id)
    index.add([high], unit(8))
    assert index.add([low], unit(9)) == [Outcome.REPLACED]
    assert index.add([high], unit(8)) == [Outcome.STALE]


def test_a_deletion_by_the_author_removes_and_is_remembered(index: MemoryIndex) -> None:
    key = coincurve.PrivateKey()
    kept, gone, late = (note(f"{w} note of the author", key) for w in ("kept", "gone", "late"))
    index.add([kept, gone], unit(10, 2))
    assert index.delete(make_event(coincurve.PrivateKey(), kind=5, tags=[["e", gone.id]])) == 0
    assert len(index) == 2  # only the author may delete
    deletion = make_event(key, kind=5, tags=[["e", gone.id], ["e", late.id]])
    assert index.delete(deletion) == 1
    assert [h.event_id for h in index.search(unit(10, 2)[1], 5)] == [kept.id]
    assert index.add([gone, late], unit(11, 2)) == [Outcome.DELETED, Outcome.DELETED]
    assert index.delete(note("not a deletion at all")) == 0


def test_an_address_deletion_removes_versions_up_to_its_time(index: MemoryIndex) -> None:
    key = coincurve.PrivateKey()
    pubkey = key.public_key_xonly.format().hex()
    v1 = note("The first draft of the memory.", key, kind=30078, tags=[["d", "timmy:memory:x"]], created_at=NOW - 10)
    index.add([v1], unit(12))
    deletion = make_event(key, kind=5, tags=[["a", f"30078:{pubkey}:timmy:memory:x"]], created_at=NOW - 5)
    assert index.delete(deletion) == 1 and len(index) == 0
    assert index.add([v1], unit(12)) == [Outcome.DELETED]
    v2 = note("Written again after the deletion.", key, kind=30078, tags=[["d", "timmy:memory:x"]], created_at=NOW)
    assert index.add([v2], unit(13)) == [Outcome.ADDED]


def test_filters_match_the_exact_search(index: MemoryIndex) -> None:
    keys = [coincurve.PrivateKey() for _ in range(4)]
    pubkeys = [k.public_key_xonly.format().hex() for k in keys]
    events = [
        note(f"note {i} by author {i % 4}", keys[i % 4], created_at=NOW - 1000 + i * 10, kind=1 if i % 3 else 30023,
             tags=[] if i % 3 else [["d", f"article-{i}"]])
        for i in range(60)
    ]
    index.add(events, unit(14, 60))
    query = unit(15)[0]
    cases = [
        {},
        {"authors": [pubkeys[1]]},
        {"authors": pubkeys[:2], "since": NOW - 700},
        {"since": NOW - 800, "until": NOW - 600},
        {"until": NOW - 900, "kinds": [30023]},
        {"authors": [], "since": NOW - 700},  # nobody
        {"authors": ["ab" * 32]},  # somebody not indexed
        {"since": NOW + 1},
    ]
    for filters in cases:
        index.candidates = 1000  # everything re-ranked: must equal the reference
        exact = index.exact_search(query, 10, **filters)
        assert [h.event_id for h in index.search(query, 10, **filters)] == [h.event_id for h in exact], filters
        index.candidates = 4  # a shortlist: every answer must still pass the filters
        for hit in index.search(query, 10, **filters):
            event = next(e for e in events if e.id == hit.event_id)
            assert "authors" not in filters or event.pubkey in filters["authors"]
            assert event.created_at >= filters.get("since", 0)
            assert event.created_at <= filters.get("until", NOW)
            assert event.kind in filters.get("kinds", [event.kind])


def test_selective_filters_are_answered_exactly(index: MemoryIndex) -> None:
    key = coincurve.PrivateKey()
    mine = [note(f"my note number {i}", key) for i in range(3)]
    others = [note(f"someone's note {i}") for i in range(200)]
    index.add(others + mine, unit(16, 203))
    query = unit(16, 203)[201]  # mine[1]
    hits = index.search(query, 10, authors=[key.public_key_xonly.format().hex()])
    assert [h.event_id for h in hits] == [h.event_id for h in index.exact_search(query, 10, authors=[mine[0].pubkey])]
    assert hits[0].event_id == mine[1].id and len(hits) == 3


def test_nearest_takes_the_smallest_distances_and_cuts_ties() -> None:
    distances = np.array([5, 1, 3, 3, 3, 0, 385, 2], np.uint16)
    assert sorted(_nearest(distances, 3).tolist()) == [1, 5, 7]
    picked = _nearest(distances, 5).tolist()
    assert len(picked) == 5 and {1, 5, 7} < set(picked) and 6 not in picked
    assert sorted(_nearest(distances, 8).tolist()) == list(range(8))


def test_many_rows_grow_the_arrays_and_the_shortlist_still_finds_them(tmp_path: Path) -> None:
    index = MemoryIndex(tmp_path / "grow.sqlite3", candidates=50)
    vectors = unit(20, 3000)
    events = [note(f"row number {i} of many", created_at=NOW - i) for i in range(3000)]
    for start in range(0, 3000, 700):
        index.add(events[start : start + 700], vectors[start : start + 700])
    for i in (0, 1023, 1024, 2999):  # an exact copy is always found first
        assert index.search(vectors[i], 1)[0].event_id == events[i].id
    index.close()
    reopened = MemoryIndex(tmp_path / "grow.sqlite3", candidates=50)
    assert len(reopened) == 3000 and reopened.search(vectors[2048], 1)[0].event_id == events[2048].id
    reopened.close()


def test_searching_an_empty_index(index: MemoryIndex) -> None:
    assert index.search(unit(17)[0], 10) == []


def test_a_failed_add_changes_nothing(index: MemoryIndex) -> None:
    with pytest.raises(ValueError):
        index.add([note("one note here"), note("two notes here")], unit(18))
    assert len(index) == 0 and index.search(unit(18)[0], 3) == []


def test_a_model_change_starts_the_index_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "memory.sqlite3"
    first = MemoryIndex(path)
    first.add([note("embedded by the old model")], unit(19))
    first.set_mark(99)
    first.close()
    monkeypatch.setattr("dvm.memory.MODEL", "another-model")
    second = MemoryIndex(path)
    assert len(second) == 0 and second.mark() is None
    second.close()


def _stdlib_passages(count: int) -> list[str]:
    """Docstring paragraphs of the standard library: real prose, offline, always the same."""
    found: dict[str, None] = {}
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
                for paragraph in re.split(r"\n\s*\n", ast.get_docstring(node) or ""):
                    text = " ".join(paragraph.split())
                    if len(text) >= 40 and sum(c.isalpha() or c == " " for c in text) > 0.85 * len(text):
                        found[text[:300]] = None
                        if len(found) == count:
                            return list(found)
    return list(found)


@pytest.mark.slow
def test_recall_of_the_quantised_search_on_real_embeddings(embedder: Embedder, tmp_path: Path) -> None:
    texts = _stdlib_passages(2050)
    corpus, queries = texts[:2000], [" ".join(t.split()[:12]) for t in texts[2000:]]
    vectors, query_vectors = embedder.embed(corpus), embedder.embed(queries)
    # A shortlist of 5% of the rows (0.97 here); bench/search.py measures the
    # node's setting on 100,000 rows.
    index = MemoryIndex(tmp_path / "recall.sqlite3", candidates=100)
    index.add([note(t, created_at=NOW - i) for i, t in enumerate(corpus)], vectors)
    found = []
    for q in query_vectors:
        exact = {h.event_id for h in index.exact_search(q, 10)}
        found.append(len(exact & {h.event_id for h in index.search(q, 10)}) / 10)
    index.close()
    assert np.mean(found) >= 0.95, np.mean(found)


# --- the service, on a real relay --------------------------------------------------------


class Publisher:
    """A client with its own connection: the service's pool must get the events from the relay."""

    def __init__(self, url: str) -> None:
        self.link = RelayLink(url, min_backoff=0.05)

    async def __call__(self, *events: Event) -> None:
        for event in events:
            ok, message = await self.link.publish(event)
            assert ok, message


@pytest.fixture
async def publish(relay: RelayServer) -> AsyncIterator[Publisher]:
    publisher = Publisher(relay.url)
    await publisher.link.start()
    yield publisher
    await publisher.link.stop()


StartService = Callable[..., Awaitable[MemoryService]]


@pytest.fixture
async def start_service(relay: RelayServer, tmp_path: Path, embedder: Embedder) -> AsyncIterator[StartService]:
    running: list[tuple[MemoryService, RelayPool]] = []

    async def start(kinds: tuple[int, ...] = (1, 30023, 6050, 30078), **options: object) -> MemoryService:
        pool = RelayPool([relay.url], min_backoff=0.05)
        await pool.start()
        assert await pool.wait_connected(5)
        service = MemoryService(tmp_path / "memory.sqlite3", pool, kinds, embedder=embedder, **options)  # type: ignore[arg-type]
        await service.start()
        running.append((service, pool))
        return service

    async def stop(service: MemoryService) -> None:
        for item in running:
            if item[0] is service:
                running.remove(item)
                await item[0].stop()
                await item[1].stop()

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for service, pool in reversed(running):
        await service.stop()
        await pool.stop()


async def indexed(service: MemoryService, count: int, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while service.index is None or len(service.index) != count or service.pending:
            await asyncio.sleep(0.02)
    await service.wait_idle()


NOTES = [
    "Our relay now supports NIP-42 authentication for paid users.",
    "I baked sourdough bread this morning and it came out great.",
    "Lightning invoices for the summarizer jobs are settled in seconds.",
    "The football match last night went to penalties.",
]


async def test_the_service_indexes_what_the_relay_carries(start_service: StartService, publish: Publisher) -> None:
    service = await start_service()
    key = coincurve.PrivateKey()
    events = [note(text, key, created_at=NOW - 60 + i) for i, text in enumerate(NOTES)]
    skipped = [
        note("gm"),  # too short
        note("Some application's data, not a memory.", kind=30078, tags=[["d", "app:x"]]),
        note("A reaction is not a kind we index.", kind=7),
    ]
    await publish(*events, *skipped)
    await indexed(service, len(events))
    hits = await service.search("how fast are Lightning invoices settled", k=2)
    assert hits[0].event_id == events[2].id and hits[0].kind == 1
    hits = await service.search("baking bread at home")
    assert hits[0].event_id == events[1].id
    assert len(hits) == len(events)
    # Filters reach the index.
    assert await service.search("bread", authors=["ab" * 32]) == []
    assert [h.event_id for h in await service.search("bread", since=NOW - 58, until=NOW - 58)] == [events[2].id]
    # A deletion through the relay removes the note.
    await publish(make_event(key, kind=5, tags=[["e", events[1].id]]))
    await indexed(service, len(events) - 1)
    assert events[1].id not in {h.event_id for h in await service.search("baking bread at home")}


async def test_memories_and_articles_are_searchable(start_service: StartService, publish: Publisher) -> None:
    service = await start_service()
    key = coincurve.PrivateKey()
    memory = note("The operator's favourite colour is green.", key, kind=30078,
                  tags=[["d", "timmy:memory:colour"]], created_at=NOW - 10)
    article = note("Relays store events; clients query them with filters.", kind=30023,
                   tags=[["d", "relays-101"], ["title", "How Nostr relays work"]])
    await publish(memory, article)
    await indexed(service, 2)
    assert (await service.search("what colour does the operator like?"))[0].event_id == memory.id
    assert (await service.search("an introduction to Nostr relays"))[0].event_id == article.id
    updated = note("The operator's favourite colour is now blue.", key, kind=30078,
                   tags=[["d", "timmy:memory:colour"]], created_at=NOW)
    await publish(updated)
    async with asyncio.timeout(10):
        while memory.id in {h.event_id for h in await service.search("favourite colour")}:
            await asyncio.sleep(0.05)
    assert (await service.search("what colour does the operator like?"))[0].event_id == updated.id
    assert len(service.index) == 2  # type: ignore[arg-type]


async def test_a_restart_resumes_from_the_mark(start_service: StartService, publish: Publisher) -> None:
    service = await start_service()
    first = note(NOTES[0], created_at=NOW - 30)
    await publish(first)
    await indexed(service, 1)
    assert (await service.stats())["mark"] == NOW - 30
    await start_service.stop(service)  # type: ignore[attr-defined]
    # Published while the service was down: the next start asks from the mark.
    later = note(NOTES[3], created_at=NOW - 20)
    await publish(later)
    service = await start_service()
    assert service.filters(NOW - 30)[0]["since"] == NOW - 30 - 60
    await indexed(service, 2)
    assert (await service.search("a football game"))[0].event_id == later.id


async def test_a_flood_drops_the_oldest_and_holds_the_mark_below_them(
    start_service: StartService, embedder: Embedder
) -> None:
    service = await start_service(queue_size=3, batch_size=2)
    events = [note(f"flooded note number {i} of many", created_at=NOW - 100 + i) for i in range(8)]
    for event in events:  # as the relay link delivers them: synchronously, no await between
        service._on_event(event, "ws://test")
    assert service.pending == 3 and service.dropped == 5
    await service.wait_idle()
    stats = await service.stats()
    assert stats["documents"] == 3 and stats["dropped"] == 5 and stats["pending"] == 0
    # The relay still has the dropped ones: the next start must ask from before the oldest.
    assert stats["mark"] == events[0].created_at - 1


async def test_deletions_apply_in_arrival_order_within_a_batch(start_service: StartService) -> None:
    service = await start_service()
    key = coincurve.PrivateKey()
    deleted_after, deleted_before, kept = (note(f"{w} in the same batch", key) for w in ("deleted after", "deleted before", "kept"))
    arrivals = [
        deleted_after,
        make_event(key, kind=5, tags=[["e", deleted_after.id], ["e", deleted_before.id]]),
        deleted_before,  # a copy from a relay that had not seen the deletion
        kept,
    ]
    for event in arrivals:
        service._on_event(event, "ws://test")
    await service.wait_idle()
    assert [h.event_id for h in await service.search("in the same batch")] == [kept.id]
