"""NIP-90: Data Vending Machine job requests, results and feedback.

Spec: ``shared/specs/nips/90.md`` (sections "Job request", "Encrypted Params",
"Job result", "Encrypted Output", "Job feedback", "Cancellation",
"Appendix 1: Job chaining").

Pure module. :func:`parse_request` turns a kind 5000-5999 event into a
:class:`JobRequest` or raises :class:`BadRequest` with a reason that is sent to
the customer in a ``7000 error``. :func:`feedback_tags` and :func:`result_tags`
build the tags of the provider's answers exactly as the spec lists them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

import orjson

from nips.nip01 import Event, is_hex64

REQUEST_KINDS = range(5000, 6000)
FEEDBACK_KIND = 7000
RESULT_OFFSET = 1000
INPUT_TYPES = ("text", "url", "event", "job")
MAX_INPUTS = 32
MAX_PARAMS = 64
_MSAT = re.compile(r"[0-9]{1,18}")


class BadRequest(ValueError):
    """A job request the provider cannot accept; ``str()`` is the reason for the customer."""


class Status(enum.StrEnum):
    """Job feedback statuses (section "Job feedback status")."""

    PAYMENT_REQUIRED = "payment-required"
    PROCESSING = "processing"
    ERROR = "error"
    SUCCESS = "success"
    PARTIAL = "partial"


def result_kind(request_kind: int) -> int:
    """Results are always ``1000`` above the request kind."""
    return request_kind + RESULT_OFFSET


def is_request_kind(kind: int) -> bool:
    return kind in REQUEST_KINDS


@dataclass(frozen=True, slots=True)
class JobInput:
    """One ``["i", data, type, relay, marker]`` tag."""

    data: str
    type: str
    relay: str = ""
    marker: str = ""

    def to_tag(self) -> list[str]:
        tag = ["i", self.data, self.type]
        if self.relay or self.marker:
            tag.append(self.relay)
        if self.marker:
            tag.append(self.marker)
        return tag


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A job request, with its private tags merged in when it was encrypted."""

    event: Event
    inputs: tuple[JobInput, ...] = ()
    # Each ``["param", name, value, ...]`` tag without its "param": (name,
    # value, ...). Most params have one value; a few (5000's ``range``: start,
    # end) have more.
    param_tags: tuple[tuple[str, ...], ...] = ()
    output: str | None = None
    bid_msat: int | None = None
    relays: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()  # `p` tags: the service providers addressed
    encrypted: bool = False
    hashtags: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        return self.event.id

    @property
    def kind(self) -> int:
        return self.event.kind

    @property
    def customer(self) -> str:
        return self.event.pubkey

    @property
    def params(self) -> tuple[tuple[str, str], ...]:
        """(name, first value) of every param, in order."""
        return tuple((tag[0], tag[1]) for tag in self.param_tags)

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``["param", name, value]``."""
        for key, value in self.params:
            if key == name:
                return value
        return default

    def param_values(self, name: str) -> list[str]:
        return [value for key, value in self.params if key == name]

    def param_args(self, name: str) -> tuple[str, ...] | None:
        """All the values of the first ``["param", name, value, ...]`` tag, or None."""
        for tag in self.param_tags:
            if tag[0] == name:
                return tag[1:]
        return None

    def job_inputs(self) -> list[str]:
        """Ids of the jobs whose output this one chains on (Appendix 1)."""
        return [i.data for i in self.inputs if i.type == "job"]


def is_encrypted(event: Event) -> bool:
    return any(tag and tag[0] == "encrypted" for tag in event.tags)


def parse_private_tags(plaintext: str) -> list[list[str]]:
    """The decrypted content of an encrypted request: a JSON list of tags."""
    try:
        tags = orjson.loads(plaintext)
    except orjson.JSONDecodeError:
        raise BadRequest("encrypted params are not a JSON list of tags") from None
    if not isinstance(tags, list) or not all(
        isinstance(tag, list) and tag and all(isinstance(v, str) for v in tag) for tag in tags
    ):
        raise BadRequest("encrypted params are not a JSON list of tags")
    return tags


def parse_request(event: Event, private_tags: list[list[str]] | None = None) -> JobRequest:
    """Read a job request's tags; ``private_tags`` are the decrypted params, if any.

    Every malformed tag is an error rather than being skipped: a customer who
    mistyped an input type should learn it, not get a job done on half the data.
    """
    if not is_request_kind(event.kind):
        raise BadRequest(f"kind {event.kind} is not a job request kind (5000-5999)")
    encrypted = is_encrypted(event)
    if encrypted and private_tags is None:
        raise BadRequest("encrypted request: params could not be decrypted")
    inputs: list[JobInput] = []
    params: list[tuple[str, ...]] = []
    output = bid = None
    relays: list[str] = []
    providers: list[str] = []
    hashtags: list[str] = []
    for tag in [*event.tags, *(private_tags or [])]:
        name = tag[0] if tag else ""
        if name == "i":
            inputs.append(_input(tag))
        elif name == "param":
            if len(tag) < 3:
                raise BadRequest(f"malformed param tag {_show(tag)}: expected [param, name, value]")
            params.append(tuple(tag[1:]))
        elif name in ("output", "bid", "p") and len(tag) < 2:
            raise BadRequest(f"malformed {name} tag {_show(tag)}: it has no value")
        elif name == "output":
            output = tag[1]
        elif name == "bid":
            bid = _msat(tag[1], "bid")
        elif name == "relays":
            relays.extend(url for url in tag[1:] if url)
        elif name == "p":
            if not is_hex64(tag[1]):
                raise BadRequest(f"malformed p tag {_show(tag)}: expected a hex public key")
            providers.append(tag[1])
        elif name == "t" and len(tag) >= 2:
            hashtags.append(tag[1])
    if len(inputs) > MAX_INPUTS:
        raise BadRequest(f"too many inputs: {len(inputs)} (at most {MAX_INPUTS})")
    if len(params) > MAX_PARAMS:
        raise BadRequest(f"too many params: {len(params)} (at most {MAX_PARAMS})")
    return JobRequest(
        event=event,
        inputs=tuple(inputs),
        param_tags=tuple(params),
        output=output,
        bid_msat=bid,
        relays=tuple(dict.fromkeys(relays)),
        providers=tuple(dict.fromkeys(providers)),
        encrypted=encrypted,
        hashtags=tuple(hashtags),
    )


def _input(tag: list[str]) -> JobInput:
    if len(tag) < 3:
        raise BadRequest(f"malformed i tag {_show(tag)}: expected [i, data, type]")
    data, kind = tag[1], tag[2]
    if kind not in INPUT_TYPES:
        raise BadRequest(
            f"malformed i tag {_show(tag)}: input type {kind!r} is not one of {', '.join(INPUT_TYPES)}"
        )
    if kind in ("event", "job") and not is_hex64(data):
        raise BadRequest(f"malformed i tag {_show(tag)}: {kind} input must be a hex event id")
    relay = tag[3] if len(tag) > 3 else ""
    marker = tag[4] if len(tag) > 4 else ""
    return JobInput(data, kind, relay, marker)


def _msat(text: str, what: str) -> int:
    # ASCII digits only: str.isdigit() also takes superscripts and other scripts' digits.
    if not _MSAT.fullmatch(text):
        raise BadRequest(f"{what} {text!r} is not an amount in millisats")
    return int(text)


def _show(tag: list[str]) -> str:
    text = orjson.dumps(tag).decode()
    return text if len(text) <= 80 else text[:77] + "..."


# --- the provider's answers ----------------------------------------------------


def feedback_tags(
    request: JobRequest,
    status: Status,
    info: str = "",
    *,
    amount_msat: int | None = None,
    bolt11: str = "",
    relay_hint: str = "",
    extra: list[list[str]] | None = None,
) -> list[list[str]]:
    """Tags of a kind 7000 feedback event (section "Job feedback")."""
    tags = [["status", status.value, info] if info else ["status", status.value]]
    if amount_msat is not None:
        tags.append(["amount", str(amount_msat), bolt11] if bolt11 else ["amount", str(amount_msat)])
    tags.append(_e_tag(request, relay_hint))
    tags.append(["p", request.customer])
    if request.encrypted:
        tags.append(["encrypted"])
    tags.extend(extra or [])
    return tags


def result_tags(
    request: JobRequest,
    *,
    amount_msat: int | None = None,
    bolt11: str = "",
    relay_hint: str = "",
) -> list[list[str]]:
    """Tags of a kind 6xxx result (sections "Job result" and "Encrypted Output").

    An encrypted request's inputs are private, so its result carries no ``i``
    tags and is marked ``encrypted``.
    """
    tags = [["request", request.event.raw], _e_tag(request, relay_hint)]
    if not request.encrypted:
        tags.extend(i.to_tag() for i in request.inputs)
    tags.append(["p", request.customer])
    if amount_msat is not None:
        tags.append(["amount", str(amount_msat), bolt11] if bolt11 else ["amount", str(amount_msat)])
    if request.encrypted:
        tags.append(["encrypted"])
    return tags


def _e_tag(request: JobRequest, relay_hint: str) -> list[str]:
    return ["e", request.id, relay_hint] if relay_hint else ["e", request.id]


def feedback_status(event: Event) -> tuple[str, str]:
    """(status, extra info) of a 7000 event; ("", "") when it has no status tag."""
    for tag in event.tags:
        if len(tag) >= 2 and tag[0] == "status":
            return tag[1], tag[2] if len(tag) > 2 else ""
    return "", ""


def request_of(event: Event) -> str | None:
    """The request id a result or feedback event answers (its first ``e`` tag)."""
    return event.first_tag_value("e")
