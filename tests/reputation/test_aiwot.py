"""Tests for reputation/aiwot.py: the ai.wot trust score.

Built from shared/specs/other/ai-wot-PROTOCOL.md: the zap weight examples, the
temporal decay table, the worked "Positive Attestation" and "Negative Attestation
(Dispute)" flows, the negative gate, revocations, the floor, diversity and the
2-hop recursion.
"""

from __future__ import annotations

import itertools
import math
import os
import random
from collections.abc import Set as AbstractSet

import pytest

from nips.nip01 import Signer
from reputation.aiwot import (
    AiWotScore,
    aiwot_score,
    display_score,
    diversity,
    effective_trust,
    temporal_decay,
    zap_weight,
)
from reputation.labels import attestation_tags, parse_attestation, revoked_ids
from reputation.model import Attestation, Contribution

NOW = 1_770_000_000
DAY = 86_400
T = "7" * 64  # the target of most tests
_ids = itertools.count(1)


def key(name: str) -> str:
    """A pubkey named for the test: 'a' -> 'aaa...a'."""
    return (name * 64)[:64]


A, B, C, D, E = (key(c) for c in "abcde")


def att(
    attester: str,
    target: str = T,
    label: str = "service-quality",
    *,
    age_days: float = 0,
    zap_sats: int = 0,
    content: str = "good work",
) -> Attestation:
    return Attestation(
        id=f"{next(_ids):064x}",
        attester=attester,
        target=target,
        label=label,
        created_at=NOW - round(age_days * DAY),
        content=content,
        zap_sats=zap_sats,
    )


def fresh_attesters(
    target: str, count: int, label: str = "identity-continuity"
) -> list[Attestation]:
    """``count`` attestations about ``target`` by keys nobody attests (trust 1.0 each)."""
    return [att(f"{0xF000 + next(_ids):064x}", target, label) for _ in range(count)]


def score(
    target: str,
    attestations: list[Attestation],
    *,
    revoked: AbstractSet[str] = frozenset(),
    half_life_days: float = 90.0,
    depth: int = 2,
) -> AiWotScore:
    return aiwot_score(
        target, attestations, now=NOW, revoked=revoked, half_life_days=half_life_days, depth=depth
    )


def only(s: AiWotScore, attester: str) -> Contribution:
    [found] = [c for c in s.contributions if c.attestation.attester == attester]
    return found


def shown(value: float, printed: float, places: int) -> bool:
    """``value`` prints as ``printed`` to ``places`` decimals, rounding half up as the spec's tables do."""
    return abs(value - printed) <= 0.5 * math.pow(10, -places) + 1e-12


# --- zap weight and decay ------------------------------------------------------


@pytest.mark.parametrize(
    ("sats", "printed"),
    [
        (0, 1.0),
        (100, 4.3),
        (1000, 6.0),
        # The spec's example says 7.7, but its own formula gives 1 + log2(10001)/2 = 7.64.
        (10_000, 7.6),
        (500, 5.5),  # "Example Flow": 1 + log2(501) * 0.5 ≈ 5.5
    ],
)
def test_zap_weight_follows_the_formula_examples(sats: int, printed: float) -> None:
    assert shown(zap_weight(sats), printed, 1)
    assert zap_weight(sats) == 1.0 + math.log2(1 + sats) * 0.5


def test_zap_weight_of_no_or_bogus_sats_is_the_base_weight() -> None:
    assert zap_weight(0) == 1.0
    assert zap_weight(-5) == 1.0


@pytest.mark.parametrize(
    ("age_days", "printed"),
    [(0, 1.000), (45, 0.707), (90, 0.500), (180, 0.250), (360, 0.063)],
)
def test_decay_table(age_days: int, printed: float) -> None:
    assert shown(temporal_decay(NOW - age_days * DAY, NOW), printed, 3)


def test_decay_half_life_is_configurable_and_the_future_does_not_grow() -> None:
    assert temporal_decay(NOW - 30 * DAY, NOW, half_life_days=30) == 0.5
    assert temporal_decay(NOW + 10 * DAY, NOW) == 1.0
    a = att(A, age_days=30)
    assert score(T, [a], half_life_days=30).raw == pytest.approx(1.5 * 0.5)


