"""``timmy``: the command line of a Timmy node.

    timmy init  --data DIR [--dev-passphrase] [--log-n N]
    timmy run   --data DIR [--relay-port N] [--web-port N] [--federate URL ...]
    timmy relay --data DIR [--port N]
    timmy keys  --data DIR

Only the standard library is imported at module level, so ``timmy --help``
answers at once; each command imports the node's modules (nostr_sdk, asyncio,
the relay) when it runs. Problems the user can fix (a bad node.toml, a wrong
passphrase, a data dir that was never initialised) print one line to stderr
and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nostr_sdk import Keys

    from node.config import NodeConfig
    from node.keys import Keystore, Passphrase

log = logging.getLogger(__name__)

CONFIG_FILE = "node.toml"
DEFAULT_DATA = Path(".timmy")
EXIT_USAGE = 2  # argparse's status for bad usage; ours for anything the user must fix
EXIT_FAILURE = 1


class CliError(Exception):
    """Raised for a problem the user can fix; printed as one line, exit status 2."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from node.app import StartupError
    from node.config import ConfigError
    from node.keys import KeystoreError

    try:
        return int(args.command(args))
    except (CliError, ConfigError, KeystoreError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except StartupError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:  # Ctrl-C at a passphrase prompt
        return _fail("interrupted", 130)


def _fail(message: str, status: int) -> int:
    from node.log import redact

    print(f"timmy: error: {redact(message)}", file=sys.stderr)
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="timmy",
        description="A Nostr-native federated agent network node.",
        epilog="Start with `timmy init`; `timmy COMMAND --help` shows a command's options.",
    )
    parser.add_argument("--version", action=_Version)
    parser.set_defaults(command=None)
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        metavar="DIR",
        help=f"the node's data directory (default: {DEFAULT_DATA})",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_init(commands, data)
    _add_run(commands, data)
    _add_relay(commands, data)
    keys = commands.add_parser(
        "keys", parents=[data], help="print the node's and agents' public keys (npub)"
    )
    keys.set_defaults(command=cmd_keys)
    return parser


def _add_init(commands: Any, data: argparse.ArgumentParser) -> None:
    init = commands.add_parser(
        "init",
        parents=[data],
        help="create the data dir, node.toml and the encrypted keys",
        description="Create DIR/node.toml if absent and every missing key (the node's and "
        "one per agent), encrypted with NIP-49. The passphrase comes from TIMMY_PASSPHRASE "
        "or a prompt. Safe to run again: it only adds what is missing.",
    )
    init.add_argument(
        "--dev-passphrase",
        action="store_true",
        help="for development only: generate a random passphrase and store it in clear "
        "in DIR/dev-passphrase (mode 0600), so the node starts without asking",
    )
    init.add_argument(
        "--log-n",
        type=_log_n,
        default=16,
        metavar="N",
        help="scrypt cost of new keys, 8-22 (default 16: 64 MiB and ~0.5 s per key; "
        "each step doubles both)",
    )
    init.set_defaults(command=cmd_init)


def _add_run(commands: Any, data: argparse.ArgumentParser) -> None:
    run = commands.add_parser(
        "run",
        parents=[data],
        help="run the node (for now: its relay)",
        description="Unlock the keys and run the node until SIGINT or SIGTERM. "
        "Flags override node.toml for this run.",
    )
    run.add_argument("--relay-port", type=int, metavar="N", help="the relay's port (0: any free)")
    run.add_argument("--web-port", type=int, metavar="N", help="the web app's port")
    run.add_argument(
        "--federate",
        nargs="+",
        action="extend",
        metavar="URL",
        help="federate over these relays (ws:// or wss://) instead of node.toml's list",
    )
    run.set_defaults(command=cmd_run)


def _add_relay(commands: Any, data: argparse.ArgumentParser) -> None:
    relay = commands.add_parser(
        "relay",
        parents=[data],
        help="run the relay alone (needs no passphrase)",
        description="Run only the embedded relay, configured by node.toml's [relay].",
    )
    relay.add_argument("--port", type=int, metavar="N", help="the relay's port (0: any free)")
    relay.set_defaults(command=cmd_relay)


