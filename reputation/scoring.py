"""Timmy's own reputation score: the ai.wot sum, made Sybil-resistant, and explained.

DESIGN.md section 7. ``reputation/aiwot.py`` computes the ai.wot score exactly
(``shared/specs/other/ai-wot-PROTOCOL.md``) for interop; this module keeps its
shape (type multiplier * attester weight * zap weight * temporal decay, summed,
floored at 0) and changes what an attester weighs and how much one attester can
add. For a rating ``r`` by attester ``a`` about target ``X``::

    weight(r) = type(r) * rater(a) * paid(r) * decay(r) * zap(r) * repeat(r) * pool(r)
    raw(X)    = Σ weight(r) over the ratings about X that count
    score(X)  = 100 * (1 - exp(-max(0, raw(X)) / SCORE_SCALE))        SCORE_SCALE = 10

* ``type``: ai.wot's multiplier (``TYPE_MULTIPLIERS``; negative for warning, dispute).
* ``rater(a) = max(t(a), f(a))``, the larger of two credits:

  - ``t(a)``, trust: the personalized PageRank from the operator's roots,
    relative to the roots' mean, capped at 1 (a root counts 1.0). Linear on
    purpose: PageRank conserves mass, so the trust that reaches a ring of fresh
    keys is bounded by the trust that flows over its few edges from honest keys,
    and a linear weight makes splitting it over more keys gain nothing (ai.wot's
    square root, or any concave map, would reward the split).
  - ``f(a)``, paid history: ``min(0.5, 0.1 * Σ_T log2(1 + sats(a→T) / 1000))``
    over the distinct targets ``T ≠ a`` that ``a`` provably paid for a rated job
    (a job paid and rated twice counts once). Payments cost money, so a key that
    pays for work earns some standing without anyone's follow. Below 1000 sats
    the log is nearly linear, so spreading a budget over many keys gains at most
    1/ln 2 ≈ 1.44x; above, it grows slowly, so one big spender does not dominate;
    summing over targets rewards a breadth of custom over one large bill.
    A key with no trust and no paid history weighs ``UNKNOWN_WEIGHT`` = 0.01.

  Where ``t(a) >= f(a)`` the rater is *vouched* (source ``trust``); otherwise its
  weight comes from its ``paid-history`` or it is ``unknown``, and it is pooled.
* ``paid``: 2.5 for a rating of a job the attester provably paid the target for
  (``paid_msat > 0``), else 1: a paying customer has seen the work.
* ``decay = 0.5 ** (age / 90 days)``, as ai.wot (an age below 0 counts as 0).
* ``zap = min(3, 1 + 0.5 * log2(1 + zap_sats))``: ai.wot's zap weight, capped so
  that sats alone cannot buy unbounded weight (the cap is reached at 15 sats).
* ``repeat``: one attester's say about one target is bounded. Per (attester,
  target, sign), the best unpaid rating counts and so does the best rating of
  each distinct paid job (its ``event_ref``); those are ranked by weight and the
  i-th (from 0) is multiplied by 0.5 ** i, so all together weigh less than twice
  the best one. A key posting 10,000 ratings adds exactly what its best one adds.
* ``pool``: trust is conserved but paid history and the unknown floor are not:
  fresh keys are free, and payments between one's own keys cost only fees. So all
  the ratings of one target whose rater weight comes from them share a cap, per
  sign: the ``unknown`` ones add at most 0.05 in all (half a point: any number of
  fresh keys counts as about three), the ``paid-history`` ones at most 1.5 (one
  unpaid service-quality rating by a root). Within a pool that exceeds its cap,
  every rating is scaled by ``cap / Σ|weights|``.

Negative ratings (warning, dispute) count only from a rater weighing at least
``NEGATIVE_GATE`` = 0.05 (ai.wot ignores negatives below a trust of 20 of 100),
or when they rate a job the attester paid for: a customer who paid and got
garbage may complain. As in ai.wot, self-ratings, revoked ratings, unknown labels
and negatives without a reason count for nothing; so do ratings dated more than
``MAX_FUTURE_S`` ahead of ``now``, which would otherwise escape decay.

``SCORE_SCALE`` = 10 makes one unpaid service-quality rating by a root worth
14 points, one paid 31, three paid 68. Every score carries its explanation:
one :class:`Contribution` per attestation about the target, sorted by
``|weight|``; the factors of a counted one multiply to its weight and the
weights sum to ``raw``; one that did not count has weight 0, the factors it
would have had (if it got that far) and ``why_not``. It is built when first
asked for (``ScoreReport.contributions``), as it costs more than the score. Callers that rank keys
(auction tie-breaks) order by ``score``, then ``raw``, which still separates
keys when the score saturates.

Pure: no I/O, no clock (callers pass ``now``). The result does not depend on
the order of the attestations.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field

from reputation.model import NEGATIVE_TYPES, TYPE_MULTIPLIERS, Attestation, Contribution

HALF_LIFE_S = 90 * 86_400
ZAP_WEIGHT_CAP = 3.0
PAID_FACTOR = 2.5
UNKNOWN_WEIGHT = 0.01
PAID_CREDIT_PER_LOG2 = 0.1
PAID_CREDIT_UNIT_MSAT = 1_000_000  # 1000 sats
PAID_CREDIT_CAP = 0.5
NEGATIVE_GATE = 0.05
REPEAT_DECAY = 0.5
POOL_CAPS = {"unknown": 0.05, "paid-history": 1.5}
SCORE_SCALE = 10.0
MAX_FUTURE_S = 600

TRUST, PAID_HISTORY, UNKNOWN = "trust", "paid-history", "unknown"

Factor = tuple[str, float]  # (name, value), as a Contribution lists it
_TRUSTED = "rater:" + TRUST
_PAID_HISTORY = "rater:" + PAID_HISTORY
_UNKNOWN_RATER: Factor = ("rater:" + UNKNOWN, UNKNOWN_WEIGHT)


@dataclass(frozen=True)
class ScoreReport:
    """A target's score (0-100), the raw sum behind it, and every attestation's share.

    ``contributions`` is built on first use: ranking needs only ``score`` and
    ``raw``, and at 10,000 ratings the explanation costs more than the score.
    """

    target: str
    score: float
    raw: float
    explain: Callable[[], tuple[Contribution, ...]] = field(repr=False, compare=False)

    @functools.cached_property
    def contributions(self) -> tuple[Contribution, ...]:
        """One per attestation about ``target``, sorted by ``|weight|``, heaviest first."""
        return self.explain()


def score_agent(
    target: str,
    attestations: Sequence[Attestation],
    *,
    trust: Mapping[str, float],
    roots: Collection[str],
    now: int,
    revoked: Set[str] = frozenset(),
) -> ScoreReport:
    """Score ``target`` from ``attestations``, which may be about anyone.

    Those about other targets still count for their attesters' paid history.
    """
    raters = Raters(attestations, trust=trust, roots=roots, now=now, revoked=revoked)
    about = [a for a in attestations if a.target == target]
    return _score_target(target, about, raters, now, revoked)


def score_all(
    attestations: Iterable[Attestation],
    *,
    trust: Mapping[str, float],
    roots: Collection[str],
    now: int,
    revoked: Set[str] = frozenset(),
) -> dict[str, ScoreReport]:
    """Score every target that some attestation is about."""
    every = list(attestations)
    raters = Raters(every, trust=trust, roots=roots, now=now, revoked=revoked)
    by_target: dict[str, list[Attestation]] = {}
    for a in every:
        by_target.setdefault(a.target, []).append(a)
    return {t: _score_target(t, group, raters, now, revoked) for t, group in by_target.items()}


class Raters:
    """What each key's word weighs, ``rater(a) = max(t(a), f(a))``, and where that comes from."""

    __slots__ = ("_credit", "_known", "_roots", "_scale", "_trust")

    def __init__(
        self,
        attestations: Iterable[Attestation],
        *,
        trust: Mapping[str, float],
        roots: Collection[str],
        now: int,
        revoked: Set[str],
    ) -> None:
        self._trust = trust
        self._roots = frozenset(roots)
        root_trust = [t if 0.0 < (t := trust.get(r, 0.0)) < math.inf else 0.0 for r in self._roots]
        mean = sum(root_trust) / len(root_trust) if root_trust else 0.0
        self._scale = 1.0 / mean if mean > 0.0 else 0.0
        self._credit = _paid_credit(attestations, now, revoked)
        self._known: dict[str, Factor] = {}

    def weigh(self, pubkey: str) -> tuple[float, str]:
        """``(weight, source)``; source is ``trust``, ``paid-history`` or ``unknown``."""
        name, weight = self.factor(pubkey)
        return weight, name.removeprefix("rater:")

    def factor(self, pubkey: str) -> Factor:
        """``("rater:<source>", weight)``, as the explanation of a rating shows it."""
        known = self._known.get(pubkey)
        if known is None:
            known = self._known[pubkey] = self._weigh(pubkey)
        return known

    def _weigh(self, pubkey: str) -> Factor:
        t = self._trust.get(pubkey, 0.0) * self._scale
        if t >= 1.0 or pubkey in self._roots:
            t = 1.0
        elif not t > 0.0:  # also NaN
            t = 0.0
        credit = self._credit.get(pubkey)
        if credit is None:
            return (_TRUSTED, t) if t >= UNKNOWN_WEIGHT else _UNKNOWN_RATER
        f = min(PAID_CREDIT_CAP, PAID_CREDIT_PER_LOG2 * credit)
        return (_TRUSTED, t) if t >= f else (_PAID_HISTORY, f)


