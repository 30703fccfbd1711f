"""NIP-98: HTTP Auth -- a signed kind 27235 event in an ``Authorization: Nostr`` header.

Spec: ``shared/specs/nips/98.md`` ("Nostr event", "Request Flow").

Pure module: no I/O, the clock is an argument. :func:`check_http_auth` makes
the server's checks of the spec, in its order (kind, ``created_at`` window,
``u``, ``method``), then the ``payload`` hash and the id and signature;
:class:`Nip98Error` says which failed, for the 401 answer. :func:`check_auth_event`
is the same check of an event already parsed, which the web login uses for its
own kind 27235 events (``web/auth.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import orjson

from nips.nip01 import Event, InvalidEvent, PubKey, Signer, parse_event, verify_signature

KIND = 27235  # after RFC 7235
SCHEME = "Nostr"
WINDOW = 60  # seconds either side of now, the spec's suggestion
MAX_HEADER = 16_384  # an auth event is a few hundred bytes; refuse to decode more

U = "u"
METHOD = "method"
PAYLOAD = "payload"


class Nip98Error(ValueError):
    """Raised when an ``Authorization`` header or auth event does not authorize the request."""


def check_http_auth(
    header_value: str | None,
    *,
    url: str,
    method: str,
    now: float,
    body: bytes | None = None,
    window: int = WINDOW,
) -> PubKey:
    """The pubkey that signed this request's ``Authorization`` header, or :class:`Nip98Error`.

    ``url`` is the absolute URL as the client sent it, query included. A
    non-empty ``body`` must be covered by a ``payload`` tag: the spec lets
    servers check it, and an event that does not name its body could be
    replayed with another one within the window.
    """
    return check_auth_event(
        decode_header(header_value), url=url, method=method, now=now, body=body, window=window
    )


def decode_header(header_value: str | None) -> Event:
    """The event of ``Authorization: Nostr <base64 event>``, its id checked (not its signature)."""
    if not header_value:
        raise Nip98Error("missing Authorization header")
    if len(header_value) > MAX_HEADER:
        raise Nip98Error("Authorization header is too long")
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():  # auth schemes are case-insensitive (RFC 7235 section 2.1)
        raise Nip98Error(f"Authorization scheme must be {SCHEME}")
    token = token.strip()
    try:
        # Clients differ on padding and alphabet; the spec's own example has no padding.
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=False)
    except (binascii.Error, ValueError):
        raise Nip98Error("Authorization token is not base64") from None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Nip98Error("Authorization token is not a JSON event") from None
    try:
        return parse_event(obj)
    except InvalidEvent as exc:
        raise Nip98Error(f"invalid event: {exc}") from None


def check_auth_event(
    event: Event,
    *,
    url: str,
    method: str,
    now: float,
    body: bytes | None = None,
    window: int = WINDOW,
) -> PubKey:
    """The spec's checks of a parsed auth event, signature last (it is the costly one)."""
    if event.kind != KIND:
        raise Nip98Error(f"wrong kind: expected {KIND}, got {event.kind}")
    if event.created_at < now - window:
        raise Nip98Error(f"event is too old: created_at must be within {window} s of now")
    if event.created_at > now + window:
        raise Nip98Error(f"event is from the future: created_at must be within {window} s of now")
    signed_url = event.first_tag_value(U)
    if signed_url is None:
        raise Nip98Error("missing u tag")
    if signed_url != url:
        raise Nip98Error(f"u tag does not match the request URL {url}")
    signed_method = event.first_tag_value(METHOD)
    if signed_method is None:
        raise Nip98Error("missing method tag")
    if signed_method.upper() != method.upper():
        raise Nip98Error(f"method tag does not match the request method {method.upper()}")
    _check_payload(event.first_tag_value(PAYLOAD), body)
    if not verify_signature(event):
        raise Nip98Error("signature does not verify")
    return event.pubkey


def _check_payload(signed_hash: str | None, body: bytes | None) -> None:
    if signed_hash is None:
        if body:
            raise Nip98Error("missing payload tag: a request with a body must sign its SHA-256")
        return
    if signed_hash.lower() != hashlib.sha256(body or b"").hexdigest():
        raise Nip98Error("payload tag does not match the SHA-256 of the request body")


def auth_event(signer: Signer, url: str, method: str, now: int, body: bytes | None = None) -> Event:
    """A signed kind 27235 event authorizing one request; ``payload`` when there is a body."""
    tags = [[U, url], [METHOD, method.upper()]]
    if body is not None:
        tags.append([PAYLOAD, hashlib.sha256(body).hexdigest()])
    return signer.sign(KIND, "", tags, created_at=now)


def auth_header(signer: Signer, url: str, method: str, now: int, body: bytes | None = None) -> str:
    """The ``Authorization`` header value for one request (for tests and scripts)."""
    event = auth_event(signer, url, method, now, body)
    return f"{SCHEME} {base64.b64encode(event.raw.encode()).decode()}"
