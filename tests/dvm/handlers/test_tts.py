"""Tests for dvm/handlers/tts.py: kind 5250 with the real Kokoro model and a real blob store.

The audio a job makes is checked as a file (WAV, 24 kHz, 16-bit, mono, the
length its tags say) and as speech: Whisper must hear the words back. The
last tests run both speech agents in the engine, over a real relay, with the
blob store served over HTTP: a text-to-speech job, then a speech-to-text job
chained on it (its input is the first job's result: the audio's URL).
"""

from __future__ import annotations

import io
import logging
import os
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dvm.agents import build_agents
from dvm.handlers import HandlerError, JobContext, Settings, discover
from dvm.handlers import stt as stt_module
from dvm.handlers import tts as tts_module
from dvm.handlers.tts import HANDLER
from nips.nip01 import Signer
from nips.nip90 import JobRequest, parse_request
from node.blobs import BlobStore
from node.config import AgentConfig
from tests.dvm.conftest import Customer, StartEngine, status
from tests.helpers import make_event
from tests.speech import FileServer, speech_models, word_errors, words

TEXT = "The quick brown fox jumps over the lazy dog. Please send the report to the office before noon tomorrow."


@pytest.fixture(scope="module")
def models_folder() -> Path:
    return speech_models()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FileServer]:
    with FileServer(blobs=tmp_path / "blobs") as s:
        yield s


@pytest.fixture
def blobs(tmp_path: Path, server: FileServer) -> Iterator[BlobStore]:
    store = BlobStore(tmp_path / "blobs", server.base_url)
    store.open()
    yield store
    store.close()


def request(*inputs: str, params: tuple[tuple[str, str], ...] = (), kind: str = "text") -> JobRequest:
    tags = [*(["i", text, kind] for text in inputs), *(["param", k, v] for k, v in params)]
    return parse_request(make_event(kind=5250, tags=tags))


async def speak(req: JobRequest, blobs: BlobStore | None, settings: Settings | None = None, **ctx: Any) -> Any:
    settings = settings or {}
    HANDLER.check_settings(settings)
    assert HANDLER.unavailable(settings) is None
    HANDLER.validate(req, settings)
    services = {"blobs": blobs} if blobs is not None else {}
    texts = ctx.pop("texts", [i.data for i in req.inputs])
    return await HANDLER.run(JobContext(request=req, texts=texts, settings=settings, services=services, **ctx))


def wav_of(blobs: BlobStore, out: Any) -> tuple[wave._wave_params, bytes]:
    tags = dict(out.tags)
    path = blobs.path(tags["x"])
    with wave.open(io.BytesIO(path.read_bytes())) as wav:
        return wav.getparams(), wav.readframes(wav.getnframes())


async def hear(url: str) -> str:
    """Transcribe ``url`` over HTTP, as a customer's client would fetch it (from 127.0.0.1 here)."""
    req = parse_request(make_event(kind=5000, tags=[["i", url, "url"]]))
    ctx = JobContext(request=req, texts=[url], settings={"allow_private_urls": True})
    return (await stt_module.HANDLER.run(ctx)).content


# --- the audio -----------------------------------------------------------------------


async def test_reads_text_into_a_wav_blob(models_folder: Path, blobs: BlobStore) -> None:
    req = request(TEXT)
    out = await speak(req, blobs)
    tags = dict(out.tags)
    assert out.mime == "text/uri-list"
    assert out.content == tags["url"] == f"{blobs.base_url}/{tags['x']}.wav"
    blob = blobs.get(tags["x"])
    assert blob is not None and blob.type == "audio/wav" and str(blob.size) == tags["size"]
    assert blobs.owners(blob.sha256) == [req.customer]
    params, frames = wav_of(blobs, out)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 24_000)
    assert abs(params.nframes / 24_000 - float(tags["duration"])) < 0.01
    assert 4.0 < float(tags["duration"]) < 9.0  # two sentences
    assert max(abs(int.from_bytes(frames[i : i + 2], "little", signed=True)) for i in range(0, 48_000, 2)) > 1000


async def test_whisper_hears_the_words(models_folder: Path, blobs: BlobStore) -> None:
    out = await speak(request(TEXT), blobs)
    heard = await hear(out.content)
    assert word_errors(words(TEXT), words(heard)) <= 2, heard


async def test_several_inputs_are_read_in_order(models_folder: Path, blobs: BlobStore) -> None:
    out = await speak(request("The first input is short.", "The second one follows it."), blobs)
    heard = words(await hear(out.content))
    assert word_errors(words("The first input is short. The second one follows it."), heard) <= 2


