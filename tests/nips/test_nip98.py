"""NIP-98 HTTP Auth: the server's checks of ``Authorization: Nostr <base64 event>``."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from nips.nip01 import Signer
from nips.nip98 import KIND, Nip98Error, auth_event, auth_header, check_http_auth

NOW = 1_700_000_000
URL = "https://node.example/api/jobs?state=done&limit=5"
ALICE = Signer(bytes(31) + b"\x01")


def encode(obj: object, scheme: str = "Nostr") -> str:
    return f"{scheme} {base64.b64encode(orjson.dumps(obj)).decode()}"


def signed(kind: int = KIND, tags: list[list[str]] | None = None, created_at: int = NOW) -> str:
    tags = [["u", URL], ["method", "GET"]] if tags is None else tags
    return "Nostr " + base64.b64encode(ALICE.sign(kind, "", tags, created_at=created_at).raw.encode()).decode()


def refusal(header: str | None, **overrides: object) -> str:
    args: dict[str, object] = {"url": URL, "method": "GET", "now": NOW, **overrides}
    with pytest.raises(Nip98Error) as caught:
        check_http_auth(header, **args)  # type: ignore[arg-type]
    return str(caught.value)


def test_a_valid_header_names_its_signer() -> None:
    header = auth_header(ALICE, URL, "GET", NOW)
    assert check_http_auth(header, url=URL, method="GET", now=NOW) == ALICE.pubkey
    # Within the window both ways; the method tag is compared case-insensitively.
    assert check_http_auth(header, url=URL, method="get", now=NOW + 60) == ALICE.pubkey
    assert check_http_auth(header, url=URL, method="GET", now=NOW - 60) == ALICE.pubkey


def test_a_body_is_covered_by_its_payload_hash() -> None:
    body = b'{"amount": 21}'
    header = auth_header(ALICE, URL, "POST", NOW, body)
    assert check_http_auth(header, url=URL, method="POST", now=NOW, body=body) == ALICE.pubkey
    event = auth_event(ALICE, URL, "POST", NOW, body)
    assert event.first_tag_value("payload") == hashlib.sha256(body).hexdigest()


def test_unpadded_and_urlsafe_base64_are_read() -> None:
    raw = auth_event(ALICE, URL, "GET", NOW).raw.encode()
    for token in (base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw)):
        assert check_http_auth(f"nostr {token.decode()}", url=URL, method="GET", now=NOW) == ALICE.pubkey


def test_the_url_must_match_exactly_query_included() -> None:
    header = auth_header(ALICE, URL, "GET", NOW)
    assert "u tag does not match" in refusal(header, url="https://node.example/api/jobs?state=done")
    assert "u tag does not match" in refusal(header, url="https://evil.example/api/jobs?state=done&limit=5")
    assert "u tag does not match" in refusal(header, url=URL.replace("https", "http"))


def test_the_method_must_match() -> None:
    assert "method tag does not match" in refusal(auth_header(ALICE, URL, "GET", NOW), method="DELETE")


def test_stale_and_future_events_are_refused() -> None:
    assert "too old" in refusal(auth_header(ALICE, URL, "GET", NOW - 61))
    assert "from the future" in refusal(auth_header(ALICE, URL, "GET", NOW + 61))
    assert "too old" in refusal(auth_header(ALICE, URL, "GET", NOW - 11), window=10)


def test_a_payload_hash_for_another_body_is_refused() -> None:
    header = auth_header(ALICE, URL, "POST", NOW, b"pay 1 sat")
    assert "payload tag does not match" in refusal(header, method="POST", body=b"pay 1000000 sat")


def test_a_body_without_payload_tag_is_refused() -> None:
    header = auth_header(ALICE, URL, "POST", NOW)
    assert "missing payload tag" in refusal(header, method="POST", body=b"anything")


def test_a_tampered_signature_is_refused() -> None:
    event = auth_event(ALICE, URL, "GET", NOW).to_dict()
    event["sig"] = ("0" if event["sig"][0] != "0" else "1") + event["sig"][1:]
    assert refusal(encode(event)) == "signature does not verify"


def test_someone_elses_signature_is_refused() -> None:
    event = auth_event(ALICE, URL, "GET", NOW).to_dict()
    event["sig"] = auth_event(Signer(bytes(31) + b"\x02"), URL, "GET", NOW).sig
    assert refusal(encode(event)) == "signature does not verify"


def test_a_changed_tag_breaks_the_id() -> None:
    event = auth_event(ALICE, "https://elsewhere.example/", "GET", NOW).to_dict()
    event["tags"][0][1] = URL
    assert "id does not match" in refusal(encode(event))


def test_the_wrong_kind_is_refused() -> None:
    assert refusal(signed(kind=1)) == f"wrong kind: expected {KIND}, got 1"
    assert "wrong kind" in refusal(signed(kind=22242))  # a NIP-42 AUTH event is not HTTP auth


def test_missing_tags_are_refused() -> None:
    assert refusal(signed(tags=[["method", "GET"]])) == "missing u tag"
    assert refusal(signed(tags=[["u", URL]])) == "missing method tag"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing Authorization header"),
        ("", "missing Authorization header"),
        ("Bearer abc", "Authorization scheme must be Nostr"),
        ("Nostr", "not a JSON event"),
        ("Nostr !!!!", "not a JSON event"),
        ("Nostr " + base64.b64encode(b"[1, 2]").decode(), "invalid event: event must be a JSON object"),
        ("Nostr " + "A" * 20_000, "too long"),
    ],
)
def test_ugly_headers_are_refused_with_a_reason(header: str | None, reason: str) -> None:
    assert reason in refusal(header)


def test_the_spec_example_decodes_but_its_id_is_wrong() -> None:
    # The example header of NIP-98 has no base64 padding, and its id is not the
    # hash of its content: decoding must get as far as the id check.
    header = (
        "Nostr eyJpZCI6ImZlOTY0ZTc1ODkwMzM2MGYyOGQ4NDI0ZDA5MmRhODQ5NGVkMjA3Y2JhODIzMTEwYmUzYTU3ZGZlNGI1Nzg3MzQiLCJwdWJr"
        "ZXkiOiI2M2ZlNjMxOGRjNTg1ODNjZmUxNjgxMGY4NmRkMDllMThiZmQ3NmFhYmMyNGEwMDgxY2UyODU2ZjMzMDUwNGVkIiwiY29udGVudCI6Ii"
        "IsImtpbmQiOjI3MjM1LCJjcmVhdGVkX2F0IjoxNjgyMzI3ODUyLCJ0YWdzIjpbWyJ1IiwiaHR0cHM6Ly9hcGkuc25vcnQuc29jaWFsL2FwaS92"
        "MS9uNXNwL2xpc3QiXSxbIm1ldGhvZCIsIkdFVCJdXSwic2lnIjoiNWVkOWQ4ZWM5NThiYzg1NGY5OTdiZGMyNGFjMzM3ZDAwNWFmMzcyMzI0Nz"
        "Q3ZWZlNGEwMGUyNGY0YzMwNDM3ZmY0ZGQ4MzA4Njg0YmVkNDY3ZDlkNmJlM2U1YTUxN2JiNDNiMTczMmNjN2QzMzk0OWEzYWFmODY3MDVjMjIx"
        "ODQifQ"
    )
    reason = refusal(header, url="https://api.snort.social/api/v1/n5sp/list", now=1682327852)
    assert reason == "invalid event: event id does not match the hash of its content"
