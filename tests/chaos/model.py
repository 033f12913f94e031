"""A scripted OpenAI-compatible model server: the real ``langchain-openai`` path, no model.

``POST /v1/chat/completions`` answers ``re: <the turn's user messages joined by ' | '>``. A
scenario can slow it down (``delay_s``), take it down (503 for every call) and bring it back,
can make one message poison (``poison`` in the text: the call fails every time), and can have
each turn call a tool first (``tool``: the engine's MCP server runs it, then the answer comes).
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


def tool_call(name: str) -> dict[str, Any]:
    """A completion asking for tool ``name`` with no arguments (OpenAI's wire form)."""
    reply = completion("")
    call = {
        "id": f"call-{time.monotonic_ns()}",
        "type": "function",
        "function": {"name": name, "arguments": "{}"},
    }
    reply["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    reply["choices"][0]["finish_reason"] = "tool_calls"
    return reply


def turn_texts(messages: list[dict[str, Any]]) -> list[str]:
    """The user messages after the last assistant message: what this turn answers (after a
    tool's result: the ones before the assistant's tool call)."""
    out: list[str] = []
    after_tool = bool(messages) and messages[-1].get("role") == "tool"
    for m in reversed(messages):
        if m.get("role") == "assistant":
            if after_tool and m.get("tool_calls"):
                after_tool = False
                continue
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
    tool: str | None = None
    """A tool each turn calls before it answers."""
    tool_results: int = 0

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
            messages = body.get("messages", [])
            if self.tool is not None and messages and messages[-1].get("role") != "tool":
                return Response(tool_call(self.tool), status_code=200)
            if messages and messages[-1].get("role") == "tool":
                self.tool_results += 1
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
