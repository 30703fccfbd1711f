"""Tests for dvm/handlers/textgen.py: kind 5050 against a fake OpenAI-compatible server.

The fake (tests/fakes/openai_server.py) listens on a real port and speaks the
real wire format; its answer is the prompt's words reversed.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from dvm.handlers import HandlerError, JobContext, Settings, textgen
from dvm.handlers.textgen import HANDLER, stream_chat
from nips.nip90 import JobRequest, parse_request
from tests.fakes.openai_server import FakeOpenAI
from tests.helpers import make_event

PROMPT = "what is the capital of France?"
ANSWER = "France? of capital the is what"
KEY_ENV = "TIMMY_TEST_TEXTGEN_KEY"


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def request(*params: tuple[str, str], prompt: str = PROMPT) -> JobRequest:
    tags = [["i", prompt, "text"], *(["param", k, v] for k, v in params)]
    return parse_request(make_event(kind=5050, tags=tags))


def settings_for(fake: FakeOpenAI, **more: Any) -> dict[str, Any]:
    return {"endpoint": fake.base_url, "model": "fake-model", **more}


async def generate(req: JobRequest, settings: Settings, **ctx: Any) -> str:
    HANDLER.check_settings(settings)
    assert HANDLER.unavailable(settings) is None
    HANDLER.validate(req, settings)
    texts = [i.data for i in req.inputs]
    return (
        await HANDLER.run(JobContext(request=req, texts=texts, settings=settings, **ctx))
    ).content


async def test_generates_text_from_the_prompt(server: FakeOpenAI) -> None:
    assert await generate(request(), settings_for(server)) == ANSWER
    [body] = server.requests
    assert body["stream"] is True
    assert body["model"] == "fake-model"
    assert body["max_tokens"] == 1024
    assert body["messages"] == [{"role": "user", "content": PROMPT}]


async def test_params_reach_the_server_in_both_spellings(server: FakeOpenAI) -> None:
    params = [("max_tokens", "3"), ("temperature", "0.5"), ("top-k", "50"), ("top-p", "0.7")]
    assert await generate(request(*params), settings_for(server)) == "France? of capital"
    [body] = server.requests
    assert (body["max_tokens"], body["temperature"], body["top_k"], body["top_p"]) == (
        3,
        0.5,
        50,
        0.7,
    )
    await generate(request(("top_k", "5"), ("top_p", "1")), settings_for(server))
    assert (server.requests[1]["top_k"], server.requests[1]["top_p"]) == (5, 1.0)


async def test_several_inputs_make_one_prompt(server: FakeOpenAI) -> None:
    tags = [["i", "one two", "text"], ["i", "three", "text"]]
    req = parse_request(make_event(kind=5050, tags=tags))
    assert await generate(req, settings_for(server)) == "three two one"
    assert server.requests[0]["messages"][0]["content"] == "one two\n\nthree"


async def test_progress_reports_the_text_so_far(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textgen, "PROGRESS_INTERVAL", 0.1)
    calls: list[tuple[str, str]] = []

    async def progress(info: str, partial: str = "") -> None:
        calls.append((info, partial))

    prompt = " ".join(f"w{i}" for i in range(12))
    async with FakeOpenAI(chunk_delay=0.02) as fake:
        text = await generate(request(prompt=prompt), settings_for(fake), progress=progress)
    assert text == " ".join(f"w{i}" for i in reversed(range(12)))
    # 13 chunks 20 ms apart: reported along the way, but not for every chunk.
    assert 2 <= len(calls) <= 8
    partials = [partial for _, partial in calls]
    assert all(info == "generating" for info, _ in calls)
    assert all(text.startswith(p) and p for p in partials)
    assert partials == sorted(partials, key=len) and len(set(partials)) == len(partials)


async def test_no_progress_for_an_answer_under_a_second(server: FakeOpenAI) -> None:
    calls: list[str] = []

    async def progress(info: str, partial: str = "") -> None:
        calls.append(partial)

    await generate(request(), settings_for(server), progress=progress)
    assert calls == []


async def test_output_mime_follows_the_request(server: FakeOpenAI) -> None:
    req = parse_request(
        make_event(kind=5050, tags=[["i", PROMPT, "text"], ["output", "text/markdown"]])
    )
    out = await HANDLER.run(JobContext(request=req, texts=[PROMPT], settings=settings_for(server)))
    assert (out.mime, out.content) == ("text/markdown", ANSWER)


# --- the API key --------------------------------------------------------------------


async def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-right-key-1234")
    async with FakeOpenAI(api_key="sk-right-key-1234") as fake:
        assert await generate(request(), settings_for(fake, api_key_env=KEY_ENV)) == ANSWER
        assert fake.headers[0]["authorization"] == "Bearer sk-right-key-1234"


async def test_a_wrong_key_is_a_clear_error_that_does_not_quote_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-9876")
    async with FakeOpenAI(api_key="sk-right-key-1234") as fake:
        with pytest.raises(HandlerError) as caught:
            await generate(request(), settings_for(fake, api_key_env=KEY_ENV))
    message = str(caught.value)
    assert message == "the text generation server refused this agent's API key (HTTP 401)"
    assert "9876" not in message and "sk-" not in message


async def test_no_key_sent_to_a_server_that_wants_one() -> None:
    async with FakeOpenAI(api_key="sk-right-key-1234") as fake:
        with pytest.raises(HandlerError, match="refused this agent's API key"):
            await generate(request(), settings_for(fake))
        assert "authorization" not in fake.headers[0]


def test_a_missing_key_variable_makes_the_agent_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    reason = HANDLER.unavailable({"endpoint": "http://x", "model": "m", "api_key_env": KEY_ENV})
    assert reason == f"environment variable {KEY_ENV} (the API key) is not set"


# --- server failures ------------------------------------------------------------------


async def test_server_down() -> None:
    with socket.socket() as sock:  # a port nobody listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = {"endpoint": f"http://127.0.0.1:{port}/v1", "model": "fake-model"}
    with pytest.raises(HandlerError) as caught:
        await generate(request(), settings)
    assert str(caught.value) == "cannot reach the text generation server"


async def test_unknown_model_passes_on_the_servers_reason(server: FakeOpenAI) -> None:
    with pytest.raises(HandlerError) as caught:
        await generate(request(), settings_for(server, model="llama-9000"))
    assert str(caught.value) == (
        "the text generation server answered HTTP 404: "
        "The model `llama-9000` does not exist or you do not have access to it."
    )


async def test_a_silent_server_times_out() -> None:
    async with FakeOpenAI(chunk_delay=1.0) as fake:
        with pytest.raises(HandlerError, match="did not answer in time"):
            await generate(request(), settings_for(fake, timeout_seconds=0.1))


async def test_malformed_stream_data() -> None:
    async with FakeOpenAI(malformed_stream=True) as fake:
        with pytest.raises(HandlerError, match="sent malformed JSON"):
            await generate(request(), settings_for(fake))


async def test_stop_flag_ends_generation(server: FakeOpenAI) -> None:
    req = request()
    ctx = JobContext(request=req, texts=[PROMPT], settings=settings_for(server))
    ctx.stop.set()
    with pytest.raises(HandlerError, match="stopped"):
        await HANDLER.run(ctx)


async def test_a_server_that_ignores_stream_and_errors_mid_stream() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/plain/chat/completions":
            completion = {"choices": [{"message": {"role": "assistant", "content": "whole"}}]}
            return httpx.Response(200, json=completion)
        body = b'data: {"choices":[{"delta":{"content":"half"}}]}\n\ndata: {"error":{"message":"out of memory"}}\n\n'
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    pieces: list[str] = []

    async def collect(piece: str) -> None:
        pieces.append(piece)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        await stream_chat(client, "http://fake/plain/chat/completions", {}, "", collect)
        assert pieces == ["whole"]
        with pytest.raises(HandlerError, match=r"^out of memory$"):
            await stream_chat(client, "http://fake/sse/chat/completions", {}, "", collect)
        assert pieces == ["whole", "half"]


# --- requests, settings, availability ---------------------------------------------------


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ((("max_tokens", "2048"),), "param max_tokens: at most 1024 here"),
        ((("max_tokens", "0"),), "param max_tokens: must be at least 1"),
        ((("max_tokens", "many"),), "param max_tokens: expected a whole number"),
        ((("max_tokens", "\u00b2"),), "param max_tokens: expected a whole number"),
        ((("temperature", "nan"),), "param temperature: must be from 0 to 2"),
        ((("temperature", "2.5"),), "param temperature: must be from 0 to 2"),
        ((("temperature", "hot"),), "param temperature: expected a number"),
        ((("top-p", "0"),), "param top_p: must be above 0, up to 1"),
        ((("top_k", "-1"),), "param top_k: expected a whole number"),
        ((("frequency_penalty", "3"),), "param frequency_penalty: must be from -2 to 2"),
        ((("top_k", "5"), ("top-k", "6")), "param top_k: given more than once"),
        ((("seed", "5"),), "unknown param 'seed'"),
        ((("model", "LLaMA-2"),), "param model: this agent runs 'fake-model' only"),
    ],
)
def test_bad_params_are_refused(params: tuple[tuple[str, str], ...], reason: str) -> None:
    settings = {"endpoint": "http://127.0.0.1:1/v1", "model": "fake-model"}
    with pytest.raises(HandlerError) as caught:
        HANDLER.validate(request(*params), settings)
    assert str(caught.value).startswith(reason)


async def test_model_param_when_allowed() -> None:
    async with FakeOpenAI(models=("fake-model", "other-model")) as fake:
        settings = settings_for(fake, allow_model_param=True)
        await generate(request(("model", "other-model")), settings)
        await generate(request(), settings)
        await generate(request(("model", "fake-model")), settings_for(fake))
    assert [body["model"] for body in fake.requests] == ["other-model", "fake-model", "fake-model"]


def test_a_model_is_needed_from_somewhere() -> None:
    settings = {"endpoint": "http://127.0.0.1:1/v1", "allow_model_param": True}
    assert HANDLER.unavailable(settings) is None
    with pytest.raises(HandlerError, match="param model is required"):
        HANDLER.validate(request(), settings)
    HANDLER.validate(request(("model", "m")), settings)


def test_inputs() -> None:
    settings = {"endpoint": "http://127.0.0.1:1/v1", "model": "m"}
    no_input = parse_request(make_event(kind=5050, tags=[["param", "temperature", "1"]]))
    with pytest.raises(HandlerError, match="no input"):
        HANDLER.validate(no_input, settings)
    url = parse_request(make_event(kind=5050, tags=[["i", "https://example.com", "url"]]))
    with pytest.raises(HandlerError, match="url inputs are not supported"):
        HANDLER.validate(url, settings)


def test_unavailable() -> None:
    assert HANDLER.unavailable({}) == "no endpoint configured"
    assert HANDLER.unavailable({"endpoint": "http://127.0.0.1:11434/v1"}) == "no model configured"
    assert (
        HANDLER.unavailable({"endpoint": "http://127.0.0.1:11434/v1", "model": "llama3.2"}) is None
    )


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"url": "http://x"}, "'url'"),
        ({"endpoint": "127.0.0.1:11434"}, "endpoint"),
        ({"endpoint": 5}, "endpoint"),
        ({"model": False}, "model"),
        ({"allow_model_param": "yes"}, "allow_model_param"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": "60"}, "timeout_seconds"),
        ({"api_key_env": "1BAD"}, "api_key_env"),
    ],
)
def test_bad_settings_name_the_key(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        HANDLER.check_settings(settings)


def test_a_key_pasted_into_api_key_env_is_not_repeated() -> None:
    with pytest.raises(ValueError) as caught:
        HANDLER.check_settings({"api_key_env": "sk-proj-abc123"})
    assert "api_key_env" in str(caught.value) and "abc123" not in str(caught.value)


def test_good_settings() -> None:
    HANDLER.check_settings({})
    HANDLER.check_settings(
        {
            "endpoint": "https://api.example.com/v1",
            "model": "m",
            "allow_model_param": True,
            "api_key_env": "OPENAI_API_KEY",
            "max_tokens": 4096,
            "timeout_seconds": 12.5,
        }
    )
