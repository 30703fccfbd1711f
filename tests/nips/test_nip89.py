"""Tests for nips/nip89.py: kind 31990 handler announcements of NIP-90 providers.

Specs: shared/specs/nips/89.md ("Handler information") and
shared/specs/dvm-kinds/nip89.md (the DVM use, with the Dali example).
"""

from __future__ import annotations

import os

import orjson
import pytest

from nips.nip01 import Signer
from nips.nip89 import HANDLER_KIND, HandlerInfo, handler_content, handler_tags, parse_handler
from tests.helpers import make_event

NODE = "d" * 64
DALI_IMAGE = (
    "https://cdn.nostr.build/i/fb207be87d748ad927f52a063c221d1d97ef6d75e660003cb6e85baf2cd2d64e.jpg"
)


def handler(*tags: list[str], content: str = "", kind: int = HANDLER_KIND):
    return make_event(kind=kind, tags=tags, content=content)


def announce(info: HandlerInfo, signer: Signer):
    return signer.sign(
        HANDLER_KIND, handler_content(info), handler_tags(info), created_at=info.created_at
    )


# --- building and reading back -------------------------------------------------------


def test_timmy_agent_round_trips():
    signer = Signer(os.urandom(32))
    info = HandlerInfo(
        pubkey=signer.pubkey,
        d="summarizer",
        kinds=(5001, 5050),
        name="summarizer",
        about="Summarizes.",
        picture="https://example.com/a.png",
        encryption_supported=True,
        relays=("wss://a.example", "wss://b.example"),
        node=NODE,
        price_msat=1000,
        price_per_kb_msat=20,
        created_at=1_700_000_000,
    )
    assert parse_handler(announce(info, signer)) == info


def test_plain_provider_round_trips_without_the_timmy_extension():
    signer = Signer(os.urandom(32))
    info = HandlerInfo(
        pubkey=signer.pubkey, d="x1", kinds=(5100,), name="Dali", created_at=1_693_484_377
    )
    event = announce(info, signer)
    assert event.tags == [["d", "x1"], ["k", "5100"]]
    assert "timmy" not in orjson.loads(event.content)
    assert parse_handler(event) == info


def test_handler_tags():
    info = HandlerInfo(
        pubkey="", d="agent", kinds=(5001, 5050), relays=("wss://r.example",), node=NODE
    )
    assert handler_tags(info) == [
        ["d", "agent"],
        ["k", "5001"],
        ["k", "5050"],
        ["relays", "wss://r.example"],
        ["t", "timmy"],
    ]


def test_handler_content_writes_both_picture_spellings_and_the_extension():
    info = HandlerInfo(
        pubkey="",
        d="a",
        kinds=(5001,),
        name="n",
        about="a",
        picture="https://p.example/x.png",
        node=NODE,
    )
    assert orjson.loads(handler_content(info)) == {
        "name": "n",
        "about": "a",
        "encryptionSupported": False,
        "picture": "https://p.example/x.png",
        "image": "https://p.example/x.png",
        "timmy": {"node": NODE, "price_msat": 0, "price_per_kb_msat": 0, "auction": True},
    }


def test_unset_prices_of_a_timmy_agent_read_back_as_zero():
    signer = Signer(os.urandom(32))
    info = HandlerInfo(pubkey=signer.pubkey, d="a", kinds=(5001,), node=NODE, created_at=1)
    parsed = parse_handler(announce(info, signer))
    assert parsed is not None
    assert (parsed.price_msat, parsed.price_per_kb_msat) == (0, 0)


def test_address():
    info = HandlerInfo(pubkey="f" * 64, d="td51xbgxwbt5116r", kinds=(5100,))
    assert info.address() == f"31990:{'f' * 64}:td51xbgxwbt5116r"


# --- other DVMs' announcements (shared/specs/dvm-kinds/nip89.md) ------------------------------


def test_dali_example_from_the_spec():
    # The spec's content is not JSON (Python's True, a trailing comma); this is it fixed.
    content = orjson.dumps(
        {
            "name": "Dali Vending Machine",
            "image": DALI_IMAGE,
            "about": "I'm Dali re-incarnated, faster and cheaper",
            "encryptionSupported": True,
        }
    ).decode()
    event = make_event(
        kind=31990,
        content=content,
        tags=[["d", "td51xbgxwbt5116r"], ["k", "5100"]],
        created_at=1693484377,
    )
    assert parse_handler(event) == HandlerInfo(
        pubkey=event.pubkey,
        d="td51xbgxwbt5116r",
        kinds=(5100,),
        name="Dali Vending Machine",
        about="I'm Dali re-incarnated, faster and cheaper",
        picture=DALI_IMAGE,
        encryption_supported=True,
        created_at=1693484377,
    )


def test_you_might_have_missed_example_from_the_spec():
    content = orjson.dumps(
        {
            "name": "You might have missed",
            "image": DALI_IMAGE,
            "about": "My goal is to help you keep up \u2013 or catch up \u2013 with your world, "
            "no matter how much time you spend on t̶w̶i̶t̶t̶e̶r̶ nostr.",
            "encryptionSupported": False,
        }
    ).decode()
    info = parse_handler(handler(["d", "td51xbgxwbt5116r"], ["k", "5300"], content=content))
    assert info is not None
    assert (info.kinds, info.name, info.encryption_supported, info.node) == (
        (5300,),
        "You might have missed",
        False,
        "",
    )
    assert "t̶w̶i̶t̶t̶e̶r̶" in info.about


