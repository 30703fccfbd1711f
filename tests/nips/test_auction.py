"""Tests for nips/auction.py: sealed-bid second-price auctions over NIP-90 (docs/protocol/auction.md)."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nips.auction import (
    AWARD_KIND,
    COMMIT_KIND,
    REVEAL_KIND,
    AuctionError,
    AuctionTerms,
    Award,
    Bid,
    auction_terms,
    audit,
    award_tags,
    commit_tags,
    commitment_hash,
    decide,
    parse_award,
    reveal_tags,
)
from nips.nip01 import Event, EventId, Signer
from nips.nip90 import parse_request

NOW = 1_700_000_000
COMMIT_UNTIL = NOW + 60
REVEAL_UNTIL = NOW + 120
JOB_KIND = 5050

CUSTOMER = Signer(os.urandom(32))
ALICE = Signer(os.urandom(32))
BOB = Signer(os.urandom(32))
CAROL = Signer(os.urandom(32))
MALLORY = Signer(os.urandom(32))
POOL = [Signer(os.urandom(32)) for _ in range(6)]


def params(**values: str) -> list[list[str]]:
    return [["param", name, value] for name, value in values.items()]


def request_event(
    *,
    reserve: int | None = None,
    min_reputation: str | None = None,
    tags: list[list[str]] | None = None,
) -> Event:
    """A signed job request; an auction on the module's deadlines unless ``tags`` are given."""
    if tags is None:
        tags = params(
            auction="vickrey", commit_until=str(COMMIT_UNTIL), reveal_until=str(REVEAL_UNTIL)
        )
        if min_reputation is not None:
            tags.extend(params(min_reputation=min_reputation))
    if reserve is not None:
        tags = [*tags, ["bid", str(reserve)]]
    return CUSTOMER.sign(JOB_KIND, "", [["i", "translate me", "text"], *tags], created_at=NOW)


def terms_for(request: Event) -> AuctionTerms:
    terms = auction_terms(parse_request(request))
    assert terms is not None
    return terms


def auction(*, reserve: int | None = None, min_reputation: str | None = None) -> AuctionTerms:
    return terms_for(request_event(reserve=reserve, min_reputation=min_reputation))


def nonce() -> str:
    return os.urandom(32).hex()


def commit(
    terms: AuctionTerms, bidder: Signer, amount: int, secret: str, *, at: int = NOW + 10
) -> Event:
    return bidder.sign(
        COMMIT_KIND, "", commit_tags(terms, bidder.pubkey, amount, secret), created_at=at
    )


def reveal(
    terms: AuctionTerms,
    bidder: Signer,
    commitment: Event,
    amount: int,
    secret: str,
    *,
    at: int = COMMIT_UNTIL + 10,
) -> Event:
    tags = reveal_tags(terms, commitment.id, amount, secret)
    return bidder.sign(REVEAL_KIND, "", tags, created_at=at)


def sealed_bid(
    terms: AuctionTerms,
    bidder: Signer,
    amount: int,
    *,
    commit_at: int = NOW + 10,
    reveal_at: int = COMMIT_UNTIL + 10,
) -> tuple[Event, Event]:
    secret = nonce()
    commitment = commit(terms, bidder, amount, secret, at=commit_at)
    return commitment, reveal(terms, bidder, commitment, amount, secret, at=reveal_at)


def bids(terms: AuctionTerms, *offers: tuple[Signer, int]) -> list[Event]:
    return [event for bidder, amount in offers for event in sealed_bid(terms, bidder, amount)]


def reasons(award: Award) -> dict[str, str]:
    return dict(award.rejected)


def tampered(event: Event, **changes: object) -> Event:
    """``event`` with fields changed but its id and signature kept: what a forger can do."""
    return dataclasses.replace(event, **changes)  # type: ignore[arg-type]


def publish_award(
    terms: AuctionTerms,
    award: Award,
    *,
    signer: Signer = CUSTOMER,
    at: int = REVEAL_UNTIL + 5,
) -> Event:
    return signer.sign(AWARD_KIND, "", award_tags(terms, award), created_at=at)


# --- terms -----------------------------------------------------------------------------


