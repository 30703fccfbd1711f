"""Logging in with a NIP-07 signed kind 27235 event, sessions, CSRF and the operator page."""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dvm.agents import build_agents
from dvm.engine import Engine
from dvm.handlers import discover
from dvm.store import JobStore
from nips.nip01 import Signer
from node.config import AgentConfig, EngineSettings
from node.links import RelayPool
from web import auth
from web.app import create_app
from web.context import WebContext

BASE = "http://testserver"
ALICE = Signer(os.urandom(32))
OPERATOR = Signer(os.urandom(32))


def login_event(
    signer: Signer,
    nonce: str | None,
    *,
    created_at: int | None = None,
    kind: int = 27235,
    url: str = BASE + "/login",
    method: str = "POST",
) -> dict[str, Any]:
    """What ``window.nostr.signEvent`` returns for login.js's template."""
    tags = [["u", url], ["method", method]]
    if nonce is not None:
        tags.append(["challenge", nonce])
    when = int(time.time()) if created_at is None else created_at
    return signer.sign(kind, "", tags, created_at=when).to_dict()


async def new_nonce(client: httpx.AsyncClient) -> str:
    response = await client.post("/login/nonce")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    return str(response.json()["nonce"])


async def log_in(client: httpx.AsyncClient, signer: Signer) -> httpx.Response:
    response = await client.post("/login", json=login_event(signer, await new_nonce(client)))
    assert response.status_code == 200, response.text
    return response


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "the page has no logout form"
    return found.group(1)


def real_engine(tmp_path: Path) -> Engine:
    """A real engine, never started: the pages only read its agents."""
    configs = [
        AgentConfig("summarizer", kinds=(5001,), price_msat=21_000),
        AgentConfig("writer", kinds=(5050,), price_msat=1_500, price_per_kb_msat=100),
    ]
    signers = {c.name: Signer(os.urandom(32)) for c in configs}
    agents = build_agents(configs, signers, discover())
    return Engine(
        agents,
        JobStore(tmp_path / "node.sqlite3"),
        RelayPool([]),
        settings=EngineSettings(),
        home_relay="ws://127.0.0.1:1",
        node_pubkey=OPERATOR.pubkey,
    )


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[WebContext]:
    engine = real_engine(tmp_path)
    await engine.store.open()  # the operator page reads the ledger and recent errors
    yield WebContext(
        node_name="testnode", base_url=BASE, operators=frozenset({OPERATOR.pubkey}), engine=engine
    )
    await engine.store.close()


