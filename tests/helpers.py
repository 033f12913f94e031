"""Test helpers: waiting on conditions with a deadline (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn

from aspri.streams.server import free_port


async def wait_until(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.01,
) -> Any:
    """Wait for ``condition`` to become truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {condition}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any, port: int | None = None, *, lifespan: str = "auto"
) -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn in this event loop on a free port; yield its base URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan=lifespan
        )
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # keep pytest's
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started or task.done(), timeout=20)
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
