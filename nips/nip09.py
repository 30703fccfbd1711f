"""NIP-09: event deletion requests.

Spec: ``shared/specs/nips/09.md``. A kind-5 event names events to delete by
``e`` (id) and ``a`` (address) tags; relays honour it only for events of the
same author, and for addresses only up to the request's ``created_at``.
"""

from __future__ import annotations

from nips.nip01 import Event, KindClass, is_hex64, kind_class

DELETION_KIND = 5


def deletion_targets(deletion: Event) -> tuple[list[str], list[str]]:
    """What a kind-5 event may delete: (event ids, addresses).

    Addresses are kept only when they name the deletion's own author and a
    replaceable or addressable kind, rewritten in the canonical
    ``kind:pubkey:d`` form that :attr:`Event.address` uses.
    """
    ids = [value for value in deletion.tag_values("e") if is_hex64(value)]
    addresses = []
    for value in deletion.tag_values("a"):
        parts = value.split(":", 2)
        if len(parts) != 3 or not parts[0].isdigit() or parts[1] != deletion.pubkey:
            continue
        kind, d = int(parts[0]), parts[2]
        cls = kind_class(kind)
        if cls is KindClass.ADDRESSABLE or (cls is KindClass.REPLACEABLE and d == ""):
            addresses.append(f"{kind}:{deletion.pubkey}:{d}")
    return ids, addresses
