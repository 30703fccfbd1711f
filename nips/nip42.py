"""NIP-42: authentication of clients to relays.

Spec: ``shared/specs/nips/42.md``, section "Signed Event Verification". Pure:
the caller supplies the challenge it sent, its own URL and the clock.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from nips.nip01 import Event, verify_signature

AUTH_KIND = 22242


def _normalise(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url.strip().lower())
    scheme = {"wss": "ws", "https": "ws", "http": "ws"}.get(parts.scheme, parts.scheme)
    return scheme, parts.netloc, parts.path.rstrip("/")


def relay_urls_match(claimed: str, ours: str) -> bool:
    """Compare relay URLs ignoring case, a trailing slash and ws/wss.

    The spec allows normalisation; ws vs wss differs only by a TLS proxy in front
    of us, so it is not a reason to refuse.
    """
    return _normalise(claimed) == _normalise(ours)


def check_auth_event(
    event: Event, *, challenge: str, relay_url: str, now: int, window: int
) -> str | None:
    """Why ``event`` is not a valid AUTH for this connection, or None when it is.

    Checks kind 22242, ``created_at`` within ``window`` seconds of ``now``, the
    ``challenge`` and ``relay`` tags, and the signature.
    """
    if event.kind != AUTH_KIND:
        return f"AUTH event must be kind {AUTH_KIND}"
    if abs(event.created_at - now) > window:
        return "AUTH event created_at is too far from the current time"
    if event.first_tag_value("challenge") != challenge:
        return "AUTH challenge does not match the one this relay sent"
    claimed = event.first_tag_value("relay")
    if claimed is None or not relay_urls_match(claimed, relay_url):
        return f"AUTH relay tag must be {relay_url}"
    if not verify_signature(event):
        return "AUTH event signature does not verify"
    return None
