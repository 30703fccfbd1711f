"""Tests for nips/nip57.py: Lightning zap requests and zap receipts.

Spec: shared/specs/nips/57.md, Appendix D (server checks of a zap request),
Appendix E (the receipt) and Appendix F (client checks of a receipt). Requests and
receipts are really signed; invoices are real BOLT11 strings signed by a node key.
"""

from __future__ import annotations

import hashlib
import os

import bolt11
import orjson
import pytest

from nips.nip01 import Event, Signer, parse_event
from nips.nip57 import (
    ZAP_RECEIPT_KIND,
    ZAP_REQUEST_KIND,
    ZapError,
    ZapRequest,
    description_hash,
    is_event_coordinate,
    receipt_tags,
    validate_zap_receipt,
    validate_zap_request,
)

SENDER = Signer(os.urandom(32))
RECIPIENT = Signer(os.urandom(32))
SERVER = Signer(os.urandom(32))  # the LNURL server's nostrPubkey
NODE_KEY = os.urandom(32).hex()  # the Lightning node that signs invoices
ZAPPED = "9ae37aa68f48645127299e9453eb5d908a0cbb6058ff340d528ed4d37c8994fb"
LNURL = "lnurl1dp68gurn8ghj7um5v93kketj9ehx2amn9uh8wetvdskkkmn0wahz7mrww4excup0dajx2mrv92x9xp"
RELAYS = ["relays", "wss://relay.example.com", "wss://other.example.com"]
PREIMAGE = bytes(range(32)).hex()
PAID_AT = 1_700_000_100


def request_tags(amount: int | None = 21_000, **extra: str) -> list[list[str]]:
    tags = [RELAYS, ["lnurl", LNURL], ["p", RECIPIENT.pubkey], ["e", ZAPPED], ["k", "1"]]
    if amount is not None:
        tags.insert(1, ["amount", str(amount)])
    return tags + [[name, value] for name, value in extra.items()]


def sign_request(
    tags: list[list[str]] | None = None,
    *,
    signer: Signer = SENDER,
    kind: int = ZAP_REQUEST_KIND,
    content: str = "Zap!",
) -> str:
    """A zap request as the URL-decoded JSON text of the ``nostr`` query parameter."""
    tags = request_tags() if tags is None else tags
    return signer.sign(kind, content, tags, created_at=1_700_000_000).raw


def make_invoice(
    description: str,
    *,
    amount_msat: int | None = 21_000,
    preimage: str = PREIMAGE,
    plain_description: bool = False,
) -> str:
    tags = bolt11.Tags()
    tags.add(bolt11.TagChar.payment_hash, hashlib.sha256(bytes.fromhex(preimage)).hexdigest())
    tags.add(bolt11.TagChar.payment_secret, os.urandom(32).hex())
    if plain_description:
        tags.add(bolt11.TagChar.description, description)
    else:
        tags.add(bolt11.TagChar.description_hash, description_hash(description).hex())
    amount = None if amount_msat is None else bolt11.MilliSatoshi(amount_msat)
    invoice = bolt11.Bolt11(currency="bc", date=1_700_000_010, tags=tags, amount_msat=amount)
    return bolt11.encode(invoice, NODE_KEY)


def sign_receipt(
    tags: list[list[str]], *, signer: Signer = SERVER, kind: int = ZAP_RECEIPT_KIND
) -> Event:
    return signer.sign(kind, "", tags, created_at=PAID_AT)


def paid_receipt(request_json: str | None = None, *, amount_msat: int = 21_000) -> Event:
    """What an honest LNURL server publishes once the invoice for ``request_json`` is paid."""
    request_json = sign_request() if request_json is None else request_json
    request = validate_zap_request(request_json, amount_msat=amount_msat)
    invoice = make_invoice(request_json, amount_msat=amount_msat)
    return sign_receipt(receipt_tags(request, bolt11=invoice, preimage=PREIMAGE))


def replace_tag(event: Event, name: str, *values: str) -> list[list[str]]:
    """The event's tags with every ``name`` tag dropped and ``[name, *values]`` appended."""
    kept = [tag for tag in event.tags if tag[0] != name]
    return [*kept, [name, *values]] if values else kept


