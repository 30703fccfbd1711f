"""The node's lifecycle: parts start in order, stop in reverse, on a signal, within a timeout."""

import asyncio
import json
import os
import signal

import pytest

from node.app import EmbeddedRelay, StartupError, relay_settings, run, serve
from node.config import NodeConfig, loads

HEX = "57fde8fa854468b1273a44d8cccc7900fe33b6cf4e4a34b1c4cef647a88dd603"


class FakePart:
    def __init__(self, name, journal, *, fail=False, stop_delay=0.0, on_start=None):
        self.name = name
        self.journal = journal
        self.fail = fail
        self.stop_delay = stop_delay
        self.on_start = on_start

    async def start(self):
        if self.fail:
            raise OSError("address already in use")
        self.journal.append(f"start {self.name}")
        if self.on_start:
            self.on_start()

    async def stop(self):
        await asyncio.sleep(self.stop_delay)
        self.journal.append(f"stop {self.name}")


async def test_parts_start_in_order_and_stop_in_reverse():
    journal = []
    stop = asyncio.Event()
    parts = [FakePart("relay", journal), FakePart("web", journal, on_start=stop.set)]
    await serve(parts, stop)
    assert journal == ["start relay", "start web", "stop web", "stop relay"]


async def test_a_part_that_fails_to_start_stops_the_ones_before_it():
    journal = []
    parts = [
        FakePart("relay", journal),
        FakePart("web", journal, fail=True),
        FakePart("x", journal),
    ]
    with pytest.raises(StartupError, match="web did not start: address already in use"):
        await serve(parts, asyncio.Event())
    assert journal == ["start relay", "stop relay"]


async def test_a_part_that_hangs_on_stop_is_left_behind(caplog):
    journal = []
    stop = asyncio.Event()
    stop.set()
    parts = [FakePart("relay", journal), FakePart("web", journal, stop_delay=60)]
    await serve(parts, stop, shutdown_timeout=0.05)
    assert journal == ["start relay", "start web", "stop relay"]
    assert "web did not stop within" in caplog.text


def send_signal_soon(sig, delay=0.05):
    asyncio.get_running_loop().call_later(delay, os.kill, os.getpid(), sig)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_stops_cleanly_on_a_signal(sig):
    journal = []
    part = FakePart("relay", journal, on_start=lambda: send_signal_soon(sig))
    assert run([part]) == 0
    assert journal == ["start relay", "stop relay"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers are given back


def test_a_second_signal_exits_without_waiting():
    journal = []

    def two_signals():
        send_signal_soon(signal.SIGTERM, 0.05)
        send_signal_soon(signal.SIGTERM, 0.2)

    part = FakePart("relay", journal, stop_delay=30, on_start=two_signals)
    assert run([part], shutdown_timeout=30) == 1
    assert journal == ["start relay"]


def test_the_node_key_is_the_relay_operator_unless_configured():
    assert relay_settings(NodeConfig(), HEX).operator_pubkey == HEX
    assert relay_settings(NodeConfig(), "").operator_pubkey == ""
    other = "ab" * 32
    config = loads(f'[relay]\noperator_pubkey = "{other}"')
    assert relay_settings(config, HEX).operator_pubkey == other


async def test_embedded_relay_serves_and_stops(tmp_path):
    pytest.importorskip("relay.server")
    pytest.importorskip("relay.store.sqlite")
    from websockets.asyncio.client import connect

    settings = NodeConfig().with_overrides(relay_port=0).relay
    relay = EmbeddedRelay(settings, tmp_path / "relay.sqlite3")
    await relay.start()
    try:
        async with connect(relay.url) as ws:
            await ws.send(json.dumps(["REQ", "s", {"limit": 1}]))
            assert json.loads(await ws.recv()) == ["EOSE", "s"]
    finally:
        await relay.stop()
    assert (tmp_path / "relay.sqlite3").exists()


async def test_the_whole_node_serves_a_job_and_reports_it_in_metrics(tmp_path):
    """relay + links + engine as `timmy run` wires them; one job; /metrics shows it."""
    import time
    import urllib.request

    from nostr_sdk import Keys

    from nips.nip01 import Signer
    from node.links import RelayLink
    from tests.helpers import node_in_process

    config = loads('[relay]\nport = 0\n[web]\nport = 0\n[[agents]]\nname = "summarizer"\nkinds = [5001]\n')
    identities = {"node": Keys.generate(), "agent-summarizer": Keys.generate()}
    async with node_in_process(config, tmp_path, identities) as parts:
        # started in this order
        assert list(parts) == ["relay", "links", "wallet", "reputation", "blobs", "memory", "engine", "web"]
        url = parts["relay"].url
        link = RelayLink(url)
        await link.start()
        customer = Signer(os.urandom(32))
        request = customer.sign(5001, "", [["i", "One. Two words here. Three.", "text"]], created_at=int(time.time()))
        assert (await link.publish(request))[0]
        for _ in range(100):
            if await link.query([{"kinds": [6001], "#e": [request.id]}]):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("no result")
        await link.stop()
        await asyncio.sleep(0.2)
        http = url.replace("ws://", "http://") + "/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(http, timeout=5).read().decode())
        assert 'dvm_job_transitions_total{kind="5001",state="done"} 1.0' in text
        assert 'dvm_requests_total{kind="5001"} 1.0' in text
        assert "relay_events_stored_total" in text
        assert (tmp_path / "node.sqlite3").exists()
