"""While a turn runs, the gateway is told so: the person sees "typing…" and their messages read.

One PUBLISH when the turn starts (``keys.working_channel``), then again every
``TYPING_REFRESH_SECONDS`` while it runs, from a timer on the loop (no task per turn), so a
WhatsApp indicator that expires by itself (the Cloud API's after 25 s) stays up for a long
turn and goes away soon after a worker dies. No stop signal: the reply itself ends the
indicator on every channel, and a turn that fails lets it expire.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from aspri.schemas.working import Working
from aspri.streams import keys

log = logging.getLogger(__name__)

_ENC = msgspec.json.Encoder()


class Typing:
    """Publishes the working signal of turns."""

    def __init__(self, redis: Redis, refresh_s: float) -> None:
        self.redis = redis
        self.refresh_s = refresh_s
        db = int(redis.connection_pool.connection_kwargs.get("db", 0))
        self.channel = keys.working_channel(db)
        self._repeats: set[asyncio.Task[None]] = set()

    def during(self, chat_id: str, message_id: str, event_id: str) -> Turn:
        """``async with typing.during(...)``: the signal for the body's duration."""
        signal = Working(
            chat_id=chat_id,
            message_id=message_id,
            event_id=event_id,
            ttl_ms=int(self.refresh_s * 1000) + 10_000,
        )
        return Turn(self, _ENC.encode(signal))

    async def publish(self, payload: bytes) -> None:
        try:
            await self.redis.publish(self.channel, payload)
        except RedisError as exc:  # a courtesy: never the reason a turn fails
            log.warning("working signal not published", extra={"error": repr(exc)})

    def repeat(self, payload: bytes) -> None:
        """Publish ``payload`` again from a timer callback (the task is kept until it ends)."""
        task = asyncio.get_running_loop().create_task(self.publish(payload))
        self._repeats.add(task)
        task.add_done_callback(self._repeats.discard)


class Turn:
    """The signal of one turn: published on entry, repeated until exit."""

    __slots__ = ("_handle", "_payload", "_typing")

    def __init__(self, typing: Typing, payload: bytes) -> None:
        self._typing = typing
        self._payload = payload
        self._handle: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> None:
        await self._typing.publish(self._payload)
        self._schedule()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._handle = loop.call_later(self._typing.refresh_s, self._repeat)

    def _repeat(self) -> None:
        self._typing.repeat(self._payload)
        self._schedule()