def _paid_credit(
    attestations: Iterable[Attestation], now: int, revoked: Set[str]
) -> dict[str, float]:
    """``Σ_T log2(1 + paid(a→T) / 1000 sats)`` per attester, each paid job once."""
    jobs: dict[tuple[str, str, str], int] = {}
    for a in attestations:
        if a.paid_msat > 0 and not _why_ignored(a, now, revoked):
            job = (a.attester, a.target, a.event_ref)
            jobs[job] = max(jobs.get(job, 0), a.paid_msat)
    paid_to: dict[tuple[str, str], int] = {}
    for (attester, target, _), msat in jobs.items():
        paid_to[attester, target] = paid_to.get((attester, target), 0) + msat
    credit: dict[str, float] = {}
    for (attester, _), msat in paid_to.items():
        credit[attester] = credit.get(attester, 0.0) + math.log2(1 + msat / PAID_CREDIT_UNIT_MSAT)
    return credit


_IGNORED = ("self-attestation", "revoked", "unknown label", "dated in the future")
_NO_REASON = "negative without a reason"
_WITHOUT_FACTORS = frozenset((*_IGNORED, _NO_REASON))
_GATED = "attester below the negative gate"
_REPEATED = "repeat unpaid rating by the same attester"
_SAME_JOB = "same paid job rated again"


