"""The WhatsApp gateway's parts wired together: log, projections, hub, inbox, outbox, statuses,
channel, the listener for the engine's working signals (typing, read receipts), and the worker
fetching inbound media after the webhook is answered (``deferred.py``)."""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from aspri.api.whatsapp.channel import Channel
from aspri.api.whatsapp.deferred import Deferred
from aspri.api.whatsapp.directory import Directory
from aspri.api.whatsapp.hub import Hub
from aspri.api.whatsapp.inbox import Inbox
from aspri.api.whatsapp.limits import InboundLimiter
from aspri.api.whatsapp.outbox import Outbox
from aspri.api.whatsapp.pacing import Clock, pacer_for
from aspri.api.whatsapp.quoting import Quotes
from aspri.api.whatsapp.statuses import Statuses
from aspri.api.whatsapp.working import WorkingListener
from aspri.config import Settings
from aspri.identity import Identities
from aspri.media import MediaStore
from aspri.media.extract import with_text
from aspri.media.speech import Speech
from aspri.schemas import Event, WhatsAppMessage
from aspri.schemas.media import Media
from aspri.streams.log import EventLog

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
"""Longest message accepted, inbound or outbound (UTF-8 bytes)."""

SLOW_DOWN = (
    "You are sending messages faster than I can answer them. I keep every message in our chat, "
    "but I answer at most {rate} a minute; the ones above that stay unanswered. Please slow down."
)


class Gateway:
    """Everything a request handler needs; started and stopped with the app."""

    def __init__(
        self, settings: Settings, redis: Redis, channel: Channel, *, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.channel = channel
        self.engine = settings.whatsapp_engine
        self.log = EventLog(redis, idempotency_ttl_s=settings.idempotency_ttl_s)
        self.hub = Hub()
        self.directory = Directory(redis, self.log)
        self.statuses = Statuses(redis, self.log, self.hub)
        self.identities = Identities(self.log)
        pacer = pacer_for(
            settings.whatsapp_engine,
            settings.send_rate_per_s,
            settings.send_per_chat_interval_s,
            clock,
        )
        self.quotes = Quotes(self.log, settings.reply_quote)
        self.media = MediaStore(
            settings.media_dir, settings.media_max_bytes, settings.media_retention_days
        )
        self.outbox = Outbox(
            redis,
            self.log,
            channel,
            pacer,
            self.directory,
            self.hub,
            ttl_s=settings.idempotency_ttl_s,
            statuses=self.statuses,
            owners=settings.owner_numbers,
            quotes=self.quotes,
            speech=Speech.from_settings(settings, self.media),
        )
        limiter = InboundLimiter(
            redis, rate_per_minute=settings.inbound_rate_per_minute, burst=settings.inbound_burst
        )
        self.inbox = Inbox(
            self.log,
            self.directory,
            self.hub,
            limiter,
            self._slow_down,
            stream=settings.whatsapp_stream,
            identities=self.identities,
            engine=settings.whatsapp_engine,
            quotes=self.quotes,
            document_text=self._document_text,
        )

        self.deferred = Deferred(redis, self.inbox, channel) if channel.defers_media else None
        self.working = WorkingListener(redis, channel, self.hub)

    async def _document_text(self, media: Media) -> Media | None:
        return await with_text(self.media, media, self.settings.document_text_max_chars)

    async def _slow_down(self, throttled: Event[WhatsAppMessage]) -> None:
        """The one notice a flooding sender gets (per flood: see ``limits.py``)."""
        rate = self.settings.inbound_rate_per_minute
        text = SLOW_DOWN.format(rate=f"{rate:g}")
        try:
            await self.outbox.send(
                throttled.data.chat_id,
                text,
                key=f"whatsapp:slow-down:{throttled.event_id}",
                causation_id=throttled.event_id,
            )
        except Exception as exc:  # the message is recorded either way; the notice is a courtesy
            log.warning("slow-down notice not sent", extra={"error": repr(exc)})

    async def start(self) -> None:
        await self.directory.start()
        await self.identities.start()
        self.channel.on_status = self.statuses.record
        self.channel.last_inbound = self.directory.last_inbound
        if self.deferred is not None:
            self.channel.defer = self.deferred.admit
        await self.channel.start(self.inbox.receive)
        if self.deferred is not None:
            self.deferred.start()
        self.working.start()
        log.info(
            "whatsapp gateway started", extra={"engine": self.engine, "channel": self.channel.name}
        )

    async def stop(self) -> None:
        self.hub.close()
        await self.working.stop()
        if self.deferred is not None:
            await self.deferred.stop()
        try:
            await self.channel.stop()
        finally:
            await self.identities.stop()
            await self.directory.stop()
        log.info("whatsapp gateway stopped", extra={"engine": self.engine})
