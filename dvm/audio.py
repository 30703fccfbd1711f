"""Audio for the speech handlers: fetching, decoding, WebVTT, WAV, sentences.

The speech-to-text handler (kind 5000, ``dvm/handlers/stt.py``) fetches its
input over HTTP(S) and decodes whatever container and codec FFmpeg knows
(through PyAV) to what Whisper takes: 16 kHz mono float32. Its timed output is
WebVTT (W3C "WebVTT: The Web Video Text Tracks Format", section 4 "Syntax").
The text-to-speech handler (kind 5250, ``dvm/handlers/tts.py``) speaks a
sentence at a time and stores a WAV file (RIFF, 16-bit PCM, mono).

Everything but :func:`fetch` is pure or works on bytes in memory; every
refusal is an :class:`AudioError` whose text goes to the customer.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import socket
import threading
import wave
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import numpy as np

WHISPER_RATE = 16_000
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_SECONDS = 600
FETCH_TIMEOUT_SECONDS = 30.0
MAX_REDIRECTS = 5


class AudioError(ValueError):
    """Raised when an input cannot be turned into audio; ``str()`` is the reason for the customer."""


# --- fetching ---------------------------------------------------------------------


def check_url(url: str) -> str:
    """``url`` stripped, if it is an http(s) URL with a host; AudioError otherwise."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        shown = url if len(url) <= 80 else url[:77] + "..."
        raise AudioError(f"input URL is not http(s): {shown!r}")
    return url


