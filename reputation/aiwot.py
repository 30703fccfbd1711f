"""The ai.wot trust score, exactly as the protocol defines it, and explained.

Spec: ``shared/specs/other/ai-wot-PROTOCOL.md``, sections "Zap-Weighted Trust",
"Trust Score Calculation" (parameters, "Temporal Decay", "Normalization"),
"Sybil Resistance Metrics" and "Implementation Requirements — For Consumers"::

    score(X)  = max(0, Σ zap_weight * attester_trust * type_multiplier * decay)
    display   = min(100, score * 10)
    zap_weight = 1.0 + log2(1 + zap_sats) * 0.5
    decay      = 0.5 ** (age_days / half_life_days)            (90 days by default)

How we read what the protocol leaves open (our reading agrees with the
reference implementation, ``jeletor/ai-wot`` ``lib/scoring.js``, except where noted):

* **Which score weighs an attester.** Two scales appear in the text: the worked
  example takes "Agent A's trust score: 5.0 → effective trust √5 ≈ 2.24", a raw
  score (display 50), while the negative gate "trust score < 20" and the dispute
  example's "trust score 45" only make sense on the 0-100 display scale (a raw
  score of 20 would be display 200). So an attester's weight is
  ``effective_trust = raw ** 0.5`` of its own *raw* score, and the gate compares its
  *display* score with 20. The reference does the same.
* **An attester with no positive score** (nobody attests it, or negatives floor it
  at 0) weighs 1.0, as in the first pass: there is no recursive data to use.
  Hence an attester with 0 < raw < 1 weighs less than an unknown one; the
  reference has this quirk too, and we keep it for equal numbers.
* **Recursion depth.** ``depth`` counts the hops whose scores are computed:
  the score at level ``d`` weighs each attester by its score at level ``d - 1``,
  and level 0 is the "first pass" where every attester weighs 1.0. With the
  default ``depth=2`` the target's direct attesters (hop 1) and their attesters
  (hop 2) are scored; hop 2's own attesters count at 1.0, and nothing further out
  changes the result. Each level uses only the one below it, so cycles (A attests
  B, B attests A) cannot loop. The reference caches by pubkey alone, which makes its numbers in cycles
  depend on query order; computing by level gives the protocol's formula.
* **The gate where no score is known.** In the first pass (level 0) attesters
  have no score, so negatives there are not gated; the reference assumes a
  display of 100 at its depth limit, which is the same thing.
* **Diversity** is taken over the counted positive contributions (the "share of
  total score contribution" has no meaning once negatives cancel some of it):
  ``unique_attesters / count * (1 - largest attester's share)``; 0 with none.
* A negative attestation without a reason is ignored, as are self-attestations,
  revoked ones and unknown types; each stays in ``contributions`` with
  ``counted=False`` and ``why_not``. No rounding: the reference rounds raw to
  cents and display to integers for show, which can move a gate decision by a
  hair at exactly 20. Repeated attestations by one attester all count, as the
  protocol says; the reference (v0.6+) keeps only the newest per
  (attester, target, type).

Two of the spec's printed numbers do not follow from its own formulas: 10000 sats
weigh 1 + log2(10001) * 0.5 = 7.64, not 7.7; and the positive example's 18.5 is the
product of rounded factors (5.5 * 2.24 * 1.5), exactly 18.39. We follow the formulas.
NIP-40 expiry is checked when a label is read (``reputation/labels.py``):
:class:`~reputation.model.Attestation` does not carry it.

Pure: no I/O, no clock; callers pass ``now``. Deterministic: the result does not
depend on the order of ``attestations``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Set
from dataclasses import dataclass

from reputation.model import NEGATIVE_TYPES, TYPE_MULTIPLIERS, Attestation, Contribution

ZAP_BASE_WEIGHT = 1.0
ZAP_MULTIPLIER = 0.5
DAMPENING_FACTOR = 0.5
NEGATIVE_GATE = 20.0  # on the display scale, 0-100
DEFAULT_HALF_LIFE_DAYS = 90.0
DEFAULT_DEPTH = 2
_DAY = 86_400


@dataclass(frozen=True, slots=True)
class AiWotScore:
    """A pubkey's ai.wot score; ``contributions`` holds every attestation about it, counted or not."""

    raw: float
    display: float
    diversity: float
    contributions: tuple[Contribution, ...]


def zap_weight(zap_sats: int) -> float:
    """``1.0 + log2(1 + sats) * 0.5`` ("Zap Weight Formula")."""
    return ZAP_BASE_WEIGHT + math.log2(1 + max(0, zap_sats)) * ZAP_MULTIPLIER


def temporal_decay(
    created_at: int, now: int, half_life_days: float = DEFAULT_HALF_LIFE_DAYS
) -> float:
    """``0.5 ** (age_days / half_life_days)``; a future ``created_at`` counts as age 0."""
    age_days = max(0, now - created_at) / _DAY
    return math.pow(0.5, age_days / half_life_days)


