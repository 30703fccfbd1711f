"""ai.wot attestations as Nostr events: NIP-32 labels (kind 1985) and their NIP-09 revocations.

Spec: ``shared/specs/other/ai-wot-PROTOCOL.md``, sections "Event Structure"
("Required Tags", "Optional Tags", "Content"), "Revocations" and
"Implementation Requirements — For Publishers"; ``shared/specs/nips/32.md`` for
the ``L``/``l`` tags and NIP-40 for ``expiration``.

:func:`parse_attestation` reads a label into an :class:`~reputation.model.Attestation`,
refusing any event that breaks a publisher rule with a :class:`LabelError` that says
which; :func:`attestation_tags` writes the tags of a new one; :func:`revoked_ids`
applies kind 5 revocations. Self-attestations parse: the protocol tells consumers
to ignore them, which the scoring does visibly (``reputation/aiwot.py``).

Pure: no I/O, no clock; callers pass ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from nips.nip01 import Event, is_hex64, verify_signature
from nips.nip09 import DELETION_KIND, deletion_targets
from reputation.model import NAMESPACE, NEGATIVE_TYPES, TYPE_MULTIPLIERS, Attestation

LABEL_KIND = 1985


class LabelError(ValueError):
    """Raised when an event is not a valid ai.wot attestation; ``str()`` says which rule it breaks."""


def _values(event: Event, name: str) -> list[str]:
    """The value of every ``name`` tag; a tag with no value still counts, as ""."""
    return [tag[1] if len(tag) > 1 else "" for tag in event.tags if tag[0] == name]


def _label(event: Event) -> str:
    """The attestation type: the value of the one ``l`` tag marked ``ai.wot``.

    NIP-32: with an ``L`` tag present, an ``l`` tag MUST carry the namespace as its
    mark, so an unmarked ``["l", "service-quality"]`` is not in ``ai.wot``.
    """
    if NAMESPACE not in _values(event, "L"):
        raise LabelError(f'attestation must have an ["L", "{NAMESPACE}"] tag')
    labels = [tag for tag in event.tags if tag[0] == "l"]
    ours = [tag[1] for tag in labels if len(tag) >= 3 and tag[2] == NAMESPACE]
    if not ours:
        unmarked = any(len(tag) == 2 and tag[1] in TYPE_MULTIPLIERS for tag in labels)
        hint = f' (an l tag needs the mark: ["l", "<type>", "{NAMESPACE}"])' if unmarked else ""
        raise LabelError(f"attestation has no l tag in namespace {NAMESPACE}{hint}")
    if len(ours) > 1:
        raise LabelError(f"attestation must have exactly one l tag in namespace {NAMESPACE}")
    if ours[0] not in TYPE_MULTIPLIERS:
        known = ", ".join(TYPE_MULTIPLIERS)
        raise LabelError(f"unknown attestation type {ours[0]!r} (known: {known})")
    return ours[0]


def _target(event: Event) -> str:
    targets = _values(event, "p")
    if len(targets) != 1:
        raise LabelError(f"attestation must have exactly one p tag, has {len(targets)}")
    if not is_hex64(targets[0]):
        raise LabelError("attestation p tag is not a 64-character lowercase hex pubkey")
    return targets[0]


def _event_ref(event: Event) -> str:
    """The optional ``e`` tag. More than one is refused: an attestation rates one event."""
    refs = _values(event, "e")
    if len(refs) > 1:
        raise LabelError("attestation must have at most one e tag")
    if refs and not is_hex64(refs[0]):
        raise LabelError("attestation e tag is not a 64-character lowercase hex event id")
    return refs[0] if refs else ""


def _check_expiration(event: Event, now: int | None) -> None:
    """NIP-40: at most one ``expiration``, a unix timestamp; expired at or before ``now``."""
    values = _values(event, "expiration")
    if not values:
        return
    if len(values) > 1:
        raise LabelError("attestation must have at most one expiration tag")
    if not (values[0].isascii() and values[0].isdigit()):
        raise LabelError("attestation expiration tag is not a unix timestamp")
    if now is not None and int(values[0]) <= now:
        raise LabelError(f"attestation expired at {values[0]}")


def parse_attestation(event: Event, *, now: int | None = None) -> Attestation:
    """Read a kind 1985 ``ai.wot`` label; :class:`LabelError` if it breaks the protocol.

    Checks, in order: kind 1985; ``["L", "ai.wot"]``; exactly one ``l`` tag marked
    ``ai.wot`` with a known type; exactly one hex ``p`` tag; at most one hex ``e``
    tag; a reason in ``content`` for ``dispute`` and ``warning``; a well-formed
    NIP-40 ``expiration``, not passed at ``now`` (not checked when ``now`` is None);
    and last, as the costly step, the signature ("For Consumers" rule 1).

    ``zap_sats`` and ``paid_msat`` are left at 0: they come from other events.
    """
    if event.kind != LABEL_KIND:
        raise LabelError(f"attestation must be kind {LABEL_KIND}, not {event.kind}")
    label = _label(event)
    target = _target(event)
    event_ref = _event_ref(event)
    if label in NEGATIVE_TYPES and not event.content.strip():
        raise LabelError(f"a {label} attestation must explain itself in its content")
    _check_expiration(event, now)
    if not verify_signature(event):
        raise LabelError("attestation signature does not verify")
    return Attestation(
        id=event.id,
        attester=event.pubkey,
        target=target,
        label=label,
        created_at=event.created_at,
        content=event.content,
        event_ref=event_ref,
    )


def attestation_tags(
    target: str,
    label: str,
    *,
    event_ref: str = "",
    relay: str = "",
    expiration: int | None = None,
) -> list[list[str]]:
    """The tags of a new attestation by us about ``target`` ("Event Structure").

    ``relay`` is the hint for ``event_ref``. The content is the caller's: it must
    not be empty for ``dispute`` and ``warning``, which :func:`parse_attestation`
    checks on the signed event.
    """
    if not is_hex64(target):
        raise LabelError("target must be a 64-character lowercase hex pubkey")
    if label not in TYPE_MULTIPLIERS:
        raise LabelError(f"unknown attestation type {label!r}")
    if event_ref and not is_hex64(event_ref):
        raise LabelError("event_ref must be a 64-character lowercase hex event id")
    if relay and not event_ref:
        raise LabelError("a relay hint needs an event_ref to go with")
    if expiration is not None and expiration < 0:
        raise LabelError("expiration must be a unix timestamp")
    tags = [["L", NAMESPACE], ["l", label, NAMESPACE], ["p", target]]
    if event_ref:
        tags.append(["e", event_ref, relay] if relay else ["e", event_ref])
    if expiration is not None:
        tags.append(["expiration", str(expiration)])
    return tags


def revoked_ids(deletions: Iterable[Event], attestations: Mapping[str, Attestation]) -> set[str]:
    """Ids in ``attestations`` (keyed by id) revoked by a kind 5 event of their own attester.

    "Revocations" rule 1: only the original attester can revoke, so a deletion
    naming someone else's attestation revokes nothing. A deletion whose signature
    does not verify revokes nothing either, else anyone could forge one.
    """
    revoked: set[str] = set()
    for deletion in deletions:
        if deletion.kind != DELETION_KIND:
            continue
        ids, _addresses = deletion_targets(deletion)
        mine = [i for i in ids if i in attestations and attestations[i].attester == deletion.pubkey]
        if mine and verify_signature(deletion):
            revoked.update(mine)
    return revoked
