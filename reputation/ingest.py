"""Signed events in, reputation facts out (pure).

:class:`Ledger` keeps what the scoring needs from the events a node reads:

* kind 1985 ``ai.wot`` labels (``reputation/labels.py``) and their NIP-09
  revocations;
* kind 3 follow lists (the newest per author);
* job evidence, to tell a paid rating from an unpaid one: job requests
  (who is the customer), results (who did the job), the ``payment-required``
  quotes (which invoice), and payment proofs: a valid NIP-57 zap receipt from
  the customer to the agent on the job's events, or a rating that carries the
  preimage of the agent's own quoted invoice (``["preimage", hex]``);
* zap receipts on the labels themselves (ai.wot's zap weight).

A zap receipt counts only when signed by the key the agent's Timmy
announcement names as its node (the LNURL server's ``nostrPubkey``, see
``nips/nip89.py``): anyone can sign a receipt, only that key is trusted to.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field, replace

from nips import nip57
from nips.nip01 import Event
from nips.nip89 import HANDLER_KIND, parse_handler
from nips.nip90 import FEEDBACK_KIND, REQUEST_KINDS
from reputation.labels import LabelError, parse_attestation
from reputation.model import Attestation

LABEL_KIND = 1985
FOLLOWS_KIND = 3
DELETION_KIND = 5
MAX_WAITING = 10_000  # zap receipts kept for later; beyond this, new ones are dropped


@dataclass(slots=True)
class _Job:
    customer: str = ""
    provider: str = ""  # who delivered a result
    invoices: dict[str, int] = field(default_factory=dict)  # payment hash -> msat quoted by the provider
    paid_msat: int = 0  # proven


@dataclass(slots=True)
class Ledger:
    attestations: dict[str, Attestation] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    follows: dict[str, tuple[int, frozenset[str]]] = field(default_factory=dict)  # author -> (created_at, keys)
    zap_servers: dict[str, str] = field(default_factory=dict)  # agent -> nostrPubkey of its LNURL server
    _jobs: dict[str, _Job] = field(default_factory=lambda: defaultdict(_Job))
    _event_job: dict[str, str] = field(default_factory=dict)  # result/feedback id -> request id
    _label_zaps: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # label id -> sats
    _preimages: dict[str, str] = field(default_factory=dict)  # label id -> preimage it carries
    _deletions: list[Event] = field(default_factory=list)
    _waiting: list[Event] = field(default_factory=list)  # zap receipts not placeable yet
    _receipts: set[str] = field(default_factory=set)  # zap receipts counted

    def add(self, event: Event) -> bool:
        """Take one verified event in; True when it changed anything scores depend on.

        Events may come in any order: a zap receipt that cannot be placed yet
        (its agent's announcement, or the label or job it zaps, not seen yet)
        waits and is tried again when more arrives.
        """
        changed = self._add(event)
        if event.kind != nip57.ZAP_RECEIPT_KIND and self._waiting:
            waiting, self._waiting = self._waiting, []
            for receipt in waiting:
                changed = self._zap(receipt) or changed
        return changed

    def _add(self, event: Event) -> bool:
        kind = event.kind
        if kind == LABEL_KIND:
            return self._label(event)
        if kind == FOLLOWS_KIND:
            return self._follows(event)
        if kind == DELETION_KIND:
            return self._deletion(event)
        if kind == nip57.ZAP_RECEIPT_KIND:
            return self._zap(event)
        if kind == HANDLER_KIND:
            info = parse_handler(event)
            if info is not None and info.node:
                self.zap_servers[info.pubkey] = info.node
            return False
        if kind in REQUEST_KINDS:
            self._jobs[event.id].customer = event.pubkey
            return False
        if 6000 <= kind <= 6999 or kind == FEEDBACK_KIND:
            return self._answer(event)
        return False

    # --- readers -------------------------------------------------------------------

    def current(self) -> list[Attestation]:
        """Attestations with their zaps and proven payments filled in, revoked ones left out."""
        out = []
        for label_id, a in self.attestations.items():
            if label_id in self.revoked:
                continue
            out.append(replace(a, zap_sats=self._label_zaps.get(label_id, 0), paid_msat=self._paid(a)))
        return out

    def follow_lists(self) -> dict[str, frozenset[str]]:
        return {author: keys for author, (_, keys) in self.follows.items()}

    # --- events ------------------------------------------------------------------------

    def _label(self, event: Event) -> bool:
        try:
            attestation = parse_attestation(event)
        except LabelError:
            return False
        self.attestations[event.id] = attestation
        preimage = event.first_tag_value("preimage")
        if preimage:
            self._preimages[event.id] = preimage
        self._apply_deletions()
        return True

    def _follows(self, event: Event) -> bool:
        previous = self.follows.get(event.pubkey)
        if previous is not None and previous[0] >= event.created_at:
            return False
        keys = frozenset(p for p in event.tag_values("p") if len(p) == 64 and p != event.pubkey)
        self.follows[event.pubkey] = (event.created_at, keys)
        return True

    def _deletion(self, event: Event) -> bool:
        self._deletions.append(event)
        return self._apply_deletions()

    def _apply_deletions(self) -> bool:
        before = len(self.revoked)
        for deletion in self._deletions:
            for target in deletion.tag_values("e"):
                a = self.attestations.get(target)
                if a is not None and a.attester == deletion.pubkey:  # only the author revokes
                    self.revoked.add(target)
        return len(self.revoked) != before

    def _answer(self, event: Event) -> bool:
        request_id = event.first_tag_value("e")
        if not request_id:
            return False
        job = self._jobs[request_id]
        self._event_job[event.id] = request_id
        if event.kind != FEEDBACK_KIND:
            job.provider = job.provider or event.pubkey
            return True
        if event.first_tag_value("status") == "payment-required":
            for tag in event.tags:
                if len(tag) >= 3 and tag[0] == "amount" and tag[1].isdigit():
                    payment_hash = _payment_hash(tag[2])
                    if payment_hash:
                        job.invoices[payment_hash] = int(tag[1])
                        job.provider = job.provider or event.pubkey
        return True

    def _zap(self, event: Event) -> bool:
        if event.id in self._receipts:
            return False  # seen on another relay, or in a reload
        try:
            request = nip57.parse_zap_request(event.first_tag_value("description") or "")
        except nip57.ZapError:
            return False
        recipient = request.recipient
        server = self.zap_servers.get(recipient)
        if server is None:
            return self._wait(event)  # we cannot tell yet who may sign this agent's receipts
        try:
            receipt = nip57.validate_zap_receipt(event, nostr_pubkey=server, expected_recipient=recipient)
        except nip57.ZapError:
            return False
        zapped = receipt.zapped_event or ""
        if zapped in self.attestations:
            self._receipts.add(event.id)
            self._label_zaps[zapped] += receipt.amount_msat // 1000
            return True
        request_id = zapped if zapped in self._jobs else self._event_job.get(zapped)
        if request_id is None:
            return self._wait(event)
        job = self._jobs[request_id]
        if job.customer == receipt.sender and recipient in (job.provider, ""):
            self._receipts.add(event.id)
            job.provider = job.provider or recipient
            job.paid_msat += receipt.amount_msat
            return True
        return False

    def _wait(self, receipt: Event) -> bool:
        if len(self._waiting) < MAX_WAITING and all(r.id != receipt.id for r in self._waiting):
            self._waiting.append(receipt)
        return False

    def _paid(self, a: Attestation) -> int:
        """msat the attester provably paid the target for the job this rating is about."""
        if not a.event_ref:
            return 0
        request_id = a.event_ref if a.event_ref in self._jobs else self._event_job.get(a.event_ref)
        job = self._jobs.get(request_id or "")
        if job is None or job.customer != a.attester or job.provider != a.target:
            return 0
        paid = job.paid_msat
        preimage = self._preimages.get(a.id, "")
        if preimage:
            try:
                digest = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
            except ValueError:
                digest = ""
            paid = max(paid, job.invoices.get(digest, 0))
        return paid


def _payment_hash(bolt11: str) -> str:
    try:
        import bolt11 as codec

        return str(codec.decode(bolt11).payment_hash)
    except Exception:  # not an invoice we can read: no proof from it
        return ""

