// Hire agents: sign NIP-90 job requests with window.nostr (NIP-07), publish them
// to a relay over a WebSocket (NIP-01) and follow each job in a card of its own:
// its kind 7000 feedback, its invoice (paid with the dev wallet through
// /hire/pay, or with the customer's own wallet), its result, and a kind 1985
// ai.wot rating. Jobs on the same relay share one connection. A connection that
// drops is dialled again with exponential backoff; every job is then asked for
// again with `since`, so what was published meanwhile still arrives, once.
// The page is web/templates/hire.html.
"use strict";

(function () {
  const { sign, errorOf } = window.Timmy; // web/static/nip07.js
  const form = document.getElementById("hire-form");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const homeRelay = form.dataset.relayUrl;
  const csrf = form.dataset.csrf;
  const message = $("hire-message");

  const MIN_BACKOFF_MS = 500;
  const MAX_BACKOFF_MS = 30000;
  const STABLE_MS = 10000; // a connection that lasted this long starts the backoff over
  const OK_TIMEOUT_MS = 15000; // how long a published event waits for the relay's OK
  const CLOCK_SLACK_S = 60; // a re-subscription reaches back this far before the newest event seen

  const now = () => Math.floor(Date.now() / 1000);
  const messageOf = (err) => (err instanceof Error ? err.message : String(err));

  function say(text) {
    message.textContent = text;
  }

  function sats(msat) {
    const n = Number(msat) / 1000;
    return `${n.toLocaleString("en")} ${n === 1 ? "sat" : "sats"}`;
  }

  function tagValue(event, name) {
    const tag = event.tags.find((t) => Array.isArray(t) && t[0] === name);
    return tag ? tag.slice(1) : null;
  }

  // Oldest first; on a tie, feedback before the result it led to.
  function chronological(a, b) {
    return (a.created_at - b.created_at) || ((a.kind === 7000 ? 0 : 1) - (b.kind === 7000 ? 0 : 1));
  }

  // One relay connection, shared by the jobs on it. Subscriptions are kept and
  // sent again on every new connection (their filter is rebuilt each time);
  // events still waiting for OK are sent again too. Stored events are handed
  // over at EOSE, oldest first; live ones as they come.
  class Relay {
    constructor(url) {
      this.url = url;
      this.subs = new Map(); // sub id -> {filter(), onEvent, onClosed, stored: [] until EOSE}
      this.pending = new Map(); // event id -> {event, finish}
      this.watchers = new Set(); // (state, detail) => void
      this.ws = null;
      this.backoff = MIN_BACKOFF_MS;
      this.retryTimer = null;
      this.everOpen = false;
      this.closed = false;
      this.dial();
    }

    dial() {
      this.retryTimer = null;
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        this.fail(`not a relay address: ${messageOf(err)}`);
        return;
      }
      this.ws = ws;
      let openedAt = null;
      ws.addEventListener("open", () => {
        openedAt = Date.now();
        const again = this.everOpen;
        this.everOpen = true;
        for (const [id, sub] of this.subs) this.request(id, sub);
        for (const { event } of this.pending.values()) this.send(["EVENT", event]);
        this.emit(again ? "reconnected" : "connected");
      });
      ws.addEventListener("message", (msg) => this.receive(msg.data));
      // A failed dial fires "error" then "close": "close" alone covers both.
      ws.addEventListener("close", () => {
        if (this.ws !== ws) return;
        this.ws = null;
        if (this.closed) return;
        if (openedAt !== null && Date.now() - openedAt >= STABLE_MS) this.backoff = MIN_BACKOFF_MS;
        this.retry(openedAt === null ? "could not connect" : "the connection dropped");
      });
    }

    retry(why) {
      const delay = Math.round(this.backoff / 2 + (Math.random() * this.backoff) / 2);
      this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      this.emit("retrying", { why, delay });
      this.retryTimer = setTimeout(() => this.dial(), delay);
    }

    fail(why) {
      this.close();
      for (const { finish } of this.pending.values()) finish({ ok: false, message: why });
      this.emit("failed", { why });
    }

    close() {
      this.closed = true;
      clearTimeout(this.retryTimer);
      if (this.ws) this.ws.close();
    }

    watch(watcher) {
      this.watchers.add(watcher);
    }

    emit(state, detail = {}) {
      for (const watcher of this.watchers) watcher(state, detail);
    }

    send(message) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    }

    request(id, sub) {
      sub.stored = [];
      this.send(["REQ", id, sub.filter()]);
    }

    subscribe(id, filter, onEvent, onClosed) {
      const sub = { filter, onEvent, onClosed, stored: [] };
      this.subs.set(id, sub);
      this.request(id, sub);
    }

    unsubscribe(id) {
      if (this.subs.delete(id)) this.send(["CLOSE", id]);
    }

    // Resolves to {ok, message}; a connection that is down sends it once back up.
    publish(event) {
      return new Promise((resolve) => {
        const timer = setTimeout(
          () => finish({ ok: false, message: `no answer from ${this.url} within ${OK_TIMEOUT_MS / 1000} s` }),
          OK_TIMEOUT_MS,
        );
        const finish = (answer) => {
          clearTimeout(timer);
          this.pending.delete(event.id);
          resolve(answer);
        };
        if (this.closed) {
          finish({ ok: false, message: `the connection to ${this.url} is closed` });
          return;
        }
        this.pending.set(event.id, { event, finish });
        this.send(["EVENT", event]);
      });
    }

    receive(raw) {
      let data;
      try {
        data = JSON.parse(raw);
      } catch (_) {
        return; // not NIP-01: ignore
      }
      if (!Array.isArray(data)) return;
      const [type, first, second, third] = data;
      const sub = typeof first === "string" ? this.subs.get(first) : undefined;
      if (type === "EVENT" && sub && second && typeof second === "object") {
        if (sub.stored) sub.stored.push(second);
        else sub.onEvent(second);
      } else if (type === "EOSE" && sub && sub.stored) {
        const stored = sub.stored.sort(chronological);
        sub.stored = null;
        stored.forEach(sub.onEvent);
      } else if (type === "CLOSED" && sub) {
        this.subs.delete(first);
        sub.onClosed(String(second || "no reason given"));
      } else if (type === "OK" && this.pending.has(first)) {
        const text = String(third || "");
        // An event sent again after a reconnection may already be there.
        this.pending.get(first).finish({ ok: second === true || text.startsWith("duplicate:"), message: text });
      } else if (type === "NOTICE") {
        this.emit("notice", { text: String(first) });
      }
    }
  }

  const relays = new Map(); // url -> Relay
  function relayFor(url) {
    if (!relays.has(url) || relays.get(url).closed) relays.set(url, new Relay(url));
    return relays.get(url);
  }

  // What a feedback status puts on a card's state badge.
  const STATES = {
    "payment-required": "payment required",
    processing: "processing",
    error: "failed",
    success: "done",
    partial: "partial result",
  };

  let cardCount = 0; // makes the ids inside each card unique

  // One job: its card, its subscription, its payment and its rating.
  class JobCard {
    constructor({ request, agent, pubkey, kind, remote, relay }) {
      Object.assign(this, { request, pubkey, kind, remote, relay });
      this.subId = `job-${request.id.slice(0, 16)}`;
      this.seen = new Set();
      this.newest = request.created_at;
      this.state = "publishing";
      this.resultId = null;
      this.bolt11 = null;
      this.root = $("job-card-template").content.firstElementChild.cloneNode(true);
      this.root.dataset.jobId = request.id;
      this.describe(agent);
      this.wire();
      $("jobs").prepend(this.root);
      $("jobs-section").hidden = false;
      relay.watch((state, detail) => this.onConnection(state, detail));
      // Subscribe before publishing, so no answer can slip past.
      relay.subscribe(this.subId, () => this.filter(), (ev) => this.receive(ev), (why) => this.onClosed(why));
    }

    part(name) {
      return this.root.querySelector(`.${name}`);
    }

    describe(agent) {
      const n = ++cardCount;
      const id = this.request.id;
      const heading = this.part("job-heading");
      heading.id = `job-heading-${n}`;
      heading.textContent = `${agent}, kind ${this.kind}: job ${id.slice(0, 12)}…`;
      this.root.setAttribute("aria-labelledby", heading.id);
      this.part("updates-heading").id = `job-updates-heading-${n}`;
      this.part("job-updates").setAttribute("aria-labelledby", `job-updates-heading-${n}`);
      this.part("problem-reason").id = `problem-reason-${n}`;
      this.part("problem-label").htmlFor = `problem-reason-${n}`;
      const where = this.part("job-where");
      if (this.remote) {
        where.textContent = `This agent runs on another node; the job's events are on ${this.relay.url}.`;
      } else {
        const link = document.createElement("a");
        link.href = `/jobs/${id}`;
        link.textContent = "See the job on this node";
        where.append(link);
      }
    }

    wire() {
      const pay = this.part("pay-dev");
      if (pay) pay.addEventListener("click", () => this.payWithDevWallet(pay));
      this.part("rate-good").addEventListener("click", () => this.rate("service-quality", ""));
      this.part("rate-problem").addEventListener("click", () =>
        this.rate("warning", this.part("problem-reason").value.trim()),
      );
    }

    filter() {
      return {
        kinds: [7000, this.kind + 1000],
        authors: [this.pubkey],
        "#e": [this.request.id],
        since: this.newest - CLOCK_SLACK_S,
      };
    }

    async publish() {
      const answer = await this.relay.publish(this.request);
      if (answer.ok) {
        if (this.state === "publishing") this.setState("waiting for the agent");
      } else {
        this.setState("not published");
        this.addUpdate(`not published: ${answer.message}`);
        this.relay.unsubscribe(this.subId);
      }
      return answer;
    }

    setState(text) {
      this.state = text;
      this.part("job-state").textContent = text;
      this.root.dataset.state = text;
    }

    addUpdate(text) {
      const item = document.createElement("li");
      item.textContent = text;
      this.part("job-updates").append(item);
    }

    receive(event) {
      if (typeof event.id !== "string" || this.seen.has(event.id)) return;
      // Only the hired agent speaks for the job: anyone else's "invoice" is ignored.
      if (event.pubkey !== this.pubkey || !Array.isArray(event.tags)) return;
      const about = tagValue(event, "e");
      if (!about || about[0] !== this.request.id) return;
      this.seen.add(event.id);
      if (Number.isInteger(event.created_at)) this.newest = Math.max(this.newest, event.created_at);
      if (event.kind === 7000) this.onFeedback(event);
      else if (event.kind === this.kind + 1000) this.onResult(event);
    }

    onFeedback(event) {
      const [status, info] = tagValue(event, "status") || ["unknown", ""];
      const amount = tagValue(event, "amount");
      if (status === "payment-required") {
        this.addUpdate(`payment-required: ${amount ? sats(amount[0]) : "amount not given"}${info ? ` (${info})` : ""}`);
      } else if (status === "error") {
        this.addUpdate(`error: ${info || event.content || "no reason given"}`);
      } else {
        this.addUpdate(info ? `${status}: ${info}` : status);
      }
      if (this.resultId) return; // late news never takes a finished card back
      this.setState(STATES[status] || status);
      if (status === "payment-required" && amount && amount[1]) this.showInvoice(amount[0], amount[1]);
    }

    onResult(event) {
      this.resultId = event.id;
      this.addUpdate("result received");
      this.setState("result received");
      this.part("result-content").textContent = event.content;
      this.part("job-result").hidden = false;
      this.part("job-payment").hidden = true;
      this.part("job-rating").hidden = false;
    }

    onClosed(why) {
      this.addUpdate(`the relay ended the subscription: ${why}`);
    }

    onConnection(state, detail) {
      const line = this.part("job-connection");
      if (state === "connected") {
        line.textContent = ""; // the first connection, maybe after failed tries: nothing to report
      } else if (state === "retrying") {
        line.textContent = `Relay: ${detail.why}; trying again in ${Math.max(1, Math.round(detail.delay / 1000))} s.`;
      } else if (state === "reconnected") {
        line.textContent = `Relay: reconnected at ${new Date().toLocaleTimeString("en-GB")}; asked again for what was missed.`;
      } else if (state === "failed") {
        line.textContent = `Relay: ${detail.why}.`;
      } else if (state === "notice") {
        line.textContent = `Relay notice: ${detail.text}`;
      }
    }

    showInvoice(msat, bolt11) {
      this.bolt11 = bolt11;
      this.part("payment-amount").textContent = `The agent asks ${sats(msat)}. Pay this invoice to start the job.`;
      this.part("invoice").textContent = bolt11;
      this.part("invoice-qr").src = `/qr?data=${encodeURIComponent(bolt11)}`;
      this.part("payment-status").textContent = "";
      // Another node's invoice is its own wallet's: this node's dev wallet cannot settle it.
      this.part("pay-elsewhere").hidden = !this.remote;
      this.part("pay-regtest").hidden = !bolt11.toLowerCase().startsWith("lnbcrt");
      const pay = this.part("pay-dev");
      if (pay) {
        pay.parentElement.hidden = this.remote;
        pay.disabled = this.remote;
      }
      this.part("job-payment").hidden = false;
    }

    async payWithDevWallet(button) {
      button.disabled = true;
      const status = this.part("payment-status");
      try {
        status.textContent = "Paying…";
        const answer = await fetch("/hire/pay", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify({ bolt11: this.bolt11 }),
        });
        if (!answer.ok) throw new Error(`Not paid: ${await errorOf(answer)}`);
        const { paid_msat } = await answer.json();
        status.textContent = `Paid ${sats(paid_msat)} (dev wallet, not real money). Waiting for the result…`;
      } catch (err) {
        status.textContent = messageOf(err);
        button.disabled = false;
      }
    }

    async rate(label, reason) {
      const status = this.part("rating-status");
      if (label === "warning" && !reason) {
        status.textContent = "Say what went wrong before reporting a problem.";
        this.part("problem-reason").focus();
        return;
      }
      const buttons = [this.part("rate-good"), this.part("rate-problem")];
      buttons.forEach((b) => (b.disabled = true));
      try {
        status.textContent = "Waiting for your extension to sign the rating…";
        const signed = await sign({
          kind: 1985,
          created_at: now(),
          content: reason,
          tags: [["L", "ai.wot"], ["l", label, "ai.wot"], ["p", this.pubkey], ["e", this.resultId]],
        });
        const answer = await this.relay.publish(signed);
        if (!answer.ok) throw new Error(`The relay refused the rating: ${answer.message}`);
        status.textContent = "Rated";
      } catch (err) {
        status.textContent = messageOf(err);
        buttons.forEach((b) => (b.disabled = false));
      }
    }
  }

  async function hire(event) {
    event.preventDefault();
    const option = $("capability").selectedOptions[0];
    const text = $("input-text").value;
    const bid = $("bid").value.trim();
    if (!option || !text.trim()) {
      say("Choose a capability and give the input text.");
      return;
    }
    const kind = Number(option.dataset.kind);
    // An agent of another node reads its own relays (its NIP-89 announcement says which).
    const target = option.dataset.relay || homeRelay;
    const tags = [["i", text, "text"], ["p", option.dataset.pubkey], ["relays", target]];
    if (bid !== "") {
      if (!/^[0-9]+$/.test(bid)) {
        say("The most you will pay must be a whole number of sats.");
        return;
      }
      tags.push(["bid", String(BigInt(bid) * 1000n)]);
    }
    const submit = $("hire-submit");
    submit.disabled = true;
    try {
      say("Waiting for your extension to sign the job request…");
      const request = await sign({ kind, created_at: now(), content: "", tags });
      const card = new JobCard({
        request,
        kind,
        agent: option.dataset.agent,
        pubkey: option.dataset.pubkey,
        remote: Boolean(option.dataset.relay),
        relay: relayFor(target),
      });
      say(`Publishing the request to ${target}…`);
      const answer = await card.publish();
      say(
        answer.ok
          ? `Request ${request.id.slice(0, 12)}… published to ${option.dataset.agent}; its card is below.`
          : `The relay refused the request: ${answer.message}`,
      );
    } catch (err) {
      say(messageOf(err));
    } finally {
      submit.disabled = false;
    }
  }

  form.addEventListener("submit", hire);
  window.addEventListener("pagehide", () => relays.forEach((relay) => relay.close()));
})();
