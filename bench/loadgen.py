"""The load generator every benchmark uses, the same for all three relays.

Client work runs in separate processes (:class:`ClientPool`, one job per process,
uvloop when installed) so that it can be split over cores and its CPU time
measured on its own. A job connects, reports ``ready``, waits for ``go``, runs,
and reports a ``result`` dict that includes ``cpu_s``, the process CPU time spent
while running. Timestamps are ``time.monotonic_ns()``, one system-wide clock, so
times taken in different processes compare.

Jobs:

- ``publish``: connections send pre-signed EVENTs, each keeping ``window``
  messages in flight (1: send, wait for OK, send the next).
- ``query``: connections send one REQ at a time and time it until EOSE.
- ``subscribe``: connections hold subscriptions; for fan-out they time every
  delivery of the announced events.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection as Pipe
from typing import Any, NamedTuple

import orjson
import psutil

from bench import wsclient
from bench.wsclient import Connection, message_type, text_frame

GRACE_S = 10.0  # how long to wait for answers still in flight after a deadline


def event_frame(raw: bytes) -> bytes:
    return text_frame(b'["EVENT",' + raw + b"]")


def percentiles(samples_ns: list[int]) -> dict[str, float | int]:
    """Count, p50, p90, p99 and max of nanosecond samples, in milliseconds."""
    if not samples_ns:
        return {"n": 0}
    s = sorted(samples_ns)

    def at(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))] / 1e6, 3)

    return {
        "n": len(s),
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(s[-1] / 1e6, 3),
    }


def _reason_prefix(reason: str) -> str:
    return reason.split(":", 1)[0] if ":" in reason else reason[:40]


# -- protocols ------------------------------------------------------------------


class _Measured(Connection):
    """What Publisher and Querier share: a ``done`` future, NOTICE counts, a few samples."""

    def _start_measuring(self) -> None:
        self.notices = 0
        self.samples: list[str] = []
        self.deadline = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _sample(self, text: str) -> None:
        if len(self.samples) < 5:
            self.samples.append(text)

    def _notice(self, payload: bytes) -> None:
        self.notices += 1
        self._sample(payload.decode(errors="replace")[:200])

    def on_close(self) -> None:
        if hasattr(self, "done") and not self.done.done():
            self.done.set_result(None)


class Publisher(_Measured):
    """Sends its frames keeping ``window`` EVENTs in flight; counts OK true / false."""

    def setup(self, frames: list[bytes], window: int) -> None:
        self.frames, self.window = frames, window
        self.next = self.inflight = 0
        self.accepted = self.rejected = 0
        self.reasons: Counter[str] = Counter()
        self._start_measuring()

    def begin(self, deadline: float) -> None:
        self.deadline = deadline
        self._fill()

    def _fill(self) -> None:
        if time.monotonic() < self.deadline:
            frames, send = self.frames, self.send
            while self.inflight < self.window and self.next < len(frames):
                send(frames[self.next])
                self.next += 1
                self.inflight += 1
        if self.inflight == 0 and not self.done.done():
            self.done.set_result(None)

    def on_message(self, payload: bytes) -> None:
        kind = message_type(payload)
        if kind == b"OK":
            self.inflight -= 1
            msg = orjson.loads(payload)
            if msg[2] is True:
                self.accepted += 1
            else:
                self.rejected += 1
                reason = str(msg[3]) if len(msg) > 3 else ""
                self.reasons[_reason_prefix(reason)] += 1
                self._sample(reason)
            self._fill()
        elif kind == b"NOTICE":
            self._notice(payload)


class Querier(_Measured):
    """Sends REQs one at a time, closing each at EOSE; times REQ to EOSE."""

    def setup(self, reqs: list[tuple[bytes, bytes, bytes]]) -> None:
        self.reqs = reqs  # (sub id, REQ frame, CLOSE frame)
        self.i = 0
        self.events = self.completed = self.failed = 0
        self.latencies: list[int] = []
        self.sent_ns = 0
        self._start_measuring()

    def begin(self, deadline: float) -> None:
        self.deadline = deadline
        self._next(b"")

    def _next(self, close: bytes) -> None:
        if self.i >= len(self.reqs) or time.monotonic() >= self.deadline:
            if close:
                self.send(close)
            if not self.done.done():
                self.done.set_result(None)
            return
        self.sent_ns = time.monotonic_ns()
        self.send(close + self.reqs[self.i][1])

    def on_message(self, payload: bytes) -> None:
        kind = message_type(payload)
        if kind == b"EVENT":
            self.events += 1
        elif kind == b"EOSE":
            self.latencies.append(time.monotonic_ns() - self.sent_ns)
            self.completed += 1
            close = self.reqs[self.i][2]
            self.i += 1
            self._next(close)
        elif kind == b"CLOSED":
            msg = orjson.loads(payload)
            if (
                msg[1].encode() == self.reqs[min(self.i, len(self.reqs) - 1)][0]
                and not self.done.done()
            ):
                self.failed += 1
                self._sample(str(msg))
                self.i += 1
                self._next(b"")
        elif kind == b"NOTICE":
            self._notice(payload)


def _event_id(payload: bytes) -> str:
    """The id of the event in an EVENT message, without parsing all of it."""
    at = payload.find(b'"id":"')
    if at < 0:
        return str(orjson.loads(payload)[2]["id"])
    return payload[at + 6 : at + 70].decode()


class Subscriber(Connection):
    """Holds subscriptions; reports every delivered event to ``sink(event_id, t_ns)``."""

    def setup(self, reqs: list[bytes], sink: Callable[[str, int], None]) -> None:
        self.pending_eose = len(reqs)
        self.sink = sink
        self.eosed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.send(b"".join(reqs))

    def on_message(self, payload: bytes) -> None:
        kind = message_type(payload)
        if kind == b"EVENT":
            if self.pending_eose:  # stored events, not deliveries
                return
            t = time.monotonic_ns()
            self.sink(_event_id(payload), t)
        elif kind == b"EOSE":
            self.pending_eose -= 1
            if self.pending_eose == 0 and not self.eosed.done():
                self.eosed.set_result(None)
        elif kind == b"CLOSED" and not self.eosed.done():
            self.eosed.set_exception(RuntimeError(payload.decode(errors="replace")[:200]))

    def on_close(self) -> None:
        if hasattr(self, "eosed") and not self.eosed.done():
            self.eosed.set_exception(ConnectionError("closed before EOSE"))


# -- jobs (run inside client processes) ----------------------------------------


class Control:
    """The client process's end of the pipe to the benchmark process."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe

    def send(self, *msg: Any) -> None:
        self.pipe.send(msg)

    async def recv(self) -> tuple[Any, ...]:
        return await asyncio.get_running_loop().run_in_executor(None, self.pipe.recv)  # type: ignore[no-any-return]


