"""The node's configuration: ``node.toml`` parsed into typed, frozen dataclasses.

The dataclass defaults are the built-in configuration. ``node/defaults.toml``
(package data, copied to the repo root as ``node.toml`` and to ``DIR/node.toml``
by ``timmy init``) spells out the same values with comments; tests keep the
three equal.

Loading is strict: an unknown key, a wrong type or an out-of-range value raises
:class:`ConfigError` naming the file and the key, because a silently ignored
typo in a limit or an access rule is worse than a refusal to start.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from relay.settings import AuthRules, RelayLimits, RelaySettings

DEFAULTS_RESOURCE = "defaults.toml"


class ConfigError(Exception):
    """Raised when a configuration file cannot be read or holds a bad value."""


@dataclass(frozen=True, slots=True)
class NodeSection:
    name: str = "timmy"


@dataclass(frozen=True, slots=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # how others reach it; "" means http://host:port
    operators: tuple[str, ...] = ()  # npub/hex allowed on the operator pages

    def base_url(self, port: int | None = None) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port if port is None else port}"


@dataclass(frozen=True, slots=True)
class FederationSettings:
    relays: tuple[str, ...] = ()


Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class AgentConfig:
    name: str
    about: str = ""
    picture: str = ""  # URL of the agent's avatar (kind 0 `picture`)
    kinds: tuple[int, ...] = ()  # NIP-90 job request kinds served
    # What the agent asks per job, in millisats: price_msat plus
    # price_per_kb_msat for each started KiB of input. This is also its sealed
    # bid in auctions (bidding one's true cost is the best strategy there).
    price_msat: int = 0
    price_per_kb_msat: int = 0
    concurrency: int = 4  # jobs run at once
    time_limit_seconds: float = 60.0  # a job still running then fails with a 7000 error
    # Handler settings by handler name, e.g. settings.textgen = { endpoint = "..." }.
    settings: Mapping[str, Mapping[str, Scalar]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    # Agents publish a NIP-40-expiring heartbeat this often (docs/protocol/heartbeat.md).
    heartbeat_seconds: int = 60
    # A request older than this when first seen is ignored (the node may have been
    # down); this also bounds how far back the engine reads after a restart.
    max_request_age_seconds: int = 900
    # Text inputs (after decryption) larger than this get a 7000 error.
    max_input_bytes: int = 65536
    # Unpaid (payment-required) and waiting (chained) jobs expire after this.
    wait_limit_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class ReputationSettings:
    # Trust flows from these keys (hex or npub) through follows and
    # attestations. Empty means the node's own key.
    roots: tuple[str, ...] = ()
    # Publish NIP-85 kind 30382 rank assertions for the agents the node knows.
    publish_assertions: bool = True


WALLET_BACKENDS = ("dev", "cln", "lnd", "nwc")


@dataclass(frozen=True, slots=True)
class WalletSettings:
    backend: str = "dev"
    # Invoices quoted for jobs expire with the job's wait (engine.wait_limit_seconds).
    cln_rpc: str = ""  # path to Core Lightning's lightning-rpc socket
    lnd_host: str = "127.0.0.1:10009"
    lnd_tls_cert: str = ""  # path
    lnd_macaroon: str = ""  # path to an invoice+offchain macaroon
    # The NWC connection string holds a secret: it comes from this environment variable.
    nwc_uri_env: str = "TIMMY_NWC_URI"


@dataclass(frozen=True, slots=True)
class BlobSettings:
    # Blossom (BUD-01/02) in the web app; blobs live in DATA/blobs/.
    max_bytes: int = 50 * 1024 * 1024  # one upload (and one fetched job input)
    # Who may upload: [] means any key with a valid kind 24242 authorization.
    upload_pubkeys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelSettings:
    # Where `timmy models install` puts the voice models; "" means
    # $TIMMY_MODELS_DIR or ~/.local/share/timmy/models.
    dir: str = ""


@dataclass(frozen=True, slots=True)
class MemorySettings:
    # Semantic memory: embeddings of the events the home relay stores, searched
    # by kind 5302 jobs. Kinds indexed as they arrive.
    enabled: bool = True
    kinds: tuple[int, ...] = (1, 30023, 6000, 6001, 6050, 30078)


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "INFO"


DEFAULT_AGENTS = (
    AgentConfig("summarizer", "Summarizes text and notes.", kinds=(5001,)),
    AgentConfig("pow", "Computes proof-of-work (NIP-13) for events.", kinds=(5970,)),
    AgentConfig(
        "reputation",
        "Answers 'verify reputation' (kind 5312) from this node's web of trust.",
        kinds=(5312,),
    ),
    AgentConfig(
        "writer",
        "Writes text with a language model (needs settings.textgen.endpoint).",
        kinds=(5050,),
        settings={"textgen": {"endpoint": "", "model": ""}},
    ),
    AgentConfig(
        "listener",
        "Transcribes speech to text, offline (Whisper).",
        kinds=(5000,),
        time_limit_seconds=300.0,
        concurrency=1,
    ),
    AgentConfig(
        "speaker",
        "Reads text aloud, offline (Kokoro); answers with a Blossom URL.",
        kinds=(5250,),
        time_limit_seconds=300.0,
        concurrency=1,
    ),
    AgentConfig("librarian", "Searches the notes and results this node has seen, by meaning.", kinds=(5302,)),
)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node: NodeSection = field(default_factory=NodeSection)
    relay: RelaySettings = field(default_factory=RelaySettings)
    web: WebSettings = field(default_factory=WebSettings)
    federation: FederationSettings = field(default_factory=FederationSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    wallet: WalletSettings = field(default_factory=WalletSettings)
    reputation: ReputationSettings = field(default_factory=ReputationSettings)
    blobs: BlobSettings = field(default_factory=BlobSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    agents: tuple[AgentConfig, ...] = DEFAULT_AGENTS
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    def with_overrides(
        self,
        *,
        relay_port: int | None = None,
        web_port: int | None = None,
        federate: typing.Sequence[str] | None = None,
    ) -> NodeConfig:
        """Apply command-line flags; ``None`` keeps the file's value.

        ``federate`` replaces the configured relay list rather than adding to
        it, so a flag always says exactly what the run uses.
        """
        config = self
        if relay_port is not None:
            config = dataclasses.replace(
                config, relay=dataclasses.replace(config.relay, port=relay_port)
            )
        if web_port is not None:
            config = dataclasses.replace(config, web=dataclasses.replace(config.web, port=web_port))
        if federate is not None:
            config = dataclasses.replace(config, federation=FederationSettings(tuple(federate)))
        try:
            _validate(config)
        except ConfigError as exc:
            raise ConfigError(f"command line: {exc}") from None
        return config


def default_toml() -> str:
    """The commented default ``node.toml`` that ``timmy init`` writes."""
    return resources.files("node").joinpath(DEFAULTS_RESOURCE).read_text(encoding="utf-8")


def load(path: Path) -> NodeConfig:
    """Read and check ``path``; raises :class:`ConfigError` with the file name in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return loads(text, source=str(path))


