// A nostr-tools customer has text read aloud by one Timmy agent, fetches the
// audio from the node's Blossom server, and has another agent transcribe it.
//
//   node nostr_tools_voice.mjs <relay url> <speaker pubkey hex> <listener pubkey hex> <text>
//
// 1. publishes a kind 5250 request (text input, addressed to the speaker) and
//    waits for its kind 6250 result: a URL;
// 2. GETs that URL with Node's own fetch and hashes the body (WebCrypto): a
//    Blossom blob's name is its sha256;
// 3. publishes a kind 5000 request with the URL as a `url` input and output
//    text/vtt (addressed to the listener) and waits for its kind 6000 result.
// Prints one JSON object: both requests, every answer with whether nostr-tools
// verified it, and what the fetch saw.

import WebSocket from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'

useWebSocketImplementation(WebSocket)

const [url, speaker, listener, text] = process.argv.slice(2)
const sk = generateSecretKey()
const customer = getPublicKey(sk)
const relay = await Relay.connect(url)
relay.onnotice = () => {}

async function hire(kind, tags) {
  const request = finalizeEvent({ kind, created_at: Math.floor(Date.now() / 1000), tags, content: '' }, sk)
  const answers = []
  const result = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no result for kind ${kind} within 120 s`)), 120000)
    relay.subscribe([{ kinds: [7000, kind + 1000], '#e': [request.id] }], {
      onevent(event) {
        answers.push({ event, verified: verifyEvent(event) })
        const status = event.tags.find(t => t[0] === 'status')
        if (event.kind === kind + 1000) {
          clearTimeout(timer)
          resolve(event)
        } else if (status && status[1] === 'error') {
          clearTimeout(timer)
          reject(new Error(`kind ${kind} failed: ${status[2]}`))
        }
      },
    })
    relay.publish(request).catch(reject)
  })
  return { request, answers, result }
}

const speech = await hire(5250, [['i', text, 'text'], ['p', speaker]])
const response = await fetch(speech.result.content)
const body = new Uint8Array(await response.arrayBuffer())
const digest = Buffer.from(await crypto.subtle.digest('SHA-256', body)).toString('hex')
const fetched = {
  status: response.status,
  type: response.headers.get('content-type'),
  size: body.length,
  sha256: digest,
  riff: Buffer.from(body.slice(0, 4)).toString('latin1'),
}
const transcript = await hire(5000, [['i', speech.result.content, 'url'], ['output', 'text/vtt'], ['p', listener]])
relay.close()
console.log(JSON.stringify({ customer, speech, fetched, transcript }))
