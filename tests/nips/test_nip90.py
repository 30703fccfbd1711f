"""Tests for nips/nip90.py: job requests, results and feedback (shared/specs/nips/90.md)."""

from __future__ import annotations

import orjson
import pytest

from nips.nip01 import parse_event
from nips.nip90 import (
    MAX_INPUTS,
    MAX_PARAMS,
    BadRequest,
    JobInput,
    Status,
    feedback_status,
    feedback_tags,
    parse_private_tags,
    parse_request,
    request_of,
    result_kind,
    result_tags,
)
from tests.helpers import make_event

EVENT_ID = "a" * 64
JOB_ID = "b" * 64
PROVIDER = "04f74530a6ede6b24731b976b8e78fb449ea61f40ff10e3d869a3030c4edc91f"


def request(*tags: list[str], kind: int = 5001, content: str = ""):
    return make_event(kind=kind, tags=tags, content=content)


# --- parse_request: kinds ---------------------------------------------------------


@pytest.mark.parametrize("kind", [5000, 5001, 5999])
def test_request_kinds_are_5000_to_5999(kind):
    job = parse_request(request(kind=kind))
    assert job.kind == kind
    assert job.inputs == () and job.params == () and job.output is None and job.bid_msat is None


@pytest.mark.parametrize("kind", [0, 1, 4999, 6000, 6001, 7000, 31990])
def test_other_kinds_are_not_requests(kind):
    with pytest.raises(BadRequest, match=f"kind {kind} is not a job request kind"):
        parse_request(request(kind=kind))


def test_request_exposes_its_event_id_kind_and_customer():
    event = request(["i", "hello", "text"])
    job = parse_request(event)
    assert (job.id, job.kind, job.customer, job.event) == (event.id, 5001, event.pubkey, event)
    assert job.encrypted is False


# --- parse_request: i tags ---------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        ["i", "what is the capital of France? ", "text"],
        ["i", "https://example.com/a.mp3", "url"],
        ["i", EVENT_ID, "event", "wss://relay.example"],
        ["i", JOB_ID, "job", "wss://relay.example", "source"],
        ["i", "hello", "text", "", "prompt"],
        ["i", "", "text"],
    ],
)
def test_input_tags_round_trip_through_job_input(tag):
    (job_input,) = parse_request(request(tag)).inputs
    assert job_input.to_tag() == tag


def test_input_with_an_empty_relay_and_no_marker_drops_the_relay():
    (job_input,) = parse_request(request(["i", "hello", "text", ""])).inputs
    assert job_input == JobInput("hello", "text")
    assert job_input.to_tag() == ["i", "hello", "text"]


def test_input_tag_ignores_values_after_the_marker():
    (job_input,) = parse_request(request(["i", "x", "text", "wss://r", "m", "extra"])).inputs
    assert job_input == JobInput("x", "text", "wss://r", "m")


def test_inputs_keep_their_order():
    job = parse_request(
        request(["i", "one", "text"], ["i", "https://two", "url"], ["i", "one", "text"])
    )
    assert [i.data for i in job.inputs] == ["one", "https://two", "one"]


@pytest.mark.parametrize("tag", [["i"], ["i", "hello"]])
def test_short_input_tag_is_an_error(tag):
    with pytest.raises(BadRequest, match=r"malformed i tag .*expected \[i, data, type\]"):
        parse_request(request(tag))


@pytest.mark.parametrize("input_type", ["TEXT", "Text", "", "image", "nostr", "text "])
def test_unknown_input_type_is_an_error(input_type):
    with pytest.raises(BadRequest, match="is not one of text, url, event, job") as raised:
        parse_request(request(["i", "hello", input_type]))
    assert repr(input_type) in str(raised.value)


@pytest.mark.parametrize("input_type", ["event", "job"])
@pytest.mark.parametrize(
    "data",
    [
        "A" * 64,
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "",
        "note1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
    ],
)
def test_event_and_job_inputs_must_be_hex_event_ids(input_type, data):
    with pytest.raises(BadRequest, match=f"{input_type} input must be a hex event id"):
        parse_request(request(["i", data, input_type]))


