"""Sealed-bid second-price (Vickrey) auctions for NIP-90 jobs: our extension.

Spec: ``docs/protocol/auction.md`` (normative); the reasons for a second-price
rule are in ``docs/adr/0003-second-price-auction.md``.

A customer opens an auction with params on a normal 5xxx job request. Bidders
publish a hash of their price (kind 7010), reveal it after ``commit_until``
(kind 7011), and the customer publishes the award (kind 7012): the lowest valid
bid wins and is paid the second-lowest.

Pure module: callers pass times and nonces in. :func:`decide` computes an
award from the events an awarder collected; :func:`audit` checks a published
award against a relay log. Neither raises on bad events: they say what they
set aside and why.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nips.nip01 import MAX_TIMESTAMP, Event, EventId, PubKey, compute_id, is_hex64, verify_signature
from nips.nip90 import BadRequest, JobRequest, parse_request

COMMIT_KIND = 7010
REVEAL_KIND = 7011
AWARD_KIND = 7012
AUCTION_TYPE = "vickrey"
COMMITMENT_MARKER = "commitment"  # position 3 of the reveal's `e` tag, as NIP-10 markers
# The request params this extension defines; job handlers never see them.
PARAMS = frozenset({"auction", "commit_until", "reveal_until", "min_reputation"})
MAX_MSAT_DIGITS = 18  # the bound nip90 puts on a `bid`

_TIMESTAMP = re.compile(r"[0-9]{1,16}")
# One spelling per amount: the digest is over the decimal text, so "0100" and
# "100" would be different bids.
_CANONICAL_MSAT = re.compile(rf"0|[1-9][0-9]{{0,{MAX_MSAT_DIGITS - 1}}}")
_REPUTATION = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,6})?")

Reputation = Callable[[PubKey], float]
Rejection = tuple[str, str]


class AuctionError(ValueError):
    """Raised when auction terms, bid values or an award are malformed; ``str()`` is the reason."""


# --- terms -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuctionTerms:
    """What an auction request fixes: who buys which kind of job, the deadlines and limits."""

    request_id: EventId
    kind: int
    customer: PubKey
    commit_until: int
    reveal_until: int
    reserve_msat: int | None = None  # the request's `bid`: the highest price accepted
    min_reputation: float | None = None


def auction_terms(request: JobRequest) -> AuctionTerms | None:
    """The auction a job request opens; None when it asks for no auction.

    Raises :class:`AuctionError` when the request asks for one but its params are
    wrong, with a reason the customer can act on.
    """
    auction = _single_param(request, "auction")
    if auction is None:
        return None
    if request.encrypted:
        # NIP-90 encrypts params to one provider; an auction is open to every
        # bidder and checked by anyone, so its terms must be readable by all.
        raise AuctionError("an auction request cannot be encrypted: bidders must read its terms")
    if auction != AUCTION_TYPE:
        raise AuctionError(f"auction type {auction!r} is not supported (only {AUCTION_TYPE!r})")
    commit_until = _timestamp_param(request, "commit_until")
    reveal_until = _timestamp_param(request, "reveal_until")
    if commit_until >= reveal_until:
        raise AuctionError(
            f"commit_until ({commit_until}) must be earlier than reveal_until ({reveal_until})"
        )
    return AuctionTerms(
        request_id=EventId(request.id),
        kind=request.kind,
        customer=PubKey(request.customer),
        commit_until=commit_until,
        reveal_until=reveal_until,
        reserve_msat=request.bid_msat,
        min_reputation=_reputation_param(request),
    )


def _single_param(request: JobRequest, name: str) -> str | None:
    values = request.param_values(name)
    if len(values) > 1:
        raise AuctionError(f"param {name} is given {len(values)} times; give it once")
    return values[0] if values else None


def _timestamp_param(request: JobRequest, name: str) -> int:
    text = _single_param(request, name)
    if text is None:
        raise AuctionError(f"auction request is missing param {name} (a unix time)")
    if not _TIMESTAMP.fullmatch(text) or int(text) > MAX_TIMESTAMP:
        raise AuctionError(f"param {name} {text!r} is not a unix time in seconds")
    return int(text)


def _reputation_param(request: JobRequest) -> float | None:
    text = _single_param(request, "min_reputation")
    if text is None:
        return None
    if not _REPUTATION.fullmatch(text) or float(text) > 100:
        raise AuctionError(f"param min_reputation {text!r} is not a number from 0 to 100")
    return float(text)


# --- bidders' events ---------------------------------------------------------------


def commitment_hash(request_id: str, bidder: str, amount_msat: int, nonce_hex: str) -> str:
    """sha256 hex of ``"<request id>:<bidder pubkey>:<amount msat>:<nonce hex>"``.

    The request id and the bidder's key are inside so that a commitment cannot
    be replayed in another auction or copied by another bidder.
    """
    preimage = f"{request_id}:{bidder}:{amount_msat}:{nonce_hex}"
    return hashlib.sha256(preimage.encode()).hexdigest()


def commit_tags(
    terms: AuctionTerms, bidder: str, amount_msat: int, nonce_hex: str
) -> list[list[str]]:
    """Tags of a kind 7010 commitment; ``nonce_hex`` is 32 random bytes the bidder keeps."""
    _check_bid(amount_msat, nonce_hex)
    digest = commitment_hash(terms.request_id, bidder, amount_msat, nonce_hex)
    return [
        ["e", terms.request_id],
        ["p", terms.customer],
        ["k", str(terms.kind)],
        ["commitment", digest],
    ]


def reveal_tags(
    terms: AuctionTerms, commit_id: str, amount_msat: int, nonce_hex: str
) -> list[list[str]]:
    """Tags of a kind 7011 reveal of the commitment ``commit_id``."""
    _check_bid(amount_msat, nonce_hex)
    return [
        ["e", terms.request_id],
        ["e", commit_id, "", COMMITMENT_MARKER],
        ["p", terms.customer],
        ["k", str(terms.kind)],
        ["amount", str(amount_msat)],
        ["nonce", nonce_hex],
    ]


def _check_bid(amount_msat: int, nonce_hex: str) -> None:
    if not _CANONICAL_MSAT.fullmatch(str(amount_msat)):
        raise AuctionError(f"amount {amount_msat} is not a non-negative amount in millisats")
    if not _is_nonce(nonce_hex):
        raise AuctionError("nonce must be 32 random bytes as 64 lowercase hex characters")


def _is_nonce(text: str) -> bool:
    return is_hex64(text)  # 32 bytes: fewer and anyone could try every amount against a digest


# --- the award -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bid:
    """A valid bid: a counted commitment whose reveal matched and that passed the limits."""

    bidder: PubKey
    amount_msat: int
    commit_id: EventId


@dataclass(frozen=True, slots=True)
class Award:
    """The outcome of an auction.

    ``counted`` are the commitments that took part (one per bidder, on time),
    whether or not they were revealed; ``rejected`` pairs an event or
    commitment id with the reason it did not count or did not become a bid.
    """

    counted: tuple[EventId, ...]
    winner: Bid | None
    price_msat: int | None
    rejected: tuple[Rejection, ...] = ()


def award_tags(terms: AuctionTerms, award: Award) -> list[list[str]]:
    """Tags of a kind 7012 award. With no winner there is no ``p``, ``winner`` or ``price``."""
    tags = [["e", terms.request_id], ["k", str(terms.kind)]]
    tags.extend(["commitment", commit_id] for commit_id in award.counted)
    if award.winner is not None and award.price_msat is not None:
        tags.append(["p", award.winner.bidder])
        tags.append(["winner", award.winner.bidder, award.winner.commit_id])
        tags.append(["price", str(award.price_msat)])
    return tags


def decide(
    terms: AuctionTerms,
    events: Iterable[Event],
    *,
    received_at: Mapping[str, int] | None = None,
    reputation: Reputation | None = None,
) -> Award:
    """The award for ``terms`` from the commitments and reveals seen, in any order.

    ``received_at`` maps event ids to the time the awarder's relay received them;
    events missing from it are timed by ``created_at`` alone. ``reputation``
    (0-100 by pubkey) applies ``min_reputation`` and breaks ties; without it,
    ``min_reputation`` is not applied and ties go to the lower commitment id.
    Bad events never raise: they end up in ``Award.rejected``.
    """
    log = _screen(terms, events, received_at or {})
    counted = _one_per_bidder(log.commitments, log.rejected)
    return _tally(terms, counted, log.reveals, reputation, log.rejected)


@dataclass(slots=True)
class _Log:
    """Commitments and reveals that are authentic, well formed, for this auction and on time."""

    commitments: dict[EventId, Event] = field(default_factory=dict)
    reveals: list[Event] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def _screen(terms: AuctionTerms, events: Iterable[Event], received_at: Mapping[str, int]) -> _Log:
    log = _Log()
    seen: set[str] = set()
    for event in sorted(events, key=lambda e: (e.created_at, e.id)):
        if event.kind not in (COMMIT_KIND, REVEAL_KIND):
            log.rejected.append((event.id, "not a commitment or reveal"))
            continue
        # Checked before de-duplication: a forgery carrying a real event's id
        # must not hide the real event.
        if not is_authentic(event):
            log.rejected.append((event.id, "bad signature"))
            continue
        if event.id in seen:  # the same event from two relays
            continue
        seen.add(event.id)
        reason = _screening_problem(terms, event, received_at.get(event.id, event.created_at))
        if reason is not None:
            log.rejected.append((event.id, reason))
        elif event.kind == COMMIT_KIND:
            log.commitments[event.id] = event
        else:
            log.reveals.append(event)
    return log


def _screening_problem(terms: AuctionTerms, event: Event, received: int) -> str | None:
    if ["e", terms.request_id] not in [tag[:2] for tag in event.tags]:
        return "not for this auction"
    if event.kind == COMMIT_KIND:
        return _commitment_problem(terms, event) or _commit_timing_problem(terms, event, received)
    try:
        _read_reveal(terms, event)
    except AuctionError as exc:
        return str(exc)
    return _reveal_timing_problem(terms, event, received)


def is_authentic(event: Event) -> bool:
    """The id is the hash of the content and the signature over it verifies."""
    try:
        eid = compute_id(event.pubkey, event.created_at, event.kind, event.tags, event.content)
    except TypeError:  # not encodable: no one could have signed it
        return False
    return eid == event.id and verify_signature(event)


def _commitment_problem(terms: AuctionTerms, event: Event) -> str | None:
    if terms.customer not in event.tag_values("p"):
        return "malformed commitment: no p tag for the customer"
    if str(terms.kind) not in event.tag_values("k"):
        return "malformed commitment: no k tag for the request kind"
    digests = event.tag_values("commitment")
    if len(digests) != 1 or not is_hex64(digests[0]):
        return "malformed commitment: needs one commitment tag with a sha256 hex digest"
    return None


def _commit_timing_problem(terms: AuctionTerms, event: Event, received: int) -> str | None:
    if max(event.created_at, received) > terms.commit_until:
        return "late commitment"
    return None


def _reveal_timing_problem(terms: AuctionTerms, event: Event, received: int) -> str | None:
    # Both clocks must fall in the window. Opened before commit_until, a bid
    # could steer bids still being sealed (a signal to colluders); opened after
    # reveal_until, it could be chosen knowing all the others.
    if min(event.created_at, received) <= terms.commit_until:
        return "early reveal"
    if max(event.created_at, received) > terms.reveal_until:
        return "late reveal"
    return None


def _read_reveal(terms: AuctionTerms, event: Event) -> tuple[EventId, int, str]:
    """(commitment id, amount, nonce) of a reveal; AuctionError says what is wrong."""
    commit_ids = [
        tag[1]
        for tag in event.tags
        if len(tag) >= 4 and tag[0] == "e" and tag[3] == COMMITMENT_MARKER
    ]
    if len(commit_ids) != 1 or not is_hex64(commit_ids[0]):
        raise AuctionError("malformed reveal: needs one e tag marked commitment")
    if terms.customer not in event.tag_values("p"):
        raise AuctionError("malformed reveal: no p tag for the customer")
    if str(terms.kind) not in event.tag_values("k"):
        raise AuctionError("malformed reveal: no k tag for the request kind")
    amounts, nonces = event.tag_values("amount"), event.tag_values("nonce")
    if len(amounts) != 1 or not _CANONICAL_MSAT.fullmatch(amounts[0]):
        raise AuctionError("malformed reveal: needs one amount tag in millisats")
    if len(nonces) != 1 or not _is_nonce(nonces[0]):
        raise AuctionError("malformed reveal: needs one nonce tag of 64 lowercase hex")
    return EventId(commit_ids[0]), int(amounts[0]), nonces[0]


def _one_per_bidder(
    commitments: Mapping[EventId, Event], rejected: list[Rejection]
) -> dict[EventId, Event]:
    # A bidder with several sealed amounts could reveal whichever suits it once
    # others have revealed; its earliest commitment is the one it is bound to.
    counted: dict[EventId, Event] = {}
    bidders: set[str] = set()
    for event in sorted(commitments.values(), key=lambda e: (e.created_at, e.id)):
        if event.pubkey in bidders:
            rejected.append((event.id, "second commitment by same bidder"))
        else:
            bidders.add(event.pubkey)
            counted[event.id] = event
    return counted


def _opened(
    terms: AuctionTerms,
    commitments: Mapping[EventId, Event],
    reveals: Iterable[Event],
    rejected: list[Rejection],
) -> dict[EventId, int]:
    """Amount by commitment id, for the commitments with a valid reveal."""
    amounts: dict[EventId, int] = {}
    for reveal in reveals:
        commit_id, amount, nonce = _read_reveal(terms, reveal)
        commitment = commitments.get(commit_id)
        if commitment is None:
            reason = "reveal of a commitment that does not count"
        elif reveal.pubkey != commitment.pubkey:
            reason = "reveal signed by another key than its commitment"
        elif commitment_hash(terms.request_id, reveal.pubkey, amount, nonce) != _digest(commitment):
            reason = "reveal does not match commitment"
        elif commit_id in amounts:
            reason = "duplicate reveal"
        else:
            amounts[commit_id] = amount
            continue
        rejected.append((reveal.id, reason))
    return amounts


def _digest(commitment: Event) -> str:
    return commitment.tag_values("commitment")[0]


def _tally(
    terms: AuctionTerms,
    counted: Mapping[EventId, Event],
    reveals: Iterable[Event],
    reputation: Reputation | None,
    rejected: list[Rejection],
) -> Award:
    amounts = _opened(terms, counted, reveals, rejected)
    bids: list[Bid] = []
    for commit_id in sorted(counted):
        amount = amounts.get(commit_id)
        bidder = counted[commit_id].pubkey
        if amount is None:
            rejected.append((commit_id, "no reveal"))
        elif terms.reserve_msat is not None and amount > terms.reserve_msat:
            rejected.append((commit_id, "above reserve"))
        elif (
            terms.min_reputation is not None
            and reputation is not None
            and reputation(bidder) < terms.min_reputation
        ):
            rejected.append((commit_id, "reputation below minimum"))
        else:
            bids.append(Bid(bidder, amount, commit_id))
    winner, price = _second_price(terms, bids, reputation)
    return Award(tuple(sorted(counted)), winner, price, tuple(rejected))


def _second_price(
    terms: AuctionTerms, bids: list[Bid], reputation: Reputation | None
) -> tuple[Bid | None, int | None]:
    if not bids:
        return None, None

    def rank(bid: Bid) -> tuple[int, float, str]:
        return bid.amount_msat, -(reputation(bid.bidder) if reputation else 0.0), bid.commit_id

    ranked = sorted(bids, key=rank)
    winner = ranked[0]
    if len(ranked) > 1:
        return winner, ranked[1].amount_msat
    return winner, terms.reserve_msat if terms.reserve_msat is not None else winner.amount_msat


# --- reading a published award ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishedAward:
    """What a kind 7012 event claims."""

    event: Event
    request_id: EventId
    kind: int
    counted: tuple[EventId, ...]
    winner: PubKey | None
    winner_commit: EventId | None
    price_msat: int | None


def parse_award(event: Event) -> PublishedAward:
    """Read an award's tags; raises AuctionError when they break the spec's shape."""
    if event.kind != AWARD_KIND:
        raise AuctionError(f"kind {event.kind} is not an award ({AWARD_KIND})")
    request_ids, kinds = event.tag_values("e"), event.tag_values("k")
    if len(request_ids) != 1 or not is_hex64(request_ids[0]):
        raise AuctionError("award needs one e tag with the request id")
    if len(kinds) != 1 or not kinds[0].isascii() or not kinds[0].isdigit():
        raise AuctionError("award needs one k tag with the request kind")
    counted = event.tag_values("commitment")
    if not all(is_hex64(c) for c in counted) or len(set(counted)) != len(counted):
        raise AuctionError("award commitment tags must be distinct event ids")
    winners = [tag for tag in event.tags if tag and tag[0] == "winner"]
    prices, recipients = event.tag_values("price"), event.tag_values("p")
    if not winners:
        if prices or recipients:
            raise AuctionError("award without a winner must have no price or p tag")
        return PublishedAward(
            event, EventId(request_ids[0]), int(kinds[0]), _ids(counted), None, None, None
        )
    if len(winners) != 1 or len(winners[0]) < 3 or not all(map(is_hex64, winners[0][1:3])):
        raise AuctionError("award needs one winner tag: [winner, pubkey, commitment id]")
    winner, winner_commit = winners[0][1], winners[0][2]
    if winner_commit not in counted:
        raise AuctionError("the winning commitment is not among the counted ones")
    if recipients != [winner]:
        raise AuctionError("award needs one p tag, for the winner")
    if len(prices) != 1 or not _CANONICAL_MSAT.fullmatch(prices[0]):
        raise AuctionError("award needs one price tag in millisats")
    return PublishedAward(
        event,
        EventId(request_ids[0]),
        int(kinds[0]),
        _ids(counted),
        PubKey(winner),
        EventId(winner_commit),
        int(prices[0]),
    )


def _ids(values: list[str]) -> tuple[EventId, ...]:
    return tuple(EventId(v) for v in values)


# --- audit -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """An audit's result.

    ``winner`` and ``price_msat`` are the outcome the rules give over the log
    (the award's own, when it is one the rules allow). ``problems`` make the
    award invalid; ``notes`` are what the auditor ignored or could not check.
    """

    valid: bool
    winner: PubKey | None
    price_msat: int | None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "winner": self.winner,
            "price_msat": self.price_msat,
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def audit(
    request: Event, events: Iterable[Event], *, reputation: Reputation | None = None
) -> Verdict:
    """Check the award of the auction ``request`` opened against a relay log.

    ``events`` is whatever a relay returned about the job; kinds other than
    7010-7012 are ignored. The log holds no receipt times, so the auditor times
    events by ``created_at`` and takes the award's counted list as far as the
    log supports it: each counted commitment must be there and on time, and no
    on-time commitment with a valid reveal may be left out.
    """
    try:
        terms = auction_terms(parse_request(request))
    except (BadRequest, AuctionError) as exc:
        return _void(f"the request is not a valid auction request: {exc}")
    if terms is None:
        return _void("the request does not open an auction")
    auditor = _Audit(terms, reputation)
    if not is_authentic(request):
        auditor.problems.append("the request has a bad signature")
    return auditor.run(list(events))


def _void(problem: str) -> Verdict:
    return Verdict(False, None, None, (problem,))


@dataclass(slots=True)
class _Audit:
    terms: AuctionTerms
    reputation: Reputation | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def run(self, events: list[Event]) -> Verdict:
        bidding = [e for e in events if e.kind in (COMMIT_KIND, REVEAL_KIND)]
        log = _screen(self.terms, bidding, {})
        self.notes.extend(
            f"ignored {eid}: {why}" for eid, why in log.rejected if why == "bad signature"
        )
        claim = self._award(events)
        if claim is None:
            return self._verdict(self._recompute(log, _one_per_bidder(log.commitments, [])))
        counted = self._check_counted(claim, log)
        expected = self._recompute(log, counted)
        if self._explains(claim, expected, log, counted):
            return self._verdict(expected, claim)
        return self._verdict(expected)

    def _award(self, events: list[Event]) -> PublishedAward | None:
        """The award to check, chosen as the spec says; None when there is none to read."""
        candidates = []
        for event in events:
            if event.kind != AWARD_KIND or self.terms.request_id not in event.tag_values("e"):
                continue
            if is_authentic(event):
                candidates.append(event)
            else:
                self.notes.append(f"ignored {event.id}: award with a bad signature")
        by_customer = [e for e in candidates if e.pubkey == self.terms.customer]
        if not candidates:
            self.problems.append("no award")
            return None
        if not by_customer:
            self.problems.append("award not signed by the customer")
        pool = sorted(by_customer or candidates, key=lambda e: (e.created_at, e.id))
        if len(pool) > 1:
            self.problems.append(f"{len(pool)} awards; there must be one")
        award = pool[0]
        try:
            claim = parse_award(award)
        except AuctionError as exc:
            self.problems.append(f"malformed award {award.id}: {exc}")
            return None
        if claim.kind != self.terms.kind:
            self.problems.append(f"award names kind {claim.kind}, the request is {self.terms.kind}")
        if award.created_at <= self.terms.reveal_until:
            self.problems.append("award published before reveal_until had passed")
        return claim

    def _check_counted(self, claim: PublishedAward, log: _Log) -> dict[EventId, Event]:
        """The commitments the award counts that the log supports; problems for the rest."""
        reasons = dict(log.rejected)
        listed: dict[EventId, Event] = {}
        for commit_id in claim.counted:
            if commit_id in log.commitments:
                listed[commit_id] = log.commitments[commit_id]
            elif commit_id in reasons:
                self.problems.append(f"counted commitment {commit_id}: {reasons[commit_id]}")
            else:
                self.problems.append(f"counted commitment {commit_id} is not in the log")
        counted = _one_per_bidder(listed, [])
        for commit_id in listed.keys() - counted.keys():
            self.problems.append(f"counted commitment {commit_id} is a second one by its bidder")
        opened = _opened(self.terms, log.commitments, log.reveals, [])
        first_by_bidder = {e.pubkey: (e.created_at, e.id) for e in counted.values()}
        for commit_id, event in log.commitments.items():
            if commit_id in listed or commit_id not in opened:
                continue  # leaving out a commitment that was never opened changes nothing
            first = first_by_bidder.get(event.pubkey)
            if first is None or (event.created_at, event.id) < first:
                self.problems.append(f"uncounted commitment {commit_id}")
        return counted

    def _recompute(self, log: _Log, counted: Mapping[EventId, Event]) -> Award:
        return _tally(self.terms, counted, log.reveals, self.reputation, [])

    def _explains(
        self, claim: PublishedAward, expected: Award, log: _Log, counted: Mapping[EventId, Event]
    ) -> bool:
        """Whether the claimed winner and price are what the rules give; adds problems if not."""
        if self.reputation is None:
            bids = self._bids_ignoring_reputation(log, counted)
            if _depends_on_reputation(self.terms, bids):
                self.notes.append("reputation decides part of the outcome and was not checked")
                if _allowed_without_reputation(self.terms, bids, claim):
                    return True
                self.problems.append(
                    "no reputation scores give the award's winner and price: "
                    + _describe(claim.winner, claim.price_msat)
                )
                return False
        winner = expected.winner
        rules_winner = winner.bidder if winner else None
        rules_commit = winner.commit_id if winner else None
        if (claim.winner, claim.winner_commit) != (rules_winner, rules_commit):
            self.problems.append(
                f"wrong winner: award names {_describe(claim.winner, claim.price_msat)}, "
                f"the rules give {_describe(rules_winner, expected.price_msat)}"
            )
        elif claim.price_msat != expected.price_msat:
            self.problems.append(
                f"wrong price: award says {claim.price_msat}, the rules give {expected.price_msat}"
            )
        else:
            return True
        return False

    def _bids_ignoring_reputation(self, log: _Log, counted: Mapping[EventId, Event]) -> list[Bid]:
        opened = _opened(self.terms, counted, log.reveals, [])
        reserve = self.terms.reserve_msat
        return [
            Bid(counted[cid].pubkey, amount, cid)
            for cid, amount in opened.items()
            if reserve is None or amount <= reserve
        ]

    def _verdict(self, expected: Award, claim: PublishedAward | None = None) -> Verdict:
        if claim is not None:
            winner, price = claim.winner, claim.price_msat
        else:
            winner = expected.winner.bidder if expected.winner else None
            price = expected.price_msat
        return Verdict(not self.problems, winner, price, tuple(self.problems), tuple(self.notes))


def _describe(winner: str | None, price_msat: int | None) -> str:
    return f"{winner} at {price_msat} msat" if winner is not None else "no winner"


def _depends_on_reputation(terms: AuctionTerms, bids: list[Bid]) -> bool:
    if terms.min_reputation is not None:
        return True
    amounts = sorted(b.amount_msat for b in bids)
    return len(amounts) > 1 and amounts[0] == amounts[1]


def _allowed_without_reputation(
    terms: AuctionTerms, bids: list[Bid], claim: PublishedAward
) -> bool:
    """Whether some reputation scores would make the rules give the claimed outcome.

    Reputation only breaks ties and, with ``min_reputation``, may remove any
    bids; an auditor without scores can check everything else.
    """
    filtering = terms.min_reputation is not None
    if claim.winner_commit is None:
        return not bids or filtering
    winner = next((b for b in bids if b.commit_id == claim.winner_commit), None)
    if winner is None or winner.bidder != claim.winner:
        return False
    others = sorted(b.amount_msat for b in bids if b is not winner)
    alone = terms.reserve_msat if terms.reserve_msat is not None else winner.amount_msat
    if filtering:
        # Exclude every other bidder below the price and the price is still the
        # second-lowest of those left; so any other bid at or above the winner's works.
        return claim.price_msat == alone or claim.price_msat in {
            a for a in others if a >= winner.amount_msat
        }
    if others and others[0] < winner.amount_msat:
        return False
    return claim.price_msat == (others[0] if others else alone)
