"""Relay settings: limits, access rules and the NIP-11 identity.

Plain data, filled from the ``[relay]`` section of ``node.toml`` by
``node.config``. Every limit here is enforced by ``relay.policies`` and
advertised in the NIP-11 ``limitation`` block, so what we say is what we do.
A rate of 0 means "no limit".
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RelayLimits:
    max_message_length: int = 131_072  # bytes of one websocket message
    max_subscriptions: int = 64  # open subscriptions per connection
    max_filters: int = 16  # filters in one REQ or COUNT
    max_filter_values: int = 1_000  # values in one list of a filter (ids, authors, #x ...)
    max_limit: int = 5_000  # a filter's limit is clamped to this
    default_limit: int = 500  # events returned for a filter without limit
    max_subid_length: int = 64
    max_event_tags: int = 2_000
    max_content_length: int = 65_536  # unicode characters
    created_at_lower_limit: int = 94_608_000  # seconds into the past accepted (3 years)
    created_at_upper_limit: int = 900  # seconds into the future accepted
    events_per_minute_per_ip: int = 1_200
    events_per_minute_per_pubkey: int = 600
    reqs_per_minute_per_ip: int = 1_200
    max_connections_per_ip: int = 200


@dataclass(frozen=True, slots=True)
class AuthRules:
    """NIP-42 and NIP-70 rules.

    ``write_pubkeys``/``read_pubkeys``: when not empty, only these authenticated
    keys may write / read (``restricted:`` otherwise). ``auth_required_for_*``
    asks every client to AUTH first (``auth-required:``).
    """

    auth_required_for_writes: bool = False
    auth_required_for_reads: bool = False
    write_pubkeys: frozenset[str] = frozenset()
    read_pubkeys: frozenset[str] = frozenset()
    # Kinds only their author or a tagged party may read once authenticated (DMs, gift wraps).
    private_kinds: frozenset[int] = frozenset({4, 1059})
    auth_window_seconds: int = 600  # NIP-42: created_at "within ~10 minutes"


@dataclass(frozen=True, slots=True)
class RelaySettings:
    host: str = "127.0.0.1"
    port: int = 7777
    # The URL clients use to reach us; NIP-42 AUTH events must name it. Empty: ws://host:port
    public_url: str = ""
    name: str = "Timmy relay"
    description: str = "The embedded relay of a Timmy node: federation bus and audit log."
    operator_pubkey: str = ""  # NIP-11 pubkey (hex), usually the node key
    contact: str = ""
    limits: RelayLimits = field(default_factory=RelayLimits)
    auth: AuthRules = field(default_factory=AuthRules)
    purge_interval_seconds: int = 60  # how often expired events are deleted (NIP-40)
    sqlite_synchronous: str = "FULL"  # FULL: OK true survives power loss; NORMAL: process crash

    @property
    def url(self) -> str:
        return self.public_url or f"ws://{self.host}:{self.port}"
