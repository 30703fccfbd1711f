// Zap an agent (NIP-57) from its page: read its LNURL-pay document, sign a
// kind 9734 zap request with window.nostr (NIP-07), ask the callback for an
// invoice, and, with the dev wallet, pay it through /hire/pay. The node then
// publishes the kind 9735 receipt. The page is web/templates/agent.html.
"use strict";

(function () {
  const { sign, errorOf } = window.Timmy; // web/static/nip07.js
  const form = document.getElementById("zap-form");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const agent = form.dataset.agent;
  const pubkey = form.dataset.pubkey;
  const csrf = form.dataset.csrf;
  const status = $("zap-status");
  const submit = $("zap-submit");
  const payButton = $("zap-pay-dev");

  let pending = null; // {bolt11, sats}

  function say(text) {
    status.textContent = text;
  }

  function satsText(n) {
    return `${n.toLocaleString("en")} ${n === 1 ? "sat" : "sats"}`;
  }

  function messageOf(err) {
    return err instanceof Error ? err.message : String(err);
  }

  async function getJson(url, what) {
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin" });
    } catch (_) {
      throw new Error(`Could not reach ${what}.`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      // not JSON: reported below
    }
    if (body && body.status === "ERROR") throw new Error(`${what}: ${body.reason || "error"}`);
    if (!response.ok) throw new Error(`${what}: ${(body && body.error) || `${response.status} ${response.statusText}`}`);
    if (!body || typeof body !== "object") throw new Error(`${what}: the answer is not JSON.`);
    return body;
  }

  async function relayUrl() {
    const doc = await getJson(`/.well-known/nostr.json?name=${encodeURIComponent(agent)}`, "the NIP-05 document");
    const relays = (doc.relays && doc.relays[pubkey]) || [];
    const url = relays.find((r) => typeof r === "string" && /^wss?:\/\//.test(r));
    if (!url) throw new Error("The node lists no relay for this agent, so the receipt would have nowhere to go.");
    return url;
  }

  async function zap(event) {
    event.preventDefault();
    const text = $("zap-sats").value.trim();
    if (!/^[0-9]+$/.test(text) || Number(text) < 1) {
      say("The amount must be a whole number of sats, at least 1.");
      return;
    }
    const sats = Number(text);
    const msat = sats * 1000;
    submit.disabled = true;
    $("zap-invoice").hidden = true;
    pending = null;
    try {
      say("Reading the agent's lightning address…");
      const lnurl = await getJson(`/.well-known/lnurlp/${encodeURIComponent(agent)}`, "the LNURL-pay document");
      if (!lnurl.allowsNostr || !lnurl.nostrPubkey || !lnurl.callback) {
        throw new Error("This lightning address does not take zaps.");
      }
      if (msat < lnurl.minSendable || msat > lnurl.maxSendable) {
        throw new Error(
          `The amount must be between ${satsText(Math.ceil(lnurl.minSendable / 1000))} and ${satsText(Math.floor(lnurl.maxSendable / 1000))}.`
        );
      }
      const relay = await relayUrl();
      say("Waiting for your extension to sign the zap request…");
      const request = await sign({
        kind: 9734,
        created_at: Math.floor(Date.now() / 1000),
        content: "",
        tags: [["p", pubkey], ["relays", relay], ["amount", String(msat)]],
      });
      say("Asking for an invoice…");
      const callback = new URL(lnurl.callback, window.location.href);
      callback.searchParams.set("amount", String(msat));
      callback.searchParams.set("nostr", JSON.stringify(request));
      const answer = await getJson(callback.toString(), "the zap callback");
      if (typeof answer.pr !== "string" || !answer.pr) throw new Error("The zap callback returned no invoice.");
      pending = { bolt11: answer.pr, sats };
      $("zap-bolt11").textContent = answer.pr;
      $("zap-invoice").hidden = false;
      if (payButton) payButton.disabled = false;
      say(`Pay this invoice of ${satsText(sats)} to zap ${agent}.`);
    } catch (err) {
      say(messageOf(err));
    } finally {
      submit.disabled = false;
    }
  }

  async function payWithDevWallet() {
    if (!pending) return;
    const current = pending;
    payButton.disabled = true;
    try {
      say("Paying…");
      const response = await fetch("/hire/pay", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ bolt11: current.bolt11 }),
      });
      if (!response.ok) throw new Error(`Not paid: ${await errorOf(response)}`);
      pending = null;
      $("zap-invoice").hidden = true;
      say(`Zapped ${satsText(current.sats)} (dev wallet, not real money).`);
    } catch (err) {
      say(messageOf(err));
      payButton.disabled = false;
    }
  }

  form.addEventListener("submit", zap);
  if (payButton && form.dataset.devWallet === "true") payButton.addEventListener("click", payWithDevWallet);
})();
