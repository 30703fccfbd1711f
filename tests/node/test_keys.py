"""The NIP-49 keystore and where the passphrase comes from."""

import logging
import os
import stat

import pytest
from nostr_sdk import Keys

from node.keys import (
    DEV_PASSPHRASE_FILE,
    PASSPHRASE_ENV,
    KeyExists,
    KeyNotFound,
    Keystore,
    KeystoreError,
    Passphrase,
    PassphraseError,
    WrongPassphrase,
    create_dev_passphrase,
    read_dev_passphrase,
    resolve_passphrase,
    write_private,
)

FAST = 8  # scrypt log_n for tests: ~4 ms instead of ~0.5 s per key
PASS = Passphrase("correct horse battery staple", "test")

# NIP-49 "Decryption" test vector (specs/nips/49.md).
VECTOR = (
    "ncryptsec1qgg9947rlpvqu76pj5ecreduf9jxhselq2nae2kghhvd5g7dgjtcxfqtd67p9m0w57lspw8gsq6yphnm"
    "8623nsl8xn9j4jdzz84zm3frztj3z7s35vpzmqf6ksu8r89qk5z2zxfmu5gv8th8wclt0h4p"
)
VECTOR_HEX = "3501454135014541350145413501453fefb02227e449e57cf4d3a3ce05378683"


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_create_then_load_gives_the_same_key(tmp_path):
    store = Keystore(tmp_path, log_n=FAST)
    npub = store.create("node", PASS)
    keys = store.load("node", PASS)
    assert keys.public_key().to_bech32() == npub
    assert store.public_key("node") == npub
    assert store.names() == ["node"]


def test_files_are_private_and_hold_no_clear_secret(tmp_path):
    store = Keystore(tmp_path, log_n=FAST)
    store.create("node", PASS)
    store.create("agent-pow", PASS)
    assert mode(store.dir) == 0o700
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == [
        "agent-pow.ncryptsec",
        "agent-pow.npub",
        "node.ncryptsec",
        "node.npub",
    ]
    secrets = []
    for name in ("node", "agent-pow"):
        secret = store.load(name, PASS).secret_key()
        secrets += [secret.to_hex(), secret.to_bech32()]
    for path in files:
        assert mode(path) == 0o600, path
        text = path.read_text()
        assert "nsec1" not in text
        assert PASS.secret not in text
        for secret in secrets:
            assert secret not in text


def test_the_ncryptsec_records_its_scrypt_cost(tmp_path):
    Keystore(tmp_path, log_n=FAST).create("node", PASS)
    # Read back by a store with the default cost: the file says which cost to use.
    assert Keystore(tmp_path).load("node", PASS)


def test_wrong_passphrase_is_a_clear_error(tmp_path):
    store = Keystore(tmp_path, log_n=FAST)
    store.create("node", PASS)
    with pytest.raises(
        WrongPassphrase, match=r"wrong passphrase \(from TIMMY_PASSPHRASE\)"
    ) as info:
        store.load("node", Passphrase("nope, not it", "TIMMY_PASSPHRASE"))
    assert "nope, not it" not in str(info.value)


def test_empty_passphrase_is_refused(tmp_path):
    with pytest.raises(PassphraseError, match="empty"):
        Keystore(tmp_path, log_n=FAST).create("node", "")


def test_keys_are_never_overwritten(tmp_path):
    store = Keystore(tmp_path, log_n=FAST)
    store.create("node", PASS)
    before = (store.dir / "node.ncryptsec").read_bytes()
    with pytest.raises(KeyExists):
        store.create("node", PASS)
    assert (store.dir / "node.ncryptsec").read_bytes() == before


def test_unknown_key(tmp_path):
    store = Keystore(tmp_path)
    with pytest.raises(KeyNotFound):
        store.load("node", PASS)
    with pytest.raises(KeyNotFound):
        store.public_key("node")
    assert store.names() == []


@pytest.mark.parametrize("name", ["../node", "a/b", "", "Node", ".hidden"])
def test_key_names_cannot_escape_the_keys_dir(tmp_path, name):
    with pytest.raises(KeystoreError, match="bad key name"):
        Keystore(tmp_path, log_n=FAST).create(name, PASS)


