"""Fixtures for the WhatsApp gateway: the app on the real embedded Valkey, in-process or served
by uvicorn on a free port, a controllable clock, and a stand-in channel.

WhatsApp itself cannot be reached from a test machine, so ``FakeChannel`` stands in for the
network edge of an engine: it records what it was asked to send and can be told to fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from litestar import Litestar
from redis.asyncio import Redis

from aspri.api.whatsapp.app import create_app
from aspri.api.whatsapp.channel import Channel, ChannelError, OnMessage
from aspri.api.whatsapp.engines.local import LocalChannel
from aspri.api.whatsapp.gateway import Gateway
from aspri.api.whatsapp.server import gateway_server
from aspri.config import Settings
from aspri.schemas import Event
from aspri.streams.log import EventLog
from aspri.streams.server import free_port
from aspri.telemetry.tracing import setup_tracing
from tests.helpers import API_KEY, AUTH, wait_until


@pytest.fixture(scope="session", autouse=True)
def tracing() -> None:
    """Real spans (not exported), so events carry a traceparent as in production."""
    setup_tracing("aspri-whatsapp-test", force=True)


class FakeClock:
    """Time that passes only when someone sleeps: pacing is tested without waiting.

    A sleeper first lets the other ready tasks run, then moves time to its wake-up point, so
    concurrent sleepers see the same "now", as they would with a real clock.
    """

    def __init__(self) -> None:
        self.t = 1_000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        wake = self.t + seconds
        await asyncio.sleep(0)
        self.t = max(self.t, wake)


class FakeChannel(Channel):
    """A stand-in for WhatsApp: records sends; ``fail_with`` makes the next sends fail."""

    name = "fake"

    def __init__(self, max_text: int = 4096) -> None:
        self.max_text = max_text
        self.sent: list[tuple[str, str]] = []
        self.fail_with: ChannelError | None = None
        self.fail_after: int | None = None
        self.on_message: OnMessage | None = None
        self._state = "disconnected"

    async def start(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        self._state = "working"

    async def stop(self) -> None:
        self._state = "disconnected"

    async def send_text(self, chat_id: str, text: str) -> str:
        if self.fail_with is not None and (
            self.fail_after is None or len(self.sent) >= self.fail_after
        ):
            raise self.fail_with
        self.sent.append((chat_id, text))
        return f"FAKE{len(self.sent)}"

    def state(self) -> str:
        return self._state


def settings_for(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "send_rate_per_s": 1000.0,
        "send_per_chat_interval_s": 0.0,
        "api_key": API_KEY,
    }
    return Settings(**(base | overrides))


@dataclass
class Running:
    """A started gateway and an HTTP client talking to it with the API key (``AUTH``)."""

    app: Litestar
    client: httpx.AsyncClient
    redis: Redis
    channel: Channel
    clock: FakeClock = field(default_factory=FakeClock)

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway = self.app.state.gateway
        return gateway

    async def stream(self, name: str) -> list[Event[Any]]:
        return await EventLog(self.redis).read(name)


GatewayFactory = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def open_gateway(redis: Redis) -> GatewayFactory:
    """``async with open_gateway(channel=..., **settings) as gw``: the app started in this
    event loop (its lifespan runs), requests go through ASGI without a socket."""

    @asynccontextmanager
    async def factory(channel: Channel | None = None, **overrides: Any) -> AsyncIterator[Running]:
        clock = FakeClock()
        channel = channel or LocalChannel()
        app = create_app(settings_for(**overrides), redis, channel, clock=clock)
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1", headers=AUTH
            ) as client:
                yield Running(app, client, redis, channel, clock)

    return factory


@pytest.fixture
def serve_gateway(redis: Redis) -> GatewayFactory:
    """``async with serve_gateway(...) as gw``: the app served by uvicorn on a free port (for
    streaming responses and the browser); ``gw.client`` has that base URL."""

    @asynccontextmanager
    async def factory(channel: Channel | None = None, **overrides: Any) -> AsyncIterator[Running]:
        clock = FakeClock()
        channel = channel or LocalChannel()
        app = create_app(settings_for(**overrides), redis, channel, clock=clock)
        port = free_port()
        server = gateway_server(app, "127.0.0.1", port, signals=False)
        task = asyncio.create_task(server.serve())
        try:
            await wait_until(lambda: server.started or task.done(), 10)
            assert server.started, "the gateway did not start"
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=AUTH
            ) as client:
                yield Running(app, client, redis, channel, clock)
        finally:
            server.stop()
            await asyncio.wait_for(task, 10)

    return factory
