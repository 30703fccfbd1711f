"""Tests for dvm/client.py: the customer's requests and the audit of a job's answers."""

from __future__ import annotations

import os

import nostr_sdk
import orjson
import pytest

from dvm.client import JobSpec, audit_job, build_request, guess_input_type
from dvm.encryption import decrypt
from nips.auction import auction_terms
from nips.nip01 import Event, Signer, verify_signature
from nips.nip90 import Status, feedback_tags, parse_private_tags, parse_request, result_tags

NOW = 1_700_000_000
CUSTOMER = Signer(os.urandom(32))
PROVIDER = Signer(os.urandom(32))


# --- guess_input_type ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("a" * 64, "event"),
        ("0123456789abcdef" * 4, "event"),
        ("A" * 64, "text"),
        ("a" * 63, "text"),
        ("https://example.com/talk.mp3", "url"),
        ("http://example.com", "url"),
        ("HTTPS://example.com", "text"),
        ("wss://relay.example", "text"),
        ("note1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", "text"),
        ("what is the capital of France?", "text"),
        ("", "text"),
    ],
)
def test_guess_input_type(value, kind):
    assert guess_input_type(value) == kind


# --- build_request ----------------------------------------------------------------------


def test_plain_request_carries_its_tags_in_the_clear():
    spec = JobSpec(
        kind=5001,
        inputs=[("hello", "text"), ("https://example.com/a", "url")],
        params=[("lang", "es"), ("lang", "fr")],
        bid_msat=5000,
        output="text/plain",
    )
    event = build_request(spec, CUSTOMER, NOW)
    assert (event.kind, event.pubkey, event.created_at, event.content) == (
        5001,
        CUSTOMER.pubkey,
        NOW,
        "",
    )
    assert event.tags == [
        ["i", "hello", "text"],
        ["i", "https://example.com/a", "url"],
        ["param", "lang", "es"],
        ["param", "lang", "fr"],
        ["output", "text/plain"],
        ["bid", "5000"],
    ]
    assert verify_signature(event)
    job = parse_request(event)
    assert (job.param_values("lang"), job.bid_msat, job.output) == (
        ["es", "fr"],
        5000,
        "text/plain",
    )


def test_request_to_one_provider_in_the_clear():
    event = build_request(JobSpec(5001, [("hello", "text")], to=PROVIDER.pubkey), CUSTOMER, NOW)
    assert event.tags == [["i", "hello", "text"], ["p", PROVIDER.pubkey]]
    assert parse_request(event).providers == (PROVIDER.pubkey,)


def test_request_with_no_inputs():
    event = build_request(JobSpec(5970, []), CUSTOMER, NOW)
    assert event.tags == [] and event.content == ""


def test_auction_request_opens_its_windows_relative_to_now():
    spec = JobSpec(5001, [("hello", "text")], bid_msat=5000, auction_seconds=(10, 5))
    event = build_request(spec, CUSTOMER, NOW)
    assert event.tags == [
        ["i", "hello", "text"],
        ["param", "auction", "vickrey"],
        ["param", "commit_until", str(NOW + 10)],
        ["param", "reveal_until", str(NOW + 15)],
        ["bid", "5000"],
    ]
    terms = auction_terms(parse_request(event))
    assert terms is not None
    assert (terms.commit_until, terms.reveal_until, terms.reserve_msat, terms.customer) == (
        NOW + 10,
        NOW + 15,
        5000,
        CUSTOMER.pubkey,
    )


def test_encrypted_request_hides_everything_but_the_provider():
    spec = JobSpec(
        5001,
        [("what is the capital of France? ", "text")],
        params=[("model", "LLaMA-2")],
        to=PROVIDER.pubkey,
        encrypt=True,
        output="text/plain",
    )
    event = build_request(spec, CUSTOMER, NOW)
    assert event.tags == [["p", PROVIDER.pubkey], ["encrypted"]]
    assert "France" not in event.content and "?iv=" in event.content
    plaintext = nostr_sdk.nip04_decrypt(
        nostr_sdk.SecretKey.parse(PROVIDER.secret_hex()),
        nostr_sdk.PublicKey.parse(CUSTOMER.pubkey),
        event.content,
    )
    private = [
        ["i", "what is the capital of France? ", "text"],
        ["param", "model", "LLaMA-2"],
        ["output", "text/plain"],
    ]
    assert orjson.loads(plaintext) == private
    # ... and the provider reads it back the way the engine does.
    text, scheme = decrypt(PROVIDER, CUSTOMER.pubkey, event.content)
    job = parse_request(event, parse_private_tags(text))
    assert scheme == "nip04"
    assert job.encrypted and job.inputs[0].data == "what is the capital of France? "
    assert job.param("model") == "LLaMA-2" and job.output == "text/plain"


def test_encrypted_request_keeps_its_bid_public():
    spec = JobSpec(5001, [("hi", "text")], bid_msat=100, to=PROVIDER.pubkey, encrypt=True)
    assert build_request(spec, CUSTOMER, NOW).tags == [
        ["bid", "100"],
        ["p", PROVIDER.pubkey],
        ["encrypted"],
    ]


