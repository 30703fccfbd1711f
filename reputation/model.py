"""What reputation is computed from: plain values read out of signed events.

``reputation/ingest.py`` turns events (kind 1985 labels, 9735 zap receipts,
kind 3 follow lists, job results and payments seen on relays) into these;
the scoring modules are pure functions of them.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "ai.wot"
# ai.wot attestation types and their multipliers (ai-wot-PROTOCOL.md, "Attestation Types").
TYPE_MULTIPLIERS = {
    "service-quality": 1.5,
    "work-completed": 1.2,
    "identity-continuity": 1.0,
    "general-trust": 0.8,
    "dispute": -1.5,
    "warning": -0.8,
}
NEGATIVE_TYPES = frozenset({"dispute", "warning"})


@dataclass(frozen=True, slots=True)
class Attestation:
    """One kind 1985 ``ai.wot`` label by ``attester`` about ``target``."""

    id: str
    attester: str
    target: str
    label: str  # one of TYPE_MULTIPLIERS
    created_at: int
    content: str = ""
    event_ref: str = ""  # its `e` tag: the job result (or request) it rates, if any
    zap_sats: int = 0  # sats zapped to this attestation (valid receipts only)
    paid_msat: int = 0  # proven payment by the attester to the target for the rated job


@dataclass(frozen=True, slots=True)
class Contribution:
    """One attestation's share in a score: the explanation of a score is a list of these."""

    attestation: Attestation
    weight: float  # what it added (negative for warnings and disputes)
    factors: tuple[tuple[str, float], ...]  # (name, value) of each factor multiplied in
    counted: bool = True
    why_not: str = ""  # when not counted: "self-attestation", "revoked", "attester below the negative gate"...
