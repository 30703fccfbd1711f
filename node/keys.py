"""NIP-49 keystore: the node's and its agents' secret keys, encrypted at rest.

Spec: ``specs/nips/49.md`` (scrypt + XChaCha20-Poly1305, bech32 ``ncryptsec``);
the cryptography is nostr-sdk's ``EncryptedSecretKey``.

Layout, in ``DIR/keys/`` (mode 0700, files 0600)::

    node.ncryptsec              the secret key, encrypted with the passphrase
    node.npub                   its public key, readable without the passphrase
    agent-summarizer.ncryptsec  one pair per agent in node.toml
    ...

A clear secret key is never written anywhere: it is created in memory,
encrypted, and only the ``ncryptsec`` reaches the disk. Key files are never
overwritten. (Python cannot zero the memory of a ``str``, so NIP-49's "zero the
key after use" is out of our reach; we keep secrets in as few places as we can.)

The passphrase comes from, in order: ``TIMMY_PASSPHRASE``, the development
passphrase file ``DIR/dev-passphrase`` if ``timmy init --dev-passphrase``
created one, or a prompt when stdin is a terminal.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import secrets
import stat
import sys
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nostr_sdk import Keys

log = logging.getLogger(__name__)

KEYS_DIR = "keys"
NODE_KEY = "node"
CUSTOMER_KEY = "customer"  # the identity the node's operator hires and rates agents with
PASSPHRASE_ENV = "TIMMY_PASSPHRASE"
DEV_PASSPHRASE_FILE = "dev-passphrase"
# NIP-49: 16 is 64 MiB and ~0.3-0.5 s per key here; each extra step doubles both.
DEFAULT_LOG_N = 16

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # a file name: no '/', no '..'


class KeystoreError(Exception):
    """Raised when a key cannot be created, read or unlocked."""


class KeyNotFound(KeystoreError):
    """Raised when the keystore has no key of that name."""


class KeyExists(KeystoreError):
    """Raised when creating a key whose name is taken; keys are never overwritten."""


class WrongPassphrase(KeystoreError):
    """Raised when a key does not decrypt with the given passphrase."""


class PassphraseError(KeystoreError):
    """Raised when no usable passphrase can be obtained."""


@dataclass(frozen=True, slots=True)
class Passphrase:
    """A passphrase and where it came from (for error messages; never the value)."""

    secret: str = field(repr=False)
    source: str = "argument"


AGENT_PREFIX = "agent-"


def agent_key_name(agent: str) -> str:
    """The keystore name of an agent's key; the prefix keeps an agent named "node" apart."""
    return f"{AGENT_PREFIX}{agent}"


class Keystore:
    """NIP-49 encrypted keys in ``data_dir/keys``.

    ``log_n`` is the scrypt cost of keys this store *creates*; each ``ncryptsec``
    records its own, so a store reads keys of any cost.
    """

    def __init__(self, data_dir: Path, *, log_n: int = DEFAULT_LOG_N) -> None:
        self.dir = Path(data_dir) / KEYS_DIR
        self.log_n = log_n

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.ncryptsec"))

    def exists(self, name: str) -> bool:
        return self._path(name, "ncryptsec").exists()

    def public_key(self, name: str) -> str:
        """The key's npub, read without the passphrase."""
        try:
            return self._path(name, "npub").read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise KeyNotFound(f"no key {name!r} in {self.dir}") from None

    def create(self, name: str, passphrase: Passphrase | str) -> str:
        """Generate a key, store it encrypted, and return its npub."""
        from nostr_sdk import EncryptedSecretKey, Keys, KeySecurity

        if self.exists(name):
            raise KeyExists(f"key {name!r} already exists in {self.dir}")
        self._make_dir()
        keys = Keys.generate()
        # MEDIUM is NIP-49's 0x01: this key was never handled in clear outside memory.
        encrypted = EncryptedSecretKey(
            keys.secret_key(), _normalize(passphrase), self.log_n, KeySecurity.MEDIUM
        )
        npub: str = keys.public_key().to_bech32()
        # The npub first: it may be rewritten if we crash before the secret lands;
        # the ncryptsec is what makes the key exist, and it is never overwritten.
        write_private(self._path(name, "npub"), npub + "\n", overwrite=True)
        write_private(self._path(name, "ncryptsec"), encrypted.to_bech32() + "\n")
        return npub

    def load(self, name: str, passphrase: Passphrase | str) -> Keys:
        """Decrypt a key; raises :class:`WrongPassphrase` if it does not open."""
        from nostr_sdk import EncryptedSecretKey, Keys

        path = self._path(name, "ncryptsec")
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise KeyNotFound(f"no key {name!r} in {self.dir}") from None
        try:
            encrypted = EncryptedSecretKey.from_bech32(text)
        except Exception as exc:  # nostr_sdk's error tree; its message holds no secret
            raise KeystoreError(f"{path}: not a NIP-49 ncryptsec ({exc})") from None
        secret = _normalize(passphrase)
        try:
            keys = Keys(encrypted.decrypt(secret))
        except Exception:  # the AEAD tag did not match: a wrong passphrase (or a damaged file)
            raise WrongPassphrase(f"wrong passphrase {_from(passphrase)}for {path}") from None
        self._check_npub(name, keys)
        return keys

    def _check_npub(self, name: str, keys: Keys) -> None:
        npub = keys.public_key().to_bech32()
        path = self._path(name, "npub")
        if not path.exists():  # lost to a crash during create: derive it again
            write_private(path, npub + "\n", overwrite=True)
        elif path.read_text(encoding="ascii").strip() != npub:
            raise KeystoreError(f"{path} does not match {name}.ncryptsec; delete it to rebuild it")

    def _path(self, name: str, suffix: str) -> Path:
        if not _NAME.fullmatch(name):
            raise KeystoreError(f"bad key name {name!r}: use a-z, 0-9, '-', '_'")
        return self.dir / f"{name}.{suffix}"

    def _make_dir(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)  # mkdir's mode is masked by umask and ignored if it exists


