"""A scripted OpenAI-compatible model server: the real ``langchain-openai`` path, no model.

``POST /v1/chat/completions`` answers ``re: <the turn's user messages joined by ' | '>``. A
scenario can slow it down (``delay_s``), take it down (503 for every call) and bring it back,
and can make one message poison (``poison`` in the text: the call fails every time).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Response, post
from litestar.params import JSONBody

from tests.helpers import serve_asgi

POISON = "poison"


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-chaos",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "scripted",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def turn_texts(messages: list[dict[str, Any]]) -> list[str]:
    """The user messages after the last assistant message: what this turn answers."""
    out: list[str] = []
    for m in reversed(messages):
        if m.get("role") == "assistant":
            break
        if m.get("role") == "user":
            out.append(str(m.get("content", "")))
    return list(reversed(out))


@dataclass
class ScriptedLLM:
    delay_s: float = 0.0
    down: bool = False
    calls: int = 0
    refused: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0

    async def answer(self, body: dict[str, Any]) -> Response[dict[str, Any]]:
        self.calls += 1
        texts = turn_texts(body.get("messages", []))
        if self.down or any(POISON in t for t in texts):
            self.refused += 1
            error = {"error": {"message": "model unavailable", "type": "server_error"}}
            return Response(error, status_code=503)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)  # the model's own think time
            return Response(completion("re: " + " | ".join(texts)), status_code=200)
        finally:
            self.in_flight -= 1


@contextlib.asynccontextmanager
async def scripted_llm() -> AsyncIterator[tuple[ScriptedLLM, str]]:
    """The server on a free port; yields it and the ``OPENAI_BASE_URL`` to give the engine."""
    model = ScriptedLLM()

    @post("/v1/chat/completions", status_code=200)
    async def chat(data: JSONBody[dict[str, Any]]) -> Response[dict[str, Any]]:
        return await model.answer(data)

    async with serve_asgi(Litestar([chat], debug=False)) as url:
        yield model, f"{url}/v1"
