"""``aspri engine``: one AI engine worker in consumer group ``ai-engine``.

It consumes ``whatsapp:messages`` keyed by ``chatId`` (the runtime hands a chat to one worker
at a time, in order, across every worker) and ``cronjob:events``; any number of workers can run
side by side under different ``CONSUMER_NAME``s. Each worker keeps one MCP session to its own
``aspri mcp`` child process for the tools and for sending replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from langchain_core.language_models import BaseChatModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from aspri.agents.access import Access
from aspri.agents.agent import build_agent
from aspri.agents.commands import Commands
from aspri.agents.foreign import adopt, is_foreign
from aspri.agents.llm import build_model, probe
from aspri.agents.memory import Recall
from aspri.agents.model_state import ModelState
from aspri.agents.outbound import Outbound
from aspri.agents.session import SessionStore
from aspri.agents.tools import McpTools, ToolsUnavailable
from aspri.agents.triggers import Triggers
from aspri.agents.turns import Conversation
from aspri.config import Settings
from aspri.schemas import CronTrigger, Event, WhatsAppMessage
from aspri.streams import StreamApp, keys
from aspri.streams.connect import open_redis
from aspri.streams.health import Beat
from aspri.streams.log import EventLog
from aspri.streams.supervise import supervise
from aspri.streams.trim import Trimmer
from aspri.telemetry.instruments import SESSIONS_ACTIVE

log = logging.getLogger(__name__)


def handler_timeout_s(settings: Settings) -> float:
    """How long one turn may take: two model calls at their own timeout, plus a minute for
    the tools (300 s with the default LLM_TIMEOUT_SECONDS=120). Past it the turn is cancelled
    and retried, so a hung turn cannot freeze its chat."""
    return 2 * settings.llm_timeout_s + 60


class ActiveChats:
    """Chats with a message inside the session timeout: the ``aspri_sessions_active`` gauge.

    The gauge is read by the metrics thread, so reads copy the values in one step and pruning
    swaps in a new dict instead of deleting from the one being read.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._seen: dict[str, float] = {}
        self._since_prune = 0

    def saw(self, chat_id: str) -> None:
        now = time.monotonic()
        self._seen[chat_id] = now
        self._since_prune += 1
        if self._since_prune >= 1024:
            self._since_prune = 0
            cutoff = now - self.timeout_s
            self._seen = {c: t for c, t in self._seen.items() if t >= cutoff}

    def count(self) -> int:
        cutoff = time.monotonic() - self.timeout_s
        return sum(1 for t in list(self._seen.values()) if t >= cutoff)


