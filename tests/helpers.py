"""Helpers shared by the test suites: real, signed events."""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import coincurve

from nips.nip01 import Event, compute_id, parse_event


def make_event(
    key: coincurve.PrivateKey | None = None,
    *,
    kind: int = 1,
    content: str = "",
    tags: Iterable[Sequence[str]] = (),
    created_at: int | None = None,
) -> Event:
    """Build, sign (BIP-340) and parse an event; a fresh key is made when ``key`` is None."""
    key = key or coincurve.PrivateKey()
    pubkey = key.public_key_xonly.format().hex()
    created = int(time.time()) if created_at is None else created_at
    tag_list = [list(tag) for tag in tags]
    event_id = compute_id(pubkey, created, kind, tag_list, content)
    sig = key.sign_schnorr(bytes.fromhex(event_id)).hex()
    return parse_event(
        {
            "id": event_id,
            "pubkey": pubkey,
            "created_at": created,
            "kind": kind,
            "tags": tag_list,
            "content": content,
            "sig": sig,
        }
    )


def timmy() -> list[str]:
    """The CLI: the installed script, else the module in this interpreter."""
    script = Path(sys.executable).with_name("timmy")
    if script.exists():
        return [str(script)]
    found = shutil.which("timmy")
    return [found] if found else [sys.executable, "-m", "node.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningNode:
    """A real ``timmy run`` on a fresh data dir (free ports), for tests that use the CLI as people do.

    ``toml``, when given, is written as node.toml before ``timmy init``, so its
    agents get keys. Use as a context manager; ``env`` carries the passphrase.
    """

    def __init__(self, tmp_path: Path, passphrase: str, toml: str | None = None) -> None:
        import os

        self.data = tmp_path / "node"
        self.log_path = tmp_path / "node.log"
        self.env = {**os.environ, "TIMMY_PASSPHRASE": passphrase}
        self.toml = toml
        self.port = free_port()
        self.relay = f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> RunningNode:
        import subprocess

        self.data.mkdir(parents=True)
        if self.toml is not None:
            (self.data / "node.toml").write_text(self.toml)
        subprocess.run([*timmy(), "init", "--data", str(self.data), "--log-n", "8"], env=self.env,
                       check=True, capture_output=True, timeout=60)
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [*timmy(), "run", "--data", str(self.data), "--relay-port", str(self.port), "--web-port", "0"],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.wait(20)
        self._log.close()

    async def cli(self, *args: str, timeout: float = 60) -> tuple[int, str, str]:
        """``timmy ARGS`` with this node's passphrase: (status, stdout, stderr)."""
        import asyncio

        proc = await asyncio.create_subprocess_exec(
            *timmy(), *args, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def node_in_process(config: Any, data_dir: Path, identities: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """``timmy run``'s parts (``node.app.node_parts``) started here in order, by name;
    those that started are stopped in reverse order afterwards, as ``node.app.serve`` does."""
    from node.app import node_parts

    parts = node_parts(config, data_dir, identities)
    started: list[Any] = []
    try:
        for part in parts:
            await part.start()
            started.append(part)
        yield {part.name: part for part in parts}
    finally:
        for part in reversed(started):
            await part.stop()
