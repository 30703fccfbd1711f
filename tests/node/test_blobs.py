"""The blob store: files named by sha256 under DATA/blobs/, owners per pubkey."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.blobs import OCTET_STREAM, BlobError, BlobStore, extension_for, normal_type

ALICE = "a" * 64
BOB = "b" * 64
BASE = "https://node.example"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BlobStore]:
    blobs = BlobStore(tmp_path / "blobs", BASE + "/", max_bytes=1024)
    blobs.open()
    yield blobs
    blobs.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(store: BlobStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir() if p.name.startswith(".upload-"))


def test_put_stores_the_bytes_under_their_hash(store: BlobStore) -> None:
    blob, new = store.put(b"RIFF....WAVE", "audio/wav", ALICE)
    assert new
    assert blob.sha256 == sha(b"RIFF....WAVE")
    assert (blob.size, blob.type) == (12, "audio/wav")
    assert abs(blob.uploaded - time.time()) < 5
    assert store.path(blob.sha256).read_bytes() == b"RIFF....WAVE"
    assert store.get(blob.sha256) == blob
    assert leftovers(store) == []  # the temporary file was renamed, not copied


def test_the_descriptor_is_bud02s_with_an_extension_in_the_url(store: BlobStore) -> None:
    blob, _ = store.put(b"abc", "audio/wav", ALICE)
    assert store.url(blob) == f"{BASE}/{blob.sha256}.wav"
    assert store.descriptor(blob) == {
        "url": f"{BASE}/{blob.sha256}.wav",
        "sha256": blob.sha256,
        "size": 3,
        "type": "audio/wav",
        "uploaded": blob.uploaded,
    }


def test_urls_of_this_store_name_their_blob(store: BlobStore) -> None:
    blob, _ = store.put(b"RIFF....", "audio/wav", ALICE)
    assert store.sha256_of(store.url(blob)) == blob.sha256
    assert store.sha256_of(f"{BASE}/{blob.sha256}") == blob.sha256
    assert store.sha256_of(f"https://elsewhere.example/{blob.sha256}.wav") is None
    assert store.sha256_of(f"{BASE}/list/{blob.sha256}") is None
    assert store.sha256_of(f"{BASE}/{blob.sha256.upper()}.wav") is None


def test_reuploading_the_same_bytes_is_idempotent(store: BlobStore) -> None:
    first, new = store.put(b"same", "text/plain", ALICE)
    again, new_again = store.put(b"same", "image/png", ALICE)
    assert new and not new_again
    assert again == first  # the first type stays: the bytes are the same blob
    assert store.owners(first.sha256) == [ALICE]
    assert store.list(ALICE) == [first]


def test_two_owners_and_deletes(store: BlobStore) -> None:
    blob, _ = store.put(b"shared", None, ALICE)
    _, new = store.put(b"shared", None, BOB)
    assert not new
    assert store.owners(blob.sha256) == [ALICE, BOB]
    assert store.delete(blob.sha256, BOB)
    assert not store.delete(blob.sha256, BOB)  # not theirs any more
    assert store.get(blob.sha256) is not None and store.path(blob.sha256).exists()
    assert store.list(BOB) == []
    assert store.delete(blob.sha256, ALICE)  # the last owner: the bytes go
    assert store.get(blob.sha256) is None
    assert not store.path(blob.sha256).exists()
    assert store.owners(blob.sha256) == []


def test_a_blob_deleted_can_be_uploaded_again(store: BlobStore) -> None:
    blob, _ = store.put(b"again", None, ALICE)
    store.delete(blob.sha256, ALICE)
    _, new = store.put(b"again", None, BOB)
    assert new
    assert store.path(blob.sha256).read_bytes() == b"again"


def test_list_filters_on_upload_time_newest_first(store: BlobStore) -> None:
    blobs = []
    for i, uploaded in enumerate((100, 200, 300)):
        blob, _ = store.put(f"blob {i}".encode(), None, ALICE)
        store.db.execute("UPDATE owners SET uploaded = ? WHERE sha256 = ?", (uploaded, blob.sha256))
        blobs.append(blob.sha256)
    store.put(b"bob's", None, BOB)

    def listed(**kw: int) -> list[str]:
        return [b.sha256 for b in store.list(ALICE, **kw)]

    assert listed() == blobs[::-1]
    assert listed(since=200) == [blobs[2], blobs[1]]
    assert listed(until=200) == [blobs[1], blobs[0]]
    assert listed(since=150, until=250) == [blobs[1]]
    assert listed(since=301) == []
    assert [b.uploaded for b in store.list(ALICE)] == [300, 200, 100]  # each owner's own time


def test_the_size_limit(store: BlobStore) -> None:
    blob, _ = store.put(b"x" * 1024, None, ALICE)
    assert blob.size == 1024
    with pytest.raises(BlobError, match="too large"):
        store.put(b"x" * 1025, None, ALICE)
    assert leftovers(store) == []


def test_put_file_adopts_a_streamed_temporary_file(store: BlobStore) -> None:
    data = b"streamed audio"
    fd, tmp = store.temp_file()
    assert tmp.parent == store.root  # same filesystem: the rename is atomic
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    blob, new = store.put_file(tmp, sha(data), "Audio/OGG; codecs=opus", ALICE)
    assert new and not tmp.exists()
    assert blob.type == "audio/ogg"
    assert store.path(blob.sha256).read_bytes() == data
    # The same bytes streamed again: the second file is dropped, the owner added.
    fd, tmp = store.temp_file()
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    _, new = store.put_file(tmp, sha(data), None, BOB)
    assert not new and not tmp.exists()
    assert store.owners(blob.sha256) == [ALICE, BOB]


def test_put_file_refuses_and_removes_a_file_over_the_limit(store: BlobStore) -> None:
    fd, tmp = store.temp_file()
    with os.fdopen(fd, "wb") as out:
        out.write(b"y" * 2000)
    with pytest.raises(BlobError, match="too large"):
        store.put_file(tmp, sha(b"y" * 2000), None, ALICE)
    assert not tmp.exists()
    assert store.get(sha(b"y" * 2000)) is None


def test_a_crashed_uploads_temporary_file_goes_at_the_next_open(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", BASE)
    store.open()
    kept, _ = store.put(b"kept", None, ALICE)
    fd, tmp = store.temp_file()
    os.close(fd)
    store.close()
    store.open()
    assert not tmp.exists()
    assert store.path(kept.sha256).read_bytes() == b"kept"
    store.close()


def test_blobs_survive_a_reopen(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", BASE)
    store.open()
    blob, _ = store.put(b"durable", "text/plain", ALICE)
    store.close()
    reopened = BlobStore(tmp_path / "blobs", BASE)
    reopened.open()
    assert reopened.get(blob.sha256) == blob
    assert reopened.list(ALICE) == [blob]
    reopened.close()


def test_writers_in_threads_do_not_lose_owners(store: BlobStore) -> None:
    """A handler's thread and the web app may write at once; every upload keeps its owner."""
    keys = [f"{i:064x}" for i in range(8)]

    def upload(key: str) -> None:
        for _ in range(20):
            store.put(b"popular", None, key)

    threads = [threading.Thread(target=upload, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.owners(sha(b"popular")) == sorted(keys)


def test_content_types_are_normalised() -> None:
    assert normal_type("Audio/WAV; charset=x") == "audio/wav"
    assert normal_type(None) == OCTET_STREAM
    assert normal_type("") == OCTET_STREAM
    assert normal_type("nonsense") == OCTET_STREAM
    assert normal_type("text/html, text/plain") == OCTET_STREAM  # not one media type
    assert normal_type("image/svg+xml") == "image/svg+xml"
    assert extension_for("audio/wav") == ".wav"
    assert extension_for("application/x-unknown-thing") == ".bin"
