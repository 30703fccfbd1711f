"""Tests for nips/nip01.py: events, ids, signatures, kinds and filters."""

from __future__ import annotations

import json
from typing import Any

import nostr_sdk
import orjson
import pytest
from coincurve import PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from nips.nip01 import (
    Event,
    Filter,
    InvalidEvent,
    InvalidFilter,
    KindClass,
    compute_id,
    event_from_json,
    kind_class,
    newest_first_key,
    parse_event,
    parse_filter,
    serialize_for_id,
    supersedes,
    verify_signature,
)

KEY = PrivateKey(b"\x01" * 32)
PUBKEY = KEY.public_key_xonly.format().hex()
HEX_A = "a" * 64
HEX_B = "b" * 64


def signed_dict(
    *,
    kind: int = 1,
    content: str = "",
    tags: list[list[str]] | None = None,
    created_at: int = 1_700_000_000,
    key: PrivateKey = KEY,
) -> dict[str, Any]:
    pubkey = key.public_key_xonly.format().hex()
    tags = tags or []
    eid = compute_id(pubkey, created_at, kind, tags, content)
    sig = key.sign_schnorr(bytes.fromhex(eid)).hex()
    return {
        "id": eid,
        "pubkey": pubkey,
        "created_at": created_at,
        "kind": kind,
        "tags": tags,
        "content": content,
        "sig": sig,
    }


def make(**kwargs: Any) -> Event:
    return parse_event(signed_dict(**kwargs))


