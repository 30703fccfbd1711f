"""Tests for reputation/scoring.py: Timmy's own score, its Sybil resistance and its explanation."""

from __future__ import annotations

import itertools
import math
import random
import time

import pytest

from reputation.model import Attestation
from reputation.scoring import (
    HALF_LIFE_S,
    NEGATIVE_GATE,
    PAID_FACTOR,
    UNKNOWN_WEIGHT,
    Raters,
    ScoreReport,
    score_agent,
    score_all,
)

NOW = 1_800_000_000
DAY = 86_400
ROOT = "root"
# Trust as graph.py gives it: the root holds the teleport mass; three customers it
# follows closely are as trusted as the root; a friend of a friend much less.
TRUST = {ROOT: 0.2, "alice": 0.2, "bob": 0.2, "carol": 0.2, "dave": 0.02}
ROOTS = [ROOT]
_ids = itertools.count()


def rating(
    attester: str,
    target: str,
    label: str = "service-quality",
    *,
    age_days: float = 0,
    paid_sats: int = 0,
    zap_sats: int = 0,
    job: str = "",
    content: str = "",
) -> Attestation:
    if not content and label in ("warning", "dispute"):
        content = "broken output"
    return Attestation(
        id=f"{next(_ids):064x}",
        attester=attester,
        target=target,
        label=label,
        created_at=NOW - int(age_days * DAY),
        content=content,
        event_ref=job or (f"job-{next(_ids)}" if paid_sats else ""),
        zap_sats=zap_sats,
        paid_msat=paid_sats * 1000,
    )


def score(
    target: str, attestations: list[Attestation], revoked: frozenset[str] = frozenset()
) -> ScoreReport:
    return score_agent(target, attestations, trust=TRUST, roots=ROOTS, now=NOW, revoked=revoked)


def sybil_ring(n: int, target: str) -> list[Attestation]:
    """``n`` fresh keys (no trust, no payments), each rating 5 others of the ring and ``target``."""
    keys = [f"sybil-{i}" for i in range(n)]
    out = [rating(k, keys[(i + j) % n]) for i, k in enumerate(keys) for j in range(1, 6)]
    return out + [rating(k, target) for k in keys]


def only(report: ScoreReport, a: Attestation) -> float:
    (c,) = [c for c in report.contributions if c.attestation is a]
    return c.weight


# --- the attacks ---------------------------------------------------------------------


def test_sybil_ring_of_1000_fresh_keys_keeps_target_below_1_of_100() -> None:
    ring = sybil_ring(1000, "sybil-target")
    reports = score_all(ring, trust=TRUST, roots=ROOTS, now=NOW)
    assert reports["sybil-target"].score < 1.0
    assert reports["sybil-target"].raw == pytest.approx(0.05)  # the unknown pool's cap
    assert max(r.score for r in reports.values()) < 1.0  # nor does the ring lift itself


def test_one_key_spamming_10000_ratings_gains_exactly_what_its_one_best_rating_gives() -> None:
    for spammer in ("alice", "fresh-key"):  # as trusted as a root, and unknown
        spam = [rating(spammer, "target", age_days=i / 100) for i in range(10_000)]
        report = score("target", spam)
        assert report.raw == score("target", spam[:1]).raw  # the newest one alone
        assert report.raw > 0
        assert sum(c.counted for c in report.contributions) == 1
        assert len(report.contributions) == 10_000


def test_3_paid_jobs_from_trusted_customers_outweigh_1000_key_ring_and_10000_spam() -> None:
    attack = sybil_ring(1000, "sybil-target")
    attack += [rating("spammer", "sybil-target", zap_sats=1_000_000) for _ in range(10_000)]
    honest = [rating(c, "honest", paid_sats=2000) for c in ("alice", "bob", "carol")]
    reports = score_all(attack + honest, trust=TRUST, roots=ROOTS, now=NOW)
    assert reports["honest"].raw == pytest.approx(3 * 1.5 * PAID_FACTOR)  # 11.25
    assert reports["honest"].score > 30  # 67.5
    assert reports["honest"].score > 10 * reports["sybil-target"].score  # about 135x


def test_circular_payments_among_1000_own_keys_buy_at_most_1_5_raw() -> None:
    # Each fresh key "pays" the target (its owner) for a job: only fees were spent.
    ring = [rating(f"sybil-{i}", "target", paid_sats=1000) for i in range(1000)]
    report = score("target", ring)
    assert report.raw == pytest.approx(1.5)  # the paid-history pool's cap
    assert report.score < score("target", [rating("alice", "target", paid_sats=1000)]).score


# --- the factors ---------------------------------------------------------------------