async def test_an_event_input_is_read(models_folder: Path, blobs: BlobStore) -> None:
    req = request("c" * 64, kind="event")
    out = await speak(req, blobs, texts=["Seven green trains."])
    assert word_errors(words("Seven green trains."), words(await hear(out.content))) <= 1


async def test_voice_and_speed(models_folder: Path, blobs: BlobStore) -> None:
    plain = await speak(request(TEXT), blobs)
    george = await speak(request(TEXT, params=(("voice", "bm_george"),)), blobs)
    fast = await speak(request(TEXT, params=(("speed", "2"),)), blobs)
    gb = await speak(request(TEXT, params=(("language", "en-GB"),)), blobs)
    duration = {name: float(dict(out.tags)["duration"]) for name, out in
                (("plain", plain), ("george", george), ("fast", fast), ("gb", gb))}
    assert len({dict(o.tags)["x"] for o in (plain, george, fast, gb)}) == 4
    assert duration["fast"] < 0.7 * duration["plain"]


async def test_settings_give_the_defaults(models_folder: Path, blobs: BlobStore) -> None:
    by_setting = await speak(request(TEXT), blobs, {"voice": "am_michael", "speed": 1.5})
    by_param = await speak(request(TEXT, params=(("voice", "am_michael"), ("speed", "1.5"))), blobs)
    assert dict(by_setting.tags)["x"] == dict(by_param.tags)["x"]  # deterministic, and the same choice


async def test_the_same_text_is_the_same_blob(models_folder: Path, blobs: BlobStore) -> None:
    first, second = await speak(request("Hello."), blobs), await speak(request("Hello."), blobs)
    assert first.content == second.content


async def test_unpronounceable_text(models_folder: Path, blobs: BlobStore) -> None:
    with pytest.raises(HandlerError, match=r"^nothing in the text could be pronounced$"):
        await speak(request("||| --- <>"), blobs)  # espeak reads even emoji names; these it skips


async def test_progress_and_stop(models_folder: Path, blobs: BlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tts_module, "PROGRESS_INTERVAL", 0.0)
    calls: list[str] = []
    stop = threading.Event()

    async def progress(info: str, partial: str = "") -> None:
        calls.append(info)
        stop.set()  # stop after the first sentence

    job = request("One sentence here. Another sentence there. A third one.")
    with pytest.raises(HandlerError, match=r"^stopped: the job was cancelled or timed out$"):
        await speak(job, blobs, {"parallel": 1}, progress=progress, stop=stop)
    assert calls == ["first sentence", "read 1 of 3 sentences"]
    # Only the first sentence was kept (the customer may be playing it); no full result.
    assert len(blobs.list(job.customer)) == 1


async def test_the_first_sentence_goes_out_as_partial_feedback(models_folder: Path, blobs: BlobStore) -> None:
    partials: list[tuple[str, str]] = []

    async def progress(info: str, partial: str = "") -> None:
        partials.append((info, partial))

    out = await speak(request(TEXT), blobs, progress=progress)
    info, url = partials[0]
    assert info == "first sentence" and url.startswith(blobs.base_url + "/") and url.endswith(".wav")
    first = blobs.get(url.rsplit("/", 1)[1].removesuffix(".wav"))
    assert first is not None and first.type == "audio/wav"
    full = blobs.get(dict(out.tags)["x"])
    assert full is not None and 0.2 * full.size < first.size < 0.8 * full.size  # one sentence of two
    # One sentence alone gives no partial: the result itself comes as soon.
    partials.clear()
    await speak(request("Just one sentence."), blobs, progress=progress)
    assert partials == []


# --- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ((("voice", "xx_nobody"),), "'xx_nobody' is not an English Kokoro voice"),
        ((("voice", "jf_alpha"),), "'jf_alpha' is not an English Kokoro voice"),
        ((("language", "fr"),), "'fr' is not spoken here; these voices speak English"),
        ((("speed", "3"),), r"speed: 3 is outside 0\.5-2\.0"),
        ((("speed", "fast"),), "'fast' is not a number"),
        ((("speed", "1"), ("speed", "2")), "speed: given more than once"),
        ((("pitch", "high"),), "unknown param 'pitch'"),
    ],
)
def test_bad_params(params: tuple[tuple[str, str], ...], match: str) -> None:
    with pytest.raises(HandlerError, match=match):
        HANDLER.validate(request(TEXT, params=params), {})


async def test_a_voice_that_is_not_installed(models_folder: Path, blobs: BlobStore) -> None:
    with pytest.raises(HandlerError, match="'af_nobody' is not installed here"):
        await speak(request(TEXT, params=(("voice", "af_nobody"),)), blobs)


