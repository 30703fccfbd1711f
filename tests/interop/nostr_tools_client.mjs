// A nostr-tools client that runs one scenario against a relay and prints the outcome.
//
//   node nostr_tools_client.mjs <relay url> <scenario>
//
// Driven by test_nostr_tools.py, which starts our relay and asserts on the one
// JSON object printed to stdout. The script only reports what nostr-tools saw
// (OK reasons, events in the order received, CLOSED reasons); the judging is
// done in Python. Events a subscription receives are checked by nostr-tools
// itself (signature and filter match); any that fail are reported as `invalid`.

import WebSocket from 'ws'
import { finalizeEvent, generateSecretKey, getPublicKey } from 'nostr-tools/pure'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'

useWebSocketImplementation(WebSocket) // Node 20 has no global WebSocket

const TIMEOUT_MS = 8000

// --- helpers ------------------------------------------------------------------------

function newKey() {
  const sk = generateSecretKey()
  return { sk, pk: getPublicKey(sk), signer: async template => finalizeEvent(template, sk) }
}

const now = () => Math.floor(Date.now() / 1000)

function sign(key, { kind = 1, content = '', tags = [], created_at = now() }) {
  return finalizeEvent({ kind, content, tags, created_at }, key.sk)
}

function summary(event) {
  const { id, pubkey, created_at, kind, tags, content } = event
  return { id, pubkey, created_at, kind, tags, content }
}

async function connect(url) {
  const relay = await Relay.connect(url)
  relay.onnotice = () => {} // NOTICEs are not part of any scenario's outcome
  return relay
}

// Publish and report the relay's answer instead of throwing.
async function publish(relay, event) {
  try {
    return { id: event.id, ok: true, reason: await relay.publish(event) }
  } catch (err) {
    return { id: event.id, ok: false, reason: String(err?.message ?? err) }
  }
}

async function auth(relay, signer) {
  try {
    return { ok: true, reason: await relay.auth(signer) }
  } catch (err) {
    return { ok: false, reason: String(err?.message ?? err) }
  }
}

// REQ until EOSE: the events in the order the relay sent them, or the CLOSED reason.
function fetch(relay, filters) {
  return new Promise(resolve => {
    const events = []
    const invalid = []
    let done = false
    const finish = result => {
      if (done) return
      done = true
      resolve({ events, invalid, ...result })
      sub.close()
    }
    const sub = relay.subscribe(filters, {
      eoseTimeout: TIMEOUT_MS,
      onevent: event => events.push(event.id),
      oninvalidevent: event => invalid.push(event?.id ?? null),
      oneose: () => finish({ eose: true, closed: null }),
      onclose: reason => finish({ eose: false, closed: reason }),
    })
  })
}

