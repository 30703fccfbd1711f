"""Write and read policies: small hook functions the relay runs on every message.

Each factory returns a hook; a hook returns ``None`` to let a message through or
a :class:`Rejected` carrying the NIP-01 machine-readable prefix. The config
picks the hooks (:func:`default_policies`), in the spirit of khatru's
``RejectEvent`` lists. Pure: the clock is passed in.

Write hooks come in two phases. ``before_signature`` hooks are cheap rules on
the event's shape and the connection; ``after_signature`` hooks key on the
event's author, so they run only once the signature is known good -- otherwise
anyone could spend somebody else's rate limit with forged events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nips.nip01 import Event, Filter, KindClass
from relay.settings import RelaySettings


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refusal, sent as ``OK false`` / ``CLOSED`` with ``prefix: reason``."""

    prefix: str  # invalid, blocked, rate-limited, auth-required, restricted, error
    reason: str

    @property
    def message(self) -> str:
        return f"{self.prefix}: {self.reason}"


@dataclass(slots=True)
class Session:
    """What policies may know about a connection."""

    conn_id: int
    ip: str
    authed: set[str] = field(default_factory=set)  # pubkeys proven with NIP-42


WritePolicy = Callable[[Event, Session, float], Rejected | None]
ReadPolicy = Callable[[Sequence[Filter], Session, float], Rejected | None]


class RateLimiter:
    """Token buckets keyed by IP or pubkey: ``per_minute`` sustained, a minute's worth of burst."""

    def __init__(self, per_minute: int, *, max_keys: int = 100_000) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)

    def allow(self, key: str, now: float) -> bool:
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_second)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._forget_full_buckets(now)
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def _forget_full_buckets(self, now: float) -> None:
        # A bucket that has refilled holds no information; dropping it bounds memory.
        full_after = self.capacity / self.refill_per_second if self.refill_per_second else 0.0
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


# --- write hooks, before the signature check ---------------------------------------


def max_event_tags(limit: int) -> WritePolicy:
    def check(event: Event, session: Session, now: float) -> Rejected | None:
        if len(event.tags) > limit:
            return Rejected(
                "invalid", f"event has {len(event.tags)} tags, max_event_tags is {limit}"
            )
        return None

    return check


def max_content_length(limit: int) -> WritePolicy:
    def check(event: Event, session: Session, now: float) -> Rejected | None:
        if len(event.content) > limit:
            return Rejected(
                "invalid",
                f"content has {len(event.content)} characters, max_content_length is {limit}",
            )
        return None

    return check


def created_at_bounds(past: int, future: int) -> WritePolicy:
    def check(event: Event, session: Session, now: float) -> Rejected | None:
        if event.created_at < now - past:
            return Rejected("invalid", f"created_at is more than {past} seconds in the past")
        if event.created_at > now + future:
            return Rejected("invalid", f"created_at is more than {future} seconds in the future")
        return None

    return check


def reject_expired() -> WritePolicy:
    """NIP-40: relays SHOULD drop events that are already expired."""

    def check(event: Event, session: Session, now: float) -> Rejected | None:
        expiration = event.expiration
        if (
            expiration is not None
            and expiration <= now
            and event.kind_class is not KindClass.EPHEMERAL
        ):
            return Rejected("invalid", "event has expired")
        return None

    return check


def protected_events() -> WritePolicy:
    """NIP-70: a ``["-"]`` event is accepted only from its authenticated author."""

    def check(event: Event, session: Session, now: float) -> Rejected | None:
        if not event.is_protected or event.pubkey in session.authed:
            return None
        if not session.authed:
            return Rejected("auth-required", "this event may only be published by its author")
        return Rejected("restricted", "this event may only be published by its author")

    return check


def auth_required_for_writes() -> WritePolicy:
    def check(event: Event, session: Session, now: float) -> Rejected | None:
        if not session.authed:
            return Rejected(
                "auth-required", "this relay only accepts events from authenticated users"
            )
        return None

    return check


def restrict_writers(pubkeys: frozenset[str]) -> WritePolicy:
    """Only events published by (authenticated as) an allowed key, or authored by one."""

    def check(event: Event, session: Session, now: float) -> Rejected | None:
        if event.pubkey in pubkeys or session.authed & pubkeys:
            return None
        if not session.authed:
            return Rejected("auth-required", "this relay only accepts events from registered users")
        return Rejected("restricted", "your key is not allowed to write to this relay")

    return check


def rate_limit_by_ip(limiter: RateLimiter) -> WritePolicy:
    def check(event: Event, session: Session, now: float) -> Rejected | None:
        if limiter.allow(session.ip, now):
            return None
        return Rejected("rate-limited", "too many events from your address, slow down")

    return check


# --- write hooks, after the signature check ----------------------------------------


def rate_limit_by_pubkey(limiter: RateLimiter) -> WritePolicy:
    def check(event: Event, session: Session, now: float) -> Rejected | None:
        if limiter.allow(event.pubkey, now):
            return None
        return Rejected("rate-limited", "too many events from this key, slow down")

    return check


# --- read hooks ----------------------------------------------------------------------


def auth_required_for_reads() -> ReadPolicy:
    def check(filters: Sequence[Filter], session: Session, now: float) -> Rejected | None:
        if not session.authed:
            return Rejected("auth-required", "this relay only serves authenticated users")
        return None

    return check


