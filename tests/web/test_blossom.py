"""Blossom (BUD-01, BUD-02, BUD-06, BUD-12) over real HTTP, on a real node.

httpx drives every error path; blossom-client-sdk (Node) is the third-party
client that must get through upload, list, download and delete on its own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nips.blossom import KIND
from nips.nip01 import Signer
from node.blobs import BlobStore
from tests.interop.conftest import INTEROP_DIR, node_modules  # noqa: F401  (Node client's modules)
from tests.web.conftest import StartNode

MAX_BYTES = 65_536
ALICE = Signer(os.urandom(32))
BOB = Signer(os.urandom(32))
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200))
WAV_SHA = hashlib.sha256(WAV).hexdigest()


def token(
    signer: Signer, verb: str, *blobs: str, expires_in: int = 600, created_at: int | None = None
) -> str:
    """An ``Authorization`` header with a kind 24242 token, as clients encode it (base64url, no padding)."""
    now = int(time.time())
    tags = [["t", verb], ["expiration", str(now + expires_in)], *(["x", b] for b in blobs)]
    event = signer.sign(
        KIND, f"{verb} blob", tags, created_at=now - 1 if created_at is None else created_at
    )
    return "Nostr " + base64.urlsafe_b64encode(event.raw.encode()).rstrip(b"=").decode()


class Blossom:
    """The node's web app, an HTTP client on it and its store."""

    def __init__(self, url: str, http: httpx.AsyncClient, store: BlobStore) -> None:
        self.url, self.http, self.store = url, http, store

    async def upload(self, data: bytes, signer: Signer = ALICE, **headers: str) -> httpx.Response:
        sha = hashlib.sha256(data).hexdigest()
        head = {
            "Authorization": token(signer, "upload", sha),
            "Content-Type": "audio/wav",
            **headers,
        }
        return await self.http.put("/upload", content=data, headers=head)


async def started(start_node: StartNode, extra: str = "") -> AsyncIterator[Blossom]:
    nodes = await start_node(f"[blobs]\nmax_bytes = {MAX_BYTES}\n" + extra)
    url = nodes["web"].url
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield Blossom(url, http, nodes["blobs"].store)


@pytest.fixture
async def blossom(start_node: StartNode) -> AsyncIterator[Blossom]:
    async for server in started(start_node):
        yield server


def reason(response: httpx.Response) -> str:
    assert response.headers["access-control-allow-origin"] == "*"
    return response.headers["x-reason"]


async def test_upload_then_get_head_and_range(blossom: Blossom) -> None:
    first = await blossom.upload(WAV)
    assert first.status_code == 201, first.headers.get("x-reason")
    descriptor = first.json()
    assert descriptor == {
        "url": f"{blossom.url}/{WAV_SHA}.wav",
        "sha256": WAV_SHA,
        "size": len(WAV),
        "type": "audio/wav",
        "uploaded": descriptor["uploaded"],
    }
    assert abs(descriptor["uploaded"] - time.time()) < 10
    again = await blossom.upload(WAV)
    assert again.status_code == 200
    assert again.json() == descriptor

    for path in (
        f"/{WAV_SHA}",
        f"/{WAV_SHA}.wav",
        f"/{WAV_SHA}.pdf",
    ):  # the extension does not matter
        got = await blossom.http.get(path)
        assert got.status_code == 200
        assert got.content == WAV
        assert got.headers["content-type"] == "audio/wav"
        assert got.headers["content-length"] == str(len(WAV))
        assert got.headers["access-control-allow-origin"] == "*"
        assert got.headers["accept-ranges"] == "bytes"
        assert got.headers["content-security-policy"] == "sandbox"
    head = await blossom.http.head(f"/{WAV_SHA}.wav")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(WAV))
    assert head.headers["content-type"] == "audio/wav"

    part = await blossom.http.get(f"/{WAV_SHA}", headers={"Range": "bytes=4-11"})
    assert part.status_code == 206
    assert part.content == WAV[4:12]
    assert part.headers["content-range"] == f"bytes 4-11/{len(WAV)}"
    outside = await blossom.http.get(f"/{WAV_SHA}", headers={"Range": f"bytes={len(WAV) + 10}-"})
    assert outside.status_code == 416
    assert outside.headers["access-control-allow-origin"] == "*"