def test_terms_of_an_auction_request() -> None:
    request = request_event(reserve=50_000)
    terms = terms_for(request)
    assert terms == AuctionTerms(
        request_id=request.id,
        kind=JOB_KIND,
        customer=CUSTOMER.pubkey,
        commit_until=COMMIT_UNTIL,
        reveal_until=REVEAL_UNTIL,
        reserve_msat=50_000,
        min_reputation=None,
    )


def test_terms_read_min_reputation() -> None:
    assert auction(min_reputation="42.5").min_reputation == 42.5
    assert auction(min_reputation="100").min_reputation == 100.0


def test_a_request_without_the_auction_param_is_no_auction() -> None:
    assert auction_terms(parse_request(request_event(tags=[]))) is None


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"auction": "english"}, "not supported"),
        ({"auction": "vickrey", "reveal_until": "9"}, "missing param commit_until"),
        ({"auction": "vickrey", "commit_until": "9"}, "missing param reveal_until"),
        ({"commit_until": "20", "reveal_until": "20"}, "must be earlier than reveal_until"),
        ({"commit_until": "30", "reveal_until": "20"}, "must be earlier than reveal_until"),
        ({"commit_until": "soon", "reveal_until": "20"}, "commit_until 'soon' is not a unix time"),
        ({"commit_until": "1", "reveal_until": "2.5"}, "reveal_until '2.5' is not a unix time"),
        ({"commit_until": "-1", "reveal_until": "2"}, "not a unix time"),
        ({"commit_until": "\u00b2", "reveal_until": "9"}, "not a unix time"),
        ({"commit_until": "", "reveal_until": "9"}, "not a unix time"),
    ],
)
def test_malformed_terms_are_refused_with_a_reason(values: dict[str, str], reason: str) -> None:
    request = request_event(tags=params(**{"auction": "vickrey", **values}))
    with pytest.raises(AuctionError, match=reason):
        auction_terms(parse_request(request))


def test_an_auction_request_cannot_be_encrypted() -> None:
    secret = params(auction="vickrey", commit_until="1", reveal_until="9")
    event = CUSTOMER.sign(
        JOB_KIND, "(ciphertext)", [["p", ALICE.pubkey], ["encrypted"]], created_at=NOW
    )
    with pytest.raises(AuctionError, match="cannot be encrypted"):
        auction_terms(parse_request(event, private_tags=secret))


def test_auction_params_must_not_repeat() -> None:
    repeated = [
        *params(auction="vickrey", commit_until="1", reveal_until="9"),
        *params(commit_until="2"),
    ]
    with pytest.raises(AuctionError, match="commit_until is given 2 times"):
        auction_terms(parse_request(request_event(tags=repeated)))


@pytest.mark.parametrize("value", ["101", "-1", "nan", "1e2", " 5", "50%"])
def test_min_reputation_must_be_from_0_to_100(value: str) -> None:
    with pytest.raises(AuctionError, match="min_reputation"):
        auction(min_reputation=value)


# --- commitments and reveals --------------------------------------------------------------


def test_commitment_hash_regression_vector() -> None:
    request_id = "5c83da77af1dec6d7289834998ad7aafbd9e2191396d75ec3cc27f5a77226f36"
    bidder = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    secret = "0f" * 32
    independent = hashlib.sha256(
        f"{request_id}:{bidder}:21000:{secret}".encode("ascii")
    ).hexdigest()
    assert commitment_hash(request_id, bidder, 21000, secret) == independent
    assert independent == "8de5c70e672154db1aa9e310e3ee22c9559d74509241dd758c4bdf751971ba7c"


def test_commit_and_reveal_tags() -> None:
    terms = auction()
    secret = "ab" * 32
    tags = commit_tags(terms, ALICE.pubkey, 1500, secret)
    assert tags == [
        ["e", terms.request_id],
        ["p", CUSTOMER.pubkey],
        ["k", str(JOB_KIND)],
        ["commitment", commitment_hash(terms.request_id, ALICE.pubkey, 1500, secret)],
    ]
    assert reveal_tags(terms, "c" * 64, 1500, secret) == [
        ["e", terms.request_id],
        ["e", "c" * 64, "", "commitment"],
        ["p", CUSTOMER.pubkey],
        ["k", str(JOB_KIND)],
        ["amount", "1500"],
        ["nonce", secret],
    ]


