"""Reputation graph: PageRank over a synthetic follow graph of 100,000 keys and 1,000,000 edges.

``python -m bench.reputation [--keys 100000] [--edges 1000000] [--out PATH]``

The graph (``--seed``, numpy's generator): 70% of the keys publish a follow
list, whose lengths are Pareto-distributed (heavy tail, capped at 5,000); whom
they follow is drawn from a Zipf-like popularity over all keys; exactly
``--edges`` distinct follow edges, no self-follows. Then:

* ``build``: ``set_follows`` for every list, then the CSR arrays;
* ``global_pagerank``: cold, from the uniform vector (median of 3);
* ``personalized_pagerank``: from 10 seeds with 10 or more follows, cold (median of 3);
* ``incremental``: one event, then personalized PageRank warm-started from the last
  ranks, 20 times: a random author's new follow list of 100 keys
  (replacing its old one), and an attestation
  edge; the time is the whole of it (the graph update, the arrays patch, the iterations);
* ``memory``: the process RSS before and after building, and the CSR arrays' bytes;
* ``score_agent``: ``reputation.scoring.score_agent`` on 10,000 attestations about one
  agent (median of 20), if that module is there.

Prints one JSON object; with ``--out`` also writes it there.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import datetime
import gc
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil

from bench.report import code_version, emit, machine
from reputation.graph import Ranks, TrustGraph, pagerank, personalized_pagerank

TARGETS_MS = {"personalized_cold": 1000, "incremental_event": 100, "score_agent_10k": 20}
LIST_SHARE = 0.7  # of the keys that publish a follow list
MAX_FOLLOWS = 5000
ROUNDS = 20


def synthetic_edges(keys: int, edges: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``edges`` distinct (src, dst) pairs, sorted by src: power-law out-degrees and popularity."""
    authors = np.flatnonzero(rng.random(keys) < LIST_SHARE)
    degree = rng.pareto(1.5, len(authors)) + 1.0
    popularity = 1.0 / np.arange(1, keys + 1) ** 0.8
    popularity = popularity[rng.permutation(keys)] / popularity.sum()
    pairs = np.zeros(0, dtype=np.int64)
    while len(pairs) < edges:  # duplicates and self-follows drop out: draw again for the rest
        want = int((edges - len(pairs)) * 1.1) + 16
        counts = np.minimum(np.round(degree / degree.sum() * want), MAX_FOLLOWS).astype(np.int64)
        src = np.repeat(authors, counts)
        dst = rng.choice(keys, size=len(src), p=popularity)
        drawn = src[src != dst] * keys + dst[src != dst]
        pairs = np.union1d(pairs, drawn)
    pairs = np.sort(rng.choice(pairs, size=edges, replace=False))
    return (pairs // keys).astype(np.int32), (pairs % keys).astype(np.int32)


def follow_lists(src: np.ndarray, dst: np.ndarray, keys: list[str]) -> list[tuple[str, list[str]]]:
    """Every key's follow list (empty for most of those that publish none)."""
    names = np.array(keys, dtype=object)
    bounds = np.searchsorted(src, np.arange(len(keys) + 1))
    return [(key, names[dst[bounds[i] : bounds[i + 1]]].tolist()) for i, key in enumerate(keys)]


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    samples, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return samples, result


def traced_build(lists: list[tuple[str, list[str]]]) -> dict[str, float]:
    """What a graph allocates (tracemalloc sees numpy's buffers too), the key strings excepted."""
    gc.collect()
    tracemalloc.start()
    graph = TrustGraph()
    for author, followed in lists:
        graph.set_follows(author, followed)
    after_graph = tracemalloc.get_traced_memory()[0]
    graph.arrays()
    after_arrays, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    mb = lambda n: round(n / 2**20, 1)  # noqa: E731
    return {"traced_graph_mb": mb(after_graph), "traced_with_arrays_mb": mb(after_arrays),
            "traced_peak_mb": mb(peak)}


def rss_mb() -> float:
    gc.collect()
    return round(psutil.Process().memory_info().rss / 2**20, 1)


def incremental(
    graph: TrustGraph, seeds: dict[str, float], ranks: Ranks, events: list[Callable[[], None]]
) -> tuple[dict[str, Any], Ranks]:
    """Apply each event and recompute warm; the time covers both."""
    samples, iterations, apply_s = [], [], []
    for event in events:
        start = time.perf_counter()
        event()
        applied = time.perf_counter()
        ranks = personalized_pagerank(graph, seeds, warm=ranks)
        samples.append(time.perf_counter() - start)
        apply_s.append(applied - start)
        iterations.append(ranks.iterations)
    ordered = sorted(samples)
    return {
        "events": len(events),
        "median_ms": median_ms(samples),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "graph_update_median_ms": median_ms(apply_s),
        "iterations_median": statistics.median(iterations),
        "iterations_max": max(iterations),
    }, ranks


def score_agent_bench(graph: TrustGraph, ranks: Ranks, seeds: dict[str, float], rng: np.random.Generator) -> dict[str, Any]:
    try:
        from reputation.model import TYPE_MULTIPLIERS, Attestation
        from reputation.scoring import score_agent
    except ImportError:
        return {"skipped": "reputation.scoring not available"}
    now = 1_750_000_000
    target = graph.key_of(0)
    attesters = [graph.key_of(int(i)) for i in rng.choice(graph.node_count, 2000, replace=False)]
    labels = list(TYPE_MULTIPLIERS)
    attestations = [
        Attestation(
            id=f"{n:064x}", attester=attesters[n % len(attesters)], target=target,
            label=labels[int(rng.integers(len(labels)))], created_at=now - int(rng.integers(365 * 86_400)),
            content="bench", event_ref=f"{n % 3000:064x}" if n % 4 == 0 else "",
            zap_sats=int(rng.integers(0, 50)) if n % 5 == 0 else 0,
            paid_msat=int(rng.integers(1, 5_000_000)) if n % 4 == 0 else 0,
        )
        for n in range(10_000)
    ]
    trust = {k: ranks.rank(k) for k in {*attesters, *seeds}}
    try:
        samples, report = timed(
            lambda: score_agent(target, attestations, trust=trust, roots=list(seeds), now=now), ROUNDS
        )
    except TypeError as e:  # its signature changed under us: say so rather than guess
        return {"error": f"score_agent: {e}"}
    return {
        "attestations": len(attestations), "attesters": len(attesters),
        "median_ms": median_ms(samples), "max_ms": round(max(samples) * 1000, 2),
        "score": round(float(report.score), 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    keys = [rng.bytes(32).hex() for _ in range(args.keys)]
    src, dst = synthetic_edges(args.keys, args.edges, rng)
    lists = follow_lists(src, dst, keys)
    del src, dst

    rss_before = rss_mb()
    graph = TrustGraph()
    start = time.perf_counter()
    for author, followed in lists:
        graph.set_follows(author, followed)
    ingest_s = time.perf_counter() - start
    rss_graph = rss_mb()
    start = time.perf_counter()
    arrays = graph.arrays()
    arrays_s = time.perf_counter() - start
    rss_arrays = rss_mb()
    built = {"keys": graph.node_count, "edges": graph.edge_count,
             "follow_lists": sum(1 for _, f in lists if f), "max_follows": max(len(f) for _, f in lists)}

    samples, global_ranks = timed(lambda: pagerank(graph), 3)
    global_result = {"median_ms": median_ms(samples), "iterations": global_ranks.iterations,
                     "converged": global_ranks.converged}

    long_lists = [author for author, followed in lists if len(followed) >= 10]
    seeds = {long_lists[int(i)]: 1.0 for i in rng.choice(len(long_lists), 10, replace=False)}
    samples, ranks = timed(lambda: personalized_pagerank(graph, seeds), 3)
    personalized = {"seeds": len(seeds), "median_ms": median_ms(samples), "iterations": ranks.iterations,
                    "converged": ranks.converged, "nonzero_ranks": int(np.count_nonzero(ranks.as_array))}

    with_lists = [author for author, followed in lists if followed]
    authors = [with_lists[int(i)] for i in rng.choice(len(with_lists), ROUNDS, replace=False)]
    follow_events: list[Callable[[], None]] = [
        lambda a=a: graph.set_follows(a, [keys[int(i)] for i in rng.choice(args.keys, 100, replace=False)])
        for a in authors
    ]
    follows_result, ranks = incremental(graph, seeds, ranks, follow_events)
    pairs = rng.choice(args.keys, (ROUNDS, 2))
    attest_events: list[Callable[[], None]] = [
        lambda s=int(s), d=int(d): graph.add_edge(keys[s], keys[d], 1.5) for s, d in pairs
    ]
    attest_result, ranks = incremental(graph, seeds, ranks, attest_events)
    cold = personalized_pagerank(graph, seeds)
    follows_result["max_abs_diff_vs_cold"] = float(np.abs(ranks.as_array - cold.as_array).max())

    return {
        "graph": built,
        "build": {"set_follows_s": round(ingest_s, 3), "arrays_s": round(arrays_s, 3),
                  "total_s": round(ingest_s + arrays_s, 3)},
        "global_pagerank": global_result,
        "personalized_pagerank": personalized,
        "incremental": {"follow_list_100": follows_result, "attestation_edge": attest_result},
        "score_agent": score_agent_bench(graph, ranks, seeds, rng),
        "memory": {"rss_before_mb": rss_before, "rss_after_graph_mb": rss_graph,
                   "rss_after_arrays_mb": rss_arrays, "arrays_nbytes_mb": round(arrays.nbytes / 2**20, 1),
                   **traced_build(lists),
                   "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, 1),
                   "note": "RSS includes the generated input and reuses its freed pages; the traced "
                           "numbers are the graph's own allocations, less the 64-char key strings "
                           "it shares with the input (about 11 MB per 100,000 keys)"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = {
        "benchmark": "reputation",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "numpy": np.__version__},
        "code": code_version(),
        "params": {"keys": args.keys, "edges": args.edges, "seed": args.seed},
        "targets_ms": TARGETS_MS,
        **run(args),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
