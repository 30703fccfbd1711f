"""The node's blob store: files named by their sha256, under ``DATA/blobs/``.

Blossom (BUD-01, BUD-02; ``web/routes/blossom.py``) serves it over HTTP, and
job handlers keep their outputs in it (text-to-speech audio). A blob is one
file ``<sha256>`` plus one row in ``blobs.sqlite3``; who uploaded it is a
separate table, because the same bytes may be uploaded by many keys and a
``DELETE`` by one of them must not take it from the others (BUD-02 lists and
deletes blobs per pubkey).

Writes are atomic: bytes go to a temporary file that is flushed, synced and
renamed, and only then is the row committed. A crash leaves at worst an
orphan temporary file (removed at the next open), never a row without its
file. Calls are synchronous and short (SQLite on the event loop's thread, as
the relay's small queries are); :meth:`BlobStore.put_file` lets an uploader
stream a large body to disk first and hand over the finished file, and may
run in a worker thread: writes take a lock, so a handler's thread and the
web app never interleave a check and its write.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# A blob's name in a URL path (BUD-01 "GET /sha256"): its sha256, then an optional extension.
BLOB_NAME = re.compile(r"([0-9a-f]{64})(\.[A-Za-z0-9]{1,16})?")
OCTET_STREAM = "application/octet-stream"
TEMP_PREFIX = ".upload-"
# type "/" subtype, both RFC 9110 tokens (section 8.3.1): anything else is not
# a media type and must not reach a Content-Type header we send.
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+/[a-z0-9!#$%&'*+.^_`|~-]+")

# Extensions for the types we produce or commonly receive; mimetypes knows the rest.
_EXTENSIONS = {
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
    "audio/webm": ".weba",
    "audio/flac": ".flac",
    "audio/mp4": ".m4a",
    "text/plain": ".txt",
    "text/vtt": ".vtt",
    OCTET_STREAM: ".bin",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    sha256   TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    type     TEXT NOT NULL,
    uploaded INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS owners (
    sha256   TEXT NOT NULL REFERENCES blobs(sha256) ON DELETE CASCADE,
    pubkey   TEXT NOT NULL,
    uploaded INTEGER NOT NULL,
    PRIMARY KEY (pubkey, sha256)
);
CREATE INDEX IF NOT EXISTS owners_by_blob ON owners(sha256);
"""


class BlobError(ValueError):
    """A blob that cannot be stored; ``str()`` says why (too large, wrong hash)."""


@dataclass(frozen=True, slots=True)
class Blob:
    sha256: str
    size: int
    type: str
    uploaded: int

    @property
    def extension(self) -> str:
        return extension_for(self.type)


def extension_for(mime: str) -> str:
    """The file extension (with its dot) that blob URLs of this type carry (BUD-02 descriptor)."""
    mime = mime.split(";", 1)[0].strip().lower()
    return _EXTENSIONS.get(mime) or mimetypes.guess_extension(mime, strict=False) or ".bin"


def normal_type(mime: str | None) -> str:
    """A Content-Type header reduced to its lowercase media type; unknown means octet-stream."""
    if not mime:
        return OCTET_STREAM
    value = mime.split(";", 1)[0].strip().lower()
    return value if len(value) <= 127 and _MEDIA_TYPE.fullmatch(value) else OCTET_STREAM