@pytest.mark.parametrize(("amount", "secret"), [(-1, "ab" * 32), (10, "ab" * 8), (10, "AB" * 32)])
def test_bid_values_are_checked_when_building_tags(amount: int, secret: str) -> None:
    with pytest.raises(AuctionError):
        commit_tags(auction(), ALICE.pubkey, amount, secret)
    with pytest.raises(AuctionError):
        reveal_tags(auction(), "c" * 64, amount, secret)


# --- award: the second-price rule ------------------------------------------------------------


def test_lowest_bid_wins_at_the_second_lowest_price() -> None:
    terms = auction(reserve=10_000)
    events = bids(terms, (ALICE, 5000), (BOB, 3000), (CAROL, 4000))
    award = decide(terms, reversed(events))
    assert award.winner is not None
    assert (award.winner.bidder, award.winner.amount_msat) == (BOB.pubkey, 3000)
    assert award.winner.commit_id == events[2].id
    assert award.price_msat == 4000
    assert award.counted == tuple(sorted(e.id for e in events if e.kind == COMMIT_KIND))
    assert award.rejected == ()


def test_award_tags_round_trip_through_parse_award() -> None:
    terms = auction()
    events = bids(terms, (ALICE, 5000), (BOB, 3000))
    award = decide(terms, events)
    published = parse_award(publish_award(terms, award))
    assert published.request_id == terms.request_id
    assert published.kind == JOB_KIND
    assert published.counted == award.counted
    assert (published.winner, published.winner_commit, published.price_msat) == (
        BOB.pubkey,
        events[2].id,
        5000,
    )


def test_an_award_without_a_valid_bid_names_no_winner() -> None:
    terms = auction()
    commitment, _ = sealed_bid(terms, ALICE, 100)
    award = decide(terms, [commitment])
    assert (award.winner, award.price_msat) == (None, None)
    assert reasons(award) == {commitment.id: "no reveal"}
    tags = award_tags(terms, award)
    assert tags == [["e", terms.request_id], ["k", str(JOB_KIND)], ["commitment", commitment.id]]
    published = parse_award(publish_award(terms, award))
    assert (published.winner, published.winner_commit, published.price_msat) == (None, None, None)


def test_single_bid_pays_the_reserve() -> None:
    terms = auction(reserve=8000)
    award = decide(terms, bids(terms, (ALICE, 2000)))
    assert award.winner is not None and award.winner.bidder == ALICE.pubkey
    assert award.price_msat == 8000


def test_single_bid_without_reserve_pays_its_own_bid() -> None:
    terms = auction()
    award = decide(terms, bids(terms, (ALICE, 2000)))
    assert award.winner is not None and award.winner.bidder == ALICE.pubkey
    assert award.price_msat == 2000


def test_bids_above_the_reserve_are_excluded() -> None:
    terms = auction(reserve=5000)
    events = bids(terms, (ALICE, 9000), (BOB, 4000), (CAROL, 5000))
    award = decide(terms, events)
    assert award.winner is not None and award.winner.bidder == BOB.pubkey
    assert award.price_msat == 5000  # a bid equal to the reserve is valid
    assert reasons(award) == {events[0].id: "above reserve"}
    assert events[0].id in award.counted


def test_a_tie_goes_to_the_higher_reputation() -> None:
    terms = auction()
    scores = {ALICE.pubkey: 40.0, BOB.pubkey: 90.0, CAROL.pubkey: 70.0}
    award = decide(
        terms, bids(terms, (ALICE, 3000), (BOB, 3000), (CAROL, 3000)), reputation=scores.__getitem__
    )
    assert award.winner is not None and award.winner.bidder == BOB.pubkey
    assert award.price_msat == 3000


def test_a_tie_between_equal_reputations_goes_to_the_lower_commitment_id() -> None:
    terms = auction()
    events = bids(terms, (ALICE, 3000), (BOB, 3000), (CAROL, 3000))
    lowest = min(e.id for e in events if e.kind == COMMIT_KIND)
    assert (award := decide(terms, events)).winner is not None
    assert award.winner.commit_id == lowest
    same = decide(terms, events, reputation=lambda _: 50.0)
    assert same.winner == award.winner


