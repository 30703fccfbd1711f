"""The job engine: take NIP-90 requests from relays, run them, publish feedback and results.

Spec: ``shared/specs/nips/90.md``; the life of a job is DESIGN.md section 4
and ``dvm/jobs.py``. The engine is a client of relays like any other: it
reads and publishes through a :class:`node.links.RelayPool` holding the
node's own relay (its audit log) and the federation relays, so nothing here
depends on the relay being local.

One request, one job row (``dvm/store.py``). Every state change is committed
with the signed events announcing it before they are published, and the
unsent ones are published again after a restart, so a node killed at any
point finishes each accepted job once and never publishes two results.

Inside the node, agents serving the same kind compete in a sealed-bid
second-price auction (``dvm.agents.local_auction``): only the winner answers.
A request asking for a federated auction goes through ``dvm/bidding.py``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from dvm.agents import (
    Agent,
    announcement_events,
    digest,
    handler_d,
    heartbeat_event,
    local_auction,
    retraction_event,
)
from dvm.billing import Billing
from dvm.encryption import DecryptionFailed, Scheme, decrypt, encrypt
from dvm.handlers import HandlerError, JobContext, Output
from dvm.jobs import ANNOUNCES, State, Step, advance
from dvm.metrics import JobMetrics
from dvm.store import Announcement, JobRecord, JobStore, StaleState
from nips import auction
from nips.nip01 import Event, Signer, parse_event
from nips.nip90 import (
    FEEDBACK_KIND,
    BadRequest,
    JobRequest,
    Status,
    feedback_tags,
    is_request_kind,
    parse_private_tags,
    parse_request,
    result_kind,
    result_tags,
)
from node.config import EngineSettings
from node.links import RelayPool

if TYPE_CHECKING:
    from dvm.bidding import Bidding
    from node.wallet import Wallet

log = logging.getLogger(__name__)

SEEN_IDS = 50_000  # request ids remembered in memory before asking the store
RETRY_SECONDS = 5.0  # how often unsent announcements are tried again
SWEEP_SECONDS = 30.0  # how often waiting jobs are checked for expiry
MAX_CUSTOMER_RELAYS = 3  # extra relays from a request's `relays` tag we publish to
MAX_REPLY_LINKS = 32  # connections kept to such relays
FILE_METADATA_KIND = 1063  # NIP-94: an `event` input of this kind means its `url`


@dataclass(eq=False)
class Job:
    """A job in memory while the engine works on it."""

    record: JobRecord
    event: Event
    request: JobRequest | None = None
    agent: Agent | None = None
    price_msat: int = 0
    scheme: Scheme | None = None  # set when the request was encrypted
    stop: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task[None] | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return self.event.id

    @property
    def state(self) -> State:
        return self.record.state


class Engine:
    name = "engine"

    def __init__(
        self,
        agents: Sequence[Agent],
        store: JobStore,
        pool: RelayPool,
        *,
        settings: EngineSettings,
        home_relay: str,
        public_relay: str = "",
        node_pubkey: str,
        federation_relays: Sequence[str] = (),
        retired_signers: Mapping[str, Signer] | None = None,
        wallet: Wallet | None = None,
        web_domain: str = "",
        services: Mapping[str, Any] | None = None,
        metrics: JobMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agents = list(agents)
        self.store = store
        self.pool = pool
        self.settings = settings
        self.home_relay = home_relay  # how this node reaches its relay
        self.public_relay = public_relay or home_relay  # how others do: hints, announcements
        self.node_pubkey = node_pubkey
        self.federation_relays = tuple(federation_relays)
        # Keys of agents that left the config, to delete their announcements.
        self.retired_signers = dict(retired_signers or {})
        self.metrics = metrics or JobMetrics()
        self.clock = clock
        self.by_pubkey = {agent.pubkey: agent for agent in self.agents}
        self.kinds = sorted({kind for agent in self.agents for kind in agent.handlers})
        self.jobs: dict[str, Job] = {}  # active jobs by request id
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._waiting: dict[str, set[str]] = {}  # input job id -> ids of jobs chained on it
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bidding: Bidding | None = None
        self.billing = Billing(self, wallet)
        self.services: dict[str, Any] = dict(services or {})  # for handlers: JobContext.services
        # The web app's host: agents' NIP-05 (and, with a wallet, lud16) are name@domain.
        self.web_domain = web_domain
        self.replies = RelayPool([])  # customers' relays (NIP-90 `relays` tag)
        self._sent: list[str] = []  # published, not yet marked sent in the store
        self._last_beat = 0  # created_at of the last online heartbeat
        self._flushing: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        from dvm.bidding import Bidding

        self._bidding = Bidding(self)
        await self.replies.start()
        since = int(self.clock()) - self.settings.max_request_age_seconds
        self.pool.subscribe("jobs", self._request_filters(since), self._on_request)
        self.pool.subscribe("cancel", [{"kinds": [5], "since": int(self.clock())}], self._on_deletion)
        self._bidding.subscribe(since)
        await self.billing.start()
        await self._apply_operator_settings()
        await self._resume()
        self._spawn(self._announce_agents())
        self._spawn(self._heartbeat())
        self._spawn(self._retry_unsent())
        self._spawn(self._sweep())
        log.info(
            "engine ready: %d agents serving kinds %s",
            len(self.agents),
            ", ".join(map(str, self.kinds)) or "none",
        )

    async def stop(self) -> None:
        for sub in ("jobs", "cancel", "inputs"):
            self.pool.unsubscribe(sub)
        if self._bidding is not None:
            self._bidding.unsubscribe()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await self._say_offline()
        for job in self.jobs.values():
            job.stop.set()  # handler threads poll this
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.replies.stop()
        if self._sent:  # what was published but not yet marked: spare the restart a republish
            await self.store.mark_sent(self._sent)
            self._sent = []

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task failed", exc_info=task.exception())

    def keep(self, event: Event, relay: str) -> None:
        """Copy an event the node acts upon, read elsewhere, into its own relay: the audit log."""
        if relay != self.home_relay:
            self._spawn(self.pool.publish(event, urls=[self.home_relay]))

    def _request_filters(self, since: int) -> list[dict[str, Any]]:
        # Open requests of the kinds we serve, and anything addressed to our
        # agents (an unsupported kind addressed to us deserves an answer).
        filters: list[dict[str, Any]] = []
        if self.kinds:
            filters.append({"kinds": self.kinds, "since": since})
        if self.agents:
            filters.append({"#p": sorted(self.by_pubkey), "since": since})
        return filters

    # --- intake -----------------------------------------------------------------

    def _on_request(self, event: Event, relay: str) -> None:
        if not is_request_kind(event.kind) or event.id in self._seen:
            return
        self._seen[event.id] = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        if event.created_at < self.clock() - self.settings.max_request_age_seconds:
            return
        self._spawn(self._intake(event, relay))

    async def _intake(self, event: Event, relay: str) -> None:
        record = await self.store.claim(event)
        if record is None:
            return  # seen before (another relay, or before a restart)
        self.metrics.received(event.kind)
        self.keep(event, relay)
        job = Job(record, event)
        self.jobs[job.id] = job
        await self._decide(job)

    async def _decide(self, job: Job) -> None:
        """Pick the agent, check the request, and move the job to its first real state."""
        event = job.event
        addressed = [self.by_pubkey[p] for p in event.tag_values("p") if p in self.by_pubkey]
        if event.tag_values("p") and not addressed:
            await self._move(job, Step.DECLINE)  # meant for other providers
            return
        candidates = [a for a in (addressed or self.agents) if event.kind in a.handlers and not a.paused]
        if not addressed and not candidates:
            await self._move(job, Step.DECLINE)
            return
        responder = (addressed or candidates)[0]
        job.agent = responder
        try:
            job.request = self._parse(job, responder)
        except BadRequest as exc:
            await self._fail(job, str(exc))
            return
        if not candidates:
            paused = responder.paused and event.kind in responder.handlers
            reason = "this agent is paused; try again later" if paused else f"kind {event.kind} is not served by this agent"
            await self._fail(job, reason)
            return
        request = job.request
        award = local_auction(candidates, request, self.reputation)
        if award is None:
            cheapest = min(candidates, key=lambda a: a.ask_msat(request))
            job.agent = cheapest
            await self._fail(
                job,
                f"bid {request.bid_msat} msat is below the price of {cheapest.ask_msat(request)} msat",
            )
            return
        job.agent, job.price_msat = award.winner, award.price_msat
        try:
            self._validate(job)
        except (BadRequest, HandlerError) as exc:
            await self._fail(job, str(exc))
            return
        assert self._bidding is not None
        try:
            terms = auction.auction_terms(request)
        except auction.AuctionError as exc:
            await self._fail(job, str(exc))
            return
        if terms is not None:
            await self._bidding.enter(job, terms, award.ask_msat)
            return
        await self.proceed(job)

    def _parse(self, job: Job, agent: Agent) -> JobRequest:
        event = job.event
        private = None
        if any(tag[:1] == ["encrypted"] for tag in event.tags):
            if agent.pubkey not in event.tag_values("p"):
                raise BadRequest("encrypted request without a p tag naming this agent")
            try:
                plaintext, job.scheme = decrypt(agent.signer, event.pubkey, event.content)
            except DecryptionFailed as exc:
                raise BadRequest(f"cannot decrypt params: {exc}") from None
            private = parse_private_tags(plaintext)
        return parse_request(event, private)

    def _validate(self, job: Job) -> None:
        assert job.request is not None and job.agent is not None
        size = sum(len(i.data.encode()) for i in job.request.inputs if i.type == "text")
        if size > self.settings.max_input_bytes:
            raise BadRequest(f"input too large: {size} bytes (limit {self.settings.max_input_bytes})")
        handler = job.agent.handlers[job.request.kind]
        handler.validate(_for_handler(job.request), job.agent.settings_for(handler))

    async def proceed(self, job: Job) -> None:
        """After the agent is chosen (and any auction won): wait for input, charge, run."""
        assert job.request is not None
        missing = [jid for jid in job.request.job_inputs() if not await self._result_of(jid)]
        if missing:
            if job.state is not State.WAITING_INPUT:
                await self._move(job, Step.WAIT_INPUT)
            for jid in missing:
                self._waiting.setdefault(jid, set()).add(job.id)
            self._watch_inputs()
            return
        if job.price_msat > 0:
            await self.billing.charge(job)  # the job runs once paid: Billing.settled
            return
        self.run(job)

    def reputation(self, pubkey: str) -> float:
        """0-100 from the node's reputation service; 0 everywhere when it runs none."""
        service = self.services.get("reputation")
        return float(service.rank(pubkey)) if service is not None else 0.0

    def run(self, job: Job) -> None:
        job.task = self._spawn(self._execute(job))

    # --- running ------------------------------------------------------------------

    async def _execute(self, job: Job) -> None:
        agent, request = job.agent, job.request
        assert agent is not None and request is not None
        handler = agent.handlers[request.kind]
        async with agent.slots:
            if job.state is not State.PROCESSING and not await self._move(job, Step.START):
                return
            agent.running += 1
            try:
                output = await self._run_handler(job, handler)
            except HandlerError as exc:
                await self._fail(job, str(exc))
                return
            except TimeoutError:
                job.stop.set()
                await self._fail(job, f"time limit of {agent.config.time_limit_seconds:g} s exceeded")
                return
            except asyncio.CancelledError:
                job.stop.set()
                raise
            except Exception as exc:
                log.exception("handler %s failed on job %s", handler.name, job.id[:12])
                await self._fail(job, f"internal error in {handler.name}: {type(exc).__name__}")
                return
            finally:
                agent.running -= 1
        result = self._result_event(job, output)
        if await self._move(job, Step.FINISH, extra=[result]):
            await self._move(job, Step.DELIVERED)

    async def _run_handler(self, job: Job, handler: Any) -> Output:
        agent, request = job.agent, job.request
        assert agent is not None and request is not None

        async def progress(info: str, partial: str = "") -> None:
            event = self._feedback(job, Status.PARTIAL, info, content=partial)
            await self.store.add_outbox(job.id, [event])
            await self._publish(job, [event])

        texts = await self._resolve_inputs(request)
        ctx = JobContext(
            request=_for_handler(request),
            texts=texts,
            settings=agent.settings_for(handler),
            stop=job.stop,
            progress=progress,
            services=self.services,
        )
        output: Output = await asyncio.wait_for(handler.run(ctx), agent.config.time_limit_seconds)
        return output

    async def _resolve_inputs(self, request: JobRequest) -> list[str]:
        texts = []
        for item in request.inputs:
            if item.type == "event":
                found = await self.pool.query([{"ids": [item.data]}], timeout=5.0)
                if not found:
                    raise HandlerError(f"input event {item.data} not found on the node's relays")
                texts.append(_event_input(found[0]))
            elif item.type == "job":
                result = await self._result_of(item.data)
                if result is None:
                    raise HandlerError(f"no result yet for input job {item.data}")
                texts.append(result.content)
            else:
                texts.append(item.data)
        return texts

    async def _result_of(self, job_id: str) -> Event | None:
        """A result (kind 6000-6999) answering ``job_id``, from any relay we read."""
        found = await self.pool.query([{"#e": [job_id], "limit": 20}], timeout=5.0)
        results = [e for e in found if 6000 <= e.kind <= 6999 and e.first_tag_value("e") == job_id]
        return results[0] if results else None

    # --- chained jobs -------------------------------------------------------------

    def _watch_inputs(self) -> None:
        ids = sorted(self._waiting)
        if ids:
            self.pool.subscribe("inputs", [{"#e": ids}], self._on_input_result)
        else:
            self.pool.unsubscribe("inputs")

    def _on_input_result(self, event: Event, relay: str) -> None:
        if not 6000 <= event.kind <= 6999:
            return
        waiting = self._waiting.pop(event.first_tag_value("e") or "", set())
        for jid in waiting:
            job = self.jobs.get(jid)
            if job is not None and job.state is State.WAITING_INPUT:
                self._spawn(self.proceed(job))
        if waiting:
            self._watch_inputs()

    # --- cancellation ----------------------------------------------------------

    def _on_deletion(self, event: Event, relay: str) -> None:
        for jid in event.tag_values("e"):
            job = self.jobs.get(jid)
            if job is not None and job.event.pubkey == event.pubkey:
                self._spawn(self._cancel(job))

    async def _cancel(self, job: Job) -> None:
        job.stop.set()
        if job.task is not None and job.task is not asyncio.current_task():
            job.task.cancel()
        if job.state in (State.RECEIVED, State.DECLINED) or job.agent is None or job.request is None:
            return
        await self._move(job, Step.CANCEL, info="cancelled by the customer", money={"refund_owed": True})

    # --- state changes and announcements ------------------------------------------

    async def _fail(self, job: Job, reason: str) -> None:
        log.info("job %s failed: %s", job.id[:12], reason)
        # A job that was paid for and fails owes the customer a refund.
        await self._move(job, Step.FAIL, info=reason, money={"refund_owed": True})

    async def _move(
        self,
        job: Job,
        step: Step,
        *,
        info: str = "",
        amount_msat: int | None = None,
        bolt11: str = "",
        feedback_extra: Sequence[list[str]] = (),
        extra: Sequence[Event] = (),
        money: Mapping[str, Any] | None = None,
    ) -> bool:
        """Persist a transition with its announcements, then publish them.

        False when the job moved on meanwhile (a cancellation raced a result);
        nothing is announced then. ``money`` goes to ``JobStore.transition``
        (a quote, a settlement, a refund flag), in the same transaction.
        """
        old = job.state
        new = advance(old, step)
        events = list(extra)
        status = ANNOUNCES.get(new)
        if status is not None and job.agent is not None and job.request is not None:
            events.append(
                self._feedback(
                    job, status, info, amount_msat=amount_msat, bolt11=bolt11, extra=list(feedback_extra)
                )
            )
        elif status is not None and job.agent is not None:
            events.append(self._bare_error(job, info))
        try:
            await self.store.transition(
                job.id,
                old,
                new,
                agent=job.agent.name if job.agent else None,
                price_msat=job.price_msat if job.agent else None,
                reason=info or None,
                outbox=events,
                **(money or {}),
            )
        except StaleState:
            return False
        job.record = _with_state(job.record, new)
        self.metrics.moved(job.event.kind, new, time.monotonic() - job.started)
        if new.is_final:
            self.jobs.pop(job.id, None)
        if events:
            await self._publish(job, events)
        return True

    def _feedback(
        self,
        job: Job,
        status: Status,
        info: str,
        *,
        amount_msat: int | None = None,
        bolt11: str = "",
        extra: list[list[str]] | None = None,
        content: str = "",
    ) -> Event:
        agent, request = job.agent, job.request
        assert agent is not None and request is not None
        if request.encrypted and content and job.scheme is not None:
            content = encrypt(agent.signer, request.customer, content, job.scheme)
        tags = feedback_tags(
            request, status, info, amount_msat=amount_msat, bolt11=bolt11, relay_hint=self.public_relay,
            extra=extra,
        )
        return agent.signer.sign(FEEDBACK_KIND, content, tags, created_at=int(self.clock()))

    def _bare_error(self, job: Job, info: str) -> Event:
        """A 7000 error for a request too broken to parse: only its id and author are known."""
        assert job.agent is not None
        tags = [["status", "error", info], ["e", job.id, self.public_relay], ["p", job.event.pubkey]]
        return job.agent.signer.sign(FEEDBACK_KIND, "", tags, created_at=int(self.clock()))

    def _result_event(self, job: Job, output: Output) -> Event:
        agent, request = job.agent, job.request
        assert agent is not None and request is not None
        content = output.content
        if request.encrypted and job.scheme is not None:
            content = encrypt(agent.signer, request.customer, content, job.scheme)
        tags = result_tags(request, amount_msat=job.price_msat, relay_hint=self.public_relay)
        tags += [list(tag) for tag in output.tags]
        return agent.signer.sign(result_kind(request.kind), content, tags, created_at=int(self.clock()))

    async def _publish(self, job: Job | None, events: Sequence[Event]) -> None:
        """Publish stored announcements, in order; mark them sent once a relay has them.

        Marking is batched (:meth:`_flush_sent`): an event published but not yet
        marked when the node dies is published again after the restart, which
        relays answer with ``duplicate:``; nobody sees it twice.
        """
        for event in events:
            results = await self.pool.publish(event)
            if any(ok for ok, _ in results.values()):
                self._sent.append(event.id)
            else:
                log.warning("event %s not accepted by any relay: %s", event.id[:12], results)
        if self._sent and self._flushing is None:
            self._flushing = self._spawn(self._flush_sent())
        extra = self._customer_relays(job)
        if extra:
            self._spawn(self._reply_elsewhere(events, extra))

    def _customer_relays(self, job: Job | None) -> list[str]:
        """Relays from the request's ``relays`` tag that we do not publish to anyway.

        NIP-90 asks providers to publish there. They get their own pool, which
        subscribes to nothing (a customer cannot make the node read jobs from a
        relay of their choosing) and is capped in size.
        """
        if job is None or job.request is None:
            return []
        wanted = [
            url
            for url in job.request.relays[:MAX_CUSTOMER_RELAYS]
            if url.startswith(("ws://", "wss://")) and url not in self.pool.links
        ]
        return [u for u in wanted if u in self.replies.links or len(self.replies.links) < MAX_REPLY_LINKS]

    async def _reply_elsewhere(self, events: Sequence[Event], urls: list[str]) -> None:
        for event in events:
            await self.replies.publish(event, urls=urls)

    async def _flush_sent(self) -> None:
        try:
            while self._sent:
                batch, self._sent = self._sent, []
                await self.store.mark_sent(batch)
        finally:
            self._flushing = None

    # --- restart ---------------------------------------------------------------

    async def _resume(self) -> None:
        unsent = await self.store.unsent()
        if unsent:
            log.info("publishing %d announcements stored before the last stop", len(unsent))
            self._spawn(self._publish_raw([raw for _, raw in unsent]))
        active = await self.store.active()
        if active:
            log.info("resuming %d jobs", len(active))
        for record in active:
            event = parse_event(orjson.loads(record.request))
            self._seen[event.id] = None
            job = Job(record, event)
            self.jobs[job.id] = job
            self._spawn(self._resume_job(job))

    async def _resume_job(self, job: Job) -> None:
        record = job.record
        if record.state is State.RECEIVED:
            await self._decide(job)
            return
        agent = next((a for a in self.agents if a.name == record.agent), None)
        if agent is None:
            job.agent = None
            await self._move(job, Step.FAIL, info="the agent that took this job is gone")
            return
        job.agent, job.price_msat = agent, record.price_msat or 0
        try:
            job.request = self._parse(job, agent)
        except BadRequest as exc:
            await self._fail(job, str(exc))
            return
        if record.state is State.DELIVERING:
            await self._move(job, Step.DELIVERED)  # its result is in the outbox, published above
        elif record.state is State.PROCESSING:
            job.task = self._spawn(self._execute(job))  # the work is redone; its result goes out once
        elif record.state is State.WAITING_INPUT:
            await self.proceed(job)
        elif record.state is State.BIDDING:
            assert self._bidding is not None
            await self._bidding.resume(job)
        elif record.state is State.PAYMENT_REQUIRED:
            await self.billing.resume(job)  # paid while we were down?

    async def _publish_raw(self, raws: Iterable[str]) -> None:
        events = [parse_event(orjson.loads(raw)) for raw in raws]
        await self._publish(None, events)

    async def _retry_unsent(self) -> None:
        """Publish again what no relay has confirmed for a whole round (a relay was down).

        Only events unsent at two checks in a row: the others are, most likely,
        being published for the first time right now.
        """
        earlier: set[str] = set()
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            unsent = {raw for _, raw in await self.store.unsent()}
            stuck = unsent & earlier
            if stuck:
                await self._publish_raw(stuck)
            earlier = unsent

    async def _sweep(self) -> None:
        """Expire jobs that waited too long for payment or for their input."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            limit = self.clock() - self.settings.wait_limit_seconds
            for job in list(self.jobs.values()):
                waiting = job.state in (State.PAYMENT_REQUIRED, State.WAITING_INPUT)
                if waiting and job.record.updated_at < limit:
                    if job.state is State.PAYMENT_REQUIRED:
                        info = f"expired: not paid within {self.settings.wait_limit_seconds} s"
                    else:
                        info = f"expired: input not ready within {self.settings.wait_limit_seconds} s"
                    await self._move(job, Step.EXPIRE, info=info, money={"expire": True})

    # --- announcements ---------------------------------------------------------

    def relays(self) -> list[str]:
        return [self.public_relay, *self.federation_relays]

    async def _announce_agents(self) -> None:
        """Publish each agent's profile, relay list and handler; retract removed agents."""
        known = await self.store.announcements()
        now = int(self.clock())
        for agent in self.agents:
            if not agent.handlers:  # nothing to offer (e.g. no endpoint configured): not announced
                continue
            events = announcement_events(
                agent,
                node_pubkey=self.node_pubkey,
                relays=self.relays(),
                nip05=f"{agent.name}@{self.web_domain}" if self.web_domain else "",
                lud16=f"{agent.name}@{self.web_domain}" if self.web_domain and self.billing.wallet else "",
                bolt12=self.billing.offers.get(agent.name, ""),
                now=now,
            )
            d = digest(events)
            previous = known.pop(agent.name, None)
            if previous is not None and previous.digest == d and previous.pubkey == agent.pubkey:
                continue
            await self._publish(None, events)
            await self.store.save_announcement(
                Announcement(agent.name, agent.pubkey, handler_d(agent), events[-1].id, d)
            )
            log.info("agent %s announced kinds %s", agent.name, sorted(agent.handlers))
        for gone in known.values():
            await self._retract(gone)

    async def _retract(self, gone: Announcement) -> None:
        idle = {a.name: a.signer for a in self.agents if not a.handlers}
        signer = self.retired_signers.get(gone.agent) or idle.get(gone.agent)
        if signer is None or signer.pubkey != gone.pubkey:
            log.warning("agent %s was removed but its key is not unlocked: its announcement stays", gone.agent)
            return
        event = retraction_event(signer, d=gone.d, event_id=gone.event_id, now=int(self.clock()))
        await self._publish(None, [event])
        await self.store.forget_announcement(gone.agent)
        log.info("agent %s removed: its announcement is deleted", gone.agent)

    # --- the operator's changes (web/routes/auth.py: /operator) ------------------

    async def set_paused(self, name: str, paused: bool) -> None:
        """Stop or resume taking new jobs; kept across restarts, announced in the heartbeat."""
        agent = self._agent(name)
        agent.paused = paused
        await self.store.set_meta(f"agent/{name}/paused", "1" if paused else "0")
        self._spawn(self._beat_now())

    async def set_price(self, name: str, price_msat: int) -> None:
        """A new ask for the agent; kept across restarts and announced at once (NIP-89)."""
        if price_msat < 0:
            raise ValueError("a price must not be negative")
        agent = self._agent(name)
        agent.config = replace(agent.config, price_msat=price_msat)
        await self.store.set_meta(f"agent/{name}/price_msat", str(price_msat))
        self._spawn(self._announce_agents())

    def _agent(self, name: str) -> Agent:
        for agent in self.agents:
            if agent.name == name:
                return agent
        raise KeyError(name)

    async def _apply_operator_settings(self) -> None:
        for agent in self.agents:
            if await self.store.get_meta(f"agent/{agent.name}/paused") == "1":
                agent.paused = True
            price = await self.store.get_meta(f"agent/{agent.name}/price_msat")
            if price is not None and price.isdigit():
                agent.config = replace(agent.config, price_msat=int(price))

    async def _beat_now(self) -> None:
        # Later than the last beat: with equal created_at the lower id would win.
        now = self._last_beat = max(int(self.clock()), self._last_beat + 1)
        interval = self.settings.heartbeat_seconds
        for agent in self.agents:
            if agent.handlers:
                await self.pool.publish(heartbeat_event(agent, interval=interval, now=now))

    async def _say_offline(self) -> None:
        """A last heartbeat saying "offline", so customers need not wait for the expiry."""
        # Later than the last online beat: with equal created_at the lower id would win.
        now = max(int(self.clock()), self._last_beat + 1)
        beats = [
            heartbeat_event(a, interval=self.settings.heartbeat_seconds, now=now, online=False)
            for a in self.agents
            if a.handlers
        ]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(self.pool.publish(beat, timeout=2.0) for beat in beats)), 3.0
            )
        except TimeoutError:
            log.warning("could not publish the agents' offline heartbeats")

    async def _heartbeat(self) -> None:
        interval = self.settings.heartbeat_seconds
        while True:
            now = self._last_beat = max(int(self.clock()), self._last_beat + 1)
            beats = [heartbeat_event(a, interval=interval, now=now) for a in self.agents if a.handlers]
            for beat in beats:
                await self.pool.publish(beat)
            await asyncio.sleep(interval)


def _for_handler(request: JobRequest) -> JobRequest:
    """The request as a handler sees it: without the params the engine itself acts on."""
    tags = tuple(tag for tag in request.param_tags if tag[0] not in auction.PARAMS)
    return request if len(tags) == len(request.param_tags) else replace(request, param_tags=tags)


def _with_state(record: JobRecord, state: State) -> JobRecord:
    return replace(record, state=state, updated_at=int(time.time()))


def _event_input(event: Event) -> str:
    """What an ``event`` input means to a handler: its content, or for a NIP-94
    file metadata event (kind 1063) the file's ``url`` (audio to transcribe)."""
    if event.kind == FILE_METADATA_KIND:
        url = event.first_tag_value("url")
        if url:
            return url
    return event.content
