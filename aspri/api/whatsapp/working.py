"""The gateway's side of "a turn is working on this chat": typing indicators and read receipts.

Engine workers publish a ``Working`` signal when a turn starts and repeat it while the turn
runs (``aspri.agents.working``); this listener hands each one to the channel (the Cloud API's
read receipt with its typing indicator; the browser engine's composing presence) and to the
open web chat pages ("typing…"). Each signal is handled in a task of its own, so a slow
channel never delays the next; a subscription that fails is made again (``supervise``).
A signal that arrives after the reply it announced went out (a repeat already on its way) is
dropped, so "typing…" never shows again under the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import msgspec
from redis.asyncio import Redis

from aspri.api.whatsapp.channel import Channel
from aspri.api.whatsapp.hub import Hub
from aspri.schemas.api import Typing
from aspri.schemas.working import Working
from aspri.streams import keys
from aspri.streams.supervise import supervise

log = logging.getLogger(__name__)

_DEC = msgspec.json.Decoder(Working)
ANSWERED_KEPT = 4096
"""Recently answered causes remembered to drop late signals (a few minutes of replies)."""


class WorkingListener:
    """Subscribes to the working signals of this gateway's database."""

    def __init__(self, redis: Redis, channel: Channel, hub: Hub) -> None:
        self.redis = redis
        self.channel = channel
        self.hub = hub
        db = int(redis.connection_pool.connection_kwargs.get("db", 0))
        self.name = keys.working_channel(db)
        self._task: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[None]] = set()
        self._answered: OrderedDict[str, None] = OrderedDict()
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(supervise("working signals", self._listen))

    async def stop(self) -> None:
        """Cancel the listener and the signals in hand, again until they end: redis-py's
        retry can swallow a cancel that lands while the subscription connects."""
        tasks = [t for t in (self._task, *self._handling) if t is not None]
        while pending := [t for t in tasks if not t.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=0.05)
        self._task = None

    async def _listen(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.name)
            self.subscribed.set()
            async for message in pubsub.listen():
                self.handle(message["data"])
            raise ConnectionError("the working-signal subscription ended")
        finally:
            self.subscribed.clear()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    def replied(self, cause: str) -> None:
        """The reply to the message ``cause`` (an eventId) went out: its turn is over."""
        self._answered[cause] = None
        if len(self._answered) > ANSWERED_KEPT:
            self._answered.popitem(last=False)

    def handle(self, raw: bytes | str) -> None:
        """Show one signal on the open pages at once; hand it to the channel in a task."""
        try:
            signal = _DEC.decode(raw)
        except msgspec.DecodeError as exc:
            log.warning("malformed working signal ignored", extra={"error": str(exc)[:200]})
            return
        if signal.event_id in self._answered:
            return
        if self.hub.subscribers:
            self.hub.publish(
                Typing(
                    chat_id=signal.chat_id,
                    message_id=signal.message_id,
                    expires_in_ms=signal.ttl_ms,
                )
            )
        task = asyncio.create_task(self._tell_channel(signal))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _tell_channel(self, signal: Working) -> None:
        try:
            await self.channel.working(signal.chat_id, signal.message_id)
        except Exception as exc:  # a courtesy: log it, never let it reach the listener
            log.warning(
                "channel could not show typing",
                extra={"chatId": signal.chat_id, "error": repr(exc)[:300]},
            )