def test_min_reputation_excludes_bidders_below_it() -> None:
    terms = auction(min_reputation="60")
    events = bids(terms, (ALICE, 1000), (BOB, 2000), (CAROL, 3000))
    scores = {ALICE.pubkey: 59.9, BOB.pubkey: 60.0, CAROL.pubkey: 99.0}
    award = decide(terms, events, reputation=scores.__getitem__)
    assert award.winner is not None and award.winner.bidder == BOB.pubkey
    assert award.price_msat == 3000
    assert reasons(award) == {events[0].id: "reputation below minimum"}


def test_min_reputation_is_not_applied_without_reputation_data() -> None:
    terms = auction(min_reputation="60")
    award = decide(terms, bids(terms, (ALICE, 1000), (BOB, 2000)))
    assert award.winner is not None and award.winner.bidder == ALICE.pubkey


# --- award: events that do not count ---------------------------------------------------


def test_a_reveal_that_does_not_match_its_commitment_is_rejected() -> None:
    terms = auction()
    secret = nonce()
    commitment = commit(terms, ALICE, 1000, secret)
    cheaper = reveal(terms, ALICE, commitment, 900, secret)
    other_nonce = reveal(terms, ALICE, commitment, 1000, nonce(), at=COMMIT_UNTIL + 11)
    award = decide(terms, [commitment, cheaper, other_nonce, *bids(terms, (BOB, 2000))])
    assert award.winner is not None and award.winner.bidder == BOB.pubkey
    assert reasons(award) == {
        cheaper.id: "reveal does not match commitment",
        other_nonce.id: "reveal does not match commitment",
        commitment.id: "no reveal",
    }


def test_a_bid_revealed_twice_counts_once() -> None:
    terms = auction()
    secret = nonce()
    commitment = commit(terms, ALICE, 1000, secret)
    first = reveal(terms, ALICE, commitment, 1000, secret)
    again = reveal(terms, ALICE, commitment, 1000, secret, at=COMMIT_UNTIL + 30)
    award = decide(terms, [again, commitment, first, *bids(terms, (BOB, 2000))])
    assert award.winner == Bid(ALICE.pubkey, 1000, commitment.id)
    assert award.price_msat == 2000
    assert reasons(award) == {again.id: "duplicate reveal"}


def test_a_reveal_signed_by_another_key_is_rejected() -> None:
    terms = auction()
    secret = nonce()
    commitment = commit(terms, ALICE, 1000, secret)
    stolen = reveal(terms, MALLORY, commitment, 1000, secret)
    award = decide(terms, [commitment, stolen])
    assert award.winner is None
    assert reasons(award)[stolen.id] == "reveal signed by another key than its commitment"


def test_a_commitment_copied_by_another_bidder_cannot_be_revealed() -> None:
    terms = auction()
    secret = nonce()
    original = commit(terms, ALICE, 1000, secret)
    copy = MALLORY.sign(COMMIT_KIND, "", original.tags, created_at=NOW + 11)
    alice_reveal = reveal(terms, ALICE, original, 1000, secret)
    # Mallory replays Alice's opening once it is public.
    mallory_reveal = reveal(terms, MALLORY, copy, 1000, secret, at=COMMIT_UNTIL + 20)
    award = decide(terms, [original, copy, alice_reveal, mallory_reveal])
    assert award.winner is not None and award.winner.bidder == ALICE.pubkey
    assert reasons(award) == {
        mallory_reveal.id: "reveal does not match commitment",
        copy.id: "no reveal",
    }


def test_a_commitment_created_after_commit_until_is_late() -> None:
    terms = auction()
    late, late_reveal = sealed_bid(terms, ALICE, 100, commit_at=COMMIT_UNTIL + 1)
    on_time = bids(terms, (BOB, 900))
    award = decide(terms, [late, late_reveal, *on_time])
    assert award.winner is not None and award.winner.bidder == BOB.pubkey
    assert late.id not in award.counted
    assert reasons(award) == {
        late.id: "late commitment",
        late_reveal.id: "reveal of a commitment that does not count",
    }