def restrict_readers(pubkeys: frozenset[str]) -> ReadPolicy:
    def check(filters: Sequence[Filter], session: Session, now: float) -> Rejected | None:
        if session.authed & pubkeys:
            return None
        if not session.authed:
            return Rejected("auth-required", "this relay only serves registered users")
        return Rejected("restricted", "your key is not allowed to read from this relay")

    return check


def private_kinds_need_auth(kinds: frozenset[int]) -> ReadPolicy:
    """Asking explicitly for private kinds (DMs, gift wraps) needs AUTH first.

    Which events an authenticated reader may then see is decided per event by
    :func:`may_read`; this hook only tells the client early that it must log in.
    """

    def check(filters: Sequence[Filter], session: Session, now: float) -> Rejected | None:
        asks = any(f.kinds is not None and f.kinds & kinds for f in filters)
        if asks and not session.authed:
            return Rejected("auth-required", "private events are only served to their parties")
        return None

    return check


def rate_limit_reqs_by_ip(limiter: RateLimiter) -> ReadPolicy:
    def check(filters: Sequence[Filter], session: Session, now: float) -> Rejected | None:
        if limiter.allow(session.ip, now):
            return None
        return Rejected("rate-limited", "too many requests from your address, slow down")

    return check


def may_read(
    kind: int, author: str, tagged: Sequence[str], session: Session, private_kinds: frozenset[int]
) -> bool:
    """Whether ``session`` may receive an event: private kinds only to author and ``p``-tagged keys."""
    if kind not in private_kinds:
        return True
    return author in session.authed or any(p in session.authed for p in tagged)


# --- bundles -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policies:
    before_signature: tuple[WritePolicy, ...]
    after_signature: tuple[WritePolicy, ...]
    read: tuple[ReadPolicy, ...]
    private_kinds: frozenset[int]

    def check_event(self, event: Event, session: Session, now: float) -> Rejected | None:
        return _first_rejection(self.before_signature, event, session, now)

    def check_author(self, event: Event, session: Session, now: float) -> Rejected | None:
        return _first_rejection(self.after_signature, event, session, now)

    def check_read(
        self, filters: Sequence[Filter], session: Session, now: float
    ) -> Rejected | None:
        for hook in self.read:
            rejection = hook(filters, session, now)
            if rejection is not None:
                return rejection
        return None


def _first_rejection(
    hooks: Sequence[WritePolicy], event: Event, session: Session, now: float
) -> Rejected | None:
    for hook in hooks:
        rejection = hook(event, session, now)
        if rejection is not None:
            return rejection
    return None


def default_policies(settings: RelaySettings) -> Policies:
    """The hooks ``settings`` asks for, in order of cost (cheapest first)."""
    limits, auth = settings.limits, settings.auth
    before: list[WritePolicy] = []
    if limits.events_per_minute_per_ip:
        before.append(rate_limit_by_ip(RateLimiter(limits.events_per_minute_per_ip)))
    if auth.auth_required_for_writes:
        before.append(auth_required_for_writes())
    if auth.write_pubkeys:
        before.append(restrict_writers(auth.write_pubkeys))
    before += [
        max_event_tags(limits.max_event_tags),
        max_content_length(limits.max_content_length),
        created_at_bounds(limits.created_at_lower_limit, limits.created_at_upper_limit),
        reject_expired(),
        protected_events(),
    ]
    after: list[WritePolicy] = []
    if limits.events_per_minute_per_pubkey:
        after.append(rate_limit_by_pubkey(RateLimiter(limits.events_per_minute_per_pubkey)))
    read: list[ReadPolicy] = []
    if limits.reqs_per_minute_per_ip:
        read.append(rate_limit_reqs_by_ip(RateLimiter(limits.reqs_per_minute_per_ip)))
    if auth.auth_required_for_reads:
        read.append(auth_required_for_reads())
    if auth.read_pubkeys:
        read.append(restrict_readers(auth.read_pubkeys))
    if auth.private_kinds:
        read.append(private_kinds_need_auth(auth.private_kinds))
    return Policies(tuple(before), tuple(after), tuple(read), auth.private_kinds)


def limitation(settings: RelaySettings) -> dict[str, Any]:
    """The NIP-11 ``limitation`` block: exactly the limits the hooks above enforce."""
    limits, auth = settings.limits, settings.auth
    return {
        "max_message_length": limits.max_message_length,
        "max_subscriptions": limits.max_subscriptions,
        "max_filters": limits.max_filters,
        "max_limit": limits.max_limit,
        "default_limit": limits.default_limit,
        "max_subid_length": limits.max_subid_length,
        "max_event_tags": limits.max_event_tags,
        "max_content_length": limits.max_content_length,
        "created_at_lower_limit": limits.created_at_lower_limit,
        "created_at_upper_limit": limits.created_at_upper_limit,
        "min_pow_difficulty": 0,
        "auth_required": auth.auth_required_for_reads and auth.auth_required_for_writes,
        "payment_required": False,
        "restricted_writes": bool(auth.write_pubkeys) or auth.auth_required_for_writes,
        # Not in NIP-11 yet; clients ignore unknown keys, operators can read them.
        "max_filter_values": limits.max_filter_values,
        "events_per_minute_per_ip": limits.events_per_minute_per_ip,
        "events_per_minute_per_pubkey": limits.events_per_minute_per_pubkey,
        "reqs_per_minute_per_ip": limits.reqs_per_minute_per_ip,
        "max_connections_per_ip": limits.max_connections_per_ip,
    }
