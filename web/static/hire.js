// Hire an agent: sign a NIP-90 job request with window.nostr (NIP-07), publish
// it to the node's relay over a WebSocket (NIP-01), follow its kind 7000
// feedback and its result, pay a dev-wallet invoice through /hire/pay, and
// rate the result with a kind 1985 ai.wot label. The page is web/templates/hire.html.
"use strict";

(function () {
  const { sign, errorOf } = window.Timmy; // web/static/nip07.js
  const form = document.getElementById("hire-form");
  if (!form) return;
  const relayUrl = form.dataset.relayUrl;
  const csrf = form.dataset.csrf;
  const $ = (id) => document.getElementById(id);
  const message = $("hire-message");
  const updates = $("job-updates");

  let job = null; // {id, kind, pubkey, socket, results: Set}

  function say(text) {
    message.textContent = text;
  }

  function now() {
    return Math.floor(Date.now() / 1000);
  }

  function sats(msat) {
    const n = Number(msat) / 1000;
    return `${n.toLocaleString("en")} ${n === 1 ? "sat" : "sats"}`;
  }

  function tagValue(event, name) {
    const tag = event.tags.find((t) => t[0] === name);
    return tag ? tag.slice(1) : null;
  }

  // One WebSocket to the relay: OK answers resolve the publish waiting on them,
  // EVENTs of our subscription go to onEvent.
  function connect(onEvent, url = relayUrl) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const waiting = new Map(); // event id -> resolve({ok, message})
      const relay = {
        subscribe(sub, filter) {
          ws.send(JSON.stringify(["REQ", sub, filter]));
        },
        publish(event) {
          return new Promise((done) => {
            waiting.set(event.id, done);
            ws.send(JSON.stringify(["EVENT", event]));
          });
        },
        close() {
          ws.close();
        },
      };
      ws.addEventListener("open", () => resolve(relay));
      ws.addEventListener("error", () => reject(new Error(`Could not reach the relay at ${url}.`)));
      ws.addEventListener("close", () => {
        for (const done of waiting.values()) done({ ok: false, message: "the relay closed the connection" });
        waiting.clear();
      });
      ws.addEventListener("message", (msg) => {
        let data;
        try {
          data = JSON.parse(msg.data);
        } catch (_) {
          return; // not NIP-01: ignore
        }
        if (!Array.isArray(data)) return;
        if (data[0] === "OK" && waiting.has(data[1])) {
          waiting.get(data[1])({ ok: data[2] === true, message: String(data[3] || "") });
          waiting.delete(data[1]);
        } else if (data[0] === "EVENT" && data[2] && typeof data[2] === "object") {
          onEvent(data[2]);
        } else if (data[0] === "CLOSED" || data[0] === "NOTICE") {
          addUpdate(`relay: ${data[data.length - 1]}`);
        }
      });
    });
  }

  function addUpdate(text) {
    const item = document.createElement("li");
    item.textContent = text;
    updates.appendChild(item);
  }

  function onFeedback(event) {
    const [status, info] = tagValue(event, "status") || ["unknown", ""];
    const amount = tagValue(event, "amount");
    if (status === "payment-required") {
      addUpdate(`payment-required: ${amount ? sats(amount[0]) : "amount not given"}${info ? ` (${info})` : ""}`);
      if (amount && amount[1]) showInvoice(amount[0], amount[1]);
    } else if (status === "error") {
      addUpdate(`error: ${info || event.content || "no reason given"}`);
    } else {
      addUpdate(info ? `${status}: ${info}` : status);
    }
  }

  function onResult(event) {
    if (job.results.has(event.id)) return;
    job.results.add(event.id);
    job.resultId = event.id;
    addUpdate("result received");
    $("result-content").textContent = event.content;
    $("result").hidden = false;
    $("payment").hidden = true;
    $("rating").hidden = false;
  }

  function showInvoice(msat, bolt11) {
    job.bolt11 = bolt11;
    $("payment-amount").textContent = `The agent asks ${sats(msat)}. Pay this invoice to start the job.`;
    $("invoice").textContent = bolt11;
    $("invoice-qr").src = `/qr?data=${encodeURIComponent(bolt11)}`;
    $("payment-status").textContent = "";
    if ($("pay-dev")) $("pay-dev").disabled = false;
    $("payment").hidden = false;
  }

  async function payWithDevWallet(button) {
    button.disabled = true;
    const status = $("payment-status");
    try {
      status.textContent = "Paying…";
      const answer = await fetch("/hire/pay", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ bolt11: job.bolt11 }),
      });
      if (!answer.ok) throw new Error(`Not paid: ${await errorOf(answer)}`);
      const { paid_msat } = await answer.json();
      status.textContent = `Paid ${sats(paid_msat)} (dev wallet, not real money). Waiting for the result…`;
    } catch (err) {
      status.textContent = err instanceof Error ? err.message : String(err);
      button.disabled = false;
    }
  }

  async function rate(label, reason) {
    const status = $("rating-status");
    if (label === "warning" && !reason) {
      status.textContent = "Say what went wrong before reporting a problem.";
      $("problem-reason").focus();
      return;
    }
    const buttons = [$("rate-good"), $("rate-problem")];
    buttons.forEach((b) => (b.disabled = true));
    try {
      status.textContent = "Waiting for your extension to sign the rating…";
      const signed = await sign({
        kind: 1985,
        created_at: now(),
        content: reason,
        tags: [["L", "ai.wot"], ["l", label, "ai.wot"], ["p", job.pubkey], ["e", job.resultId]],
      });
      const answer = await job.relay.publish(signed);
      if (!answer.ok) throw new Error(`The relay refused the rating: ${answer.message}`);
      status.textContent = "Rated";
    } catch (err) {
      status.textContent = err instanceof Error ? err.message : String(err);
      buttons.forEach((b) => (b.disabled = false));
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
    const target = option.dataset.relay || relayUrl;
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
      if (job && job.relay) job.relay.close();
      job = { id: request.id, kind, pubkey: option.dataset.pubkey, results: new Set(), relay: null };
      const current = job;
      updates.replaceChildren();
      ["payment", "result", "rating"].forEach((id) => ($(id).hidden = true));
      $("rating-status").textContent = "";
      [$("rate-good"), $("rate-problem")].forEach((b) => (b.disabled = false));

      say("Connecting to the relay…");
      current.relay = await connect((ev) => {
        if (job !== current || !ev.tags || !Array.isArray(ev.tags)) return;
        const about = tagValue(ev, "e");
        if (!about || about[0] !== current.id) return;
        if (ev.kind === 7000) onFeedback(ev);
        else if (ev.kind === kind + 1000) onResult(ev);
      }, target);
      // Subscribe before publishing, so no answer can slip past.
      current.relay.subscribe(`hire-${request.id.slice(0, 16)}`, { kinds: [7000, kind + 1000], "#e": [request.id] });
      const answer = await current.relay.publish(request);
      if (!answer.ok) throw new Error(`The relay refused the request: ${answer.message}`);
      $("job-link").href = `/jobs/${request.id}`;
      $("job").hidden = false;
      say(`Request ${request.id.slice(0, 12)}… published to ${option.dataset.agent}.`);
    } catch (err) {
      say(err instanceof Error ? err.message : String(err));
    } finally {
      submit.disabled = false;
    }
  }

  form.addEventListener("submit", hire);
  const payButton = $("pay-dev");
  if (payButton) payButton.addEventListener("click", () => payWithDevWallet(payButton));
  $("rate-good").addEventListener("click", () => rate("service-quality", ""));
  $("rate-problem").addEventListener("click", () => rate("warning", $("problem-reason").value.trim()));
  window.addEventListener("pagehide", () => job && job.relay && job.relay.close());
})();