async def test_upload_without_x_sha256_checks_the_x_tag_after_hashing(blossom: Blossom) -> None:
    ok = await blossom.http.put(
        "/upload",
        content=b"no header",
        headers={"Authorization": token(ALICE, "upload", hashlib.sha256(b"no header").hexdigest())},
    )
    assert ok.status_code == 201
    assert ok.json()["type"] == "application/octet-stream"  # no Content-Type sent
    assert ok.json()["url"].endswith(".bin")

    wrong = await blossom.http.put(
        "/upload",
        content=b"other bytes",
        headers={"Authorization": token(ALICE, "upload", WAV_SHA)},
    )
    assert wrong.status_code == 401
    assert "no x tag" in reason(wrong)
    assert blossom.store.get(hashlib.sha256(b"other bytes").hexdigest()) is None
    assert not [p for p in blossom.store.root.iterdir() if p.name.startswith(".upload-")]


async def test_upload_refusals(blossom: Blossom) -> None:
    missing = await blossom.http.put("/upload", content=WAV)
    assert missing.status_code == 401
    assert reason(missing) == "missing Authorization header"
    assert missing.headers["www-authenticate"] == "Nostr"

    expired = await blossom.http.put(
        "/upload",
        content=WAV,
        headers={"Authorization": token(ALICE, "upload", WAV_SHA, expires_in=-1)},
    )
    assert expired.status_code == 401
    assert reason(expired) == "authorization has expired"

    future = await blossom.http.put(
        "/upload",
        content=WAV,
        headers={
            "Authorization": token(ALICE, "upload", WAV_SHA, created_at=int(time.time()) + 600)
        },
    )
    assert future.status_code == 401
    assert "future" in reason(future)

    verb = await blossom.http.put(
        "/upload", content=WAV, headers={"Authorization": token(ALICE, "delete", WAV_SHA)}
    )
    assert verb.status_code == 401
    assert "t tag" in reason(verb)

    garbage = await blossom.http.put("/upload", content=WAV, headers={"Authorization": "Nostr e30"})
    assert garbage.status_code == 401
    assert "invalid event" in reason(garbage)

    other = hashlib.sha256(b"other").hexdigest()
    mismatch = await blossom.upload(
        WAV, **{"X-SHA-256": other, "Authorization": token(ALICE, "upload", other)}
    )
    assert mismatch.status_code == 409
    assert "X-SHA-256" in reason(mismatch)

    bad_header = await blossom.upload(WAV, **{"X-SHA-256": "ABC"})
    assert bad_header.status_code == 400
    assert "X-SHA-256" in reason(bad_header)
    assert blossom.store.get(WAV_SHA) is None


