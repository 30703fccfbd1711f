"""Tests for dvm/handlers/stt.py: kind 5000 with the real Whisper model, audio over real HTTP.

The reference speech is five sentences spoken by the real Kokoro model
(tests/speech.py); Whisper must give their words back. Transcripts are
compared as lower-case words without punctuation; the word error rate (word
edit distance over the reference's words) may be at most 10% over the five,
and 25% for any one sentence: tiny.en is small, and a synthetic voice is not
a person, but these are common words said clearly.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dvm import audio
from dvm.handlers import HandlerError, JobContext, Settings
from dvm.handlers import stt as stt_module
from dvm.handlers.stt import HANDLER
from dvm.handlers.tts import MODELS as KOKORO
from dvm.handlers.tts import SAMPLE_RATE, Reading, speak
from nips.nip90 import JobRequest, parse_request
from node.blobs import BlobStore
from tests.helpers import make_event
from tests.speech import (
    SENTENCES,
    FileServer,
    Reply,
    refused_url,
    speech_models,
    word_errors,
    words,
)

PAUSE = 1.0  # seconds of silence between the sentences of the long clip
MAX_WER = 0.10
MAX_SENTENCE_WER = 0.25


@pytest.fixture(scope="module")
def spoken() -> list[np.ndarray]:
    """The five reference sentences, each spoken by Kokoro (24 kHz float samples)."""
    folder = speech_models()
    kokoro = KOKORO.get(str(folder), 1)
    return [speak(kokoro, s, Reading("af_heart", "en-us", 1.0)) for s in SENTENCES]


@pytest.fixture(scope="module")
def server(spoken: list[np.ndarray]) -> Iterator[FileServer]:
    """Each sentence at /s0.wav .. /s4.wav; all five with pauses at /all.wav."""
    gap = np.zeros(round(PAUSE * SAMPLE_RATE), dtype=np.float32)
    clip = np.concatenate([part for s in spoken for part in (s, gap)][:-1])
    with FileServer() as s:
        for i, samples in enumerate(spoken):
            s.files[f"/s{i}.wav"] = Reply(audio.wav_bytes(samples, SAMPLE_RATE), headers={"Content-Type": "audio/wav"})
        s.files["/all.wav"] = Reply(audio.wav_bytes(clip, SAMPLE_RATE))
        s.files["/silence.wav"] = Reply(audio.wav_bytes(np.zeros(3 * SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE))
        s.files["/noise.bin"] = Reply(np.random.default_rng(7).bytes(40_000))
        s.files["/notes.txt"] = Reply(b"Shopping list: eggs, milk, bread.\n" * 50, headers={"Content-Type": "text/plain"})
        yield s


def boundaries(spoken: list[np.ndarray]) -> list[tuple[float, float]]:
    """Where each sentence starts and ends in /all.wav, in seconds."""
    spans, at = [], 0.0
    for samples in spoken:
        length = len(samples) / SAMPLE_RATE
        spans.append((at, at + length))
        at += length + PAUSE
    return spans


def request(url: str, *params: tuple[str, ...], output: str | None = None, kind: str = "url") -> JobRequest:
    tags: list[list[str]] = [["i", url, kind], *(["param", *p] for p in params)]
    if output:
        tags.append(["output", output])
    return parse_request(make_event(kind=5000, tags=tags))


async def transcribe(req: JobRequest, settings: Settings | None = None, **ctx: Any) -> Any:
    # The test server is on 127.0.0.1, which a node refuses by default.
    settings = {"allow_private_urls": True, **(settings or {})}
    HANDLER.check_settings(settings)
    assert HANDLER.unavailable(settings) is None
    HANDLER.validate(req, settings)
    texts = ctx.pop("texts", [i.data for i in req.inputs])
    return await HANDLER.run(JobContext(request=req, texts=texts, settings=settings, **ctx))


async def fails(req: JobRequest, match: str, settings: Settings | None = None, **ctx: Any) -> None:
    with pytest.raises(HandlerError, match=match):
        await transcribe(req, settings, **ctx)


# --- transcripts ---------------------------------------------------------------------


async def test_the_nodes_own_blobs_are_read_from_disk(spoken: list[np.ndarray], tmp_path: Path) -> None:
    # The base URL does not resolve: the audio can only come from the store.
    store = BlobStore(tmp_path / "blobs", "http://blossom.invalid")
    store.open()
    try:
        blob, _ = store.put(audio.wav_bytes(spoken[0], SAMPLE_RATE), "audio/wav", "ab" * 32)
        services = {"blobs": store}
        out = await transcribe(request(store.url(blob)), {"allow_private_urls": False}, services=services)
        assert word_errors(words(SENTENCES[0]), words(out.content)) / len(words(SENTENCES[0])) <= MAX_SENTENCE_WER
        await fails(request(f"http://blossom.invalid/{'0' * 64}.wav"), "is not on this node's Blossom server",
                    services=services)
    finally:
        store.close()


async def test_private_hosts_are_refused_unless_allowed(server: FileServer) -> None:
    await fails(request(server.url("/s0.wav")), "is a private address", {"allow_private_urls": False})


async def test_the_five_reference_sentences_come_back(server: FileServer) -> None:
    errors = total = 0
    for i, sentence in enumerate(SENTENCES):
        out = await transcribe(request(server.url(f"/s{i}.wav")))
        assert out.mime == "text/plain"
        reference, heard = words(sentence), words(out.content)
        wrong = word_errors(reference, heard)
        assert wrong / len(reference) <= MAX_SENTENCE_WER, (sentence, out.content)
        errors, total = errors + wrong, total + len(reference)
    assert errors / total <= MAX_WER


async def test_segments_as_webvtt(server: FileServer, spoken: list[np.ndarray]) -> None:
    out = await transcribe(request(server.url("/all.wav"), output="text/vtt"))
    assert out.mime == "text/vtt"
    assert out.content.startswith("WEBVTT\n\n")
    stamps = re.findall(r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)$", out.content, re.M)
    assert len(stamps) >= 3
    times = [(int(a) * 3600 + int(b) * 60 + int(c) + int(d) / 1000, int(e) * 3600 + int(f) * 60 + int(g) + int(h) / 1000)
             for a, b, c, d, e, f, g, h in stamps]
    assert all(start <= end for start, end in times)
    assert all(times[i][1] <= times[i + 1][0] + 0.01 for i in range(len(times) - 1))
    assert times[-1][1] <= boundaries(spoken)[-1][1] + 1.0
    text = " ".join(line for line in out.content.splitlines()[1:] if line and "-->" not in line)
    assert word_errors(words(" ".join(SENTENCES)), words(text)) / len(words(" ".join(SENTENCES))) <= MAX_WER


async def test_word_alignment(server: FileServer) -> None:
    out = await transcribe(request(server.url("/s0.wav"), ("alignment", "word"), output="text/vtt"))
    cues = out.content.split("\n\n")[1:]
    heard = [cue.splitlines()[1] for cue in cues]
    assert word_errors(words(SENTENCES[0]), words(" ".join(heard))) <= 2
    assert len(heard) == len(words(" ".join(heard)))  # one word per cue


async def test_plain_text_with_segment_timestamps(server: FileServer) -> None:
    out = await transcribe(request(server.url("/all.wav"), ("alignment", "segment")))
    lines = out.content.splitlines()
    assert len(lines) >= 3
    assert all(re.match(r"^\[\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\] \S", line) for line in lines)


async def test_raw_vtt_is_one_cue(server: FileServer) -> None:
    out = await transcribe(request(server.url("/s1.wav"), ("alignment", "raw"), output="text/vtt"))
    assert out.content.count("-->") == 1


async def test_markdown_is_the_plain_transcript(server: FileServer) -> None:
    out = await transcribe(request(server.url("/s2.wav"), output="text/markdown"))
    assert out.mime == "text/markdown"
    assert word_errors(words(SENTENCES[2]), words(out.content)) <= 2


async def test_range_transcribes_only_that_part(server: FileServer, spoken: list[np.ndarray]) -> None:
    spans = boundaries(spoken)
    start, end = spans[2][0] - 0.3, spans[2][1] + 0.3
    out = await transcribe(request(server.url("/all.wav"), ("range", f"{start:.2f}", f"{end:.2f}"),
                                   ("alignment", "segment"), output="text/vtt"))
    text = " ".join(line for line in out.content.splitlines()[1:] if line and "-->" not in line)
    assert word_errors(words(SENTENCES[2]), words(text)) <= 2
    first = re.search(r"(\d\d):(\d\d):(\d\d\.\d{3}) -->", out.content)
    assert first is not None
    # Timestamps are the whole file's, not the range's.
    assert int(first[1]) * 3600 + int(first[2]) * 60 + float(first[3]) >= start - 0.01


async def test_range_in_one_value(server: FileServer, spoken: list[np.ndarray]) -> None:
    spans = boundaries(spoken)
    out = await transcribe(request(server.url("/all.wav"), ("range", f"{spans[1][0] - 0.3:.2f}-{spans[1][1] + 0.3:.2f}")))
    assert word_errors(words(SENTENCES[1]), words(out.content)) <= 2


async def test_an_event_or_job_input_resolved_to_a_url(server: FileServer) -> None:
    req = request("a" * 64, kind="job")
    out = await transcribe(req, texts=[server.url("/s3.wav")])
    assert word_errors(words(SENTENCES[3]), words(out.content)) <= 2


async def test_two_jobs_at_once_share_one_model(server: FileServer) -> None:
    outs = await asyncio.gather(*(transcribe(request(server.url(f"/s{i}.wav"))) for i in (0, 4)))
    assert word_errors(words(SENTENCES[0]), words(outs[0].content)) <= 2
    assert word_errors(words(SENTENCES[4]), words(outs[1].content)) <= 2
    key = (str(stt_module.whisper_model()), stt_module.DEFAULT_THREADS)
    assert stt_module.MODELS.loaded(*key)
    assert stt_module.MODELS.get(*key) is stt_module.MODELS.get(*key)


async def test_progress_on_long_jobs(server: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stt_module, "PROGRESS_INTERVAL", 0.0)
    calls: list[tuple[str, str]] = []

    async def progress(info: str, partial: str = "") -> None:
        calls.append((info, partial))

    await transcribe(request(server.url("/all.wav"), ("alignment", "segment")), progress=progress)
    assert calls and all(re.fullmatch(r"transcribed \d+ of \d+ s", info) for info, _ in calls)
    assert calls[-1][1].split()[:3] == SENTENCES[0].split()[:3]


# --- refusals ------------------------------------------------------------------------


async def test_stop_is_honoured(server: FileServer) -> None:
    stop = threading.Event()
    stop.set()
    await fails(request(server.url("/all.wav")), "^stopped: the job was cancelled or timed out$", stop=stop)


@pytest.mark.parametrize("url", ["ftp://example.com/a.wav", "file:///etc/passwd", "not a url"])
def test_urls_must_be_http(url: str) -> None:
    with pytest.raises(HandlerError, match=r"^input URL is not http"):
        HANDLER.validate(request(url), {})


async def test_a_job_input_that_is_not_a_url() -> None:
    await fails(request("b" * 64, kind="job"), "^input URL is not http", texts=["hello there"])


async def test_http_404(server: FileServer) -> None:
    await fails(request(server.url("/gone.wav")), r"^HTTP 404 fetching http://127\.0\.0\.1:\d+/gone\.wav$")


async def test_connection_refused() -> None:
    await fails(request(refused_url()), r"^cannot fetch http://127\.0\.0\.1:\d+/audio\.wav")


async def test_random_bytes(server: FileServer) -> None:
    await fails(request(server.url("/noise.bin")), "^input is not audio we can decode: ")


async def test_a_text_file(server: FileServer) -> None:
    await fails(request(server.url("/notes.txt")), "^input is not audio we can decode: ")


async def test_oversized_input(server: FileServer) -> None:
    await fails(request(server.url("/all.wav")), r"^input is larger than 10000 bytes", {"max_bytes": 10_000})


async def test_too_long_audio(server: FileServer) -> None:
    await fails(request(server.url("/all.wav")), r"^audio is \d+ s long, the limit is 5 s$", {"max_seconds": 5})


async def test_silence_has_no_speech(server: FileServer) -> None:
    await fails(request(server.url("/silence.wav")), "^no speech heard in the audio$")


async def test_range_after_the_end(server: FileServer) -> None:
    await fails(request(server.url("/s0.wav"), ("range", "100", "110")), r"starts at 100 s, after the audio ends")


@pytest.mark.parametrize(
    ("params", "output", "match"),
    [
        ((("alignment", "phoneme"),), None, "expected raw, segment or word"),
        ((("alignment", "raw"), ("alignment", "word")), None, "alignment: given more than once"),
        ((("range", "10", "5"),), None, r"the end \(5 s\) must come after the start \(10 s\)"),
        ((("range", "ten", "20"),), None, "'ten' is not a number of seconds"),
        ((("range", "-3", "20"),), None, "'-3' is not a number of seconds"),
        ((("range", "30"),), None, "expected a start and an end"),
        ((("language", "en"),), None, "unknown param 'language'"),
        ((), "application/json", "output 'application/json' is not supported"),
    ],
)
def test_bad_requests(params: tuple[tuple[str, ...], ...], output: str | None, match: str) -> None:
    with pytest.raises(HandlerError, match=match):
        HANDLER.validate(request("https://example.com/a.mp3", *params, output=output), {})


def test_inputs_must_be_one_audio() -> None:
    req = parse_request(make_event(kind=5000, tags=[["i", "hello", "text"]]))
    with pytest.raises(HandlerError, match="a text input is not audio"):
        HANDLER.validate(req, {})
    two = parse_request(make_event(kind=5000, tags=[["i", "https://a/1.wav", "url"], ["i", "https://a/2.wav", "url"]]))
    with pytest.raises(HandlerError, match="exactly one input"):
        HANDLER.validate(two, {})


# --- settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"modle": "/x"}, "unknown setting 'modle'"),
        ({"model": 3}, "model must be a string"),
        ({"threads": 0}, "threads must be an integer between 1 and 64"),
        ({"beam_size": "5"}, "beam_size must be an integer"),
        ({"max_seconds": 1.5}, "max_seconds must be an integer"),
        ({"max_bytes": True}, "max_bytes must be an integer"),
    ],
)
def test_bad_settings(settings: Settings, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HANDLER.check_settings(settings)


def test_unavailable_without_a_model(tmp_path: Path) -> None:
    assert HANDLER.unavailable({"model": str(tmp_path)}) == f"no Whisper model (model.bin) in {tmp_path}"


def test_available_with_the_packaged_model() -> None:
    assert HANDLER.unavailable({}) is None
    HANDLER.check_settings({"model": str(stt_module.whisper_model()), "threads": 2, "beam_size": 5})
