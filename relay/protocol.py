"""Sans-I/O state of one relay connection.

Spec: NIP-01 "From client to relay" / "From relay to client", NIP-42 (AUTH),
NIP-45 (COUNT). A :class:`RelayConnection` takes one client message and returns
*actions*: text to send now, or work for the I/O shell (``relay/server.py``) --
publish an event, open, close or count a subscription. It never touches a
socket, a database or the clock, so every rule here is testable without a port.

Every malformed message gets the specific NIP-01 answer: ``OK false`` when the
event id can be read, ``CLOSED`` when the subscription id can, ``NOTICE``
otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from nips import nip42
from nips.nip01 import Event, Filter, InvalidEvent, InvalidFilter, parse_event, parse_filter
from relay.policies import Policies, Rejected, Session, may_read
from relay.settings import RelaySettings

# --- actions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send this text to the client now."""

    message: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer an EVENT with ``OK false`` (kept apart from Send so the shell can count it)."""

    event_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Publish:
    """Verify the signature, run the after-signature policies, store, fan out, answer OK."""

    event: Event


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Register a live subscription, send stored matches, then EOSE."""

    sub_id: str
    filters: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    sub_id: str


@dataclass(frozen=True, slots=True)
class Count:
    """Answer ``["COUNT", sub_id, {"count": n}]`` (NIP-45)."""

    sub_id: str
    filters: tuple[Filter, ...]


Action = Send | Refuse | Publish | Subscribe | Unsubscribe | Count


# --- relay-to-client messages ------------------------------------------------------


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def ok(event_id: str, accepted: bool, message: str = "") -> str:
    return _dumps(["OK", event_id, accepted, message])


def event_message(sub_id: str, raw_event: str) -> str:
    # The stored raw JSON is spliced in as is: no decode/encode per event sent.
    return f'["EVENT",{_dumps(sub_id)},{raw_event}]'


def event_messages(sub_id: str, raw_events: list[str]) -> list[str]:
    """:func:`event_message` for many events of one subscription (a REQ's stored part)."""
    head = f'["EVENT",{_dumps(sub_id)},'
    return [head + raw + "]" for raw in raw_events]


def eose(sub_id: str) -> str:
    return _dumps(["EOSE", sub_id])


def closed(sub_id: str, message: str) -> str:
    return _dumps(["CLOSED", sub_id, message])


def notice(message: str) -> str:
    return _dumps(["NOTICE", message])


def count_reply(sub_id: str, count: int) -> str:
    return _dumps(["COUNT", sub_id, {"count": count}])


def auth_challenge(challenge: str) -> str:
    return _dumps(["AUTH", challenge])


# --- the connection ---------------------------------------------------------------

_EVENT_ID = re.compile(r'"id"\s*:\s*"([0-9a-f]{64})"')