def validate(receipt: Event, **kwargs: str) -> object:
    return validate_zap_receipt(receipt, nostr_pubkey=SERVER.pubkey, **kwargs)


# --- zap requests: the valid path -------------------------------------------------------


def test_valid_zap_request_from_query_text():
    text = sign_request()
    request = validate_zap_request(text, amount_msat=21_000, recipient=RECIPIENT.pubkey)
    assert request.recipient == RECIPIENT.pubkey
    assert request.sender == SENDER.pubkey
    assert request.event_id == ZAPPED
    assert request.address is None
    assert request.receipt_author is None
    assert request.amount_msat == 21_000
    assert request.relays == ("wss://relay.example.com", "wss://other.example.com")
    assert request.lnurl == LNURL
    assert request.target_kind == 1
    assert request.content == "Zap!"
    assert request.description == text


def test_valid_zap_request_given_as_an_event():
    event = parse_event(orjson.loads(sign_request()))
    request = validate_zap_request(event, amount_msat=21_000)
    assert request.event == event
    assert request.description == event.raw


def test_amount_tag_is_optional():
    request = validate_zap_request(sign_request(request_tags(amount=None)), amount_msat=5_000)
    assert request.amount_msat is None


def test_zap_of_a_profile_has_no_e_tag():
    tags = [RELAYS, ["p", RECIPIENT.pubkey]]
    request = validate_zap_request(sign_request(tags), amount_msat=1_000)
    assert request.event_id is None
    assert request.lnurl is None


def test_zap_of_an_addressable_event():
    address = f"30023:{RECIPIENT.pubkey}:my-article"
    request = validate_zap_request(sign_request(request_tags(a=address)), amount_msat=21_000)
    assert request.address == address


def test_p_upper_tag_equal_to_the_servers_key_is_accepted():
    text = sign_request(request_tags(P=SERVER.pubkey))
    request = validate_zap_request(text, amount_msat=21_000, receipt_pubkey=SERVER.pubkey)
    assert request.receipt_author == SERVER.pubkey


def test_description_is_the_exact_text_received_not_a_reserialisation():
    compact = sign_request(content="café ⚡")
    spaced = orjson.dumps(orjson.loads(compact), option=orjson.OPT_INDENT_2).decode()
    request = validate_zap_request(spaced, amount_msat=21_000)
    assert request.description == spaced
    assert description_hash(spaced) == hashlib.sha256(spaced.encode()).digest()
    assert description_hash(spaced) != description_hash(compact)


def test_relays_from_several_relays_tags_are_merged_once_each():
    tags = [*request_tags(), ["relays", "wss://relay.example.com", "wss://third.example.com"]]
    request = validate_zap_request(sign_request(tags), amount_msat=21_000)
    assert request.relays == (
        "wss://relay.example.com",
        "wss://other.example.com",
        "wss://third.example.com",
    )


# --- zap requests: each Appendix D rule --------------------------------------------------


def tamper(text: str, **fields: object) -> str:
    obj = orjson.loads(text)
    obj.update(fields)
    return orjson.dumps(obj).decode()


def test_bad_signature_is_refused():
    text = sign_request()
    sig = orjson.loads(text)["sig"]
    forged = tamper(text, sig=("0" if sig[0] != "0" else "1") + sig[1:])
    with pytest.raises(ZapError, match="signature does not verify"):
        validate_zap_request(forged, amount_msat=21_000)


def test_signature_by_another_key_is_refused():
    other = Signer(os.urandom(32))
    forged = tamper(sign_request(), sig=orjson.loads(sign_request(signer=other))["sig"])
    with pytest.raises(ZapError, match="signature does not verify"):
        validate_zap_request(forged, amount_msat=21_000)


def test_altered_content_is_refused():
    with pytest.raises(ZapError, match="id does not match"):
        validate_zap_request(tamper(sign_request(), content="Zap!!"), amount_msat=21_000)


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '{"kind": 9734}'])
def test_garbage_is_refused(text):
    with pytest.raises(ZapError, match=r"zap request is not (a )?valid"):
        validate_zap_request(text, amount_msat=21_000)


