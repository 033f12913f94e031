"""Open the event log's Redis connection from the settings.

With ``REDIS_URL`` set, connect to it. Without, start the embedded Valkey under
``ASPRI_DATA_DIR/valkey`` for the lifetime of the context (one process owns it; ``aspri up``
starts it once and hands its URL to the services it supervises).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from redis.asyncio import BlockingConnectionPool, Redis

from aspri.streams.server import EmbeddedServer


@contextlib.asynccontextmanager
async def open_redis(redis_url: str | None, data_dir: Path) -> AsyncIterator[Redis]:
    server: EmbeddedServer | None = None
    if redis_url is None:
        server = EmbeddedServer(data_dir / "valkey")
        redis_url = server.start()
    # A blocking pool waits for a free connection instead of failing under a burst of work. The
    # socket timeout is set explicitly and well above every blocking read (XREAD BLOCK <= 5 s);
    # redis-py 8's default of 5 s would end those reads with spurious timeouts.
    pool = BlockingConnectionPool.from_url(
        redis_url, max_connections=256, socket_timeout=30, socket_connect_timeout=5
    )
    client = Redis(connection_pool=pool)
    try:
        yield client
    finally:
        await client.aclose()
        if server is not None:
            server.stop()