class RelayConnection:
    """Protocol state of one client: its subscriptions, its NIP-42 identity."""

    def __init__(
        self,
        conn_id: int,
        *,
        settings: RelaySettings,
        policies: Policies,
        ip: str,
        challenge: str,
    ) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.policies = policies
        self.session = Session(conn_id, ip)
        self.challenge = challenge
        self.challenge_sent = False
        self.subscriptions: set[str] = set()

    @property
    def conn_id(self) -> int:
        return self.session.conn_id

    def greeting(self) -> list[Action]:
        """What to send on connect: the AUTH challenge when this relay requires login."""
        auth = self.settings.auth
        if auth.auth_required_for_reads or auth.auth_required_for_writes:
            return [self._challenge()]
        return []

    def receive(self, data: str | bytes, now: float) -> list[Action]:
        """Handle one websocket message from the client."""
        if self._too_large(data):
            return self._oversized(data)
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return [Send(notice(f"invalid: could not parse the message as JSON ({exc.msg})"))]
        if not isinstance(message, list) or not message or not isinstance(message[0], str):
            return [Send(notice("invalid: message must be a JSON array starting with a string"))]
        verb = message[0]
        if verb == "EVENT":
            return self._on_event(message, now)
        if verb == "REQ":
            return self._on_req(message, now)
        if verb == "CLOSE":
            return self._on_close(message)
        if verb == "COUNT":
            return self._on_count(message, now)
        if verb == "AUTH":
            return self._on_auth(message, now)
        return [Send(notice(f"invalid: unknown message type {verb[:32]!r}"))]

    def check_author(self, event: Event, now: float) -> Rejected | None:
        """After-signature policies (see ``relay.policies``), called by the shell."""
        return self.policies.check_author(event, self.session, now)

    def may_read(self, kind: int, author: str, tagged: Sequence[str]) -> bool:
        """Whether this client may receive an event of ``kind`` by ``author`` tagging ``tagged``.

        Private kinds (DMs, gift wraps) go only to their parties once authenticated.
        """
        return may_read(kind, author, tagged, self.session, self.policies.private_kinds)

    # --- verbs --------------------------------------------------------------------

    def _on_event(self, message: list[Any], now: float) -> list[Action]:
        if len(message) != 2:
            return self._event_shape_error(
                message, 'EVENT message must be ["EVENT", <event>]', event=True
            )
        try:
            event = parse_event(message[1])
        except InvalidEvent as exc:
            return self._event_shape_error(message, str(exc), event=True)
        if event.kind == nip42.AUTH_KIND:
            return [Refuse(event.id, "invalid: AUTH events are sent with AUTH, not EVENT")]
        rejection = self.policies.check_event(event, self.session, now)
        if rejection is not None:
            return self._reject_event(event.id, rejection)
        return [Publish(event)]

    def _on_req(self, message: list[Any], now: float) -> list[Action]:
        parsed = self._subscription_request(message, now)
        if not isinstance(parsed, tuple):
            return parsed
        sub_id, filters = parsed
        if (
            sub_id not in self.subscriptions
            and len(self.subscriptions) >= self.limits.max_subscriptions
        ):
            return [
                Send(
                    closed(
                        sub_id,
                        f"rate-limited: too many open subscriptions (max_subscriptions is {self.limits.max_subscriptions})",
                    )
                )
            ]
        self.subscriptions.add(sub_id)
        return [Subscribe(sub_id, filters)]

    def _on_count(self, message: list[Any], now: float) -> list[Action]:
        parsed = self._subscription_request(message, now)
        if not isinstance(parsed, tuple):
            return parsed
        return [Count(*parsed)]

    def _on_close(self, message: list[Any]) -> list[Action]:
        if len(message) != 2 or not isinstance(message[1], str):
            return [Send(notice('invalid: CLOSE message must be ["CLOSE", <subscription id>]'))]
        sub_id = message[1]
        if sub_id not in self.subscriptions:
            return []
        self.subscriptions.discard(sub_id)
        return [Unsubscribe(sub_id)]

    def _on_auth(self, message: list[Any], now: float) -> list[Action]:
        if len(message) != 2:
            return [Send(notice('invalid: AUTH message must be ["AUTH", <signed event>]'))]
        try:
            event = parse_event(message[1])
        except InvalidEvent as exc:
            return self._event_shape_error(message, str(exc))
        reason = nip42.check_auth_event(
            event,
            challenge=self.challenge,
            relay_url=self.settings.url,
            now=int(now),
            window=self.settings.auth.auth_window_seconds,
        )
        if reason is not None:
            return [Send(ok(event.id, False, f"invalid: {reason}"))]
        self.session.authed.add(event.pubkey)
        return [Send(ok(event.id, True, ""))]

    # --- helpers ------------------------------------------------------------------

    def _subscription_request(
        self, message: list[Any], now: float
    ) -> tuple[str, tuple[Filter, ...]] | list[Action]:
        verb = message[0]
        if len(message) < 2 or not isinstance(message[1], str):
            return [
                Send(
                    notice(
                        f'invalid: {verb} message must be ["{verb}", <subscription id>, <filter>...]'
                    )
                )
            ]
        sub_id: str = message[1]
        if not sub_id or len(sub_id) > self.limits.max_subid_length:
            return [
                Send(
                    closed(
                        sub_id[:64],
                        f"invalid: subscription id must be 1 to {self.limits.max_subid_length} characters",
                    )
                )
            ]
        raw_filters = message[2:]
        if not raw_filters:
            return [Send(closed(sub_id, "invalid: at least one filter is required"))]
        if len(raw_filters) > self.limits.max_filters:
            return [
                Send(
                    closed(
                        sub_id,
                        f"invalid: too many filters (max_filters is {self.limits.max_filters})",
                    )
                )
            ]
        try:
            filters = tuple(
                self._clamp(parse_filter(f, max_values=self.limits.max_filter_values))
                for f in raw_filters
            )
        except InvalidFilter as exc:
            return [Send(closed(sub_id, f"invalid: {exc}"))]
        rejection = self.policies.check_read(filters, self.session, now)
        if rejection is not None:
            return self._with_challenge(rejection, Send(closed(sub_id, rejection.message)))
        return sub_id, filters

    def _clamp(self, f: Filter) -> Filter:
        if f.limit is not None and f.limit > self.limits.max_limit:
            return replace(f, limit=self.limits.max_limit)
        return f

    def _too_large(self, data: str | bytes) -> bool:
        limit = self.limits.max_message_length
        if len(data) <= limit // 4:  # even 4-byte UTF-8 characters fit
            return False
        size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
        return size > limit

    def _oversized(self, data: str | bytes) -> list[Action]:
        reason = (
            f"message is larger than max_message_length ({self.limits.max_message_length} bytes)"
        )
        head = data[:512] if isinstance(data, str) else data[:512].decode("utf-8", "replace")
        found = _EVENT_ID.search(head)
        if head.lstrip().startswith('["EVENT"') and found:
            return [Refuse(found.group(1), f"invalid: {reason}")]
        return [Send(notice(f"invalid: {reason}"))]

    def _event_shape_error(
        self, message: list[Any], reason: str, *, event: bool = False
    ) -> list[Action]:
        obj = message[1] if len(message) > 1 else None
        event_id = obj.get("id") if isinstance(obj, dict) else None
        if isinstance(event_id, str) and len(event_id) <= 64:
            if event:
                return [Refuse(event_id, f"invalid: {reason}")]
            return [Send(ok(event_id, False, f"invalid: {reason}"))]
        return [Send(notice(f"invalid: {reason}"))]

    def _reject_event(self, event_id: str, rejection: Rejected) -> list[Action]:
        return self._with_challenge(rejection, Refuse(event_id, rejection.message))

    def _with_challenge(self, rejection: Rejected, answer: Send | Refuse) -> list[Action]:
        # NIP-42: the client must hold a challenge before it sees auth-required.
        if rejection.prefix == "auth-required" and not self.challenge_sent:
            return [self._challenge(), answer]
        return [answer]

    def _challenge(self) -> Send:
        self.challenge_sent = True
        return Send(auth_challenge(self.challenge))