def test_wrong_kind_is_refused():
    with pytest.raises(ZapError, match="must be kind 9734"):
        validate_zap_request(sign_request(kind=1), amount_msat=21_000)


def test_no_tags_is_refused():
    with pytest.raises(ZapError, match="no tags"):
        validate_zap_request(sign_request([]), amount_msat=21_000)


def test_no_p_tag_is_refused():
    tags = [tag for tag in request_tags() if tag[0] != "p"]
    with pytest.raises(ZapError, match="exactly one p tag"):
        validate_zap_request(sign_request(tags), amount_msat=21_000)


def test_two_p_tags_are_refused():
    tags = [*request_tags(), ["p", SENDER.pubkey]]
    with pytest.raises(ZapError, match="exactly one p tag"):
        validate_zap_request(sign_request(tags), amount_msat=21_000)


def test_a_valueless_second_p_tag_still_counts():
    with pytest.raises(ZapError, match="exactly one p tag"):
        validate_zap_request(sign_request([*request_tags(), ["p"]]), amount_msat=21_000)


def test_p_tag_that_is_not_a_pubkey_is_refused():
    tags = [RELAYS, ["p", "npub1notahexkey"]]
    with pytest.raises(ZapError, match="p tag is not a hex pubkey"):
        validate_zap_request(sign_request(tags), amount_msat=21_000)


def test_two_e_tags_are_refused():
    tags = [*request_tags(), ["e", "ab" * 32]]
    with pytest.raises(ZapError, match="at most one e tag"):
        validate_zap_request(sign_request(tags), amount_msat=21_000)


def test_e_tag_that_is_not_an_event_id_is_refused():
    tags = [RELAYS, ["p", RECIPIENT.pubkey], ["e", "note1xyz"]]
    with pytest.raises(ZapError, match="e tag is not a hex event id"):
        validate_zap_request(sign_request(tags), amount_msat=21_000)


def test_two_upper_p_tags_are_refused():
    tags = [*request_tags(P=SERVER.pubkey), ["P", SERVER.pubkey]]
    with pytest.raises(ZapError, match="at most one P tag"):
        validate_zap_request(sign_request(tags), amount_msat=21_000)


def test_upper_p_tag_other_than_the_servers_key_is_refused():
    text = sign_request(request_tags(P=SENDER.pubkey))
    with pytest.raises(ZapError, match="P tag is not this server's nostrPubkey"):
        validate_zap_request(text, amount_msat=21_000, receipt_pubkey=SERVER.pubkey)


def test_missing_relays_tag_is_refused():
    tags = [tag for tag in request_tags() if tag[0] != "relays"]
    with pytest.raises(ZapError, match="relays tag"):
        validate_zap_request(sign_request(tags), amount_msat=21_000)


def test_empty_relays_tag_is_refused():
    tags = [["relays"], ["p", RECIPIENT.pubkey]]
    with pytest.raises(ZapError, match="relays tag"):
        validate_zap_request(sign_request(tags), amount_msat=21_000)


def test_amount_tag_other_than_the_query_amount_is_refused():
    with pytest.raises(ZapError, match=r"amount tag \(21000\) does not match .*\(1000\)"):
        validate_zap_request(sign_request(), amount_msat=1_000)


FULL_WIDTH_21000 = "\uff12\uff11\uff10\uff10\uff10"


@pytest.mark.parametrize("amount", ["21 sats", "-21000", "2.1e4", "", FULL_WIDTH_21000])
def test_amount_tag_that_is_not_millisats_is_refused(amount):
    tags = [RELAYS, ["p", RECIPIENT.pubkey], ["amount", amount]]
    with pytest.raises(ZapError, match="amount tag is not a whole number"):
        validate_zap_request(sign_request(tags), amount_msat=21_000)


def test_two_amount_tags_are_refused():
    tags = [*request_tags(), ["amount", "1"]]
    with pytest.raises(ZapError, match="at most one amount tag"):
        validate_zap_request(sign_request(tags), amount_msat=21_000)


