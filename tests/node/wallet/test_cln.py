"""node/wallet/cln.py against a fake Core Lightning on a real unix socket (tests/fakes/cln_rpc.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import bolt11
import pytest
from pyln.client import LightningRpc, RpcError

from nips import bolt12
from node.wallet import PaymentFailed, Settlement, WalletError
from node.wallet.cln import ClnWallet
from tests.fakes.cln_rpc import FakeCln, split_json_object

FAST = {"wait_timeout": 5, "min_backoff": 0.02, "max_backoff": 0.1}

# A zap request is longer than BOLT11's 639-byte description field.
ZAP_REQUEST = json.dumps(
    {"kind": 9734, "content": "great answer " * 40, "tags": [["p", "ab" * 32], ["amount", "21000"]]}
)


@pytest.fixture
def socket_path() -> Iterator[Path]:
    # Not tmp_path: a unix socket path must stay under ~107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="cln", dir="/tmp"))
    yield folder / "lightning-rpc"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def fake(socket_path: Path) -> AsyncIterator[FakeCln]:
    async with FakeCln(socket_path) as server:
        yield server


@pytest.fixture
async def wallets(socket_path: Path, fake: FakeCln) -> AsyncIterator[Callable[[], ClnWallet]]:
    """``wallets()`` makes a wallet on the fake's socket; each is stopped before the fake."""
    made: list[ClnWallet] = []

    def make() -> ClnWallet:
        made.append(ClnWallet(socket_path, **FAST))
        return made[-1]

    yield make
    for wallet in made:
        await wallet.stop()


@pytest.fixture
def wallet(wallets: Callable[[], ClnWallet]) -> ClnWallet:
    return wallets()


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def started(wallet: ClnWallet, fake: FakeCln) -> list[Settlement]:
    """Start ``wallet``; returns the list its settlements land in, once it is waiting."""
    settled: list[Settlement] = []
    waiting = fake.waiting
    await wallet.start(settled.append)
    await until(lambda: fake.waiting > waiting)
    return settled


async def invoice_by_rpc(fake: FakeCln, label: str) -> None:
    """An invoice made by some other client of the node."""
    rpc = LightningRpc(str(fake.socket_path))
    await asyncio.to_thread(rpc.invoice, 1000, label, f"invoice {label}")


# --- invoices ---------------------------------------------------------------------


async def test_invoice_is_a_signed_bolt11_of_the_node(wallet: ClnWallet, fake: FakeCln) -> None:
    before = int(time.time())
    invoice = await wallet.create_invoice(21_000, label="job:1", description="summarise this")

    decoded = bolt11.decode(invoice.bolt11)  # checks the signature
    assert invoice.bolt11.startswith("lnbcrt210n1")
    assert decoded.amount_msat == 21_000 == invoice.amount_msat
    assert decoded.payment_hash == invoice.payment_hash
    assert decoded.description == "summarise this" == invoice.description
    assert decoded.description_hash is None
    assert decoded.payee == fake.node_id
    assert decoded.expiry == 3600
    assert before + 3600 <= invoice.expires_at <= int(time.time()) + 3600
    assert (invoice.label, invoice.description_hash) == ("job:1", "")


async def test_zap_invoice_commits_to_the_description_hash(
    wallet: ClnWallet, fake: FakeCln
) -> None:
    digest = hashlib.sha256(ZAP_REQUEST.encode()).digest()
    invoice = await wallet.create_invoice(
        21_000, label="zap:1", description=ZAP_REQUEST, description_hash=digest
    )

    decoded = bolt11.decode(invoice.bolt11)
    assert decoded.description_hash == digest.hex() == invoice.description_hash
    assert decoded.description is None
    assert invoice.description == ""
    method, params = fake.calls[-1]
    assert method == "invoice" and params["deschashonly"] is True


async def test_description_hash_must_be_of_the_description(
    wallet: ClnWallet, fake: FakeCln
) -> None:
    with pytest.raises(WalletError, match="sha256"):
        await wallet.create_invoice(
            1000, label="zap:2", description="not it", description_hash=b"\x00" * 32
        )
    assert fake.calls == []


async def test_long_description_without_hash_is_refused(wallet: ClnWallet, fake: FakeCln) -> None:
    with pytest.raises(WalletError, match="Descriptions greater than 639 bytes"):
        await wallet.create_invoice(1000, label="long", description=ZAP_REQUEST)


async def test_duplicate_label_is_a_wallet_error(wallet: ClnWallet, fake: FakeCln) -> None:
    await wallet.create_invoice(1000, label="job:dup", description="one")
    with pytest.raises(WalletError, match="Duplicate label 'job:dup'"):
        await wallet.create_invoice(2000, label="job:dup", description="two")


# --- settlements ------------------------------------------------------------------


