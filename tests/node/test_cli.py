"""The ``timmy`` command line, as a user runs it."""

import json
import logging
import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from node.cli import main
from node.config import default_toml
from node.keys import DEV_PASSPHRASE_FILE, PASSPHRASE_ENV, Keystore, Passphrase

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).parent / "timmy"
TIMMY = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "node.cli"]
PASS = "correct horse battery staple"
FAST = ["--log-n", "8"]  # cheap scrypt for tests


@pytest.fixture(autouse=True)
def restore_logging():
    """main() installs a stderr handler on the root logger; take it away after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, PASS)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)  # never prompt in tests
    return monkeypatch


def init(data, *extra):
    return main(["init", "--data", str(data), *FAST, *extra])


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def secrets_of(data, passphrase=PASS):
    """Every form of every secret under ``data``: hex and nsec of each key, the passphrase."""
    store = Keystore(data)
    found = [passphrase]
    for name in store.names():
        secret = store.load(name, passphrase).secret_key()
        found += [secret.to_hex(), secret.to_bech32()]
    return found


# --- startup speed ------------------------------------------------------------------


def test_help_answers_in_under_300_ms():
    subprocess.run([*TIMMY, "--help"], check=True, capture_output=True, cwd=REPO)  # warm caches
    times = []
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run([*TIMMY, "--help"], capture_output=True, text=True, cwd=REPO)
        times.append(time.perf_counter() - start)
        assert done.returncode == 0
        assert "init" in done.stdout
    assert min(times) < 0.3, times


def test_the_cli_module_imports_no_heavy_dependency():
    code = (
        "import sys, node.cli; "
        "print([m for m in ('asyncio', 'nostr_sdk', 'relay', 'tomllib', 'node.config') "
        "if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.strip() == "[]", done.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert re.fullmatch(r"timmy \S+\n", capsys.readouterr().out)


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "init" in capsys.readouterr().err


# --- init ---------------------------------------------------------------------------


def test_init_creates_config_and_private_keys(tmp_path, env, capsys):
    data = tmp_path / "node"
    assert init(data) == 0
    assert (data / "node.toml").read_text() == default_toml()
    assert mode(data) == 0o700
    assert mode(data / "keys") == 0o700
    store = Keystore(data)
    assert store.names() == [
        "agent-librarian", "agent-listener", "agent-pow", "agent-reputation", "agent-speaker",
        "agent-summarizer", "agent-writer", "customer", "node",
    ]
    for path in (data / "keys").iterdir():
        assert mode(path) == 0o600
    out = capsys.readouterr().out
    assert store.public_key("node") in out
    assert not (data / DEV_PASSPHRASE_FILE).exists()


def test_init_leaks_no_secret_to_logs_output_or_disk(tmp_path, env, capsys, caplog):
    data = tmp_path / "node"
    data.mkdir()
    # DEBUG, so that every log line any code path emits is checked.
    (data / "node.toml").write_text('[logging]\nlevel = "DEBUG"\n')
    caplog.set_level(logging.DEBUG)
    assert init(data) == 0
    captured = capsys.readouterr()
    assert "created key node" in captured.err  # the logs did reach stderr
    for secret in secrets_of(data):
        assert secret not in captured.out
        assert secret not in captured.err
        assert secret not in caplog.text
        for path in data.rglob("*"):
            if path.is_file():
                assert secret not in path.read_text(), path


def test_init_again_adds_only_missing_keys(tmp_path, env, capsys):
    data = tmp_path / "node"
    init(data)
    store = Keystore(data)
    before = {name: (store.dir / f"{name}.ncryptsec").read_bytes() for name in store.names()}
    with (data / "node.toml").open("a") as f:
        f.write('\n[[agents]]\nname = "echo"\nkinds = [5050]\n')
    assert init(data) == 0
    assert store.names() == [
        "agent-echo", "agent-librarian", "agent-listener", "agent-pow", "agent-reputation", "agent-speaker",
        "agent-summarizer", "agent-writer", "customer", "node",
    ]
    for name, content in before.items():
        assert (store.dir / f"{name}.ncryptsec").read_bytes() == content
    assert "keeping the existing" in capsys.readouterr().err


def test_init_checks_the_passphrase_against_existing_keys(tmp_path, env, capsys):
    data = tmp_path / "node"
    init(data)
    (data / "node.toml").write_text('[[agents]]\nname = "echo"\n')
    env.setenv(PASSPHRASE_ENV, "another passphrase")
    assert init(data) == 2
    err = capsys.readouterr().err
    assert "wrong passphrase (from TIMMY_PASSPHRASE)" in err
    assert "another passphrase" not in err
    assert not Keystore(data).exists("agent-echo")


def test_init_without_a_passphrase_says_where_to_get_one(tmp_path, env, capsys):
    env.delenv(PASSPHRASE_ENV)
    assert init(tmp_path / "node") == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("timmy: error: no passphrase")
    assert PASSPHRASE_ENV in err
    assert "--dev-passphrase" in err


def test_init_prompts_twice_on_a_terminal(tmp_path, env, capsys):
    env.delenv(PASSPHRASE_ENV)
    env.setattr(sys.stdin, "isatty", lambda: True)
    answers = iter(["one passphrase", "another one"])
    env.setattr("getpass.getpass", lambda prompt: next(answers))
    assert init(tmp_path / "a") == 2
    assert "do not match" in capsys.readouterr().err
    env.setattr("getpass.getpass", lambda prompt: "the same")
    assert init(tmp_path / "b") == 0
    assert Keystore(tmp_path / "b").load("node", "the same")


def test_dev_passphrase_is_stored_privately_and_used(tmp_path, env, capsys):
    env.delenv(PASSPHRASE_ENV)
    data = tmp_path / "node"
    assert init(data, "--dev-passphrase") == 0
    path = data / DEV_PASSPHRASE_FILE
    assert mode(path) == 0o600
    secret = path.read_text().strip()
    err = capsys.readouterr().err
    assert "WARNING" in err
    assert "in clear" in err
    for leaked in secrets_of(data, secret):
        assert leaked not in err
    assert Keystore(data).load("node", Passphrase(secret))
    assert init(data, "--dev-passphrase") == 0  # again: reuses the file
    assert path.read_text().strip() == secret


def test_dev_passphrase_cannot_join_keys_made_with_another(tmp_path, env, capsys):
    data = tmp_path / "node"
    init(data)
    (data / "node.toml").write_text('[[agents]]\nname = "echo"\n')
    assert init(data, "--dev-passphrase") == 2
    assert "drop --dev-passphrase" in capsys.readouterr().err
    assert not (data / DEV_PASSPHRASE_FILE).exists()


def test_log_n_is_checked(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["init", "--data", str(tmp_path), "--log-n", "40"])
    assert "outside 8-22" in capsys.readouterr().err


# --- keys, errors -------------------------------------------------------------------


def test_keys_prints_each_npub_with_its_name(tmp_path, env, capsys):
    data = tmp_path / "node"
    init(data)
    capsys.readouterr()
    assert main(["keys", "--data", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    store = Keystore(data)
    assert [line.split() for line in lines] == [
        ["node", "timmy", store.public_key("node")],
        ["customer", "customer", store.public_key("customer")],
        ["agent", "summarizer", store.public_key("agent-summarizer")],
        ["agent", "pow", store.public_key("agent-pow")],
        ["agent", "reputation", store.public_key("agent-reputation")],
        ["agent", "writer", store.public_key("agent-writer")],
        ["agent", "listener", store.public_key("agent-listener")],
        ["agent", "speaker", store.public_key("agent-speaker")],
        ["agent", "librarian", store.public_key("agent-librarian")],
    ]


def test_keys_shows_what_is_missing(tmp_path, env, capsys):
    data = tmp_path / "node"
    init(data)
    (data / "node.toml").write_text('[[agents]]\nname = "echo"\n')
    capsys.readouterr()
    assert main(["keys", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"agent\s+echo\s+\(no key: run `timmy init", out)
    assert re.search(r"agent-pow\s+npub1\w+\s+\(not in node.toml\)", out)


@pytest.mark.parametrize("command", [["keys"], ["run"], ["relay"]])
def test_a_missing_data_dir_suggests_init(tmp_path, env, capsys, command):
    data = tmp_path / "nowhere"
    assert main([*command, "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"timmy init --data {data}" in err


def test_a_bad_config_names_the_file_and_key(tmp_path, env, capsys):
    data = tmp_path / "node"
    init(data)
    (data / "node.toml").write_text("[relay]\nprot = 1\n")
    capsys.readouterr()
    assert main(["keys", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("timmy: error: ")
    assert str(data / "node.toml") in err
    assert "relay.prot" in err


def test_run_with_a_wrong_passphrase_exits_2(tmp_path, env, capsys):
    data = tmp_path / "node"
    init(data)
    env.setenv(PASSPHRASE_ENV, "not the one")
    assert main(["run", "--data", str(data)]) == 2
    assert "wrong passphrase" in capsys.readouterr().err


def test_run_with_a_missing_agent_key_exits_2(tmp_path, env, capsys):
    data = tmp_path / "node"
    init(data)
    (data / "node.toml").write_text('[[agents]]\nname = "echo"\n')
    assert main(["run", "--data", str(data)]) == 2
    assert "no key 'agent-echo'" in capsys.readouterr().err


def test_a_bad_flag_value_says_it_came_from_the_command_line(tmp_path, env, capsys):
    data = tmp_path / "node"
    init(data)
    assert main(["run", "--data", str(data), "--federate", "http://x"]) == 2
    assert "command line: federation.relays[0]" in capsys.readouterr().err


# --- running (needs the relay package) -----------------------------------------------


class Process:
    """A ``timmy`` subprocess whose stderr lines we can wait for."""

    def __init__(self, *argv, env):
        self.proc = subprocess.Popen(
            [*TIMMY, *argv],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_for(self, pattern, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        self.proc.kill()
        raise AssertionError(f"no {pattern!r} in:\n{''.join(self.seen)}")

    def stop(self, sig):
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=15)
        time.sleep(0.1)  # let the reader thread drain the pipe
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


def needs_relay():
    pytest.importorskip("relay.server")
    pytest.importorskip("relay.store.sqlite")


def relay_info(url):
    http = url.replace("ws://", "http://")
    request = urllib.request.Request(http, headers={"Accept": "application/nostr+json"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read())


def test_run_serves_until_sigterm(tmp_path, env):
    needs_relay()
    data = tmp_path / "node"
    init(data)
    child_env = {**os.environ, PASSPHRASE_ENV: PASS}
    node = Process("run", "--data", str(data), "--relay-port", "0", "--web-port", "0", env=child_env)
    url = node.wait_for(r"relay ready at (ws://\S+),").group(1)
    node.wait_for("node running")
    node_hex = Keystore(data).load("node", PASS).public_key().to_hex()
    assert relay_info(url)["pubkey"] == node_hex  # the node key is the NIP-11 operator
    assert node.stop(signal.SIGTERM) == 0
    log = "".join(node.seen)
    assert "node stopped" in log
    assert (data / "relay.sqlite3").exists()
    for secret in secrets_of(data):
        assert secret not in log


def test_relay_alone_needs_no_passphrase_and_stops_on_sigint(tmp_path, env):
    needs_relay()
    data = tmp_path / "node"
    init(data)
    child_env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    relay = Process("relay", "--data", str(data), "--port", "0", env=child_env)
    relay.wait_for("node running")
    assert relay.stop(signal.SIGINT) == 0
    assert "node stopped" in "".join(relay.seen)


def test_a_busy_port_is_a_one_line_error(tmp_path, env, capsys):
    needs_relay()
    data = tmp_path / "node"
    init(data)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["relay", "--data", str(data), "--port", str(port)]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("timmy: error: relay did not start:")
