"""relay/protocol.py without sockets: a message in, actions out."""

from __future__ import annotations

import json
import time

import coincurve
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.policies import default_policies
from relay.protocol import Count, Publish, Refuse, RelayConnection, Send, Subscribe, Unsubscribe
from relay.settings import AuthRules, RelayLimits, RelaySettings
from tests.helpers import make_event

NOW = time.time()


def connection(**overrides: object) -> RelayConnection:
    limits = overrides.pop("limits", RelayLimits())
    auth = overrides.pop("auth", AuthRules())
    s = RelaySettings(port=7777, limits=limits, auth=auth, **overrides)  # type: ignore[arg-type]
    return RelayConnection(
        1, settings=s, policies=default_policies(s), ip="127.0.0.1", challenge="chal"
    )


def sent(actions: list) -> list:
    """What the client receives: Send as is, Refuse as the OK false it becomes."""
    out = []
    for a in actions:
        if isinstance(a, Send):
            out.append(orjson.loads(a.message))
        elif isinstance(a, Refuse):
            out.append(["OK", a.event_id, False, a.message])
    return out


def msg(*parts: object) -> str:
    return json.dumps(list(parts), ensure_ascii=False)


def auth_event(
    key: coincurve.PrivateKey, challenge: str = "chal", url: str = "ws://127.0.0.1:7777", **kw
):
    return make_event(key, kind=22242, tags=[["relay", url], ["challenge", challenge]], **kw)


# --- EVENT -------------------------------------------------------------------------


def test_valid_event_becomes_publish():
    event = make_event(content="hello")
    (action,) = connection().receive(msg("EVENT", event.to_dict()), NOW)
    assert action == Publish(event)


def test_wrong_id_gets_ok_false_invalid():
    event = make_event().to_dict()
    event["content"] = "tampered"
    assert sent(connection().receive(msg("EVENT", event), NOW)) == [
        ["OK", event["id"], False, "invalid: event id does not match the hash of its content"]
    ]


def test_event_with_wrong_types_names_the_field():
    event = make_event().to_dict()
    event["kind"] = "1"
    [[verb, eid, accepted, reason]] = sent(connection().receive(msg("EVENT", event), NOW))
    assert (verb, eid, accepted) == ("OK", event["id"], False)
    assert reason.startswith("invalid: kind")


def test_event_without_readable_id_gets_notice():
    assert sent(connection().receive(msg("EVENT", {"kind": 1}), NOW))[0][0] == "NOTICE"
    assert sent(connection().receive(msg("EVENT"), NOW))[0][0] == "NOTICE"


def test_auth_kind_sent_as_event_is_refused():
    event = auth_event(coincurve.PrivateKey())
    [[_, _, accepted, reason]] = sent(connection().receive(msg("EVENT", event.to_dict()), NOW))
    assert not accepted and reason.startswith("invalid:")


@pytest.mark.parametrize(
    ("change", "prefix"),
    [
        ({"created_at": int(NOW) + 3600}, "invalid: created_at is more than"),
        ({"created_at": int(NOW) - 10**9}, "invalid: created_at is more than"),
        ({"tags": [["t", str(i)] for i in range(5)]}, "invalid: event has 5 tags"),
        ({"content": "x" * 11}, "invalid: content has 11 characters"),
        ({"tags": [["expiration", str(int(NOW) - 1)]]}, "invalid: event has expired"),
    ],
)
def test_write_limits(change: dict, prefix: str):
    limits = RelayLimits(max_event_tags=4, max_content_length=10)
    event = make_event(**change)
    [[_, _, accepted, reason]] = sent(
        connection(limits=limits).receive(msg("EVENT", event.to_dict()), NOW)
    )
    assert not accepted
    assert reason.startswith(prefix)


def test_rate_limit_per_ip():
    conn = connection(limits=RelayLimits(events_per_minute_per_ip=3))
    answers = [conn.receive(msg("EVENT", make_event().to_dict()), NOW) for _ in range(5)]
    assert [type(a[0]) for a in answers] == [Publish, Publish, Publish, Refuse, Refuse]
    assert sent(answers[3])[0][3].startswith("rate-limited:")


def test_rate_limit_per_pubkey_runs_after_the_signature():
    conn = connection(
        limits=RelayLimits(events_per_minute_per_pubkey=1, events_per_minute_per_ip=0)
    )
    key = coincurve.PrivateKey()
    first, second = make_event(key), make_event(key, content="2")
    assert conn.check_author(first, NOW) is None
    rejection = conn.check_author(second, NOW)
    assert rejection is not None and rejection.prefix == "rate-limited"


def test_oversized_event_is_refused_by_id():
    conn = connection(limits=RelayLimits(max_message_length=1000))
    event = make_event(content="x" * 2000)
    [[verb, eid, accepted, reason]] = sent(conn.receive(msg("EVENT", event.to_dict()), NOW))
    assert (verb, eid, accepted) == ("OK", event.id, False)
    assert "max_message_length" in reason


def test_oversized_other_message_gets_notice():
    conn = connection(limits=RelayLimits(max_message_length=1000))
    [[verb, reason]] = sent(conn.receive(msg("REQ", "s", {"#t": ["x" * 2000]}), NOW))
    assert verb == "NOTICE" and reason.startswith("invalid:")


