"""A FAKE OpenAI-compatible chat completions server, for tests only.

It is not a model: its answer is the words of the last user message in
reverse order, so a test can tell the prompt arrived intact. What it does
imitate is the wire format real servers (OpenAI, Ollama's ``/v1``, llama.cpp,
vLLM) use, on a real local port, over plain HTTP/1.1:

- ``POST /v1/chat/completions`` with a JSON body;
- ``Authorization: Bearer <key>`` checked when ``api_key`` is set: 401 with
  OpenAI's error object otherwise (quoting part of a wrong key, as OpenAI does);
- an unknown model: 404 with ``code: model_not_found``;
- ``stream: true``: ``text/event-stream`` in chunked transfer encoding, one
  ``data: {chat.completion.chunk}`` event per word (``choices[0].delta.content``),
  a last chunk with ``finish_reason``, then ``data: [DONE]``;
- ``stream: false``: one ``chat.completion`` object;
- ``max_tokens`` counts words here: the answer stops there (finish_reason ``length``).

Every request body is kept in ``requests`` and its headers in ``headers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}


class FakeOpenAI:
    def __init__(
        self,
        *,
        models: tuple[str, ...] = ("fake-model",),
        api_key: str | None = None,
        chunk_delay: float = 0.0,
        malformed_stream: bool = False,
    ) -> None:
        self.models = models
        self.api_key = api_key
        self.chunk_delay = chunk_delay  # seconds before each streamed chunk
        self.malformed_stream = malformed_stream  # send a chunk that is not JSON
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None
        self._port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    async def __aenter__(self) -> FakeOpenAI:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    # --- HTTP/1.1, one request per connection --------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *header_lines = head.split("\r\n")
            method, path, _version = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            await self._route(method, path, headers, body, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _route(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        writer: asyncio.StreamWriter,
    ) -> None:
        if method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]
            await _send_json(writer, 200, {"object": "list", "data": data})
        elif method == "POST" and path == "/v1/chat/completions":
            await self._chat(headers, body, writer)
        else:
            await _send_json(writer, 404, _error(f"Invalid URL ({method} {path})", None))

    async def _chat(
        self, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> None:
        self.headers.append(headers)
        if self.api_key is not None:
            presented = headers.get("authorization", "").removeprefix("Bearer ")
            if not presented:
                message = "You didn't provide an API key."
                await _send_json(writer, 401, _error(message, None))
                return
            if presented != self.api_key:
                shown = f"{presented[:3]}***{presented[-4:]}"
                message = f"Incorrect API key provided: {shown}."
                await _send_json(writer, 401, _error(message, "invalid_api_key"))
                return
        try:
            request = json.loads(body)
            messages = request["messages"]
            model = request["model"]
        except (ValueError, KeyError, TypeError):
            message = "We could not parse the JSON body of your request."
            await _send_json(writer, 400, _error(message, None))
            return
        self.requests.append(request)
        if model not in self.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            await _send_json(writer, 404, _error(message, "model_not_found"))
            return
        prompt = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        words = prompt.split()[::-1]
        limit = request.get("max_tokens")
        finish = "stop"
        if isinstance(limit, int) and len(words) > limit:
            words, finish = words[:limit], "length"
        if request.get("stream"):
            await self._stream(writer, model, words, finish)
        else:
            completion = {
                **_envelope("chat.completion", model),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": " ".join(words)},
                        "finish_reason": finish,
                    }
                ],
            }
            await _send_json(writer, 200, completion)

    async def _stream(
        self, writer: asyncio.StreamWriter, model: str, words: list[str], finish: str
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        deltas: list[tuple[dict[str, str], str | None]] = [({"role": "assistant"}, None)]
        deltas += [
            ({"content": w + (" " if i < len(words) - 1 else "")}, None)
            for i, w in enumerate(words)
        ]
        deltas.append(({}, finish))
        for number, (delta, reason) in enumerate(deltas):
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            if self.malformed_stream and number == 1:
                await _send_chunk(writer, b"data: {not json\n\n")
                continue
            chunk = {
                **_envelope("chat.completion.chunk", model),
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
            }
            await _send_chunk(writer, b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await _send_chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _envelope(obj: str, model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": obj, "created": int(time.time()), "model": model}


def _error(message: str, code: str | None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


async def _send_json(writer: asyncio.StreamWriter, status: int, obj: dict[str, Any]) -> None:
    body = json.dumps(obj).encode()
    writer.write(
        f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()


async def _send_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
    await writer.drain()
