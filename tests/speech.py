"""What the speech tests share: a real HTTP file server, the installed models, reference speech.

:class:`FileServer` is ``http.server`` on a free local port in a thread: it
serves bytes from a dict by path, with the status and headers a test asks
for (404s, redirects, a lying ``Content-Length``), and can point at a closed
port for "connection refused".

:func:`speech_models` installs the real models once per test session, into
the default models folder (``node.models.models_dir()``, i.e.
$TIMMY_MODELS_DIR or ~/.local/share/timmy/models), where they stay for the
next run. If that is impossible the tests that need them are skipped, unless
$TIMMY_REQUIRE_MODELS is set (CI sets it): then they fail.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "TIMMY_REQUIRE_MODELS"

# Five reference sentences: common words, numbers spelled out, no names.
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please send the report to the office before noon tomorrow.",
    "A small machine can run a relay and answer many requests.",
    "We walked along the river and watched the boats go by.",
    "Seven people are waiting for the green train at the station.",
)


@dataclass
class Reply:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    declare_length: bool = True  # False: no Content-Length, the body ends when the connection closes


class FileServer:
    """``with FileServer() as server: server.files["/a.wav"] = Reply(data)``; ``server.url("/a.wav")``.

    With ``blobs`` (a folder of files named by sha256, as ``node.blobs`` keeps
    them) it also answers ``/<sha256>.<ext>`` from there, as Blossom does.
    """

    def __init__(self, blobs: Path | None = None) -> None:
        self.files: dict[str, Reply] = {}
        self.requests: list[str] = []
        files, requests = self.files, self.requests

        def blob(path: str) -> Reply | None:
            name = path.lstrip("/").split(".", 1)[0]
            if blobs is None or not re.fullmatch(r"[0-9a-f]{64}", name) or not (blobs / name).is_file():
                return None
            return Reply((blobs / name).read_bytes())

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                requests.append(self.path)
                reply = files.get(self.path) or blob(self.path) or Reply(b"not found", 404)
                self.send_response(reply.status)
                if reply.declare_length:
                    headers = {"Content-Length": str(len(reply.body)), **reply.headers}
                else:
                    headers = {"Connection": "close", **reply.headers}
                    self.close_connection = True
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                # The client may stop reading: that is what a size limit does.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(reply.body)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def refused_url() -> str:
    """An http URL on a local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/audio.wav"


@functools.cache
def _install() -> tuple[Path | None, str]:
    from node import models

    folder = models.models_dir()
    try:
        models.install(folder)
    except (models.ModelError, OSError) as exc:
        return None, str(exc)
    return folder, ""


def speech_models() -> Path:
    """The installed models' folder; skips (or fails under $TIMMY_REQUIRE_MODELS) when they cannot be had."""
    folder, reason = _install()
    if folder is None:
        message = f"speech models cannot be installed: {reason}"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(message)
        pytest.skip(message)
    return folder


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: how transcripts are compared."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def word_errors(reference: list[str], heard: list[str]) -> int:
    """Word-level edit distance (substitutions, insertions, deletions): the WER's numerator."""
    row = list(range(len(heard) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, word in enumerate(heard, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != word))
    return row[-1]
