"""The three relays under test, each launched as a subprocess on 127.0.0.1.

- ``timmy``: our relay (``bench/serve_timmy.py``), SQLite, rate limits off.
- ``nostr-relay``: PyPI ``nostr-relay`` 1.14, ``nostr-relay -c config.yaml serve``
  with its shipped config; only the bind address and the SQLite file change.
- ``rust``: rust-nostr's ``LocalRelay`` from ``nostr-sdk`` (``bench/serve_rust.py``),
  in memory, rate limit raised.

A :class:`RelayProcess` is a context manager: entering starts the relay in its own
process group and waits until its port accepts connections; leaving kills the
whole group. :meth:`RelayProcess.usage` reads CPU time and RSS of the relay and
its children (nostr-relay runs a gunicorn master and one worker).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
HOST = "127.0.0.1"
NAMES = ("timmy", "nostr-relay", "rust")  # the default selection
OPTIONAL = ("rust-lmdb",)  # run only when named: see RustLmdbRelay


class RelayUnavailable(RuntimeError):
    """Raised when a relay cannot be run here (not installed, not written yet)."""


@dataclass(frozen=True)
class Usage:
    """Summed over the relay process and its children, plus the whole machine's busy time."""

    cpu_seconds: float  # user + system
    rss_bytes: int
    peak_rss_bytes: int  # VmHWM: the most each process has held since it started
    machine_busy_seconds: float  # all CPUs, everything but idle and iowait: shows contention
    # RSS split (Linux): private memory vs. pages of mapped files, such as an
    # mmap'ed SQLite database, which the kernel can drop and reread.
    rss_anon_bytes: int = 0
    rss_file_bytes: int = 0
    # Proportional set size: shared pages divided among the processes sharing
    # them, so summing over a gunicorn master and its forked worker does not
    # count their shared memory twice.
    pss_bytes: int = 0


def machine_busy_seconds() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def cpu_split(before: Usage, after: Usage, client_cpu: float) -> dict[str, float]:
    """CPU seconds of the relay, the load generator, and everything else on the machine."""
    relay = after.cpu_seconds - before.cpu_seconds
    machine = after.machine_busy_seconds - before.machine_busy_seconds
    return {
        "relay_cpu_s": round(relay, 3),
        "client_cpu_s": round(client_cpu, 3),
        "other_cpu_s": round(max(0.0, machine - relay - client_cpu), 3),
    }