def test_display_is_raw_times_ten_capped_at_100() -> None:
    assert display_score(0.0) == 0.0
    assert display_score(4.5) == 45.0
    assert display_score(18.5) == 100.0
    assert display_score(-3.0) == 0.0


# --- the sum -------------------------------------------------------------------


def test_no_attestations_scores_zero() -> None:
    s = score(T, [att(A, B)])
    assert (s.raw, s.display, s.diversity, s.contributions) == (0.0, 0.0, 0.0, ())


def test_each_contribution_lists_its_factors() -> None:
    a = att(A, label="work-completed", age_days=90, zap_sats=1000)
    s = score(T, [a])
    [c] = s.contributions
    factors = dict(c.factors)
    assert list(factors) == ["zap_weight", "attester_trust", "type_multiplier", "decay"]
    assert factors["zap_weight"] == zap_weight(1000)
    assert factors["attester_trust"] == 1.0  # A has no score: first-pass trust
    assert factors["type_multiplier"] == 1.2
    assert factors["decay"] == pytest.approx(0.5)
    assert c.counted and c.why_not == ""
    assert c.weight == pytest.approx(zap_weight(1000) * 1.2 * 0.5)
    assert s.raw == pytest.approx(c.weight)
    assert s.display == pytest.approx(c.weight * 10)


@pytest.mark.parametrize(
    ("label", "multiplier"),
    [
        ("service-quality", 1.5),
        ("work-completed", 1.2),
        ("identity-continuity", 1.0),
        ("general-trust", 0.8),
    ],
)
def test_type_multipliers(label: str, multiplier: float) -> None:
    assert score(T, [att(A, label=label)]).raw == pytest.approx(multiplier)


def test_positive_example_from_the_protocol() -> None:
    """'Example Flow — Positive Attestation': A (score 5.0) zaps 500 sats on a service-quality."""
    a_is_trusted = fresh_attesters(A, 5)  # five unknown keys, 1.0 each: A's raw score is 5.0
    rating = att(A, T, "service-quality", zap_sats=500)
    assert score(A, a_is_trusted).raw == pytest.approx(5.0)

    s = score(T, [*a_is_trusted, rating])
    c = only(s, A)
    factors = dict(c.factors)
    assert shown(factors["zap_weight"], 5.5, 1)
    assert shown(factors["attester_trust"], 2.24, 2)  # √5
    assert factors["type_multiplier"] == 1.5
    # The spec multiplies its rounded factors, 5.5 * 2.24 * 1.5 = 18.48; exactly it is 18.39.
    assert c.weight == pytest.approx(zap_weight(500) * math.sqrt(5) * 1.5)
    assert c.weight == pytest.approx(18.5, abs=0.15)
    assert s.display == 100


def test_dispute_example_from_the_protocol() -> None:
    """'Negative Attestation (Dispute)': A has trust score 45, above the gate of 20."""
    a_is_trusted = fresh_attesters(A, 3, "service-quality")  # 3 * 1.5 = 4.5 raw, 45 display
    b_is_liked = fresh_attesters(B, 8)  # 8.0 raw
    dispute = att(A, B, "dispute", content="Paid 500 sats for translation, got random text.")
    assert score(A, a_is_trusted).display == pytest.approx(45)

    s = score(B, [*a_is_trusted, *b_is_liked, dispute])
    c = only(s, A)
    assert c.counted
    assert c.weight == pytest.approx(-1.5 * math.sqrt(4.5))  # -1.5 * attester_trust * 1 * 1
    assert s.raw == pytest.approx(8.0 - 1.5 * math.sqrt(4.5))


def test_warning_counts_at_its_multiplier() -> None:
    a_is_trusted = fresh_attesters(A, 4)  # 4.0 raw, 40 display
    warning = att(A, B, "warning", content="spams job requests")
    s = score(B, [*a_is_trusted, *fresh_attesters(B, 5), warning])
    assert only(s, A).weight == pytest.approx(-0.8 * 2.0)