def _slice_lines(path: str, start: int, stop: int) -> list[bytes]:
    with open(path, "rb") as f:
        return [line.rstrip(b"\n") for line in itertools.islice(f, start, stop)]


async def job_publish(share: dict[str, Any], ctl: Control) -> dict[str, Any]:
    """share: host, port, dataset, start, stop, conns, window, seconds."""
    events = _slice_lines(share["dataset"], share["start"], share["stop"])
    frames = [event_frame(e) for e in events]
    del events
    n = share["conns"]
    per = -(-len(frames) // n)
    conns: list[Publisher] = await wsclient.connect_many(Publisher, share["host"], share["port"], n)
    for i, c in enumerate(conns):
        c.setup(frames[i * per : (i + 1) * per], share["window"])
    ctl.send("ready", {"frames": len(frames)})
    await ctl.recv()
    cpu0, t0 = time.process_time(), time.monotonic_ns()
    deadline = time.monotonic() + share["seconds"]
    for c in conns:
        c.begin(deadline)
    waits = [c.done for c in conns]
    await asyncio.wait(waits, timeout=share["seconds"] + GRACE_S)
    t1, cpu1 = time.monotonic_ns(), time.process_time()
    dropped = [d for c in conns if (d := c.describe_close())]
    for c in conns:
        c.close()
    reasons: Counter[str] = Counter()
    for c in conns:
        reasons.update(c.reasons)
    return {
        "sent": sum(c.next for c in conns),
        "accepted": sum(c.accepted for c in conns),
        "rejected": sum(c.rejected for c in conns),
        "unanswered": sum(c.inflight for c in conns),
        "notices": sum(c.notices for c in conns),
        "reasons": dict(reasons),
        "samples": [s for c in conns for s in c.samples][:5],
        "dropped_by_relay": dropped,
        "start_ns": t0,
        "end_ns": t1,
        "cpu_s": cpu1 - cpu0,
    }


def req_frames(
    authors: list[str], count: int, limit: int, seed: int, prefix: str
) -> list[tuple[bytes, bytes, bytes]]:
    """``count`` author+kind REQs (and their CLOSEs) for random authors."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        sub = f"{prefix}{n}".encode()
        flt = {"authors": [rng.choice(authors)], "kinds": [1], "limit": limit}
        out.append(
            (
                sub,
                text_frame(b'["REQ","' + sub + b'",' + orjson.dumps(flt) + b"]"),
                text_frame(b'["CLOSE","' + sub + b'"]'),
            )
        )
    return out


async def job_query(share: dict[str, Any], ctl: Control) -> dict[str, Any]:
    """share: host, port, conns, authors, reqs_per_conn, limit, seed, seconds."""
    n = share["conns"]
    conns: list[Querier] = await wsclient.connect_many(Querier, share["host"], share["port"], n)
    for i, c in enumerate(conns):
        c.quickack = share.get("quickack", False)
        c.setup(
            req_frames(
                share["authors"],
                share["reqs_per_conn"],
                share["limit"],
                share["seed"] * 1000 + i,
                f"q{i}.",
            )
        )
    ctl.send("ready", {})
    await ctl.recv()
    cpu0, t0 = time.process_time(), time.monotonic_ns()
    deadline = time.monotonic() + share["seconds"]
    for c in conns:
        c.begin(deadline)
    await asyncio.wait([c.done for c in conns], timeout=share["seconds"] + GRACE_S)
    t1, cpu1 = time.monotonic_ns(), time.process_time()
    dropped = [d for c in conns if (d := c.describe_close())]
    for c in conns:
        c.close()
    return {
        "dropped_by_relay": dropped,
        "completed": sum(c.completed for c in conns),
        "failed": sum(c.failed for c in conns),
        "events": sum(c.events for c in conns),
        "notices": sum(c.notices for c in conns),
        "samples": [s for c in conns for s in c.samples][:5],
        "latencies_ns": [x for c in conns for x in c.latencies],
        "start_ns": t0,
        "end_ns": t1,
        "cpu_s": cpu1 - cpu0,
    }


async def job_subscribe(share: dict[str, Any], ctl: Control) -> dict[str, Any]:
    """share: host, port, conns, subs_per_conn, filters (JSON texts, one per connection in turn), round_timeout.

    Holds the subscriptions until ``stop``. For each event delivered it keeps the
    receive times; once an event has reached every subscription here (or
    ``round_timeout`` after its first delivery) it sends ``("round", id, times)``.
    """
    loop = asyncio.get_running_loop()
    expected = share["conns"] * share["subs_per_conn"]
    received: dict[str, list[int]] = {}
    reported: set[str] = set()

    def report(event_id: str) -> None:
        if event_id not in reported:
            reported.add(event_id)
            ctl.send("round", event_id, received.pop(event_id, []))

    def sink(event_id: str, t: int) -> None:
        if event_id in reported:
            return
        times = received.get(event_id)
        if times is None:
            times = received[event_id] = []
            loop.call_later(share["round_timeout"], report, event_id)
        times.append(t)
        if len(times) == expected:
            report(event_id)

    filters = [f.encode() for f in share["filters"]]
    conns: list[Subscriber] = await wsclient.connect_many(
        Subscriber, share["host"], share["port"], share["conns"]
    )
    for i, c in enumerate(conns):
        flt = filters[i % len(filters)]
        c.setup(
            [
                text_frame(b'["REQ","s' + f"{i}.{j}".encode() + b'",' + flt + b"]")
                for j in range(share["subs_per_conn"])
            ],
            sink,
        )
    await asyncio.wait_for(asyncio.gather(*(c.eosed for c in conns)), 120)
    ctl.send("ready", {"subscriptions": expected})
    await ctl.recv()  # go
    cpu0 = time.process_time()
    await ctl.recv()  # stop
    cpu1 = time.process_time()
    dropped = [d for c in conns if (d := c.describe_close())]
    for c in conns:
        c.close()
    return {"cpu_s": cpu1 - cpu0, "dropped_by_relay": dropped}


JOBS: dict[str, Callable[[dict[str, Any], Control], Coroutine[Any, Any, dict[str, Any]]]] = {
    "publish": job_publish,
    "query": job_query,
    "subscribe": job_subscribe,
}


def _worker_main(job: str, share: dict[str, Any], pipe: Pipe) -> None:
    ctl = Control(pipe)
    try:
        import uvloop

        run: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]] = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        ctl.send("result", run(JOBS[job](share, ctl)))
    except BaseException:
        ctl.send("error", traceback.format_exc())


# -- the benchmark process's side ---------------------------------------------------


class ClientError(RuntimeError):
    """Raised when a client process fails or does not answer in time."""


class ClientPool:
    """Client processes, one per share, started together. Use as a context manager."""

    def __init__(self, job: str, shares: list[dict[str, Any]]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for share in shares:
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(job, share, theirs), daemon=True)
            proc.start()
            theirs.close()
            self.pipes.append(ours)
            self.procs.append(proc)

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recv(self, i: int, timeout: float) -> tuple[Any, ...]:
        pipe = self.pipes[i]
        if not pipe.poll(timeout):
            raise ClientError(f"client {i} did not answer in {timeout} s")
        try:
            msg: tuple[Any, ...] = pipe.recv()
        except EOFError:
            raise ClientError(f"client {i} died") from None
        if msg[0] == "error":
            raise ClientError(f"client {i} failed:\n{msg[1]}")
        return msg

    def expect(self, kind: str, timeout: float) -> list[Any]:
        """The next message of every client, which must be ``kind``; returns their payloads."""
        out = []
        for i in range(len(self.pipes)):
            msg = self.recv(i, timeout)
            if msg[0] != kind:
                raise ClientError(f"client {i} sent {msg[0]!r}, expected {kind!r}")
            out.append(msg[1] if len(msg) == 2 else msg[1:])
        return out

    def broadcast(self, *msg: Any) -> None:
        for pipe in self.pipes:
            pipe.send(msg)

    def close(self) -> None:
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


class JobRun(NamedTuple):
    results: list[dict[str, Any]]  # one per client process
    before: Any  # probe() right before "go"
    after: Any  # probe() once every client has reported
    quiet: dict[str, float]  # how busy the machine was just before "go"


def run_job(
    job: str,
    shares: list[dict[str, Any]],
    timeout: float,
    probe: Callable[[], Any] | None = None,
    *,
    quiet: bool = True,
) -> JobRun:
    """Start the clients, wait until all are ready and the machine is quiet, start them together.

    ``probe`` (e.g. ``relay.usage``) is called right before ``go`` and right after
    the results.
    """
    with ClientPool(job, shares) as pool:
        pool.expect("ready", 300)
        calm = wait_for_quiet() if quiet else {}
        before = probe() if probe else None
        pool.broadcast("go")
        results = pool.expect("result", timeout)
        after = probe() if probe else None
        return JobRun(results, before, after, calm)


def wait_for_quiet(busy_pct: float = 20.0, max_wait: float = 60.0) -> dict[str, float]:
    """Wait (bounded) until the machine is mostly idle, so other work does not skew a run.

    Called while the relay and the clients sit idle, so what is busy is someone
    else. Returns the last reading (percent of all CPUs) and the seconds waited.
    """
    started = time.monotonic()
    busy = psutil.cpu_percent(interval=0.5)
    while busy > busy_pct and time.monotonic() - started < max_wait:
        busy = psutil.cpu_percent(interval=1.0)
    return {
        "machine_busy_pct_before": busy,
        "waited_for_quiet_s": round(time.monotonic() - started, 1),
    }


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (start, stop) ranges covering ``range(n)``, as even as possible."""
    parts = max(1, min(parts, n)) if n else 1
    bounds = [n * k // parts for k in range(parts + 1)]
    return list(itertools.pairwise(bounds))


def cpu_and_wall(results: list[dict[str, Any]]) -> tuple[float, float]:
    """Total client CPU seconds and the wall time from the first start to the last end."""
    wall = (max(r["end_ns"] for r in results) - min(r["start_ns"] for r in results)) / 1e9
    return sum(r["cpu_s"] for r in results), wall