@pytest.mark.parametrize(
    "address",
    [
        "30023",
        "30023:abc:slug",
        f"1:{'a' * 64}:",  # a regular kind has no coordinate
        f"10002:{'a' * 64}:slug",  # replaceable kinds have an empty d
        f"030023:{'a' * 64}:slug",
        f"99999:{'a' * 64}:slug",
        f"30023:{'A' * 64}:slug",
        f"30023:{'a' * 64}",
    ],
)
def test_a_tag_that_is_not_an_event_coordinate_is_refused(address):
    with pytest.raises(ZapError, match="not a valid event coordinate"):
        validate_zap_request(sign_request(request_tags(a=address)), amount_msat=21_000)


def test_event_coordinates():
    assert is_event_coordinate(f"30023:{'a' * 64}:")
    assert is_event_coordinate(f"30023:{'a' * 64}:with:colons")
    assert is_event_coordinate(f"10002:{'a' * 64}:")
    assert is_event_coordinate(f"0:{'a' * 64}:")


def test_request_for_another_recipient_is_refused():
    with pytest.raises(ZapError, match="not this endpoint's pubkey"):
        validate_zap_request(sign_request(), amount_msat=21_000, recipient=SENDER.pubkey)


def test_zap_error_reason_fits_an_lnurl_error_reply():
    with pytest.raises(ZapError) as caught:
        validate_zap_request(sign_request(kind=1), amount_msat=21_000)
    assert isinstance(caught.value, ValueError)
    assert {"status": "ERROR", "reason": str(caught.value)} == {
        "status": "ERROR",
        "reason": "zap request must be kind 9734",
    }


# --- receipt tags (Appendix E) ----------------------------------------------------------


def test_receipt_tags_copy_the_request():
    address = f"30023:{RECIPIENT.pubkey}:slug"
    text = sign_request(request_tags(a=address))
    request = validate_zap_request(text, amount_msat=21_000)
    assert receipt_tags(request, bolt11="lnbc...", preimage=PREIMAGE) == [
        ["p", RECIPIENT.pubkey],
        ["e", ZAPPED],
        ["a", address],
        ["k", "1"],
        ["P", SENDER.pubkey],
        ["bolt11", "lnbc..."],
        ["description", text],
        ["preimage", PREIMAGE],
    ]


def test_receipt_tags_of_a_profile_zap_without_preimage():
    text = sign_request([RELAYS, ["p", RECIPIENT.pubkey]])
    request = validate_zap_request(text, amount_msat=1_000)
    assert receipt_tags(request, bolt11="lnbc...", preimage=None) == [
        ["p", RECIPIENT.pubkey],
        ["P", SENDER.pubkey],
        ["bolt11", "lnbc..."],
        ["description", text],
    ]


# --- zap receipts: the valid path -------------------------------------------------------


def test_valid_receipt_round_trip():
    text = sign_request()
    receipt_event = paid_receipt(text)
    assert receipt_event.content == ""
    receipt = validate_zap_receipt(
        receipt_event,
        nostr_pubkey=SERVER.pubkey,
        expected_recipient=RECIPIENT.pubkey,
        lnurl=LNURL.upper(),
    )
    assert receipt.event == receipt_event
    assert receipt.recipient == RECIPIENT.pubkey
    assert receipt.sender == SENDER.pubkey
    assert receipt.amount_msat == 21_000
    assert receipt.zapped_event == ZAPPED
    assert receipt.preimage == PREIMAGE
    assert receipt.paid_at == PAID_AT
    assert receipt.bolt11 == receipt_event.first_tag_value("bolt11")
    assert isinstance(receipt.request, ZapRequest)
    assert receipt.request.description == text
    assert receipt.request.content == "Zap!"


def test_valid_receipt_without_amount_tag_takes_the_invoice_amount():
    receipt = validate(paid_receipt(sign_request(request_tags(amount=None)), amount_msat=7_000))
    assert receipt.amount_msat == 7_000


def test_valid_receipt_without_preimage():
    text = sign_request()
    request = validate_zap_request(text, amount_msat=21_000)
    tags = receipt_tags(request, bolt11=make_invoice(text), preimage=None)
    assert validate(sign_receipt(tags)).preimage is None


