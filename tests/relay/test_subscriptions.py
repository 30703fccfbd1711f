"""Tests for relay/subscriptions.py: the live-subscription index."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nips.nip01 import Event, EventId, Filter, PubKey
from relay.subscriptions import Key, SubscriptionIndex

# Small pools so random filters and events often share values.
IDS = [c * 64 for c in "abc"]
AUTHORS = [c * 64 for c in "def"]
LETTERS = ["e", "p", "t", "alt"]
VALUES = ["x", "y", *IDS[:1], *AUTHORS[:1]]
KINDS = [0, 1, 7, 30023]


def event(
    *,
    id: str = IDS[0],
    pubkey: str = AUTHORS[0],
    kind: int = 1,
    tags: list[list[str]] | None = None,
    created_at: int = 1000,
) -> Event:
    # The index never looks at ids or signatures, so they need not be real.
    return Event(EventId(id), PubKey(pubkey), created_at, kind, tags or [], "", "0" * 128, "")


def test_empty_index_matches_nothing() -> None:
    index = SubscriptionIndex()
    assert index.matching(event()) == set()
    assert len(index) == 0
    assert index.count_for(1) == 0


def test_each_field_is_matched() -> None:
    index = SubscriptionIndex()
    index.add((1, "ids"), [Filter(ids=frozenset({IDS[0]}))])
    index.add((1, "authors"), [Filter(authors=frozenset({AUTHORS[0]}))])
    index.add((1, "kinds"), [Filter(kinds=frozenset({1}))])
    index.add((1, "tag"), [Filter(tags={"t": frozenset({"nostr"})})])
    index.add((1, "all"), [Filter()])
    index.add((1, "since"), [Filter(since=2000)])
    index.add((1, "other"), [Filter(ids=frozenset({IDS[1]}))])
    matching = index.matching(event(tags=[["t", "nostr"]]))
    assert matching == {(1, "ids"), (1, "authors"), (1, "kinds"), (1, "tag"), (1, "all")}


def test_all_conditions_of_a_filter_must_hold() -> None:
    index = SubscriptionIndex()
    index.add((1, "a"), [Filter(authors=frozenset({AUTHORS[0]}), kinds=frozenset({7}))])
    assert index.matching(event(kind=1)) == set()
    assert index.matching(event(kind=7)) == {(1, "a")}
    assert index.matching(event(kind=7, pubkey=AUTHORS[1])) == set()


def test_any_filter_of_a_subscription_matches() -> None:
    index = SubscriptionIndex()
    index.add((1, "a"), [Filter(kinds=frozenset({7})), Filter(tags={"p": frozenset({AUTHORS[1]})})])
    assert index.matching(event(kind=7)) == {(1, "a")}
    assert index.matching(event(tags=[["p", AUTHORS[1]]])) == {(1, "a")}
    assert index.matching(event()) == set()


def test_tag_filter_matches_first_value_of_any_tag_with_that_name() -> None:
    index = SubscriptionIndex()
    index.add((1, "a"), [Filter(tags={"t": frozenset({"b"})})])
    assert index.matching(event(tags=[["t", "a"], ["t", "b"]])) == {(1, "a")}
    assert index.matching(event(tags=[["t", "a", "b"]])) == set()
    assert index.matching(event(tags=[["t"]])) == set()
    assert index.matching(event(tags=[["tt", "b"]])) == set()


def test_limit_does_not_apply_to_live_events() -> None:
    index = SubscriptionIndex()
    index.add((1, "a"), [Filter(kinds=frozenset({1}), limit=0)])
    index.add((1, "b"), [Filter(limit=1)])
    assert index.matching(event()) == {(1, "a"), (1, "b")}
    assert index.matching(event(id=IDS[1])) == {(1, "a"), (1, "b")}


def test_filters_that_cannot_match_are_not_indexed() -> None:
    index = SubscriptionIndex()
    index.add((1, "a"), [Filter(ids=frozenset()), Filter(since=10, until=5)])
    assert index.matching(event(created_at=7)) == set()
    assert len(index) == 1  # the subscription is still open, it just gets nothing


def test_add_replaces_subscription_with_same_key() -> None:
    index = SubscriptionIndex()
    index.add((1, "a"), [Filter(kinds=frozenset({1}))])
    index.add((1, "a"), [Filter(kinds=frozenset({7}))])
    assert len(index) == 1
    assert index.matching(event(kind=1)) == set()
    assert index.matching(event(kind=7)) == {(1, "a")}


def test_same_subscription_id_on_two_connections_is_two_subscriptions() -> None:
    index = SubscriptionIndex()
    index.add((1, "a"), [Filter()])
    index.add((2, "a"), [Filter()])
    assert index.matching(event()) == {(1, "a"), (2, "a")}
    index.remove((1, "a"))
    assert index.matching(event()) == {(2, "a")}


def test_remove() -> None:
    index = SubscriptionIndex()
    index.add((1, "a"), [Filter(kinds=frozenset({1})), Filter()])
    index.add((1, "b"), [Filter(kinds=frozenset({1}))])
    index.remove((1, "a"))
    index.remove((1, "a"))
    index.remove((9, "never"))
    assert len(index) == 1
    assert index.count_for(1) == 1
    assert index.matching(event()) == {(1, "b")}


def test_remove_leaves_no_empty_posting_lists() -> None:
    index = SubscriptionIndex()
    index.add(
        (1, "a"), [Filter(ids=frozenset(IDS)), Filter(tags={"t": frozenset({"x"})}), Filter()]
    )
    index.remove((1, "a"))
    assert index._postings == {}
    assert index._catch_all == set()
    assert index._by_conn == {}


def test_remove_connection() -> None:
    index = SubscriptionIndex()
    index.add((1, "a"), [Filter()])
    index.add((1, "b"), [Filter(kinds=frozenset({1}))])
    index.add((2, "a"), [Filter()])
    assert index.count_for(1) == 2
    index.remove_connection(1)
    index.remove_connection(1)
    assert index.count_for(1) == 0
    assert index.count_for(2) == 1
    assert len(index) == 1
    assert index.matching(event()) == {(2, "a")}


# --- property: the index agrees with checking every filter -------------------

hex_sets = st.frozensets(st.sampled_from(IDS + AUTHORS), max_size=3)
filters = st.builds(
    Filter,
    ids=st.none() | hex_sets,
    authors=st.none() | hex_sets,
    kinds=st.none() | st.frozensets(st.sampled_from(KINDS), max_size=2),
    tags=st.dictionaries(
        st.sampled_from(LETTERS), st.frozensets(st.sampled_from(VALUES), max_size=2), max_size=2
    ),
    since=st.none() | st.integers(0, 20),
    until=st.none() | st.integers(0, 20),
    limit=st.none() | st.integers(0, 3),
)
events = st.builds(
    event,
    id=st.sampled_from(IDS),
    pubkey=st.sampled_from(AUTHORS),
    kind=st.sampled_from(KINDS),
    tags=st.lists(st.lists(st.sampled_from(LETTERS + VALUES), min_size=1, max_size=3), max_size=4),
    created_at=st.integers(0, 20),
)
subscriptions = st.dictionaries(
    st.tuples(st.integers(1, 3), st.sampled_from(["a", "b", "c"])),
    st.lists(filters, max_size=3),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(
    subs=subscriptions,
    removed=st.lists(st.tuples(st.integers(1, 3), st.sampled_from("abc"))),
    evs=st.lists(events, min_size=1, max_size=5),
)
def test_matching_equals_brute_force(
    subs: dict[Key, list[Filter]], removed: list[Key], evs: list[Event]
) -> None:
    index = SubscriptionIndex()
    for key in subs:
        index.add(key, [Filter(kinds=frozenset({1}))])  # replaced below
    for key, fs in subs.items():
        index.add(key, fs)
    for key in removed:
        index.remove(key)
    live = {key: fs for key, fs in subs.items() if key not in removed}
    assert len(index) == len(live)
    for ev in evs:
        expected = {key for key, fs in live.items() if any(f.matches(ev) for f in fs)}
        assert index.matching(ev) == expected
