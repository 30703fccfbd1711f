"""The redacting log filter: the safety net behind "never log a secret"."""

import logging

from nostr_sdk import EncryptedSecretKey, Keys, KeySecurity

from node.log import REDACTED, RedactSecrets


def record(msg, *args, exc_info=None):
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, exc_info)


def test_bech32_secrets_are_masked_by_shape():
    keys = Keys.generate()
    nsec = keys.secret_key().to_bech32()
    ncryptsec = EncryptedSecretKey(keys.secret_key(), "pw", 8, KeySecurity.MEDIUM).to_bech32()
    rec = record("got %s and %s", nsec, ncryptsec)
    RedactSecrets().filter(rec)
    assert rec.getMessage() == f"got {REDACTED} and {REDACTED}"


def test_registered_secrets_are_masked_but_public_hex_is_kept():
    keys = Keys.generate()
    secret_hex = keys.secret_key().to_hex()
    public_hex = keys.public_key().to_hex()
    redact = RedactSecrets()
    redact.register(secret_hex)
    redact.register("hunter2-passphrase")
    rec = record("sk=%s pk=%s pass=%s", secret_hex, public_hex, "hunter2-passphrase")
    redact.filter(rec)
    assert rec.getMessage() == f"sk={REDACTED} pk={public_hex} pass={REDACTED}"


def test_tracebacks_are_masked_too():
    redact = RedactSecrets()
    redact.register("s3cret-value")
    try:
        raise ValueError("bad s3cret-value")
    except ValueError as exc:
        rec = record("failed", exc_info=(type(exc), exc, exc.__traceback__))
    redact.filter(rec)
    text = logging.Formatter().format(rec)
    assert "s3cret-value" not in text
    assert "ValueError: bad [REDACTED]" in text


def test_a_bad_log_call_does_not_leak_its_arguments():
    redact = RedactSecrets()
    redact.register("s3cret-value")
    rec = record("%s %s", "s3cret-value")  # one argument short
    assert redact.filter(rec)
    assert "s3cret-value" not in rec.getMessage()
