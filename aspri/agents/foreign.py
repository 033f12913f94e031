"""Messages that other producers put in ``whatsapp:messages``: the original ASPRI v2's WhatsApp
service, or a hand-written ``XADD`` such as its README's test event, whose data can be as
little as ``{"from": "628123456789", "body": "Test"}``.

No gateway recorded such a message in ``chat:{chatId}``, and it has no ``chatId``, so the
engine cannot fold a session from it. It is adopted instead: the chat id comes from ``from``,
the message id from the entry id (when the producer gave none), and the completed message is
appended to ``chat:{chatId}`` and back to ``whatsapp:messages`` in one atomic, idempotent step,
keyed by the foreign event's id. The copy is answered like any message from the gateway, once;
a redelivered or re-appended foreign event adopts nothing new.
"""

from __future__ import annotations

import logging

import msgspec

from aspri.schemas import REGISTRY, Event, WhatsAppMessage, chatid
from aspri.streams import Permanent, keys
from aspri.streams.log import EventLog

log = logging.getLogger(__name__)

SECONDS_BEFORE = 10**11
"""Timestamps below this are Unix seconds (whatsapp-web.js gives seconds), not milliseconds."""


def is_foreign(event: Event[WhatsAppMessage]) -> bool:
    """Whether the message came from a producer that is not an ASPRI gateway."""
    return not (event.data.chat_id and event.data.id)


async def adopt(log_: EventLog, stream: str, event: Event[WhatsAppMessage]) -> bool:
    """Record a foreign message where the gateway would have; True when it is new."""
    data = event.data
    try:
        chat_id = chatid.normalize(data.chat_id or data.from_)
    except chatid.InvalidChatId as exc:  # no retry can make it a chat
        raise Permanent(f"message {event.event_id}: 'from' is not a chat: {exc}") from None
    stamp = data.timestamp or event.timestamp
    message = msgspec.structs.replace(
        data,
        id=data.id or event.entry_id or event.event_id,
        chat_id=chat_id,
        from_=chat_id if not data.from_ or "@" not in data.from_ else data.from_,
        timestamp=stamp * 1000 if stamp < SECONDS_BEFORE else stamp,
    )
    copy = REGISTRY.event(message, source=event.source, causation_id=event.event_id)
    appended = await log_.append(
        [stream, keys.chat(chat_id)], copy, idempotency_key=f"adopt:{event.event_id}"
    )
    extra = {"eventId": event.event_id, "chatId": chat_id, "duplicate": appended.duplicate}
    log.info("message from another producer adopted", extra=extra)
    return not appended.duplicate