async function count(relay, filters) {
  try {
    return { ok: true, count: await relay.count(filters, {}) }
  } catch (err) {
    return { ok: false, reason: String(err?.message ?? err) }
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// Wait for the challenge a relay sends on connect (NIP-42), up to `ms`.
async function challengeArrived(relay, ms = 2000) {
  for (let waited = 0; waited < ms; waited += 20) {
    if (relay.challenge) return true // private in the typings, a plain field at run time
    await sleep(20)
  }
  return false
}

// --- scenarios ------------------------------------------------------------------------

const scenarios = {
  // Several events, read back with filters on authors, kinds, #t, ids, since/until, limit.
  async publish_fetch(url) {
    const relay = await connect(url)
    const alice = newKey()
    const bob = newKey()
    const t = now() - 100
    const events = [
      sign(alice, { content: 'one', created_at: t + 1, tags: [['t', 'timmy']] }),
      sign(alice, { content: 'two', created_at: t + 2, tags: [['t', 'other']] }),
      sign(alice, { content: 'three', created_at: t + 3, tags: [['t', 'timmy']] }),
      sign(alice, { content: 'four', created_at: t + 4 }),
      sign(alice, { kind: 7, content: '+', created_at: t + 5, tags: [['t', 'timmy']] }),
      // Two events with the same created_at: ties are ordered by lowest id.
      sign(alice, { content: 'tie a', created_at: t + 6 }),
      sign(alice, { content: 'tie b', created_at: t + 6 }),
      sign(bob, { content: 'bob', created_at: t + 7, tags: [['t', 'timmy']] }),
    ]
    const oks = []
    for (const event of events) oks.push(await publish(relay, event))
    const both = [alice.pk, bob.pk]
    const queries = {
      by_author: [{ authors: [alice.pk] }],
      by_kind: [{ authors: both, kinds: [7] }],
      by_tag: [{ authors: both, '#t': ['timmy'] }],
      by_tag_and_kind: [{ authors: both, kinds: [1], '#t': ['timmy'] }],
      by_ids: [{ ids: [events[0].id, events[7].id] }],
      since_until: [{ authors: [alice.pk], since: t + 2, until: t + 4 }],
      limit_2: [{ authors: [alice.pk], kinds: [1], limit: 2 }],
      two_filters: [{ authors: [bob.pk] }, { authors: [alice.pk], kinds: [7] }],
    }
    const fetched = {}
    for (const [name, filters] of Object.entries(queries)) fetched[name] = await fetch(relay, filters)
    const counted = await count(relay, [{ authors: [alice.pk] }])
    const countedTag = await count(relay, [{ authors: both, '#t': ['timmy'] }])
    // Publishing the same event again is accepted as a duplicate.
    const again = await publish(relay, events[0])
    relay.close()
    return {
      alice: alice.pk,
      bob: bob.pk,
      published: events.map(summary),
      oks,
      fetched,
      count_by_author: counted,
      count_by_tag: countedTag,
      republish: again,
    }
  },

  // A subscriber gets an event another connection publishes after its EOSE, and only that one.
  async live(url) {
    const reader = await connect(url)
    const writer = await connect(url)
    const alice = newKey()
    const old = sign(alice, { content: 'before the subscription', created_at: now() - 10 })
    const oldOk = await publish(writer, old)
    const received = []
    const invalid = []
    let eose = false
    let gotLive
    const liveArrived = new Promise(resolve => (gotLive = resolve))
    const fresh = sign(alice, { content: 'live' })
    const unrelated = sign(alice, { kind: 7, content: '+' })
    const sub = reader.subscribe([{ authors: [alice.pk], kinds: [1], since: now() - 5 }], {
      onevent: event => {
        received.push(event.id)
        if (event.id === fresh.id) gotLive()
      },
      oninvalidevent: event => invalid.push(event?.id ?? null),
      oneose: () => (eose = true),
    })
    while (!eose) await sleep(10)
    const unrelatedOk = await publish(writer, unrelated)
    const freshOk = await publish(writer, fresh)
    const arrived = await Promise.race([liveArrived.then(() => true), sleep(TIMEOUT_MS).then(() => false)])
    await sleep(200) // anything else that was going to arrive
    sub.close()
    reader.close()
    writer.close()
    return {
      old: old.id,
      fresh: fresh.id,
      unrelated: unrelated.id,
      oks: [oldOk, unrelatedOk, freshOk],
      eose,
      arrived,
      received,
      invalid,
    }
  },

  // Kind 0 (replaceable) and kind 30078 (addressable): only the newest version is kept.
  async replaceable(url) {
    const relay = await connect(url)
    const alice = newKey()
    const t = now() - 100
    const meta1 = sign(alice, { kind: 0, content: '{"name":"v1"}', created_at: t })
    const meta2 = sign(alice, { kind: 0, content: '{"name":"v2"}', created_at: t + 10 })
    const metaOld = sign(alice, { kind: 0, content: '{"name":"old"}', created_at: t + 5 })
    const a1 = sign(alice, { kind: 30078, content: 'a v1', created_at: t, tags: [['d', 'a']] })
    const a2 = sign(alice, { kind: 30078, content: 'a v2', created_at: t + 10, tags: [['d', 'a']] })
    const b1 = sign(alice, { kind: 30078, content: 'b v1', created_at: t + 1, tags: [['d', 'b']] })
    const oks = {}
    for (const [name, event] of Object.entries({ meta1, meta2, metaOld, a1, a2, b1 }))
      oks[name] = await publish(relay, event)
    const fetched = {
      metadata: await fetch(relay, [{ authors: [alice.pk], kinds: [0] }]),
      addressable: await fetch(relay, [{ authors: [alice.pk], kinds: [30078] }]),
      address_a: await fetch(relay, [{ authors: [alice.pk], kinds: [30078], '#d': ['a'] }]),
      replaced_by_id: await fetch(relay, [{ ids: [meta1.id, a1.id] }]),
    }
    relay.close()
    const ids = { meta1, meta2, metaOld, a1, a2, b1 }
    return { ids: Object.fromEntries(Object.entries(ids).map(([k, e]) => [k, e.id])), oks, fetched }
  },

  // NIP-09: a kind 5 removes the author's events (by e and a tags), not other authors'.
  async deletion(url) {
    const relay = await connect(url)
    const alice = newKey()
    const mallory = newKey()
    const t = now() - 100
    const note1 = sign(alice, { content: 'to be deleted', created_at: t })
    const note2 = sign(alice, { content: 'to be kept', created_at: t + 1 })
    const article = sign(alice, { kind: 30023, content: 'draft', created_at: t + 2, tags: [['d', 'post']] })
    const oks = {}
    for (const [name, event] of Object.entries({ note1, note2, article }))
      oks[name] = await publish(relay, event)
    const before = await fetch(relay, [{ authors: [alice.pk] }])
    const forged = sign(mallory, { kind: 5, created_at: t + 3, tags: [['e', note2.id]] })
    const deletion = sign(alice, {
      kind: 5,
      content: 'oops',
      created_at: t + 4,
      tags: [['e', note1.id], ['a', `30023:${alice.pk}:post`], ['k', '1'], ['k', '30023']],
    })
    oks.forged = await publish(relay, forged)
    oks.deletion = await publish(relay, deletion)
    const after = await fetch(relay, [{ authors: [alice.pk] }])
    const byId = await fetch(relay, [{ ids: [note1.id, note2.id, article.id] }])
    // The deleted event must not come back when someone publishes it again.
    const republish = await publish(relay, note1)
    const afterRepublish = await fetch(relay, [{ ids: [note1.id] }])
    relay.close()
    return {
      ids: { note1: note1.id, note2: note2.id, article: article.id, forged: forged.id, deletion: deletion.id },
      oks,
      before,
      after,
      by_id: byId,
      republish,
      after_republish: afterRepublish,
    }
  },

  // NIP-42 on a relay with auth_required_for_writes: refused, AUTH, accepted.
  async auth_write(url) {
    const relay = await connect(url)
    const alice = newKey()
    const challenged = await challengeArrived(relay)
    const note = sign(alice, { content: 'members only' })
    const before = await publish(relay, note)
    const authed = await auth(relay, alice.signer)
    const after = await publish(relay, note)
    const readBack = await fetch(relay, [{ ids: [note.id] }])
    relay.close()

    // A client whose AUTH names another relay is refused, and stays unable to write.
    const other = await connect(url)
    await challengeArrived(other)
    const wrongRelay = await auth(other, async template =>
      finalizeEvent(
        { ...template, tags: template.tags.map(tag => (tag[0] === 'relay' ? ['relay', 'wss://elsewhere.example.com'] : tag)) },
        alice.sk,
      ),
    )
    const afterWrongAuth = await publish(other, sign(alice, { content: 'still refused' }))
    other.close()

    // nostr-tools' automatic mode: `onauth` answers the challenge on connect.
    const bob = newKey()
    const automatic = new Relay(url)
    automatic.onnotice = () => {}
    automatic.onauth = bob.signer
    await automatic.connect()
    let auto = await publish(automatic, sign(bob, { content: 'auto' }))
    if (!auto.ok && auto.reason.startsWith('auth-required:')) {
      // The EVENT may have overtaken the AUTH on the wire; publish again once it is answered.
      await auth(automatic, bob.signer)
      auto = await publish(automatic, sign(bob, { content: 'auto, again' }))
    }
    automatic.close()
    return { challenged, note: note.id, before, auth: authed, after, read_back: readBack, wrong_relay: wrongRelay, after_wrong_auth: afterWrongAuth, auto }
  },

  // NIP-42 on a relay with auth_required_for_reads: REQ and COUNT closed, AUTH, served.
  async auth_read(url) {
    const relay = await connect(url)
    const alice = newKey()
    const challenged = await challengeArrived(relay)
    const note = sign(alice, { content: 'readable after auth' })
    const written = await publish(relay, note)
    const filters = [{ authors: [alice.pk] }]
    const before = await fetch(relay, filters)
    const countBefore = await count(relay, filters)
    const authed = await auth(relay, alice.signer)
    const after = await fetch(relay, filters)
    const countAfter = await count(relay, filters)
    relay.close()
    return { challenged, note: note.id, written, before, count_before: countBefore, auth: authed, after, count_after: countAfter }
  },

  // NIP-70: a ["-"] event needs its author authenticated, on a relay that asks no AUTH otherwise.
  async protected(url) {
    const relay = await connect(url)
    const alice = newKey()
    const bob = newKey()
    const mine = sign(alice, { content: 'only from alice', tags: [['-']] })
    const theirs = sign(bob, { content: 'only from bob', tags: [['-']] })
    const before = await publish(relay, mine)
    const challenged = Boolean(relay.challenge) // sent with the auth-required answer
    const authed = await auth(relay, alice.signer)
    const after = await publish(relay, mine)
    const otherAuthor = await publish(relay, theirs)
    relay.close()
    const reader = await connect(url)
    const readBack = await fetch(reader, [{ ids: [mine.id, theirs.id] }])
    reader.close()
    return { mine: mine.id, theirs: theirs.id, before, challenged, auth: authed, after, other_author: otherAuthor, read_back: readBack }
  },
}

// --- main -------------------------------------------------------------------------------

const [url, name] = process.argv.slice(2)
const scenario = scenarios[name]
if (!url || !scenario) {
  console.error(`usage: node nostr_tools_client.mjs <relay url> <${Object.keys(scenarios).join('|')}>`)
  process.exit(2)
}
const guard = setTimeout(() => {
  console.error(`scenario ${name} did not finish in 25 s`)
  process.exit(3)
}, 25000)
try {
  const result = await scenario(url)
  process.stdout.write(JSON.stringify(result) + '\n')
  clearTimeout(guard)
  process.exit(0)
} catch (err) {
  console.error(err?.stack ?? String(err))
  process.exit(1)
}