def test_a_commitment_received_after_commit_until_is_late_whatever_its_created_at() -> None:
    terms = auction()
    backdated, backdated_reveal = sealed_bid(terms, ALICE, 100, commit_at=COMMIT_UNTIL)
    on_time = bids(terms, (BOB, 900))
    received: dict[str, int] = {backdated.id: COMMIT_UNTIL + 30, on_time[0].id: COMMIT_UNTIL}
    award = decide(terms, [backdated, backdated_reveal, *on_time], received_at=received)
    assert award.winner is not None and award.winner.bidder == BOB.pubkey
    assert reasons(award)[backdated.id] == "late commitment"
    assert decide(terms, [backdated, backdated_reveal, *on_time]).winner.bidder == ALICE.pubkey  # type: ignore[union-attr]


def test_reveals_count_only_between_commit_until_and_reveal_until() -> None:
    terms = auction()
    early = sealed_bid(terms, ALICE, 100, reveal_at=COMMIT_UNTIL)
    late = sealed_bid(terms, BOB, 200, reveal_at=REVEAL_UNTIL + 1)
    received_late = sealed_bid(terms, CAROL, 300, reveal_at=REVEAL_UNTIL)
    last_second = sealed_bid(terms, MALLORY, 400, reveal_at=REVEAL_UNTIL)
    events = [*early, *late, *received_late, *last_second]
    award = decide(terms, events, received_at={received_late[1].id: REVEAL_UNTIL + 1})
    assert award.winner is not None and award.winner.bidder == MALLORY.pubkey
    assert award.price_msat == 400
    got = reasons(award)
    assert got[early[1].id] == "early reveal"
    assert got[late[1].id] == "late reveal"
    assert got[received_late[1].id] == "late reveal"


def test_only_a_bidders_earliest_commitment_counts() -> None:
    terms = auction()
    first, first_reveal = sealed_bid(terms, ALICE, 5000, commit_at=NOW + 5)
    second, second_reveal = sealed_bid(terms, ALICE, 100, commit_at=NOW + 6)
    award = decide(terms, [second, second_reveal, first, first_reveal, *bids(terms, (BOB, 3000))])
    assert award.winner is not None and award.winner.bidder == BOB.pubkey
    assert award.price_msat == 5000
    assert first.id in award.counted and second.id not in award.counted
    assert reasons(award) == {
        second.id: "second commitment by same bidder",
        second_reveal.id: "reveal of a commitment that does not count",
    }


def test_events_with_a_bad_signature_do_not_count() -> None:
    terms = auction()
    commitment, opening = sealed_bid(terms, ALICE, 1000)
    flipped = "00" if commitment.sig[-2:] != "00" else "11"
    bad_sig = tampered(commitment, sig=commitment.sig[:-2] + flipped)
    # Changing a tag but keeping the id and signature: only recomputing the id catches it.
    forged_amount = tampered(
        opening, tags=[["amount", "1"] if tag[0] == "amount" else tag for tag in opening.tags]
    )
    award = decide(terms, [bad_sig, forged_amount, *bids(terms, (BOB, 2000))])
    assert award.winner is not None and award.winner.bidder == BOB.pubkey
    assert reasons(award) == {commitment.id: "bad signature", opening.id: "bad signature"}
    award = decide(terms, [commitment, forged_amount])
    assert award.winner is None
    assert reasons(award) == {opening.id: "bad signature", commitment.id: "no reveal"}


def test_a_forgery_with_a_real_events_id_does_not_hide_it() -> None:
    terms = auction()
    commitment, opening = sealed_bid(terms, ALICE, 1000)
    decoy = tampered(opening, created_at=NOW, tags=[["amount", "1"]])
    award = decide(terms, [opening, decoy, commitment])
    assert award.winner == Bid(ALICE.pubkey, 1000, commitment.id)


