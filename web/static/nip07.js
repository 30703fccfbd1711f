// What our page scripts share: asking the NIP-07 extension (window.nostr) to
// sign, and reading the node's JSON errors. Templates load it before the page's
// own script; both are deferred, so they run in that order.
"use strict";

window.Timmy = Object.freeze({
  hasExtension() {
    return Boolean(window.nostr && typeof window.nostr.signEvent === "function");
  },

  // The signed event, or an Error whose message is meant for the person.
  async sign(template) {
    if (!window.Timmy.hasExtension()) {
      throw new Error("No Nostr extension found: install one that supports NIP-07, then reload.");
    }
    let signed;
    try {
      signed = await window.nostr.signEvent(template);
    } catch (err) {
      throw new Error(`Your extension did not sign${err && err.message ? `: ${err.message}` : "."}`);
    }
    if (!signed || !signed.sig || !signed.id) throw new Error("Your extension returned no signed event.");
    return signed;
  },

  // The `error` of a JSON answer, else the status line.
  async errorOf(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (_) {
      // not JSON: fall back to the status line
    }
    return `${response.status} ${response.statusText}`;
  },
});
