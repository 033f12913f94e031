"""Inbound messages from any engine become ``whatsapp:message`` events.

One atomic append puts the event in ``whatsapp:messages`` (the engine's work queue) and in
``chat:{chatId}`` (the conversation), keyed by the WhatsApp message id, so a redelivered webhook
or a reconnecting browser session cannot create a second event. A message the owner's own
account wrote (``fromMe``) is conversation history but not work: it goes to the chat only, so
the assistant never answers itself. So does a message from a sender over the inbound rate
limit: recorded with ``throttled: true``, in the chat only, and the first one of a flood gets
the sender one "slow down" notice. Senders are recorded as the person (``aspri.identity``): a
channel that resolved an ``@lid`` to the phone has the link recorded once, and an id form the
links know is replaced by the person's id, kept in ``alias``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec
from opentelemetry.trace import SpanKind

from aspri.api.whatsapp.directory import Directory
from aspri.api.whatsapp.history import to_chat_message
from aspri.api.whatsapp.hub import Hub
from aspri.api.whatsapp.limits import InboundLimiter, Verdict
from aspri.api.whatsapp.quoting import Quotes
from aspri.identity import Identities
from aspri.schemas import REGISTRY, Event, WhatsAppMessage
from aspri.schemas.media import Document, Media
from aspri.streams import keys
from aspri.streams.log import Appended, EventLog
from aspri.telemetry.metrics import INBOUND_THROTTLED
from aspri.telemetry.tracing import tag_current_span, tracer

log = logging.getLogger(__name__)
_tracer = tracer("aspri.whatsapp")


def inbound_key(message_id: str) -> str:
    """The idempotency key of the message with this WhatsApp id (outbound sends set it too)."""
    return f"whatsapp:in:{message_id}"


class Inbox:
    """Records inbound messages and tells the projections and live pages about them."""

    def __init__(
        self,
        log_: EventLog,
        directory: Directory,
        hub: Hub,
        limiter: InboundLimiter | None = None,
        slow_down: Callable[[Event[WhatsAppMessage]], Awaitable[None]] | None = None,
        *,
        stream: str = keys.WHATSAPP_MESSAGES,
        identities: Identities | None = None,
        engine: str = "",
        quotes: Quotes | None = None,
        document_text: Callable[[Media], Awaitable[Media | None]] | None = None,
    ) -> None:
        self.log = log_
        self.stream = stream
        """The engine's work queue (``WHATSAPP_STREAM_NAME``)."""
        self.directory = directory
        self.hub = hub
        self.limiter = limiter
        self.slow_down = slow_down
        self.identities = identities
        self.engine = engine
        """The channel engine's name, recorded as the source of the links it resolved."""
        self.quotes = quotes
        """Told each message the person wrote (``REPLY_QUOTE=first`` quotes by it)."""
        self.document_text = document_text
        """A document with its text (``aspri.media.extract``), stored with the message."""

    async def receive(self, message: WhatsAppMessage) -> str:
        """The ``on_message`` callback handed to the channel: the eventId of the message."""
        event, _ = await self.record(message)
        return event.event_id

    async def _as_person(self, message: WhatsAppMessage, identities: Identities) -> WhatsAppMessage:
        """The message with the person's ids; a link the channel resolved is recorded first."""
        if message.alias is not None and message.alias != message.from_:
            await identities.link(message.alias, message.from_, self.engine)
            return message
        person = identities.person(message.from_)
        if person == message.from_:
            return message
        chat_id = message.chat_id if message.is_group else identities.person(message.chat_id)
        return msgspec.structs.replace(message, from_=person, chat_id=chat_id, alias=message.from_)

    async def admit(self, message: WhatsAppMessage) -> Event[WhatsAppMessage] | None:
        """The rate limit's verdict before anything slow is done for ``message`` (a media
        download): a sender over the limit has it recorded at once, throttled, and gets it back;
        None means admitted, its place spent: record it later with ``admitted=True``."""
        if self.identities is not None:
            message = await self._as_person(message, self.identities)
        verdict = await self._verdict(message)
        if verdict.accepted:
            return None
        event, _ = await self._append(message, verdict)
        return event

    async def record(
        self, message: WhatsAppMessage, *, admitted: bool = False
    ) -> tuple[Event[WhatsAppMessage], Appended]:
        """Append ``message`` once; a repeat returns the first append with ``duplicate``.
        ``admitted``: ``admit`` already let it through, so the limit is not asked again."""
        if self.identities is not None:
            message = await self._as_person(message, self.identities)
        verdict = Verdict(accepted=True) if admitted else await self._verdict(message)
        if (  # only for a message the engine reads: a flooding sender's files are not parsed
            verdict.accepted
            and self.document_text is not None
            and isinstance(message.media, Document)
        ):
            message = msgspec.structs.replace(
                message, media=await self.document_text(message.media)
            )
        return await self._append(message, verdict)

    async def _verdict(self, message: WhatsAppMessage) -> Verdict:
        if message.from_me or self.limiter is None:
            return Verdict(accepted=True)
        return await self.limiter.check(message.from_ or message.chat_id, inbound_key(message.id))

    async def _append(
        self, message: WhatsAppMessage, verdict: Verdict
    ) -> tuple[Event[WhatsAppMessage], Appended]:
        chat = keys.chat(message.chat_id)
        if not verdict.accepted:
            message = msgspec.structs.replace(message, throttled=True)
        notify = verdict.notify
        work = not (message.from_me or message.throttled)
        streams = [self.stream, chat] if work else [chat]
        event = REGISTRY.event(message, source="whatsapp")
        tag_current_span(event.event_id)  # the webhook or web chat request that brought it
        with _tracer.start_as_current_span(
            f"{self.stream} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "redis",
                "messaging.destination.name": streams[0],
                "messaging.message.id": event.event_id,
                "aspri.event_id": event.event_id,
            },
        ) as span:
            appended = await self.log.append(
                streams, event, idempotency_key=inbound_key(message.id)
            )
            span.set_attribute("aspri.duplicate", appended.duplicate)
        extra = {"eventId": event.event_id, "chatId": message.chat_id, "messageId": message.id}
        if appended.duplicate:
            log.info("inbound message already recorded", extra=extra)
            first = await self.log.read(chat, appended.ids[-1], appended.ids[-1])
            return (first[0] if first else event), appended
        recorded = msgspec.structs.replace(event, entry_id=appended.ids[-1], stream=chat)
        if message.throttled:
            INBOUND_THROTTLED.inc()
            log.info("inbound message throttled: recorded, not handed on", extra=extra)
        else:
            log.info("inbound message recorded", extra=extra | {"fromMe": message.from_me})
        self.directory.mark(message.chat_id)
        if self.quotes is not None and not message.from_me:
            self.quotes.saw(message.chat_id, message.id)
        if self.hub.subscribers:  # building the message costs; nobody may be watching
            self.hub.publish(to_chat_message(recorded))
        if notify and self.slow_down is not None:
            await self.slow_down(recorded)
        return recorded, appended
