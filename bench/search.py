"""Semantic memory: k=10 search over 100,000 real sentence embeddings (dvm.memory).

``python -m bench.search [--size 100000] [--queries 200] [--candidates N] [--out PATH]``

The corpus is real English prose that every machine running this code has
offline: the docstrings of the Python files of the standard library and of
the installed packages (``site-packages``, tests left out), read with
``ast`` (nothing is imported), split into paragraphs, long paragraphs cut
into runs of sentences of at most 400 characters, mostly-symbol paragraphs
(tables, doctests) dropped, duplicates dropped, shuffled with ``--seed``.
The first ``--size`` texts are indexed; the next ``--queries`` are held out
and cut to their first sentence (at most 16 words), as a person would type a
query. The corpus therefore depends on the packages installed; its size and
fingerprint are in the output.

Embedding 100k texts takes a while on two cores, so the texts and their
vectors are cached in ``bench/out/search/`` (git-ignored), keyed by the
fingerprint; a second run starts from the cache. Then:

* ``embedding``: texts per second of :class:`dvm.embedding.Embedder` (batch
  32, 2 threads), measured on 2,000 texts (or from the cache build if it ran);
* ``build``: :meth:`dvm.memory.MemoryIndex.add` of all the vectors, in
  batches of 1,000 (a batch is what the service's worker writes at once);
  rows per second, and the database size;
* ``search``: the index's own search (binary scan + float re-rank), p50/p99
  of ``--queries`` queries after 20 warm-up ones; unfiltered, then with a
  ``since`` that keeps ~10% of the rows, then with 3 authors;
* ``unfiltered_by_shortlist``: p50/p99 and recall for other ``candidates``
  (``--sweep``), the trade-off the default was picked from;
* ``recall_at_10``: the share of the exact top 10 (numpy, float32 cosine
  over every row) that the index returned, averaged over the queries;
* ``baseline_sqlite_vec``: the same queries as a brute-force ``vec0(float[384])``
  KNN in sqlite-vec, on the same machine, file and pragmas.

Prints one JSON object; with ``--out`` also writes it there.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import ast
import datetime
import hashlib
import re
import statistics
import sysconfig
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from bench.relays import OUT
from bench.report import code_version, emit, int_list, machine

CACHE = OUT / "search"
CHUNK = 10_000  # texts per cached file of vectors
TARGETS = {"p50_ms": 10.0, "recall_at_10": 0.95}
MAX_TEXT_CHARS = 400
MAX_QUERY_WORDS = 16
WARMUP = 20
AUTHORS = 1000  # distinct pubkeys the rows are spread over
_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "testing", "__pycache__"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_COMMENT = re.compile(r"\s*#(?![!])\s?(.*)$")


def _python_files() -> Iterator[Path]:
    paths = sysconfig.get_paths()
    stdlib, purelib = Path(paths["stdlib"]), Path(paths["purelib"])
    for root in (stdlib, purelib):
        for path in sorted(root.rglob("*.py")):
            parts = set(path.relative_to(root).parts)
            if parts & _SKIP_DIRS or (root == stdlib and "site-packages" in parts):
                continue
            yield path


def _docstrings(source: bytes) -> Iterator[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                yield from re.split(r"\n\s*\n", doc)


def _comment_blocks(source: bytes) -> Iterator[str]:
    """Runs of consecutive ``#`` comment lines, each as one paragraph."""
    block: list[str] = []
    for line in [*source.decode("utf-8", "replace").splitlines(), ""]:
        match = _COMMENT.match(line)
        if match:
            block.append(match.group(1))
        elif block:
            yield " ".join(block)
            block = []


def _passages(paragraph: str) -> Iterator[str]:
    """A paragraph if it is prose, a long one cut into runs of whole sentences."""
    text = " ".join(paragraph.split())
    letters = sum(c.isalpha() or c == " " for c in text)
    if len(text) < 40 or text.startswith((">>>", "..", ":", "-*-")) or letters < 0.8 * len(text):
        return
    run = ""
    for sentence in _SENTENCE_END.split(text):
        if run and len(run) + 1 + len(sentence) > MAX_TEXT_CHARS:
            yield run[:MAX_TEXT_CHARS]
            run = ""
        run = f"{run} {sentence}".strip()
    if len(run) >= 40:
        yield run[:MAX_TEXT_CHARS]


def _all_passages() -> list[str]:
    """Every distinct passage, sorted; cached by the list of files and their sizes."""
    files = list(_python_files())
    key = hashlib.sha256("\n".join(f"{f}:{f.stat().st_size}" for f in files).encode()).hexdigest()[:16]
    cached = CACHE / f"passages-{key}.txt"
    if cached.exists():
        return cached.read_text().split("\n")
    found: dict[str, None] = {}
    for path in files:
        source = path.read_bytes()
        for paragraph in [*_docstrings(source), *_comment_blocks(source)]:
            found.update(dict.fromkeys(_passages(paragraph)))
    texts = sorted(found)
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text("\n".join(texts))
    return texts


