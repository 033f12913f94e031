"""The real parts around the engine, for its tests: both gateways (uvicorn on free ports, in
this event loop, on the real Valkey), ``aspri mcp`` spawned over stdio, and a scripted chat model
standing in for the LLM (the one edge a test machine cannot reach).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from redis.asyncio import Redis

from aspri.agents.engine import Engine
from aspri.agents.tools import McpTools
from aspri.api.access import Access
from aspri.api.cronjob.app import create_app as cron_app
from aspri.api.whatsapp.app import create_app as whatsapp_app
from aspri.config import Settings
from aspri.schemas import Event
from aspri.schemas.chat import ChatTurn
from aspri.streams import EventLog, keys
from tests.helpers import API_KEY, AUTH, serve_asgi, wait_until

Script = Callable[[list[BaseMessage]], AIMessage | Awaitable[AIMessage]]


class ScriptedModel(GenericFakeChatModel):
    """Stands in for the LLM: answers by a script (a function of the prompt), records every
    prompt it was given, and accepts tools (``bind_tools`` returns itself)."""

    messages: Any = iter(())
    script: Any = None
    calls: list[list[BaseMessage]] = []

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("the engine calls models asynchronously")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(list(messages))
        reply = self.script(messages)
        if asyncio.iscoroutine(reply):
            reply = await reply
        return ChatResult(generations=[ChatGeneration(message=reply)])


def scripted(script: Script) -> ScriptedModel:
    return ScriptedModel(script=script, calls=[])


def trailing_user_texts(messages: list[BaseMessage]) -> list[str]:
    """The human messages after the last AI message: what this turn answers."""
    out: list[str] = []
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            out.append(m.text)
        elif isinstance(m, AIMessage):
            break
    return list(reversed(out))


def echo(messages: list[BaseMessage]) -> AIMessage:
    """Answers ``re: <the turn's messages joined by ' | '>``."""
    return AIMessage(content="re: " + " | ".join(trailing_user_texts(messages)))


def calls_tool_then_answers(name: str, args: dict[str, Any], answer: str) -> Script:
    """First asks for one tool call, then (seeing its result) answers ``answer``."""

    def script(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return AIMessage(content=f"{answer} [{messages[-1].status}]")
        return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "call-1"}])

    return script


def new_number() -> str:
    return "62" + "".join(random.choice("0123456789") for _ in range(10))