def test_the_appendix_example_without_a_d_tag():
    content = '{"name": "Translating DVM", "about": "I\'m a DVM specialized in translating Bitcoin content."}'
    info = parse_handler(handler(["k", "5005"], ["t", "bitcoin"], content=content))
    assert info is not None
    assert (info.d, info.kinds, info.name) == ("", (5005,), "Translating DVM")


# --- lenient content ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content", ["", "   \n", "not json", "{", "[1, 2]", '["name"]', "null", '"Dali"', "42", "true"]
)
def test_content_that_is_not_a_json_object_reads_as_empty(content):
    info = parse_handler(handler(["d", "x"], ["k", "5001"], content=content))
    assert info is not None
    assert info.kinds == (5001,)
    assert (info.name, info.about, info.picture, info.encryption_supported) == ("", "", "", False)


def test_picture_and_image():
    def picture(body: dict[str, object]) -> str:
        info = parse_handler(handler(["k", "5001"], content=orjson.dumps(body).decode()))
        assert info is not None
        return info.picture

    assert picture({"image": "https://i"}) == "https://i"
    assert picture({"picture": "https://p"}) == "https://p"
    assert picture({"picture": "https://p", "image": "https://i"}) == "https://p"
    assert picture({"picture": "", "image": "https://i"}) == "https://i"
    assert picture({"picture": 5}) == ""


@pytest.mark.parametrize("value", ["true", 1, "yes", None, [True]])
def test_encryption_supported_only_when_true(value):
    content = orjson.dumps({"encryptionSupported": value}).decode()
    info = parse_handler(handler(["k", "5001"], content=content))
    assert info is not None and info.encryption_supported is False


def test_fields_of_the_wrong_type_read_as_empty():
    content = orjson.dumps(
        {"name": 7, "about": ["x"], "timmy": {"node": 1, "price_msat": "1000"}}
    ).decode()
    info = parse_handler(handler(["k", "5001"], content=content))
    assert info is not None
    assert (info.name, info.about, info.node, info.price_msat) == ("", "", "", None)


@pytest.mark.parametrize("extension", ["node", [NODE], None, 3])
def test_timmy_extension_that_is_not_an_object_is_ignored(extension):
    content = orjson.dumps({"name": "x", "timmy": extension}).decode()
    info = parse_handler(handler(["k", "5001"], content=content))
    assert info is not None and info.node == "" and info.price_msat is None


@pytest.mark.parametrize(
    ("price", "read"), [(0, 0), (1500, 1500), (-1, None), (True, None), (1.5, None), ("5", None)]
)
def test_prices_are_non_negative_integers(price, read):
    content = orjson.dumps(
        {"timmy": {"node": NODE, "price_msat": price, "price_per_kb_msat": price}}
    ).decode()
    info = parse_handler(handler(["k", "5001"], content=content))
    assert info is not None
    assert (info.price_msat, info.price_per_kb_msat) == (read, read)


# --- kinds -------------------------------------------------------------------------------


def test_kinds_outside_the_job_request_range_are_ignored():
    info = parse_handler(
        handler(
            ["d", "x"],
            ["k", "1"],
            ["k", "4999"],
            ["k", "6000"],
            ["k", "7000"],
            ["k", "31990"],
            ["k", "5100"],
            ["k", "-5001"],
            ["k", "5001.0"],
            ["k", " 5002"],
            ["k", "abc"],
            ["k", ""],
            ["k"],
        )
    )
    assert info is not None and info.kinds == (5100,)


def test_kinds_are_sorted_without_repeats():
    info = parse_handler(handler(["k", "5999"], ["k", "5000"], ["k", "5001"], ["k", "5000"]))
    assert info is not None and info.kinds == (5000, 5001, 5999)


@pytest.mark.parametrize(
    "tags",
    [
        [],
        [["d", "x"]],
        [["d", "x"], ["k", "1"], ["k", "6001"], ["k", "nope"]],
        [["d", "x"], ["t", "5001"], ["K", "5001"]],
    ],
)
def test_no_job_kind_means_no_handler(tags):
    content = '{"name": "not a DVM"}'
    assert parse_handler(handler(*tags, content=content)) is None


@pytest.mark.parametrize("kind", [0, 1, 31989, 31991, 5001, 7000])
def test_other_event_kinds_are_not_handlers(kind):
    assert parse_handler(handler(["d", "x"], ["k", "5001"], kind=kind)) is None


def test_k_tag_in_superscript_digits_is_ignored():
    assert parse_handler(handler(["k", "²"], ["k", "5001"])) is not None


# --- relays -------------------------------------------------------------------------------


def test_relays_come_from_every_relays_tag():
    info = parse_handler(
        handler(["k", "5001"], ["relays", "wss://a"], ["relays", "wss://b", "wss://c"])
    )
    assert info is not None and info.relays == ("wss://a", "wss://b", "wss://c")
