"""Kind 5250, text to speech: Kokoro-82M on the CPU, offline; the audio goes to Blossom.

Spec: ``shared/specs/dvm-kinds/5250.md`` (sections "Input", "Output",
"Appendix A"); NIP-90 for the request and result (``shared/specs/nips/90.md``).

Input: the text to read, as ``text`` inputs, or ``event`` or ``job`` inputs
whose content the engine resolves; several inputs are read one after the
other, each as a paragraph. ``url`` inputs are refused: fetching and cleaning
web pages is not this handler's job.

Params:

- ``voice``: one of the installed voices (``timmy models status`` counts them;
  ``af_heart``, ``am_michael``, ``bf_emma``, ``bm_george`` ...); the first
  letter is the accent (a: American, b: British), the second the gender;
- ``language``: ``en``, ``en-us`` or ``en-gb`` (ISO 639-1, as Appendix A asks;
  ``eng`` too). The voices are English: any other language is refused rather
  than read with English sounds. ``en`` means the voice's own accent;
- ``speed``: 0.5 to 2.0 (default 1).

Output: "a link to the generated audio" (section "Output"): the result's
content is the URL of a WAV file (24 kHz, 16-bit PCM, mono) in this node's
blob store, served by its Blossom server. The content is a URL, so the
handler's mime is ``text/uri-list`` (RFC 2483); the result also carries
NIP-94-style ``url``, ``m`` (``audio/wav``), ``x`` (sha256, which is also
the Blossom name) and ``size`` tags, and the audio's ``duration`` in seconds,
so a client knows what it will fetch before fetching it.

The text is spoken a sentence at a time, ``parallel`` sentences at once in
worker threads (``stop`` is looked at before each sentence; partial feedback
tells how far it got), with a short pause after each, a longer one between
paragraphs. When there is more than one sentence, the first one is stored as
its own blob as soon as it is ready and its URL sent as ``partial`` feedback,
so a client can start playing while the rest is made. The model is
loaded once per process, on first use, and shared by every agent that uses
the same model folder; one job at a time runs on it.

Settings (an agent's ``settings.tts`` in node.toml):

- ``model_dir`` (default: ``[models] dir``, $TIMMY_MODELS_DIR or
  ~/.local/share/timmy/models): where ``timmy models install`` put Kokoro;
- ``voice`` (default ``af_heart``) and ``speed`` (default 1.0): used when the
  request names none;
- ``threads`` (default 1): CPU threads for one synthesis;
- ``parallel`` (default 2): sentences synthesised at once (one per core is
  right: 2 x 1 thread beats 1 x 2 threads here);
- ``max_chars`` (default 4000): the longest text accepted, all inputs together.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dvm import audio
from dvm.audio import LoadedModels
from dvm.handlers import HandlerError, JobContext, Output, Settings
from nips.nip90 import JobRequest
from node import models

SAMPLE_RATE = 24_000  # Kokoro's output
DEFAULT_VOICE = "af_heart"
DEFAULT_SPEED = 1.0
DEFAULT_THREADS = 1
DEFAULT_MAX_CHARS = 4000
SENTENCE_PAUSE = 0.25  # seconds of silence after a sentence
PARAGRAPH_PAUSE = 0.6
PROGRESS_INTERVAL = 5.0
DEFAULT_PARALLEL = 2
SETTINGS = ("model_dir", "voice", "speed", "threads", "parallel", "max_chars")
# The request's language (ISO 639-1 or -2) -> espeak's; None: the voice's own accent.
LANGUAGES: dict[str, str | None] = {"en": None, "eng": None, "en-us": "en-us", "en-gb": "en-gb"}
ACCENTS = {"a": "en-us", "b": "en-gb"}


@dataclass(frozen=True, slots=True)
class Reading:
    """What the request asks for."""

    voice: str
    language: str  # espeak's name: en-us or en-gb
    speed: float


def reading_of(request: JobRequest, settings: Settings) -> Reading:
    """The params of a request, with the agent's defaults; HandlerError says what is wrong."""
    for key, _ in request.params:
        if key not in ("voice", "language", "speed"):
            raise HandlerError(f"unknown param {key!r} (known: voice, language, speed)")
    voice = _one(request, "voice") or _voice(settings)
    if not voice.isascii() or voice[:1] not in ACCENTS or voice[1:3] not in ("f_", "m_"):
        raise HandlerError(f"param voice: {voice[:30]!r} is not an English Kokoro voice (e.g. af_heart, bm_george)")
    language = (_one(request, "language") or "en").lower()
    if language not in LANGUAGES:
        raise HandlerError(
            f"param language: {language[:20]!r} is not spoken here; these voices speak English (en, en-us, en-gb)"
        )
    speed_text = _one(request, "speed")
    speed = _speed(speed_text) if speed_text is not None else _setting_speed(settings)
    return Reading(voice, LANGUAGES[language] or ACCENTS[voice[0]], speed)


