"""Tests for reputation/labels.py: ai.wot attestations as signed NIP-32 labels.

Spec: shared/specs/other/ai-wot-PROTOCOL.md, "Event Structure", "Revocations" and
"Implementation Requirements — For Publishers". Every event is really signed.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from nips.nip01 import Event, Signer
from reputation.labels import (
    LABEL_KIND,
    LabelError,
    attestation_tags,
    parse_attestation,
    revoked_ids,
)
from reputation.model import Attestation

NOW = 1_770_000_000
ALICE = Signer(os.urandom(32))
BOB = Signer(os.urandom(32))
MALLORY = Signer(os.urandom(32))
RATED = "e" * 64  # the job result being rated
RELAY = "wss://relay.example.com"


def sign(
    tags: list[list[str]],
    content: str = "Fast, correct translation.",
    *,
    signer: Signer = ALICE,
    kind: int = LABEL_KIND,
) -> Event:
    return signer.sign(kind, content, tags, created_at=NOW - 60)


def base_tags(label: str = "service-quality") -> list[list[str]]:
    return [["L", "ai.wot"], ["l", label, "ai.wot"], ["p", BOB.pubkey]]


def refused(event: Event, reason: str) -> None:
    with pytest.raises(LabelError, match=reason):
        parse_attestation(event, now=NOW)


# --- round trips -------------------------------------------------------------------


def test_round_trip_with_every_option() -> None:
    tags = attestation_tags(
        BOB.pubkey, "work-completed", event_ref=RATED, relay=RELAY, expiration=NOW + 90 * 86_400
    )
    event = sign(tags, "Work completed | Translation EN→DE | 500 sats")
    parsed = parse_attestation(event, now=NOW)
    assert parsed == Attestation(
        id=event.id,
        attester=ALICE.pubkey,
        target=BOB.pubkey,
        label="work-completed",
        created_at=NOW - 60,
        content="Work completed | Translation EN→DE | 500 sats",
        event_ref=RATED,
    )


def test_tags_are_those_of_the_protocol_example() -> None:
    assert attestation_tags(BOB.pubkey, "service-quality", event_ref=RATED, relay=RELAY) == [
        ["L", "ai.wot"],
        ["l", "service-quality", "ai.wot"],
        ["p", BOB.pubkey],
        ["e", RATED, RELAY],
    ]
    assert attestation_tags(BOB.pubkey, "general-trust") == base_tags("general-trust")
    assert attestation_tags(BOB.pubkey, "dispute", event_ref=RATED)[-1] == ["e", RATED]


@pytest.mark.parametrize(
    "label",
    [
        "service-quality",
        "work-completed",
        "identity-continuity",
        "general-trust",
        "dispute",
        "warning",
    ],
)
def test_every_type_round_trips(label: str) -> None:
    parsed = parse_attestation(sign(attestation_tags(BOB.pubkey, label), "why"), now=NOW)
    assert (parsed.label, parsed.target, parsed.event_ref) == (label, BOB.pubkey, "")


def test_extra_namespaces_and_unrelated_tags_are_fine() -> None:
    """NIP-32 lets one label event carry labels in other namespaces too."""
    tags = [["L", "ugc"], *base_tags(), ["l", "nice", "ugc"], ["t", "translation"]]
    assert parse_attestation(sign(tags), now=NOW).label == "service-quality"


def test_positive_content_may_be_empty() -> None:
    assert parse_attestation(sign(base_tags(), ""), now=NOW).content == ""


def test_self_attestation_parses_for_the_scorer_to_ignore() -> None:
    tags = attestation_tags(ALICE.pubkey, "general-trust")
    assert parse_attestation(sign(tags), now=NOW).target == ALICE.pubkey


def test_without_now_expiration_is_not_checked() -> None:
    event = sign([*base_tags(), ["expiration", str(NOW - 1)]])
    assert parse_attestation(event).id == event.id


def test_unexpired_attestation_parses() -> None:
    event = sign([*base_tags(), ["expiration", str(NOW + 1)]])
    assert parse_attestation(event, now=NOW).id == event.id


# --- publisher rules --------------------------------------------------------------


def test_wrong_kind() -> None:
    refused(sign(base_tags(), kind=1), "must be kind 1985, not 1")


def test_missing_namespace() -> None:
    refused(sign(base_tags()[1:]), r'\["L", "ai.wot"\]')
    refused(sign([["L", "ai.wot.x"], *base_tags()[1:]]), r'\["L", "ai.wot"\]')


def test_missing_label() -> None:
    refused(sign([["L", "ai.wot"], ["p", BOB.pubkey]]), "no l tag in namespace ai.wot")


def test_label_without_the_namespace_mark() -> None:
    tags = [["L", "ai.wot"], ["l", "service-quality"], ["p", BOB.pubkey]]
    refused(sign(tags), r"no l tag in namespace ai.wot \(an l tag needs the mark")


def test_label_in_another_namespace() -> None:
    tags = [["L", "ai.wot"], ["l", "service-quality", "social.wot"], ["p", BOB.pubkey]]
    refused(sign(tags), "no l tag in namespace ai.wot")


def test_two_labels() -> None:
    tags = [*base_tags(), ["l", "general-trust", "ai.wot"]]
    refused(sign(tags), "exactly one l tag")


def test_unknown_type() -> None:
    refused(sign(base_tags("great-vibes")), "unknown attestation type 'great-vibes'")


def test_no_target() -> None:
    refused(sign(base_tags()[:2]), "exactly one p tag, has 0")


def test_two_targets() -> None:
    refused(sign([*base_tags(), ["p", MALLORY.pubkey]]), "exactly one p tag, has 2")


@pytest.mark.parametrize("bad", ["", "npub1xyz", BOB.pubkey.upper(), BOB.pubkey[:-1]])
def test_target_not_hex(bad: str) -> None:
    refused(sign([["L", "ai.wot"], ["l", "general-trust", "ai.wot"], ["p", bad]]), "p tag is not")


def test_bad_event_reference() -> None:
    refused(sign([*base_tags(), ["e", "not-an-id"]]), "e tag is not")
    refused(sign([*base_tags(), ["e", RATED], ["e", "f" * 64]]), "at most one e tag")


@pytest.mark.parametrize("label", ["dispute", "warning"])
@pytest.mark.parametrize("content", ["", "   \n\t"])
def test_negative_without_a_reason(label: str, content: str) -> None:
    refused(sign(base_tags(label), content), f"a {label} attestation must explain itself")


def test_expired() -> None:
    refused(sign([*base_tags(), ["expiration", str(NOW)]]), f"expired at {NOW}")


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", ""])
def test_unreadable_expiration(value: str) -> None:
    refused(sign([*base_tags(), ["expiration", value]]), "expiration tag is not a unix timestamp")


def test_two_expirations() -> None:
    tags = [*base_tags(), ["expiration", str(NOW + 10)], ["expiration", str(NOW + 20)]]
    refused(sign(tags), "at most one expiration tag")


def test_forged_signature() -> None:
    event = sign(base_tags())
    forged = dataclasses.replace(event, pubkey=MALLORY.pubkey)
    refused(forged, "signature does not verify")


# --- writing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"target": "B" * 64}, "target must be"),
        ({"label": "praise"}, "unknown attestation type"),
        ({"event_ref": "xyz"}, "event_ref must be"),
        ({"relay": RELAY}, "relay hint needs an event_ref"),
        ({"expiration": -1}, "expiration must be"),
    ],
)
def test_attestation_tags_refuses_what_would_not_parse(
    kwargs: dict[str, object], reason: str
) -> None:
    args: dict[str, object] = {"target": BOB.pubkey, "label": "general-trust", **kwargs}
    with pytest.raises(LabelError, match=reason):
        attestation_tags(**args)  # type: ignore[arg-type]


# --- revocations -------------------------------------------------------------------


def revocation(signer: Signer, *ids: str, kind: int = 5) -> Event:
    tags = [["e", i] for i in ids] + [["k", "1985"]]
    return signer.sign(kind, "Issue was resolved.", tags, created_at=NOW)


@pytest.fixture
def known() -> dict[str, Attestation]:
    by_alice = parse_attestation(sign(base_tags("dispute"), "garbage output"), now=NOW)
    by_bob = parse_attestation(
        sign(attestation_tags(ALICE.pubkey, "general-trust"), signer=BOB), now=NOW
    )
    return {by_alice.id: by_alice, by_bob.id: by_bob}


def test_attester_revokes_own_attestation(known: dict[str, Attestation]) -> None:
    alices = next(i for i, a in known.items() if a.attester == ALICE.pubkey)
    assert revoked_ids([revocation(ALICE, alices)], known) == {alices}


def test_revocation_by_another_key_is_ignored(known: dict[str, Attestation]) -> None:
    """'Revocations' rule 1: only the original attester can revoke."""
    assert revoked_ids([revocation(MALLORY, *known)], known) == set()
    assert revoked_ids([revocation(BOB, *known)], known) == {
        i for i, a in known.items() if a.attester == BOB.pubkey
    }


def test_revocation_of_unknown_ids_and_other_kinds_is_ignored(
    known: dict[str, Attestation],
) -> None:
    assert revoked_ids([revocation(ALICE, "0" * 64, "not-hex")], known) == set()
    assert revoked_ids([revocation(ALICE, *known, kind=1)], known) == set()


def test_forged_revocation_is_ignored(known: dict[str, Attestation]) -> None:
    """A kind 5 claiming Alice's pubkey but signed by Mallory revokes nothing."""
    alices = next(i for i, a in known.items() if a.attester == ALICE.pubkey)
    forged = dataclasses.replace(revocation(MALLORY, alices), pubkey=ALICE.pubkey)
    assert revoked_ids([forged], known) == set()


def test_one_deletion_can_revoke_several(known: dict[str, Attestation]) -> None:
    second = parse_attestation(sign(attestation_tags(MALLORY.pubkey, "warning"), "spam"), now=NOW)
    known[second.id] = second
    alices = {i for i, a in known.items() if a.attester == ALICE.pubkey}
    assert len(alices) == 2
    assert revoked_ids([revocation(ALICE, *alices)], known) == alices