class _Version(argparse.Action):
    """``--version``, reading the installed version only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("timmy-node")
        except PackageNotFoundError:
            text = "unknown (not installed)"
        print(f"timmy {text}")
        parser.exit()


def _log_n(text: str) -> int:
    value = int(text)
    if not 8 <= value <= 22:
        raise argparse.ArgumentTypeError(f"{value} is outside 8-22")
    return value


# --- commands --------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from node import config as node_config
    from node import keys
    from node.log import setup_logging

    setup_logging()
    data: Path = args.data
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    config_path = data / CONFIG_FILE
    if config_path.exists():
        log.info("keeping the existing %s", config_path)
    else:
        # 0600 like the keys: node.toml will hold wallet connection strings one day.
        keys.write_private(config_path, node_config.default_toml())
        log.info("wrote %s", config_path)
    config = node_config.load(config_path)
    setup_logging(config.logging.level)
    store = keys.Keystore(data, log_n=args.log_n)
    missing = [name for name in _key_names(config) if not store.exists(name)]
    if missing:
        passphrase = _init_passphrase(args, store)
        for name in missing:
            log.info("created key %s: %s", name, store.create(name, passphrase))
    _print_keys(config, store, data)
    return 0


def _init_passphrase(args: argparse.Namespace, store: Keystore) -> Passphrase:
    """The passphrase for new keys; the same one as the existing keys, checked."""
    from node import keys
    from node.log import register_secret

    existing = store.names()
    if not args.dev_passphrase:
        passphrase = keys.resolve_passphrase(args.data, confirm=not existing)
    elif (args.data / keys.DEV_PASSPHRASE_FILE).exists():
        passphrase = keys.read_dev_passphrase(args.data)
    elif existing:
        raise CliError(
            f"{store.dir} already holds keys under another passphrase; drop --dev-passphrase"
        )
    else:
        passphrase = keys.create_dev_passphrase(args.data)
    register_secret(passphrase.secret)
    if existing:
        store.load(existing[0], passphrase)  # all keys share one passphrase
    return passphrase


def cmd_run(args: argparse.Namespace) -> int:
    from node import app
    from node.log import setup_logging

    config = _load_config(args.data).with_overrides(
        relay_port=args.relay_port, web_port=args.web_port, federate=args.federate
    )
    setup_logging(config.logging.level)
    identities = _unlock(config, args.data)
    return app.run(app.node_parts(config, args.data, identities))


def _unlock(config: NodeConfig, data: Path) -> dict[str, Keys]:
    from node import keys
    from node.log import register_secret

    store = keys.Keystore(data)
    names = _key_names(config)
    for name in names:
        if not store.exists(name):
            raise CliError(
                f"no key {name!r} in {store.dir}: create it with `timmy init --data {data}`"
            )
    passphrase = keys.resolve_passphrase(data)
    register_secret(passphrase.secret)
    identities = {}
    for name in names:
        identities[name] = store.load(name, passphrase)
        register_secret(identities[name].secret_key().to_hex())
    log.info("unlocked %d keys (%s)", len(names), passphrase.source)
    return identities


def cmd_relay(args: argparse.Namespace) -> int:
    from nostr_sdk import PublicKey

    from node import app, keys
    from node.log import setup_logging

    config = _load_config(args.data).with_overrides(relay_port=args.port)
    setup_logging(config.logging.level)
    store = keys.Keystore(args.data)
    node_hex = ""
    if store.exists(keys.NODE_KEY):
        node_hex = PublicKey.parse(store.public_key(keys.NODE_KEY)).to_hex()
    relay = app.EmbeddedRelay(app.relay_settings(config, node_hex), args.data / app.RELAY_DB)
    return app.run([relay])


def cmd_keys(args: argparse.Namespace) -> int:
    from node.keys import Keystore

    _print_keys(_load_config(args.data), Keystore(args.data), args.data)
    return 0


def _print_keys(config: NodeConfig, store: Keystore, data: Path) -> None:
    """One line per key: role, name, npub; configured keys first, then leftovers."""
    from node.keys import NODE_KEY, agent_key_name

    rows = [("node", config.node.name, NODE_KEY)]
    rows += [("agent", agent.name, agent_key_name(agent.name)) for agent in config.agents]
    configured = {key for _, _, key in rows}
    leftovers = [name for name in store.names() if name not in configured]
    width = max(len(name) for _, name, _ in rows)
    for role, name, key in rows:
        npub = (
            store.public_key(key)
            if store.exists(key)
            else f"(no key: run `timmy init --data {data}`)"
        )
        print(f"{role:<5}  {name:<{width}}  {npub}")
    for key in leftovers:
        print(f"{'-':<5}  {key:<{width}}  {store.public_key(key)}  (not in {CONFIG_FILE})")


def _key_names(config: NodeConfig) -> list[str]:
    from node.keys import NODE_KEY, agent_key_name

    return [NODE_KEY] + [agent_key_name(agent.name) for agent in config.agents]


def _load_config(data: Path) -> NodeConfig:
    from node.config import load

    path = data / CONFIG_FILE
    if not path.exists():
        raise CliError(f"no {path}: create the node with `timmy init --data {data}`")
    return load(path)


if __name__ == "__main__":
    sys.exit(main())