def _why_ignored(a: Attestation, now: int, revoked: Set[str]) -> str:
    """Why ``a`` counts for nothing whoever wrote it, or ""."""
    if a.attester == a.target:
        return _IGNORED[0]
    if a.id in revoked:
        return _IGNORED[1]
    if a.label not in TYPE_MULTIPLIERS:
        return _IGNORED[2]
    if a.created_at > now + MAX_FUTURE_S:
        return _IGNORED[3]
    if a.label in NEGATIVE_TYPES and not a.content.strip():
        return _NO_REASON
    return ""


# Factors shared by many ratings: built once, not once per rating.
_TYPE: dict[str, Factor] = {label: ("type", m) for label, m in TYPE_MULTIPLIERS.items()}
_PAID: Factor = ("paid", PAID_FACTOR)
_UNPAID: Factor = ("paid", 1.0)
_NO_ZAP: Factor = ("zap", 1.0)
_ONCE: Factor = ("repeat", 1.0)


def _zap_factor(sats: int) -> Factor:
    if sats <= 0:
        return _NO_ZAP
    return ("zap", min(ZAP_WEIGHT_CAP, 1.0 + 0.5 * math.log2(1 + sats)))


def _by_id(a: Attestation) -> str:
    return a.id


def _size(c: Contribution) -> float:
    return abs(c.weight)