def test_url_and_text_inputs_are_not_checked_for_shape():
    job = parse_request(request(["i", "not a url", "url"], ["i", "A" * 64, "text"]))
    assert [(i.data, i.type) for i in job.inputs] == [("not a url", "url"), ("A" * 64, "text")]


def test_error_shows_a_long_tag_cut_short():
    with pytest.raises(BadRequest) as raised:
        parse_request(request(["i", "x" * 500, "picture"]))
    message = str(raised.value)
    assert '["i","xxx' in message and "..." in message
    assert len(message) < 200


def test_job_inputs_are_the_ids_of_chained_jobs():
    job = parse_request(
        request(
            ["i", "hello", "text"],
            ["i", JOB_ID, "job"],
            ["i", EVENT_ID, "event"],
            ["i", EVENT_ID, "job"],
        )
    )
    assert job.job_inputs() == [JOB_ID, EVENT_ID]
    assert parse_request(request(["i", "hello", "text"])).job_inputs() == []


# --- parse_request: params -----------------------------------------------------------


def test_params_keep_order_and_repeats():
    job = parse_request(
        request(["param", "lang", "es"], ["param", "model", "LLaMA-2"], ["param", "lang", "fr"])
    )
    assert job.params == (("lang", "es"), ("model", "LLaMA-2"), ("lang", "fr"))
    assert job.param("lang") == "es"
    assert job.param_values("lang") == ["es", "fr"]
    assert job.param_values("model") == ["LLaMA-2"]


def test_param_args_keep_every_value_of_a_tag():
    # 5000's range is ["param", "range", start, end]: one param, two values.
    job = parse_request(request(["param", "range", "30", "60"], ["param", "alignment", "word"], kind=5000))
    assert job.param("range") == "30"
    assert job.param_args("range") == ("30", "60")
    assert job.param_args("alignment") == ("word",)
    assert job.param_args("language") is None


def test_missing_param_gives_the_default():
    job = parse_request(request(["param", "lang", "es"]))
    assert job.param("max_tokens") is None
    assert job.param("max_tokens", "512") == "512"
    assert job.param_values("max_tokens") == []


def test_param_with_an_empty_value_is_a_value():
    job = parse_request(request(["param", "lang", ""]))
    assert job.param("lang", "en") == ""


def test_param_ignores_values_after_the_third():
    assert parse_request(request(["param", "k", "v", "extra"])).params == (("k", "v"),)


@pytest.mark.parametrize("tag", [["param"], ["param", "lang"]])
def test_param_without_a_value_is_an_error(tag):
    with pytest.raises(BadRequest, match=r"malformed param tag .*expected \[param, name, value\]"):
        parse_request(request(tag))


# --- parse_request: bid, output, p, relays, t --------------------------------------------


@pytest.mark.parametrize(
    ("text", "msat"), [("0", 0), ("1000", 1000), ("007", 7), ("9" * 18, 10**18 - 1)]
)
def test_bid_is_millisats(text, msat):
    assert parse_request(request(["bid", text])).bid_msat == msat


@pytest.mark.parametrize(
    "text", ["", "-1", "1.5", "1e3", "0x10", " 100", "100 ", "+5", "1_000", "9" * 19, "ten"]
)
def test_bid_that_is_not_an_amount_is_an_error(text):
    with pytest.raises(BadRequest, match="is not an amount in millisats") as raised:
        parse_request(request(["bid", text]))
    assert str(raised.value).startswith(f"bid {text!r}")


def test_bid_in_superscript_digits_is_a_bad_request():
    with pytest.raises(BadRequest):
        parse_request(request(["bid", "²"]))