@dataclass
class Stack:
    settings: Settings
    redis: Redis
    http: httpx.AsyncClient
    tools: McpTools
    _more_tools: list[McpTools] = field(default_factory=list)
    _names: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def log(self) -> EventLog:
        return EventLog(self.redis)

    def worker_settings(self, **overrides: Any) -> Settings:
        defaults: dict[str, Any] = {
            "consumer_name": f"worker-{next(self._names)}-{uuid.uuid4().hex[:6]}",
            "claim_idle_ms": 400,
            "retry_backoff_s": 0.05,
            "max_deliveries": 3,
            "engine_concurrency": 4,
        }
        return replace(self.settings, **{**defaults, **overrides})

    async def another_mcp(self) -> McpTools:
        """A second MCP session (its own ``aspri mcp`` process), as a second worker has."""
        tools = McpTools(self.settings)
        await tools.start()
        self._more_tools.append(tools)
        return tools

    @contextlib.asynccontextmanager
    async def engine(
        self,
        model: BaseChatModel,
        *,
        tools: McpTools | None = None,
        clock: Callable[[], float] | None = None,
        **overrides: Any,
    ) -> AsyncIterator[RunningEngine]:
        """An engine worker running in a task; stopped gracefully on exit."""
        settings = self.worker_settings(**overrides)
        kwargs = {"clock": clock} if clock else {}
        redis = Redis.from_url(self.settings.redis_url or "")  # its own pool, as a process has
        engine = Engine(settings, redis, tools or self.tools, model, **kwargs)
        running = RunningEngine(engine, asyncio.create_task(engine.run()))
        try:
            yield running
        finally:
            if not running.task.done():
                await engine.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await running.task
            await redis.aclose()

    async def say(self, number: str, text: str) -> dict[str, Any]:
        """A person types ``text`` in the local web chat."""
        r = await self.http.post(
            f"{self.settings.whatsapp_url}/api/local/messages", json={"from": number, "text": text}
        )
        assert r.status_code == 202, r.text
        data: dict[str, Any] = r.json()["data"]
        return data

    async def history(self, number: str) -> list[dict[str, Any]]:
        """The chat as the web chat shows it (``GET /api/messages``), oldest first."""
        r = await self.http.get(
            f"{self.settings.whatsapp_url}/api/messages/{number}", params={"limit": 100}
        )
        assert r.status_code == 200, r.text
        return list(reversed(r.json()["data"]["messages"]))

    async def chat_events(self, chat_id: str) -> list[Event[Any]]:
        return await self.log.read(keys.chat(chat_id))

    async def replies(self, chat_id: str) -> list[str]:
        return [
            e.data.body
            for e in await self.chat_events(chat_id)
            if e.type == "whatsapp:message" and e.data.from_me
        ]

    async def turns(self, chat_id: str) -> list[ChatTurn]:
        return [e.data for e in await self.chat_events(chat_id) if isinstance(e.data, ChatTurn)]

    async def wait_replies(self, chat_id: str, n: int, within: float = 20) -> list[str]:
        async def enough() -> bool:
            return len(await self.replies(chat_id)) >= n

        await wait_until(enough, within)
        return await self.replies(chat_id)

    async def wait_answered(self, chat_id: str, within: float = 20) -> list[ChatTurn]:
        """Wait until every user message of the chat is in a recorded turn."""

        async def done() -> bool:
            events = await self.chat_events(chat_id)
            inbound = {
                e.event_id for e in events if e.type == "whatsapp:message" and not e.data.from_me
            }
            answered = {a for e in events if isinstance(e.data, ChatTurn) for a in e.data.answered}
            return bool(inbound) and inbound <= answered

        await wait_until(done, within)
        return await self.turns(chat_id)


@dataclass
class RunningEngine:
    engine: Engine
    task: asyncio.Task[None]

    async def kill(self) -> None:
        """Like SIGKILL for the worker: its tasks stop where they are, nothing is acked."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def running_stack(redis_url: str, data_dir: Path, **overrides: Any) -> AsyncIterator[Stack]:
    """Both gateways on ``redis_url`` and one MCP session to them (``overrides``: settings,
    such as another WhatsApp engine)."""
    redis, whatsapp_redis, cron_redis = (Redis.from_url(redis_url) for _ in range(3))
    await redis.flushdb()
    defaults: dict[str, Any] = {
        "timezone": "Asia/Jakarta",
        "log_level": "WARNING",
        "api_key": API_KEY,
    }
    base = Settings(redis_url=redis_url, data_dir=data_dir, **(defaults | overrides))
    try:
        async with (
            serve_asgi(whatsapp_app(base, whatsapp_redis)) as whatsapp_url,
            serve_asgi(cron_app(cron_redis, access=Access.from_settings(base))) as cron_url,
            httpx.AsyncClient(timeout=30, headers=AUTH) as http,
        ):
            settings = replace(base, whatsapp_url=whatsapp_url, cronjob_url=cron_url)
            tools = McpTools(settings)
            await tools.start()
            stack = Stack(settings=settings, redis=redis, http=http, tools=tools)
            try:
                yield stack
            finally:
                for t in [tools, *stack._more_tools]:
                    await t.close()
    finally:
        for client in (redis, whatsapp_redis, cron_redis):
            await client.aclose()


def mcp_children() -> list[int]:
    """Pids of the ``aspri mcp`` processes this test process spawned."""
    me = str(os.getpid())
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat[1] == me and "aspri.cli mcp" in cmd:
            out.append(int(entry.name))
    return out


def kill_mcp_children() -> list[int]:
    pids = mcp_children()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


class ManualClock:
    """A scheduler clock the test moves forward; sleeps end when their time is reached."""

    def __init__(self, start: float) -> None:
        self.t = start
        self._tick = asyncio.Event()

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self._tick.set()
        self._tick = asyncio.Event()

    async def sleep_until(self, t: float, wake: asyncio.Event) -> None:
        while self.t < t and not wake.is_set():
            waits = {asyncio.create_task(self._tick.wait()), asyncio.create_task(wake.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()