def test_multibyte_characters_count_as_bytes():
    conn = connection(limits=RelayLimits(max_message_length=1000))
    event = make_event(content="€" * 300)  # 300 characters, 900 bytes, plus the envelope
    assert sent(conn.receive(msg("EVENT", event.to_dict()), NOW))[0][2] is False


# --- NIP-70 and NIP-42 --------------------------------------------------------------


def test_protected_event_needs_auth_and_sends_challenge_first():
    event = make_event(tags=[["-"]])
    answers = sent(connection().receive(msg("EVENT", event.to_dict()), NOW))
    assert answers[0] == ["AUTH", "chal"]
    assert answers[1][2] is False and answers[1][3].startswith("auth-required:")


def test_protected_event_from_its_authenticated_author_is_published():
    key = coincurve.PrivateKey()
    conn = connection()
    assert sent(conn.receive(msg("AUTH", auth_event(key).to_dict()), NOW))[0][2] is True
    event = make_event(key, tags=[["-"]])
    assert conn.receive(msg("EVENT", event.to_dict()), NOW) == [Publish(event)]


def test_protected_event_from_another_author_is_restricted():
    conn = connection()
    conn.receive(msg("AUTH", auth_event(coincurve.PrivateKey()).to_dict()), NOW)
    event = make_event(tags=[["-"]])
    assert sent(conn.receive(msg("EVENT", event.to_dict()), NOW))[0][3].startswith("restricted:")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"challenge": "other"}, "challenge"),
        ({"url": "ws://evil.example:7777"}, "relay tag"),
        ({"created_at": int(NOW) - 3600}, "created_at"),
    ],
)
def test_bad_auth_is_refused(kwargs: dict, reason: str):
    conn = connection()
    event = auth_event(coincurve.PrivateKey(), **kwargs)
    [[verb, eid, accepted, message]] = sent(conn.receive(msg("AUTH", event.to_dict()), NOW))
    assert (verb, eid, accepted) == ("OK", event.id, False)
    assert reason in message
    assert not conn.session.authed


def test_auth_with_wss_and_trailing_slash_matches():
    conn = connection(public_url="wss://relay.example.com")
    event = auth_event(coincurve.PrivateKey(), url="wss://Relay.Example.com/")
    assert sent(conn.receive(msg("AUTH", event.to_dict()), NOW))[0][2] is True


def test_auth_with_bad_signature_is_refused():
    event = auth_event(coincurve.PrivateKey()).to_dict()
    event["sig"] = "11" * 64
    assert sent(connection().receive(msg("AUTH", event), NOW))[0][2] is False


def test_auth_required_for_writes_greets_with_challenge():
    conn = connection(auth=AuthRules(auth_required_for_writes=True))
    assert sent(conn.greeting()) == [["AUTH", "chal"]]
    answer = sent(conn.receive(msg("EVENT", make_event().to_dict()), NOW))
    assert answer[-1][3].startswith("auth-required:")


def test_write_whitelist():
    allowed = coincurve.PrivateKey()
    pub = allowed.public_key_xonly.format().hex()
    conn = connection(auth=AuthRules(write_pubkeys=frozenset({pub})))
    assert isinstance(conn.receive(msg("EVENT", make_event(allowed).to_dict()), NOW)[0], Publish)
    stranger = sent(conn.receive(msg("EVENT", make_event().to_dict()), NOW))
    assert stranger[-1][3].startswith("auth-required:")
    conn.receive(msg("AUTH", auth_event(coincurve.PrivateKey()).to_dict()), NOW)
    assert sent(conn.receive(msg("EVENT", make_event().to_dict()), NOW))[-1][3].startswith(
        "restricted:"
    )


def test_reads_need_auth_when_configured():
    conn = connection(auth=AuthRules(auth_required_for_reads=True))
    conn.greeting()
    assert sent(conn.receive(msg("REQ", "s", {}), NOW)) == [
        ["CLOSED", "s", "auth-required: this relay only serves authenticated users"]
    ]
    conn.receive(msg("AUTH", auth_event(coincurve.PrivateKey()).to_dict()), NOW)
    assert isinstance(conn.receive(msg("REQ", "s", {}), NOW)[0], Subscribe)


def test_asking_for_dms_needs_auth():
    answers = sent(connection().receive(msg("REQ", "dm", {"kinds": [4]}), NOW))
    assert answers[0] == ["AUTH", "chal"]
    assert answers[1][0] == "CLOSED" and answers[1][2].startswith("auth-required:")


def test_private_kinds_reach_only_their_parties():
    alice, bob = coincurve.PrivateKey(), coincurve.PrivateKey()
    bob_pub = bob.public_key_xonly.format().hex()
    conn = connection()
    alice_pub = alice.public_key_xonly.format().hex()
    assert not conn.may_read(4, alice_pub, [bob_pub])
    assert conn.may_read(1, alice_pub, [])
    conn.receive(msg("AUTH", auth_event(bob).to_dict()), NOW)
    assert conn.may_read(4, alice_pub, [bob_pub])
    assert not conn.may_read(4, alice_pub, ["00" * 32])


