"""Blossom authorization (BUD-11): the server's checks of a kind 24242 token."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from nips import blossom
from nips.blossom import (
    KIND,
    AuthRefused,
    BadSignature,
    CreatedInFuture,
    Expired,
    MalformedAuth,
    MissingExpiration,
    WrongBlob,
    WrongKind,
    WrongServer,
    WrongVerb,
    check_authorization,
)
from nips.nip01 import Signer

NOW = 1_700_000_000
ALICE = Signer(bytes(31) + b"\x01")
BLOB = hashlib.sha256(b"hello blossom").hexdigest()
OTHER = hashlib.sha256(b"something else").hexdigest()


def token(
    verb: str = "upload",
    *,
    kind: int = KIND,
    created_at: int = NOW - 5,
    expiration: str | None = str(NOW + 600),
    extra: list[list[str]] | None = None,
    x: list[str] | None = None,
) -> str:
    """An ``Authorization`` header as blossom clients send it: unpadded base64url."""
    tags = [["t", verb]]
    if expiration is not None:
        tags.append(["expiration", expiration])
    tags += [["x", h] for h in ([BLOB] if x is None else x)]
    tags += extra or []
    raw = ALICE.sign(kind, "Upload Blob", tags, created_at=created_at).raw.encode()
    return "Nostr " + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def refusal(header: str | None, verb: str = "upload", **kwargs: object) -> AuthRefused:
    args: dict[str, object] = {"verb": verb, "now": NOW, "sha256": BLOB, **kwargs}
    with pytest.raises(AuthRefused) as caught:
        check_authorization(header, **args)  # type: ignore[arg-type]
    return caught.value


def test_a_valid_token_names_its_signer_verb_and_blobs() -> None:
    auth = check_authorization(token(), verb="upload", now=NOW, sha256=BLOB)
    assert auth.pubkey == ALICE.pubkey
    assert auth.verb == "upload"
    assert auth.blobs == {BLOB}


def test_standard_padded_base64_is_read_too() -> None:
    raw = ALICE.sign(KIND, "", [["t", "get"], ["expiration", str(NOW + 60)]], created_at=NOW).raw
    header = "Nostr " + base64.b64encode(raw.encode()).decode()
    assert check_authorization(header, verb="get", now=NOW).pubkey == ALICE.pubkey


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "Nostr",
        "Nostr !!!not-base64!!!",
        "Nostr " + base64.b64encode(b"{not json").decode(),
    ],
)
def test_a_missing_or_unreadable_header_is_malformed(header: str | None) -> None:
    assert isinstance(refusal(header), MalformedAuth)


def test_an_event_whose_id_does_not_match_is_malformed() -> None:
    event = orjson.loads(base64.urlsafe_b64decode(token()[6:] + "=="))
    event["content"] = "tampered"
    error = refusal("Nostr " + base64.b64encode(orjson.dumps(event)).decode())
    assert isinstance(error, MalformedAuth)
    assert "id does not match" in str(error)


def test_a_bad_signature_is_refused() -> None:
    event = orjson.loads(base64.urlsafe_b64decode(token()[6:] + "=="))
    event["sig"] = ("0" if event["sig"][0] != "0" else "1") + event["sig"][1:]
    error = refusal("Nostr " + base64.b64encode(orjson.dumps(event)).decode())
    assert isinstance(error, BadSignature)


def test_the_kind_must_be_24242() -> None:
    error = refusal(token(kind=27235))
    assert isinstance(error, WrongKind)
    assert "24242" in str(error)


def test_created_at_must_be_in_the_past_give_or_take_the_skew() -> None:
    assert check_authorization(token(created_at=NOW + 60), verb="upload", now=NOW, sha256=BLOB)
    assert isinstance(refusal(token(created_at=NOW + 61)), CreatedInFuture)


def test_the_expiration_tag_is_required_and_must_be_a_timestamp() -> None:
    assert isinstance(refusal(token(expiration=None)), MissingExpiration)
    assert isinstance(refusal(token(expiration="soon")), MissingExpiration)
    assert isinstance(refusal(token(expiration="-5")), MissingExpiration)
    assert isinstance(
        refusal(token(expiration="\u0661\u0662")), MissingExpiration
    )  # not ASCII digits


def test_an_expired_token_is_refused() -> None:
    assert isinstance(refusal(token(expiration=str(NOW))), Expired)
    assert isinstance(refusal(token(expiration=str(NOW - 3600))), Expired)


def test_the_t_tag_must_be_the_endpoints_verb() -> None:
    error = refusal(token("delete"), verb="upload")
    assert isinstance(error, WrongVerb)
    assert "'delete'" in str(error) and "'upload'" in str(error)
    raw = ALICE.sign(KIND, "", [["expiration", str(NOW + 60)], ["x", BLOB]], created_at=NOW).raw
    assert isinstance(refusal("Nostr " + base64.b64encode(raw.encode()).decode()), WrongVerb)


def test_x_tags_must_cover_the_blob() -> None:
    assert isinstance(refusal(token(x=[OTHER])), WrongBlob)
    # Any one of several x tags will do (BUD-11 "Tag scoping").
    assert check_authorization(token(x=[OTHER, BLOB]), verb="upload", now=NOW, sha256=BLOB)


def test_upload_and_delete_need_an_x_tag_get_does_not() -> None:
    for verb in ("upload", "delete"):
        assert isinstance(refusal(token(verb, x=[]), verb=verb), WrongBlob)
    assert check_authorization(token("get", x=[]), verb="get", now=NOW, sha256=BLOB)
    assert isinstance(refusal(token("get", x=[OTHER]), verb="get"), WrongBlob)


def test_an_upload_whose_hash_is_unknown_is_checked_again_once_hashed() -> None:
    auth = check_authorization(token(), verb="upload", now=NOW)  # no X-SHA-256 header
    auth.check_blob(BLOB)
    with pytest.raises(WrongBlob):
        auth.check_blob(OTHER)
    # Without any x tag it is refused before the body is read.
    assert isinstance(refusal(token(x=[]), sha256=None), WrongBlob)


def test_list_tokens_need_no_blob() -> None:
    auth = check_authorization(token("list", x=[]), verb="list", now=NOW)
    assert auth.pubkey == ALICE.pubkey


def test_server_tags_must_name_this_server() -> None:
    scoped = token(extra=[["server", "cdn.example.com"], ["server", "node.example"]])
    assert check_authorization(scoped, verb="upload", now=NOW, sha256=BLOB, domain="node.example")
    assert check_authorization(scoped, verb="upload", now=NOW, sha256=BLOB, domain="NODE.example")
    error = refusal(scoped, domain="evil.example")
    assert isinstance(error, WrongServer)
    # Unscoped tokens are valid anywhere.
    assert check_authorization(token(), verb="upload", now=NOW, sha256=BLOB, domain="evil.example")


def test_every_refusal_reads_as_a_short_reason() -> None:
    for error in (refusal(None), refusal(token(kind=1)), refusal(token(x=[OTHER]))):
        assert isinstance(error, blossom.AuthRefused)
        assert 0 < len(str(error)) < 200