def test_junk_is_set_aside_with_reasons() -> None:
    terms = auction()
    other_terms = dataclasses.replace(terms, request_id=EventId("f" * 64))
    commitment, opening = sealed_bid(terms, ALICE, 1000)
    note = ALICE.sign(1, "hello", [["e", terms.request_id]], created_at=NOW)
    elsewhere, _ = sealed_bid(other_terms, BOB, 10)
    no_p = BOB.sign(
        COMMIT_KIND,
        "",
        [t for t in commit_tags(terms, BOB.pubkey, 5, nonce()) if t[0] != "p"],
        created_at=NOW,
    )
    two_digests = CAROL.sign(
        COMMIT_KIND,
        "",
        [*commit_tags(terms, CAROL.pubkey, 5, nonce()), ["commitment", "a" * 64]],
        created_at=NOW,
    )
    bad_amount = ALICE.sign(
        REVEAL_KIND,
        "",
        [["amount", "01000"] if t[0] == "amount" else t for t in opening.tags],
        created_at=COMMIT_UNTIL + 1,
    )
    no_marker = ALICE.sign(
        REVEAL_KIND,
        "",
        [t[:2] if t[0] == "e" else t for t in opening.tags],
        created_at=COMMIT_UNTIL + 2,
    )
    events = [
        note,
        elsewhere,
        no_p,
        two_digests,
        bad_amount,
        no_marker,
        commitment,
        opening,
        opening,
    ]
    award = decide(terms, events)
    assert award.winner == Bid(ALICE.pubkey, 1000, commitment.id)
    got = reasons(award)
    assert got == {
        note.id: "not a commitment or reveal",
        elsewhere.id: "not for this auction",
        no_p.id: "malformed commitment: no p tag for the customer",
        two_digests.id: "malformed commitment: needs one commitment tag with a sha256 hex digest",
        bad_amount.id: "malformed reveal: needs one amount tag in millisats",
        no_marker.id: "malformed reveal: needs one e tag marked commitment",
    }


def test_parse_award_refuses_malformed_awards() -> None:
    terms = auction()
    award = decide(terms, bids(terms, (ALICE, 100), (BOB, 200)))
    assert award.winner is not None
    good = award_tags(terms, award)
    winning = ["commitment", award.winner.commit_id]

    def sign(tags: list[list[str]], kind: int = AWARD_KIND) -> Event:
        return CUSTOMER.sign(kind, "", tags, created_at=REVEAL_UNTIL + 1)

    broken = {
        "not an award": sign(good, kind=7000),
        "one e tag": sign([t for t in good if t[0] != "e"]),
        "one k tag": sign([["k", "x"] if t[0] == "k" else t for t in good]),
        "distinct": sign([*good, good[2]]),
        "no price or p": sign([t for t in good if t[0] != "winner"]),
        "winning commitment is not among": sign([t for t in good if t != winning]),
        "one p tag": sign([t for t in good if t[0] != "p"]),
        "one price tag": sign([t for t in good if t[0] != "price"]),
    }
    for reason, event in broken.items():
        with pytest.raises(AuctionError, match=reason):
            parse_award(event)


# --- audit -------------------------------------------------------------------------------


def auction_log(reserve: int | None = None) -> tuple[Event, AuctionTerms, list[Event]]:
    request = request_event(reserve=reserve)
    terms = terms_for(request)
    return request, terms, bids(terms, (ALICE, 5000), (BOB, 3000), (CAROL, 4000))


def test_audit_accepts_a_correct_award() -> None:
    request, terms, events = auction_log()
    award = publish_award(terms, decide(terms, events))
    feedback = BOB.sign(7000, "", [["status", "processing"], ["e", request.id]], created_at=NOW)
    verdict = audit(request, [feedback, award, *events])
    assert verdict.valid, verdict.problems
    assert (verdict.winner, verdict.price_msat) == (BOB.pubkey, 4000)
    assert verdict.to_json_dict() == {
        "valid": True,
        "winner": BOB.pubkey,
        "price_msat": 4000,
        "problems": [],
        "notes": [],
    }


def test_audit_finds_a_wrong_winner() -> None:
    request, terms, events = auction_log()
    honest = decide(terms, events)
    alice = Bid(ALICE.pubkey, 5000, events[0].id)
    verdict = audit(
        request, [publish_award(terms, dataclasses.replace(honest, winner=alice)), *events]
    )
    assert not verdict.valid
    assert len(verdict.problems) == 1 and verdict.problems[0].startswith("wrong winner")
    assert (verdict.winner, verdict.price_msat) == (BOB.pubkey, 4000)