def test_valid_receipt_without_upper_p_tag():
    # Receipts from servers that predate the P tag are still valid.
    receipt = paid_receipt()
    assert validate(sign_receipt(replace_tag(receipt, "P"))).sender == SENDER.pubkey


def test_valid_receipt_of_a_request_naming_the_server_in_p_upper():
    assert validate(paid_receipt(sign_request(request_tags(P=SERVER.pubkey))))


def test_valid_receipt_for_an_addressable_event():
    address = f"30023:{RECIPIENT.pubkey}:slug"
    receipt = validate(paid_receipt(sign_request(request_tags(a=address))))
    assert receipt.request.address == address


# --- zap receipts: forgeries -------------------------------------------------------------


def test_receipt_signed_by_another_key_is_refused():
    impostor = Signer(os.urandom(32))
    forged = sign_receipt(paid_receipt().tags, signer=impostor)
    with pytest.raises(ZapError, match="not signed by the recipient's LNURL nostrPubkey"):
        validate(forged)


def test_receipt_with_a_bad_signature_is_refused():
    receipt = paid_receipt()
    obj = receipt.to_dict()
    obj["sig"] = obj["sig"][::-1]
    with pytest.raises(ZapError, match="zap receipt signature does not verify"):
        validate(parse_event(obj))


def test_receipt_of_the_wrong_kind_is_refused():
    with pytest.raises(ZapError, match="must be kind 9735"):
        validate(sign_receipt(paid_receipt().tags, kind=1))


def test_receipt_p_other_than_the_requests_p_is_refused():
    forged = sign_receipt(replace_tag(paid_receipt(), "p", SENDER.pubkey))
    with pytest.raises(ZapError, match="p tag does not match"):
        validate(forged)


def test_receipt_with_two_p_tags_is_refused():
    receipt = paid_receipt()
    forged = sign_receipt([*receipt.tags, ["p", SENDER.pubkey]])
    with pytest.raises(ZapError, match="p tag does not match"):
        validate(forged)


def test_receipt_for_another_expected_recipient_is_refused():
    with pytest.raises(ZapError, match="different recipient"):
        validate(paid_receipt(), expected_recipient=SENDER.pubkey)


def test_invoice_amount_other_than_the_amount_tag_is_refused():
    text = sign_request()  # amount tag 21000 msat
    request = validate_zap_request(text, amount_msat=21_000)
    cheap = make_invoice(text, amount_msat=1_000)
    forged = sign_receipt(receipt_tags(request, bolt11=cheap, preimage=PREIMAGE))
    with pytest.raises(ZapError, match=r"invoice amount \(1000\) does not match .*\(21000\)"):
        validate(forged)


def test_invoice_without_amount_is_refused():
    text = sign_request(request_tags(amount=None))
    request = validate_zap_request(text, amount_msat=21_000)
    tags = receipt_tags(request, bolt11=make_invoice(text, amount_msat=None), preimage=None)
    with pytest.raises(ZapError, match="invoice has no amount"):
        validate(sign_receipt(tags))


def test_altered_description_is_refused():
    receipt = paid_receipt()
    other = sign_request(request_tags(amount=210_000_000))
    forged = sign_receipt(replace_tag(receipt, "description", other))
    with pytest.raises(ZapError, match="does not hash to the invoice's description hash"):
        validate(forged)


def test_whitespace_change_to_description_is_refused():
    receipt = paid_receipt()
    description = receipt.first_tag_value("description")
    assert description is not None
    forged = sign_receipt(replace_tag(receipt, "description", description + " "))
    with pytest.raises(ZapError, match="does not hash to the invoice's description hash"):
        validate(forged)


def test_description_with_a_bad_signature_is_refused():
    # The invoice commits to the forged request, so only its own signature gives it away.
    text = sign_request()
    forged_request = tamper(text, sig=orjson.loads(sign_request(signer=RECIPIENT))["sig"])
    tags = [
        ["p", RECIPIENT.pubkey],
        ["e", ZAPPED],
        ["P", SENDER.pubkey],
        ["bolt11", make_invoice(forged_request)],
        ["description", forged_request],
    ]
    with pytest.raises(ZapError, match="description: zap request signature does not verify"):
        validate(sign_receipt(tags))


