"""Test helpers: waiting on conditions with a deadline (never a fixed sleep), the API key."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn

from aspri.apikey import engine_credential, login_token
from aspri.streams.server import EmbeddedServer, free_port

API_KEY = "test-api-key-0123456789"
"""The key every test gateway is started with (``Settings(api_key=API_KEY)``,
``ASPRI_API_KEY`` for subprocesses)."""
AUTH = {"X-API-Key": API_KEY}
"""Headers of an authenticated caller (the owner's scripts, the MCP Inspector, a test)."""
ENGINE_AUTH = {"X-API-Key": engine_credential(API_KEY)}
"""Headers of the engine's own credential (may use ``engine:`` keys and ``causationId``)."""


def chat_login_url(base_url: str) -> str:
    """A one-time link that signs a browser in to the web chat (as ``aspri up`` prints)."""
    return f"{base_url}/chat/login?token={login_token(API_KEY)}"


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


def database_url(server: EmbeddedServer, number: int) -> str:
    """The URL of database ``number`` of the session's Valkey (fixtures keep theirs apart)."""
    return server.url.rsplit("/", 1)[0] + f"/{number}"