def _proc_status(pid: int) -> dict[str, int]:
    """The VmHWM, RssAnon, RssFile and RssShmem lines of /proc/PID/status, in bytes."""
    wanted = ("VmHWM:", "RssAnon:", "RssFile:", "RssShmem:")
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(wanted):
                key, value = line.split()[:2]
                out[key.rstrip(":")] = int(value) * 1024
    except OSError:
        pass
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RelayUnavailable(f"exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RelayUnavailable(f"port {port} not open after {timeout} s")


class RelayProcess:
    """One relay subprocess. Subclasses say how to start it."""

    name = ""
    notes = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config files before the start."""

    def __enter__(self) -> RelayProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        try:
            _wait_for_port(self.proc, self.port, 60, self.log)
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of the group too
        self.proc.wait(10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def usage(self) -> Usage:
        """CPU time and RSS of the relay process and all its descendants."""
        root = psutil.Process(self.pid)
        procs = [root, *root.children(recursive=True)]
        cpu, rss, peak, anon, files, pss = 0.0, 0, 0, 0, 0, 0
        for p in procs:
            try:
                t = p.cpu_times()
                cpu += t.user + t.system
                rss += p.memory_info().rss
                pss += getattr(p.memory_full_info(), "pss", 0)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            status = _proc_status(p.pid)
            peak += status.get("VmHWM", 0)
            anon += status.get("RssAnon", 0) + status.get("RssShmem", 0)
            files += status.get("RssFile", 0)
        return Usage(cpu, rss, peak, machine_busy_seconds(), anon, files, pss)


class TimmyRelay(RelayProcess):
    name = "timmy"
    notes = "our relay, SQLite (synchronous=FULL, WAL), rate limits off"

    def __init__(self, workdir: Path, db: Path | None = None, synchronous: str = "FULL") -> None:
        super().__init__(workdir)
        self.db = db or workdir / "timmy.sqlite3"
        self.synchronous = synchronous

    def command(self) -> list[str]:
        return [
            sys.executable,
            str(BENCH / "serve_timmy.py"),
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--synchronous",
            self.synchronous,
        ]


class NostrRelayPy(RelayProcess):
    name = "nostr-relay"
    notes = "nostr-relay 1.14 (PyPI), shipped config.yaml (gunicorn, 1 uvicorn worker, SQLite via aiosqlite)"

    def __init__(self, workdir: Path, db: Path | None = None) -> None:
        super().__init__(workdir)
        self.db = db or workdir / "nostr-relay.sqlite3"
        self.config = workdir / "nostr-relay.yaml"

    def prepare(self) -> None:
        write_nostr_relay_config(self.config, self.port, self.db)

    def command(self) -> list[str]:
        return [nostr_relay_executable(), "-c", str(self.config), "serve"]


class RustLocalRelay(RelayProcess):
    name = "rust"
    notes = (
        "rust-nostr LocalRelay (nostr-sdk 0.45.1), in memory (NostrLmdb can be plugged in via "
        ".database(), but only as a Python-callback database), REQ results capped at 500, "
        "rate limit raised"
    )

    def __init__(self, workdir: Path, lmdb: Path | None = None) -> None:
        super().__init__(workdir)
        self.lmdb = lmdb

    def command(self) -> list[str]:
        cmd = [sys.executable, str(BENCH / "serve_rust.py"), "--port", str(self.port)]
        if self.lmdb is not None:
            cmd += ["--lmdb", str(self.lmdb)]
        return cmd


class RustLmdbRelay(RustLocalRelay):
    """LocalRelay on NostrLmdb: persistent, but every database call crosses into Python and back."""

    name = "rust-lmdb"
    notes = (
        "rust-nostr LocalRelay with NostrLmdb via .database(); the Python binding treats it as a "
        "Python-implemented database, so each save/query goes Rust -> Python asyncio -> Rust"
    )

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, lmdb=workdir / "lmdb")


def nostr_relay_executable() -> str:
    exe = Path(sys.executable).with_name("nostr-relay")
    found = str(exe) if exe.exists() else shutil.which("nostr-relay")
    if not found:
        raise RelayUnavailable("nostr-relay is not installed (pip install nostr-relay==1.14)")
    return found


def write_nostr_relay_config(path: Path, port: int, db: Path) -> None:
    """nostr-relay's shipped config.yaml with our bind address and database file."""
    import nostr_relay
    import yaml

    shipped = Path(nostr_relay.__file__).with_name("config.yaml")
    config = yaml.safe_load(shipped.read_text())
    config["gunicorn"]["bind"] = f"{HOST}:{port}"
    config["storage"]["sqlalchemy.url"] = f"sqlite+aiosqlite:///{db}"
    path.write_text(yaml.safe_dump(config))


def timmy_importable() -> str | None:
    """None when our relay can be imported, otherwise why not."""
    probe = subprocess.run(
        [sys.executable, "-c", "import relay.server, relay.store.sqlite"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode == 0:
        return None
    return "not importable yet: " + (probe.stderr.strip().splitlines() or ["?"])[-1]


def unavailable_reason(name: str) -> str | None:
    """None when relay ``name`` can run here, otherwise a note for the results."""
    if name == "timmy":
        return timmy_importable()
    if name == "nostr-relay":
        try:
            nostr_relay_executable()
        except RelayUnavailable as e:
            return str(e)
        return None
    if name in ("rust", "rust-lmdb"):
        try:
            import nostr_sdk  # noqa: F401
        except ImportError:
            return "nostr-sdk is not installed"
        return None
    return f"unknown relay {name!r}"


def launcher(name: str, workdir: Path, **kwargs: object) -> RelayProcess:
    classes: dict[str, type[RelayProcess]] = {
        "timmy": TimmyRelay,
        "nostr-relay": NostrRelayPy,
        "rust": RustLocalRelay,
        "rust-lmdb": RustLmdbRelay,
    }
    return classes[name](workdir, **kwargs)  # type: ignore[arg-type]