def _one(request: JobRequest, name: str) -> str | None:
    values = request.param_values(name)
    if len(values) > 1:
        raise HandlerError(f"param {name}: given more than once")
    return values[0].strip() if values else None


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise HandlerError(f"param speed: {text[:20]!r} is not a number") from None
    if not 0.5 <= value <= 2.0:
        raise HandlerError(f"param speed: {value:g} is outside 0.5-2.0")
    return value


def paragraphs(texts: list[str]) -> list[list[str]]:
    """Each input's paragraphs, as the pieces to speak one by one."""
    found = []
    for text in texts:
        for paragraph in text.replace("\r\n", "\n").split("\n\n"):
            chunks = audio.speech_chunks(paragraph)
            if chunks:
                found.append(chunks)
    return found


# --- the model ------------------------------------------------------------------


def _load(folder: str, threads: int) -> Any:
    import onnxruntime as rt
    from kokoro_onnx import Kokoro

    options = rt.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = rt.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = rt.InferenceSession(
        str(models.kokoro_model(Path(folder))), options, providers=["CPUExecutionProvider"]
    )
    return Kokoro.from_session(session, str(models.kokoro_voices(Path(folder))))


MODELS: LoadedModels[Any] = LoadedModels(_load)


# espeak-ng, behind Kokoro's phonemizer, keeps global state: one text at a
# time, whichever model folder asks. The ONNX inference after it runs in
# parallel (onnxruntime sessions may be run from several threads at once).
_PHONEMIZING = threading.Lock()


def speak(kokoro: Any, piece: str, reading: Reading) -> np.ndarray:
    """One piece of text as 24 kHz float samples (blocking; safe from several threads)."""
    try:
        with _PHONEMIZING:
            phonemes = kokoro.tokenizer.phonemize(piece, reading.language)
        samples, _ = kokoro.create(phonemes, reading.voice, speed=reading.speed, is_phonemes=True)
    except ValueError as exc:
        reason = str(exc).lower()
        if reason.startswith("no phonemes") or reason.startswith("nothing to synthesize"):
            return np.zeros(0, dtype=np.float32)  # nothing pronounceable: emoji, symbols
        raise
    return np.asarray(samples, dtype=np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


# --- the handler ----------------------------------------------------------------


class TextToSpeech:
    kind = 5250
    name = "tts"
    title = "Text to speech (Kokoro, offline), as a Blossom link"

    def check_settings(self, settings: Settings) -> None:
        for key in settings:
            if key not in SETTINGS:
                raise ValueError(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})")
        _folder(settings)
        voice = _voice(settings)
        if not voice.isascii() or voice[:1] not in ACCENTS or voice[1:3] not in ("f_", "m_"):
            raise ValueError(f"voice {voice!r} is not an English Kokoro voice (e.g. af_heart)")
        _setting_speed(settings)
        _int(settings, "threads", DEFAULT_THREADS, 1, 64)
        _parallel(settings)
        _int(settings, "max_chars", DEFAULT_MAX_CHARS, 1, 1_000_000)

    def unavailable(self, settings: Settings) -> str | None:
        folder = _folder(settings)
        reason = models.missing(folder)
        if reason:
            return reason
        if _voice(settings) not in _installed_voices(folder):
            return f"voice {_voice(settings)!r} is not among the voices in {models.kokoro_voices(folder)}"
        return None

    def validate(self, request: JobRequest, settings: Settings) -> None:
        reading_of(request, settings)
        if not request.inputs:
            raise HandlerError("no input: send the text to read as a text input")
        if any(i.type == "url" for i in request.inputs):
            raise HandlerError("url inputs are not supported; send the text to read as a text input")
        size = sum(len(i.data) for i in request.inputs if i.type == "text")
        limit = _int(settings, "max_chars", DEFAULT_MAX_CHARS, 1, 1_000_000)
        if size > limit:
            raise HandlerError(f"the text is {size} characters long, the limit is {limit}")

    async def run(self, ctx: JobContext) -> Output:
        reading = reading_of(ctx.request, ctx.settings)
        folder = _folder(ctx.settings)
        limit = _int(ctx.settings, "max_chars", DEFAULT_MAX_CHARS, 1, 1_000_000)
        size = sum(len(t) for t in ctx.texts)
        if size > limit:
            raise HandlerError(f"the text is {size} characters long, the limit is {limit}")
        pieces = paragraphs(ctx.texts)
        if not pieces:
            raise HandlerError("the text is empty: there is nothing to read")
        blobs = ctx.services.get("blobs")
        if blobs is None:
            raise HandlerError("this node has no blob store to keep the audio in")
        key = (str(folder), _int(ctx.settings, "threads", DEFAULT_THREADS, 1, 64))
        kokoro = await asyncio.to_thread(MODELS.get, *key)
        if reading.voice not in kokoro.voices:
            raise HandlerError(f"param voice: {reading.voice!r} is not installed here")

        async def first_sentence(samples: np.ndarray) -> None:
            # A long text takes a while: the first sentence goes out at once as
            # `partial` feedback, so a client can start playing (NIP-90 "partial").
            first, _ = blobs.put(audio.wav_bytes(samples, SAMPLE_RATE), "audio/wav", ctx.request.customer)
            await ctx.progress("first sentence", blobs.url(first))

        async with MODELS.slots(*key):
            samples = await _read_aloud(ctx, kokoro, pieces, reading, _parallel(ctx.settings), first_sentence)
        if not len(samples):
            raise HandlerError("nothing in the text could be pronounced")
        wav = audio.wav_bytes(samples, SAMPLE_RATE)
        # The customer asked for the audio, so the blob is theirs: with BUD-02
        # they can list it and delete it when done with it.
        blob, _ = blobs.put(wav, "audio/wav", ctx.request.customer)
        url = blobs.url(blob)
        seconds = len(samples) / SAMPLE_RATE
        tags = (("url", url), ("m", "audio/wav"), ("x", blob.sha256), ("size", str(blob.size)),
                ("duration", f"{seconds:.2f}"))
        return Output(url, "text/uri-list", tags)


