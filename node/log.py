"""Logging for the ``timmy`` process: one stderr handler and a secret-redacting filter.

The first guard against leaked secrets is that no code logs them. The filter
here is a safety net behind it: it masks anything shaped like a bech32 secret
(``nsec1...``, ``ncryptsec1...``) and every secret registered with
:func:`register_secret` (the passphrase, unlocked keys in hex). It cannot mask
bare hex secrets by shape, because event ids and public keys look the same.
"""

from __future__ import annotations

import logging
import re
import sys

REDACTED = "[REDACTED]"
_BECH32_SECRET = re.compile(r"\b(?:nsec|ncryptsec)1[02-9ac-hj-np-z]+", re.IGNORECASE)
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Rewrites a record's message, traceback and stack with secrets masked.

    Installed on our handler, it sees records from every logger (a logger's own
    filters see only records logged on that very logger).
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def register(self, secret: str) -> None:
        if secret:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        text = _BECH32_SECRET.sub(REDACTED, text)
        # Longest first, so a secret containing another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format call; logging would print its raw args
            message = f"{record.msg} {record.args!r} (bad log call)"
        record.msg, record.args = self.redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_filter = RedactSecrets()
_handler: logging.Handler | None = None


def setup_logging(level: str = "INFO") -> None:
    """Send every log record to stderr through the redacting filter; safe to call twice."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter(_FORMAT))
    _handler.addFilter(_filter)
    root.addHandler(_handler)
    root.setLevel(level.upper())


def register_secret(secret: str) -> None:
    """Mask this exact string in every later log line."""
    _filter.register(secret)


def redact(text: str) -> str:
    return _filter.redact(text)