class Engine:
    """The worker: a StreamApp with the conversation and cron agents, over shared parts."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        tools: McpTools,
        model: BaseChatModel,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.log = EventLog(redis, idempotency_ttl_s=settings.idempotency_ttl_s)
        self.tools = tools
        self.sessions = SessionStore(
            self.log,
            history_limit=settings.session_history_limit,
            timeout_minutes=settings.session_timeout_minutes,
        )
        self.access = Access(settings, self.log, clock)
        self.model = ModelState(lambda: probe(settings), clock=clock)
        self.recall = Recall(settings, self.log, model, self.model)
        commands = Commands(settings, self.log, tools, self.access, self.model, self.recall, clock)
        self.outbound = Outbound(settings)
        self.conversation = Conversation(
            settings,
            self.log,
            self.sessions,
            tools,
            build_agent(model, tools.tools, settings.llm_provider, self.model),
            commands,
            self.access,
            self.model,
            self.recall,
            self.outbound,
            clock,
        )
        self.triggers = Triggers(self.conversation, self.access)
        self.active = ActiveChats(settings.session_timeout_minutes * 60)
        SESSIONS_ACTIVE.set_function(self.active.count)
        self.trimmer = Trimmer(
            redis,
            [settings.whatsapp_stream, settings.cronjob_stream],
            keep=settings.stream_trim_keep,
        )
        self.app = StreamApp(
            keys.ENGINE_GROUP,
            redis,
            consumer=settings.consumer_name,
            max_deliveries=settings.max_deliveries,
            claim_idle_ms=settings.claim_idle_ms,
            retry_backoff_s=settings.retry_backoff_s,
            handler_timeout_s=handler_timeout_s(settings),
        )
        self.app.agent(
            settings.whatsapp_stream,
            schema=WhatsAppMessage,
            concurrency=settings.engine_concurrency,
            key="chatId",
        )(self._converse)
        self.app.agent(
            settings.cronjob_stream,
            schema=CronTrigger,
            concurrency=max(1, settings.engine_concurrency // 2),
            key="jobId",
        )(self._on_triggers)

    async def _converse(self, events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            if is_foreign(event):  # answered as the copy it becomes
                await adopt(self.log, self.settings.whatsapp_stream, event)
                continue
            self.active.saw(event.data.chat_id)
            await self.conversation.on_message(event)

    async def _on_triggers(self, events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            await self.triggers.on_trigger(event)

    async def run(self, *, burst: bool = False) -> None:
        """Rebuild the access rules from their stream, then consume until stopped."""
        await self.access.start()
        try:
            async with self.trimming():
                await self.app.run(burst=burst)
        finally:
            await self.access.stop()
            await self.outbound.close()

    @contextlib.asynccontextmanager
    async def trimming(self) -> AsyncIterator[None]:
        """Trim what every group is done with from the work queues while the body runs."""
        trim = asyncio.create_task(supervise("trim", self.trimmer.run), name="trim")
        try:
            yield
        finally:
            trim.cancel()
            await asyncio.gather(trim, return_exceptions=True)

    async def stop(self) -> None:
        await self.app.stop()
        await self.recall.stop()

    def health(self, redis: Redis) -> Beat:
        """This worker's health record, with whether its model answers (and since when)."""
        settings = self.settings
        return Beat(
            redis,
            "engine",
            settings.consumer_name,
            ttl_s=settings.health_ttl_s,
            details=lambda: {"model": settings.model_name, **self.model.record()},
        )


async def serve(settings: Settings) -> None:
    """Run one worker until SIGINT/SIGTERM: Redis, the MCP child, the model, the agents."""
    async with open_redis(settings.redis_url, settings.data_dir) as redis:
        if settings.redis_url is None:  # the MCP child's memory tools use the same store
            settings = replace(settings, redis_url=store_url(redis))
        tools = McpTools(settings)
        await tools.start()
        try:
            engine = Engine(settings, redis, tools, build_model(settings))
            problem = await probe(settings)
            engine.model.probed(problem)
            log.info(
                "engine worker started",
                extra={
                    "consumer": settings.consumer_name,
                    "provider": settings.llm_provider,
                    "model": settings.model_name,
                    "model_ready": problem is None,
                    "tools": len(tools.tools),
                },
            )
            if settings.whatsapp_engine == "cloud" and not settings.owner_numbers:
                log.warning(
                    "OWNER_NUMBERS is not set: nobody is an owner, so nobody can use the "
                    "assistant or approve anyone (DM_POLICY=open lets everyone in, scoped)"
                )
            if problem:
                log.warning(
                    "the model is not reachable yet; slash commands still work",
                    extra={"problem": problem},
                )
            # The runtime rides out an event log outage.
            async with engine.health(redis), engine.trimming():
                await engine.app.run_until_signal()
            await engine.recall.stop()
            await engine.outbound.close()
        finally:
            await tools.close()


def store_url(redis: Redis) -> str:
    """The URL of the store ``redis`` is connected to (the embedded one has no password)."""
    kwargs = redis.connection_pool.connection_kwargs
    db = kwargs.get("db", 0)
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={db}"
    return f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{db}"


def main(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; 1 when the worker's tools (MCP) or event log fail."""
    try:
        asyncio.run(serve(settings))
    except ToolsUnavailable as exc:
        log.error("engine worker cannot start", extra={"error": str(exc)})
        return 1
    except (RedisError, OSError) as exc:
        log.error("engine worker stopped: the event log failed", extra={"error": repr(exc)})
        return 1
    return 0