@pytest.mark.parametrize("to", [None, ""])
def test_encrypt_without_a_provider_is_refused(to):
    with pytest.raises(ValueError, match="--encrypt needs --to"):
        build_request(JobSpec(5001, [("hi", "text")], to=to, encrypt=True), CUSTOMER, NOW)


def test_encrypted_auction_is_refused_when_built():
    spec = JobSpec(5001, [("hi", "text")], to=PROVIDER.pubkey, encrypt=True, auction_seconds=(5, 5))
    with pytest.raises(ValueError):
        build_request(spec, CUSTOMER, NOW)


# --- audit_job ----------------------------------------------------------------------------


def _request() -> Event:
    return build_request(JobSpec(5001, [("hello", "text")]), CUSTOMER, NOW)


def _result(request: Event, *, kind: int = 6001, tags: list[list[str]] | None = None) -> Event:
    tags = result_tags(parse_request(request)) if tags is None else tags
    return PROVIDER.sign(kind, "a summary", tags, created_at=NOW + 2)


def _feedback(request: Event, status: Status = Status.PROCESSING) -> Event:
    return PROVIDER.sign(
        7000, "", feedback_tags(parse_request(request), status), created_at=NOW + 1
    )


def test_audit_of_a_correct_chain_is_valid():
    request = _request()
    result = _result(request)
    other = CUSTOMER.sign(1, "a note about it", [["e", request.id]], created_at=NOW + 3)
    verdict = audit_job(request, [_feedback(request), result, other])
    assert verdict == {
        "request": request.id,
        "valid": True,
        "winner": None,
        "price_msat": None,
        "problems": [],
        "notes": [],
        "results": [{"id": result.id, "agent": PROVIDER.pubkey}],
    }


def test_audit_of_a_job_with_no_answers_is_valid_and_empty():
    verdict = audit_job(_request(), [])
    assert verdict["valid"] and verdict["results"] == []


def test_audit_flags_a_result_of_the_wrong_kind():
    request = _request()
    wrong = _result(request, kind=6002)
    verdict = audit_job(request, [wrong])
    assert not verdict["valid"]
    assert verdict["problems"] == [f"{wrong.id}: result kind 6002 does not answer kind 5001"]


def test_audit_flags_a_result_that_does_not_tag_the_customer():
    request = _request()
    someone = Signer(os.urandom(32)).pubkey
    tags = [t for t in result_tags(parse_request(request)) if t[0] != "p"] + [["p", someone]]
    untagged = _result(request, tags=tags)
    verdict = audit_job(request, [untagged])
    assert verdict["problems"] == [f"{untagged.id}: does not tag the customer"]


def test_audit_flags_a_result_whose_request_tag_holds_another_request():
    request, other = (
        _request(),
        build_request(JobSpec(5001, [("other", "text")]), CUSTOMER, NOW + 1),
    )
    tags = [["request", other.raw], ["e", request.id], ["p", CUSTOMER.pubkey]]
    swapped = _result(request, tags=tags)
    verdict = audit_job(request, [swapped])
    assert verdict["problems"] == [f"{swapped.id}: its request tag does not hold the request"]


def test_audit_flags_feedback_about_another_request():
    request, other = (
        _request(),
        build_request(JobSpec(5001, [("other", "text")]), CUSTOMER, NOW + 1),
    )
    misplaced = PROVIDER.sign(
        7000,
        "",
        [["status", "processing"], ["e", other.id], ["e", request.id], ["p", CUSTOMER.pubkey]],
        created_at=NOW,
    )
    verdict = audit_job(request, [misplaced])
    assert verdict["problems"] == [f"{misplaced.id}: first e tag is not the request"]


def test_audit_lists_every_problem_of_every_answer():
    request = _request()
    bad = _result(request, kind=6002, tags=[["e", request.id]])
    good = _result(request)
    verdict = audit_job(request, [bad, good])
    assert verdict["problems"] == [
        f"{bad.id}: does not tag the customer",
        f"{bad.id}: result kind 6002 does not answer kind 5001",
    ]
    assert [r["id"] for r in verdict["results"]] == [bad.id, good.id]


def test_audit_of_an_auction_without_an_award_is_invalid():
    request = build_request(JobSpec(5001, [("hi", "text")], auction_seconds=(5, 5)), CUSTOMER, NOW)
    verdict = audit_job(request, [])
    assert not verdict["valid"] and verdict["problems"] == ["no award"]


@pytest.mark.parametrize("embedded", ["not json", "[1]", "null"])
def test_audit_reports_a_request_tag_that_is_not_a_json_object(embedded):
    request = _request()
    garbage = _result(
        request, tags=[["request", embedded], ["e", request.id], ["p", CUSTOMER.pubkey]]
    )
    verdict = audit_job(request, [garbage])
    assert not verdict["valid"] and len(verdict["problems"]) == 1


def test_audit_of_an_encrypted_job_checks_its_chain():
    spec = JobSpec(5001, [("secret", "text")], to=PROVIDER.pubkey, encrypt=True)
    request = build_request(spec, CUSTOMER, NOW)
    job = parse_request(request, [["i", "secret", "text"]])
    result = PROVIDER.sign(6001, "ciphertext?iv=x", result_tags(job), created_at=NOW + 2)
    assert audit_job(request, [result])["valid"]
