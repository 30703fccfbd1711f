// Log in with a NIP-07 extension: get a challenge, have window.nostr sign a
// kind 27235 (NIP-98 HTTP Auth) event carrying it, post the event, go home.
// The event format and the server's checks are in web/auth.py.
"use strict";

(function () {
  const { hasExtension, sign, errorOf } = window.Timmy; // web/static/nip07.js
  const button = document.getElementById("login");
  const status = document.getElementById("login-status");
  const noExtension = document.getElementById("no-extension");
  if (!button) return;
  const loginUrl = button.dataset.loginUrl;

  function say(text) {
    status.textContent = text;
  }

  async function logIn() {
    if (!hasExtension()) {
      noExtension.hidden = false;
      say("No Nostr extension found: install one (see below), then reload this page.");
      return;
    }
    noExtension.hidden = true;
    const home = new URL(loginUrl, window.location.href).origin;
    if (home !== window.location.origin) {
      say(`This node logs in at ${home}: open the login page there.`);
      return;
    }
    button.disabled = true;
    try {
      say("Asking the node for a challenge…");
      const issued = await fetch(`${loginUrl}/nonce`, { method: "POST", credentials: "same-origin" });
      if (!issued.ok) throw new Error(`The node gave no challenge: ${await errorOf(issued)}`);
      const { nonce } = await issued.json();

      say("Waiting for your extension to sign the challenge…");
      const template = {
        kind: 27235,
        created_at: Math.floor(Date.now() / 1000),
        tags: [["u", loginUrl], ["method", "POST"], ["challenge", nonce]],
        content: "",
      };
      const signed = await sign(template);

      say("Checking the signature…");
      const answer = await fetch(loginUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(signed),
      });
      if (!answer.ok) throw new Error(`Login refused: ${await errorOf(answer)}`);
      say("Logged in.");
      window.location.assign("/");
    } catch (err) {
      say(err instanceof Error ? err.message : String(err));
    } finally {
      button.disabled = false;
    }
  }

  button.addEventListener("click", logIn);
  // Extensions inject window.nostr at document_end (NIP-07), so look once the page has loaded.
  window.addEventListener("load", function () {
    if (!hasExtension()) noExtension.hidden = false;
  });
})();
