"""Blossom authorization: kind 24242 tokens in an ``Authorization: Nostr`` header.

Specs: ``shared/specs/other/blossom-bud-01.md`` and ``blossom-bud-02.md``
name the token; its rules are BUD-11 ("Authorization tokens", "Tag scoping",
"Validation", "Endpoint Authorization Requirements"), and BUD-12 defines the
``list`` and ``delete`` endpoints that use it.

Pure module: no I/O, the clock is an argument. :func:`check_authorization`
makes BUD-11's validation checks in its order (kind, ``created_at``,
``expiration``, ``t``, ``server``, ``x``), then the signature, the costly one.
The header is the one NIP-98 uses, so :func:`nips.nip98.decode_header` reads it.

Every refusal is a subclass of :class:`AuthRefused`; ``str()`` is the
human-readable ``X-Reason`` the server sends back::

    AuthRefused
    +-- MalformedAuth       no header, not base64, not JSON, not an event
    +-- WrongKind           not kind 24242
    +-- CreatedInFuture     created_at ahead of the server's clock
    +-- MissingExpiration   no usable expiration tag
    +-- Expired             expiration is not in the future
    +-- WrongVerb           t tag is not the endpoint's verb
    +-- WrongServer         server tags that do not name this server
    +-- WrongBlob           x tags that do not cover the blob
    +-- BadSignature        the signature does not verify
"""

from __future__ import annotations

from dataclasses import dataclass

from nips import nip98
from nips.nip01 import Event, PubKey, verify_signature

KIND = 24242
# BUD-11 "Endpoint Authorization Requirements": verbs whose endpoint needs an x tag.
NEEDS_X = frozenset({"upload", "delete", "media"})
# "created_at MUST be in the past": clocks differ, so a token signed this many
# seconds ahead of ours still counts as past.
CLOCK_SKEW = 60

T = "t"
X = "x"
SERVER = "server"
EXPIRATION = "expiration"


class AuthRefused(ValueError):
    """Raised when a Blossom ``Authorization`` header does not authorize the request."""


class MalformedAuth(AuthRefused):
    """Raised when the header is missing or does not hold a well-formed Nostr event."""


class WrongKind(AuthRefused):
    """Raised when the event is not a kind 24242 authorization token."""


class CreatedInFuture(AuthRefused):
    """Raised when ``created_at`` is ahead of the server's clock by more than the skew."""


class MissingExpiration(AuthRefused):
    """Raised when the ``expiration`` tag is absent or not a unix timestamp."""


class Expired(AuthRefused):
    """Raised when the ``expiration`` tag is not in the future."""


class WrongVerb(AuthRefused):
    """Raised when the ``t`` tag does not name the endpoint's action."""


class WrongServer(AuthRefused):
    """Raised when ``server`` tags scope the token to other servers."""


class WrongBlob(AuthRefused):
    """Raised when the ``x`` tags do not cover the blob the endpoint acts on."""


class BadSignature(AuthRefused):
    """Raised when the event's signature does not verify."""


@dataclass(frozen=True, slots=True)
class Authorization:
    """A token that passed its checks: who signed it, for which verb and blobs."""

    pubkey: PubKey
    verb: str
    blobs: frozenset[str]  # the x tags; empty means any blob where that is allowed

    def check_blob(self, sha256: str | None) -> None:
        """BUD-11 "Validation" 6: :class:`WrongBlob` unless the x tags allow ``sha256``.

        An upload may not know its hash until the body is read: with None
        only the presence of x tags is checked, and the route checks again
        once it has hashed the body.
        """
        if not self.blobs:
            if self.verb in NEEDS_X:
                raise WrongBlob(f"a {self.verb} authorization must name the blob in an x tag")
            return
        if sha256 is not None and sha256 not in self.blobs:
            raise WrongBlob(f"no x tag of the authorization matches the blob {sha256}")


def check_authorization(
    header_value: str | None,
    *,
    verb: str,
    now: float,
    domain: str | None = None,
    sha256: str | None = None,
    skew: int = CLOCK_SKEW,
) -> Authorization:
    """The checked token of ``Authorization: Nostr <base64 event>``, or an :class:`AuthRefused`.

    ``domain`` is this server's lowercase host name, for ``server`` tags
    (None skips that check). ``sha256`` is the blob the endpoint acts on,
    when known; otherwise call :meth:`Authorization.check_blob` once it is.
    """
    try:
        event = nip98.decode_header(header_value)
    except nip98.Nip98Error as exc:
        raise MalformedAuth(str(exc)) from None
    return check_token(event, verb=verb, now=now, domain=domain, sha256=sha256, skew=skew)


def check_token(
    event: Event,
    *,
    verb: str,
    now: float,
    domain: str | None = None,
    sha256: str | None = None,
    skew: int = CLOCK_SKEW,
) -> Authorization:
    """BUD-11 "Validation" of a parsed event, in the spec's order, signature last."""
    if event.kind != KIND:
        raise WrongKind(f"wrong kind: an authorization is kind {KIND}, not {event.kind}")
    if event.created_at > now + skew:
        raise CreatedInFuture("created_at is in the future")
    expiration = event.first_tag_value(EXPIRATION)
    if expiration is None:
        raise MissingExpiration("missing expiration tag")
    if not (expiration.isascii() and expiration.isdecimal()):
        raise MissingExpiration("expiration tag is not a unix timestamp")
    if int(expiration) <= now:
        raise Expired("authorization has expired")
    signed_verb = event.first_tag_value(T)
    if signed_verb is None:
        raise WrongVerb("missing t tag")
    if signed_verb != verb:
        raise WrongVerb(f"t tag is {signed_verb!r}, this endpoint needs {verb!r}")
    servers = event.tag_values(SERVER)
    if domain is not None and servers and domain.lower() not in {s.lower() for s in servers}:
        raise WrongServer(f"server tags do not name this server ({domain.lower()})")
    authorization = Authorization(event.pubkey, verb, frozenset(event.tag_values(X)))
    authorization.check_blob(sha256)
    if not verify_signature(event):
        raise BadSignature("signature does not verify")
    return authorization