def test_negative_from_attester_below_the_gate_is_ignored() -> None:
    a_is_barely_known = fresh_attesters(A, 1, "service-quality")  # 1.5 raw, 15 display
    dispute = att(A, B, "dispute", content="scam")
    s = score(B, [*a_is_barely_known, *fresh_attesters(B, 2), dispute])
    c = only(s, A)
    assert not c.counted
    assert c.weight == 0.0
    assert c.why_not.startswith("attester below the negative gate")
    assert "15.0 < 20" in c.why_not
    assert s.raw == pytest.approx(2.0)


def test_negative_from_a_fresh_key_is_ignored_but_its_positive_counts() -> None:
    """The sybil case the gate is for: a disposable key scores 0."""
    s = score(B, [att(A, B, "dispute", content="griefing"), att(C, B, "general-trust")])
    assert not only(s, A).counted
    assert only(s, C).counted
    assert s.raw == pytest.approx(0.8)


def test_negative_at_exactly_the_gate_counts() -> None:
    a_is_trusted = fresh_attesters(A, 2)  # 2.0 raw, 20 display: not below 20
    s = score(B, [*a_is_trusted, *fresh_attesters(B, 3), att(A, B, "warning", content="flaky")])
    assert only(s, A).counted


def test_negative_without_a_reason_is_ignored() -> None:
    a_is_trusted = fresh_attesters(A, 5)
    s = score(B, [*a_is_trusted, att(A, B, "dispute", content="  \n")])
    assert only(s, A).why_not == "negative attestation without a reason"
    assert not only(s, A).counted


def test_first_pass_has_no_gate() -> None:
    """At depth 0 nobody has a score yet, so negatives are not gated."""
    s = score(B, [att(C, B, "general-trust"), att(A, B, "warning", content="flaky")], depth=0)
    assert only(s, A).counted
    assert s.raw == 0.0  # 0.8 - 0.8


def test_score_is_floored_at_zero() -> None:
    a_is_trusted = fresh_attesters(A, 9)  # trust 3
    s = score(B, [*a_is_trusted, att(C, B), att(A, B, "dispute", content="fraud")])
    assert math.fsum(c.weight for c in s.contributions) < 0
    assert s.raw == 0.0
    assert s.display == 0.0


def test_self_attestation_is_ignored() -> None:
    s = score(T, [att(T, T, zap_sats=10_000), att(A)])
    assert only(s, T).why_not == "self-attestation"
    assert not only(s, T).counted
    assert s.raw == pytest.approx(1.5)


def test_revoked_attestation_is_excluded() -> None:
    kept, dropped = att(A), att(B, zap_sats=1000)
    s = score(T, [kept, dropped], revoked={dropped.id})
    assert only(s, B).why_not == "revoked"
    assert not only(s, B).counted
    assert s.raw == pytest.approx(1.5)


def test_revocation_counts_only_from_the_same_author() -> None:
    """End to end through reputation/labels.py with signed events."""
    alice, mallory = Signer(os.urandom(32)), Signer(os.urandom(32))
    event = alice.sign(1985, "fast", attestation_tags(T, "service-quality"), created_at=NOW)
    rating = parse_attestation(event, now=NOW)
    by_mallory = mallory.sign(5, "nope", [["e", event.id], ["k", "1985"]], created_at=NOW)
    assert score(T, [rating], revoked=revoked_ids([by_mallory], {rating.id: rating})).raw == 1.5

    by_alice = alice.sign(5, "resolved", [["e", event.id], ["k", "1985"]], created_at=NOW)
    revoked = revoked_ids([by_mallory, by_alice], {rating.id: rating})
    assert score(T, [rating], revoked=revoked).raw == 0.0


def test_revoked_attestations_about_an_attester_lower_its_trust() -> None:
    vouch = att(B, A, zap_sats=1000)
    attestations = [vouch, att(A)]
    assert only(score(T, attestations), A).weight > 1.5
    assert only(score(T, attestations, revoked={vouch.id}), A).weight == pytest.approx(1.5)


# --- recursion -------------------------------------------------------------------


