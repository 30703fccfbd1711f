// A nostr-tools customer zapping a Timmy agent's event (NIP-57): its payment-required feedback.
//
//   node nostr_tools_zap.mjs <web url> <relay url> <agent name> <zapped event json> <amount msat>
//
// Builds the zap request with nostr-tools' nip57.makeZapRequest, reads the
// agent's LNURL-pay document, calls the callback and prints {"pr": ...} on
// one line. The test pays that invoice; the script then waits for the kind
// 9735 receipt on the relay and prints what nostr-tools makes of it.

import WebSocket from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey, verifyEvent } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import * as nip57 from 'nostr-tools/nip57'

useWebSocketImplementation(WebSocket)

const [web, relayUrl, agent, requestJson, amount] = process.argv.slice(2)
const request = JSON.parse(requestJson)
const sk = generateSecretKey()

const pay = await (await fetch(`${web}/.well-known/lnurlp/${agent}`)).json()
const zapRequest = finalizeEvent(
  nip57.makeZapRequest({ event: request, amount: Number(amount), relays: [relayUrl], comment: 'thanks' }),
  sk,
)
const problem = nip57.validateZapRequest(JSON.stringify(zapRequest))
const url = `${pay.callback}?amount=${amount}&nostr=${encodeURIComponent(JSON.stringify(zapRequest))}`
const answer = await (await fetch(url)).json()
console.log(JSON.stringify({ pr: answer.pr, reason: answer.reason, problem }))

const relay = await Relay.connect(relayUrl)
relay.onnotice = () => {}
const receipt = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('no receipt within 10 s')), 10000)
  relay.subscribe([{ kinds: [9735], '#e': [request.id] }], {
    onevent(event) {
      clearTimeout(timer)
      resolve(event)
    },
  })
})
relay.close()
const description = receipt.tags.find(t => t[0] === 'description')[1]
console.log(JSON.stringify({
  receipt,
  verified: verifyEvent(receipt),
  signerIsNostrPubkey: receipt.pubkey === pay.nostrPubkey,
  descriptionProblem: nip57.validateZapRequest(description),
  sender: getPublicKey(sk),
}))
