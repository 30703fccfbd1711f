"""node/wallet/nwc.py against a fake NIP-47 wallet service over our real relay (tests/fakes/nwc_service.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import bolt11
import pytest
from bolt11.models.tags import TagChar, Tags
from bolt11.types import Bolt11, MilliSatoshi

from node.wallet import PaymentFailed, Settlement, WalletError
from node.wallet.nwc import (
    ConnectionUri,
    NwcError,
    NwcNoAnswer,
    NwcPaymentFailed,
    NwcWallet,
    settlement_of,
)
from relay.server import RelayServer
from relay.settings import RelaySettings
from relay.store.memory import MemoryStore
from tests.fakes.nwc_service import FakeNwcService
from tests.helpers import free_port

FAST: dict[str, Any] = {"timeout": 3.0, "poll_interval": 0.1}

ZAP_REQUEST = json.dumps({"kind": 9734, "content": "great answer", "tags": [["p", "ab" * 32]]})

StartService = Callable[..., Awaitable[FakeNwcService]]
MakeWallet = Callable[..., NwcWallet]


@pytest.fixture
async def relay() -> AsyncIterator[RelayServer]:
    server = RelayServer(RelaySettings(host="127.0.0.1", port=0), MemoryStore())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def start_service(relay: RelayServer) -> AsyncIterator[StartService]:
    """``await start_service(**options)``: a started fake service; all stopped at the end."""
    started: list[FakeNwcService] = []

    async def start(**options: Any) -> FakeNwcService:
        service = FakeNwcService(relay.url, **options)
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


@pytest.fixture
async def service(start_service: StartService) -> FakeNwcService:
    return await start_service()


@pytest.fixture
async def wallets(start_service: StartService) -> AsyncIterator[MakeWallet]:
    """``wallets(uri, **options)``: wallets stopped before the services and the relay."""
    made: list[NwcWallet] = []

    def make(uri: str, **options: Any) -> NwcWallet:
        made.append(NwcWallet(uri, **{**FAST, **options}))
        return made[-1]

    yield make
    for wallet in made:
        await wallet.stop()


@pytest.fixture
def wallet(wallets: MakeWallet, service: FakeNwcService) -> NwcWallet:
    return wallets(service.uri)


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def foreign_invoice(amount_msat: int = 5_000) -> str:
    """A real BOLT11 invoice of some other node, which the fake service cannot pay."""
    tags = Tags()
    tags.add(TagChar.payment_hash, os.urandom(32).hex())
    tags.add(TagChar.payment_secret, os.urandom(32).hex())
    tags.add(TagChar.description, "elsewhere")
    invoice = Bolt11(
        currency="bcrt", date=int(time.time()), tags=tags, amount_msat=MilliSatoshi(amount_msat)
    )
    return str(bolt11.encode(invoice, os.urandom(32).hex()))


# --- invoices ----------------------------------------------------------------------


async def test_an_invoice_is_a_real_bolt11_invoice(wallet: NwcWallet, service: FakeNwcService):
    invoice = await wallet.create_invoice(21_000, label="job:1", description="a poem", expiry=600)

    decoded = bolt11.decode(invoice.bolt11)
    assert decoded.amount_msat == invoice.amount_msat == 21_000
    assert decoded.payment_hash == invoice.payment_hash
    assert decoded.description == invoice.description == "a poem"
    assert invoice.expires_at == decoded.date + 600
    assert invoice.label == "job:1"
    assert service.received[-1].method == "make_invoice"
    assert service.received[-1].params == {"amount": 21_000, "description": "a poem", "expiry": 600}


async def test_a_description_hash_invoice_commits_to_the_hash(wallet: NwcWallet):
    digest = hashlib.sha256(ZAP_REQUEST.encode()).digest()

    invoice = await wallet.create_invoice(
        1_000, label="zap:1", description=ZAP_REQUEST, description_hash=digest
    )

    assert bolt11.decode(invoice.bolt11).description_hash == digest.hex()
    assert invoice.description_hash == digest.hex()
    assert invoice.description == ""


async def test_an_invoice_that_ignores_the_description_hash_is_refused(
    wallet: NwcWallet, service: FakeNwcService, monkeypatch: pytest.MonkeyPatch
):
    encode = service._encode
    monkeypatch.setattr(service, "_encode", lambda *args: encode(*args[:4], "zap", ""))

    with pytest.raises(WalletError, match="does not commit to the description hash"):
        await wallet.create_invoice(
            1_000, label="zap:2", description="zap", description_hash=b"\x01" * 32
        )


# --- settlements -------------------------------------------------------------------


async def test_a_notification_reaches_on_settled_once(wallet: NwcWallet, service: FakeNwcService):
    settled: list[Settlement] = []
    await wallet.start(settled.append)
    invoice = await wallet.create_invoice(42_000, label="job:2", description="x")

    await service.settle(invoice.payment_hash)

    await until(lambda: len(settled) == 1)
    (settlement,) = settled
    assert settlement.payment_hash == invoice.payment_hash
    assert hashlib.sha256(bytes.fromhex(settlement.preimage)).hexdigest() == invoice.payment_hash
    assert settlement.amount_msat == 42_000
    assert settlement.label == "job:2"
    assert settlement.settled_at > 0
    # The service sent it twice (NIP-04 and NIP-44 kinds); it is reported once.
    assert {kind for kind, _ in service.notifications_sent} == {23196, 23197}
    await asyncio.sleep(0.3)
    assert len(settled) == 1
    assert "lookup_invoice" not in service.methods_received()


async def test_without_notifications_the_wallet_polls_lookup_invoice(
    start_service: StartService, wallets: MakeWallet
):
    service = await start_service(notifications=False)
    wallet = wallets(service.uri)
    settled: list[Settlement] = []
    await wallet.start(settled.append)
    invoice = await wallet.create_invoice(7_000, label="job:3", description="x")
    await asyncio.sleep(0.25)
    assert settled == []

    await service.settle(invoice.payment_hash)

    await until(lambda: len(settled) == 1)
    assert settled[0].label == "job:3"
    assert settled[0].amount_msat == 7_000
    assert service.notifications_sent == []
    assert "lookup_invoice" in service.methods_received()
    await asyncio.sleep(0.3)
    assert len(settled) == 1


async def test_polling_ends_when_the_invoice_expires(
    start_service: StartService, wallets: MakeWallet
):
    service = await start_service(notifications=False)
    wallet = wallets(service.uri)
    await wallet.start(lambda _: None)
    await wallet.create_invoice(1_000, label="job:4", description="x", expiry=1)

    await asyncio.sleep(1.6)
    lookups = service.methods_received().count("lookup_invoice")
    await asyncio.sleep(0.4)

    assert lookups > 0
    assert service.methods_received().count("lookup_invoice") == lookups


async def test_a_service_without_an_info_event_is_nip04_and_polled(
    start_service: StartService, wallets: MakeWallet
):
    service = await start_service(publish_info=False)
    wallet = wallets(service.uri)
    settled: list[Settlement] = []
    await wallet.start(settled.append)
    invoice = await wallet.create_invoice(1_000, label="job:5", description="x")

    await service.settle(invoice.payment_hash)

    await until(lambda: len(settled) == 1)
    assert {r.scheme for r in service.received} == {"nip04"}
    assert "lookup_invoice" in service.methods_received()


async def test_lookup_paid_unpaid_and_unknown(wallet: NwcWallet, service: FakeNwcService):
    invoice = await wallet.create_invoice(3_000, label="job:6", description="x")
    assert await wallet.lookup(invoice.payment_hash) is None
    assert await wallet.lookup(os.urandom(32).hex()) is None

    await service.settle(invoice.payment_hash)

    settlement = await wallet.lookup(invoice.payment_hash)
    assert settlement is not None
    assert settlement.payment_hash == invoice.payment_hash
    assert settlement.amount_msat == 3_000
    assert settlement.label == "job:6"
    assert hashlib.sha256(bytes.fromhex(settlement.preimage)).hexdigest() == invoice.payment_hash


def test_a_settlement_needs_a_preimage_that_hashes_to_the_payment_hash():
    preimage = os.urandom(32)
    paid = {
        "state": "settled",
        "payment_hash": hashlib.sha256(preimage).hexdigest(),
        "preimage": preimage.hex(),
        "amount": 5,
        "settled_at": 10,
    }
    assert settlement_of(paid) == Settlement(paid["payment_hash"], 5, preimage.hex(), 10)
    assert settlement_of({**paid, "preimage": os.urandom(32).hex()}) is None
    assert settlement_of({**paid, "state": "pending"}) is None
    legacy = {key: value for key, value in paid.items() if key != "state"}
    assert settlement_of(legacy) is not None  # older services: settled_at says it
    assert settlement_of({**legacy, "settled_at": None}) is None


# --- paying ------------------------------------------------------------------------


async def test_paying_an_invoice_returns_the_preimage(wallet: NwcWallet, service: FakeNwcService):
    settled: list[Settlement] = []
    await wallet.start(settled.append)
    invoice = await wallet.create_invoice(9_000, label="job:7", description="x")

    payment = await wallet.pay(invoice.bolt11)

    assert payment.payment_hash == invoice.payment_hash
    assert hashlib.sha256(bytes.fromhex(payment.preimage)).hexdigest() == invoice.payment_hash
    assert payment.amount_msat == 9_000
    assert payment.fee_msat == 0
    await until(lambda: len(settled) == 1)  # the fake paid itself: it notifies the receipt


async def test_a_failed_payment_is_payment_failed_with_the_code(wallet: NwcWallet):
    with pytest.raises(NwcPaymentFailed) as failed:
        await wallet.pay(foreign_invoice())

    assert isinstance(failed.value, PaymentFailed)
    assert failed.value.code == "PAYMENT_FAILED"
    assert "no route found" in str(failed.value)


@pytest.mark.parametrize(
    "code", ["INSUFFICIENT_BALANCE", "RATE_LIMITED", "QUOTA_EXCEEDED", "RESTRICTED", "INTERNAL"]
)
async def test_every_error_answer_to_pay_invoice_is_payment_failed(
    wallet: NwcWallet, service: FakeNwcService, code: str
):
    service.errors["pay_invoice"] = (code, "refused")

    with pytest.raises(PaymentFailed) as failed:
        await wallet.pay(foreign_invoice())

    assert isinstance(failed.value, NwcError)
    assert failed.value.code == code
    assert str(failed.value) == f"NWC pay_invoice: {code}: refused"


async def test_an_offer_is_not_payable_and_there_are_none(
    wallet: NwcWallet, service: FakeNwcService
):
    with pytest.raises(PaymentFailed, match="BOLT12"):
        await wallet.pay("lno1qgsqvgnwgcg35z6ee2h3yczraddm72xrfua9uve2rlrm9deu7xyfzrc")
    with pytest.raises(PaymentFailed, match="not a BOLT11 invoice"):
        await wallet.pay("lnbc1garbage")

    assert await wallet.offer("agent", "an agent") is None
    assert service.received == []


async def test_balance(wallet: NwcWallet, service: FakeNwcService):
    assert await wallet.balance() == service.balance_msat == 50_000_000


async def test_errors_of_other_methods_are_wallet_errors_with_the_code(
    wallet: NwcWallet, service: FakeNwcService
):
    service.errors["get_balance"] = ("RATE_LIMITED", "slow down")

    with pytest.raises(NwcError) as failed:
        await wallet.balance()

    assert not isinstance(failed.value, PaymentFailed)
    assert failed.value.code == "RATE_LIMITED"
    assert "slow down" in str(failed.value)


async def test_an_unknown_key_is_unauthorized(wallets: MakeWallet, service: FakeNwcService):
    stranger = wallets(service.uri_with(os.urandom(32)))

    with pytest.raises(NwcError) as failed:
        await stranger.balance()

    assert failed.value.code == "UNAUTHORIZED"


# --- encryption --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("advertised", "used"),
    [("nip44_v2 nip04", "nip44"), ("nip44_v2", "nip44"), ("nip04", "nip04"), (None, "nip04")],
)
async def test_nip44_preferred_and_nip04_spoken(
    start_service: StartService, wallets: MakeWallet, advertised: str | None, used: str
):
    service = await start_service(encryption=advertised)
    wallet = wallets(service.uri)
    settled: list[Settlement] = []
    await wallet.start(settled.append)

    invoice = await wallet.create_invoice(2_000, label="job:8", description="x")
    await service.settle(invoice.payment_hash)
    await until(lambda: len(settled) == 1)
    assert await wallet.balance() > 0
    with pytest.raises(PaymentFailed):
        await wallet.pay(foreign_invoice())

    assert {r.scheme for r in service.received} == {used}
    assert [r.method for r in service.received] == ["make_invoice", "get_balance", "pay_invoice"]


# --- timeouts, secrets, lifecycle --------------------------------------------------


async def test_no_answer_is_a_wallet_error_after_the_timeout(
    wallets: MakeWallet, service: FakeNwcService
):
    wallet = wallets(service.uri, timeout=0.5)
    await wallet.balance()  # connected
    service.unanswered.add("pay_invoice")

    began = time.monotonic()
    with pytest.raises(NwcNoAnswer) as failed:
        await wallet.pay(foreign_invoice())

    assert not isinstance(failed.value, PaymentFailed)  # it may still be paid
    assert 0.4 < time.monotonic() - began < 1.5
    assert "within 0.5 s" in str(failed.value)


async def test_unreachable_relays_are_a_wallet_error(wallets: MakeWallet):
    secret = os.urandom(32).hex()
    uri = f"nostr+walletconnect://{'ab' * 32}?relay=ws%3A%2F%2F127.0.0.1%3A{free_port()}&secret={secret}"
    wallet = wallets(uri, timeout=0.5)

    with pytest.raises(WalletError, match="did not answer") as failed:
        await wallet.start(lambda _: None)

    assert secret not in str(failed.value)


@pytest.mark.parametrize(
    "uri",
    [
        "https://{pub}?relay=wss%3A%2F%2Fr.example&secret={secret}",
        "nostr+walletconnect://{pub}?secret={secret}",
        "nostr+walletconnect://{pub}?relay=https%3A%2F%2Fr.example&secret={secret}",
        "nostr+walletconnect://{pub}?relay=wss%3A%2F%2Fr.example&secret={secret}zz",
        "nostr+walletconnect://{pub}?relay=wss%3A%2F%2Fr.example&secret={secret}&secret={secret}",
        "nostr+walletconnect://{pub}zz?relay=wss%3A%2F%2Fr.example&secret={secret}",
        "nostr+walletconnect://{pub}?relay=wss%3A%2F%2Fr.example&secret=" + "ff" * 32,
    ],
)
def test_a_bad_uri_is_refused_without_quoting_the_secret(uri: str):
    secret = os.urandom(32).hex()
    with pytest.raises(WalletError) as failed:
        NwcWallet(uri.format(pub="cd" * 32, secret=secret))
    assert secret not in str(failed.value)
    assert "ff" * 32 not in str(failed.value)


def test_the_uri_holds_relays_lud16_and_a_hidden_secret():
    secret = os.urandom(32)
    parsed = ConnectionUri.parse(
        f"nostr+walletconnect://{'CD' * 32}?relay=wss%3A%2F%2Fa.example&relay=wss://b.example"
        f"&secret={secret.hex()}&lud16=me%40example.com"
    )
    assert parsed.wallet_pubkey == "cd" * 32
    assert parsed.relays == ("wss://a.example", "wss://b.example")
    assert parsed.secret == secret
    assert parsed.lud16 == "me@example.com"
    assert secret.hex() not in repr(parsed)


async def test_the_secret_never_reaches_logs_errors_or_repr(
    wallets: MakeWallet, start_service: StartService, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    service = await start_service(notifications=False)
    wallet = wallets(service.uri, timeout=0.5)
    texts = [repr(wallet)]
    settled: list[Settlement] = []
    await wallet.start(settled.append)
    invoice = await wallet.create_invoice(1_000, label="job:9", description="x")
    await service.settle(invoice.payment_hash)
    await until(lambda: len(settled) == 1)
    service.errors["get_balance"] = ("INTERNAL", "boom")
    service.unanswered.add("lookup_invoice")
    for call in (
        wallet.pay(foreign_invoice()),
        wallet.balance(),
        wallet.lookup(invoice.payment_hash),
    ):
        with pytest.raises(WalletError) as failed:
            await call
        texts.append(str(failed.value))
    await wallet.stop()

    secret = service.client_secret.hex()
    assert len(texts) == 4
    assert all(secret not in text for text in texts)
    assert caplog.records  # the check below looked at something
    assert secret not in caplog.text
    assert secret.upper() not in caplog.text


async def test_stop_is_prompt_and_fails_what_waits(
    wallets: MakeWallet, start_service: StartService
):
    service = await start_service(notifications=False)
    wallet = wallets(service.uri, timeout=10.0)
    await wallet.start(lambda _: None)
    await wallet.create_invoice(1_000, label="job:10", description="x")
    service.unanswered.add("get_balance")
    waiting = asyncio.create_task(wallet.balance())
    await until(lambda: "get_balance" in service.methods_received())

    began = time.monotonic()
    await wallet.stop()

    assert time.monotonic() - began < 1.0
    with pytest.raises(WalletError, match="stopped"):
        await waiting


async def test_a_wallet_reconnects_after_stop(wallet: NwcWallet):
    await wallet.start(lambda _: None)
    await wallet.stop()
    await wallet.start(lambda _: None)
    assert await wallet.balance() == 50_000_000