def test_effective_trust_is_the_square_root_of_the_raw_score() -> None:
    assert effective_trust(5.0) == pytest.approx(2.236, abs=1e-3)
    assert effective_trust(4.0) == 2.0
    assert effective_trust(0.0) == 1.0  # no score: the first-pass trust


def test_an_attesters_own_attesters_raise_its_trust() -> None:
    rating = att(A)
    alone = score(T, [rating])
    vouched = score(T, [rating, att(B, A, zap_sats=500)])
    a_raw = zap_weight(500) * 1.5
    assert dict(only(alone, A).factors)["attester_trust"] == 1.0
    assert dict(only(vouched, A).factors)["attester_trust"] == pytest.approx(math.sqrt(a_raw))
    assert vouched.raw == pytest.approx(1.5 * math.sqrt(a_raw))


def test_recursion_stops_after_two_hops() -> None:
    """D -> C -> B -> A -> T: hop 1 (A) and hop 2 (B) are scored; C counts at 1.0; D not at all."""
    chain = [att(A, T), att(B, A), att(C, B)]
    with_c = score(T, chain)
    without_c = score(T, chain[:2])
    with_d = score(T, [*chain, att(D, C, zap_sats=10_000)])
    assert with_c.raw != without_c.raw  # hop 2's attesters still matter...
    assert with_d.raw == with_c.raw  # ...their attesters do not


def test_depth_one_and_zero() -> None:
    chain = [att(A, T), att(B, A), att(C, B, zap_sats=1000)]
    assert score(T, chain, depth=0).raw == 1.5  # first pass: every attester weighs 1.0
    assert score(T, chain, depth=1).raw == pytest.approx(1.5 * math.sqrt(1.5))
    assert score(T, chain[:2], depth=1).raw == score(T, chain, depth=1).raw


def test_cycles_terminate() -> None:
    ring = [att(A, B), att(B, A), att(A, T), att(B, T)]
    s = score(T, ring, depth=1000)
    assert math.isfinite(s.raw)
    assert only(s, A).weight == pytest.approx(only(s, B).weight)  # the ring is symmetric


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="depth"):
        score(T, [], depth=-1)
    with pytest.raises(ValueError, match="half_life_days"):
        score(T, [], half_life_days=0)


def test_result_does_not_depend_on_input_order() -> None:
    attestations = [
        *fresh_attesters(A, 3, "service-quality"),
        att(A, T, zap_sats=21),
        att(B, T, "general-trust", age_days=40),
        att(C, T, "dispute", content="bad", age_days=3),
        att(A, C),
        att(C, A, "warning", content="meh"),
        att(E, B, zap_sats=5000),
        att(D, D),
    ]
    first = score(T, attestations)
    shuffled = attestations[:]
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert score(T, shuffled) == first
    assert score(T, attestations + attestations) == first  # duplicates count once


# --- diversity -------------------------------------------------------------------


def test_diversity_of_one_attester_is_zero() -> None:
    assert score(T, [att(A)]).diversity == 0.0
    assert score(T, [att(A), att(A, zap_sats=100), att(A, label="general-trust")]).diversity == 0.0


def test_diversity_of_well_spread_attesters_is_near_one() -> None:
    s = score(T, fresh_attesters(T, 50))
    assert s.diversity == pytest.approx(1 - 1 / 50)
    assert s.diversity > 0.95


def test_diversity_follows_the_formula() -> None:
    """unique / count * (1 - largest share): A gives 2 of 3 attestations, 3.0 of 4.5."""
    s = score(T, [att(A), att(A), att(B)])
    assert s.diversity == pytest.approx(2 / 3 * (1 - 3.0 / 4.5))


def test_diversity_ignores_uncounted_and_negative_contributions() -> None:
    a_is_trusted = fresh_attesters(A, 5)
    s = score(T, [*a_is_trusted, att(B), att(C), att(T, T), att(A, T, "warning", content="slow")])
    assert s.diversity == diversity(c for c in s.contributions if c.counted and c.weight > 0)
    assert s.diversity == pytest.approx(1 * (1 - 0.5))
