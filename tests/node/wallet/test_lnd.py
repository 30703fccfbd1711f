"""The lnd wallet against a fake lnd that speaks lnd's gRPC (tests/fakes/lnd_grpc.py).

The fake serves lnd's real protos over TLS and checks macaroons the way lnd
does, so these tests exercise the wallet's wire, credentials and streams; what
they cannot show is real routing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import bolt11
import grpc
import pytest
from lndgrpc.compiled import lightning_pb2 as ln
from lndgrpc.compiled import lightning_pb2_grpc as ln_grpc

from node.wallet import PaymentFailed, Settlement, WalletError
from node.wallet.lnd import LndWallet, _bolt11_amount_msat
from tests.fakes.lnd_grpc import FakeLnd, make_invoice, make_tls_identity


class Settlements(list[Settlement]):
    def __call__(self, settlement: Settlement) -> None:
        self.append(settlement)

    def hashes(self) -> list[str]:
        return [s.payment_hash for s in self]


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
async def lnd() -> AsyncIterator[FakeLnd]:
    async with FakeLnd() as fake:
        yield fake


def wallet_for(lnd: FakeLnd, directory: Path, **options: Path) -> LndWallet:
    cert, macaroon = lnd.write_credentials(directory)
    return LndWallet(lnd.host, cert, macaroon, **options)


@pytest.fixture
async def wallet(lnd: FakeLnd, tmp_path: Path) -> AsyncIterator[tuple[LndWallet, Settlements]]:
    wallet, seen = wallet_for(lnd, tmp_path), Settlements()
    await wallet.start(seen)
    yield wallet, seen
    await wallet.stop()


# --- invoices ------------------------------------------------------------------------


async def test_invoice_is_a_real_bolt11_of_the_node(
    wallet: tuple[LndWallet, Settlements], lnd: FakeLnd
) -> None:
    w, _ = wallet
    invoice = await w.create_invoice(21_000, label="job:1", description="a summary", expiry=600)
    decoded = bolt11.decode(invoice.bolt11)
    assert decoded.amount_msat == invoice.amount_msat == 21_000
    assert decoded.payment_hash == invoice.payment_hash
    assert decoded.description == invoice.description == "a summary"
    assert decoded.payee == lnd.node_id  # signed by the node's key
    assert invoice.expires_at == decoded.date + 600
    assert invoice.label == "job:1"
    assert lnd.invoices[invoice.payment_hash].memo == "a summary"


async def test_description_hash_invoice_commits_to_the_hash(
    wallet: tuple[LndWallet, Settlements],
) -> None:
    w, _ = wallet
    zap_request = b'{"kind":9734,"content":"zap"}'
    digest = hashlib.sha256(zap_request).digest()
    invoice = await w.create_invoice(1_000, label="zap:1", description_hash=digest)
    decoded = bolt11.decode(invoice.bolt11)
    assert decoded.description_hash == invoice.description_hash == digest.hex()
    assert decoded.description is None
    assert invoice.description == ""


async def test_refuses_a_bad_amount_and_a_label_used_twice(
    wallet: tuple[LndWallet, Settlements],
) -> None:
    w, _ = wallet
    with pytest.raises(WalletError, match="positive"):
        await w.create_invoice(0, label="nothing")
    await w.create_invoice(1_000, label="once")
    with pytest.raises(WalletError, match="duplicate label"):
        await w.create_invoice(1_000, label="once")


async def test_lnd_refusing_an_invoice_is_a_wallet_error(
    wallet: tuple[LndWallet, Settlements],
) -> None:
    w, _ = wallet
    with pytest.raises(WalletError, match="AddInvoice: UNKNOWN: description hash must be 32 bytes"):
        await w.create_invoice(1_000, label="short", description_hash=b"\x01" * 5)


# --- settlements -----------------------------------------------------------------------


async def test_each_settlement_is_reported_once_across_a_wallet_restart(
    lnd: FakeLnd, tmp_path: Path
) -> None:
    state = tmp_path / "wallet-lnd.json"
    first, seen = wallet_for(lnd, tmp_path, state_file=state), Settlements()
    await first.start(seen)
    a = await first.create_invoice(1_000, label="a")
    b = await first.create_invoice(2_000, label="b")
    lnd.settle(a.payment_hash)
    await eventually(lambda: len(seen) == 1)
    assert seen[0].label == "a"
    await first.stop()

    lnd.settle(b.payment_hash, 2_500)  # paid while the wallet is down, and overpaid
    second = wallet_for(lnd, tmp_path, state_file=state)
    await second.start(seen)
    c = await second.create_invoice(3_000, label="c")
    lnd.settle(c.payment_hash)
    await eventually(lambda: len(seen) == 3)
    await asyncio.sleep(0.1)  # room for a duplicate to show up
    await second.stop()

    assert seen.hashes() == [a.payment_hash, b.payment_hash, c.payment_hash]
    assert seen[1].amount_msat == 2_500
    assert seen[1].label == ""  # lnd keeps no labels; the first process knew it
    assert seen[2].label == "c"
    for settlement in seen:
        assert (
            hashlib.sha256(bytes.fromhex(settlement.preimage)).hexdigest()
            == settlement.payment_hash
        )


async def test_settlements_resume_after_lnd_restarts(
    lnd: FakeLnd, wallet: tuple[LndWallet, Settlements], caplog: pytest.LogCaptureFixture
) -> None:
    w, seen = wallet
    early = await w.create_invoice(1_000, label="early")
    lnd.settle(early.payment_hash)
    await eventually(lambda: len(seen) == 1)

    caplog.set_level(logging.DEBUG)
    late = await w.create_invoice(1_000, label="late")
    await lnd.restart()  # the subscription breaks; the wallet subscribes again
    lnd.settle(late.payment_hash)
    await eventually(lambda: len(seen) == 2, seconds=8)
    assert seen.hashes() == [early.payment_hash, late.payment_hash]
    assert "SubscribeInvoices" in caplog.text
    assert lnd.macaroon.hex() not in caplog.text


async def test_lookup(wallet: tuple[LndWallet, Settlements], lnd: FakeLnd) -> None:
    w, _ = wallet
    invoice = await w.create_invoice(5_000, label="job:7")
    assert await w.lookup(invoice.payment_hash) is None  # unpaid
    lnd.settle(invoice.payment_hash)
    found = await w.lookup(invoice.payment_hash)
    assert found is not None
    assert (found.payment_hash, found.amount_msat, found.label) == (
        invoice.payment_hash,
        5_000,
        "job:7",
    )
    assert hashlib.sha256(bytes.fromhex(found.preimage)).hexdigest() == invoice.payment_hash
    assert await w.lookup(os.urandom(32).hex()) is None  # not an invoice of this node
    with pytest.raises(WalletError, match="not a payment hash"):
        await w.lookup("xyz")


# --- payments ------------------------------------------------------------------------------


async def test_paying_an_invoice_of_the_node_settles_it(
    wallet: tuple[LndWallet, Settlements],
) -> None:
    w, seen = wallet
    invoice = await w.create_invoice(7_000, label="self")
    payment = await w.pay(invoice.bolt11)
    assert (payment.payment_hash, payment.amount_msat, payment.fee_msat) == (
        invoice.payment_hash,
        7_000,
        0,
    )
    assert hashlib.sha256(bytes.fromhex(payment.preimage)).hexdigest() == invoice.payment_hash
    await eventually(lambda: seen.hashes() == [invoice.payment_hash])
    with pytest.raises(PaymentFailed, match="ALREADY_EXISTS: invoice is already paid"):
        await w.pay(invoice.bolt11)


async def test_paying_an_external_invoice(
    lnd: FakeLnd, wallet: tuple[LndWallet, Settlements]
) -> None:
    w, _ = wallet
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    lnd.payable[payment_hash.hex()] = preimage
    before = await w.balance()
    payment = await w.pay(make_invoice(os.urandom(32), 250_000, payment_hash))
    assert payment.preimage == preimage.hex()
    assert payment.fee_msat == 1_000
    assert await w.balance() == before - 251_000


async def test_paying_an_invoice_without_an_amount(
    lnd: FakeLnd, wallet: tuple[LndWallet, Settlements]
) -> None:
    w, _ = wallet
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    lnd.payable[payment_hash.hex()] = preimage
    invoice = make_invoice(os.urandom(32), 0, payment_hash)
    with pytest.raises(PaymentFailed, match="no amount"):
        await w.pay(invoice)
    payment = await w.pay(invoice, amount_msat=12_000)
    assert payment.amount_msat == 12_000


async def test_payment_failures(wallet: tuple[LndWallet, Settlements]) -> None:
    w, _ = wallet
    unroutable = make_invoice(os.urandom(32), 1_000, os.urandom(32))
    with pytest.raises(PaymentFailed, match="FAILURE_REASON_NO_ROUTE"):
        await w.pay(unroutable)
    with pytest.raises(PaymentFailed, match="asks for 1000 msat, not 2000"):
        await w.pay(unroutable, amount_msat=2_000)
    expired = make_invoice(
        os.urandom(32), 1_000, os.urandom(32), expiry=60, created=int(time.time()) - 120
    )
    with pytest.raises(PaymentFailed, match="SendPaymentV2: UNKNOWN: invoice expired"):
        await w.pay(expired)
    with pytest.raises(PaymentFailed, match="not a BOLT11 invoice"):
        await w.pay("hello")


async def test_bolt12_is_not_for_lnd(wallet: tuple[LndWallet, Settlements], lnd: FakeLnd) -> None:
    w, _ = wallet
    with pytest.raises(PaymentFailed, match="cannot pay BOLT12 offers"):
        await w.pay(
            "lno1pgx9getnwss8vetrw3hhyuckyypwa3eyt44h6txtxquqh7lz5djge4afgfjn7k4rgrkuag0jsd5xvxg"
        )
    assert await w.offer("summarizer", "summaries") is None
    assert "SendPaymentV2" not in lnd.calls


async def test_balance_is_the_local_channel_balance(
    wallet: tuple[LndWallet, Settlements], lnd: FakeLnd
) -> None:
    w, _ = wallet
    assert await w.balance() == lnd.balance_msat == 5_000_000_000


@pytest.mark.parametrize(
    ("hrp", "msat"),
    [  # the human-readable parts of BOLT 11's examples, and regtest
        ("lnbc", None),
        ("lnbc2500u", 250_000_000),
        ("lnbc20m", 2_000_000_000),
        ("lntb20m", 2_000_000_000),
        ("lnbc9678785340p", 967_878_534),
        ("lnbcrt210n", 21_000),
        ("LNBC1", 100_000_000_000),
    ],
)
def test_amount_read_from_an_invoice(hrp: str, msat: int | None) -> None:
    assert _bolt11_amount_msat(hrp + "1pvjluez") == msat


# --- credentials and connection -------------------------------------------------------------


async def test_a_wrong_macaroon_is_refused(
    lnd: FakeLnd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cert, macaroon = lnd.write_credentials(tmp_path)
    wrong = b"\x02\x01\x03lnd" + os.urandom(60)
    macaroon.write_bytes(wrong)
    wallet = LndWallet(lnd.host, cert, macaroon)
    with pytest.raises(WalletError) as refused:
        await wallet.start(Settlements())
    message = str(refused.value)
    assert "UNKNOWN: verification failed: signature mismatch after caveat verification" in message
    assert "lnd_macaroon" in message
    for secret in (wrong.hex(), lnd.macaroon.hex()):
        assert secret not in message
        assert secret not in caplog.text
    assert lnd.calls == []
    await wallet.stop()


async def test_the_fake_answers_as_lnd_without_a_macaroon(lnd: FakeLnd) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=lnd.tls_cert)
    async with grpc.aio.secure_channel(lnd.host, credentials) as channel:
        stub = ln_grpc.LightningStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetInfo(ln.GetInfoRequest())
        assert (missing.value.code(), missing.value.details()) == (
            grpc.StatusCode.UNKNOWN,
            "expected 1 macaroon, got 0",
        )
        metadata = (("macaroon", lnd.macaroon.hex()),)
        with pytest.raises(grpc.aio.AioRpcError) as unimplemented:
            await stub.ListChannels(ln.ListChannelsRequest(), metadata=metadata)
        assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_wrong_tls_certificate_does_not_connect(lnd: FakeLnd, tmp_path: Path) -> None:
    cert, macaroon = lnd.write_credentials(tmp_path)
    cert.write_bytes(make_tls_identity()[0])  # another node's certificate
    wallet = LndWallet(lnd.host, cert, macaroon)
    with pytest.raises(WalletError) as refused:
        await wallet.start(Settlements())
    assert f"lnd at {lnd.host}: connecting: UNAVAILABLE" in str(refused.value)
    assert "lnd_tls_cert" in str(refused.value)
    assert lnd.calls == []
    await wallet.stop()


async def test_nothing_listening(tmp_path: Path) -> None:
    fake = FakeLnd()
    cert, macaroon = fake.write_credentials(tmp_path)
    wallet = LndWallet("127.0.0.1:9", cert, macaroon)
    with pytest.raises(WalletError, match=r"UNAVAILABLE.*is lnd running"):
        await wallet.start(Settlements())
    with pytest.raises(WalletError, match="not started"):
        await wallet.balance()


async def test_unreadable_credentials(tmp_path: Path) -> None:
    wallet = LndWallet("127.0.0.1:10009", tmp_path / "tls.cert", tmp_path / "admin.macaroon")
    with pytest.raises(WalletError, match=r"cannot read .*tls\.cert"):
        await wallet.start(Settlements())


async def test_stop_is_prompt(lnd: FakeLnd, tmp_path: Path) -> None:
    wallet = wallet_for(lnd, tmp_path)
    await wallet.start(Settlements())
    await eventually(lambda: "SubscribeInvoices" in lnd.calls)
    started = time.monotonic()
    await wallet.stop()
    assert time.monotonic() - started < 0.5
    await wallet.stop()  # twice is harmless