def test_description_that_is_not_a_zap_request_is_refused():
    note = SENDER.sign(1, "hello", [["p", RECIPIENT.pubkey]], created_at=1).raw
    tags = [["p", RECIPIENT.pubkey], ["bolt11", make_invoice(note)], ["description", note]]
    with pytest.raises(ZapError, match="description: zap request must be kind 9734"):
        validate(sign_receipt(tags))


def test_description_request_breaking_appendix_d_is_refused():
    text = sign_request([*request_tags(), ["p", SENDER.pubkey]])
    tags = [["p", RECIPIENT.pubkey], ["bolt11", make_invoice(text)], ["description", text]]
    with pytest.raises(ZapError, match="description: zap request must have exactly one p tag"):
        validate(sign_receipt(tags))


def test_request_p_upper_other_than_the_receipt_signer_is_refused():
    with pytest.raises(ZapError, match="P tag is not the zap receipt's pubkey"):
        validate(paid_receipt(sign_request(request_tags(P=SENDER.pubkey))))


def test_unparsable_bolt11_is_refused():
    forged = sign_receipt(replace_tag(paid_receipt(), "bolt11", "lnbc1notaninvoice"))
    with pytest.raises(ZapError, match="bolt11 tag is not a valid invoice"):
        validate(forged)


def test_bolt11_with_a_broken_checksum_is_refused():
    receipt = paid_receipt()
    invoice = receipt.first_tag_value("bolt11")
    assert invoice is not None
    flipped = invoice[:-1] + ("q" if invoice[-1] != "q" else "p")
    with pytest.raises(ZapError, match="bolt11 tag is not a valid invoice"):
        validate(sign_receipt(replace_tag(receipt, "bolt11", flipped)))


def test_missing_bolt11_is_refused():
    with pytest.raises(ZapError, match="no bolt11 tag"):
        validate(sign_receipt(replace_tag(paid_receipt(), "bolt11")))


def test_missing_description_is_refused():
    with pytest.raises(ZapError, match="no description tag"):
        validate(sign_receipt(replace_tag(paid_receipt(), "description")))


def test_invoice_with_a_plain_description_is_refused():
    text = sign_request()
    request = validate_zap_request(text, amount_msat=21_000)
    invoice = make_invoice("coffee", plain_description=True)
    tags = receipt_tags(request, bolt11=invoice, preimage=None)
    with pytest.raises(ZapError, match="invoice has no description hash"):
        validate(sign_receipt(tags))


def test_preimage_not_matching_the_payment_hash_is_refused():
    forged = sign_receipt(replace_tag(paid_receipt(), "preimage", os.urandom(32).hex()))
    with pytest.raises(ZapError, match="preimage does not hash to the invoice's payment hash"):
        validate(forged)


def test_preimage_that_is_not_hex_is_refused():
    forged = sign_receipt(replace_tag(paid_receipt(), "preimage", "not-hex"))
    with pytest.raises(ZapError, match="preimage tag is not hex"):
        validate(forged)


def test_receipt_e_other_than_the_requests_e_is_refused():
    forged = sign_receipt(replace_tag(paid_receipt(), "e", "cd" * 32))
    with pytest.raises(ZapError, match="e tag does not match"):
        validate(forged)


def test_receipt_dropping_the_requests_e_is_refused():
    with pytest.raises(ZapError, match="e tag does not match"):
        validate(sign_receipt(replace_tag(paid_receipt(), "e")))


def test_receipt_adding_an_e_the_request_lacks_is_refused():
    receipt = paid_receipt(sign_request([RELAYS, ["p", RECIPIENT.pubkey]]), amount_msat=1_000)
    with pytest.raises(ZapError, match="e tag does not match"):
        validate(sign_receipt([*receipt.tags, ["e", ZAPPED]]))


