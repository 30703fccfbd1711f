"""The node's wiring and lifecycle: start its parts, run until a signal, stop them.

The lifecycle follows uvicorn's server: start every part in order, wait for
SIGINT or SIGTERM, then stop the started parts in reverse order, each within a
timeout. A second signal stops waiting and exits at once.

A part is anything with a ``name``, ``async start()`` and ``async stop()``.
``timmy run`` starts, in order: the embedded relay, the links (connections to
the home relay and the federation relays), the wallet, the job engine (which
reaches every relay through the links) and the web app (LNURL-pay, zaps).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from node.keys import AGENT_PREFIX, NODE_KEY

if TYPE_CHECKING:
    from nostr_sdk import Keys
    from prometheus_client import CollectorRegistry

    from dvm.engine import Engine
    from dvm.memory import MemoryService
    from dvm.store import JobStore
    from nips.nip01 import Signer
    from node.config import NodeConfig, WalletSettings
    from node.links import RelayPool
    from node.wallet import OnSettled, Settlement, Wallet
    from node.zaps import Zaps
    from relay.server import RelayServer
    from relay.settings import RelaySettings
    from relay.store.sqlite import SqliteStore
    from reputation.service import ReputationService

log = logging.getLogger(__name__)

RELAY_DB = "relay.sqlite3"
NODE_DB = "node.sqlite3"
BLOBS_DIR = "blobs"
MEMORY_DB = "memory.sqlite3"
DEV_WALLET_DB = "wallet-dev.sqlite3"
SHUTDOWN_TIMEOUT = 10.0  # seconds per part; then we leave it behind and exit


class Part(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StartupError(Exception):
    """Raised when a part fails to start; the parts already started were stopped."""


class EmbeddedRelay:
    """The node's own relay: a SQLite store behind a websocket server."""

    name = "relay"

    def __init__(
        self, settings: RelaySettings, db_path: Path, registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.db_path = db_path
        self.registry = registry
        self._store: SqliteStore | None = None
        self._server: RelayServer | None = None

    async def start(self) -> None:
        # Imported here so `timmy --help` and the lifecycle tests need no relay stack.
        from relay.metrics import RelayMetrics
        from relay.server import RelayServer
        from relay.store.sqlite import SqliteStore

        self._store = SqliteStore(self.db_path, synchronous=self.settings.sqlite_synchronous)
        await self._store.open()
        try:
            server = RelayServer(self.settings, self._store, metrics=RelayMetrics(self.registry))
            await server.start()
        except BaseException:
            await self._store.close()  # a part that failed to start is not stopped: clean up here
            raise
        self._server = server
        log.info("relay ready at %s, events in %s", self.url, self.db_path)
        if self.settings.public_url:
            log.info("relay public URL: %s", self.settings.public_url)

    @property
    def url(self) -> str:
        """Where the relay listens once started: the real port when configured with 0."""
        assert self._server is not None, "call start() first"
        return self._server.url

    async def stop(self) -> None:
        # The server first: it may still be writing accepted events to the store.
        if self._server is not None:
            await self._server.stop()
        if self._store is not None:
            await self._store.close()


def relay_settings(config: NodeConfig, node_pubkey_hex: str) -> RelaySettings:
    """The configured relay; the node's key is its NIP-11 operator unless node.toml names one."""
    if config.relay.operator_pubkey or not node_pubkey_hex:
        return config.relay
    return dataclasses.replace(config.relay, operator_pubkey=node_pubkey_hex)


class Links:
    """Connections to the home relay and the federation relays, shared by the node's parts."""

    name = "links"

    def __init__(self, home: Callable[[], str], federation: Sequence[str], signer: Signer) -> None:
        self._home = home
        self.federation = tuple(federation)
        self.signer = signer
        self._pool: RelayPool | None = None
        self.home_url = ""

    @property
    def pool(self) -> RelayPool:
        assert self._pool is not None, "call start() first"
        return self._pool

    async def start(self) -> None:
        from node.links import RelayPool

        self.home_url = self._home()
        self._pool = RelayPool([self.home_url, *self.federation], signer=self.signer)
        await self._pool.start()
        if not await self._pool.wait_connected(5.0):
            for row in self._pool.status():
                if not row["connected"]:
                    log.warning("relay %s not reachable yet (%s); retrying", row["url"], row["last_error"])

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.stop()


class WalletPart:
    """The node's Lightning wallet; settlements go to every part that listens."""

    name = "wallet"

    def __init__(self, settings: WalletSettings, data_dir: Path, node_signer: Signer) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.node_signer = node_signer
        self._wallet: Wallet | None = None
        self._listeners: list[OnSettled] = []

    @property
    def wallet(self) -> Wallet:
        assert self._wallet is not None, "call start() first"
        return self._wallet

    def listen(self, callback: OnSettled) -> None:
        self._listeners.append(callback)

    async def start(self) -> None:
        self._wallet = open_wallet(self.settings, self.data_dir, self.node_signer)
        await self._wallet.start(self._dispatch)
        kind = "real money" if self._wallet.real_money else "dev wallet: not real money"
        log.info("wallet: %s (%s)", self._wallet.name, kind)

    def _dispatch(self, settlement: Settlement) -> None:
        for listener in self._listeners:
            try:
                listener(settlement)
            except Exception:
                log.exception("a settlement listener failed")

    async def stop(self) -> None:
        if self._wallet is not None:
            await self._wallet.stop()


def open_wallet(settings: WalletSettings, data_dir: Path, node_signer: Signer) -> Wallet:
    """The configured backend, not started. Backends are imported only when chosen."""
    import os

    from node.config import ConfigError

    if settings.backend == "dev":
        from node.wallet.dev import DevWallet

        return DevWallet(data_dir / DEV_WALLET_DB, bytes.fromhex(node_signer.secret_hex()))
    if settings.backend == "cln":
        from node.wallet.cln import ClnWallet

        return ClnWallet(Path(settings.cln_rpc))
    if settings.backend == "lnd":
        from node.wallet.lnd import LndWallet

        return LndWallet(
            settings.lnd_host,
            Path(settings.lnd_tls_cert),
            Path(settings.lnd_macaroon),
            state_file=data_dir / "wallet-lnd.json",  # where its settlement stream resumes
        )
    uri = os.environ.get(settings.nwc_uri_env, "")
    if not uri:
        raise ConfigError(f"wallet: the nwc backend needs a connection string in ${settings.nwc_uri_env}")
    from node.wallet.nwc import NwcWallet

    return NwcWallet(uri)


class ReputationPart:
    """The reputation service, reading through the links; the engine and handlers use it."""

    name = "reputation"

    def __init__(self, config: NodeConfig, links: Links, node_signer: Signer, agents: Callable[[], list[str]]) -> None:
        self.config = config
        self.links = links
        self.node_signer = node_signer
        self.agents = agents
        self.service: ReputationService | None = None

    async def start(self) -> None:
        from reputation.service import ReputationService

        settings = self.config.reputation
        self.service = ReputationService(
            self.links.pool,
            roots=settings.roots or (self.node_signer.pubkey,),
            signer=self.node_signer if settings.publish_assertions else None,
            subjects=self.agents,
        )
        await self.service.start()

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()


class BlobPart:
    """The blob store under ``DATA/blobs/``: Blossom serves it, handlers write their outputs to it."""

    name = "blobs"

    def __init__(self, config: NodeConfig, data_dir: Path) -> None:
        from node.blobs import BlobStore

        self.store = BlobStore(data_dir / BLOBS_DIR, config.web.base_url(), config.blobs.max_bytes)

    async def start(self) -> None:
        self.store.open()

    async def stop(self) -> None:
        self.store.close()


class MemoryPart:
    """Semantic memory: embeds what the home relay stores, for kind 5302 search (``dvm/memory.py``)."""

    name = "memory"

    def __init__(self, config: NodeConfig, data_dir: Path, links: Links) -> None:
        self.path = data_dir / MEMORY_DB
        self.kinds = config.memory.kinds
        self.links = links
        self.service: MemoryService | None = None

    async def start(self) -> None:
        from dvm.memory import MemoryService

        self.service = MemoryService(self.path, self.links.pool, self.kinds)
        await self.service.start()

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()


class EnginePart:
    """The job engine and its database, ``node.sqlite3``."""

    name = "engine"

    def __init__(
        self,
        config: NodeConfig,
        db_path: Path,
        links: Links,
        signers: Mapping[str, Signer],
        node_signer: Signer,
        registry: CollectorRegistry | None = None,
        wallet: WalletPart | None = None,
        reputation: ReputationPart | None = None,
        blobs: BlobPart | None = None,
        memory: MemoryPart | None = None,
    ) -> None:
        self.config = config
        self.blobs = blobs
        self.memory = memory
        self.db_path = db_path
        self.links = links
        self.wallet = wallet
        self.reputation = reputation
        self.signers = signers  # by agent name, including agents removed from the config
        self.node_signer = node_signer
        self.registry = registry
        self.engine: Engine | None = None
        self.store: JobStore | None = None

    async def start(self) -> None:
        from dvm.agents import build_agents
        from dvm.engine import Engine
        from dvm.handlers import discover
        from dvm.metrics import JobMetrics
        from dvm.store import JobStore

        agents = build_agents(self.config.agents, self.signers, discover())
        configured = {a.name for a in self.config.agents}
        self.store = JobStore(self.db_path)
        await self.store.open()
        self.engine = Engine(
            agents,
            self.store,
            self.links.pool,
            settings=self.config.engine,
            home_relay=self.links.home_url,
            public_relay=self.config.relay.public_url,
            node_pubkey=self.node_signer.pubkey,
            federation_relays=self.config.federation.relays,
            retired_signers={n: s for n, s in self.signers.items() if n not in configured},
            wallet=self.wallet.wallet if self.wallet else None,
            web_domain=self.config.web.base_url().split("://", 1)[1],
            services=self._services(),
            metrics=JobMetrics(self.registry),
        )
        if self.wallet is not None:
            self.wallet.listen(self.engine.billing.on_settled)
        try:
            await self.engine.start()
        except BaseException:
            await self.store.close()
            raise

    def _services(self) -> dict[str, Any]:
        """What handlers may use (``JobContext.services``), by name."""
        services: dict[str, Any] = {}
        if self.reputation is not None:
            services["reputation"] = self.reputation.service
        if self.blobs is not None:
            services["blobs"] = self.blobs.store
        if self.memory is not None and self.memory.service is not None:
            services["memory"] = self.memory.service
        return services

    async def stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
        if self.store is not None:
            await self.store.close()


class WebPart:
    """The Starlette app under uvicorn, in this process: LNURL-pay and zaps, /health, /metrics."""

    name = "web"

    def __init__(
        self,
        config: NodeConfig,
        engine: EnginePart,
        wallet: WalletPart,
        links: Links,
        node_signer: Signer,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.wallet = wallet
        self.links = links
        self.node_signer = node_signer
        self.registry = registry
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self.zaps: Zaps | None = None

    async def start(self) -> None:
        import uvicorn
        from prometheus_client import generate_latest

        from node.zaps import Zaps
        from web.app import create_app
        from web.context import WebContext

        engine = self.engine.engine
        assert engine is not None and self.engine.store is not None
        self.zaps = Zaps(
            agents={a.name: a.pubkey for a in engine.agents},
            wallet=self.wallet.wallet,
            store=self.engine.store,
            signer=self.node_signer,
            pool=self.links.pool,
            replies=engine.replies,
            base_url=self.config.web.base_url(),
        )
        self.wallet.listen(self.zaps.on_settled)
        registry = self.registry
        self.context = WebContext(
            node_name=self.config.node.name,
            base_url=self.config.web.base_url(),
            relay_url=self.config.relay.public_url or self.links.home_url,
            node_pubkey=self.node_signer.pubkey,
            operators=frozenset(self.config.web.operators),
            engine=engine,
            reputation=self.engine.reputation.service if self.engine.reputation else None,
            wallet=self.wallet.wallet,
            links=self.links.pool,
            zaps=self.zaps,
            blobs=self.engine.blobs.store if self.engine.blobs else None,
            # Agents may always upload (their outputs); others as [blobs] says.
            blob_uploaders=(
                frozenset(self.config.blobs.upload_pubkeys) | {a.pubkey for a in engine.agents}
                if self.config.blobs.upload_pubkeys
                else frozenset()
            ),
            metrics=(lambda: generate_latest(registry)) if registry else None,
        )
        app = create_app(self.context)
        config = uvicorn.Config(
            app, host=self.config.web.host, port=self.config.web.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the node owns SIGINT/SIGTERM
        self._task = asyncio.create_task(self._server.serve(), name="web")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises why it could not start (port taken...)
                raise StartupError("the web server stopped while starting")
            await asyncio.sleep(0.01)
        log.info("web ready at %s (LNURL-pay and zaps for %d agents)", self.url, len(engine.agents))

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.config.web.host}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self.zaps is not None:
            await self.zaps.stop()


def signers_of(identities: Mapping[str, Keys]) -> tuple[Signer, dict[str, Signer]]:
    """The node's signer and the agents' by agent name, from unlocked nostr-sdk keys."""
    from nips.nip01 import Signer

    node = Signer(identities[NODE_KEY].secret_key().to_hex())
    agents = {
        name.removeprefix(AGENT_PREFIX): Signer(keys.secret_key().to_hex())
        for name, keys in identities.items()
        if name.startswith(AGENT_PREFIX)
    }
    return node, agents


def node_parts(config: NodeConfig, data_dir: Path, identities: Mapping[str, Keys]) -> list[Part]:
    """What ``timmy run`` starts. ``identities``: unlocked keys by keystore name."""
    from prometheus_client import CollectorRegistry

    node_signer, agent_signers = signers_of(identities)
    if config.models.dir:
        from node.models import MODELS_DIR_ENV

        # The voice handlers find their models through node.models.models_dir(),
        # which reads this; settings.tts.model_dir still wins for one agent.
        os.environ[MODELS_DIR_ENV] = str(Path(config.models.dir).expanduser())
    if config.web.port == 0:
        # The agents' lud16 and the LNURL callback name the web port before the
        # server listens: pick the free port now.
        config = config.with_overrides(web_port=_free_port(config.web.host))
    registry = CollectorRegistry()  # all the node's metrics, served at the relay's /metrics
    relay = EmbeddedRelay(relay_settings(config, node_signer.pubkey), data_dir / RELAY_DB, registry)
    links = Links(lambda: relay.url, config.federation.relays, node_signer)
    wallet = WalletPart(config.wallet, data_dir, node_signer)
    configured = [a.name for a in config.agents]
    reputation = ReputationPart(
        config, links, node_signer, lambda: [agent_signers[n].pubkey for n in configured if n in agent_signers]
    )
    blobs = BlobPart(config, data_dir)
    memory = MemoryPart(config, data_dir, links) if config.memory.enabled else None
    engine = EnginePart(
        config, data_dir / NODE_DB, links, agent_signers, node_signer, registry, wallet, reputation, blobs, memory
    )
    web = WebPart(config, engine, wallet, links, node_signer, registry)
    parts: list[Part] = [relay, links, wallet, reputation, blobs]
    if memory is not None:
        parts.append(memory)
    return [*parts, engine, web]


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def serve(
    parts: Sequence[Part], stop: asyncio.Event, *, shutdown_timeout: float = SHUTDOWN_TIMEOUT
) -> None:
    """Start ``parts`` in order, wait for ``stop``, stop what started in reverse order."""
    started: list[Part] = []
    try:
        for part in parts:
            try:
                await part.start()
            except Exception as exc:
                raise StartupError(f"{part.name} did not start: {exc}") from exc
            started.append(part)
        log.info("node running; stop it with Ctrl-C or SIGTERM")
        await stop.wait()
    finally:
        await _shutdown(started, shutdown_timeout)


async def _shutdown(parts: list[Part], timeout: float) -> None:
    for part in reversed(parts):
        try:
            await asyncio.wait_for(part.stop(), timeout)
        except TimeoutError:
            log.error("%s did not stop within %.0f s; leaving it behind", part.name, timeout)
        except Exception:
            log.exception("%s failed while stopping", part.name)
    log.info("node stopped")


def run(parts: Sequence[Part], *, shutdown_timeout: float = SHUTDOWN_TIMEOUT) -> int:
    """Run ``parts`` until SIGINT/SIGTERM, on uvloop where installed; the exit status."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_main(parts, shutdown_timeout))


async def _main(parts: Sequence[Part], shutdown_timeout: float) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    assert main_task is not None

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s again: exiting without waiting", sig.name)
            main_task.cancel()
        else:
            log.info("%s: shutting down", sig.name)
            stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await serve(parts, stop, shutdown_timeout=shutdown_timeout)
    except asyncio.CancelledError:
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None  # the standard loop; uvloop is faster, not required
    return uvloop.new_event_loop
