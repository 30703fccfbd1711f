"""Tests for reputation/graph.py: the trust graph, PageRank and personalized PageRank.

Small graphs are checked against ranks solved by hand; random ones against an
independent dense solve of (I - alpha P^T) r = (1 - alpha) v.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest

from reputation.graph import (
    Ranks,
    TrustGraph,
    follower_count,
    pagerank,
    personalized_pagerank,
)

ALPHA = 0.85


def key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


A, B, C, D = key("a"), key("b"), key("c"), key("d")


def dense_pagerank(graph: TrustGraph, teleport: dict[str, float], alpha: float = ALPHA) -> dict[str, float]:
    """The reference: a dense transition matrix built from ``graph.weight`` and a linear solve."""
    keys = [graph.key_of(i) for i in range(graph.node_count)]
    n = len(keys)
    v = np.array([teleport.get(k, 0.0) for k in keys], dtype=np.float64)
    v /= v.sum()
    w = np.array([[graph.weight(s, d) for d in keys] for s in keys])
    out = w.sum(axis=1, keepdims=True)
    p = np.where(out > 0, w / np.where(out > 0, out, 1.0), v)  # a dangling row jumps like the teleport
    r = np.linalg.solve(np.eye(n) - alpha * p.T, (1 - alpha) * v)
    return dict(zip(keys, r.tolist(), strict=True))


def random_graph(nodes: int, seed: int) -> TrustGraph:
    """Follow lists for most nodes, attestations of random weight, some on followed pairs."""
    rng = random.Random(seed)
    keys = [key(f"{seed}-{i}") for i in range(nodes)]
    graph = TrustGraph()
    for author in keys:
        if rng.random() < 0.7:
            graph.set_follows(author, rng.sample(keys, rng.randint(1, 8)))
    for _ in range(nodes):
        graph.add_edge(rng.choice(keys), rng.choice(keys), rng.uniform(0.1, 3.0))
    return graph


def assert_close(ranks: Ranks, expected: dict[str, float], tol: float = 1e-6) -> None:
    assert ranks.converged
    for k, value in expected.items():
        assert ranks.rank(k) == pytest.approx(value, abs=tol), k


# -- hand-computed graphs -----------------------------------------------------------


def test_cycle_of_three_ranks_alike() -> None:
    graph = TrustGraph()
    graph.set_follows(A, [B])
    graph.set_follows(B, [C])
    graph.set_follows(C, [A])
    ranks = pagerank(graph)
    assert ranks.converged
    assert_close(ranks, {A: 1 / 3, B: 1 / 3, C: 1 / 3}, tol=1e-12)
    assert personalized_pagerank(graph, {A: 1, B: 1, C: 1}).as_array == pytest.approx([1 / 3] * 3)


def test_star_center_takes_most() -> None:
    # Four leaves follow the center, which follows nobody (dangling: its rank jumps uniformly).
    # c = (1-a)/5 + a*c/5 + a*(1-c)  =>  c = ((1-a)/5 + a) / (1 + 4a/5) = 0.88 / 1.68
    graph = TrustGraph()
    leaves = [key(f"leaf{i}") for i in range(4)]
    for leaf in leaves:
        graph.set_follows(leaf, [C])
    ranks = pagerank(graph, tol=1e-12)
    assert ranks.rank(C) == pytest.approx(0.52380952, abs=1e-8)
    for leaf in leaves:
        assert ranks.rank(leaf) == pytest.approx(0.11904762, abs=1e-8)
    assert ranks.top(1) == [(C, pytest.approx(0.52380952, abs=1e-8))]


def test_dangling_node_gives_its_rank_to_the_teleport() -> None:
    # a -> b, b dangling: r_b = 0.925 / 1.425
    graph = TrustGraph()
    graph.set_follows(A, [B])
    ranks = pagerank(graph, tol=1e-12)
    assert ranks.rank(B) == pytest.approx(0.64912281, abs=1e-8)
    assert ranks.rank(A) == pytest.approx(0.35087719, abs=1e-8)
    assert ranks.as_array.sum() == pytest.approx(1.0, abs=1e-12)


def test_weights_split_the_rank_of_a_source() -> None:
    # a -> b (3), a -> c (1), b -> a, c -> a: r_a = 0.9 / 1.85
    graph = TrustGraph()
    graph.add_edge(A, B, 3.0)
    graph.add_edge(A, C, 1.0)
    graph.set_follows(B, [A])
    graph.set_follows(C, [A])
    ranks = pagerank(graph, tol=1e-12, max_iter=1000)  # bipartite: the error shrinks by alpha only
    assert_close(ranks, {A: 0.48648649, B: 0.36013514, C: 0.15337838}, tol=1e-8)


def test_follow_and_attestation_on_one_pair_add_up() -> None:
    graph = TrustGraph()
    graph.set_follows(A, [B, C])
    graph.add_edge(A, B, 2.0)  # b: 1 + 2, c: 1
    assert graph.weight(A, B) == 3.0
    assert graph.edge_count == 2
    ranks = pagerank(graph, tol=1e-12, max_iter=1000)
    assert_close(ranks, dense_pagerank(graph, {A: 1, B: 1, C: 1}), tol=1e-9)


# -- against the dense reference ----------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_global_matches_dense_solve(seed: int) -> None:
    graph = random_graph(50, seed)
    ranks = pagerank(graph, tol=1e-12, max_iter=1000)
    assert ranks.converged
    uniform = {graph.key_of(i): 1.0 for i in range(graph.node_count)}
    assert_close(ranks, dense_pagerank(graph, uniform))


@pytest.mark.parametrize("seed", range(8))
def test_personalized_matches_dense_solve(seed: int) -> None:
    graph = random_graph(50, seed)
    seeds = {graph.key_of(0): 2.0, graph.key_of(7): 1.0, graph.key_of(20): 0.5}
    ranks = personalized_pagerank(graph, seeds, tol=1e-12, max_iter=1000)
    assert_close(ranks, dense_pagerank(graph, seeds))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.99])
def test_other_alphas_match_dense_solve(alpha: float) -> None:
    graph = random_graph(50, 99)
    ranks = pagerank(graph, alpha=alpha, tol=1e-13, max_iter=5000)
    uniform = {graph.key_of(i): 1.0 for i in range(graph.node_count)}
    assert_close(ranks, dense_pagerank(graph, uniform, alpha))


# -- personalization ------------------------------------------------------------------


def test_seeds_rank_higher_and_unreachable_nodes_get_nothing() -> None:
    graph = TrustGraph()
    graph.set_follows(A, [B])
    graph.set_follows(B, [A, C])
    graph.set_follows(D, [A])  # d follows into the seed's component; nothing leads back to d
    ranks = personalized_pagerank(graph, {A: 1.0})
    assert ranks.rank(A) > ranks.rank(B) > ranks.rank(C) > 0
    assert ranks.rank(D) == 0.0
    assert pagerank(graph).rank(D) > 0


def test_ring_of_fresh_keys_gains_nothing_from_the_seeds_point_of_view() -> None:
    # The seed follows a, b and t1; a follows s and b; b follows s. 1,000 fresh keys follow
    # each other in a ring and all follow t2. By hand: s = 0.507507, t1 = 0.85 * s / 3.
    s, t1, t2 = key("seed"), key("t1"), key("t2")
    graph = TrustGraph()
    graph.set_follows(s, [A, B, t1])
    graph.set_follows(A, [s, B])
    graph.set_follows(B, [s])
    ring = [key(f"ring{i}") for i in range(1000)]
    for i, member in enumerate(ring):
        graph.set_follows(member, [ring[(i + 1) % len(ring)], t2])
    assert graph.followers(t2) == 1000

    personal = personalized_pagerank(graph, {s: 1.0}, tol=1e-12)
    assert personal.rank(s) == pytest.approx(0.50750687, abs=1e-7)
    assert personal.rank(t1) == pytest.approx(0.14379361, abs=1e-7)
    assert personal.rank(t2) == 0.0
    assert max(personal.rank(member) for member in ring) == 0.0

    # Globally the ring does work: that is why the seeds matter.
    global_ = pagerank(graph, tol=1e-12)
    assert global_.rank(t2) == pytest.approx(0.29695849, abs=1e-7)
    assert global_.rank(t1) == pytest.approx(0.00095993, abs=1e-7)
    assert global_.top(1) == [(t2, pytest.approx(0.29695849, abs=1e-7))]


def test_seed_weights_set_the_teleport() -> None:
    graph = TrustGraph()
    graph.set_follows(A, [C])
    graph.set_follows(B, [D])
    ranks = personalized_pagerank(graph, {A: 3.0, B: 1.0}, tol=1e-12, max_iter=1000)
    assert_close(ranks, dense_pagerank(graph, {A: 3.0, B: 1.0}), tol=1e-9)
    assert ranks.rank(C) == pytest.approx(3 * ranks.rank(D))


def test_unknown_and_zero_seeds_are_skipped() -> None:
    graph = TrustGraph()
    graph.set_follows(A, [B])
    seeds = {A: 1.0, key("stranger"): 5.0, B: 0.0}
    ranks = personalized_pagerank(graph, seeds, tol=1e-12, max_iter=1000)
    assert_close(ranks, dense_pagerank(graph, {A: 1.0}), tol=1e-9)
    nobody = personalized_pagerank(graph, {key("stranger"): 1.0})
    assert nobody.as_array.tolist() == [0.0, 0.0]
    assert nobody.top(5) == [(A, 0.0), (B, 0.0)]


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_bad_seed_weights_are_refused(weight: float) -> None:
    graph = TrustGraph()
    graph.set_follows(A, [B])
    with pytest.raises(ValueError, match="seed weights"):
        personalized_pagerank(graph, {A: weight})


@pytest.mark.parametrize(
    ("alpha", "tol", "max_iter"), [(1.0, 1e-8, 100), (-0.1, 1e-8, 100), (0.85, 0.0, 100), (0.85, 1e-8, 0)]
)
def test_bad_parameters_are_refused(alpha: float, tol: float, max_iter: int) -> None:
    graph = TrustGraph()
    graph.set_follows(A, [B])
    with pytest.raises(ValueError):
        pagerank(graph, alpha=alpha, tol=tol, max_iter=max_iter)


# -- warm start and incremental updates -----------------------------------------------


def test_warm_start_from_converged_ranks_stops_at_once() -> None:
    graph = random_graph(500, 1)
    cold = pagerank(graph, tol=1e-10)
    again = pagerank(graph, tol=1e-10, warm=cold)
    assert again.iterations == 1
    assert np.abs(again.as_array - cold.as_array).sum() < 1e-9


def test_warm_start_after_an_event_gives_the_same_ranks_in_fewer_iterations() -> None:
    graph = random_graph(2000, 2)
    seeds = {graph.key_of(0): 1.0, graph.key_of(1): 1.0}
    before = personalized_pagerank(graph, seeds, tol=1e-10)
    rng = random.Random(5)
    graph.set_follows(graph.key_of(0), [graph.key_of(i) for i in rng.sample(range(2000), 100)])
    graph.add_edge(graph.key_of(3), key("newcomer"), 2.0)  # a new key: the warm start is shorter
    cold = personalized_pagerank(graph, seeds, tol=1e-10)
    warm = personalized_pagerank(graph, seeds, tol=1e-10, warm=before)
    assert len(warm) == len(before) + 1
    assert np.abs(warm.as_array - cold.as_array).max() < 1e-10
    assert warm.iterations < cold.iterations
    # A plain array works as a warm start too.
    assert personalized_pagerank(graph, seeds, tol=1e-10, warm=before.as_array).iterations == warm.iterations


def test_warm_start_longer_than_the_graph_is_refused() -> None:
    graph = TrustGraph()
    graph.set_follows(A, [B])
    with pytest.raises(ValueError, match="warm start"):
        pagerank(graph, warm=np.full(3, 1 / 3))


def test_patched_arrays_match_a_fresh_build() -> None:
    # Mutations between computations splice rows in; the result must equal a graph built at once.
    rng = random.Random(11)
    keys = [key(f"p{i}") for i in range(300)]
    live = TrustGraph()
    for step in range(400):
        author = rng.choice(keys)
        if rng.random() < 0.7:
            live.set_follows(author, rng.sample(keys, rng.randint(0, 6)))
        else:
            live.add_edge(author, rng.choice(keys), rng.uniform(0.5, 2.0))
        if step % 7 == 0:
            live.remove_edge(author, rng.choice(keys))
        if step == 200:  # more changed sources than are worth patching: a full rebuild
            for k in keys:
                live.set_follows(k, rng.sample(keys, 3))
        if step % 3 == 0:
            pagerank(live, tol=1e-6)
    fresh = TrustGraph()
    for i in range(live.node_count):  # the same ids, in the same order
        k = live.key_of(i)
        fresh.set_follows(k, [])
    for s in range(live.node_count):
        for d in range(live.node_count):
            w = live.weight(live.key_of(s), live.key_of(d))
            if w:
                fresh.add_edge(live.key_of(s), live.key_of(d), w)
    assert fresh.edge_count == live.edge_count
    assert np.allclose(pagerank(live, tol=1e-12).as_array, pagerank(fresh, tol=1e-12).as_array, atol=1e-12)
    uniform = {live.key_of(i): 1.0 for i in range(live.node_count)}
    assert_close(pagerank(live, tol=1e-12), dense_pagerank(live, uniform))


# -- the graph ------------------------------------------------------------------------


def test_a_new_follow_list_replaces_the_old_one() -> None:
    graph = TrustGraph()
    graph.set_follows(A, [B, C, B, A])  # a duplicate and a self-follow count for nothing
    assert (graph.follows(A), graph.followers(B), graph.followers(C), graph.edge_count) == (2, 1, 1, 2)
    assert graph.followers_of(B) == [A]
    graph.set_follows(A, [D])
    assert (graph.follows(A), graph.followers(B), graph.followers(C), graph.followers(D)) == (1, 0, 0, 1)
    assert graph.edge_count == 1
    assert graph.followers_of(B) == []
    assert graph.followers_of(D) == [A]
    assert graph.weight(A, B) == 0.0
    # b and c keep only what the teleport gives everyone: (1 - a) / n plus a share of a's rank
    ranks = pagerank(graph, tol=1e-12)
    assert ranks.rank(B) == pytest.approx(ranks.rank(C))
    assert ranks.rank(D) > ranks.rank(B)
    graph.set_follows(A, [])
    assert (graph.follows(A), graph.followers(D), graph.edge_count, graph.node_count) == (0, 0, 0, 4)


def test_follows_given_as_one_string_are_refused() -> None:
    graph = TrustGraph()
    with pytest.raises(TypeError):
        graph.set_follows(A, B)
    assert graph.node_count == 0


def test_follows_from_a_generator() -> None:
    graph = TrustGraph()
    graph.set_follows(A, (k for k in [B, C]))
    assert graph.followers_of(C) == [A]


def test_attestation_edges_add_and_come_off() -> None:
    graph = TrustGraph()
    graph.set_follows(A, [B])
    graph.add_edge(A, B, 1.5)
    graph.add_edge(A, C, 1.0)
    graph.add_edge(A, C, 0.5)
    assert (graph.weight(A, B), graph.weight(A, C), graph.edge_count) == (2.5, 1.5, 2)
    assert graph.followers(C) == 0  # attestations are not follows
    assert graph.followers_of(C) == []
    graph.remove_edge(A, C, 0.5)
    assert graph.weight(A, C) == 1.0
    graph.remove_edge(A, C, 1.0)
    assert (graph.weight(A, C), graph.edge_count) == (0.0, 1)
    graph.remove_edge(A, B)  # the attestation goes, the follow stays
    assert (graph.weight(A, B), graph.edge_count) == (1.0, 1)
    graph.remove_edge(A, B)
    graph.remove_edge(key("nobody"), A)
    assert (graph.weight(A, B), graph.edge_count) == (1.0, 1)


def test_self_attestation_is_ignored() -> None:
    graph = TrustGraph()
    graph.add_edge(A, A, 5.0)
    assert (graph.node_count, graph.edge_count) == (0, 0)


@pytest.mark.parametrize("weight", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_edge_weights_are_refused(weight: float) -> None:
    with pytest.raises(ValueError, match="positive and finite"):
        TrustGraph().add_edge(A, B, weight)


def test_followers_of_lists_follow_authors_in_the_order_seen() -> None:
    graph = TrustGraph()
    authors = [key(f"f{i}") for i in range(5)]
    for author in reversed(authors):
        graph.set_follows(author, [A, B])
    graph.add_edge(C, A, 1.0)
    assert graph.followers_of(A) == list(reversed(authors))
    assert graph.followers_of(key("stranger")) == []
    assert (graph.followers(A), graph.follows(authors[0]), graph.followers(key("x"))) == (5, 2, 0)


def test_many_keys_grow_the_follower_counts() -> None:
    graph = TrustGraph()
    keys = [key(f"g{i}") for i in range(3000)]
    graph.set_follows(keys[0], keys)
    assert graph.node_count == 3000
    assert graph.followers(keys[-1]) == 1
    assert graph.follower_counts().sum() == 2999


# -- rankings --------------------------------------------------------------------------


def test_follower_count_ranking() -> None:
    graph = TrustGraph()
    graph.set_follows(A, [B, C])
    graph.set_follows(D, [C])
    graph.set_follows(B, [C, D])
    ranks = follower_count(graph)
    assert ranks.top(3) == [(C, 3.0), (B, 1.0), (D, 1.0)]  # b and d tie: b was seen first
    assert ranks.rank(A) == 0.0
    assert ranks.order([A, D, key("stranger"), C], limit=3) == [(C, 3.0), (D, 1.0), (A, 0.0)]


def test_order_sorts_followers_by_rank() -> None:
    graph = TrustGraph()
    graph.set_follows(A, [D])
    graph.set_follows(B, [D, A])
    graph.set_follows(C, [D, A, B])
    ranks = pagerank(graph)
    followers = ranks.order(graph.followers_of(D))
    assert [k for k, _ in followers] == [A, B, C]
    assert [r for _, r in followers] == sorted((r for _, r in followers), reverse=True)
    assert ranks.order([]) == []
    assert ranks.order([C, key("unknown"), C]) == [(C, ranks.rank(C)), (key("unknown"), 0.0)]


def test_ranks_of_keys_added_later_are_zero() -> None:
    graph = TrustGraph()
    graph.set_follows(A, [B])
    ranks = pagerank(graph)
    graph.set_follows(C, [A])
    assert ranks.rank(C) == 0.0
    assert ranks.order([C, A])[0][0] == A
    with pytest.raises(ValueError):
        ranks.as_array[0] = 1.0  # read-only: a warm start is never changed behind one's back


def test_unconverged_ranks_say_so() -> None:
    graph = random_graph(200, 3)
    ranks = pagerank(graph, max_iter=2)
    assert (ranks.iterations, ranks.converged) == (2, False)


def test_empty_and_single_node_graphs() -> None:
    empty = TrustGraph()
    for ranks in (pagerank(empty), personalized_pagerank(empty, {A: 1.0}), follower_count(empty)):
        assert (len(ranks), ranks.top(10), ranks.rank(A), ranks.order([A])) == (0, [], 0.0, [(A, 0.0)])
    assert empty.followers_of(A) == []
    assert (empty.node_count, empty.edge_count, empty.followers(A), empty.follows(A)) == (0, 0, 0, 0)

    single = TrustGraph()
    single.set_follows(A, [A])
    assert (single.node_count, single.edge_count) == (1, 0)
    assert pagerank(single).as_array.tolist() == [1.0]
    assert personalized_pagerank(single, {A: 1.0}).top(5) == [(A, 1.0)]
    assert pagerank(single, warm=pagerank(single)).as_array.tolist() == [1.0]
    assert single.followers_of(A) == []