def effective_trust(attester_raw: float) -> float:
    """``raw ** 0.5`` ("Recursive dampening"); 1.0, the first-pass value, without a positive score."""
    return math.pow(attester_raw, DAMPENING_FACTOR) if attester_raw > 0 else 1.0


def display_score(raw: float) -> float:
    """``min(100, max(0, raw) * 10)`` ("Normalization")."""
    return min(100.0, max(0.0, raw) * 10)


def diversity(contributions: Iterable[Contribution]) -> float:
    """``unique_attesters / attestation_count * (1 - max_single_attester_share)`` over counted positives."""
    by_attester: dict[str, float] = defaultdict(float)
    count = 0
    for c in contributions:
        if c.counted and c.weight > 0:
            by_attester[c.attestation.attester] += c.weight
            count += 1
    if not count:
        return 0.0
    largest_share = max(by_attester.values()) / math.fsum(by_attester.values())
    return len(by_attester) / count * (1 - largest_share)


def aiwot_score(
    target: str,
    attestations: Iterable[Attestation],
    *,
    now: int,
    revoked: Set[str] = frozenset(),
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    depth: int = DEFAULT_DEPTH,
) -> AiWotScore:
    """The ai.wot score of ``target``.

    ``attestations`` is everything known, not only what is about ``target``: the
    recursion looks up the attesters' own attestations in it. ``revoked`` holds ids
    revoked by their own attester (:func:`reputation.labels.revoked_ids`).
    """
    if depth < 0:
        raise ValueError("depth must be 0 or more")
    if not half_life_days > 0:
        raise ValueError("half_life_days must be positive")
    return _Scorer(attestations, now, revoked, half_life_days).score(target, depth)


class _Scorer:
    """Scores level by level, from the first pass up, of only the pubkeys the result needs."""

    def __init__(
        self,
        attestations: Iterable[Attestation],
        now: int,
        revoked: Set[str],
        half_life_days: float,
    ) -> None:
        unique = {a.id: a for a in attestations}
        self._about: dict[str, list[Attestation]] = defaultdict(list)
        for a in sorted(unique.values(), key=lambda a: (a.created_at, a.id)):
            self._about[a.target].append(a)
        self._now = now
        self._revoked = revoked
        self._half_life_days = half_life_days

    def score(self, target: str, depth: int) -> AiWotScore:
        # needed[i]: who is scored at level depth - i, the attesters of needed[i - 1].
        needed = [{target}]
        for _ in range(depth):
            needed.append({a.attester for x in needed[-1] for a in self._about.get(x, ())})
        below: dict[str, AiWotScore] = {}
        for level, pubkeys in enumerate(reversed(needed)):
            below = {x: self._score(x, level, below) for x in pubkeys}
        return below[target]

    def _score(self, target: str, level: int, below: dict[str, AiWotScore]) -> AiWotScore:
        """``below`` holds the level ``level - 1`` scores of every attester of ``target``."""
        found = tuple(self._contribution(a, level, below) for a in self._about.get(target, ()))
        raw = max(0.0, math.fsum(c.weight for c in found if c.counted))
        return AiWotScore(raw, display_score(raw), diversity(found), found)

    def _contribution(
        self, att: Attestation, level: int, below: dict[str, AiWotScore]
    ) -> Contribution:
        if att.attester == att.target:
            return _ignored(att, "self-attestation")
        if att.id in self._revoked:
            return _ignored(att, "revoked")
        if att.label not in TYPE_MULTIPLIERS:
            return _ignored(att, f"unknown attestation type {att.label!r}")
        negative = att.label in NEGATIVE_TYPES
        if negative and not att.content.strip():
            return _ignored(att, "negative attestation without a reason")

        trust, gated_display = 1.0, None
        if level > 0:  # level 0 is the first pass: no attester has a score yet
            attester = below[att.attester]
            trust = effective_trust(attester.raw)
            if negative and attester.display < NEGATIVE_GATE:
                gated_display = attester.display
        factors = (
            ("zap_weight", zap_weight(att.zap_sats)),
            ("attester_trust", trust),
            ("type_multiplier", TYPE_MULTIPLIERS[att.label]),
            ("decay", temporal_decay(att.created_at, self._now, self._half_life_days)),
        )
        if gated_display is not None:
            why = f"attester below the negative gate (display {gated_display:.1f} < {NEGATIVE_GATE:g})"
            return Contribution(att, 0.0, factors, counted=False, why_not=why)
        return Contribution(att, math.prod(value for _, value in factors), factors)


def _ignored(att: Attestation, why_not: str) -> Contribution:
    return Contribution(att, 0.0, (), counted=False, why_not=why_not)