def test_inputs() -> None:
    with pytest.raises(HandlerError, match="url inputs are not supported"):
        HANDLER.validate(request("https://example.com/page.html", kind="url"), {})
    with pytest.raises(HandlerError, match="no input"):
        HANDLER.validate(parse_request(make_event(kind=5250)), {})
    with pytest.raises(HandlerError, match=r"^the text is 201 characters long, the limit is 200$"):
        HANDLER.validate(request("x" * 201), {"max_chars": 200})


async def test_limits_hold_for_resolved_inputs_too(models_folder: Path, blobs: BlobStore) -> None:
    req = request("d" * 64, kind="job")
    with pytest.raises(HandlerError, match="the text is 300 characters long, the limit is 200"):
        await speak(req, blobs, {"max_chars": 200}, texts=["y" * 300])
    with pytest.raises(HandlerError, match=r"^the text is empty"):
        await speak(req, blobs, texts=["  \n\n "])


async def test_without_a_blob_store(models_folder: Path) -> None:
    with pytest.raises(HandlerError, match="no blob store"):
        await speak(request(TEXT), None)


# --- settings and availability --------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"voice": "robot"}, "voice 'robot' is not an English Kokoro voice"),
        ({"voice": 3}, "voice must be a voice name"),
        ({"speed": 2.5}, "speed must be a number between 0.5 and 2.0"),
        ({"threads": 0}, "threads must be an integer"),
        ({"max_chars": "many"}, "max_chars must be an integer"),
        ({"model_dir": 1}, "model_dir must be a string"),
        ({"voices": "af_heart"}, "unknown setting 'voices'"),
    ],
)
def test_bad_settings(settings: Settings, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HANDLER.check_settings(settings)


def test_unavailable_without_models(tmp_path: Path) -> None:
    reason = HANDLER.unavailable({"model_dir": str(tmp_path)})
    assert reason == f"Kokoro model not installed in {tmp_path} (missing): run `timmy models install`"


def test_unavailable_with_a_voice_not_installed(models_folder: Path) -> None:
    assert "voice 'af_nobody' is not among the voices" in (HANDLER.unavailable({"voice": "af_nobody"}) or "")


def test_the_agent_is_not_announced_without_models(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    speaker = AgentConfig("speaker", kinds=(5250,), settings={"tts": {"model_dir": str(tmp_path)}})
    with caplog.at_level(logging.WARNING):
        [agent] = build_agents([speaker], {"speaker": Signer(os.urandom(32))}, discover())
    assert agent.handlers == {}
    assert "run `timmy models install`" in agent.unavailable[5250]
    assert "agent speaker does not serve kind 5250: Kokoro model not installed" in caplog.text


# --- through the engine -----------------------------------------------------------------


async def test_speak_then_transcribe_through_the_engine(
    models_folder: Path, blobs: BlobStore, start_engine: StartEngine, relay: Any, customer: Customer
) -> None:
    agents = [
        AgentConfig("speaker", kinds=(5250,), time_limit_seconds=120, concurrency=1),
        AgentConfig("listener", kinds=(5000,), time_limit_seconds=120, concurrency=1),
    ]
    await start_engine(agents, [relay.url], services={"blobs": blobs})
    spoken = await customer.request(5250, [["i", TEXT, "text"], ["param", "voice", "af_heart"]])
    _, result = await customer.result(spoken.id, timeout=120)
    assert result.kind == 6250, status(result)
    url = result.content
    assert url.startswith(blobs.base_url) and result.first_tag_value("m") == "audio/wav"
    heard = await customer.request(5000, [["i", spoken.id, "job"], ["output", "text/vtt"]])
    _, transcript = await customer.result(heard.id, timeout=120)
    assert transcript.kind == 6000, status(transcript)
    assert transcript.content.startswith("WEBVTT")
    text = " ".join(line for line in transcript.content.splitlines()[1:] if line and "-->" not in line)
    assert word_errors(words(TEXT), words(text)) <= 2


async def test_a_bad_url_is_a_7000_error(start_engine: StartEngine, relay: Any, customer: Customer) -> None:
    await start_engine([AgentConfig("listener", kinds=(5000,))], [relay.url])
    job = await customer.request(5000, [["i", "ftp://example.com/a.mp3", "url"]])
    _, answer = await customer.result(job.id)
    assert (answer.kind, status(answer)) == (7000, "error")
    [reason] = [tag[2] for tag in answer.tags if tag[0] == "status"]
    assert reason.startswith("input URL is not http(s)")