async def test_too_large_uploads_get_413(blossom: Blossom) -> None:
    big = b"x" * (MAX_BYTES + 1)
    declared = await blossom.upload(big)
    assert declared.status_code == 413
    assert str(MAX_BYTES) in reason(declared)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: refused while streaming
        for _ in range(3):
            yield b"y" * (MAX_BYTES // 2)

    sha = hashlib.sha256(b"y" * (MAX_BYTES // 2 * 3)).hexdigest()
    streamed = await blossom.http.put(
        "/upload", content=chunked(), headers={"Authorization": token(ALICE, "upload", sha)}
    )
    assert streamed.status_code == 413
    assert "too large" in reason(streamed)
    assert not [p for p in blossom.store.root.iterdir() if p.name.startswith(".upload-")]

    exact = await blossom.upload(b"z" * MAX_BYTES)
    assert exact.status_code == 201


async def test_head_upload_answers_what_the_put_would(blossom: Blossom) -> None:
    """BUD-06: the checks on announced headers, before sending the body."""
    announce = {
        "X-SHA-256": WAV_SHA,
        "X-Content-Length": str(len(WAV)),
        "X-Content-Type": "audio/wav",
    }
    assert (await blossom.http.head("/upload", headers=announce)).status_code == 401
    authorized = {**announce, "Authorization": token(ALICE, "upload", WAV_SHA)}
    assert (await blossom.http.head("/upload", headers=authorized)).status_code == 200
    large = await blossom.http.head(
        "/upload", headers={**authorized, "X-Content-Length": str(MAX_BYTES + 1)}
    )
    assert large.status_code == 413
    no_length = {k: v for k, v in authorized.items() if k != "X-Content-Length"}
    assert (await blossom.http.head("/upload", headers=no_length)).status_code == 411


async def test_missing_blobs_and_bad_paths(blossom: Blossom) -> None:
    absent = hashlib.sha256(b"never uploaded").hexdigest()
    for method in ("GET", "HEAD"):
        missing = await blossom.http.request(method, f"/{absent}.wav")
        assert missing.status_code == 404
        assert reason(missing) == f"blob {absent} not found"
    for path in (
        f"/{absent.upper()}",
        f"/{absent[:-1]}",
        f"/{absent}0",
        f"/{absent}.w@v",
        f"/{absent}.tar.gz",
    ):
        bad = await blossom.http.get(path)
        assert bad.status_code == 400, path
        assert "64 lowercase hex" in reason(bad)
    wrong_method = await blossom.http.post(f"/{absent}")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, HEAD, DELETE"
    assert reason(wrong_method)
    # Blob paths do not shadow the node's own pages.
    assert (await blossom.http.get("/health")).json() == {"status": "ok"}
    assert (await blossom.http.get("/")).status_code == 200
    assert (await blossom.http.get("/no-such-page")).status_code == 404


async def test_delete_takes_only_the_signers_ownership(blossom: Blossom) -> None:
    assert (await blossom.upload(WAV, ALICE)).status_code == 201
    assert (await blossom.upload(WAV, BOB)).status_code == 200
    stranger = Signer(os.urandom(32))

    unauthorized = await blossom.http.delete(f"/{WAV_SHA}")
    assert unauthorized.status_code == 401
    no_x = await blossom.http.delete(f"/{WAV_SHA}", headers={"Authorization": token(BOB, "delete")})
    assert no_x.status_code == 401
    assert "x tag" in reason(no_x)
    not_theirs = await blossom.http.delete(
        f"/{WAV_SHA}", headers={"Authorization": token(stranger, "delete", WAV_SHA)}
    )
    assert not_theirs.status_code == 403
    assert reason(not_theirs) == "this key did not upload that blob"

    by_bob = await blossom.http.delete(
        f"/{WAV_SHA}", headers={"Authorization": token(BOB, "delete", WAV_SHA)}
    )
    assert by_bob.status_code == 204
    assert by_bob.headers["access-control-allow-origin"] == "*"
    assert (await blossom.http.get(f"/{WAV_SHA}")).content == WAV  # Alice still has it
    assert (await blossom.http.get(f"/list/{BOB.pubkey}")).json() == []

    by_alice = await blossom.http.delete(
        f"/{WAV_SHA}", headers={"Authorization": token(ALICE, "delete", WAV_SHA)}
    )
    assert by_alice.status_code == 204
    assert (await blossom.http.get(f"/{WAV_SHA}")).status_code == 404
    assert not blossom.store.path(WAV_SHA).exists()
    gone = await blossom.http.delete(
        f"/{WAV_SHA}", headers={"Authorization": token(ALICE, "delete", WAV_SHA)}
    )
    assert gone.status_code == 404


async def test_list_with_since_until_cursor_and_limit(blossom: Blossom) -> None:
    hashes = []
    for i, uploaded in enumerate((1_000, 2_000, 3_000)):
        response = await blossom.upload(f"blob {i}".encode())
        sha = response.json()["sha256"]
        blossom.store.db.execute("UPDATE owners SET uploaded = ? WHERE sha256 = ?", (uploaded, sha))
        hashes.append(sha)
    await blossom.upload(b"bob's", BOB)

    async def listed(**params: Any) -> list[str]:
        response = await blossom.http.get(f"/list/{ALICE.pubkey}", params=params)
        assert response.status_code == 200, response.headers.get("x-reason")
        assert response.headers["access-control-allow-origin"] == "*"
        return [d["sha256"] for d in response.json()]

    assert await listed() == hashes[::-1]
    assert await listed(since=2_000) == [hashes[2], hashes[1]]
    assert await listed(until=2_000) == [hashes[1], hashes[0]]
    assert await listed(since=1_500, until=2_500) == [hashes[1]]
    assert await listed(limit=2) == [hashes[2], hashes[1]]
    assert await listed(limit=2, cursor=hashes[1]) == [hashes[0]]
    first = (await blossom.http.get(f"/list/{ALICE.pubkey}")).json()[0]
    assert first["uploaded"] == 3_000 and first["url"].endswith(".wav")

    for path, params in (
        ("/list/not-a-pubkey", {}),
        (f"/list/{ALICE.pubkey}", {"since": "yesterday"}),
        (f"/list/{ALICE.pubkey}", {"limit": "-1"}),
        (f"/list/{ALICE.pubkey}", {"cursor": "0" * 64}),
    ):
        bad = await blossom.http.get(path, params=params)
        assert bad.status_code == 400, (path, params)
        assert reason(bad)


async def test_cors_preflight(blossom: Blossom) -> None:
    for path in ("/upload", f"/{WAV_SHA}", f"/list/{ALICE.pubkey}"):
        preflight = await blossom.http.options(
            path,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert preflight.headers["access-control-allow-headers"] == "Authorization, *"
        assert preflight.headers["access-control-allow-methods"] == "GET, HEAD, PUT, DELETE"
        assert preflight.headers["access-control-max-age"] == "86400"
    refused = await blossom.http.put("/upload", content=b"")
    assert "X-Reason" in refused.headers["access-control-expose-headers"]


async def test_a_hostile_content_type_is_served_inert(blossom: Blossom) -> None:
    page = b"<script>alert(document.cookie)</script>"
    sha = hashlib.sha256(page).hexdigest()
    stored = await blossom.upload(page, **{"Content-Type": "text/html"})
    assert stored.status_code == 201
    served = await blossom.http.get(f"/{sha}.html")
    assert served.headers["content-security-policy"] == "sandbox"
    assert served.headers["x-content-type-options"] == "nosniff"
    odd = await blossom.upload(b"odd", **{"Content-Type": "text/html, image/png"})
    assert odd.json()["type"] == "application/octet-stream"


async def test_upload_pubkeys_limit_who_may_upload(start_node: StartNode) -> None:
    async for blossom in started(start_node, f'upload_pubkeys = ["{BOB.pubkey}"]\n'):
        refused = await blossom.upload(WAV, ALICE)
        assert refused.status_code == 403
        assert "only from the keys it lists" in reason(refused)
        assert (await blossom.upload(WAV, BOB)).status_code == 201
        # Reading needs no key.
        assert (await blossom.http.get(f"/{WAV_SHA}")).status_code == 200


@pytest.mark.interop
async def test_blossom_client_sdk_round_trip(blossom: Blossom, node_modules: Path) -> None:  # noqa: F811
    secret = os.urandom(32)
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(INTEROP_DIR / "blossom_client.mjs"),
        blossom.url,
        secret.hex(),
        str(MAX_BYTES),
        cwd=INTEROP_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    expected = result["expected"]
    assert result["pubkey"] == Signer(secret).pubkey

    assert result["upload"]["ok"], result["upload"]
    descriptor = result["upload"]["value"]
    assert descriptor["sha256"] == expected
    assert descriptor["type"] == "audio/wav"
    assert descriptor["url"] == f"{blossom.url}/{expected}.wav"
    assert result["again"] == {"ok": True, "value": descriptor}
    assert result["listed"] == {"ok": True, "value": [descriptor]}
    assert result["has"] is True
    assert result["downloaded"]["value"] == {"sha256": expected, "type": "audio/wav", "cors": "*"}
    assert result["byUrl"]["value"] == {"status": 200, "sha256": expected}

    too_large = result["tooLarge"]
    assert not too_large["ok"] and too_large["status"] == 413
    assert str(MAX_BYTES) in too_large["reason"]  # the SDK shows our X-Reason

    assert result["deleted"] == {"ok": True, "value": True}
    assert result["hasAfter"] is False
    assert result["listedAfter"] == {"ok": True, "value": []}
