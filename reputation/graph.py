"""Trust propagation: a weighted graph of who trusts whom, and PageRank on it.

Nodes are pubkeys (hex), numbered densely in the order they are first seen.
An edge ``src -> dst`` carries weight from two sources, added together:

* follows: each kind 3 list of ``src`` gives every followed key ``follow_weight``;
  a newer list of the same author replaces all of that author's follow edges;
* attestations: positive ``ai.wot`` labels add an explicit weight (``add_edge``).

Self-edges are ignored: trusting yourself gains nothing.

The rankings are the three sorts of Vertex (shared/specs/other/vertex-algos.md):
``follower_count`` (``followerCount``), ``pagerank`` (``globalPagerank``) and
``personalized_pagerank`` (``personalizedPagerank``), whose teleport
distribution is the normalized weights of the seeds, the node operator's roots.
A source's out-weights are normalized to sum to 1; the rank of a dangling node
(one with no out-edges) goes to the teleport distribution. A ring of fresh keys
that nobody reachable from the seeds trusts therefore gets no personalized rank
at all, whatever it does among itself.

Incremental updates: mutate the graph, then call the ranking again with
``warm=`` the previous ``Ranks``. The arrays the iteration runs on are rebuilt
lazily; after a few changed sources only their rows are spliced in, so the
cost of an event is a few array copies plus the handful of iterations the
warm start needs to absorb the change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ids = npt.NDArray[np.int32]  # node ids as stored: 4 bytes each
Index = npt.NDArray[np.intp]  # node ids to index with: numpy would convert int32 ones at every use

# Past this many changed sources a full (vectorized) rebuild beats splicing rows one by one.
_PATCH_LIMIT = 256
_EMPTY_IDS: Ids = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True, slots=True, eq=False)
class _Arrays:
    """The graph as the iteration reads it: edges sorted by source (CSR) with normalized weights.

    A row holds the follow edges of its source, then its attestation edges; a pair with both
    appears twice, which the iteration sums like one edge of the total weight.
    """

    indptr: npt.NDArray[np.int64]  # row s is [indptr[s], indptr[s + 1])
    src: Index
    dst: Index
    norm: Floats  # weight / out-weight of the source: each row sums to 1
    follow: npt.NDArray[np.bool_]  # whether the entry is a follow (not an attestation)

    @property
    def nbytes(self) -> int:
        parts = (self.indptr, self.src, self.dst, self.norm, self.follow)
        return sum(a.nbytes for a in parts)


class TrustGraph:
    """Follow and attestation edges between pubkeys; see the module docstring."""

    def __init__(self, follow_weight: float = 1.0) -> None:
        if not (follow_weight > 0 and math.isfinite(follow_weight)):
            raise ValueError(f"follow_weight must be positive and finite, not {follow_weight}")
        self.follow_weight = follow_weight
        self._ids: dict[str, int] = {}
        self._keys: list[str] = []
        self._follows: dict[int, Ids] = {}  # author -> sorted unique ids it follows
        self._attests: dict[int, dict[int, float]] = {}  # src -> dst -> summed weight
        self._follower_counts: list[int] = []  # by node id
        self._edge_count = 0  # distinct (src, dst) pairs of positive weight
        self._arrays: _Arrays | None = None
        self._dirty: set[int] = set()  # sources whose rows changed since _arrays was built

    # -- reading --------------------------------------------------------------------

    @property
    def node_count(self) -> int:
        return len(self._keys)

    @property
    def edge_count(self) -> int:
        """Distinct (src, dst) pairs with a follow, an attestation or both."""
        return self._edge_count

    def __contains__(self, pubkey: object) -> bool:
        return pubkey in self._ids

    def id_of(self, pubkey: str) -> int | None:
        return self._ids.get(pubkey)

    def key_of(self, node: int) -> str:
        return self._keys[node]

    def follows(self, pubkey: str) -> int:
        """How many keys the latest follow list of ``pubkey`` names."""
        node = self._ids.get(pubkey)
        return 0 if node is None else len(self._follows.get(node, _EMPTY_IDS))

    def followers(self, pubkey: str) -> int:
        """How many follow lists name ``pubkey`` (attestations do not count)."""
        node = self._ids.get(pubkey)
        return 0 if node is None else self._follower_counts[node]

    def followers_of(self, pubkey: str) -> list[str]:
        """The authors whose latest follow list names ``pubkey``, in the order first seen."""
        node = self._ids.get(pubkey)
        if node is None:
            return []
        arrays = self.arrays()
        sources = arrays.src[(arrays.dst == node) & arrays.follow]
        return [self._keys[s] for s in np.sort(sources).tolist()]

    def weight(self, src: str, dst: str) -> float:
        """The total weight of the edge ``src -> dst`` (0.0 when there is none)."""
        s, d = self._ids.get(src), self._ids.get(dst)
        if s is None or d is None:
            return 0.0
        return self._follow_part(s, d) + self._attests.get(s, {}).get(d, 0.0)

    def follower_counts(self) -> npt.NDArray[np.int32]:
        """Follower count of every node, indexed by node id (a copy)."""
        return np.array(self._follower_counts, dtype=np.int32)

    # -- writing --------------------------------------------------------------------

    def set_follows(self, author: str, followed: Iterable[str]) -> None:
        """Replace the follow edges of ``author`` by those of its latest kind 3 list."""
        if isinstance(followed, str):
            raise TypeError("followed is one key, not a list of keys")
        a = self._intern(author)
        keys = followed if isinstance(followed, list | tuple) else list(followed)
        known = list(map(self._ids.get, keys))  # the bulk of a million-edge load: kept in C
        if None in known:
            ids = {self._intern(k) if i is None else i for k, i in zip(keys, known, strict=True)}
        else:
            ids = set(cast(list[int], known))
        ids.discard(a)
        new = np.array(sorted(ids), dtype=np.int32)
        before = self._pairs(a)
        counts = self._follower_counts
        for i in self._follows.get(a, _EMPTY_IDS).tolist():
            counts[i] -= 1
        for i in ids:
            counts[i] += 1
        if len(new):
            self._follows[a] = new
        else:
            self._follows.pop(a, None)
        self._changed(a, before)

    def add_edge(self, src: str, dst: str, weight: float) -> None:
        """Add ``weight`` (> 0) to the attestation edge ``src -> dst``."""
        if not (weight > 0 and math.isfinite(weight)):
            raise ValueError(f"an edge weight must be positive and finite, not {weight}")
        if src == dst:
            return
        s, d = self._intern(src), self._intern(dst)
        before = self._pairs(s)
        row = self._attests.setdefault(s, {})
        row[d] = row.get(d, 0.0) + weight
        self._changed(s, before)

    def remove_edge(self, src: str, dst: str, weight: float | None = None) -> None:
        """Take ``weight`` off the attestation edge ``src -> dst``, or all of it when None.

        Follow edges change only with ``set_follows``. Removing what is not there is a no-op.
        """
        s, d = self._ids.get(src), self._ids.get(dst)
        row = None if s is None else self._attests.get(s)
        if s is None or d is None or row is None or d not in row:
            return
        before = self._pairs(s)
        left = 0.0 if weight is None else row[d] - weight
        # A sum of float weights minus its parts may leave dust: treat it as nothing.
        if left <= 1e-12 * max(1.0, row[d]):
            del row[d]
            if not row:
                del self._attests[s]
        else:
            row[d] = left
        self._changed(s, before)

    # -- the arrays of the computation ----------------------------------------------

    def arrays(self) -> _Arrays:
        """The CSR arrays of the current graph, rebuilt or patched if it changed."""
        if self._arrays is None or len(self._dirty) > _PATCH_LIMIT:
            self._arrays = self._build()
        elif self._dirty or len(self._arrays.indptr) - 1 < self.node_count:
            self._arrays = self._patch(self._arrays)
        self._dirty.clear()
        return self._arrays

    def _build(self) -> _Arrays:
        n = self.node_count
        authors = sorted(self._follows)  # rows in source order: no sort of the edges needed
        lists = [self._follows[a] for a in authors]
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        f_dst = np.concatenate(lists).astype(np.intp) if lists else np.zeros(0, dtype=np.intp)
        f_src = np.repeat(np.array(authors, dtype=np.intp), lengths)
        a_src, a_dst, a_w = self._attestation_edges()
        src = np.concatenate([f_src, a_src])
        dst = np.concatenate([f_dst, a_dst])
        weight = np.concatenate([np.full(len(f_dst), self.follow_weight), a_w])
        follow = np.zeros(len(src), dtype=np.bool_)
        follow[: len(f_src)] = True
        if len(a_src):
            order = np.argsort(src, kind="stable")  # follows are one sorted run: cheap for timsort
            src, dst, weight, follow = src[order], dst[order], weight[order], follow[order]
        out_weight = np.bincount(src, weights=weight, minlength=n)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
        return _Arrays(indptr, src, dst, weight / out_weight[src], follow)

    def _attestation_edges(self) -> tuple[Index, Index, Floats]:
        count = sum(len(row) for row in self._attests.values())
        src = np.empty(count, dtype=np.intp)
        dst = np.empty(count, dtype=np.intp)
        weight = np.empty(count, dtype=np.float64)
        i = 0
        for s, row in self._attests.items():
            src[i : i + len(row)] = s
            dst[i : i + len(row)] = list(row)
            weight[i : i + len(row)] = list(row.values())
            i += len(row)
        return src, dst, weight

    def _patch(self, old: _Arrays) -> _Arrays:
        """Splice the rows of the changed sources into ``old``: a few copies of the arrays."""
        n, old_n = self.node_count, len(old.indptr) - 1
        degree = np.zeros(n, dtype=np.int64)
        degree[:old_n] = np.diff(old.indptr)
        dst_parts: list[Index] = []
        norm_parts: list[Floats] = []
        follow_parts: list[npt.NDArray[np.bool_]] = []
        copied = 0  # rows [0, copied) of old are in the parts
        for s in sorted(self._dirty):
            start, stop = old.indptr[min(copied, old_n)], old.indptr[min(s, old_n)]
            dst_parts.append(old.dst[start:stop])
            norm_parts.append(old.norm[start:stop])
            follow_parts.append(old.follow[start:stop])
            row_dst, row_norm, row_follow = self._row(s)
            dst_parts.append(row_dst)
            norm_parts.append(row_norm)
            follow_parts.append(row_follow)
            degree[s] = len(row_dst)
            copied = s + 1
        start = old.indptr[min(copied, old_n)]
        dst_parts.append(old.dst[start:])
        norm_parts.append(old.norm[start:])
        follow_parts.append(old.follow[start:])
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(degree, out=indptr[1:])
        src = np.repeat(np.arange(n, dtype=np.intp), degree)
        return _Arrays(
            indptr, src, np.concatenate(dst_parts), np.concatenate(norm_parts),
            np.concatenate(follow_parts),
        )

    def _row(self, s: int) -> tuple[Index, Floats, npt.NDArray[np.bool_]]:
        followed = self._follows.get(s, _EMPTY_IDS)
        attested = self._attests.get(s, {})
        dst = np.concatenate([followed, np.fromiter(attested, dtype=np.int32, count=len(attested))])
        dst = dst.astype(np.intp)
        weight = np.concatenate([
            np.full(len(followed), self.follow_weight),
            np.fromiter(attested.values(), dtype=np.float64, count=len(attested)),
        ])
        follow = np.arange(len(dst)) < len(followed)
        total = weight.sum()
        return dst, (weight / total if len(dst) else weight), follow

    # -- bookkeeping ----------------------------------------------------------------

    def _intern(self, pubkey: str) -> int:
        node = self._ids.get(pubkey)
        if node is None:
            node = self._ids[pubkey] = len(self._keys)
            self._keys.append(pubkey)
            self._follower_counts.append(0)
        return node

    def _follow_part(self, s: int, d: int) -> float:
        followed = self._follows.get(s, _EMPTY_IDS)
        i = int(np.searchsorted(followed, d))
        return self.follow_weight if i < len(followed) and followed[i] == d else 0.0

    def _pairs(self, s: int) -> int:
        """Distinct destinations of ``s``: its follows and attestations, overlap counted once."""
        followed = self._follows.get(s, _EMPTY_IDS)
        attested = self._attests.get(s)
        if not attested:
            return len(followed)
        both = sum(1 for d in attested if self._follow_part(s, d)) if len(followed) else 0
        return len(followed) + len(attested) - both

    def _changed(self, s: int, pairs_before: int) -> None:
        self._edge_count += self._pairs(s) - pairs_before
        self._dirty.add(s)


@dataclass(frozen=True, slots=True, eq=False)
class Ranks:
    """A score per node of ``graph`` as it was when computed; keys added later rank 0.0.

    Pass it as ``warm=`` to the next computation after the graph changed.
    """

    graph: TrustGraph
    values: Floats  # indexed by node id, read-only
    iterations: int = 0
    converged: bool = True

    def __len__(self) -> int:
        return len(self.values)

    @property
    def as_array(self) -> Floats:
        return self.values

    def rank(self, pubkey: str) -> float:
        node = self.graph.id_of(pubkey)
        return 0.0 if node is None or node >= len(self.values) else float(self.values[node])

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` best (pubkey, rank), best first; ties go to the key seen first."""
        k = min(n, len(self.values))
        if k <= 0:
            return []
        v = self.values
        threshold = np.partition(v, len(v) - k)[len(v) - k]
        above = np.flatnonzero(v > threshold)
        tied = np.flatnonzero(v == threshold)[: k - len(above)]
        return self._ordered(np.concatenate([above, tied]))

    def order(self, pubkeys: Iterable[str], limit: int | None = None) -> list[tuple[str, float]]:
        """``pubkeys`` as (pubkey, rank), best first; ties: key seen first, unknown keys last."""
        keys = list(dict.fromkeys(pubkeys))
        ids = self.graph.id_of
        nodes = np.array([-1 if (i := ids(k)) is None else i for k in keys], dtype=np.int64)
        inside = (nodes >= 0) & (nodes < len(self.values))
        ranks = np.zeros(len(keys))
        ranks[inside] = self.values[nodes[inside]]
        tiebreak = np.where(nodes >= 0, nodes, np.iinfo(np.int64).max)
        picked = np.lexsort((tiebreak, -ranks))[:limit]
        return [(keys[i], float(ranks[i])) for i in picked.tolist()]

    def _ordered(self, nodes: npt.NDArray[np.int64]) -> list[tuple[str, float]]:
        nodes = nodes[np.lexsort((nodes, -self.values[nodes]))]
        return [(self.graph.key_of(i), float(self.values[i])) for i in nodes.tolist()]


