// A NIP-07 signer for the browser tests: window.nostr backed by nostr-tools.
// Load the nostr-tools browser bundle first (it defines the global NostrTools).
// Each page gets a fresh key; read it back with window.nostr.getPublicKey().
"use strict";

(function () {
  const tools = window.NostrTools;
  if (!tools) throw new Error("shim.js: load nostr-tools' nostr.bundle.js before it");
  const secretKey = tools.generateSecretKey();
  const publicKey = tools.getPublicKey(secretKey);

  window.nostr = {
    async getPublicKey() {
      return publicKey;
    },
    async signEvent(template) {
      return tools.finalizeEvent({ ...template }, secretKey);
    },
  };
})();
