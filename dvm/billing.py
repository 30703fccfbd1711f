"""Paid jobs: quote an invoice, notice the payment, start the work exactly once.

NIP-90 "Job feedback" and "Protocol Flow": a priced job answers with
``7000 payment-required`` carrying ``["amount", msat, bolt11]`` and, when the
agent's wallet has BOLT12, ``["bolt12", offer]``; no work is done before the
payment. The job starts when:

* the quoted invoice settles (any backend's settlement stream, or a lookup
  after a restart), or
* the agent's BOLT12 offer is paid with the request id as payer note, or
* a zap on the request (or on its feedback) of at least the price settles an
  invoice of the node's LNURL server (``web/``), which reports it here.

Exactly once in money: the payment is marked paid in the same transaction
that moves the job to ``processing`` (``JobStore.transition(settle=...)``),
guarded by both states, so a duplicate settlement notice, a repeated zap or a
restart finds nothing left to do. Money that arrives for a job that can no
longer take it (expired, cancelled, already paid another way) is recorded as
owed back. So is a paid job that fails (``Engine._fail``); the operator sees
it in ``timmy wallet``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from typing import TYPE_CHECKING

from dvm.jobs import State, Step
from dvm.store import PaymentRecord
from node.wallet import Settlement, WalletError

if TYPE_CHECKING:
    from dvm.engine import Engine, Job
    from node.wallet import Wallet

log = logging.getLogger(__name__)


class Billing:
    def __init__(self, engine: Engine, wallet: Wallet | None) -> None:
        self.engine = engine
        self.wallet = wallet
        self.offers: dict[str, str] = {}  # agent name -> its BOLT12 offer
        self._offer_ids: dict[str, str] = {}  # offer id -> agent name

    async def start(self) -> None:
        if self.wallet is None:
            return
        from nips import bolt12

        for agent in self.engine.agents:
            try:
                offer = await self.wallet.offer(agent.name, f"{agent.name}, a Timmy agent")
            except WalletError as exc:
                log.warning("agent %s: no BOLT12 offer (%s)", agent.name, exc)
                continue
            if offer:
                self.offers[agent.name] = offer
                self._offer_ids[bolt12.offer_id(bolt12.decode_offer(offer))] = agent.name

    async def charge(self, job: Job) -> None:
        """Quote the job's price: an invoice in ``payment-required``, recorded in the ledger."""
        agent = job.agent
        assert agent is not None and job.request is not None
        if self.wallet is None:
            await self.engine._move(job, Step.CHARGE, amount_msat=job.price_msat)
            return
        try:
            invoice = await self.wallet.create_invoice(
                job.price_msat,
                label=f"job:{job.id}:{os.urandom(4).hex()}",  # fresh per quote: a retry never collides
                description=f"{agent.name}: kind {job.request.kind} job {job.id}",
                expiry=self.engine.settings.wait_limit_seconds,
            )
        except WalletError as exc:
            log.error("job %s: no invoice: %s", job.id[:12], exc)
            await self.engine._fail(job, "the agent's wallet could not make an invoice; try again later")
            return
        quote = PaymentRecord(
            invoice.payment_hash, job.id, agent.name, job.price_msat, 0, invoice.bolt11, "invoice",
            "pending", int(time.time()), None,
        )
        offer = self.offers.get(agent.name)
        moved = await self.engine._move(
            job,
            Step.CHARGE,
            info="" if self.wallet.real_money else "dev wallet: not real money",
            amount_msat=job.price_msat,
            bolt11=invoice.bolt11,
            feedback_extra=[["bolt12", offer]] if offer else (),
            money={"payment": quote},
        )
        if moved:
            self.engine.metrics.invoice(agent.name, job.price_msat)

    def on_settled(self, settlement: Settlement) -> None:
        """The wallet's callback: may come twice for one payment, or for payments not ours."""
        self.engine._spawn(self.settled(settlement))

    async def settled(self, s: Settlement) -> None:
        store = self.engine.store
        payment = await store.payment(s.payment_hash)
        if payment is None:
            payment = await self._through_offer(s) or await self._through_zap(s)
            if payment is None:
                return  # not a job's: a zap to an agent, a plain LNURL payment
        if payment.state != "pending":
            return  # reported before
        job = self.engine.jobs.get(payment.job_id)
        if job is None or job.state is not State.PAYMENT_REQUIRED:
            await store.set_payment_state(payment.payment_hash, "refund_owed", received_msat=s.amount_msat)
            log.warning("payment for job %s that no longer waits for it: refund owed", payment.job_id[:12])
            return
        if s.amount_msat < job.price_msat:
            await store.set_payment_state(payment.payment_hash, "refund_owed", received_msat=s.amount_msat)
            log.warning("job %s: %d msat received for a price of %d", job.id[:12], s.amount_msat, job.price_msat)
            return
        moved = await self.engine._move(
            job, Step.START, money={"settle": (payment.payment_hash, s.amount_msat)}
        )
        if moved:
            self.engine.metrics.paid(payment.agent, s.amount_msat)
            self.engine.run(job)

    async def _through_offer(self, s: Settlement) -> PaymentRecord | None:
        """A payment to an agent's BOLT12 offer naming a job in its payer note."""
        agent = self._offer_ids.get(s.offer_id) if s.offer_id else None
        if agent is None:
            return None
        return await self._record(s, s.payer_note.strip(), agent, "offer")

    async def _through_zap(self, s: Settlement) -> PaymentRecord | None:
        """A zap (settled through our LNURL server) on a job request or on its feedback."""
        zap = await self.engine.store.zap(s.payment_hash)
        if zap is None or not zap.target:
            return None
        store = self.engine.store
        job_id = zap.target if await store.get(zap.target) else await store.job_of_event(zap.target)
        return await self._record(s, job_id or "", zap.agent, "zap")

    async def _record(self, s: Settlement, job_id: str, agent: str, source: str) -> PaymentRecord | None:
        """Enter money that reached a job of ``agent`` outside its quote, as a pending payment.

        None when it names no job of that agent: then it is a tip, not a payment.
        """
        job = await self.engine.store.get(job_id) if job_id else None
        if job is None or job.agent != agent:
            return None
        record = PaymentRecord(
            s.payment_hash, job_id, agent, job.price_msat or 0, 0, "", source, "pending", int(time.time()), None
        )
        try:
            await self.engine.store.add_payment(record)
        except sqlite3.IntegrityError:  # the same payment reported twice at once: the first one records it
            return await self.engine.store.payment(s.payment_hash)
        return record

    async def resume(self, job: Job) -> None:
        """After a restart: was the quote paid while the node was down?"""
        if self.wallet is None:
            return
        for payment in await self.engine.store.payments_of(job.id):
            if payment.state != "pending":
                continue
            try:
                settlement = await self.wallet.lookup(payment.payment_hash)
            except WalletError as exc:
                log.warning("job %s: cannot look up its invoice: %s", job.id[:12], exc)
                continue
            if settlement is not None:
                await self.settled(settlement)