def follower_count(graph: TrustGraph) -> Ranks:
    """Vertex ``followerCount``: the rank of a key is its number of followers."""
    return _ranks(graph, graph.follower_counts().astype(np.float64), 0, True)


def pagerank(
    graph: TrustGraph,
    *,
    alpha: float = 0.85,
    tol: float = 1e-8,
    max_iter: int = 100,
    warm: Ranks | Floats | None = None,
) -> Ranks:
    """Vertex ``globalPagerank``: teleport to every node alike.

    Stops when the L1 change of an iteration is below ``tol`` (the error is then
    at most about ``tol * alpha / (1 - alpha)``), or after ``max_iter`` iterations.
    """
    n = graph.node_count
    return _power_iteration(graph, np.full(n, 1.0 / n) if n else np.zeros(0), alpha, tol, max_iter, warm)


def personalized_pagerank(
    graph: TrustGraph,
    seeds: Mapping[str, float],
    *,
    alpha: float = 0.85,
    tol: float = 1e-8,
    max_iter: int = 100,
    warm: Ranks | Floats | None = None,
) -> Ranks:
    """Vertex ``personalizedPagerank``: teleport to the seeds, in proportion to their weights.

    Seeds not in the graph are skipped; with none left every rank is 0.0 (nobody is
    trusted from that point of view).
    """
    if any(not (w >= 0 and math.isfinite(w)) for w in seeds.values()):
        raise ValueError("seed weights must be finite and not negative")
    chosen = {node: w for key, w in seeds.items() if w > 0 and (node := graph.id_of(key)) is not None}
    if not chosen:
        return _ranks(graph, np.zeros(graph.node_count), 0, True)
    teleport = np.zeros(graph.node_count)
    teleport[list(chosen)] = list(chosen.values())
    return _power_iteration(graph, teleport / teleport.sum(), alpha, tol, max_iter, warm)


