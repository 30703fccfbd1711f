"""Fixtures of the interop suite: our relay in-process, third-party clients against it.

Every relay fixture runs once per store backend (memory, and SQLite when it
imports). Relays listen on port 0 (any free port), which also checks that the
relay then names its real port as the URL NIP-42 AUTH events must carry.

The nostr-tools client is a Node script; its modules are installed here with
``npm ci`` (the lockfile pins nostr-tools) when they are missing or stale.
Only a machine without ``node`` skips those tests.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from relay.server import RelayServer
from relay.settings import AuthRules, RelaySettings
from relay.store.base import EventStore
from relay.store.memory import MemoryStore

try:
    from relay.store.sqlite import SqliteStore
except ImportError:  # the SQLite backend is optional for this suite
    SqliteStore = None  # type: ignore[assignment,misc]

INTEROP_DIR = Path(__file__).parent
NODE_CLIENT = INTEROP_DIR / "nostr_tools_client.mjs"
MIN_NODE = 20  # global fetch, WebCrypto; @noble/* want >= 20.19
STORE_KINDS = ["memory", "sqlite"] if SqliteStore is not None else ["memory"]

StartRelay = Callable[..., Awaitable[RelayServer]]
RunScenario = Callable[..., Awaitable[dict[str, Any]]]


def _new_store(kind: str, path: Path) -> EventStore:
    if kind == "memory":
        return MemoryStore()
    assert SqliteStore is not None
    return SqliteStore(path, synchronous="NORMAL")


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def start_relay(store_kind: str, tmp_path: Path) -> AsyncIterator[StartRelay]:
    """Start relays on ``store_kind``: ``await start_relay(auth=AuthRules(...))``.

    Keyword arguments go to :class:`RelaySettings`; every relay and store is
    stopped and closed at the end of the test.
    """
    started: list[tuple[RelayServer, EventStore]] = []

    async def start(**settings: Any) -> RelayServer:
        store = _new_store(store_kind, tmp_path / f"relay{len(started)}.sqlite3")
        await store.open()
        server = RelayServer(RelaySettings(port=0, **settings), store)
        try:
            await server.start()
        except BaseException:
            await store.close()
            raise
        started.append((server, store))
        return server

    yield start
    for server, store in reversed(started):
        await server.stop()
        await store.close()


@pytest.fixture
async def relay(start_relay: StartRelay) -> RelayServer:
    """An open relay: anyone may read and write."""
    return await start_relay()


@pytest.fixture
async def auth_write_relay(start_relay: StartRelay) -> RelayServer:
    """A relay that takes events only from NIP-42 authenticated clients."""
    return await start_relay(auth=AuthRules(auth_required_for_writes=True))


@pytest.fixture
async def auth_read_relay(start_relay: StartRelay) -> RelayServer:
    """A relay that serves REQ and COUNT only to NIP-42 authenticated clients."""
    return await start_relay(auth=AuthRules(auth_required_for_reads=True))


# --- nostr-tools (Node) ----------------------------------------------------------------


def _installed_version(package: str) -> str | None:
    manifest = INTEROP_DIR / "node_modules" / package / "package.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return None


def _modules_current() -> bool:
    wanted = json.loads((INTEROP_DIR / "package.json").read_text(encoding="utf-8"))
    return all(
        _installed_version(name) == version for name, version in wanted["dependencies"].items()
    )


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """``tests/interop/node_modules``, installed from the lockfile when missing or stale."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the nostr-tools interop tests need Node.js >= 20")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE:
        pytest.fail(f"node {version} is too old: nostr-tools 2.25 needs Node.js >= {MIN_NODE}")
    if not _modules_current():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not; run `npm ci` in tests/interop")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=INTEROP_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0 or not _modules_current():
            pytest.fail(f"`npm ci` in {INTEROP_DIR} failed:\n{done.stdout}\n{done.stderr}")
    return INTEROP_DIR / "node_modules"


@pytest.fixture
def nostr_tools(node_modules: Path) -> RunScenario:
    """Run a scenario of ``nostr_tools_client.mjs``: ``await nostr_tools(url, "live")``.

    Returns the JSON object the script prints; a crash or a timeout fails the test
    with the script's stderr.
    """

    async def run(url: str, scenario: str, *, timeout: float = 30) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_CLIENT),
            url,
            scenario,
            cwd=INTEROP_DIR,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            pytest.fail(f"nostr-tools scenario {scenario!r} timed out:\n{err.decode()}")
        if proc.returncode != 0:
            pytest.fail(
                f"nostr-tools scenario {scenario!r} exited with {proc.returncode}:\n"
                f"{err.decode()}\n{out.decode()}"
            )
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    return run


# --- nostr-relay (PyPI, Python) as a shared federation relay ---------------------------


@pytest.fixture
def nostr_relay(tmp_path: Path) -> Any:
    """A running ``nostr-relay`` 1.14 (its shipped config, our port and database): its URL."""
    import socket
    import sys
    import time

    import yaml

    try:
        import nostr_relay as package
    except ImportError:
        pytest.fail("nostr-relay is not installed: pip install -e '.[dev]'")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = yaml.safe_load(Path(package.__file__).with_name("config.yaml").read_text())
    config["gunicorn"]["bind"] = f"127.0.0.1:{port}"
    config["storage"]["sqlalchemy.url"] = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    path = tmp_path / "nostr-relay.yaml"
    path.write_text(yaml.safe_dump(config))
    exe = Path(sys.executable).with_name("nostr-relay")
    log = (tmp_path / "nostr-relay.log").open("wb")
    proc = subprocess.Popen([str(exe), "-c", str(path), "serve"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"nostr-relay did not start:\n{(tmp_path / 'nostr-relay.log').read_text()}")
            time.sleep(0.1)
    yield f"ws://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
