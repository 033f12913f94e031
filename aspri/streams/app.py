"""StreamApp: Faust's programming model (apps, agents, tables) on Redis Streams groups.

    app = StreamApp("ai-engine", redis, consumer="worker-1")

    @app.agent("whatsapp:messages", schema=WhatsAppMessage, concurrency=8, key="chatId")
    async def converse(events):
        async for event in events:
            await handle(event)     # acked when the loop asks for the next one

``key`` names a field of the payload: events with the same value are handled in stream order
and one at a time across every consumer of the group. ``timeout`` (seconds; the app's
``handler_timeout_s`` by default) bounds one handler body: past it the body is cancelled and the
delivery counts as failed (retried, then dead-lettered), so a hung turn cannot hold its key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from aspri.schemas import REGISTRY, Payload, Registry
from aspri.streams.agent import AgentRunner
from aspri.streams.spec import AgentFn, AgentSpec

log = logging.getLogger(__name__)


class StreamApp:
    """A set of agents sharing one Redis connection pool and one consumer name."""

    def __init__(
        self,
        group: str,
        redis: Redis,
        *,
        consumer: str,
        registry: Registry = REGISTRY,
        max_deliveries: int = 5,
        claim_idle_ms: int = 30_000,
        retry_backoff_s: float = 0.5,
        handler_timeout_s: float = 300.0,
    ) -> None:
        self.group = group
        self.redis = redis
        self.consumer = consumer
        self.registry = registry
        self.defaults: dict[str, Any] = {
            "max_deliveries": max_deliveries,
            "claim_idle_ms": claim_idle_ms,
            "lease_ms": claim_idle_ms,
            "retry_backoff_s": retry_backoff_s,
            "timeout_s": handler_timeout_s,
        }
        self.specs: list[AgentSpec] = []
        self.runners: list[AgentRunner] = []
        self._tasks: list[asyncio.Task[None]] = []

    def agent(
        self,
        stream: str,
        *,
        group: str | None = None,
        schema: type[Payload] | tuple[type[Payload], ...] | None = None,
        concurrency: int = 1,
        key: str | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> Callable[[AgentFn], AgentFn]:
        """Register ``fn`` as an agent consuming ``stream`` in ``group`` (default: the app's)."""
        schemas = () if schema is None else schema if isinstance(schema, tuple) else (schema,)

        if timeout is not None:
            options["timeout_s"] = timeout

        def register(fn: AgentFn) -> AgentFn:
            if concurrency < 1:
                raise ValueError("concurrency must be at least 1")
            if options.get("timeout_s", 1) <= 0:
                raise ValueError("timeout must be positive")
            self.specs.append(
                AgentSpec(
                    fn=fn,
                    stream=stream,
                    group=group or self.group,
                    schema=schemas,
                    concurrency=concurrency,
                    key=key,
                    **{**self.defaults, **options},
                )
            )
            return fn

        return register

    async def run(self, *, burst: bool = False) -> None:
        """Run every agent until ``stop()``; ``burst``: return once their streams are drained."""
        self.runners = [
            AgentRunner(spec, self.redis, self.registry, self.consumer, burst=burst)
            for spec in self.specs
        ]
        self._tasks = [asyncio.create_task(r.run(), name=r.spec.name) for r in self.runners]
        log.info(
            "stream app started",
            extra={
                "group": self.group,
                "consumer": self.consumer,
                "agents": [s.name for s in self.specs],
            },
        )
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop reading, let in-flight handlers finish for up to ``timeout`` s, then cancel."""
        for runner in self.runners:
            runner.stop()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run_until_signal(self) -> None:
        """Run until SIGTERM or SIGINT, then shut down gracefully.

        A failure of the app itself is raised, never swallowed, so the process exits non-zero
        and its supervisor (``aspri up``, systemd, Docker) sees it and restarts it.
        """
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stopping.set)
        runner = asyncio.create_task(self.run(), name=f"{self.group}:app")
        waiter = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.is_set():
                log.info("signal received, stopping", extra={"group": self.group})
                await self.stop()
            await runner
        finally:
            waiter.cancel()
            if not runner.done():  # we are being cancelled ourselves
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
            for sig in signals:
                with contextlib.suppress(NotImplementedError):
                    loop.remove_signal_handler(sig)
