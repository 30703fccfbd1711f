"""The customer's side: submit a job and follow it, list agents, audit a job.

Behind ``timmy job submit``, ``timmy agents`` and ``timmy audit``; usable from
scripts and benchmarks too. Everything here goes through relays only, exactly
as any other Nostr client would.

When a request opens an auction, the customer is the awarder: it watches the
commitments and reveals live (so it knows when each reached the relay), and
publishes the kind 7012 award as soon as the reveal window has closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from dvm.agents import HEARTBEAT_D, HEARTBEAT_KIND
from dvm.encryption import decrypt, encrypt
from nips import auction
from nips.nip01 import Event, Signer, is_hex64
from nips.nip89 import HANDLER_KIND, HandlerInfo, parse_handler
from nips.nip90 import FEEDBACK_KIND, feedback_status, is_encrypted, parse_request, result_kind
from node.links import RelayLink


class JobFailed(Exception):
    """Raised when a provider answers with ``7000 error``, or payment is required."""


@dataclass
class JobSpec:
    kind: int
    inputs: list[tuple[str, str]]  # (data, type)
    params: list[tuple[str, str]] = field(default_factory=list)
    bid_msat: int | None = None
    to: str | None = None  # provider pubkey (hex)
    encrypt: bool = False
    auction_seconds: tuple[int, int] | None = None  # (commit window, reveal window)
    output: str | None = None


def guess_input_type(value: str) -> str:
    if is_hex64(value):
        return "event"
    if value.startswith(("http://", "https://")):
        return "url"
    return "text"


def build_request(spec: JobSpec, signer: Signer, now: int) -> Event:
    private = [["i", data, kind] for data, kind in spec.inputs]
    private += [["param", key, value] for key, value in spec.params]
    if spec.output:
        private.append(["output", spec.output])
    public: list[list[str]] = []
    if spec.auction_seconds is not None:
        commit, reveal = spec.auction_seconds
        public += [
            ["param", "auction", auction.AUCTION_TYPE],
            ["param", "commit_until", str(now + commit)],
            ["param", "reveal_until", str(now + commit + reveal)],
        ]
    if spec.bid_msat is not None:
        public.append(["bid", str(spec.bid_msat)])
    if spec.to:
        public.append(["p", spec.to])
    if spec.encrypt:
        if not spec.to:
            raise ValueError("--encrypt needs --to: params are encrypted to one provider")
        if spec.auction_seconds is not None:
            raise ValueError("an auction cannot be encrypted: every bidder must read its terms")
        content = encrypt(signer, spec.to, orjson.dumps(private).decode(), "nip04")
        return signer.sign(spec.kind, content, [*public, ["encrypted"]], created_at=now)
    return signer.sign(spec.kind, "", private + public, created_at=now)


Progress = Callable[[str], None]


@dataclass
class Outcome:
    request: Event
    result: Event
    content: str  # decrypted when the job was encrypted
    feedback: list[Event]
    award: Event | None = None


Pay = Callable[[str, int], Awaitable[None]]  # (bolt11, amount msat)


async def submit(
    link: RelayLink,
    spec: JobSpec,
    signer: Signer,
    *,
    timeout: float = 60.0,
    progress: Progress = lambda line: None,
    pay: Pay | None = None,
) -> Outcome:
    """Publish a request, follow it to its result; :class:`JobFailed` on an error answer.

    With ``pay``, a ``payment-required`` answer carrying an invoice is paid
    through it (once) and the job followed on; without, it ends the wait.
    """
    started = time.monotonic()
    answers: asyncio.Queue[Event] = asyncio.Queue()
    request = build_request(spec, signer, int(time.time()))
    awarder = Awarder(link, signer, request) if spec.auction_seconds else None
    sub = f"job-{request.id[:16]}"
    kinds = [FEEDBACK_KIND, result_kind(spec.kind), auction.COMMIT_KIND, auction.REVEAL_KIND]
    link.subscribe(sub, [{"kinds": kinds, "#e": [request.id]}], lambda e, _: answers.put_nowait(e))
    try:
        ok, message = await link.publish(request)
        if not ok:
            raise JobFailed(f"the relay refused the request: {message}")
        progress(f"request {request.id} published")
        async with asyncio.timeout(timeout):
            if awarder is not None:
                awarder.start()
            feedback: list[Event] = []
            paid = False
            while True:
                event = await answers.get()
                if awarder is not None and event.kind in (auction.COMMIT_KIND, auction.REVEAL_KIND):
                    awarder.seen(event)
                    continue
                stamp = f"[{time.monotonic() - started:6.2f}s]"
                if event.kind == FEEDBACK_KIND:
                    feedback.append(event)
                    status, info = feedback_status(event)
                    amount = event.first_tag_value("amount")
                    progress(f"{stamp} {event.pubkey[:12]} {status}" + (f": {info}" if info else "")
                             + (f" ({amount} msat)" if amount else ""))
                    if status == "error":
                        raise JobFailed(f"{event.pubkey[:12]}: {info or 'error'}")
                    if status == "payment-required":
                        bolt11 = _invoice_of(event)
                        if pay is None or not bolt11 or paid:
                            raise JobFailed(f"payment required: {amount} msat" + (f" ({bolt11})" if bolt11 else ""))
                        paid = True
                        await pay(bolt11, int(amount or 0))
                        progress(f"{stamp} paid {amount} msat")
                    continue
                content = event.content
                if any(tag[:1] == ["encrypted"] for tag in event.tags):
                    content, _ = decrypt(signer, event.pubkey, content)
                progress(f"{stamp} result from {event.pubkey[:12]}")
                return Outcome(request, event, content, feedback, awarder.award if awarder else None)
    except TimeoutError:
        raise JobFailed(f"no result within {timeout:g} s") from None
    finally:
        link.unsubscribe(sub)
        if awarder is not None:
            await awarder.stop()


class Awarder:
    """The customer's side of a federated auction: award at the close of the reveal window."""

    def __init__(self, link: RelayLink, signer: Signer, request: Event) -> None:
        terms = auction.auction_terms(parse_request(request))
        assert terms is not None
        self.terms, self.link, self.signer = terms, link, signer
        self.events: list[Event] = []
        self.received_at: dict[str, int] = {}
        self.award: Event | None = None
        self.published_at: float | None = None  # wall clock, for the benchmark
        self._task: asyncio.Task[None] | None = None

    def seen(self, event: Event) -> None:
        self.events.append(event)
        self.received_at.setdefault(event.id, int(time.time()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        # Reveals count up to reveal_until inclusive (whole seconds): the window
        # closes when that second ends, and an award must be created after it.
        while (delay := self.terms.reveal_until + 1 - time.time()) > 0:
            await asyncio.sleep(max(delay, 0.001))  # the timer may wake a little early
        decided = auction.decide(self.terms, self.events, received_at=self.received_at)
        tags = auction.award_tags(self.terms, decided)
        award = self.signer.sign(auction.AWARD_KIND, "", tags, created_at=int(time.time()))
        self.award = award
        await self.link.publish(award)
        self.published_at = time.time()


def _invoice_of(event: Event) -> str:
    """The BOLT11 invoice of an ``["amount", msat, bolt11]`` tag, or ""."""
    for tag in event.tags:
        if len(tag) >= 3 and tag[0] == "amount":
            return tag[2]
    return ""


# --- discovery ---------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    info: HandlerInfo
    alive: bool  # an unexpired heartbeat was found


async def discover_agents(link: RelayLink, *, now: float | None = None) -> list[Listing]:
    announcements = await link.query([{"kinds": [HANDLER_KIND], "limit": 1000}])
    infos = [info for info in map(parse_handler, announcements) if info is not None]
    pubkeys = sorted({i.pubkey for i in infos})
    beats: list[Event] = []
    for chunk in range(0, len(pubkeys), 500):
        beats += await link.query(
            [{"kinds": [HEARTBEAT_KIND], "authors": pubkeys[chunk:chunk + 500], "#d": [HEARTBEAT_D]}]
        )
    now = time.time() if now is None else now
    alive = {b.pubkey for b in beats if (b.expiration or 0) > now and '"online"' in b.content}
    return [Listing(i, i.pubkey in alive) for i in sorted(infos, key=lambda i: (i.kinds, i.name))]


# --- audit -----------------------------------------------------------------------------


async def fetch_job(link: RelayLink, request_id: str) -> tuple[Event | None, list[Event]]:
    found = await link.query([{"ids": [request_id]}])
    related = await link.query([{"#e": [request_id], "limit": 5000}])
    return (found[0] if found else None), related


def audit_job(request: Event, events: Sequence[Event]) -> dict[str, Any]:
    """Check every answer's chain to the request and, for an auction, the award.

    The relay link has already dropped events whose signatures do not verify,
    so what reaches here is authentic; the checks are about what it claims.
    """
    problems: list[str] = []
    answers = [e for e in events if e.kind == FEEDBACK_KIND or 6000 <= e.kind <= 6999]
    for event in answers:
        if event.first_tag_value("e") != request.id:
            problems.append(f"{event.id}: first e tag is not the request")
        if request.pubkey not in event.tag_values("p"):
            problems.append(f"{event.id}: does not tag the customer")
        if 6000 <= event.kind <= 6999:
            if event.kind != result_kind(request.kind):
                problems.append(f"{event.id}: result kind {event.kind} does not answer kind {request.kind}")
            embedded = event.first_tag_value("request")
            if embedded is not None and _embedded_id(embedded) != request.id:
                problems.append(f"{event.id}: its request tag does not hold the request")
    verdict: dict[str, Any] = {"request": request.id, "valid": not problems, "winner": None,
                               "price_msat": None, "problems": problems, "notes": []}
    if not is_encrypted(request) and _opens_auction(request):
        decided = auction.audit(request, events).to_json_dict()
        verdict.update(decided)
        verdict["problems"] = problems + decided["problems"]
        verdict["valid"] = not verdict["problems"]
    results = [e for e in answers if 6000 <= e.kind <= 6999]
    verdict["results"] = [{"id": e.id, "agent": e.pubkey} for e in results]
    return verdict


def _embedded_id(text: str) -> object:
    try:
        embedded = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return embedded.get("id") if isinstance(embedded, dict) else None


def _opens_auction(request: Event) -> bool:
    """Whether the request asks for an auction (a malformed one still counts, for the audit)."""
    return request.first_tag_value("param") is not None and any(
        tag[:3] == ["param", "auction", auction.AUCTION_TYPE] for tag in request.tags
    )


# --- zaps ------------------------------------------------------------------------------


async def zap(link: RelayLink, signer: Signer, recipient: str, event_id: str, amount_msat: int, pay: Pay) -> str:
    """Zap ``event_id`` by ``recipient`` (NIP-57): its lud16, a signed zap request, pay; the invoice."""
    import httpx

    from nips import nip57

    profiles = await link.query([{"kinds": [0], "authors": [recipient], "limit": 1}])
    try:
        lud16 = str(orjson.loads(profiles[0].content)["lud16"]) if profiles else ""
    except (orjson.JSONDecodeError, KeyError, TypeError):
        lud16 = ""
    name, _, domain = lud16.partition("@")
    if not name or not domain:
        raise JobFailed("the agent's profile has no lud16: it cannot be zapped")
    # LUD-16 says https; a bare IP or a host:port (a node on one machine) is served over http.
    scheme = "http" if ":" in domain or domain.replace(".", "").isdigit() else "https"
    request = signer.sign(
        nip57.ZAP_REQUEST_KIND, "",
        [["p", recipient], ["e", event_id], ["relays", link.url], ["amount", str(amount_msat)]],
        created_at=int(time.time()),
    )
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            pay_request = (await http.get(f"{scheme}://{domain}/.well-known/lnurlp/{name}")).json()
            if not pay_request.get("allowsNostr"):
                raise JobFailed("the agent's LNURL server does not take zaps")
            answer = (
                await http.get(pay_request["callback"], params={"amount": amount_msat, "nostr": request.raw})
            ).json()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise JobFailed(f"LNURL request failed: {exc}") from None
    invoice = answer.get("pr")
    if not invoice:
        raise JobFailed(f"no invoice: {answer.get('reason', 'no reason given')}")
    await pay(invoice, amount_msat)
    return str(invoice)
