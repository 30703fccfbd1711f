"""Tests for dvm/audio.py: fetching over real HTTP, decoding real files, WebVTT, WAV, sentences.

Audio here is made in the test (tones encoded with PyAV), so no model is needed.
"""

from __future__ import annotations

import io
import wave

import av
import numpy as np
import pytest

from dvm import audio
from dvm.audio import AudioError, Cue
from tests.speech import FileServer, Reply, refused_url


def tone(seconds: float, rate: int = 44_100, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encoded(samples: np.ndarray, rate: int, fmt: str, codec: str, layout: str = "mono") -> bytes:
    """``samples`` in a real container and codec, as FFmpeg writes them."""
    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        channels = 2 if layout == "stereo" else 1
        planar = np.tile(samples, (channels, 1)) if channels == 2 else samples[np.newaxis, :]
        frame = av.AudioFrame.from_ndarray(
            (planar.T.reshape(1, -1) * 32767).astype(np.int16), format="s16", layout=layout
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


# --- fetching -----------------------------------------------------------------------


@pytest.fixture
def server():
    with FileServer() as s:
        yield s


async def test_fetches_a_file(server: FileServer) -> None:
    server.files["/a.wav"] = Reply(b"RIFF1234")
    assert await audio.fetch(server.url("/a.wav"), allow_private=True) == b"RIFF1234"


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.mp3", "file:///etc/passwd", "example.com/a.mp3", "http://", "  ", "data:audio/wav;base64,AA"]
)
async def test_only_http_urls(url: str) -> None:
    with pytest.raises(AudioError, match="input URL is not http"):
        await audio.fetch(url)


async def test_http_errors_are_named(server: FileServer) -> None:
    with pytest.raises(AudioError, match=r"^HTTP 404 fetching http://127\.0\.0\.1:\d+/missing\.wav$"):
        await audio.fetch(server.url("/missing.wav"), allow_private=True)
    server.files["/boom"] = Reply(b"", 500)
    with pytest.raises(AudioError, match="HTTP 500 fetching"):
        await audio.fetch(server.url("/boom"), allow_private=True)


async def test_connection_refused() -> None:
    with pytest.raises(AudioError, match=r"cannot fetch http://127\.0\.0\.1"):
        await audio.fetch(refused_url(), allow_private=True)


async def test_declared_size_over_the_limit_is_refused_before_reading(server: FileServer) -> None:
    server.files["/big"] = Reply(b"x" * 2000)
    with pytest.raises(AudioError, match=r"input is larger than 1000 bytes \(2000 bytes\)"):
        await audio.fetch(server.url("/big"), max_bytes=1000, allow_private=True)
    assert await audio.fetch(server.url("/big"), max_bytes=2000, allow_private=True) == b"x" * 2000


async def test_size_limit_is_enforced_while_reading_an_undeclared_body(server: FileServer) -> None:
    server.files["/stream"] = Reply(b"x" * 300_000, declare_length=False)
    with pytest.raises(AudioError, match=r"^input is larger than 100000 bytes$"):
        await audio.fetch(server.url("/stream"), max_bytes=100_000, allow_private=True)
    assert len(await audio.fetch(server.url("/stream"), max_bytes=300_000, allow_private=True)) == 300_000


async def test_follows_redirects_up_to_a_limit(server: FileServer) -> None:
    server.files["/a.wav"] = Reply(b"audio")
    server.files["/moved"] = Reply(status=302, headers={"Location": "/a.wav"})
    assert await audio.fetch(server.url("/moved"), allow_private=True) == b"audio"
    server.files["/loop"] = Reply(status=302, headers={"Location": "/loop"})
    with pytest.raises(AudioError, match="more than 5 redirects"):
        await audio.fetch(server.url("/loop"), allow_private=True)


async def test_a_redirect_to_another_scheme_is_refused(server: FileServer) -> None:
    server.files["/ftp"] = Reply(status=302, headers={"Location": "ftp://example.com/a.wav"})
    with pytest.raises(AudioError, match="not http"):
        await audio.fetch(server.url("/ftp"), allow_private=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.1.2.3", "169.254.169.254", "192.168.0.1"])
async def test_private_addresses_are_refused_by_default(host: str) -> None:
    with pytest.raises(AudioError, match="is a private address"):
        await audio.fetch(f"http://{host}:9/a.wav")


async def test_the_hook_that_checks_every_hop_refuses_private_hosts() -> None:
    # httpx runs request hooks on each redirect hop too, so a public URL that
    # redirects inward meets the same check (no public server can be reached here).
    with pytest.raises(AudioError, match=r"10\.0\.0\.1"):
        await audio._public_only(_Request("http://10.0.0.1/a.wav"))
    await audio._public_only(_Request("http://93.184.215.14/a.wav"))  # a public address passes


class _Request:
    def __init__(self, url: str) -> None:
        import httpx

        self.url = httpx.URL(url)


# --- decoding -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "codec", "layout"),
    [("wav", "pcm_s16le", "mono"), ("wav", "pcm_s16le", "stereo"), ("ogg", "libopus", "mono"),
     ("mp3", "libmp3lame", "stereo"), ("flac", "flac", "mono")],
)
def test_decodes_common_formats_to_16k_mono(fmt: str, codec: str, layout: str) -> None:
    rate = 48_000 if codec == "libopus" else 44_100
    try:
        data = encoded(tone(2.0, rate), rate, fmt, codec, layout)
    except (av.FFmpegError, ValueError) as exc:  # an FFmpeg built without this encoder
        pytest.skip(f"cannot encode {codec} here: {exc}")
    samples = audio.decode(data)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) / audio.WHISPER_RATE - 2.0) < 0.1
    # Still a 440 Hz tone: its strongest frequency survives resampling.
    spectrum = np.abs(np.fft.rfft(samples[: audio.WHISPER_RATE]))
    assert abs(np.argmax(spectrum) - 440) <= 2


