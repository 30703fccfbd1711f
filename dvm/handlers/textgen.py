"""Kind 5050, text generation: the prompt goes to an OpenAI-compatible chat server.

Spec: ``shared/specs/dvm-kinds/5050.md`` (sections "Input", "Params",
"Output"). The server side is OpenAI's chat completions API, which Ollama,
llama.cpp's server, vLLM and others also speak: ``POST {endpoint}/chat/completions``
with ``stream: true``, answered with server-sent events ``data: {chunk}``
carrying ``choices[0].delta.content``, ended by ``data: [DONE]``.

Input: ``text`` inputs (``event`` and ``job`` inputs too: their content), joined
by blank lines into one user message. The spec's example uses input type
``prompt``; NIP-90 parsing only knows ``text``, ``url``, ``event`` and ``job``,
so such requests are refused before they get here. ``url`` inputs are refused.

Params (all optional; unknown params are refused):

- ``model``: only with ``allow_model_param``, or when it names the configured model;
- ``max_tokens``: 1 to the ``max_tokens`` setting (which is also the default);
- ``temperature``: 0 to 2; ``top_p`` / ``top-p``: above 0, at most 1;
- ``top_k`` / ``top-k``: a positive integer, sent as ``top_k`` (not an OpenAI
  field: llama.cpp and vLLM use it, others may ignore or refuse it);
- ``frequency_penalty``: -2 to 2.

While generating, the text so far is published as ``partial`` feedback about
once a second. The output is the whole text, ``text/plain`` (or
``text/markdown`` when asked: models often write Markdown anyway).

Settings (an agent's ``settings.textgen`` in node.toml):

- ``endpoint`` (default ""): the server's base URL, e.g. ``http://127.0.0.1:11434/v1``
  for Ollama. Empty: the handler is unavailable.
- ``model`` (default ""): the model to run. Empty: unavailable unless
  ``allow_model_param`` is set and requests name one.
- ``allow_model_param`` (default false): let requests choose the model.
- ``api_key_env`` (default ""): the NAME of an environment variable holding the
  API key, sent as ``Authorization: Bearer``. The key itself never goes in
  node.toml, logs or error messages.
- ``max_tokens`` (default 1024): the most tokens a request may ask for.
- ``timeout_seconds`` (default 60): how long to wait to connect, or for the
  server's next bytes while it generates.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from dvm.handlers import HandlerError, JobContext, Output, Settings
from nips.nip90 import JobRequest

DEFAULTS: dict[str, str | int | float | bool] = {
    "endpoint": "",
    "model": "",
    "allow_model_param": False,
    "api_key_env": "",
    "max_tokens": 1024,
    "timeout_seconds": 60,
}
# Seconds between two `partial` feedbacks: each is a signed event on relays.
PROGRESS_INTERVAL = 1.0
# The longest piece of a server's error message passed on to the customer.
MAX_REASON_CHARS = 200
# The spec's example spells these with a hyphen; OpenAI's API with an underscore.
_ALIASES = {"top-k": "top_k", "top-p": "top_p"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SERVER = "the text generation server"


@dataclass(frozen=True, slots=True)
class Generation:
    """What one request asks of the model, checked."""

    model: str
    max_tokens: int
    sampling: dict[str, float | int]  # temperature, top_p, top_k, frequency_penalty


# --- settings -------------------------------------------------------------------


def _setting(settings: Settings, key: str) -> Any:
    return settings.get(key, DEFAULTS[key])


def _check(settings: Settings) -> None:
    for key in settings:
        if key not in DEFAULTS:
            raise ValueError(f"unknown setting {key!r} (known: {', '.join(DEFAULTS)})")
    for key in ("endpoint", "model", "api_key_env"):
        if not isinstance(_setting(settings, key), str):
            raise ValueError(f"{key} must be a string")
    endpoint = _setting(settings, "endpoint")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ValueError("endpoint must be an http:// or https:// URL")
    name = _setting(settings, "api_key_env")
    if name and not _ENV_NAME.fullmatch(name):
        # Not echoed: a key pasted here by mistake must not reach the logs.
        raise ValueError("api_key_env must be the name of an environment variable, not the key")
    if type(_setting(settings, "allow_model_param")) is not bool:
        raise ValueError("allow_model_param must be true or false")
    cap = _setting(settings, "max_tokens")
    if type(cap) is not int or cap < 1:
        raise ValueError("max_tokens must be a positive integer")
    timeout = _setting(settings, "timeout_seconds")
    if type(timeout) not in (int, float) or not timeout > 0:
        raise ValueError("timeout_seconds must be a positive number")


# --- params ---------------------------------------------------------------------


def parse_params(request: JobRequest, settings: Settings) -> Generation:
    """The request's params against this agent's settings; :class:`HandlerError` if unusable."""
    given: dict[str, str] = {}
    for key, value in request.params:
        name = _ALIASES.get(key, key)
        if name not in _PARAMS and name != "model":
            raise HandlerError(f"unknown param {key!r} (known: model, {', '.join(_PARAMS)})")
        if name in given:
            raise HandlerError(f"param {name}: given more than once")
        given[name] = value.strip()
    cap: int = _setting(settings, "max_tokens")
    sampling = {name: _PARAMS[name](value) for name, value in given.items() if name != "model"}
    max_tokens = int(sampling.pop("max_tokens", cap))
    if max_tokens > cap:
        raise HandlerError(f"param max_tokens: at most {cap} here")
    return Generation(_model(given.get("model"), settings), max_tokens, sampling)


def _model(asked: str | None, settings: Settings) -> str:
    configured: str = _setting(settings, "model")
    if asked is None or asked == configured:
        if not configured:
            raise HandlerError("param model is required: this agent has no default model")
        return configured
    if not _setting(settings, "allow_model_param"):
        raise HandlerError(f"param model: this agent runs {configured!r} only")
    if not asked or len(asked) > 200 or not asked.isprintable():
        raise HandlerError("param model: not a model name")
    return asked


def _number(
    name: str, low: float, high: float, *, low_open: bool = False
) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise HandlerError(f"param {name}: expected a number, got {value[:20]!r}") from None
        if not (low < number if low_open else low <= number) or not number <= high:
            bounds = f"above {low:g}, up to {high:g}" if low_open else f"from {low:g} to {high:g}"
            raise HandlerError(f"param {name}: must be {bounds}")
        return number

    return parse


def _integer(name: str, low: int) -> Callable[[str], float]:
    def parse(value: str) -> int:
        if not (value.isascii() and value.isdigit()) or len(value) > 9:
            raise HandlerError(f"param {name}: expected a whole number, got {value[:20]!r}")
        if int(value) < low:
            raise HandlerError(f"param {name}: must be at least {low}")
        return int(value)

    return parse


_PARAMS: dict[str, Callable[[str], float]] = {
    "max_tokens": _integer("max_tokens", 1),
    "temperature": _number("temperature", 0, 2),
    "top_p": _number("top_p", 0, 1, low_open=True),
    "top_k": _integer("top_k", 1),
    "frequency_penalty": _number("frequency_penalty", -2, 2),
}


# --- the server -----------------------------------------------------------------


async def stream_chat(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    secret: str,
    on_text: Callable[[str], Awaitable[None]],
) -> None:
    """Post ``body`` and hand each piece of text the server streams back to ``on_text``.

    Server and connection failures raise :class:`HandlerError`; ``secret`` is
    scrubbed from anything the server says before it is passed on.
    """
    try:
        async with client.stream("POST", url, content=orjson.dumps(body)) as response:
            if response.status_code != 200:
                raise HandlerError(_refusal(response.status_code, await response.aread(), secret))
            if response.headers.get("content-type", "").startswith("application/json"):
                # A server that ignores `stream` answers with one completion.
                await on_text(_message_text(_json(await response.aread())))
                return
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, `: keep-alive` comments, `event:` lines
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                chunk = _json(data.encode())
                if "error" in chunk:
                    raise HandlerError(
                        _error_reason(chunk, secret) or f"{SERVER} failed mid-answer"
                    )
                piece = _delta_text(chunk)
                if piece:
                    await on_text(piece)
    except httpx.ConnectError:
        raise HandlerError(f"cannot reach {SERVER}") from None
    except httpx.TimeoutException:
        raise HandlerError(f"{SERVER} did not answer in time") from None
    except httpx.HTTPError as exc:  # the URL may hold credentials: name the error class only
        raise HandlerError(f"{SERVER} connection failed ({type(exc).__name__})") from None


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise HandlerError(f"{SERVER} sent malformed JSON") from None
    if not isinstance(value, dict):
        raise HandlerError(f"{SERVER} sent an unexpected answer")
    return value


def _delta_text(chunk: dict[str, Any]) -> str:
    try:
        piece = chunk["choices"][0].get("delta", {}).get("content") if chunk["choices"] else ""
    except (KeyError, TypeError, AttributeError):
        raise HandlerError(f"{SERVER} sent an unexpected answer") from None
    return piece if isinstance(piece, str) else ""


def _message_text(completion: dict[str, Any]) -> str:
    try:
        text = completion["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise HandlerError(f"{SERVER} sent an unexpected answer") from None
    return text if isinstance(text, str) else ""


def _refusal(status: int, body: bytes, secret: str) -> str:
    if status in (401, 403):
        # OpenAI quotes part of a wrong key back; pass none of it on.
        return f"{SERVER} refused this agent's API key (HTTP {status})"
    try:
        reason = _error_reason(orjson.loads(body), secret)
    except orjson.JSONDecodeError:
        reason = ""
    return f"{SERVER} answered HTTP {status}" + (f": {reason}" if reason else "")


def _error_reason(obj: Any, secret: str) -> str:
    """The message of an OpenAI error object ``{"error": {"message": ...}}``, or ""."""
    error = obj.get("error") if isinstance(obj, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    if not isinstance(message, str):
        return ""
    if secret:
        message = message.replace(secret, "***")
    return message[:MAX_REASON_CHARS]


# --- the handler ----------------------------------------------------------------


class TextGeneration:
    kind = 5050
    name = "textgen"
    title = "Text generation with a language model"

    def check_settings(self, settings: Settings) -> None:
        _check(settings)

    def unavailable(self, settings: Settings) -> str | None:
        if not _setting(settings, "endpoint"):
            return "no endpoint configured"
        if not _setting(settings, "model") and not _setting(settings, "allow_model_param"):
            return "no model configured"
        name = _setting(settings, "api_key_env")
        if name and not os.environ.get(name):
            return f"environment variable {name} (the API key) is not set"
        return None

    def validate(self, request: JobRequest, settings: Settings) -> None:
        parse_params(request, settings)
        if not request.inputs:
            raise HandlerError("no input: send the prompt as a text input")
        if any(i.type == "url" for i in request.inputs):
            raise HandlerError("url inputs are not supported; send the prompt as text")

    async def run(self, ctx: JobContext) -> Output:
        generation = parse_params(ctx.request, ctx.settings)
        prompt = "\n\n".join(ctx.texts).strip()
        if not prompt:
            raise HandlerError("the prompt is empty")
        key_env: str = _setting(ctx.settings, "api_key_env")
        secret = os.environ.get(key_env, "") if key_env else ""
        if key_env and not secret:
            raise HandlerError("this agent's API key is missing")
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        body = {
            "model": generation.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": generation.max_tokens,
            "stream": True,
            **generation.sampling,
        }
        url = str(_setting(ctx.settings, "endpoint")).rstrip("/") + "/chat/completions"
        timeout = httpx.Timeout(float(_setting(ctx.settings, "timeout_seconds")))
        pieces: list[str] = []
        last = time.monotonic()

        async def on_text(piece: str) -> None:
            nonlocal last
            if ctx.stop.is_set():
                raise HandlerError("stopped: the job was cancelled or timed out")
            pieces.append(piece)
            if time.monotonic() - last >= PROGRESS_INTERVAL:
                last = time.monotonic()
                await ctx.progress("generating", "".join(pieces))

        async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:
            await stream_chat(client, url, body, secret, on_text)
        text = "".join(pieces)
        if not text.strip():
            raise HandlerError("the model returned no text")
        mime = "text/markdown" if ctx.request.output == "text/markdown" else "text/plain"
        return Output(text, mime)


HANDLER = TextGeneration()