def test_paid_rating_weighs_2_5x_an_unpaid_one_from_the_same_rater() -> None:
    unpaid, paid = rating("alice", "t"), rating("alice", "u", paid_sats=21)
    assert score("u", [paid]).raw == pytest.approx(2.5 * score("t", [unpaid]).raw)
    assert score("t", [unpaid]).raw == pytest.approx(1.5)  # service-quality from a root-level key


def test_self_rating_gives_0() -> None:
    report = score("alice", [rating("alice", "alice", paid_sats=5000, zap_sats=100)])
    assert (report.score, report.raw) == (0.0, 0.0)
    assert report.contributions[0].why_not == "self-attestation"


def test_revoked_rating_is_excluded() -> None:
    kept, gone = rating("alice", "t"), rating("bob", "t")
    report = score("t", [kept, gone], revoked=frozenset({gone.id}))
    assert report.raw == pytest.approx(1.5)
    assert only(report, gone) == 0.0
    assert [c.why_not for c in report.contributions if c.attestation is gone] == ["revoked"]


def test_decay_halves_at_90_days_and_quarters_at_180() -> None:
    assert HALF_LIFE_S == 90 * DAY
    fresh = score("t", [rating("alice", "t")]).raw
    assert score("t", [rating("alice", "t", age_days=90)]).raw == pytest.approx(fresh / 2)
    assert score("t", [rating("alice", "t", age_days=180)]).raw == pytest.approx(fresh / 4)


def test_zap_weight_is_ai_wot_s_but_capped_at_3() -> None:
    base = score("t", [rating("alice", "t")]).raw
    assert score("t", [rating("alice", "t", zap_sats=3)]).raw == pytest.approx(base * 2.0)
    assert score("t", [rating("alice", "t", zap_sats=15)]).raw == pytest.approx(base * 3.0)
    assert score("t", [rating("alice", "t", zap_sats=10**9)]).raw == pytest.approx(base * 3.0)


def test_rater_weight_from_trust_relative_to_the_roots() -> None:
    raters = Raters(
        [], trust=TRUST | {"nan": math.nan, "neg": -1.0}, roots=ROOTS, now=NOW, revoked=frozenset()
    )
    assert raters.weigh(ROOT) == (1.0, "trust")
    assert raters.weigh("alice") == (1.0, "trust")
    weight, source = raters.weigh("dave")
    assert weight == pytest.approx(0.1)  # 0.02 / 0.2
    assert source == "trust"
    for key in ("stranger", "nan", "neg"):
        assert raters.weigh(key) == (UNKNOWN_WEIGHT, "unknown")  # 0.01 of a root


def test_paid_history_grows_with_log_sats_across_distinct_targets_and_caps_at_0_5() -> None:
    def weight(history: list[Attestation]) -> float:
        return Raters(history, trust={}, roots=ROOTS, now=NOW, revoked=frozenset()).weigh("eve")[0]

    one = weight([rating("eve", "p1", paid_sats=1000)])
    assert one == pytest.approx(0.1)  # 0.1 * log2(1 + 1000/1000)
    assert weight([rating("eve", "p1", paid_sats=3000)]) == pytest.approx(0.2)  # log2(4)
    assert weight([rating("eve", f"p{i}", paid_sats=1000) for i in range(3)]) == pytest.approx(0.3)
    # The same job rated twice is paid once; paying yourself is no history.
    twice = [
        rating("eve", "p1", paid_sats=1000, job="j1"),
        rating("eve", "p1", "work-completed", paid_sats=1000, job="j1"),
    ]
    assert weight(twice) == pytest.approx(one)
    assert weight([rating("eve", "eve", paid_sats=10**6)]) == UNKNOWN_WEIGHT
    assert weight([rating("eve", f"p{i}", paid_sats=10**6) for i in range(10)]) == 0.5


def test_same_rater_s_distinct_paid_jobs_count_1_then_0_5_then_0_25() -> None:
    jobs = [rating("alice", "t", paid_sats=100, age_days=i) for i in range(3)]
    report = score("t", [*jobs, rating("alice", "t"), rating("alice", "t", age_days=1)])
    one = 1.5 * PAID_FACTOR
    decays = [0.5 ** (i / 90) for i in range(3)]
    unpaid = 1.5 / 8  # the best unpaid one, ranked 4th
    assert report.raw == pytest.approx(one * (decays[0] + decays[1] / 2 + decays[2] / 4) + unpaid)
    assert sum(c.counted for c in report.contributions) == 4


# --- negatives ----------------------------------------------------------------------


def test_warning_from_untrusted_key_is_ignored() -> None:
    report = score("t", [rating("alice", "t"), rating("stranger", "t", "dispute")])
    assert report.raw == pytest.approx(1.5)
    assert report.contributions[-1].why_not == "attester below the negative gate"