@pytest.mark.parametrize("text", ["\u0661\u0660\u0660", "\uff11\uff10\uff10"])
def test_bid_in_non_ascii_digits_is_a_bad_request(text):
    with pytest.raises(BadRequest):
        parse_request(request(["bid", text]))


def test_last_bid_and_output_win():
    job = parse_request(
        request(["bid", "10"], ["output", "text/plain"], ["bid", "20"], ["output", "text/markdown"])
    )
    assert (job.bid_msat, job.output) == (20, "text/markdown")


def test_providers_are_hex_keys_without_repeats():
    other = "c" * 64
    job = parse_request(request(["p", PROVIDER], ["p", other], ["p", PROVIDER]))
    assert job.providers == (PROVIDER, other)


@pytest.mark.parametrize(
    "value",
    [
        PROVIDER.upper(),
        PROVIDER[:-1],
        "",
        "npub1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
    ],
)
def test_p_tag_that_is_not_a_hex_key_is_an_error(value):
    with pytest.raises(BadRequest, match=r"malformed p tag .*expected a hex public key"):
        parse_request(request(["p", value]))


def test_relays_come_from_every_relays_tag_without_blanks_or_repeats():
    job = parse_request(
        request(
            ["relays", "wss://a.example", "", "wss://b.example"],
            ["relays"],
            ["relays", "wss://a.example", "wss://c.example"],
        )
    )
    assert job.relays == ("wss://a.example", "wss://b.example", "wss://c.example")


def test_hashtags():
    assert parse_request(request(["t", "bitcoin"], ["t", "nostr"])).hashtags == ("bitcoin", "nostr")


def test_unknown_tags_are_ignored():
    job = parse_request(request(["alt", "a job"], ["expiration", "1"], ["x"], ["i", "hi", "text"]))
    assert [i.data for i in job.inputs] == ["hi"]


def test_the_spec_example_request_parses():
    job = parse_request(
        request(
            ["i", "https://example.com/talk.mp3", "url", "", "audio"],
            ["output", "text/plain"],
            ["relays", "wss://relay.example"],
            ["bid", "5000"],
            ["t", "bitcoin"],
        )
    )
    assert job.inputs == (JobInput("https://example.com/talk.mp3", "url", "", "audio"),)
    assert (job.output, job.relays, job.bid_msat, job.hashtags) == (
        "text/plain",
        ("wss://relay.example",),
        5000,
        ("bitcoin",),
    )


# --- parse_request: limits ----------------------------------------------------------


def test_at_most_max_inputs():
    tags = [["i", str(n), "text"] for n in range(MAX_INPUTS)]
    assert len(parse_request(request(*tags)).inputs) == MAX_INPUTS
    with pytest.raises(
        BadRequest, match=f"too many inputs: {MAX_INPUTS + 1} \\(at most {MAX_INPUTS}\\)"
    ):
        parse_request(request(*tags, ["i", "one more", "text"]))


def test_at_most_max_params():
    tags = [["param", f"k{n}", "v"] for n in range(MAX_PARAMS)]
    assert len(parse_request(request(*tags)).params) == MAX_PARAMS
    with pytest.raises(
        BadRequest, match=f"too many params: {MAX_PARAMS + 1} \\(at most {MAX_PARAMS}\\)"
    ):
        parse_request(request(*tags, ["param", "one", "more"]))


def test_limits_count_private_tags_too():
    half = MAX_INPUTS // 2 + 1
    event = request(*[["i", str(n), "text"] for n in range(half)], ["encrypted"], content="x?iv=y")
    with pytest.raises(BadRequest, match="too many inputs"):
        parse_request(event, [["i", str(n), "text"] for n in range(half)])


# --- parse_request: encrypted requests -------------------------------------------------


def test_encrypted_request_needs_its_private_tags():
    event = request(["p", PROVIDER], ["encrypted"], content="BE2Y4xvS6HIY7Toz?iv=abc")
    with pytest.raises(BadRequest, match="encrypted request: params could not be decrypted"):
        parse_request(event)