def with_id(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with its id recomputed, so only the field under test is wrong."""
    obj = dict(obj)
    obj["id"] = compute_id(
        obj["pubkey"], obj["created_at"], obj["kind"], obj["tags"], obj["content"]
    )
    return obj


# --- interop: ids and signatures agree with rust-nostr ------------------------

UGLY_CONTENT = [
    "",
    "hello",
    "héllo wörld, 日本語, Ελληνικά, עברית",
    "emoji 🎉👍🏽👨‍👩‍👧 and flags 🇳🇴",
    "line one\nline two\r\n\ttabbed",
    'she said "hi" and left',
    "back\\slash \\n not a newline \\u0041",
    "controls \u0001 \b \f \u001f \u007f end",
    "\u0000nul",
    "separators \u2028 \u2029",
    "</script><script>alert(1)</script>",
    "\ufeffbom and \ufffd replacement",
]


def sdk_event(content: str, tags: list[list[str]] | None = None, kind: int = 1) -> str:
    keys = nostr_sdk.Keys.generate()
    builder = nostr_sdk.EventBuilder(nostr_sdk.Kind(kind), content).tags(
        [nostr_sdk.Tag.parse(tag) for tag in tags or []]
    )
    return str(keys.sign_event(builder.finalize_unsigned(keys.public_key())).as_json())


@pytest.mark.interop
@pytest.mark.parametrize("content", UGLY_CONTENT)
def test_parse_event_accepts_events_signed_by_nostr_sdk(content: str) -> None:
    text = sdk_event(
        content, tags=[["t", content or "x"], ["e", HEX_A, "wss://r.example", "reply"]]
    )
    event = event_from_json(text)
    assert event.content == content
    assert event.id == orjson.loads(text)["id"]
    assert verify_signature(event)


@pytest.mark.interop
@pytest.mark.parametrize("content", UGLY_CONTENT)
def test_nostr_sdk_accepts_events_we_hash(content: str) -> None:
    event = make(content=content, tags=[["t", content or "x"], ["p", HEX_B]])
    theirs = nostr_sdk.Event.from_json(event.raw)
    assert theirs.id().to_hex() == event.id
    assert theirs.verify()


@settings(max_examples=200, deadline=None)
@given(
    content=st.text(),
    tags=st.lists(st.lists(st.text(max_size=8), min_size=1, max_size=4), max_size=4),
    kind=st.integers(0, 65535),
    created_at=st.integers(0, 2**53 - 1),
)
def test_serialize_for_id_is_compact_json_without_ascii_escapes(
    content: str, tags: list[list[str]], kind: int, created_at: int
) -> None:
    expected = json.dumps(
        [0, PUBKEY, created_at, kind, tags, content], ensure_ascii=False, separators=(",", ":")
    ).encode()
    assert serialize_for_id(PUBKEY, created_at, kind, tags, content) == expected


# --- parse_event: accepts ------------------------------------------------------


def test_parse_event_builds_event_and_keeps_compact_raw() -> None:
    obj = signed_dict(kind=7, content="+", tags=[["e", HEX_A]])
    event = parse_event(obj)
    assert event.to_dict() == obj
    assert orjson.loads(event.raw) == obj
    assert " " not in event.raw
    assert verify_signature(event)


def test_parse_event_accepts_field_order_and_extreme_values() -> None:
    obj = signed_dict(kind=65535, created_at=2**53 - 1)
    reordered = dict(reversed(list(obj.items())))
    assert parse_event(reordered).kind == 65535
    assert parse_event(signed_dict(kind=0, created_at=0)).created_at == 0


# --- parse_event: rejects ------------------------------------------------------


@pytest.mark.parametrize("bad", [None, [], "event", 1])
def test_parse_event_rejects_non_objects(bad: object) -> None:
    with pytest.raises(InvalidEvent, match="JSON object"):
        parse_event(bad)


@pytest.mark.parametrize("field", ["id", "pubkey", "created_at", "kind", "tags", "content", "sig"])
def test_parse_event_rejects_missing_field(field: str) -> None:
    obj = signed_dict()
    del obj[field]
    with pytest.raises(InvalidEvent, match=f"missing field '{field}'"):
        parse_event(obj)


def test_parse_event_rejects_extra_field() -> None:
    obj = signed_dict() | {"relay": "wss://r.example"}
    with pytest.raises(InvalidEvent, match="unknown fields"):
        parse_event(obj)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kind", True, "kind"),
        ("kind", "1", "kind"),
        ("kind", 1.0, "kind"),
        ("kind", -1, "kind"),
        ("kind", 65536, "kind"),
        ("created_at", 1.5, "created_at"),
        ("created_at", 1_700_000_000.0, "created_at"),
        ("created_at", "1700000000", "created_at"),
        ("created_at", False, "created_at"),
        ("created_at", -1, "created_at"),
        ("created_at", 2**53, "created_at"),
        ("content", None, "content"),
        ("content", 5, "content"),
        ("tags", "e", "tags"),
        ("tags", {"e": HEX_A}, "tags"),
        ("tags", ["e", HEX_A], "tags"),
        ("tags", [[]], "tags"),
        ("tags", [["e", 1]], "tags"),
        ("tags", [["e", None]], "tags"),
        ("tags", [[["e"]]], "tags"),
        ("pubkey", 5, "pubkey"),
    ],
)
def test_parse_event_rejects_wrong_types(field: str, value: object, message: str) -> None:
    obj = signed_dict()
    obj[field] = value
    with pytest.raises(InvalidEvent, match=message):
        parse_event(obj)


@pytest.mark.parametrize("field", ["id", "pubkey", "sig"])
def test_parse_event_rejects_uppercase_hex(field: str) -> None:
    obj = signed_dict()
    obj[field] = obj[field].upper()
    with pytest.raises(InvalidEvent, match=field):
        parse_event(obj)


@pytest.mark.parametrize("field", ["id", "pubkey", "sig"])
def test_parse_event_rejects_short_and_long_hex(field: str) -> None:
    for value in (signed_dict()[field][:-2], signed_dict()[field] + "00", ""):
        obj = signed_dict()
        obj[field] = value
        with pytest.raises(InvalidEvent, match=field):
            parse_event(obj)


def test_parse_event_rejects_non_hex_characters() -> None:
    obj = signed_dict()
    obj["id"] = "g" + obj["id"][1:]
    with pytest.raises(InvalidEvent, match="id"):
        parse_event(obj)


def test_parse_event_rejects_wrong_id() -> None:
    obj = signed_dict(content="original")
    obj["content"] = "tampered"
    with pytest.raises(InvalidEvent, match="does not match"):
        parse_event(obj)
    obj = signed_dict()
    obj["id"] = HEX_A
    with pytest.raises(InvalidEvent, match="does not match"):
        parse_event(obj)


def test_bad_signature_parses_but_does_not_verify() -> None:
    obj = signed_dict()
    obj["sig"] = signed_dict(content="other")["sig"]
    event = parse_event(obj)
    assert not verify_signature(event)
    with pytest.raises(InvalidEvent, match="signature"):
        event_from_json(orjson.dumps(obj))


def test_signature_by_another_key_does_not_verify() -> None:
    other = signed_dict(key=PrivateKey(b"\x02" * 32))
    obj = with_id(signed_dict() | {"pubkey": other["pubkey"]})
    assert not verify_signature(parse_event(obj))


@pytest.mark.parametrize("pubkey", ["0" * 64, "f" * 64])
def test_pubkey_not_on_curve_does_not_verify(pubkey: str) -> None:
    obj = with_id(signed_dict() | {"pubkey": pubkey})
    event = parse_event(obj)
    assert not verify_signature(event)


@pytest.mark.parametrize("field", ["content", "tags"])
def test_parse_event_rejects_lone_surrogate(field: str) -> None:
    obj = signed_dict()
    obj[field] = "bad \ud800 text" if field == "content" else [["t", "\udfff"]]
    with pytest.raises(InvalidEvent, match="UTF-8"):
        parse_event(obj)


@pytest.mark.parametrize("text", [b"", b"{", b"not json", b'{"id": 1,}'])
def test_event_from_json_rejects_invalid_json(text: bytes) -> None:
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        event_from_json(text)


def test_event_from_json_accepts_str_and_bytes() -> None:
    raw = make(content="ok").raw
    assert event_from_json(raw) == event_from_json(raw.encode())


# --- kinds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (0, KindClass.REPLACEABLE),
        (1, KindClass.REGULAR),
        (2, KindClass.REGULAR),
        (3, KindClass.REPLACEABLE),
        (4, KindClass.REGULAR),
        (9999, KindClass.REGULAR),
        (10000, KindClass.REPLACEABLE),
        (19999, KindClass.REPLACEABLE),
        (20000, KindClass.EPHEMERAL),
        (29999, KindClass.EPHEMERAL),
        (30000, KindClass.ADDRESSABLE),
        (39999, KindClass.ADDRESSABLE),
        (40000, KindClass.REGULAR),
        (65535, KindClass.REGULAR),
    ],
)
def test_kind_class_boundaries(kind: int, expected: KindClass) -> None:
    assert kind_class(kind) is expected
    assert make(kind=kind).kind_class is expected


def test_supersedes_later_created_at_wins_whatever_the_ids() -> None:
    old = make(created_at=100, content="old")
    new = make(created_at=101, content="new")
    assert supersedes(new, old)
    assert not supersedes(old, new)


def test_supersedes_tie_keeps_lowest_id() -> None:
    a = make(created_at=100, content="a")
    b = make(created_at=100, content="b")
    low, high = sorted([a, b], key=lambda e: e.id)
    assert supersedes(low, high)
    assert not supersedes(high, low)
    assert not supersedes(low, low)


def test_newest_first_key_orders_newest_then_lowest_id() -> None:
    events = [make(created_at=t, content=c) for t in (1, 2) for c in "abc"]
    ordered = sorted(events, key=newest_first_key)
    assert [e.created_at for e in ordered] == [2, 2, 2, 1, 1, 1]
    assert [e.id for e in ordered[:3]] == sorted(e.id for e in events if e.created_at == 2)


# --- event properties ------------------------------------------------------------


def test_address_of_replaceable_addressable_and_other_events() -> None:
    assert make(kind=0).address == f"0:{PUBKEY}:"
    assert make(kind=10002, tags=[["d", "ignored"]]).address == f"10002:{PUBKEY}:"
    assert make(kind=30023, tags=[["d", "post"]]).address == f"30023:{PUBKEY}:post"
    assert make(kind=30023).address == f"30023:{PUBKEY}:"
    assert make(kind=1).address is None
    assert make(kind=20001).address is None


def test_d_tag_is_first_d_value_or_empty() -> None:
    assert make(kind=30000, tags=[["d", "one"], ["d", "two"]]).d_tag == "one"
    assert make(kind=30000, tags=[["d"], ["d", "two"]]).d_tag == "two"
    assert make(kind=30000, tags=[["d", ""]]).d_tag == ""
    assert make(kind=30000).d_tag == ""


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([["expiration", "1700000000"]], 1_700_000_000),
        ([["expiration", "0"]], 0),
        ([["expiration", "soon"]], None),
        ([["expiration", "-5"]], None),
        ([["expiration", "1.5"]], None),
        ([["expiration", ""]], None),
        ([["expiration"]], None),
        ([], None),
    ],
)
def test_expiration(tags: list[list[str]], expected: int | None) -> None:
    assert make(tags=tags).expiration == expected


def test_is_protected() -> None:
    assert make(tags=[["-"]]).is_protected
    assert make(tags=[["p", HEX_A], ["-"]]).is_protected
    assert not make(tags=[["-", "x"]]).is_protected
    assert not make().is_protected


def test_indexed_tags_are_single_letter_first_values() -> None:
    event = make(
        tags=[
            ["e", HEX_A, "wss://r.example", "root"],
            ["P", "upper"],
            ["t"],
            ["alt", "a reply"],
            ["1", "digit"],
            ["é", "not ascii"],
            ["-"],
            ["t", "second"],
        ]
    )
    assert event.indexed_tags() == [("e", HEX_A), ("P", "upper"), ("t", "second")]


# --- parse_filter ----------------------------------------------------------------


def test_parse_filter_accepts_all_fields() -> None:
    obj = {
        "ids": [HEX_A],
        "authors": [HEX_A, HEX_B],
        "kinds": [0, 1, 65535],
        "#e": [HEX_B],
        "#p": [HEX_A],
        "#t": ["nostr", "Ünïcode", ""],
        "#Z": ["anything"],
        "since": 10,
        "until": 20,
        "limit": 0,
    }
    f = parse_filter(obj)
    assert f.ids == {HEX_A}
    assert f.authors == {HEX_A, HEX_B}
    assert f.kinds == {0, 1, 65535}
    assert f.tags == {
        "e": {HEX_B},
        "p": {HEX_A},
        "t": {"nostr", "Ünïcode", ""},
        "Z": {"anything"},
    }
    assert (f.since, f.until, f.limit) == (10, 20, 0)
    assert parse_filter(f.to_dict()) == f


def test_parse_filter_empty_object_is_match_all() -> None:
    f = parse_filter({})
    assert f == Filter()
    assert f.matches(make())


@pytest.mark.parametrize("bad", [None, [], "filter", 1])
def test_parse_filter_rejects_non_objects(bad: object) -> None:
    with pytest.raises(InvalidFilter, match="JSON object"):
        parse_filter(bad)


@pytest.mark.parametrize(
    "key", ["search", "id", "author", "kind", "#", "#ab", "#1", "#é", "e", "#-"]
)
def test_parse_filter_rejects_unknown_fields(key: str) -> None:
    with pytest.raises(InvalidFilter, match="unknown filter field"):
        parse_filter({key: ["x"]})


@pytest.mark.parametrize("key", ["ids", "authors", "#e", "#p"])
@pytest.mark.parametrize("value", ["A" * 64, "a" * 63, "a" * 65, "abc", "", "g" * 64, 5, None])
def test_parse_filter_rejects_non_hex(key: str, value: object) -> None:
    with pytest.raises(InvalidFilter, match=r"hex|strings"):
        parse_filter({key: [HEX_A, value]})


@pytest.mark.parametrize(
    "obj",
    [
        {"kinds": [-1]},
        {"kinds": [65536]},
        {"kinds": [True]},
        {"kinds": ["1"]},
        {"kinds": [1.0]},
        {"#t": [1]},
        {"#t": [None]},
        {"ids": HEX_A},
        {"kinds": 1},
        {"#t": "nostr"},
    ],
)
def test_parse_filter_rejects_mistyped_values(obj: dict[str, Any]) -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(obj)


@pytest.mark.parametrize("key", ["since", "until", "limit"])
@pytest.mark.parametrize("value", [-1, True, False, 1.5, 10.0, "10", [10]])
def test_parse_filter_rejects_bad_integers(key: str, value: object) -> None:
    with pytest.raises(InvalidFilter, match=f"{key} must be a non-negative integer"):
        parse_filter({key: value})


@pytest.mark.parametrize("key", ["ids", "authors", "kinds", "#e", "#t"])
def test_parse_filter_limits_number_of_values(key: str) -> None:
    values: list[object] = [HEX_A, HEX_B, "c" * 64] if key != "kinds" else [1, 2, 3]
    if key == "#t":
        values = ["a", "b", "c"]
    assert parse_filter({key: values[:2]}, max_values=2)
    with pytest.raises(InvalidFilter, match="more than 2 values"):
        parse_filter({key: values}, max_values=2)


# --- Filter.matches and can_match --------------------------------------------------


def test_filter_matches_ids() -> None:
    event = make()
    assert Filter(ids=frozenset({event.id, HEX_A})).matches(event)
    assert not Filter(ids=frozenset({HEX_A})).matches(event)


def test_filter_matches_authors() -> None:
    assert Filter(authors=frozenset({PUBKEY})).matches(make())
    assert not Filter(authors=frozenset({HEX_A})).matches(make())


def test_filter_matches_kinds() -> None:
    assert Filter(kinds=frozenset({1, 7})).matches(make(kind=7))
    assert not Filter(kinds=frozenset({1})).matches(make(kind=7))


def test_filter_since_and_until_are_inclusive() -> None:
    event = make(created_at=100)
    assert Filter(since=100, until=100).matches(event)
    assert not Filter(since=101).matches(event)
    assert not Filter(until=99).matches(event)


def test_filter_matches_tags_on_first_value_of_any_tag_with_that_letter() -> None:
    event = make(tags=[["t", "a"], ["t", "b", "c"], ["e", HEX_A]])
    assert Filter(tags={"t": frozenset({"b"})}).matches(event)
    assert Filter(tags={"t": frozenset({"x", "a"}), "e": frozenset({HEX_A})}).matches(event)
    assert not Filter(tags={"t": frozenset({"c"})}).matches(event)
    assert not Filter(tags={"t": frozenset({"a"}), "e": frozenset({HEX_B})}).matches(event)
    assert not Filter(tags={"p": frozenset({HEX_A})}).matches(event)


def test_filter_tag_names_are_case_sensitive() -> None:
    event = make(tags=[["T", "x"]])
    assert Filter(tags={"T": frozenset({"x"})}).matches(event)
    assert not Filter(tags={"t": frozenset({"x"})}).matches(event)


def test_multi_letter_tags_are_not_matched_by_tag_filters() -> None:
    event = make(tags=[["alt", "x"], ["aa", "x"]])
    assert not parse_filter({"#a": ["x"]}).matches(event)
    assert parse_filter({"#a": ["x"]}).matches(make(tags=[["a", "x"]]))


def test_filter_ignores_limit_when_matching() -> None:
    assert Filter(limit=0).matches(make())


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (Filter(), True),
        (Filter(ids=frozenset()), False),
        (Filter(authors=frozenset()), False),
        (Filter(kinds=frozenset()), False),
        (Filter(tags={"t": frozenset()}), False),
        (Filter(tags={"t": frozenset({"x"}), "p": frozenset()}), False),
        (Filter(since=5, until=4), False),
        (Filter(since=5, until=5), True),
        # limit bounds only the initial query; live events still match.
        (Filter(limit=0), True),
        (Filter(kinds=frozenset({1}), limit=10), True),
    ],
)
def test_can_match(f: Filter, expected: bool) -> None:
    assert f.can_match is expected


def test_filter_that_cannot_match_matches_nothing() -> None:
    event = make(created_at=5)
    for f in (Filter(ids=frozenset()), Filter(tags={"t": frozenset()}), Filter(since=6, until=4)):
        assert not f.matches(event)