def test_random_bytes_are_not_audio() -> None:
    noise = np.random.default_rng(1).bytes(50_000)
    with pytest.raises(AudioError, match=r"^input is not audio we can decode: "):
        audio.decode(noise)


def test_a_text_file_is_not_audio() -> None:
    text = ("This is a plain text file, not a recording.\n" * 200).encode()
    with pytest.raises(AudioError, match=r"^input is not audio we can decode: "):
        audio.decode(text)


def test_empty_input_is_not_audio() -> None:
    with pytest.raises(AudioError, match=r"^input is not audio we can decode: it is empty$"):
        audio.decode(b"")


def test_too_long_audio_is_refused_with_its_length() -> None:
    data = encoded(tone(12.0, 8000), 8000, "wav", "pcm_s16le")
    with pytest.raises(AudioError, match=r"^audio is 12 s long, the limit is 10 s$"):
        audio.decode(data, max_seconds=10)
    assert len(audio.decode(data, max_seconds=12)) == 12 * audio.WHISPER_RATE


def test_too_long_audio_without_a_declared_length_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encoded(tone(12.0, 8000), 8000, "wav", "pcm_s16le")
    monkeypatch.setattr(audio, "_declared_seconds", lambda container, stream: None)
    with pytest.raises(AudioError, match=r"^audio is more than 10 s long, the limit is 10 s$"):
        audio.decode(data, max_seconds=10)


def test_until_decodes_the_start_of_long_audio() -> None:
    data = encoded(tone(12.0, 8000), 8000, "wav", "pcm_s16le")
    assert len(audio.decode(data, max_seconds=10, until=4.0)) == 4 * audio.WHISPER_RATE
    with pytest.raises(AudioError, match="limit is 10 s"):
        audio.decode(data, max_seconds=10, until=11.0)


# --- WebVTT -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "stamp"),
    [(0, "00:00:00.000"), (1.5, "00:00:01.500"), (61.0004, "00:01:01.000"), (3599.9996, "01:00:00.000"),
     (3723.456, "01:02:03.456"), (-0.2, "00:00:00.000"), (100 * 3600, "100:00:00.000")],
)
def test_timestamps(seconds: float, stamp: str) -> None:
    assert audio.vtt_timestamp(seconds) == stamp


def test_render_vtt() -> None:
    cues = [Cue(0.0, 2.5, " Hello there."), Cue(2.5, 4.0, "General Kenobi!")]
    assert audio.render_vtt(cues) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\nHello there.\n\n"
        "00:00:02.500 --> 00:00:04.000\nGeneral Kenobi!\n"
    )


def test_vtt_cue_text_cannot_break_the_file() -> None:
    cues = [Cue(1, 2, "a --> b\n\nWEBVTT <c> & d"), Cue(2, 3, "   "), Cue(5, 4, "backwards")]
    text = audio.render_vtt(cues)
    assert text == (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:02.000\na --&gt; b WEBVTT &lt;c&gt; &amp; d\n\n"
        "00:00:05.000 --> 00:00:05.000\nbackwards\n"
    )


def test_render_vtt_of_nothing_is_a_valid_empty_file() -> None:
    assert audio.render_vtt([]) == "WEBVTT\n"


def test_timed_lines() -> None:
    lines = audio.render_timed_lines([Cue(0, 1.25, " one "), Cue(61, 62, "two\nthree")])
    assert lines == "[00:00:00.000 --> 00:00:01.250] one\n[00:01:01.000 --> 00:01:02.000] two three"


# --- WAV ----------------------------------------------------------------------------


def test_wav_is_16_bit_mono_pcm_and_round_trips() -> None:
    samples = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0], dtype=np.float32)
    data = audio.wav_bytes(samples, 24_000)
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()) == (1, 2, 24_000, 7)
        pcm = np.frombuffer(wav.readframes(7), dtype="<i2")
    assert pcm.tolist() == [0, 16384, -16384, 32767, -32767, 32767, -32767]


def test_our_wav_decodes() -> None:
    data = audio.wav_bytes(tone(1.0, 24_000), 24_000)
    assert len(audio.decode(data)) == audio.WHISPER_RATE


# --- sentences ----------------------------------------------------------------------


def test_speech_chunks_are_sentences() -> None:
    text = "Dr. Smith arrived at 5 p.m. today. Was it late? No!\nA new line starts here"
    assert audio.speech_chunks(text) == [
        "Dr. Smith arrived at 5 p.m. today.", "Was it late?", "No!", "A new line starts here"
    ]


def test_long_sentences_are_cut_at_a_comma_or_space() -> None:
    sentence = ", ".join(f"clause number {i} of a very long sentence" for i in range(30)) + "."
    chunks = audio.speech_chunks(sentence, max_chars=200)
    assert all(len(c) <= 200 for c in chunks) and len(chunks) > 5
    assert " ".join(chunks) == sentence
    assert all(c.endswith(",") for c in chunks[:-1])
    unbroken = "x" * 450
    assert audio.speech_chunks(unbroken, max_chars=200) == ["x" * 200, "x" * 200, "x" * 50]


def test_no_chunks_in_blank_text() -> None:
    assert audio.speech_chunks("  \n\n ") == []