def test_encrypted_request_merges_its_private_tags():
    event = request(["p", PROVIDER], ["encrypted"], content="BE2Y4xvS6HIY7Toz?iv=abc")
    private = [
        ["i", "what is the capital of France? ", "text"],
        ["param", "model", "LLaMA-2"],
        ["param", "max_tokens", "512"],
        ["bid", "2000"],
        ["output", "text/plain"],
    ]
    job = parse_request(event, private)
    assert job.encrypted is True
    assert job.providers == (PROVIDER,)
    assert job.inputs == (JobInput("what is the capital of France? ", "text"),)
    assert job.params == (("model", "LLaMA-2"), ("max_tokens", "512"))
    assert (job.bid_msat, job.output) == (2000, "text/plain")


def test_encrypted_request_with_no_private_tags_is_empty_not_an_error():
    job = parse_request(request(["p", PROVIDER], ["encrypted"], content="x?iv=y"), [])
    assert job.encrypted is True and job.inputs == ()


def test_public_params_come_before_private_ones():
    event = request(["param", "lang", "es"], ["encrypted"], content="x?iv=y")
    job = parse_request(event, [["param", "lang", "fr"]])
    assert job.param("lang") == "es"
    assert job.param_values("lang") == ["es", "fr"]


def test_malformed_private_tag_is_an_error():
    event = request(["encrypted"], content="x?iv=y")
    with pytest.raises(BadRequest, match="input type 'image'"):
        parse_request(event, [["i", "x", "image"]])


def test_encrypted_marker_with_extra_values_still_marks():
    assert parse_request(request(["encrypted", "nip04"], content="x?iv=y"), []).encrypted


# --- parse_private_tags -----------------------------------------------------------------


def test_private_tags_are_a_json_list_of_tags():
    plaintext = '[["i","what is the capital of France? ","text"],["param","model","LLaMA-2"]]'
    assert parse_private_tags(plaintext) == [
        ["i", "what is the capital of France? ", "text"],
        ["param", "model", "LLaMA-2"],
    ]
    assert parse_private_tags("[]") == []


@pytest.mark.parametrize(
    "plaintext",
    [
        "",
        "not json",
        "[",
        "{}",
        '{"i": "x"}',
        "null",
        '"tags"',
        "42",
        "[1]",
        '["i", "x", "text"]',
        "[[]]",
        '[["i", 1, "text"]]',
        '[["i", null]]',
        '[["i", "x", "text"], "param"]',
        '["\ud800"]',
    ],
)
def test_private_tags_that_are_not_a_list_of_tags_are_an_error(plaintext):
    with pytest.raises(BadRequest, match="encrypted params are not a JSON list of tags"):
        parse_private_tags(plaintext)


# --- feedback_tags: NIP-90 "Job feedback" ------------------------------------------------


def test_feedback_without_info():
    job = parse_request(request(["i", "hi", "text"]))
    assert feedback_tags(job, Status.PROCESSING) == [
        ["status", "processing"],
        ["e", job.id],
        ["p", job.customer],
    ]


def test_feedback_with_info_and_relay_hint():
    job = parse_request(request())
    assert feedback_tags(job, Status.ERROR, "input too long", relay_hint="wss://relay.example") == [
        ["status", "error", "input too long"],
        ["e", job.id, "wss://relay.example"],
        ["p", job.customer],
    ]


def test_feedback_amount_with_bolt11():
    job = parse_request(request())
    assert feedback_tags(
        job, Status.PAYMENT_REQUIRED, amount_msat=21000, bolt11="lnbc210n1xyz"
    ) == [
        ["status", "payment-required"],
        ["amount", "21000", "lnbc210n1xyz"],
        ["e", job.id],
        ["p", job.customer],
    ]


@pytest.mark.parametrize("amount", [0, 21000])
def test_feedback_amount_without_bolt11(amount):
    job = parse_request(request())
    tags = feedback_tags(job, Status.PAYMENT_REQUIRED, amount_msat=amount)
    assert tags[1] == ["amount", str(amount)]