def test_receipt_a_other_than_the_requests_a_is_refused():
    receipt = paid_receipt(sign_request(request_tags(a=f"30023:{RECIPIENT.pubkey}:one")))
    forged = sign_receipt(replace_tag(receipt, "a", f"30023:{RECIPIENT.pubkey}:two"))
    with pytest.raises(ZapError, match="a tag does not match"):
        validate(forged)


def test_receipt_upper_p_other_than_the_requests_pubkey_is_refused():
    forged = sign_receipt(replace_tag(paid_receipt(), "P", RECIPIENT.pubkey))
    with pytest.raises(ZapError, match="P tag is not the zap request's pubkey"):
        validate(forged)


def test_request_lnurl_other_than_the_recipients_is_refused():
    with pytest.raises(ZapError, match="lnurl tag is not the recipient's lnurl"):
        validate(paid_receipt(), lnurl="lnurl1someoneelse")


# --- the spec's own example -------------------------------------------------------------

SPEC_BOLT11 = "lnbc10u1p3unwfusp5t9r3yymhpfqculx78u027lxspgxcr2n2987mx2j55nnfs95nxnzqpp5jmrh92pfld78spqs78v9euf2385t83uvpwk9ldrlvf6ch7tpascqhp5zvkrmemgth3tufcvflmzjzfvjt023nazlhljz2n9hattj4f8jq8qxqyjw5qcqpjrzjqtc4fc44feggv7065fqe5m4ytjarg3repr5j9el35xhmtfexc42yczarjuqqfzqqqqqqqqlgqqqqqqgq9q9qxpqysgq079nkq507a5tw7xgttmj4u990j7wfggtrasah5gd4ywfr2pjcn29383tphp4t48gquelz9z78p4cq7ml3nrrphw5w6eckhjwmhezhnqpy6gyf0"
SPEC_DESCRIPTION = (
    '{"pubkey":"97c70a44366a6535c145b333f973ea86dfdc2d7a99da618c40c64705ad98e322","content":"",'
    '"id":"d9cc14d50fcb8c27539aacf776882942c1a11ea4472f8cdec1dea82fab66279d","created_at":1674164539,'
    '"sig":"77127f636577e9029276be060332ea565deaf89ff215a494ccff16ae3f757065e2bc59b2e8c113dd407917a010b3abd36c8d7ad84c0e3ab7dab3a0b0caa9835d",'
    '"kind":9734,"tags":[["e","3624762a1274dd9636e0c552b53086d70bc88c165bc4dc0f9e836a1eaf86c3b8"],'
    '["p","32e1827635450ebb3c5a7d12c1f8e7b2b514439ac10a67eef3d9fd9c5c68e245"],'
    '["relays","wss://relay.damus.io","wss://nostr-relay.wlvs.space","wss://nostr.fmt.wiz.biz",'
    '"wss://relay.nostr.bg","wss://nostr.oxtr.dev","wss://nostr.v0l.io","wss://brb.io",'
    '"wss://nostr.bitcoiner.social","ws://monad.jb55.com:8080","wss://relay.snort.social"]]}'
)
SPEC_PREIMAGE = "5d006d2cf1e73c7148e7519a4c68adc81642ce0e25a432b2434c99f97344c15f"


def test_spec_example_receipt_is_refused_for_its_description_hash():
    # The Appendix E example's invoice (1000 sat, and its preimage matches) commits to
    # a description other than the one in its description tag, so it cannot validate.
    tags = [
        ["p", "32e1827635450ebb3c5a7d12c1f8e7b2b514439ac10a67eef3d9fd9c5c68e245"],
        ["bolt11", SPEC_BOLT11],
        ["description", SPEC_DESCRIPTION],
        ["preimage", SPEC_PREIMAGE],
    ]
    assert bolt11.decode(SPEC_BOLT11).amount_msat == 1_000_000
    assert hashlib.sha256(bytes.fromhex(SPEC_PREIMAGE)).hexdigest() == (
        bolt11.decode(SPEC_BOLT11).payment_hash
    )
    with pytest.raises(ZapError, match="does not hash to the invoice's description hash"):
        validate(sign_receipt(tags))