def test_audit_finds_a_wrong_price() -> None:
    request, terms, events = auction_log()
    inflated = dataclasses.replace(decide(terms, events), price_msat=5000)
    verdict = audit(request, [publish_award(terms, inflated), *events])
    assert verdict.problems == ("wrong price: award says 5000, the rules give 4000",)
    assert verdict.price_msat == 4000


def test_audit_finds_a_left_out_commitment() -> None:
    request, terms, events = auction_log()
    without_bob = [e for e in events if e.pubkey != BOB.pubkey]
    award = publish_award(terms, decide(terms, without_bob))
    verdict = audit(request, [award, *events])
    assert f"uncounted commitment {events[2].id}" in verdict.problems
    assert not verdict.valid
    # Leaving out a commitment that was never revealed changes nothing.
    unrevealed = [e for e in events if e.id != events[3].id]
    award = publish_award(terms, decide(terms, without_bob))
    assert audit(request, [award, *unrevealed]).valid


def test_audit_flags_a_counted_commitment_that_came_late() -> None:
    request, terms, events = auction_log()
    late = sealed_bid(terms, MALLORY, 100, commit_at=COMMIT_UNTIL + 5)
    honest = decide(terms, events)
    favoured = Award(
        counted=(*honest.counted, late[0].id),
        winner=Bid(MALLORY.pubkey, 100, late[0].id),
        price_msat=3000,
    )
    verdict = audit(request, [publish_award(terms, favoured), *events, *late])
    assert f"counted commitment {late[0].id}: late commitment" in verdict.problems
    assert any(p.startswith("wrong winner") for p in verdict.problems)
    assert (verdict.winner, verdict.price_msat) == (BOB.pubkey, 4000)


def test_audit_flags_a_counted_commitment_missing_from_the_log() -> None:
    request, terms, events = auction_log()
    honest = decide(terms, events)
    padded = dataclasses.replace(honest, counted=(*honest.counted, EventId("d" * 64)))
    verdict = audit(request, [publish_award(terms, padded), *events])
    assert verdict.problems == (f"counted commitment {'d' * 64} is not in the log",)


def test_audit_flags_two_counted_commitments_by_one_bidder() -> None:
    request, terms, events = auction_log()
    again = sealed_bid(terms, ALICE, 100, commit_at=NOW + 20)
    honest = decide(terms, [*events, *again])
    assert again[0].id not in honest.counted
    padded = dataclasses.replace(honest, counted=tuple(sorted((*honest.counted, again[0].id))))
    verdict = audit(request, [publish_award(terms, padded), *events, *again])
    assert verdict.problems == (f"counted commitment {again[0].id} is a second one by its bidder",)
    # Counting the later commitment instead of the first is picking the convenient one.
    swapped = decide(terms, [*events[2:], *again])
    verdict = audit(request, [publish_award(terms, swapped), *events, *again])
    assert f"uncounted commitment {events[0].id}" in verdict.problems


def test_audit_flags_an_award_not_signed_by_the_customer_but_checks_it() -> None:
    request, terms, events = auction_log()
    award = publish_award(terms, decide(terms, events), signer=MALLORY)
    verdict = audit(request, [award, *events])
    assert verdict.problems == ("award not signed by the customer",)
    assert (verdict.winner, verdict.price_msat) == (BOB.pubkey, 4000)


def test_audit_without_an_award() -> None:
    request, _, events = auction_log()
    verdict = audit(request, events)
    assert verdict.problems == ("no award",)
    assert (verdict.winner, verdict.price_msat) == (BOB.pubkey, 4000)


def test_audit_prefers_the_customers_award_and_counts_awards() -> None:
    request, terms, events = auction_log()
    honest = decide(terms, events)
    rival = publish_award(terms, dataclasses.replace(honest, price_msat=1), signer=MALLORY)
    verdict = audit(request, [rival, publish_award(terms, honest), *events])
    assert verdict.valid
    twice = [publish_award(terms, honest), publish_award(terms, honest, at=REVEAL_UNTIL + 9)]
    assert audit(request, [*twice, *events]).problems == ("2 awards; there must be one",)


def test_audit_flags_an_award_made_before_reveals_closed() -> None:
    request, terms, events = auction_log()
    early = publish_award(terms, decide(terms, events), at=REVEAL_UNTIL)
    assert audit(request, [early, *events]).problems == (
        "award published before reveal_until had passed",
    )