def test_feedback_to_an_encrypted_request_is_marked_encrypted():
    job = parse_request(request(["p", PROVIDER], ["encrypted"], content="x?iv=y"), [])
    assert feedback_tags(job, Status.PARTIAL, extra=[["x", "1"]]) == [
        ["status", "partial"],
        ["e", job.id],
        ["p", job.customer],
        ["encrypted"],
        ["x", "1"],
    ]


def test_feedback_statuses_are_the_specs():
    assert {status.value for status in Status} == {
        "payment-required",
        "processing",
        "error",
        "success",
        "partial",
    }


def test_feedback_event_reads_back():
    job = parse_request(request())
    event = make_event(
        kind=7000, tags=feedback_tags(job, Status.ERROR, "no GPU", relay_hint="wss://r")
    )
    assert feedback_status(event) == ("error", "no GPU")
    assert request_of(event) == job.id


# --- result_tags: NIP-90 "Job result" and "Encrypted Output" ---------------------------------


def test_result_tags_carry_the_request_json_e_inputs_and_p():
    event = request(
        ["i", "hello", "text"],
        ["i", EVENT_ID, "event", "wss://r", "source"],
        ["param", "lang", "es"],
    )
    job = parse_request(event)
    tags = result_tags(job)
    assert tags == [
        ["request", event.raw],
        ["e", event.id],
        ["i", "hello", "text"],
        ["i", EVENT_ID, "event", "wss://r", "source"],
        ["p", event.pubkey],
    ]
    embedded = orjson.loads(tags[0][1])
    assert embedded == event.to_dict()
    assert parse_event(embedded).id == event.id


def test_result_tags_with_amount_bolt11_and_relay_hint():
    job = parse_request(request())
    assert result_tags(
        job, amount_msat=5000, bolt11="lnbc50n1xyz", relay_hint="wss://relay.example"
    ) == [
        ["request", job.event.raw],
        ["e", job.id, "wss://relay.example"],
        ["p", job.customer],
        ["amount", "5000", "lnbc50n1xyz"],
    ]
    assert result_tags(job, amount_msat=5000)[-1] == ["amount", "5000"]


def test_result_of_an_encrypted_request_has_no_inputs_and_is_marked():
    event = request(["p", PROVIDER], ["encrypted"], content="x?iv=y")
    job = parse_request(event, [["i", "a secret question", "text"]])
    tags = result_tags(job, amount_msat=1)
    assert tags == [
        ["request", event.raw],
        ["e", event.id],
        ["p", event.pubkey],
        ["amount", "1"],
        ["encrypted"],
    ]
    assert "a secret question" not in orjson.dumps(tags).decode()


@pytest.mark.parametrize(("request_kind", "result"), [(5000, 6000), (5001, 6001), (5999, 6999)])
def test_result_kind_is_1000_above(request_kind, result):
    assert result_kind(request_kind) == result


# --- feedback_status and request_of -------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([["status", "error", "boom"]], ("error", "boom")),
        ([["status", "processing"]], ("processing", "")),
        ([["status", "success", ""]], ("success", "")),
        ([["status"], ["status", "partial"]], ("partial", "")),
        ([["status", "processing"], ["status", "error", "later"]], ("processing", "")),
        ([["e", EVENT_ID]], ("", "")),
        ([], ("", "")),
    ],
)
def test_feedback_status(tags, expected):
    assert feedback_status(make_event(kind=7000, tags=tags)) == expected


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([["e", EVENT_ID], ["e", JOB_ID]], EVENT_ID),
        ([["e"], ["e", JOB_ID, "wss://r"]], JOB_ID),
        ([["p", PROVIDER]], None),
    ],
)
def test_request_of_is_the_first_e_tag(tags, expected):
    assert request_of(make_event(kind=6001, tags=tags)) == expected