def test_reads_the_nip49_test_vector(tmp_path):
    store = Keystore(tmp_path)
    store.dir.mkdir()
    (store.dir / "vector.ncryptsec").write_text(VECTOR + "\n")
    keys = store.load("vector", "nostr")
    assert keys.secret_key().to_hex() == VECTOR_HEX
    # The npub lost to a crash during create is derived again on load.
    assert store.public_key("vector") == Keys.parse(VECTOR_HEX).public_key().to_bech32()


def test_passphrase_is_nfkc_normalized(tmp_path):
    store = Keystore(tmp_path, log_n=FAST)
    store.create("node", "\u212b\u2126\u1e9b\u0323")  # NIP-49's unnormalized example
    assert store.load("node", "\u00c5\u03a9\u1e69")


def test_damaged_ncryptsec(tmp_path):
    store = Keystore(tmp_path)
    store.dir.mkdir()
    (store.dir / "node.ncryptsec").write_text("ncryptsec1notreally\n")
    with pytest.raises(KeystoreError, match="not a NIP-49 ncryptsec"):
        store.load("node", PASS)


def test_npub_that_does_not_match_the_key_is_refused(tmp_path):
    store = Keystore(tmp_path, log_n=FAST)
    store.create("node", PASS)
    (store.dir / "node.npub").write_text(Keys.generate().public_key().to_bech32())
    with pytest.raises(KeystoreError, match="does not match"):
        store.load("node", PASS)


def test_passphrase_repr_hides_the_secret():
    assert "horse" not in repr(PASS)
    assert "test" in repr(PASS)


def test_write_private_never_clobbers(tmp_path):
    path = tmp_path / "f"
    write_private(path, "one")
    with pytest.raises(KeyExists):
        write_private(path, "two")
    write_private(path, "three", overwrite=True)
    assert path.read_text() == "three"
    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temporary files left


# --- passphrase resolution ------------------------------------------------------


def no_prompt(_):
    raise AssertionError("must not prompt")


def test_env_comes_first(tmp_path):
    create_dev_passphrase(tmp_path)
    got = resolve_passphrase(tmp_path, environ={PASSPHRASE_ENV: "from env"}, prompt=no_prompt)
    assert got == Passphrase("from env", PASSPHRASE_ENV)


def test_empty_env_is_an_error(tmp_path):
    with pytest.raises(PassphraseError, match="empty"):
        resolve_passphrase(tmp_path, environ={PASSPHRASE_ENV: ""})


def test_dev_file_comes_second(tmp_path):
    created = create_dev_passphrase(tmp_path)
    got = resolve_passphrase(tmp_path, environ={}, prompt=no_prompt, interactive=True)
    assert got.secret == created.secret
    assert got.source.endswith(DEV_PASSPHRASE_FILE)


def test_prompt_only_on_a_terminal(tmp_path):
    with pytest.raises(PassphraseError, match=PASSPHRASE_ENV):
        resolve_passphrase(tmp_path, environ={}, prompt=no_prompt, interactive=False)


def test_prompt_asks_twice_when_confirming(tmp_path):
    answers = iter(["first", "second"])
    with pytest.raises(PassphraseError, match="do not match"):
        resolve_passphrase(
            tmp_path, confirm=True, environ={}, prompt=lambda _: next(answers), interactive=True
        )
    asked = []
    got = resolve_passphrase(
        tmp_path,
        confirm=True,
        environ={},
        prompt=lambda q: asked.append(q) or "same",
        interactive=True,
    )
    assert got == Passphrase("same", "prompt")
    assert len(asked) == 2


def test_dev_passphrase_file_is_private_and_announced(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        created = create_dev_passphrase(tmp_path)
    path = tmp_path / DEV_PASSPHRASE_FILE
    assert mode(path) == 0o600
    assert len(created.secret) >= 32
    assert "in clear" in caplog.text
    assert str(path) in caplog.text
    assert created.secret not in caplog.text
    assert read_dev_passphrase(tmp_path) == created
    with pytest.raises(KeyExists):
        create_dev_passphrase(tmp_path)


def test_dev_passphrase_readable_by_others_is_refused(tmp_path):
    create_dev_passphrase(tmp_path)
    os.chmod(tmp_path / DEV_PASSPHRASE_FILE, 0o644)
    with pytest.raises(PassphraseError, match="readable by others"):
        read_dev_passphrase(tmp_path)
