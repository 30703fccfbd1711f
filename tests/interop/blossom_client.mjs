// blossom-client-sdk (hzrd149's Blossom client) against our blob server, one run.
//
//   node blossom_client.mjs <server url> <secret key hex> <max bytes>
//
// Driven by tests/web/test_blossom.py, which starts a node and asserts on the
// one JSON object printed to stdout. The script signs kind 24242 tokens with
// nostr-tools and lets the SDK do the HTTP: it probes HEAD /upload, answers
// the server's 401 with a token, lists, downloads, deletes. Failures are
// reported (status and X-Reason), not thrown; the judging is done in Python.

import { createHash } from 'node:crypto'
import { finalizeEvent, getPublicKey } from 'nostr-tools/pure'
import { hexToBytes } from 'nostr-tools/utils'
import { Actions, createDeleteAuth, createUploadAuth } from 'blossom-client-sdk'

const [server, secretHex, maxBytes] = process.argv.slice(2)
const sk = hexToBytes(secretHex)
const pubkey = getPublicKey(sk)
const signer = async draft => finalizeEvent(draft, sk)
const TIMEOUT_MS = 8000

const sha256 = bytes => createHash('sha256').update(bytes).digest('hex')

async function attempt(action) {
  try {
    return { ok: true, value: await action() }
  } catch (err) {
    return { ok: false, status: err?.status ?? null, reason: String(err?.message ?? err) }
  }
}

const onUploadAuth = (_server, hash, type) => createUploadAuth(signer, hash, { type })
const onDeleteAuth = (_server, hash) => createDeleteAuth(signer, hash)

const bytes = new TextEncoder().encode('RIFF fake wave from blossom-client-sdk ' + Date.now())
const blob = new Blob([bytes], { type: 'audio/wav' })
const expected = sha256(bytes)

const upload = await attempt(() =>
  Actions.uploadBlob(server, blob, { onAuth: onUploadAuth, timeout: TIMEOUT_MS })
)
const again = await attempt(() =>
  Actions.uploadBlob(server, blob, { onAuth: onUploadAuth, timeout: TIMEOUT_MS })
)
const listed = await attempt(() => Actions.listBlobs(server, pubkey, { timeout: TIMEOUT_MS }))
const has = await Actions.hasBlob(server, expected)

const downloaded = await attempt(async () => {
  const res = await Actions.downloadBlob(server, expected, { timeout: TIMEOUT_MS })
  const body = new Uint8Array(await res.arrayBuffer())
  return { sha256: sha256(body), type: res.headers.get('content-type'), cors: res.headers.get('access-control-allow-origin') }
})
// The descriptor's URL, with its extension, as a client would embed it.
const byUrl = await attempt(async () => {
  const res = await fetch(upload.value.url)
  return { status: res.status, sha256: sha256(new Uint8Array(await res.arrayBuffer())) }
})

const tooLarge = await attempt(() =>
  Actions.uploadBlob(server, new Blob([new Uint8Array(Number(maxBytes) + 1)]), {
    onAuth: onUploadAuth,
    timeout: TIMEOUT_MS,
  })
)

const deleted = await attempt(() =>
  Actions.deleteBlob(server, expected, { onAuth: onDeleteAuth, timeout: TIMEOUT_MS })
)
const hasAfter = await Actions.hasBlob(server, expected)
const listedAfter = await attempt(() => Actions.listBlobs(server, pubkey, { timeout: TIMEOUT_MS }))

console.log(
  JSON.stringify({
    pubkey,
    expected,
    upload,
    again,
    listed,
    has,
    downloaded,
    byUrl,
    tooLarge,
    deleted,
    hasAfter,
    listedAfter,
  })
)