def loads(text: str, *, source: str = "node.toml") -> NodeConfig:
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    try:
        config = _normalized(_build(NodeConfig, table, ""))
        _validate(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


# --- TOML tables -> dataclasses, driven by the dataclasses' type hints ---------
# Generic on purpose: a field added to RelayLimits is configurable at once,
# with the same type checks, without touching this module.


def _build(cls: type, table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{where or 'top level'}: expected a table, got {_describe(table)}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in table:
        if key not in known:
            raise ConfigError(f"unknown key {_join(where, key)!r}{_did_you_mean(key, known)}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in table
    ]
    if missing:
        raise ConfigError(f"{_join(where, missing[0])}: required key is missing")
    values = {key: _convert(hints[key], value, _join(where, key)) for key, value in table.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Mapping:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {_describe(value)}")
        return {key: _convert(args[1], item, _join(where, key)) for key, item in value.items()}
    if hint == Scalar:
        if isinstance(value, (list, dict)):
            raise ConfigError(f"{where}: expected a string, number or boolean, got {_describe(value)}")
        return value
    if origin in (tuple, frozenset):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected an array, got {_describe(value)}")
        items = (_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
        return origin(items)
    return _scalar(hint, value, where)


_TOML_NAMES = {str: "a string", int: "an integer", bool: "a boolean", float: "a number"}


def _scalar(hint: type, value: Any, where: str) -> Any:
    # bool is an int subclass in Python, but `port = true` is a mistake in TOML.
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise ConfigError(f"{where}: expected {_TOML_NAMES[hint]}, got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    kind = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)
    shown = str(value).lower() if isinstance(value, bool) else repr(value)  # TOML spells true
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{kind} {shown}" if kind != "table" else "a table"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


# --- value checks the types cannot express -------------------------------------

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_AGENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # also a file name in keys/
_HEX_KEY = re.compile(r"[0-9a-f]{64}")


def _validate(config: NodeConfig) -> None:
    _check_port("relay.port", config.relay.port)
    _check_port("web.port", config.web.port)
    if config.web.public_url and not re.fullmatch(r"https?://[^\s/]+", config.web.public_url.rstrip("/")):
        raise ConfigError(f"web.public_url: {config.web.public_url!r} is not an http(s)://host[:port] URL")
    _check_relay(config.relay)
    for i, url in enumerate(config.federation.relays):
        _check_ws_url(f"federation.relays[{i}]", url)
    _check_agents(config.agents)
    _check_non_negative("engine", config.engine)
    _check_wallet(config.wallet)
    if config.engine.heartbeat_seconds < 1:
        raise ConfigError("engine.heartbeat_seconds: must be at least 1")
    if config.logging.level not in _LEVELS:
        raise ConfigError(f"logging.level: expected one of {', '.join(_LEVELS)}")
    if config.blobs.max_bytes < 1:
        raise ConfigError("blobs.max_bytes: must be at least 1")
    for i, kind in enumerate(config.memory.kinds):
        if not 0 <= kind <= 65535:
            raise ConfigError(f"memory.kinds[{i}]: {kind} is not an event kind (0-65535)")


def _normalized(config: NodeConfig) -> NodeConfig:
    """Public keys to hex (the file may use npub), log level to upper case."""
    relay, auth = config.relay, config.relay.auth
    auth = dataclasses.replace(
        auth,
        write_pubkeys=frozenset(
            _pubkey_hex("relay.auth.write_pubkeys", k) for k in auth.write_pubkeys
        ),
        read_pubkeys=frozenset(
            _pubkey_hex("relay.auth.read_pubkeys", k) for k in auth.read_pubkeys
        ),
    )
    operator = relay.operator_pubkey and _pubkey_hex("relay.operator_pubkey", relay.operator_pubkey)
    roots = tuple(_pubkey_hex(f"reputation.roots[{i}]", k) for i, k in enumerate(config.reputation.roots))
    operators = tuple(_pubkey_hex(f"web.operators[{i}]", k) for i, k in enumerate(config.web.operators))
    uploaders = tuple(
        _pubkey_hex(f"blobs.upload_pubkeys[{i}]", k) for i, k in enumerate(config.blobs.upload_pubkeys)
    )
    return dataclasses.replace(
        config,
        blobs=dataclasses.replace(config.blobs, upload_pubkeys=uploaders),
        web=dataclasses.replace(config.web, operators=operators),
        reputation=dataclasses.replace(config.reputation, roots=roots),
        relay=dataclasses.replace(relay, auth=auth, operator_pubkey=operator),
        logging=LoggingSettings(config.logging.level.upper()),
    )


def _check_relay(relay: RelaySettings) -> None:
    if relay.public_url:
        _check_ws_url("relay.public_url", relay.public_url)
    if relay.sqlite_synchronous not in ("FULL", "NORMAL"):
        raise ConfigError('relay.sqlite_synchronous: expected "FULL" or "NORMAL"')
    if relay.purge_interval_seconds <= 0:
        raise ConfigError("relay.purge_interval_seconds: must be positive")
    _check_non_negative("relay.limits", relay.limits)
    _check_non_negative("relay.auth", relay.auth)


def _check_non_negative(where: str, section: RelayLimits | AuthRules | EngineSettings) -> None:
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{where}.{f.name}: must not be negative, got {value}")


def _check_agents(agents: tuple[AgentConfig, ...]) -> None:
    seen: set[str] = set()
    for i, agent in enumerate(agents):
        where = f"agents[{i}]"
        if not _AGENT_NAME.fullmatch(agent.name):
            raise ConfigError(
                f"{where}.name: {agent.name!r} must be 1-32 of a-z, 0-9, '-', '_' "
                "(it names the agent's key file)"
            )
        if agent.name in seen:
            raise ConfigError(f"{where}.name: {agent.name!r} is used twice")
        seen.add(agent.name)
        for kind in agent.kinds:
            if not 5000 <= kind <= 5999:
                raise ConfigError(
                    f"{where}.kinds: {kind} is not a NIP-90 job request kind (5000-5999)"
                )
        if agent.concurrency < 1:
            raise ConfigError(f"{where}.concurrency: must be at least 1")
        if agent.time_limit_seconds <= 0:
            raise ConfigError(f"{where}.time_limit_seconds: must be positive")
        if agent.price_msat < 0 or agent.price_per_kb_msat < 0:
            raise ConfigError(f"{where}: prices must not be negative")


def _check_wallet(wallet: WalletSettings) -> None:
    if wallet.backend not in WALLET_BACKENDS:
        raise ConfigError(f"wallet.backend: expected one of {', '.join(WALLET_BACKENDS)}, got {wallet.backend!r}")
    needed = {
        "cln": ("cln_rpc",),
        "lnd": ("lnd_host", "lnd_tls_cert", "lnd_macaroon"),
        "nwc": ("nwc_uri_env",),
    }.get(wallet.backend, ())
    for key in needed:
        if not getattr(wallet, key):
            raise ConfigError(f"wallet.{key}: required by the {wallet.backend} backend")


def _check_port(where: str, port: int) -> None:
    if not 0 <= port <= 65535:  # 0 asks the OS for a free port
        raise ConfigError(f"{where}: {port} is not a port number (0-65535)")


def _check_ws_url(where: str, url: str) -> None:
    if not re.fullmatch(r"wss?://[^\s/]+(/\S*)?", url):
        raise ConfigError(f"{where}: {url!r} is not a ws:// or wss:// URL")


def _pubkey_hex(where: str, key: str) -> str:
    if _HEX_KEY.fullmatch(key):
        return key
    if not key.startswith("npub1"):
        raise ConfigError(f"{where}: {key!r} is not a public key (64 lowercase hex or npub)")
    # nostr_sdk costs ~150 ms to import; only pay for it when an npub needs decoding.
    from nostr_sdk import PublicKey

    try:
        hex_key: str = PublicKey.parse(key).to_hex()
    except Exception as exc:  # nostr_sdk raises its own error tree
        raise ConfigError(f"{where}: {key!r} is not a valid npub") from exc
    return hex_key