def test_dispute_from_a_paying_customer_counts_even_below_the_gate() -> None:
    # 100 sats paid: rater weight 0.1 * log2(1.1) = 0.0138, below the 0.05 gate.
    dispute = rating("stranger", "t", "dispute", paid_sats=100)
    report = score("t", [rating("alice", "t"), dispute])
    rater = 0.1 * math.log2(1.1)
    assert rater < NEGATIVE_GATE
    assert only(report, dispute) == pytest.approx(-1.5 * rater * PAID_FACTOR)
    assert report.raw == pytest.approx(1.5 - 1.5 * rater * PAID_FACTOR)
    # The same customer's unpaid warning about another target does not pass.
    warning = rating("stranger", "u", "warning")
    assert (
        score("u", [dispute, warning]).contributions[0].why_not
        == "attester below the negative gate"
    )


def test_warning_from_trusted_key_counts_and_score_floors_at_0() -> None:
    report = score("t", [rating("alice", "t", "warning"), rating("dave", "t", "general-trust")])
    assert report.raw == pytest.approx(-0.8 + 0.8 * 0.1)
    assert report.score == 0.0


def test_negative_without_a_reason_is_ignored() -> None:
    report = score("t", [rating("alice", "t", "dispute", content=" ")])
    assert report.raw == 0.0
    assert report.contributions[0].why_not == "negative without a reason"


# --- the explanation and the rest ------------------------------------------------------


def mixed(n: int, seed: int = 1) -> list[Attestation]:
    rng = random.Random(seed)
    labels = [
        "service-quality",
        "work-completed",
        "general-trust",
        "identity-continuity",
        "warning",
        "dispute",
        "bogus",
    ]
    raters = [*TRUST, "eve", "stranger", "t"] + [f"k{i}" for i in range(n // 4)]
    return [
        rating(
            rng.choice(raters),
            "t",
            rng.choice(labels),
            age_days=rng.uniform(-0.001, 400),
            paid_sats=rng.choice([0, 0, 50, 5000]),
            zap_sats=rng.choice([0, 0, 21, 10_000]),
            job=rng.choice(["", "job-a", "job-b"]),
        )
        for _ in range(n)
    ]


def test_explanation_lists_every_attestation_with_factors_and_sums_to_raw() -> None:
    about = mixed(2000)
    revoked = frozenset(a.id for a in about[:50])
    report = score("t", [*about, rating("alice", "other", paid_sats=10)], revoked=revoked)
    assert sorted(c.attestation.id for c in report.contributions) == sorted(a.id for a in about)
    assert math.fsum(c.weight for c in report.contributions) == report.raw
    sizes = [abs(c.weight) for c in report.contributions]
    assert sizes == sorted(sizes, reverse=True)
    reasons = {c.why_not for c in report.contributions if not c.counted}
    assert reasons >= {
        "self-attestation",
        "revoked",
        "unknown label",
        "attester below the negative gate",
        "repeat unpaid rating by the same attester",
    }
    for c in report.contributions:
        names = [name for name, _ in c.factors]
        if c.counted:
            assert c.weight == pytest.approx(math.prod(v for _, v in c.factors))
            assert names[:6] == ["type", names[1], "paid", "decay", "zap", "repeat"]
            assert names[1] in ("rater:trust", "rater:paid-history", "rater:unknown")
        else:
            assert c.weight == 0.0 and c.why_not


def test_result_does_not_depend_on_the_order_of_attestations() -> None:
    about = mixed(500, seed=2)
    shuffled = about[::-1]
    random.Random(3).shuffle(shuffled)
    a, b = score("t", about), score("t", shuffled)
    assert (a.score, a.raw) == (b.score, b.raw)
    assert a.contributions == b.contributions


def test_future_dated_and_unknown_labels_count_for_nothing() -> None:
    future = rating("alice", "t", age_days=-1)
    report = score("t", [future, rating("alice", "t", "spam-label")])
    assert report.raw == 0.0
    assert {c.why_not for c in report.contributions} == {"dated in the future", "unknown label"}


def test_score_all_groups_by_target_and_saturates_below_100() -> None:
    many = [rating(c, "busy", paid_sats=100) for c in ("alice", "bob", "carol", ROOT)]
    reports = score_all([*many, rating("bob", "quiet")], trust=TRUST, roots=ROOTS, now=NOW)
    assert set(reports) == {"busy", "quiet"}
    assert reports["quiet"].score == pytest.approx(100 * (1 - math.exp(-0.15)))  # 13.9
    assert 75 < reports["busy"].score < 100
    assert score("nobody", []).score == 0.0


def test_10000_attestations_score_well_under_half_a_second() -> None:
    about = mixed(10_000, seed=4)
    start = time.perf_counter()
    report = score("t", about)
    assert len(report.contributions) == 10_000
    assert time.perf_counter() - start < 0.5