async def fetch(
    url: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = FETCH_TIMEOUT_SECONDS,
    max_redirects: int = MAX_REDIRECTS,
    allow_private: bool = False,
) -> bytes:
    """The body at ``url``, read as it streams so that no more than ``max_bytes`` is ever held.

    A declared ``Content-Length`` over the limit is refused before reading. Each
    redirect's target must be http(s) too (httpx checks the scheme it follows).
    Unless ``allow_private``, every hop must resolve to public addresses only:
    a job's URL is the customer's choice, and must not make the node reach
    into its own machine or network (its admin ports, a router, a cloud's
    metadata service). The check is made when each request is sent; a DNS
    answer that changes between the check and the connection is not caught.
    """
    import httpx

    url = check_url(url)
    limits = httpx.Timeout(timeout)
    hooks = {} if allow_private else {"request": [_public_only]}
    try:
        async with (
            httpx.AsyncClient(
                timeout=limits, follow_redirects=True, max_redirects=max_redirects, event_hooks=hooks
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise AudioError(f"HTTP {response.status_code} fetching {_short(url)}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise AudioError(f"input is larger than {max_bytes} bytes ({declared} bytes)")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise AudioError(f"input is larger than {max_bytes} bytes")
            return bytes(body)
    except httpx.TooManyRedirects:
        raise AudioError(f"more than {max_redirects} redirects fetching {_short(url)}") from None
    except httpx.UnsupportedProtocol:
        raise AudioError(f"input URL redirects to a URL that is not http(s): {_short(url)}") from None
    except httpx.TimeoutException:
        raise AudioError(f"timed out after {timeout:g} s fetching {_short(url)}") from None
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise AudioError(f"cannot fetch {_short(url)}: {reason}") from None


async def _public_only(request: Any) -> None:
    """An httpx request hook: refuse hosts that resolve to non-public addresses."""
    host = request.url.host
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise AudioError(f"cannot resolve {host!r}: {exc.strerror or exc}") from None
    for *_, address in found:
        ip = ipaddress.ip_address(address[0])
        if not ip.is_global:
            raise AudioError(f"input URL host {host!r} is a private address ({ip}): refused")


def _short(url: str) -> str:
    return url if len(url) <= 100 else url[:97] + "..."


# --- decoding ---------------------------------------------------------------------


def decode(
    data: bytes,
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    until: float | None = None,
    rate: int = WHISPER_RATE,
) -> np.ndarray:
    """The first audio stream of ``data``, mono float32 at ``rate`` Hz, up to ``until`` seconds.

    The whole file must be at most ``max_seconds`` long, unless ``until``
    stops the decoding before that. A declared duration over the limit is
    refused before decoding; a file that declares none is stopped as soon as
    it runs over.
    """
    import av

    if not data:
        raise AudioError("input is not audio we can decode: it is empty")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise AudioError(f"input is not audio we can decode: {_why(exc)}") from None
    with container:
        if not container.streams.audio:
            raise AudioError("input is not audio we can decode: it has no audio stream")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        stop_early = until is not None and until <= max_seconds
        if declared is not None and declared > max_seconds and not stop_early:
            raise AudioError(f"audio is {declared:.0f} s long, the limit is {max_seconds:g} s")
        wanted = until if until is not None and stop_early else max_seconds
        return _decode_stream(container, stream, rate, wanted, stop_early=stop_early)


def _declared_seconds(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration) / 1_000_000  # AV_TIME_BASE
    return None


def _decode_stream(container: Any, stream: Any, rate: int, seconds: float, *, stop_early: bool) -> np.ndarray:
    import av

    limit = round(seconds * rate)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    pieces: list[np.ndarray] = []
    total = 0
    try:
        for frame in _frames(container, stream):
            for out in resampler.resample(frame):
                piece = out.to_ndarray().reshape(-1)
                pieces.append(piece)
                total += len(piece)
            if total > limit:
                if not stop_early:
                    raise AudioError(f"audio is more than {seconds:g} s long, the limit is {seconds:g} s")
                break
        else:
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        raise AudioError(f"input is not audio we can decode: {_why(exc)}") from None
    if not pieces:
        raise AudioError("input is not audio we can decode: no audio frames in it")
    samples = np.concatenate(pieces).astype(np.float32, copy=False)
    return samples[:limit]


def _frames(container: Any, stream: Any) -> Any:
    """Decoded frames; a corrupt packet in the middle is skipped, as players do."""
    import av

    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.InvalidDataError:
            continue


def _why(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)[:120]


# --- WebVTT -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cue:
    """A stretch of speech: from ``start`` to ``end`` seconds, ``text`` said."""

    start: float
    end: float
    text: str


def vtt_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm`` (WebVTT section 4.5, "WebVTT timestamp"; hours always shown)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def cue_text(text: str) -> str:
    """Text safe in a cue payload (section 4.2.2): escaped ``& < >``, no blank line, no ``-->``."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("-->", "--&gt;")


def render_vtt(cues: Sequence[Cue]) -> str:
    """A WebVTT file (section 4.1): the ``WEBVTT`` line, then one block per cue."""
    blocks = ["WEBVTT\n"]
    for cue in cues:
        text = cue_text(cue.text)
        if not text:
            continue
        end = max(cue.end, cue.start)  # a cue's end must not come before its start
        blocks.append(f"{vtt_timestamp(cue.start)} --> {vtt_timestamp(end)}\n{text}\n")
    return "\n".join(blocks)


def render_timed_lines(cues: Sequence[Cue]) -> str:
    """Plain text with a time range per line, ``[00:00:01.000 --> 00:00:02.500] text``."""
    return "\n".join(
        f"[{vtt_timestamp(c.start)} --> {vtt_timestamp(c.end)}] {' '.join(c.text.split())}"
        for c in cues
        if c.text.strip()
    )


# --- WAV and speech -----------------------------------------------------------------


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """A mono 16-bit PCM WAV file of float samples in [-1, 1] (louder ones are clipped)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return out.getvalue()


def speech_chunks(text: str, max_chars: int = 400) -> list[str]:
    """The text as pieces to speak one at a time: sentences, long ones cut at a comma or space.

    Speaking per sentence gives the first audio early and a place to stop;
    the cut keeps one piece within what the speech model takes at once.
    """
    from dvm.handlers.summarize import split_sentences

    chunks: list[str] = []
    for sentence in split_sentences(text):
        chunks.extend(_cut(sentence.text, max_chars))
    return chunks


def _cut(sentence: str, max_chars: int) -> list[str]:
    pieces = []
    while len(sentence) > max_chars:
        window = sentence[:max_chars]
        at = max(window.rfind(", "), window.rfind("; "), window.rfind(": "))
        if at < max_chars // 3:
            at = window.rfind(" ")
        if at <= 0:
            at = max_chars - 1
        pieces.append(sentence[: at + 1].strip())
        sentence = sentence[at + 1 :].strip()
    if sentence:
        pieces.append(sentence)
    return pieces


# --- models shared by a process -----------------------------------------------------

M = TypeVar("M")


class LoadedModels(Generic[M]):
    """Models loaded once per process, by key, and how many jobs may use each at a time.

    Loading happens in the caller's (worker) thread under a lock, so two jobs
    arriving together load a model once. The slots are asyncio semaphores,
    one per event loop (a semaphore belongs to the loop it first waited in).
    """

    def __init__(self, load: Callable[..., M], parallel: int = 1) -> None:
        self._load = load
        self._parallel = parallel
        self._models: dict[tuple[Any, ...], M] = {}
        self._lock = threading.Lock()
        self._slots: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()

    def get(self, *key: Any) -> M:
        """The model for ``key``, loading it now if needed (blocking: call it in a thread)."""
        with self._lock:
            if key not in self._models:
                self._models[key] = self._load(*key)
            return self._models[key]

    def loaded(self, *key: Any) -> bool:
        return key in self._models

    def slots(self, *key: Any) -> Any:
        """The asyncio semaphore limiting jobs on this model in the running loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        per_loop = self._slots.setdefault(loop, {})
        if key not in per_loop:
            per_loop[key] = asyncio.Semaphore(self._parallel)
        return per_loop[key]
