"""Inbound media fetched after the webhook is answered, durably.

Meta wants a fast 200 and redelivers a slow webhook, while a download and a transcription can
take many seconds; and a stranger flooding media must not make the gateway fetch anything. So a
media message is first put to the inbound rate limit (``Inbox.admit``): over it, the message is
recorded at once as throttled with its media unresolved (type and media id) and never fetched.
Admitted, it is appended to the ``whatsapp:media:pending`` stream and the webhook answers; a
supervised worker in the gateway reads that stream through a consumer group, has the engine
fetch and transcribe the file (``Channel.resolve``: retried on outages, a last failure recorded
as the media's ``error``), records the message, and only then acknowledges the entry.

Why a queue and not "record now with media pending, resolve later": the engine then answers
each message exactly once with its media in hand, as for every other engine, and no event has
to be rewritten. A gateway killed between the 200 and the download leaves the entry unacked in
its consumer's pending list; the next start reads that list first. A message recorded but not
yet acknowledged (a kill between the two) is recognised by its idempotency key and not fetched
again; the append is keyed by the WhatsApp id anyway, so it reaches the chat and the engine's
queue once. The cost: a media message lands in the chat after a text sent just behind it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis

from aspri.api.whatsapp.channel import Channel
from aspri.api.whatsapp.inbox import Inbox, inbound_key
from aspri.schemas import WhatsAppMessage
from aspri.streams import keys
from aspri.streams.agent import ensure_group
from aspri.streams.supervise import supervise

log = logging.getLogger(__name__)

CONSUMER = "gateway"
"""One gateway process per deployment: a fixed name, so a restart finds its own pending list."""
BATCH = 4
"""Files fetched at once."""
BLOCK_MS = 5000


class Deferred:
    """The pending-media queue of one gateway: ``admit`` in the webhook, ``start`` the worker."""

    def __init__(self, redis: Redis, inbox: Inbox, channel: Channel) -> None:
        self.redis = redis
        self.inbox = inbox
        self.channel = channel
        self.stream = keys.WHATSAPP_MEDIA_PENDING
        self.group = keys.WHATSAPP_MEDIA_GROUP
        self._task: asyncio.Task[None] | None = None

    async def admit(self, message: WhatsAppMessage, pending: bytes) -> str | None:
        """Record ``message`` now if its sender is over the limit (its eventId); else queue
        ``pending`` for the worker (None)."""
        throttled = await self.inbox.admit(message)
        if throttled is not None:
            return throttled.event_id
        await self.redis.xadd(self.stream, {"id": message.id, "pending": pending})
        log.info("inbound media queued", extra={"messageId": message.id, "type": message.type})
        return None

    def start(self) -> None:
        self._task = asyncio.create_task(supervise("media downloads", self._run))

    async def stop(self) -> None:
        """Cancel the worker, again until it ends (redis-py may swallow a cancel mid-command);
        an entry in hand stays pending for the next start."""
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=0.05)

    async def _run(self) -> None:
        await ensure_group(self.redis, self.stream, self.group)
        start = "0"  # this consumer's pending list first: what a stopped gateway left in hand
        while True:
            reply: Any = await self.redis.xreadgroup(
                self.group,
                CONSUMER,
                {self.stream: start},
                count=BATCH,
                block=None if start == "0" else BLOCK_MS,
            )
            entries = reply[0][1] if reply else []
            if start == "0" and not entries:
                start = ">"
            await asyncio.gather(*(self._handle(entry_id, fields) for entry_id, fields in entries))

    async def _handle(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        message_id = fields.get(b"id", b"").decode()
        recorded = await self.redis.exists(keys.idempotency(inbound_key(message_id)))
        message = None if recorded else await self.channel.resolve(fields.get(b"pending", b""))
        if message is not None:
            await self.inbox.record(message, admitted=True)
        elif not recorded:
            log.error("unreadable pending media entry dropped", extra={"entryId": entry_id})
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()
