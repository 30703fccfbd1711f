"""The node's agents: who serves which kinds, at what price, and what they announce.

An :class:`Agent` joins a config entry, its unlocked key and the handlers of
its kinds. The announcement builders return signed events; the engine decides
when to publish them. Announcements (DESIGN.md section 4, issue "Agents"):

* kind 0 profile (NIP-01/05): name, about, picture, ``nip05``;
* kind 10002 relay list (NIP-65): the relays where the agent reads and writes;
* kind 31990 handler (NIP-89): one ``k`` per available kind, prices;
* kind 30078 heartbeat (NIP-78 app data, ``d`` = ``timmy:heartbeat``) with a
  NIP-40 expiration three intervals ahead: present means alive
  (``docs/protocol/heartbeat.md``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from dvm.handlers import Handler
from nips.nip01 import Event, Signer
from nips.nip89 import HANDLER_KIND, HandlerInfo, handler_content, handler_tags
from nips.nip90 import JobRequest
from node.config import AgentConfig

log = logging.getLogger(__name__)

PROFILE_KIND = 0
RELAY_LIST_KIND = 10002
HEARTBEAT_KIND = 30078
HEARTBEAT_D = "timmy:heartbeat"
HEARTBEAT_LIFETIMES = 3  # a heartbeat expires after this many intervals
DELETION_KIND = 5


class AgentSetupError(Exception):
    """Raised when an agent's handler settings are unusable; names the agent and key."""


@dataclass(eq=False)
class Agent:
    config: AgentConfig
    signer: Signer
    handlers: dict[int, Handler]  # the kinds it serves now
    unavailable: dict[int, str] = field(default_factory=dict)  # kind -> why not served
    slots: asyncio.Semaphore = field(init=False)
    running: int = 0
    paused: bool = False  # set by the operator: takes no new jobs, announces itself paused

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.config.concurrency)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def pubkey(self) -> str:
        return self.signer.pubkey

    def settings_for(self, handler: Handler) -> Mapping[str, str | int | float | bool]:
        return self.config.settings.get(handler.name, {})

    def ask_msat(self, request: JobRequest) -> int:
        """The agent's price for this job: its declared cost model, which is also its bid."""
        size = sum(len(i.data.encode()) for i in request.inputs)
        return self.config.price_msat + self.config.price_per_kb_msat * math.ceil(size / 1024)


def build_agents(
    configs: Sequence[AgentConfig], signers: Mapping[str, Signer], handlers: Mapping[int, Handler]
) -> list[Agent]:
    agents = []
    for config in configs:
        served: dict[int, Handler] = {}
        unavailable: dict[int, str] = {}
        for name in config.settings:
            if name not in {h.name for h in handlers.values()}:
                raise AgentSetupError(f"agent {config.name}: settings.{name}: no handler has that name")
        for kind in config.kinds:
            handler = handlers.get(kind)
            if handler is None:
                unavailable[kind] = "no handler for this kind in this node"
                continue
            settings = config.settings.get(handler.name, {})
            try:
                handler.check_settings(settings)
            except ValueError as exc:
                raise AgentSetupError(f"agent {config.name}: settings.{handler.name}: {exc}") from None
            reason = handler.unavailable(settings)
            if reason:
                unavailable[kind] = reason
            else:
                served[kind] = handler
        for kind, reason in unavailable.items():
            log.warning("agent %s does not serve kind %d: %s", config.name, kind, reason)
        agents.append(Agent(config, signers[config.name], served, unavailable))
    return agents


@dataclass(frozen=True, slots=True)
class LocalAward:
    winner: Agent
    ask_msat: int
    price_msat: int