async def _read_aloud(
    ctx: JobContext,
    kokoro: Any,
    pieces: list[list[str]],
    reading: Reading,
    parallel: int,
    on_first: Callable[[np.ndarray], Awaitable[None]] | None = None,
) -> np.ndarray:
    """Every piece spoken, in order, with pauses; ``parallel`` pieces are synthesised at once.

    With one thread per synthesis, two at once use both cores of a small
    machine: 2.7x real time becomes 4.5x (bench/voice.py). A stop is seen
    before each piece starts. ``on_first`` gets the first piece's audio as soon
    as it is ready, when there is more than one piece.
    """
    flat = [(number, piece) for number, paragraph in enumerate(pieces) for piece in paragraph]
    slots = asyncio.Semaphore(parallel)
    done, last = 0, time.monotonic()

    async def one(number: int, piece: str) -> np.ndarray:
        nonlocal done, last
        async with slots:
            if ctx.stop.is_set():
                raise HandlerError("stopped: the job was cancelled or timed out")
            spoken = await asyncio.to_thread(speak, kokoro, piece, reading)
        if number == 0 and on_first is not None and len(flat) > 1 and len(spoken):
            await on_first(spoken)
        done += 1
        if time.monotonic() - last >= PROGRESS_INTERVAL:
            last = time.monotonic()
            await ctx.progress(f"read {done} of {len(flat)} sentences")
        return spoken

    tasks = [asyncio.ensure_future(one(i, piece)) for i, (_, piece) in enumerate(flat)]
    try:
        spoken = await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    parts: list[np.ndarray] = []
    previous = 0
    for (number, _), samples in zip(flat, spoken, strict=True):
        if not len(samples):
            continue
        if parts:
            pause = PARAGRAPH_PAUSE if number != previous else SENTENCE_PAUSE
            parts.append(silence(pause))
        parts.append(samples)
        previous = number
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts)


def _installed_voices(folder: Path) -> list[str]:
    try:
        return models.voice_names(models.kokoro_voices(folder))
    except models.ModelError:
        return []


def _folder(settings: Settings) -> Path:
    value = settings.get("model_dir", "")
    if not isinstance(value, str):
        raise ValueError("model_dir must be a string: the folder of `timmy models install`")
    return models.models_dir(value)


def _voice(settings: Settings) -> str:
    value = settings.get("voice", DEFAULT_VOICE)
    if not isinstance(value, str) or not value:
        raise ValueError("voice must be a voice name, e.g. af_heart")
    return value


def _setting_speed(settings: Settings) -> float:
    value = settings.get("speed", DEFAULT_SPEED)
    if type(value) not in (int, float) or not 0.5 <= float(value) <= 2.0:
        raise ValueError("speed must be a number between 0.5 and 2.0")
    return float(value)


def _parallel(settings: Settings) -> int:
    return _int(settings, "parallel", DEFAULT_PARALLEL, 1, 16)


def _int(settings: Settings, key: str, default: int, low: int, high: int) -> int:
    value = settings.get(key, default)
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{key} must be an integer between {low} and {high}")
    return value


HANDLER = TextToSpeech()