async def test_each_payment_reaches_on_settled_once(wallet: ClnWallet, fake: FakeCln) -> None:
    early = await wallet.create_invoice(1000, label="early", description="paid before start")
    fake.settle("early")
    first = await wallet.create_invoice(5000, label="job:a", description="a")
    second = await wallet.create_invoice(7000, label="job:b", description="b")
    settled = await started(wallet, fake)

    fake.settle("job:a", 5500)  # payers may overpay
    fake.settle("job:b")
    await until(lambda: len(settled) == 2)
    await asyncio.sleep(0.1)

    assert [s.payment_hash for s in settled] == [first.payment_hash, second.payment_hash]
    assert early.payment_hash not in {s.payment_hash for s in settled}
    assert [(s.label, s.amount_msat) for s in settled] == [("job:a", 5500), ("job:b", 7000)]
    for s in settled:
        assert hashlib.sha256(bytes.fromhex(s.preimage)).hexdigest() == s.payment_hash
        assert abs(s.settled_at - time.time()) < 5
        assert (s.offer_id, s.payer_note) == ("", "")


async def test_restart_resumes_and_a_new_wallet_uses_lookup(
    wallets: Callable[[], ClnWallet], fake: FakeCln
) -> None:
    for label in ("a", "b", "c"):
        await invoice_by_rpc(fake, label)
    wallet = wallets()
    settled = await started(wallet, fake)
    fake.settle("a")
    await until(lambda: len(settled) == 1)

    await wallet.stop()
    fake.settle("b")  # while stopped
    await wallet.start(settled.append)  # the same object resumes from its pay_index
    await until(lambda: len(settled) == 2)
    await wallet.stop()

    fresh = wallets()  # a new process: starts from the present
    later = await started(fresh, fake)
    paid_b = await fresh.lookup(settled[1].payment_hash)
    fake.settle("c")
    await until(lambda: len(later) == 1)
    await asyncio.sleep(0.1)

    assert [s.label for s in settled] == ["a", "b"]
    assert paid_b == settled[1]
    assert [s.label for s in later] == ["c"]


async def test_reconnects_after_the_socket_goes_away(wallet: ClnWallet, fake: FakeCln) -> None:
    await wallet.create_invoice(1000, label="during-outage", description="x")
    settled = await started(wallet, fake)

    await fake.stop()
    fake.settle("during-outage")
    await asyncio.sleep(0.2)  # a few failed reconnections
    assert settled == []
    await fake.start()

    await until(lambda: len(settled) == 1)
    assert settled[0].label == "during-outage"


async def test_a_failing_callback_does_not_stop_the_stream(
    wallet: ClnWallet, fake: FakeCln
) -> None:
    seen: list[str] = []

    def on_settled(settlement: Settlement) -> None:
        seen.append(settlement.label)
        raise RuntimeError("engine bug")

    await wallet.create_invoice(1000, label="one", description="x")
    await wallet.create_invoice(1000, label="two", description="x")
    await wallet.start(on_settled)
    fake.settle("one")
    fake.settle("two")
    await until(lambda: seen == ["one", "two"])


async def test_stop_is_prompt_while_waitanyinvoice_blocks(wallet: ClnWallet, fake: FakeCln) -> None:
    await started(wallet, fake)
    assert fake.waiting == 1
    began = time.monotonic()
    await wallet.stop()
    assert time.monotonic() - began < 1.0


async def test_start_fails_when_the_node_is_unreachable(socket_path: Path) -> None:
    wallet = ClnWallet(socket_path, **FAST)
    with pytest.raises(WalletError, match="Core Lightning"):
        await wallet.start(lambda s: None)


# --- lookup -----------------------------------------------------------------------


async def test_lookup_paid_unpaid_and_unknown(wallet: ClnWallet, fake: FakeCln) -> None:
    invoice = await wallet.create_invoice(3000, label="look", description="x")
    assert await wallet.lookup(invoice.payment_hash) is None

    fake.settle("look")
    found = await wallet.lookup(invoice.payment_hash)
    assert found is not None
    assert (found.payment_hash, found.amount_msat, found.label) == (
        invoice.payment_hash,
        3000,
        "look",
    )
    assert hashlib.sha256(bytes.fromhex(found.preimage)).hexdigest() == invoice.payment_hash

    assert await wallet.lookup("00" * 32) is None
    with pytest.raises(WalletError, match="32 byte hex"):
        await wallet.lookup("not-a-hash")


# --- paying -----------------------------------------------------------------------


async def test_pay_succeeds_with_preimage_and_fee(wallet: ClnWallet, fake: FakeCln) -> None:
    external = fake.external_invoice(100_000)
    payment = await wallet.pay(external)
    assert payment.amount_msat == 100_000
    assert payment.fee_msat == 101
    assert payment.payment_hash == bolt11.decode(external).payment_hash
    assert hashlib.sha256(bytes.fromhex(payment.preimage)).hexdigest() == payment.payment_hash


