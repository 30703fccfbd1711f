"""Paid jobs with the dev wallet: quote, pay, run once; expiry; refunds; offers."""

from __future__ import annotations

import asyncio
import os

import bolt11
import pytest

from node.config import AgentConfig
from node.wallet import PaymentFailed
from node.wallet.dev import DevWallet

from .conftest import TEXT, Customer, status, wait_state

PRICE = 21_000


@pytest.fixture
def wallet(tmp_path):
    return DevWallet(tmp_path / "wallet-dev.sqlite3", os.urandom(32))


def _priced(name: str = "seller", price: int = PRICE, **kw) -> AgentConfig:
    return AgentConfig(name, kinds=(5001,), price_msat=price, **kw)


def _invoice(event) -> str:
    return next(t for t in event.tags if t[0] == "amount")[2]


async def _quote(customer: Customer, request) -> tuple:
    answers = await customer.answers(request.id, lambda seen: any(status(e) == "payment-required" for e in seen))
    return next(e for e in answers if status(e) == "payment-required")


async def test_a_priced_job_waits_for_payment_then_runs_once(relay, start_engine, customer, wallet):
    engine = await start_engine([_priced()], [relay.url], wallet=wallet)
    request = await customer.request(5001, [["i", TEXT, "text"]])
    quote = await _quote(customer, request)
    invoice = bolt11.decode(_invoice(quote))
    assert quote.first_tag_value("amount") == str(PRICE) and invoice.amount_msat == PRICE
    assert invoice.currency == "bcrt"  # regtest: not real money
    assert request.id in invoice.description
    assert quote.first_tag_value("bolt12").startswith("lno1")
    assert quote.tags[0] == ["status", "payment-required", "dev wallet: not real money"]
    await asyncio.sleep(0.3)
    record = await engine.store.get(request.id)
    assert record.state.value == "payment_required"  # no work before payment
    await wallet.pay(_invoice(quote))
    _, result = await customer.result(request.id)
    assert result.kind == 6001 and result.first_tag_value("amount") == str(PRICE)
    # A duplicate settlement notice (a wallet reconnecting) changes nothing.
    settlement = await wallet.lookup(invoice.payment_hash)
    await engine.billing.settled(settlement)
    await engine.billing.settled(settlement)
    await wait_state(engine, request.id, "done")
    await asyncio.sleep(0.3)
    assert len(await customer.link.query([{"kinds": [6001], "#e": [request.id]}])) == 1
    ledger = await engine.store.ledger()
    assert ledger == {"seller": {"paid": PRICE}}


async def test_payment_made_while_the_node_was_down_is_found_on_restart(
    relay, start_engine, customer, tmp_path
):
    path, secret = tmp_path / "w.sqlite3", os.urandom(32)
    db = tmp_path / "node.sqlite3"
    first = DevWallet(path, secret)
    engine = await start_engine([_priced()], [relay.url], db=db, wallet=first)
    request = await customer.request(5001, [["i", TEXT, "text"]])
    quote = await _quote(customer, request)
    await start_engine.stop(engine)
    await first.stop()
    # The customer pays while the node is down (`timmy pay` in another process).
    payer = DevWallet(path, secret)
    payer.open()
    await payer.pay(_invoice(quote))
    payer.close()
    second = DevWallet(path, secret)
    engine = await start_engine([_priced()], [relay.url], db=db, wallet=second)
    _, result = await customer.result(request.id)
    assert result.kind == 6001
    await wait_state(engine, request.id, "done")
    await second.stop()


async def test_a_payment_from_another_process_is_noticed_quickly(relay, start_engine, customer, wallet, tmp_path):
    engine = await start_engine([_priced()], [relay.url], wallet=wallet)
    request = await customer.request(5001, [["i", TEXT, "text"]])
    quote = await _quote(customer, request)
    other = DevWallet(wallet.path, os.urandom(32))
    other.open()
    await other.pay(_invoice(quote))
    other.close()
    answers = await customer.answers(request.id, lambda seen: any(e.kind == 6001 for e in seen), timeout=5)
    assert [status(e) for e in answers if e.kind == 7000][-1] == "processing"
    await wait_state(engine, request.id, "done")


async def test_unpaid_jobs_expire_and_say_so(relay, start_engine, customer, wallet, monkeypatch):
    import dvm.engine

    monkeypatch.setattr(dvm.engine, "SWEEP_SECONDS", 0.2)
    engine = await start_engine([_priced()], [relay.url], wallet=wallet, wait_limit_seconds=1)
    request = await customer.request(5001, [["i", TEXT, "text"]])
    quote = await _quote(customer, request)
    answers = await customer.answers(request.id, lambda seen: any(status(e) == "error" for e in seen), timeout=6)
    error = next(e for e in answers if status(e) == "error")
    assert "expired: not paid within 1 s" in error.tags[0][2]
    assert (await engine.store.ledger()) == {"seller": {"expired": PRICE}}
    # Paying the expired invoice afterwards fails, as with any Lightning wallet.
    with pytest.raises(PaymentFailed, match="invoice expired"):
        await wallet.pay(_invoice(quote))
    assert (await engine.store.get(request.id)).state.value == "expired"


async def test_a_paid_job_that_fails_is_owed_a_refund(relay, start_engine, customer, wallet):
    engine = await start_engine([_priced()], [relay.url], wallet=wallet)
    handler = engine.agents[0].handlers[5001]

    class Failing:
        kind, name, title = handler.kind, handler.name, handler.title
        check_settings, unavailable, validate = handler.check_settings, handler.unavailable, handler.validate

        async def run(self, ctx):
            raise RuntimeError("boom")

    engine.agents[0].handlers[5001] = Failing()
    request = await customer.request(5001, [["i", TEXT, "text"]])
    quote = await _quote(customer, request)
    await wallet.pay(_invoice(quote))
    await customer.answers(request.id, lambda seen: any(status(e) == "error" for e in seen))
    await wait_state(engine, request.id, "failed")
    assert (await engine.store.ledger()) == {"seller": {"refund_owed": PRICE}}


async def test_paying_the_agents_offer_with_the_job_id_as_note_pays_the_job(
    relay, start_engine, customer, wallet
):
    engine = await start_engine([_priced()], [relay.url], wallet=wallet)
    request = await customer.request(5001, [["i", TEXT, "text"]])
    quote = await _quote(customer, request)
    offer = quote.first_tag_value("bolt12")
    assert offer == engine.billing.offers["seller"]
    await wallet.pay(offer, amount_msat=PRICE, note=request.id)
    _, result = await customer.result(request.id)
    assert result.kind == 6001
    ledger = await engine.store.ledger()
    assert ledger["seller"]["paid"] == PRICE and ledger["seller"]["pending"] == PRICE  # the unused invoice


async def test_free_agents_need_no_wallet_and_get_no_invoice(relay, start_engine, customer, wallet):
    await start_engine([_priced(price=0)], [relay.url], wallet=wallet)
    request = await customer.request(5001, [["i", TEXT, "text"]])
    answers, result = await customer.result(request.id)
    assert result.kind == 6001
    assert not any(status(e) == "payment-required" for e in answers)