def corpus(size: int, queries: int, seed: int) -> tuple[list[str], list[str]]:
    """(``size`` texts to index, ``queries`` held-out query texts)."""
    texts = _all_passages()
    if len(texts) < size + queries:
        raise SystemExit(f"only {len(texts)} passages found here; ask for --size {len(texts) - queries} or less")
    order = np.random.default_rng(seed).permutation(len(texts))
    indexed = [texts[i] for i in order[:size]]
    held_out = [_as_query(texts[i]) for i in order[size : size + queries]]
    return indexed, held_out


def _as_query(text: str) -> str:
    first = _SENTENCE_END.split(text)[0]
    return " ".join(first.split()[:MAX_QUERY_WORDS])


def fingerprint(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def embedded(texts: list[str], label: str) -> tuple[np.ndarray, float | None]:
    """The texts' vectors, from the cache or computed (then cached); and texts/s if any were computed.

    Cached in chunks of :data:`CHUNK` texts, each under its own fingerprint, so
    that a smaller run reuses the first chunks of a larger one.
    """
    from dvm.embedding import Embedder

    CACHE.mkdir(parents=True, exist_ok=True)
    embedder: Embedder | None = None
    parts, computed, seconds = [], 0, 0.0
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start : start + CHUNK]
        path = CACHE / f"{label}-{len(chunk)}-{fingerprint(chunk)}.npy"
        if path.exists():
            parts.append(np.load(path))
            continue
        if embedder is None:
            embedder = Embedder()
            embedder.load()
        began = time.perf_counter()
        vectors = embedder.embed(chunk)
        seconds += time.perf_counter() - began
        computed += len(chunk)
        np.save(path, vectors)
        parts.append(vectors)
        print(f"{label}: embedded {start + len(chunk)}/{len(texts)} ({computed / seconds:.0f}/s)",
              file=sys.stderr, flush=True)
    vectors = np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)
    return vectors, (computed / seconds if computed else None)


def _events(texts: list[str], seed: int) -> list[Any]:
    """Signed kind 1 notes of the texts, by :data:`AUTHORS` keys, spread over a year."""
    from nips.nip01 import Signer

    rng = np.random.default_rng(seed)
    signers = [Signer(rng.bytes(32)) for _ in range(AUTHORS)]
    now = int(time.time())
    return [
        signers[i % AUTHORS].sign(1, text, [], created_at=now - 365 * 86400 + i * 315)
        for i, text in enumerate(texts)
    ]


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def _timed(fn: Any, queries: np.ndarray) -> tuple[list[Any], list[float]]:
    for q in queries[:WARMUP]:
        fn(q)
    answers, seconds = [], []
    for q in queries:
        began = time.perf_counter()
        answers.append(fn(q))
        seconds.append(time.perf_counter() - began)
    return answers, seconds


def _recall(found: list[list[str]], exact: list[list[str]]) -> float:
    shares = [len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True) if e]
    return round(statistics.fmean(shares), 4)


def measure_index(
    events: list[Any], vectors: np.ndarray, queries: np.ndarray, candidates: int, sweep: list[int], folder: Path
) -> dict[str, Any]:
    from dvm.memory import MemoryIndex

    path = folder / "memory.sqlite3"
    for stale in folder.glob("memory.sqlite3*"):
        stale.unlink()
    index = MemoryIndex(path, candidates=candidates)
    began = time.perf_counter()
    for start in range(0, len(events), 1000):
        index.add(events[start : start + 1000], vectors[start : start + 1000])
    build_s = time.perf_counter() - began
    build = {"rows": len(index), "seconds": round(build_s, 2), "rows_per_s": round(len(index) / build_s),
             "db_mb": round(index.stats()["bytes"] / 2**20, 1)}
    ids = np.array([e.id for e in events])
    created = np.array([e.created_at for e in events])
    pubkeys = np.array([e.pubkey for e in events])

    def exact(q: np.ndarray, mask: np.ndarray | None = None) -> list[str]:
        scores = vectors @ q
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        best = np.argsort(-scores)[:10]
        return [str(ids[i]) for i in best if np.isfinite(scores[i])]

    since = int(np.quantile(created, 0.9))
    authors = sorted(set(pubkeys[:3].tolist()))
    cases = {
        "unfiltered": ({}, None),
        "since_10_percent": ({"since": since}, created >= since),
        "three_authors": ({"authors": authors}, np.isin(pubkeys, authors)),
    }
    search: dict[str, Any] = {}
    for name, (filters, mask) in cases.items():
        hits, seconds = _timed(lambda q, f=filters: index.search(q, 10, **f), queries)
        found = [[h.event_id for h in answer] for answer in hits]
        reference = [exact(q, mask) for q in queries]
        search[name] = {**_percentiles(seconds), "recall_at_10": _recall(found, reference)}
    reference = [exact(q) for q in queries]
    shortlists = {}
    for size in sweep:
        index.candidates = size
        hits, seconds = _timed(lambda q: index.search(q, 10), queries)
        found = [[h.event_id for h in answer] for answer in hits]
        shortlists[str(size)] = {**_percentiles(seconds), "recall_at_10": _recall(found, reference)}
    index.close()
    return {"build": build, "candidates": candidates, "search": search, "unfiltered_by_shortlist": shortlists}