def _normalize(passphrase: Passphrase | str) -> str:
    secret = passphrase.secret if isinstance(passphrase, Passphrase) else passphrase
    if not secret:
        raise PassphraseError("the passphrase is empty")
    return unicodedata.normalize("NFKC", secret)  # NIP-49: same bytes on every keyboard


def _from(passphrase: Passphrase | str) -> str:
    return f"(from {passphrase.source}) " if isinstance(passphrase, Passphrase) else ""


def write_private(path: Path, text: str, *, overwrite: bool = False) -> None:
    """Write a file readable by its owner only, atomically: readers see all or nothing.

    The temporary file is created 0600 with ``O_EXCL``, so the content is never
    readable by others, not even for an instant. Without ``overwrite`` the final
    name is taken with ``link``, which fails if it exists, where ``rename``
    would silently replace it.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeyExists(f"{path} already exists; not overwriting it") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    # The new name is durable only once its directory entry is.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- where the passphrase comes from --------------------------------------------


def resolve_passphrase(
    data_dir: Path,
    *,
    confirm: bool = False,
    environ: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] | None = None,
    interactive: bool | None = None,
) -> Passphrase:
    """TIMMY_PASSPHRASE, else the development file, else a prompt (twice if ``confirm``)."""
    environ = os.environ if environ is None else environ
    if PASSPHRASE_ENV in environ:
        if not environ[PASSPHRASE_ENV]:
            raise PassphraseError(f"{PASSPHRASE_ENV} is set but empty")
        return Passphrase(environ[PASSPHRASE_ENV], PASSPHRASE_ENV)
    if (Path(data_dir) / DEV_PASSPHRASE_FILE).exists():
        return read_dev_passphrase(data_dir)
    if not (sys.stdin.isatty() if interactive is None else interactive):
        raise PassphraseError(
            f"no passphrase: set {PASSPHRASE_ENV}, run in a terminal to be asked, "
            "or for a development node use `timmy init --dev-passphrase`"
        )
    return _ask(prompt or getpass.getpass, confirm=confirm)


def _ask(prompt: Callable[[str], str], *, confirm: bool) -> Passphrase:
    secret = prompt("Passphrase for the node keys: ")
    if not secret:
        raise PassphraseError("the passphrase is empty")
    if confirm and prompt("Repeat the passphrase: ") != secret:
        raise PassphraseError("the passphrases do not match")
    return Passphrase(secret, "prompt")


def create_dev_passphrase(data_dir: Path) -> Passphrase:
    """Store a random passphrase in clear in the data dir, for development only."""
    path = Path(data_dir) / DEV_PASSPHRASE_FILE
    passphrase = Passphrase(secrets.token_urlsafe(32), str(path))
    write_private(path, passphrase.secret + "\n")
    log.warning(
        "development passphrase stored in clear in %s (mode 0600): whoever can read it "
        "can unlock the node's keys; use %s or a prompt for a real node",
        path,
        PASSPHRASE_ENV,
    )
    return passphrase


def read_dev_passphrase(data_dir: Path) -> Passphrase:
    path = Path(data_dir) / DEV_PASSPHRASE_FILE
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:  # like ssh: a passphrase others can read protects nothing
        raise PassphraseError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise PassphraseError(f"{path} is empty")
    log.warning("unlocking keys with the development passphrase in %s: not for a real node", path)
    return Passphrase(secret, str(path))