def test_audit_notes_forged_events_without_blaming_the_award() -> None:
    request, terms, events = auction_log()
    award = publish_award(terms, decide(terms, events))
    forged = tampered(
        events[1], tags=[["amount", "1"] if t[0] == "amount" else t for t in events[1].tags]
    )
    forged = tampered(forged, id="9" * 64)
    verdict = audit(request, [award, forged, *events])
    assert verdict.valid
    assert verdict.notes == (f"ignored {forged.id}: bad signature",)


def test_audit_flags_a_malformed_award_and_a_non_auction_request() -> None:
    request, _, events = auction_log()
    junk = CUSTOMER.sign(AWARD_KIND, "", [["e", request.id]], created_at=REVEAL_UNTIL + 5)
    verdict = audit(request, [junk, *events])
    assert verdict.problems[0].startswith(f"malformed award {junk.id}")
    plain = request_event(tags=[])
    assert audit(plain, []).problems == ("the request does not open an auction",)


def test_audit_with_reputation_checks_the_reputation_rules() -> None:
    request = request_event(min_reputation="50")
    terms = terms_for(request)
    events = bids(terms, (ALICE, 1000), (BOB, 2000), (CAROL, 3000))
    scores = {ALICE.pubkey: 10.0, BOB.pubkey: 80.0, CAROL.pubkey: 80.0}
    award = publish_award(terms, decide(terms, events, reputation=scores.__getitem__))
    assert audit(request, [award, *events], reputation=scores.__getitem__).valid
    # Without scores the auditor cannot know Alice was below the minimum, so it
    # accepts the award as one some scores explain, and says so.
    blind = audit(request, [award, *events])
    assert blind.valid and blind.winner == BOB.pubkey and blind.price_msat == 3000
    assert blind.notes == ("reputation decides part of the outcome and was not checked",)
    # No scores make Bob win at 2500: no one bid that.
    wrong = dataclasses.replace(
        decide(terms, events, reputation=scores.__getitem__), price_msat=2500
    )
    assert not audit(request, [publish_award(terms, wrong), *events]).valid


# --- properties ---------------------------------------------------------------------------

amounts = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=60, deadline=None)
@given(
    offers=st.lists(amounts, min_size=1, max_size=len(POOL)),
    reserve=st.none() | amounts,
)
def test_the_winner_bid_least_and_is_paid_the_second_lowest(
    offers: list[int], reserve: int | None
) -> None:
    terms = auction(reserve=reserve)
    award = decide(terms, bids(terms, *zip(POOL, offers, strict=False)))
    valid = sorted(a for a in offers if reserve is None or a <= reserve)
    if not valid:
        assert (award.winner, award.price_msat) == (None, None)
        return
    assert award.winner is not None and award.winner.amount_msat == valid[0]
    if len(valid) > 1:
        assert award.price_msat == valid[1]
    else:
        assert award.price_msat == (reserve if reserve is not None else valid[0])
    assert award.winner.amount_msat <= award.price_msat


def utility(terms: AuctionTerms, others: list[Event], bidder: Signer, bid: int, cost: int) -> int:
    award = decide(terms, [*others, *sealed_bid(terms, bidder, bid)])
    if award.winner is not None and award.winner.bidder == bidder.pubkey:
        assert award.price_msat is not None
        return award.price_msat - cost
    return 0


@settings(max_examples=60, deadline=None)
@given(
    others=st.lists(amounts, max_size=len(POOL) - 1),
    reserve=st.none() | amounts,
    cost=amounts,
    lie=amounts,
)
def test_bidding_the_true_cost_is_never_worse_than_any_other_bid(
    others: list[int], reserve: int | None, cost: int, lie: int
) -> None:
    # With no reserve and no rival, the lone bid sets its own price: the one
    # corner where the auction is first-price (ADR 0003), so it is left out.
    if reserve is None and not others:
        others = [cost]
    terms = auction(reserve=reserve)
    rivals = bids(terms, *zip(POOL[1:], others, strict=False))
    bidder = POOL[0]
    truthful = utility(terms, rivals, bidder, cost, cost)
    assert truthful >= 0
    assert truthful >= utility(terms, rivals, bidder, lie, cost)