class BlobStore:
    def __init__(self, root: Path, base_url: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.base_url = base_url.rstrip("/")
        self.max_bytes = max_bytes
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    # --- lifecycle ----------------------------------------------------------------

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.root / "blobs.sqlite3", isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(_SCHEMA)
        self._db = db
        # Nobody writes before open: what is left is a crashed upload's.
        for stale in self.root.glob(TEMP_PREFIX + "*"):
            stale.unlink(missing_ok=True)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the blob store is not open")
        return self._db

    # --- reading ------------------------------------------------------------------

    def path(self, sha256: str) -> Path:
        return self.root / sha256

    def get(self, sha256: str) -> Blob | None:
        row = self.db.execute("SELECT sha256, size, type, uploaded FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
        return Blob(*row) if row else None

    def url(self, blob: Blob) -> str:
        return f"{self.base_url}/{blob.sha256}{blob.extension}"

    def sha256_of(self, url: str) -> str | None:
        """The blob a URL names when it points at this store (``base_url/<sha256>[.ext]``), else None."""
        if not url.startswith(self.base_url + "/"):
            return None
        match = BLOB_NAME.fullmatch(url[len(self.base_url) + 1 :])
        return match.group(1) if match else None

    def descriptor(self, blob: Blob) -> dict[str, object]:
        """The BUD-02 blob descriptor."""
        return {"url": self.url(blob), "sha256": blob.sha256, "size": blob.size, "type": blob.type, "uploaded": blob.uploaded}

    # Before list(), whose name would shadow the builtin in these annotations.
    def owners(self, sha256: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT pubkey FROM owners WHERE sha256 = ? ORDER BY pubkey", (sha256,))]

    def list(self, pubkey: str, since: int | None = None, until: int | None = None) -> list[Blob]:
        """The blobs ``pubkey`` uploaded, newest first, filtered on their upload time (BUD-02 ``/list``)."""
        sql = (
            "SELECT b.sha256, b.size, b.type, o.uploaded FROM owners o JOIN blobs b USING (sha256)"
            " WHERE o.pubkey = ? AND o.uploaded >= ? AND o.uploaded <= ? ORDER BY o.uploaded DESC, b.sha256"
        )
        rows = self.db.execute(sql, (pubkey, since or 0, until if until is not None else 2**62)).fetchall()
        return [Blob(*row) for row in rows]

    # --- writing ------------------------------------------------------------------

    def put(self, data: bytes, mime: str | None, owner: str) -> tuple[Blob, bool]:
        """Store ``data`` for ``owner``; returns the blob and whether its bytes are new here."""
        if len(data) > self.max_bytes:
            raise BlobError(f"blob too large: {len(data)} bytes, the limit is {self.max_bytes}")
        sha256 = hashlib.sha256(data).hexdigest()
        if self.get(sha256) is None:
            fd, tmp = self.temp_file()
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            return self.put_file(tmp, sha256, mime, owner)
        with self._transaction():
            if self.get(sha256) is not None:
                return self._own(sha256, owner), False
        return self.put(data, mime, owner)  # deleted since we looked: store it again

    def put_file(self, tmp: Path, sha256: str, mime: str | None, owner: str) -> tuple[Blob, bool]:
        """Adopt a finished temporary file under ``root`` whose sha256 the caller computed while writing it."""
        size = tmp.stat().st_size
        if size > self.max_bytes:
            tmp.unlink(missing_ok=True)
            raise BlobError(f"blob too large: {size} bytes, the limit is {self.max_bytes}")
        synced = False
        if self.get(sha256) is None:  # the slow part, outside the lock; not for bytes we hold
            _fsync(tmp)
            synced = True
        with self._transaction():
            if self.get(sha256) is not None:
                tmp.unlink(missing_ok=True)
                return self._own(sha256, owner), False
            if not synced:  # it was here when we looked, and deleted since
                _fsync(tmp)
            os.replace(tmp, self.path(sha256))
            _sync_dir(self.root)
            self.db.execute(
                "INSERT INTO blobs (sha256, size, type, uploaded) VALUES (?, ?, ?, ?)",
                (sha256, size, normal_type(mime), int(time.time())),
            )
            return self._own(sha256, owner), True

    def temp_file(self) -> tuple[int, Path]:
        """A new temporary file under ``root`` for :meth:`put_file` (same filesystem, so the rename is atomic)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=TEMP_PREFIX)
        return fd, Path(tmp)

    def delete(self, sha256: str, owner: str) -> bool:
        """Forget ``owner``'s upload of ``sha256``; the bytes go when nobody owns them. False if not theirs."""
        # The lock spans the commit and the unlink, so no upload of the same
        # bytes can slip in between; the file goes only once the row has.
        with self._lock:
            with self._transaction():
                gone = self.db.execute("DELETE FROM owners WHERE pubkey = ? AND sha256 = ?", (owner, sha256)).rowcount
                if not gone:
                    return False
                left = self.db.execute("SELECT 1 FROM owners WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone()
                if left is None:
                    self.db.execute("DELETE FROM blobs WHERE sha256 = ?", (sha256,))
            if left is None:
                self.path(sha256).unlink(missing_ok=True)
        return True

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One writer at a time, in one SQLite transaction.

        The connection is in autocommit mode (``isolation_level=None``), where
        ``with db:`` opens no transaction: this one is explicit.
        """
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _own(self, sha256: str, owner: str) -> Blob:
        """Record ``owner``'s upload; inside a :meth:`_transaction`."""
        self.db.execute(
            "INSERT OR IGNORE INTO owners (sha256, pubkey, uploaded) VALUES (?, ?, ?)",
            (sha256, owner, int(time.time())),
        )
        blob = self.get(sha256)
        assert blob is not None
        return blob


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