class _Tally:
    """The ratings of one target, one slot per attestation (sorted by id).

    Kept as parallel lists of floats and shared factor tuples rather than an
    object per rating: at 10,000 ratings, allocations (and the garbage collector
    passes they trigger) are most of the cost.
    """

    __slots__ = (
        "atts",
        "base",
        "decay",
        "pools",
        "rater",
        "repeat",
        "voices",
        "weights",
        "why_not",
        "zap",
    )

    def __init__(self, about: Iterable[Attestation]) -> None:
        self.atts = sorted(about, key=_by_id)
        n = len(self.atts)
        self.why_not = [""] * n
        self.base = [0.0] * n
        self.decay = [1.0] * n
        self.rater = [_UNKNOWN_RATER] * n
        self.zap = [_NO_ZAP] * n
        self.repeat = [1.0] * n
        # Per sign (positive, negative): attester -> its ratings, for those with several.
        self.voices: tuple[dict[str, list[int]], dict[str, list[int]]] = ({}, {})
        self.pools: tuple[dict[str, Factor], dict[str, Factor]] = ({}, {})
        self.weights: list[float] = []

    def weigh(self, raters: Raters, now: int, revoked: Set[str]) -> None:
        """Every factor but ``repeat`` and ``pool``; filters and the negative gate."""
        why_not, base, decay, rater, zap = self.why_not, self.base, self.decay, self.rater, self.zap
        # Raters' cache first: a call less per rating.
        known, factor, kinds = raters._known.get, raters.factor, TYPE_MULTIPLIERS.get
        first: tuple[dict[str, int], dict[str, int]] = ({}, {})
        horizon = now + MAX_FUTURE_S
        zaps = functools.cache(_zap_factor)  # amounts repeat (21, 100, 1000 sats...)
        for i, a in enumerate(self.atts):
            kind = kinds(a.label)
            if (
                kind is None
                or a.attester == a.target
                or a.created_at > horizon
                or a.id in revoked
                or (kind < 0.0 and not a.content.strip())
            ):
                why_not[i] = _why_ignored(a, now, revoked)
                continue
            r = rater[i] = known(a.attester) or factor(a.attester)
            paid = PAID_FACTOR if a.paid_msat > 0 else 1.0
            age = now - a.created_at
            d = decay[i] = 0.5 ** (age / HALF_LIFE_S) if age > 0 else 1.0
            z = zap[i] = _NO_ZAP if a.zap_sats <= 0 else zaps(a.zap_sats)
            base[i] = kind * r[1] * paid * d * z[1]
            negative = kind < 0.0
            if negative and paid == 1.0 and r[1] < NEGATIVE_GATE:
                why_not[i] = _GATED
                continue
            heard = first[negative]
            j = heard.get(a.attester)
            if j is None:
                heard[a.attester] = i
            else:
                voices = self.voices[negative]
                voice = voices.get(a.attester)
                if voice is None:
                    voices[a.attester] = [j, i]
                else:
                    voice.append(i)

    def bound_voices(self) -> None:
        """Per attester and sign: the best unpaid rating and the best of each paid job
        count, at 1, 1/2, 1/4... of their weight in order of weight; the rest do not.
        Of equal weights the lower id wins (the slots are in id order)."""
        atts, base, why_not, repeat = self.atts, self.base, self.why_not, self.repeat

        def size(i: int) -> float:
            return abs(base[i])

        for voice in itertools.chain(*(v.values() for v in self.voices)):
            best: dict[str | None, int] = {}
            for i in voice:
                a = atts[i]
                job = a.event_ref if a.paid_msat > 0 else None
                held = best.get(job)
                if held is None:
                    best[job] = i
                    continue
                if abs(base[i]) > abs(base[held]):
                    best[job], i = i, held
                why_not[i] = _SAME_JOB if job is not None else _REPEATED
            if len(best) > 1:
                for rank, i in enumerate(sorted(best.values(), key=size, reverse=True)):
                    repeat[i] = REPEAT_DECAY**rank

    def settle(self) -> list[float]:
        """Apply the pools' caps: every rating's final weight (0 for those that do not count)."""
        totals: tuple[dict[str, float], dict[str, float]] = ({}, {})
        why_not, base, repeat = self.why_not, self.base, self.repeat
        for i, r in enumerate(self.rater):
            if r[0] != _TRUSTED and not why_not[i]:
                total = totals[base[i] < 0.0]
                total[r[0]] = total.get(r[0], 0.0) + abs(base[i] * repeat[i])
        pos, neg = (
            {
                name: ("pool", min(1.0, POOL_CAPS[name.removeprefix("rater:")] / t) if t else 1.0)
                for name, t in total.items()
            }
            for total in totals
        )
        self.pools = (pos, neg)
        weights = [0.0] * len(base)
        for i, r in enumerate(self.rater):
            if not why_not[i]:
                weight = base[i] * repeat[i]
                if r[0] != _TRUSTED:
                    weight *= self.pools[base[i] < 0.0][r[0]][1]
                weights[i] = weight
        self.weights = weights
        return weights

    def contributions(self) -> tuple[Contribution, ...]:
        """One per attestation, the heaviest first; ties stay in id order."""
        out: list[Contribution] = []
        for i, a in enumerate(self.atts):
            why = self.why_not[i]
            if why in _WITHOUT_FACTORS:
                out.append(Contribution(a, 0.0, (), counted=False, why_not=why))
                continue
            kind, r = _TYPE[a.label], self.rater[i]
            paid = _PAID if a.paid_msat > 0 else _UNPAID
            decay, zap = ("decay", self.decay[i]), self.zap[i]
            if why:
                factors = (kind, r, paid, decay, zap)
                out.append(Contribution(a, 0.0, factors, counted=False, why_not=why))
                continue
            repeat = _ONCE if self.repeat[i] == 1.0 else ("repeat", self.repeat[i])
            weight = self.weights[i]
            if r[0] == _TRUSTED:
                out.append(Contribution(a, weight, (kind, r, paid, decay, zap, repeat)))
            else:
                pool = self.pools[self.base[i] < 0.0][r[0]]
                out.append(Contribution(a, weight, (kind, r, paid, decay, zap, repeat, pool)))
        out.sort(key=_size, reverse=True)
        return tuple(out)


def _score_target(
    target: str, about: Iterable[Attestation], raters: Raters, now: int, revoked: Set[str]
) -> ScoreReport:
    tally = _Tally(about)
    tally.weigh(raters, now, revoked)
    tally.bound_voices()
    raw = math.fsum(tally.settle())
    score = -100.0 * math.expm1(-raw / SCORE_SCALE) if raw > 0.0 else 0.0
    return ScoreReport(target, score, raw, tally.contributions)