def measure_sqlite_vec(vectors: np.ndarray, queries: np.ndarray, candidates: int, folder: Path) -> dict[str, Any]:
    """The third-party baseline: sqlite-vec's own KNN, brute force over float32; and over bits."""
    from dvm.memory import open_database

    path = folder / "baseline.sqlite3"
    for stale in folder.glob("baseline.sqlite3*"):
        stale.unlink()
    db = open_database(str(path))
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "mmap_size=1073741824", "cache_size=-65536"):
        db.execute(f"PRAGMA {pragma}")
    db.execute("CREATE VIRTUAL TABLE floats USING vec0(embedding float[384])")
    db.execute("CREATE VIRTUAL TABLE bits USING vec0(embedding bit[384])")
    began = time.perf_counter()
    db.execute("BEGIN")
    db.executemany("INSERT INTO floats(rowid, embedding) VALUES (?, ?)",
                   ((i + 1, v.tobytes()) for i, v in enumerate(vectors)))
    db.execute("COMMIT")
    insert_s = time.perf_counter() - began
    db.execute("BEGIN")
    db.executemany("INSERT INTO bits(rowid, embedding) VALUES (?, vec_quantize_binary(?))",
                   ((i + 1, v.tobytes()) for i, v in enumerate(vectors)))
    db.execute("COMMIT")

    def knn(table: str, q: np.ndarray, k: int) -> list[int]:
        cast = "vec_quantize_binary(?)" if table == "bits" else "?"
        sql = f"SELECT rowid FROM {table} WHERE embedding MATCH {cast} AND k = ?"
        return [r for (r,) in db.execute(sql, (q.tobytes(), k))]

    answers, seconds = _timed(lambda q: knn("floats", q, 10), queries)
    reference = [[str(i) for i in np.argsort(-(vectors @ q))[:10] + 1] for q in queries]
    floats = {**_percentiles(seconds), "recall_at_10": _recall([[str(r) for r in a] for a in answers], reference),
              "insert_rows_per_s": round(len(vectors) / insert_s)}
    few = queries[: WARMUP + 30]  # slow: a few are enough
    bits = {f"k_{k}": _percentiles(_timed(lambda q, k=k: knn("bits", q, k), few)[1]) for k in (10, candidates)}
    db.close()
    return {"vec0_float_brute_force_k10": floats, "vec0_bit_knn_shortlist_only": bits}


def embedding_rate(texts: list[str]) -> float:
    from dvm.embedding import Embedder

    embedder = Embedder()
    embedder.load()
    began = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - began)


def main() -> None:
    from dvm.memory import CANDIDATES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=CANDIDATES, help="the index's shortlist")
    parser.add_argument("--sweep", default="100,200,400,800", help="shortlist sizes to compare, unfiltered")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    began = time.perf_counter()
    texts, query_texts = corpus(args.size, args.queries, args.seed)
    corpus_s = time.perf_counter() - began
    vectors, rate = embedded(texts, "corpus")
    query_vectors, _ = embedded(query_texts, "queries")
    measured_on = "the corpus, while caching it" if rate is not None else "2,000 corpus texts"
    if rate is None:
        rate = embedding_rate(texts[:2000])
    events = _events(texts, args.seed)
    folder = CACHE / "run"
    folder.mkdir(parents=True, exist_ok=True)
    index = measure_index(events, vectors, query_vectors, args.candidates, int_list(args.sweep), folder)
    baseline = measure_sqlite_vec(vectors, query_vectors, args.candidates, folder)
    unfiltered = index["search"]["unfiltered"]
    result = {
        "benchmark": "search",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "numpy": np.__version__},
        "code": code_version(),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.search", *sys.argv[1:]]),
        "params": vars(args) | {"out": str(args.out) if args.out else None},
        "corpus": {"texts": len(texts), "queries": len(query_texts), "fingerprint": fingerprint(texts),
                   "median_chars": statistics.median(len(t) for t in texts), "read_s": round(corpus_s, 1),
                   "source": "docstrings and comments of the stdlib and site-packages"},
        "embedding": {"texts_per_s": round(rate, 1), "measured_on": measured_on, "batch": 32, "threads": 2},
        **index,
        "baseline_sqlite_vec": baseline,
        "targets": TARGETS,
        "meets_targets": unfiltered["p50_ms"] <= TARGETS["p50_ms"]
        and unfiltered["recall_at_10"] >= TARGETS["recall_at_10"],
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
