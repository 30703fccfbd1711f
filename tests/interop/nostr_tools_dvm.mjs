// A nostr-tools customer hiring a Timmy agent over NIP-90.
//
//   node nostr_tools_dvm.mjs <relay url> <plain|encrypted> <agent pubkey hex> <text>
//
// Publishes a kind 5001 request (for `encrypted`: inputs and params NIP-04
// encrypted to the agent, as NIP-90 says), collects every kind 7000 and 6001
// event answering it until the result arrives, and prints one JSON object:
// the request, the answers, whether nostr-tools verified each, and for an
// encrypted job the result decrypted with nostr-tools' own NIP-04.

import WebSocket from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import * as nip04 from 'nostr-tools/nip04'

useWebSocketImplementation(WebSocket)

const [url, mode, agent, text] = process.argv.slice(2)
const sk = generateSecretKey()
const customer = getPublicKey(sk)
const now = Math.floor(Date.now() / 1000)

let tags = [['i', text, 'text'], ['param', 'length', '1 sentences']]
let content = ''
if (mode === 'encrypted') {
  content = await nip04.encrypt(sk, agent, JSON.stringify(tags))
  tags = [['p', agent], ['encrypted']]
}
const request = finalizeEvent({ kind: 5001, created_at: now, tags, content }, sk)

const relay = await Relay.connect(url)
relay.onnotice = () => {}
const answers = []
const done = new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('no result within 10 s')), 10000)
  relay.subscribe([{ kinds: [7000, 6001], '#e': [request.id] }], {
    onevent(event) {
      answers.push({ event, verified: verifyEvent(event) })
      if (event.kind === 6001) {
        clearTimeout(timer)
        resolve()
      }
    },
  })
})
await relay.publish(request)
await done
const result = answers.find(a => a.event.kind === 6001).event
const decrypted = mode === 'encrypted' ? await nip04.decrypt(sk, result.pubkey, result.content) : null
relay.close()
console.log(JSON.stringify({ customer, request, answers, decrypted }))
