"""The JSON API under /api/, authenticated with NIP-98, over a real engine and job store."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from dvm.agents import build_agents
from dvm.engine import Engine
from dvm.handlers import discover
from dvm.store import JobStore
from nips.nip01 import Event, Signer
from nips.nip98 import auth_event, auth_header
from node.config import AgentConfig, EngineSettings
from node.links import RelayPool
from reputation.service import ReputationService
from web.app import create_app
from web.context import WebContext

BASE = "http://testserver"
CUSTOMER = Signer(os.urandom(32))
STRANGER = Signer(os.urandom(32))
OPERATOR = Signer(os.urandom(32))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """A real engine over a real store, never started: the API only reads them."""
    configs = [
        AgentConfig("summarizer", kinds=(5001,), price_msat=21_000),
        AgentConfig("pow", kinds=(5970,), price_msat=1_500),
    ]
    signers = {c.name: Signer(os.urandom(32)) for c in configs}
    store = JobStore(tmp_path / "node.sqlite3")
    await store.open()
    yield Engine(
        build_agents(configs, signers, discover()),
        store,
        RelayPool([]),
        settings=EngineSettings(),
        home_relay="ws://127.0.0.1:1",
        node_pubkey=OPERATOR.pubkey,
    )
    await store.close()


@pytest.fixture
async def request_event(engine: Engine) -> Event:
    event = CUSTOMER.sign(5001, "", [["i", "Some long text.", "text"]], created_at=int(time.time()))
    assert await engine.store.claim(event) is not None
    return event


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    ctx = WebContext(
        base_url=BASE,
        operators=frozenset({OPERATOR.pubkey}),
        engine=engine,
        reputation=ReputationService(RelayPool([]), roots=[]),
    )
    transport = httpx.ASGITransport(create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


async def get(client: httpx.AsyncClient, path: str, signer: Signer | None = None) -> httpx.Response:
    headers = {"Authorization": auth_header(signer, BASE + path, "GET", int(time.time()))} if signer else {}
    return await client.get(path, headers=headers)


async def test_agents_lists_name_pubkey_kinds_price_and_rank(client: httpx.AsyncClient, engine: Engine) -> None:
    response = await get(client, "/api/agents", STRANGER)
    assert response.status_code == 200
    by_name = {agent.name: agent for agent in engine.agents}
    assert response.json() == [
        {"name": "summarizer", "pubkey": by_name["summarizer"].pubkey, "kinds": [5001], "price_msat": 21_000, "rank": 0.0},
        {"name": "pow", "pubkey": by_name["pow"].pubkey, "kinds": [5970], "price_msat": 1_500, "rank": 0.0},
    ]


async def test_no_header_is_a_401_with_a_challenge(client: httpx.AsyncClient) -> None:
    response = await get(client, "/api/agents")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Nostr"
    assert response.json() == {"error": "missing Authorization header"}


async def test_a_header_signed_for_another_url_is_refused(client: httpx.AsyncClient) -> None:
    header = auth_header(STRANGER, BASE + "/api/agents?all=1", "GET", int(time.time()))
    response = await client.get("/api/agents", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == f"u tag does not match the request URL {BASE}/api/agents"


async def test_the_query_is_part_of_the_signed_url(client: httpx.AsyncClient) -> None:
    header = auth_header(STRANGER, BASE + "/api/agents?all=1", "GET", int(time.time()))
    response = await client.get("/api/agents?all=1", headers={"Authorization": header})
    assert response.status_code == 200


async def test_a_stale_header_is_refused(client: httpx.AsyncClient) -> None:
    header = auth_header(STRANGER, BASE + "/api/agents", "GET", int(time.time()) - 120)
    response = await client.get("/api/agents", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"].startswith("event is too old")


async def test_a_tampered_signature_is_refused(client: httpx.AsyncClient) -> None:
    event = auth_event(STRANGER, BASE + "/api/agents", "GET", int(time.time())).to_dict()
    event["sig"] = event["sig"][::-1]
    header = "Nostr " + base64.b64encode(orjson.dumps(event)).decode()
    response = await client.get("/api/agents", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "signature does not verify"


async def test_the_customer_sees_their_job(client: httpx.AsyncClient, request_event: Event) -> None:
    response = await get(client, f"/api/jobs/{request_event.id}", CUSTOMER)
    assert response.status_code == 200
    job = response.json()
    assert job["id"] == request_event.id
    assert job["kind"] == 5001
    assert job["customer"] == CUSTOMER.pubkey
    assert job["state"] == "received"
    assert job["request"] == request_event.to_dict()
    assert job["price_msat"] is None
    assert set(job) == {
        "id", "kind", "customer", "agent", "state", "request", "price_msat", "reason", "seen_at", "updated_at"
    }  # fmt: skip


async def test_an_operator_sees_any_job(client: httpx.AsyncClient, request_event: Event) -> None:
    response = await get(client, f"/api/jobs/{request_event.id}", OPERATOR)
    assert response.status_code == 200
    assert response.json()["customer"] == CUSTOMER.pubkey


async def test_someone_else_may_not_see_the_job(client: httpx.AsyncClient, request_event: Event) -> None:
    response = await get(client, f"/api/jobs/{request_event.id}", STRANGER)
    assert response.status_code == 403
    assert response.json() == {"error": "only the job's customer or an operator may see it"}


async def test_an_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    for job_id in ("ab" * 32, "not-an-id"):
        response = await get(client, f"/api/jobs/{job_id}", CUSTOMER)
        assert response.status_code == 404
        assert response.json() == {"error": f"no job {job_id}"}


async def test_a_job_needs_authentication_before_anything(client: httpx.AsyncClient, request_event: Event) -> None:
    response = await get(client, f"/api/jobs/{request_event.id}")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Nostr"


async def test_a_header_for_another_method_is_refused(client: httpx.AsyncClient, request_event: Event) -> None:
    path = f"/api/jobs/{request_event.id}"
    header = auth_header(CUSTOMER, BASE + path, "DELETE", int(time.time()))
    response = await client.get(path, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "method tag does not match the request method GET"


async def test_without_an_engine_there_are_no_agents_and_no_jobs() -> None:
    transport = httpx.ASGITransport(create_app(WebContext(base_url=BASE)))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        assert (await get(client, "/api/agents", STRANGER)).json() == []
        assert (await get(client, "/api/jobs/" + "ab" * 32, STRANGER)).status_code == 404
