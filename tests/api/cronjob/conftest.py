"""The cron gateway in-process (ASGI transport, real lifespan) on the test's real Valkey."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from redis.asyncio import Redis

from aspri.api.access import Access
from aspri.api.cronjob.app import create_app
from aspri.api.cronjob.validation import DEFAULT_LIMITS, Limits
from aspri.config import Settings
from tests.helpers import API_KEY, AUTH


@contextlib.asynccontextmanager
async def gateway(
    redis_url: str,
    *,
    now: Callable[[], float] = time.time,
    snapshot_every: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """One gateway process: its own connection, its own registry rebuilt at start; the client
    sends the API key unless other ``headers`` are given."""
    client = Redis.from_url(redis_url)
    access = Access.from_settings(Settings(api_key=API_KEY))
    app = create_app(client, now=now, snapshot_every=snapshot_every, limits=limits, access=access)
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
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://127.0.0.1",
            headers=AUTH if headers is None else headers,
        ) as http:
            yield http
    finally:
        stop.set()
        await task
        await client.aclose()


@pytest.fixture
async def api(redis_url: str, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(redis_url) as http:
        yield http