async def test_paying_an_own_invoice_settles_it(wallet: ClnWallet, fake: FakeCln) -> None:
    invoice = await wallet.create_invoice(2000, label="self", description="x")
    settled = await started(wallet, fake)
    payment = await wallet.pay(invoice.bolt11)
    await until(lambda: len(settled) == 1)
    assert settled[0].payment_hash == payment.payment_hash == invoice.payment_hash
    assert settled[0].preimage == payment.preimage


async def test_pay_failures_are_payment_failed(wallet: ClnWallet, fake: FakeCln) -> None:
    with pytest.raises(PaymentFailed, match="Could not find a route"):
        await wallet.pay(fake.external_invoice(1000, routable=False))
    with pytest.raises(PaymentFailed, match="Invalid bolt11"):
        await wallet.pay("lnbcrt1garbage")
    with pytest.raises(PaymentFailed, match="amount_msat parameter unnecessary"):
        await wallet.pay(fake.external_invoice(1000), amount_msat=1000)


async def test_pay_outcome_unknown_when_the_socket_is_gone(
    wallet: ClnWallet, fake: FakeCln
) -> None:
    await fake.stop()
    with pytest.raises(WalletError) as caught:
        await wallet.pay(fake.external_invoice(1000))
    assert not isinstance(caught.value, PaymentFailed)


# --- offers -----------------------------------------------------------------------


async def test_offer_is_persistent_per_label(wallet: ClnWallet, fake: FakeCln) -> None:
    first = await wallet.offer("agent:a", "Timmy agent a")
    again = await wallet.offer("agent:a", "Timmy agent a")
    other = await wallet.offer("agent:b", "Timmy agent b")

    assert first is not None and first.startswith("lno1")
    assert again == first
    assert other not in (None, first)
    assert [method for method, _ in fake.calls].count("offer") == 2
    assert bolt12.decode_offer(first).description == "Timmy agent a"


async def test_paying_an_offer_settles_with_offer_id_and_note(
    wallet: ClnWallet, fake: FakeCln
) -> None:
    offer = await wallet.offer("agent:a", "Timmy agent a")
    assert offer is not None
    offer_id = bolt12.offer_id(bolt12.decode_offer(offer))
    settled = await started(wallet, fake)

    payment = await wallet.pay(offer, amount_msat=4000)
    rpc = LightningRpc(str(fake.socket_path))
    fetched = await asyncio.to_thread(rpc.fetchinvoice, offer, 6000, payer_note="job 42")
    await wallet.pay(fetched["invoice"])
    await until(lambda: len(settled) == 2)

    assert payment.amount_msat == 4000
    assert [(s.amount_msat, s.offer_id, s.payer_note) for s in settled] == [
        (4000, offer_id, ""),
        (6000, offer_id, "job 42"),
    ]
    with pytest.raises(PaymentFailed, match="amount_msat parameter required"):
        await wallet.pay(offer)


# --- balance ----------------------------------------------------------------------


async def test_balance_counts_normal_connected_channels(wallet: ClnWallet, fake: FakeCln) -> None:
    def channel(ours: int, state: str = "CHANNELD_NORMAL", connected: bool = True) -> dict:
        return {
            "state": state,
            "connected": connected,
            "our_amount_msat": ours,
            "amount_msat": 10**9,
        }

    fake.channels = [
        channel(300_000),
        channel(200_000),
        channel(50_000, connected=False),
        channel(70_000, state="CHANNELD_AWAITING_LOCKIN"),
    ]
    assert await wallet.balance() == 500_000


# --- the fake itself --------------------------------------------------------------


async def test_the_fake_answers_like_cln(fake: FakeCln) -> None:
    rpc = LightningRpc(str(fake.socket_path))
    with pytest.raises(RpcError) as unknown:
        await asyncio.to_thread(rpc.call, "frobnicate")
    assert unknown.value.error == {"code": -32601, "message": "Unknown command 'frobnicate'"}

    with pytest.raises(RpcError) as bad:
        await asyncio.to_thread(rpc.call, "invoice", {"amount_msat": 1, "label": "x"})
    assert bad.value.error == {"code": -32602, "message": "missing required parameter: description"}

    with pytest.raises(RpcError) as timed_out:
        await asyncio.to_thread(rpc.waitanyinvoice, 0, 0)
    assert timed_out.value.error["code"] == 904

    made = await asyncio.to_thread(rpc.call, "invoice", ["any", 7, "by position"])
    listed = await asyncio.to_thread(rpc.listinvoices, "7")
    assert listed["invoices"][0]["payment_hash"] == made["payment_hash"]
    assert "amount_msat" not in listed["invoices"][0]


def test_split_json_object_finds_object_boundaries() -> None:
    assert split_json_object(b'{"a": "}{\\""}{"b"') == (b'{"a": "}{\\""}', b'{"b"')
    assert split_json_object(b'  {"a": [1, {"b": 2}') is None
    with pytest.raises(ValueError):
        split_json_object(b"[1]")