def _power_iteration(
    graph: TrustGraph, teleport: Floats, alpha: float, tol: float, max_iter: int,
    warm: Ranks | Floats | None,
) -> Ranks:
    """Iterate r <- alpha * P^T r + (1 - alpha * |P^T r|) * teleport until it settles."""
    if not 0 <= alpha < 1:
        raise ValueError(f"alpha must be in [0, 1), not {alpha}")
    if not tol > 0 or max_iter < 1:
        raise ValueError("tol must be positive and max_iter at least 1")
    n = graph.node_count
    if n == 0:
        return _ranks(graph, np.zeros(0), 0, True)
    arrays = graph.arrays()
    r = _start(teleport, warm)
    for iteration in range(1, max_iter + 1):
        following = alpha * _carried(arrays, r, n)
        # What the edges did not carry (the teleport share and the dangling nodes' rank)
        # restarts from the teleport distribution: the ranks keep summing to 1.
        following += (1.0 - following.sum()) * teleport
        change = float(np.abs(following - r).sum())
        r = following
        if change < tol:
            return _ranks(graph, r, iteration, True)
    return _ranks(graph, r, max_iter, False)


def _carried(arrays: _Arrays, r: Floats, n: int) -> Floats:
    """P^T r: what each node receives along the edges (the hot loop: one gather, one scatter)."""
    received = np.bincount(arrays.dst, weights=r[arrays.src] * arrays.norm, minlength=n)
    return cast(Floats, received)  # float64 when weighted; numpy's stubs say intp


def _start(teleport: Floats, warm: Ranks | Floats | None) -> Floats:
    values = warm.values if isinstance(warm, Ranks) else warm
    if values is not None and len(values) > len(teleport):
        raise ValueError(f"warm start has {len(values)} ranks for a graph of {len(teleport)} nodes")
    if values is None or not values.sum() > 0:
        return teleport.copy()
    r = np.zeros(len(teleport))
    r[: len(values)] = values  # keys added since start at 0: the iteration gives them theirs
    return r


def _ranks(graph: TrustGraph, values: Floats, iterations: int, converged: bool) -> Ranks:
    values.flags.writeable = False
    return Ranks(graph, values, iterations, converged)
