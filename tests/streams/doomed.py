"""A keyed consumer in its own process that kills itself (SIGKILL) in the middle of a batch.

    python -m tests.streams.doomed REDIS_URL STREAM AFTER

Each handled entry is recorded in the list ``handled`` (``<consumer> <eventId's message id>``);
after ``AFTER`` of them the process dies at once: no flush, no lease release, no cleanup.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from aspri.schemas import Event
from aspri.streams import StreamApp


async def main(url: str, stream: str, after: int) -> None:
    redis = Redis.from_url(url)
    app = StreamApp("g", redis, consumer="doomed", claim_idle_ms=1_000)
    count = 0

    @app.agent(stream, key="chatId", concurrency=4)
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        nonlocal count
        async for event in events:
            await redis.rpush("handled", f"doomed {event.data.id}")
            count += 1
            if count == after:
                os.kill(os.getpid(), signal.SIGKILL)

    await app.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