def local_auction(
    agents: Sequence[Agent], request: JobRequest, reputation: Callable[[str], float] | None = None
) -> LocalAward | None:
    """Sealed-bid second-price auction among this node's agents for one request.

    Bids are the agents' asks (their declared cost models). The lowest ask
    within the customer's ``bid`` wins; it is paid the second-lowest ask, or
    its own when it is alone. Ties go to the higher reputation, then to the
    lower public key, which every node computes the same way. None when no
    ask fits the customer's bid.
    """
    rep = reputation or (lambda pubkey: 0.0)
    asks = sorted((agent.ask_msat(request), -rep(agent.pubkey), agent.pubkey, agent) for agent in agents)
    if request.bid_msat is not None:
        asks = [a for a in asks if a[0] <= request.bid_msat]
    if not asks:
        return None
    ask, _, _, winner = asks[0]
    price = asks[1][0] if len(asks) > 1 else ask
    return LocalAward(winner, ask, price)


# --- announcements -------------------------------------------------------------


def announcement_events(
    agent: Agent,
    *,
    node_pubkey: str,
    relays: Sequence[str],
    nip05: str = "",
    lud16: str = "",
    bolt12: str = "",
    now: int,
) -> list[Event]:
    """Profile, relay list and handler announcement, signed by the agent.

    The profile carries ``lud16`` (NIP-57 zaps) and, without a standard field
    for it, the agent's BOLT12 offer as ``bolt12``.
    """
    cfg = agent.config
    profile: dict[str, str] = {"name": cfg.name, "about": cfg.about}
    if cfg.picture:
        profile["picture"] = cfg.picture
    if nip05:
        profile["nip05"] = nip05
    if lud16:
        profile["lud16"] = lud16
    if bolt12:
        profile["bolt12"] = bolt12
    info = HandlerInfo(
        pubkey=agent.pubkey,
        d=handler_d(agent),
        kinds=tuple(sorted(agent.handlers)),
        name=cfg.name,
        about=cfg.about,
        picture=cfg.picture,
        encryption_supported=True,
        relays=tuple(relays),
        node=node_pubkey,
        price_msat=cfg.price_msat,
        price_per_kb_msat=cfg.price_per_kb_msat,
        bolt12=bolt12,
    )
    sign = agent.signer.sign
    return [
        sign(PROFILE_KIND, orjson.dumps(profile, option=orjson.OPT_SORT_KEYS).decode(), [], created_at=now),
        sign(RELAY_LIST_KIND, "", [["r", url] for url in relays], created_at=now),
        sign(HANDLER_KIND, handler_content(info), handler_tags(info), created_at=now),
    ]


def handler_d(agent: Agent) -> str:
    """A stable ``d`` for the agent's one 31990 event: derived from its key, so it never changes."""
    return "timmy-" + agent.pubkey[:16]


def digest(events: Sequence[Event]) -> str:
    """What changed in an announcement set, ignoring timestamps and signatures."""
    h = hashlib.sha256()
    for event in events:
        h.update(orjson.dumps([event.kind, event.tags, event.content]))
    return h.hexdigest()


def heartbeat_event(agent: Agent, *, interval: int, now: int, online: bool = True) -> Event:
    """The agent's liveness beat; ``online=False`` is the last one, sent on a clean stop.

    The last beat has no expiration: it stays on the relay saying "offline"
    until the agent's next start replaces it.
    """
    status = {
        "status": ("paused" if agent.paused else "online") if online else "offline",
        "kinds": sorted(agent.handlers),
        "running": agent.running,
    }
    tags = [["d", HEARTBEAT_D]]
    if online:
        tags.append(["expiration", str(now + HEARTBEAT_LIFETIMES * interval)])
    tags.append(["a", f"{HANDLER_KIND}:{agent.pubkey}:{handler_d(agent)}"])
    return agent.signer.sign(HEARTBEAT_KIND, orjson.dumps(status).decode(), tags, created_at=now)


def retraction_event(signer: Signer, *, d: str, event_id: str, now: int) -> Event:
    """NIP-09 deletion of an announcement whose agent left the config."""
    tags = [["e", event_id], ["a", f"{HANDLER_KIND}:{signer.pubkey}:{d}"], ["k", str(HANDLER_KIND)]]
    return signer.sign(DELETION_KIND, "agent removed from this node", tags, created_at=now)