# --- REQ, CLOSE, COUNT -------------------------------------------------------------


def test_req_parses_all_filters():
    f1 = {"kinds": [1], "#t": ["nostr"], "since": 5, "until": 10, "limit": 3}
    f2 = {"authors": ["ab" * 32]}
    (action,) = connection().receive(msg("REQ", "sub", f1, f2), NOW)
    assert isinstance(action, Subscribe)
    assert action.sub_id == "sub"
    assert [f.to_dict() for f in action.filters] == [f1, f2]


def test_limit_is_clamped_to_max_limit():
    (action,) = connection(limits=RelayLimits(max_limit=10)).receive(
        msg("REQ", "s", {"limit": 10**6}), NOW
    )
    assert action.filters[0].limit == 10


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            ["REQ", "s", {"kinds": ["1"]}],
            ["CLOSED", "s", "invalid: kinds must hold integers between 0 and 65535"],
        ),
        (["REQ", "s", {"bogus": 1}], ["CLOSED", "s", "invalid: unknown filter field 'bogus'"]),
        (
            ["REQ", "s", {"ids": ["ABC"]}],
            ["CLOSED", "s", "invalid: ids must hold 64-character lowercase hex strings"],
        ),
        (["REQ", "s"], ["CLOSED", "s", "invalid: at least one filter is required"]),
        (["REQ", "", {}], ["CLOSED", "", "invalid: subscription id must be 1 to 64 characters"]),
        (["REQ", 7, {}], None),
        (["REQ", "s", {}, {}, {}], ["CLOSED", "s", "invalid: too many filters (max_filters is 2)"]),
        (["COUNT", "c", "not a filter"], ["CLOSED", "c", "invalid: filter must be a JSON object"]),
    ],
)
def test_bad_req_gets_specific_answer(message: list, expected: list | None):
    answers = sent(connection(limits=RelayLimits(max_filters=2)).receive(msg(*message), NOW))
    if expected is None:
        assert answers[0][0] == "NOTICE"
    else:
        assert answers == [expected]


def test_huge_filter_is_refused():
    authors = ["ab" * 32] * 1500  # under max_message_length, over max_filter_values
    [[verb, sub, reason]] = sent(connection().receive(msg("REQ", "s", {"authors": authors}), NOW))
    assert (verb, sub) == ("CLOSED", "s") and "more than 1000 values" in reason


def test_subscription_limit_counts_only_new_ids():
    conn = connection(limits=RelayLimits(max_subscriptions=2))
    for sub in ("a", "b", "a"):
        assert isinstance(conn.receive(msg("REQ", sub, {}), NOW)[0], Subscribe)
    [[verb, sub, reason]] = sent(conn.receive(msg("REQ", "c", {}), NOW))
    assert verb == "CLOSED" and reason.startswith("rate-limited:")
    assert conn.receive(msg("CLOSE", "a"), NOW) == [Unsubscribe("a")]
    assert isinstance(conn.receive(msg("REQ", "c", {}), NOW)[0], Subscribe)


def test_close_of_unknown_subscription_is_silent():
    assert connection().receive(msg("CLOSE", "nope"), NOW) == []


def test_count_becomes_count_action():
    (action,) = connection().receive(msg("COUNT", "c", {"kinds": [1]}), NOW)
    assert isinstance(action, Count) and action.sub_id == "c"


# --- garbage -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "{",
        "null",
        "42",
        '"EVENT"',
        "[]",
        "[1,2]",
        '{"a":1}',
        '["HELLO"]',
        b"\xff\xfe",
        '["CLOSE"]',
        '["AUTH"]',
    ],
)
def test_garbage_gets_a_notice(raw: str | bytes):
    answers = sent(connection().receive(raw, NOW))
    assert len(answers) == 1 and answers[0][0] == "NOTICE"
    assert answers[0][1].startswith("invalid:")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
verbs = st.sampled_from(["EVENT", "REQ", "CLOSE", "COUNT", "AUTH", "NOPE"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        st.tuples(verbs, st.lists(json_values, max_size=4)),
    )
)
def test_random_input_never_raises(data):
    """Whatever arrives, the protocol answers with well-formed messages and never raises."""
    conn = connection()
    raw = msg(data[0], *data[1]) if isinstance(data, tuple) else data
    for action in conn.receive(raw, NOW):
        if isinstance(action, Send):
            reply = orjson.loads(action.message)
            assert reply[0] in {"NOTICE", "OK", "CLOSED", "AUTH"}


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "id": st.text(max_size=70),
            "pubkey": st.text(max_size=70),
            "created_at": json_values,
            "kind": json_values,
            "tags": json_values,
            "content": json_values,
            "sig": st.text(max_size=130),
        }
    )
)
def test_random_events_are_refused_by_id(event):
    answers = sent(connection().receive(msg("EVENT", event), NOW))
    assert len(answers) == 1
    assert answers[0][0] in {"OK", "NOTICE"}
    if answers[0][0] == "OK":
        assert answers[0][2] is False and answers[0][3].startswith("invalid:")
