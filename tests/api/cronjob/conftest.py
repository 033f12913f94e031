"""The cron gateway in-process (ASGI transport, real lifespan) on the test's real Valkey."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from redis.asyncio import Redis

from aspri.api.cronjob.app import create_app
from aspri.api.cronjob.validation import DEFAULT_LIMITS, Limits


@contextlib.asynccontextmanager
async def gateway(
    redis_url: str,
    *,
    now: Callable[[], float] = time.time,
    snapshot_every: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> AsyncIterator[httpx.AsyncClient]:
    """One gateway process: its own connection, its own registry rebuilt at start."""
    client = Redis.from_url(redis_url)
    app = create_app(client, now=now, snapshot_every=snapshot_every, limits=limits)
    started, stop = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:  # entered and left in one task, as a server does
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(lifespan())
    await asyncio.wait([task, asyncio.ensure_future(started.wait())], return_when="FIRST_COMPLETED")
    if task.done():
        task.result()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://cron.test") as http:
            yield http
    finally:
        stop.set()
        await task
        await client.aclose()


@pytest.fixture
async def api(redis_url: str, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(redis_url) as http:
        yield http
