"""NIP-11: the relay information document.

Spec: ``shared/specs/nips/11.md``. Pure: builds the JSON object served with
``Content-Type: application/nostr+json`` when a client asks for it.
"""

from __future__ import annotations

from typing import Any

MEDIA_TYPE = "application/nostr+json"


def information_document(
    *,
    name: str,
    description: str,
    supported_nips: list[int],
    version: str,
    software: str = "",
    limitation: dict[str, Any],
    pubkey: str = "",
    contact: str = "",
) -> dict[str, Any]:
    """The document; empty optional fields are left out rather than sent blank.

    ``software`` must be a URL of the implementation's home page when given.
    """
    doc: dict[str, Any] = {
        "name": name,
        "description": description,
        "supported_nips": sorted(supported_nips),
        "version": version,
        "limitation": limitation,
    }
    optional = {"software": software, "pubkey": pubkey, "contact": contact}
    doc.update({key: value for key, value in optional.items() if value})
    return doc


def cors_headers() -> list[tuple[str, str]]:
    """NIP-11 asks relays to allow cross-origin reads of the document."""
    return [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Headers", "*"),
        ("Access-Control-Allow-Methods", "GET, OPTIONS"),
    ]
