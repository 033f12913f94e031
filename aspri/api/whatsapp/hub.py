"""Live fan-out of chat messages (and typing signals) to the web chat's event streams (SSE).

The log is the truth; the hub only pushes what was just appended so open pages update at once.
A subscriber that cannot keep up is dropped rather than slowing the gateway down: its page
reconnects and reloads the history from the log, so it misses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aspri.schemas.api import ChatMessage, StatusUpdate, Typing

Live = ChatMessage | StatusUpdate | Typing
"""What the hub carries: a message just recorded, an outbound message's new status, or a turn
working on a chat (typing)."""

log = logging.getLogger(__name__)

_CLOSED = None


class Hub:
    """Broadcasts each recorded message and status change to every current subscriber."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Live | None]] = set()
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, message: Live) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("live subscriber too slow; dropped")
                self._drop(queue)

    async def subscribe(self, ping_s: float = 15.0) -> AsyncIterator[Live | None]:
        """Messages as they are published; ``None`` every ``ping_s`` idle seconds (a keep-alive).

        Ends when the hub closes or the subscriber was dropped.
        """
        queue: asyncio.Queue[Live | None] = asyncio.Queue(self.queue_size)
        if self._closed:
            return
        self._subscribers.add(queue)
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), ping_s)
                except TimeoutError:
                    yield None
                    continue
                if item is _CLOSED:
                    return
                yield item
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        """End every subscription (on shutdown, so open streams do not hold the server)."""
        self._closed = True
        for queue in list(self._subscribers):
            self._drop(queue)

    def _drop(self, queue: asyncio.Queue[Live | None]) -> None:
        self._subscribers.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(_CLOSED)
