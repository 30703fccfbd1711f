"""Encrypted job params and results: NIP-04 as NIP-90 requires, NIP-44 accepted too.

Spec: ``shared/specs/nips/90.md`` ("Encrypted Params", "Encrypted Output"),
``04.md`` (``base64?iv=base64``) and ``44.md`` (versioned base64 payload).
The answer uses the scheme the customer used, so a client that only speaks
NIP-04 can read it. The cryptography is nostr-sdk's.
"""

from __future__ import annotations

from typing import Literal

import nostr_sdk

from nips.nip01 import Signer

Scheme = Literal["nip04", "nip44"]


class DecryptionFailed(ValueError):
    """Raised when a payload does not decrypt with the agent's key and the sender's."""


def scheme_of(payload: str) -> Scheme:
    """NIP-04 payloads carry ``?iv=``; anything else is taken as NIP-44."""
    return "nip04" if "?iv=" in payload else "nip44"


def decrypt(signer: Signer, sender: str, payload: str) -> tuple[str, Scheme]:
    scheme = scheme_of(payload)
    secret, peer = _keys(signer, sender)
    try:
        if scheme == "nip04":
            return nostr_sdk.nip04_decrypt(secret, peer, payload), scheme
        return nostr_sdk.nip44_decrypt(secret, peer, payload), scheme
    except Exception as exc:  # nostr-sdk raises its own error tree
        raise DecryptionFailed(f"{scheme} payload does not decrypt: {exc}") from None


def encrypt(signer: Signer, recipient: str, plaintext: str, scheme: Scheme) -> str:
    secret, peer = _keys(signer, recipient)
    if scheme == "nip04":
        return str(nostr_sdk.nip04_encrypt(secret, peer, plaintext))
    return str(nostr_sdk.nip44_encrypt(secret, peer, plaintext, nostr_sdk.Nip44Version.V2))


def _keys(signer: Signer, peer: str) -> tuple[nostr_sdk.SecretKey, nostr_sdk.PublicKey]:
    try:
        return nostr_sdk.SecretKey.parse(signer.secret_hex()), nostr_sdk.PublicKey.parse(peer)
    except Exception as exc:
        raise DecryptionFailed(f"bad key: {exc}") from None