def browser(ctx: WebContext) -> httpx.AsyncClient:
    """A client that keeps cookies, as a browser does (the app only ever sees HTTP)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(create_app(ctx)), base_url=ctx.base_url)


@pytest.fixture
async def client(ctx: WebContext) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(ctx) as c:
        yield c


# --- the pure parts ------------------------------------------------------------


def test_a_nonce_burns_once() -> None:
    nonces = auth.Nonces()
    nonce = nonces.issue(1000)
    assert re.fullmatch(r"[0-9a-f]{64}", nonce)
    assert nonces.burn(nonce, 1001)
    assert not nonces.burn(nonce, 1002)
    assert "replay" in nonces.refusal(nonce)
    assert not nonces.burn("ab" * 32, 1001)
    assert "not issued" in nonces.refusal("ab" * 32)


def test_a_nonce_expires() -> None:
    nonces = auth.Nonces(ttl=120)
    nonce = nonces.issue(1000)
    assert not nonces.burn(nonce, 1121)
    assert "expired" in nonces.refusal(nonce)
    assert nonces.burn(nonces.issue(1000), 1120)


def test_outstanding_nonces_are_bounded_oldest_first() -> None:
    nonces = auth.Nonces(limit=3)
    first, *rest = [nonces.issue(1000 + i) for i in range(4)]
    assert len(nonces) == 3
    assert not nonces.burn(first, 1005)
    assert all(nonces.burn(n, 1005) for n in rest)


def test_expired_nonces_are_dropped_when_new_ones_are_issued() -> None:
    nonces = auth.Nonces(ttl=120)
    for i in range(5):
        nonces.issue(1000 + i)
    nonces.issue(2000)
    assert len(nonces) == 1


def test_a_session_reads_back_until_it_expires() -> None:
    secret = os.urandom(32)
    value = auth.make_session(ALICE.pubkey, secret, 1000, ttl=60)
    assert auth.read_session(value, secret, 1059) == ALICE.pubkey
    assert auth.read_session(value, secret, 1060) is None
    assert auth.read_session(value, os.urandom(32), 1000) is None


@pytest.mark.parametrize(
    "forge",
    [
        lambda v: v.replace(v.split(".")[1], str(int(v.split(".")[1]) + 10**6)),  # later expiry
        lambda v: OPERATOR.pubkey + v[64:],  # someone else's key
        lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),  # a changed mac
        lambda v: v.rsplit(".", 1)[0],
        lambda v: v + ".x",
        lambda v: "",
        lambda v: "a.b.c",
        lambda v: v.replace(v.split(".")[1], "\uff11\uff12\uff13"),  # digits, but not ASCII ones
    ],
)
def test_a_forged_session_reads_as_nobody(forge: Any) -> None:
    secret = os.urandom(32)
    assert auth.read_session(forge(auth.make_session(ALICE.pubkey, secret, 1000)), secret, 1000) is None


def test_a_csrf_token_belongs_to_one_session() -> None:
    secret = os.urandom(32)
    one, two = (auth.make_session(ALICE.pubkey, secret, t) for t in (1000, 1001))
    assert auth.csrf_token(one, secret) != auth.csrf_token(two, secret)
    assert auth.csrf_token(one, secret) != auth.csrf_token(one, os.urandom(32))
    assert auth.csrf_token(one, secret) != one.rsplit(".", 1)[1]  # not the session's own mac


def test_check_login_returns_the_signer_once() -> None:
    nonces = auth.Nonces()
    now = time.time()
    body = orjson.dumps(login_event(ALICE, nonces.issue(now)))
    assert auth.check_login(body, nonces=nonces, origin=BASE, now=now) == ALICE.pubkey
    with pytest.raises(auth.LoginRefused, match="replay"):
        auth.check_login(body, nonces=nonces, origin=BASE, now=now)


def test_non_ascii_macs_and_tokens_are_just_wrong() -> None:
    secret = os.urandom(32)
    value = auth.make_session(ALICE.pubkey, secret, 1000)
    assert auth.read_session(value[:-1] + "é", secret, 1000) is None


# --- the login page and the login -----------------------------------------------


async def test_the_login_page_explains_nip07_and_loads_the_script(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    text = page.text
    assert "Log in with your Nostr extension" in text
    assert "NIP-07" in text
    assert "<noscript>" in text
    for extension in ("nos2x", "Alby", "Flamingo"):
        assert extension in text
    assert '<script src="/static/login.js"' in text
    assert f'data-login-url="{BASE}/login"' in text
    assert 'href="/login">Log in</a>' in text  # the layout: nobody signed in
    assert '<script src="/static/nip07.js"' in text  # the shared signer, before login.js
    script = await client.get("/static/login.js")
    assert script.status_code == 200
    assert "27235" in script.text
    signer = await client.get("/static/nip07.js")
    assert signer.status_code == 200 and "window.nostr.signEvent" in signer.text


async def test_nonces_are_fresh_each_time(client: httpx.AsyncClient) -> None:
    assert len({await new_nonce(client) for _ in range(5)}) == 5


async def test_a_valid_login_sets_a_session_cookie(client: httpx.AsyncClient, ctx: WebContext) -> None:
    response = await log_in(client, ALICE)
    assert response.json() == {"pubkey": ALICE.pubkey}
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{auth.COOKIE}=")
    attributes = {part.strip() for part in cookie.split(";")[1:]}
    assert {"HttpOnly", "SameSite=Lax", "Path=/", f"Max-Age={auth.SESSION_TTL}"} <= attributes
    assert "Secure" not in attributes
    value = client.cookies[auth.COOKIE]
    assert auth.read_session(value, ctx.session_secret, time.time()) == ALICE.pubkey
    page = (await client.get("/login")).text
    assert f'title="{ALICE.pubkey}"' in page
    assert csrf_of(page) == auth.csrf_token(value, ctx.session_secret)


async def test_under_https_the_cookie_is_secure_and_host_only() -> None:
    base = "https://timmy.example"
    async with browser(WebContext(base_url=base)) as client:
        event = login_event(ALICE, await new_nonce(client), url=base + "/login")
        response = await client.post("/login", json=event, headers={"Origin": base})
        assert response.status_code == 200, response.text
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("__Host-timmy_session=")
        assert {"Secure", "HttpOnly", "SameSite=Lax", "Path=/"} <= {p.strip() for p in cookie.split(";")}
        assert f'title="{ALICE.pubkey}"' in (await client.get("/login")).text


async def refused(client: httpx.AsyncClient, event: Any, status: int = 403, **headers: str) -> str:
    response = await client.post("/login", json=event, headers=headers)
    assert response.status_code == status, response.text
    assert "set-cookie" not in response.headers
    return str(response.json()["error"])


async def test_a_replayed_login_is_refused(client: httpx.AsyncClient) -> None:
    event = login_event(ALICE, await new_nonce(client))
    assert (await client.post("/login", json=event)).status_code == 200
    client.cookies.clear()
    assert await refused(client, event) == "challenge was already used: this login event is a replay"


async def test_an_expired_login_event_is_refused(client: httpx.AsyncClient) -> None:
    event = login_event(ALICE, await new_nonce(client), created_at=int(time.time()) - 61)
    assert (await refused(client, event)).startswith("event is too old")


async def test_a_login_event_from_the_future_is_refused(client: httpx.AsyncClient) -> None:
    event = login_event(ALICE, await new_nonce(client), created_at=int(time.time()) + 61)
    assert (await refused(client, event)).startswith("event is from the future")


async def test_a_nonce_never_issued_is_refused(client: httpx.AsyncClient) -> None:
    event = login_event(ALICE, os.urandom(32).hex())
    assert await refused(client, event) == "challenge was not issued by this server (or expired long ago)"


async def test_a_login_event_for_another_site_is_refused(client: httpx.AsyncClient) -> None:
    event = login_event(ALICE, await new_nonce(client), url="https://evil.example/login")
    assert await refused(client, event) == f"u tag does not match the request URL {BASE}/login"


async def test_a_login_from_another_origin_is_refused(client: httpx.AsyncClient) -> None:
    nonce = await new_nonce(client)
    event = login_event(ALICE, nonce)
    reason = await refused(client, event, Origin="https://evil.example")
    assert reason == f"wrong origin https://evil.example: log in from {BASE}"
    # The challenge was not spent by the refused request.
    assert (await client.post("/login", json=event, headers={"Origin": BASE})).status_code == 200


async def test_a_tampered_signature_is_refused(client: httpx.AsyncClient) -> None:
    event = login_event(ALICE, await new_nonce(client))
    event["sig"] = ("0" if event["sig"][0] != "0" else "1") + event["sig"][1:]
    assert await refused(client, event) == "signature does not verify"


async def test_a_login_event_of_another_kind_is_refused(client: httpx.AsyncClient) -> None:
    event = login_event(ALICE, await new_nonce(client), kind=22242)
    assert await refused(client, event) == "wrong kind: expected 27235, got 22242"


async def test_a_login_event_without_challenge_is_refused(client: httpx.AsyncClient) -> None:
    assert await refused(client, login_event(ALICE, None)) == "missing challenge tag: ask /login/nonce for one"


async def test_a_login_event_for_another_method_is_refused(client: httpx.AsyncClient) -> None:
    event = login_event(ALICE, await new_nonce(client), method="GET")
    assert await refused(client, event) == "method tag does not match the request method POST"


async def test_malformed_logins_are_bad_requests(client: httpx.AsyncClient) -> None:
    event = login_event(ALICE, await new_nonce(client))
    event["content"] = "changed after signing"
    assert await refused(client, event, 400) == "invalid event: event id does not match the hash of its content"
    assert await refused(client, [1, 2, 3], 400) == "invalid event: event must be a JSON object"
    response = await client.post("/login", content=b"{", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": "the login request must be a signed event as JSON"}


async def test_a_login_posted_as_a_form_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/login", data={"event": "{}"})
    assert response.status_code == 400
    assert response.json() == {"error": "send the signed login event as application/json"}


# --- sessions ------------------------------------------------------------------


async def test_a_forged_or_expired_session_cookie_is_ignored(client: httpx.AsyncClient, ctx: WebContext) -> None:
    now = time.time()
    for value in (
        auth.make_session(OPERATOR.pubkey, os.urandom(32), now),  # not our secret
        auth.make_session(OPERATOR.pubkey, ctx.session_secret, now - 13 * 3600),  # expired
        f"{OPERATOR.pubkey}.{int(now) + 3600}.{'0' * 64}",
        "garbage",
    ):
        client.cookies.set(auth.COOKIE, value)
        response = await client.get("/operator")
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        assert 'href="/login">Log in</a>' in (await client.get("/login")).text


async def test_logout_without_csrf_is_refused(client: httpx.AsyncClient) -> None:
    await log_in(client, ALICE)
    assert (await client.post("/logout")).status_code == 403
    assert (await client.post("/logout", data={"csrf": "0" * 64})).status_code == 403
    assert client.cookies.get(auth.COOKIE)


async def test_a_csrf_token_of_another_session_is_refused(client: httpx.AsyncClient, ctx: WebContext) -> None:
    await log_in(client, ALICE)
    other = auth.make_session(ALICE.pubkey, ctx.session_secret, time.time() - 5)
    token = auth.csrf_token(other, ctx.session_secret)
    assert (await client.post("/logout", data={"csrf": token})).status_code == 403


async def test_logout_with_csrf_clears_the_cookie(client: httpx.AsyncClient) -> None:
    await log_in(client, ALICE)
    token = csrf_of((await client.get("/login")).text)
    response = await client.post("/logout", data={"csrf": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cleared = response.headers["set-cookie"]
    assert cleared.startswith(f"{auth.COOKIE}=;") and "Max-Age=0" in cleared
    assert client.cookies.get(auth.COOKIE) is None
    assert 'href="/login">Log in</a>' in (await client.get("/login")).text


async def test_logout_takes_the_csrf_token_as_a_header(client: httpx.AsyncClient) -> None:
    await log_in(client, ALICE)
    token = csrf_of((await client.get("/login")).text)
    response = await client.post("/logout", headers={"X-CSRF-Token": token})
    assert response.status_code == 303


async def test_logout_when_not_logged_in_is_refused(client: httpx.AsyncClient) -> None:
    assert (await client.post("/logout", data={"csrf": "x"})).status_code == 403


# --- the operator page -----------------------------------------------------------


async def test_the_operator_page_sends_strangers_to_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/operator")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_the_operator_page_refuses_a_non_operator(client: httpx.AsyncClient) -> None:
    await log_in(client, ALICE)
    response = await client.get("/operator")
    assert response.status_code == 403
    assert "Only the node&#39;s operators may see this page" in response.text
    assert "summarizer" not in response.text


async def test_the_operator_page_lists_agents_for_an_operator(client: httpx.AsyncClient, ctx: WebContext) -> None:
    await log_in(client, OPERATOR)
    response = await client.get("/operator")
    assert response.status_code == 200
    assert ctx.engine is not None
    for agent in ctx.engine.agents:
        assert agent.name in response.text
        assert agent.pubkey in response.text
    assert "21 sat" in response.text
    assert "1 sat (1500 msat) + 100 msat/KiB" in response.text
    assert "serving kinds 5001" in response.text
    assert 'name="csrf"' in response.text  # the layout's logout form
    assert "No refunds owed." in response.text and "No failed jobs." in response.text


async def test_the_operator_page_shows_refunds_owed_and_recent_errors(
    client: httpx.AsyncClient, ctx: WebContext
) -> None:
    import time

    from dvm.jobs import State
    from dvm.store import PaymentRecord

    assert ctx.engine is not None
    store = ctx.engine.store
    request = Signer(os.urandom(32)).sign(5001, "", [["i", "x", "text"]], created_at=int(time.time()))
    await store.claim(request)
    quote = PaymentRecord("cd" * 32, request.id, "summarizer", 21_000, 0, "", "invoice", "pending", 1, None)
    await store.transition(request.id, State.RECEIVED, State.PAYMENT_REQUIRED, agent="summarizer", payment=quote)
    await store.transition(request.id, State.PAYMENT_REQUIRED, State.PROCESSING, settle=(quote.payment_hash, 21_000))
    await store.transition(request.id, State.PROCESSING, State.FAILED, reason="handler blew up", refund_owed=True)
    await log_in(client, OPERATOR)
    page = (await client.get("/operator")).text
    assert "21000 msat" in page and "handler blew up" in page and f"/jobs/{request.id}" in page


async def test_an_operator_pauses_and_reprices_an_agent_and_it_sticks(
    client: httpx.AsyncClient, ctx: WebContext
) -> None:
    assert ctx.engine is not None
    await log_in(client, OPERATOR)
    page = (await client.get("/operator")).text
    token = csrf_of(page)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = await client.post("/operator/agents/summarizer", content="action=pause", headers=form)
    assert refused.status_code == 403  # no CSRF token
    done = await client.post("/operator/agents/summarizer", content=f"action=pause&csrf={token}", headers=form)
    assert done.status_code == 303
    summarizer = next(a for a in ctx.engine.agents if a.name == "summarizer")
    assert summarizer.paused and "paused" in (await client.get("/operator")).text
    done = await client.post("/operator/agents/summarizer", content=f"action=price&price_sats=42&csrf={token}",
                             headers=form)
    assert done.status_code == 303 and summarizer.config.price_msat == 42_000
    bad = await client.post("/operator/agents/summarizer", content=f"action=price&price_sats=-1&csrf={token}",
                            headers=form)
    assert bad.status_code == 400
    missing = await client.post("/operator/agents/nobody", content=f"action=pause&csrf={token}", headers=form)
    assert missing.status_code == 404
    # A restarted engine on the same store keeps the operator's changes.
    fresh = real_engine_on(ctx.engine.store)
    await fresh._apply_operator_settings()
    again = next(a for a in fresh.agents if a.name == "summarizer")
    assert again.paused and again.config.price_msat == 42_000


async def test_a_non_operator_cannot_change_agents(client: httpx.AsyncClient, ctx: WebContext) -> None:
    await log_in(client, Signer(os.urandom(32)))
    page = (await client.get("/")).text
    token = csrf_of(page)
    refused = await client.post("/operator/agents/summarizer", content=f"action=pause&csrf={token}",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert refused.status_code == 403
    assert ctx.engine is not None and not ctx.engine.agents[0].paused


def real_engine_on(store: JobStore) -> Engine:
    configs = [AgentConfig("summarizer", kinds=(5001,), price_msat=21_000)]
    agents = build_agents(configs, {"summarizer": Signer(os.urandom(32))}, discover())
    return Engine(agents, store, RelayPool([]), settings=EngineSettings(), home_relay="ws://127.0.0.1:1",
                  node_pubkey=OPERATOR.pubkey)
