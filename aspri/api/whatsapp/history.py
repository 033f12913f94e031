"""A chat's messages as the history endpoint shows them, read from ``chat:{chatId}``.

A chat stream also holds the engine's own events (turns, resets); only ``whatsapp:message``
events are messages. Pages are cut by stream id, so ``before`` is a stable cursor even while
new messages arrive.
"""

from __future__ import annotations

import re
from typing import Any, cast

from aspri.schemas import Event, UndecodableEvent, WhatsAppMessage
from aspri.schemas.api import ChatMessage, MessagePage
from aspri.schemas.envelope import text
from aspri.streams import keys
from aspri.streams.log import EventLog

MESSAGE_TYPE = "whatsapp:message"
CURSOR = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")
_ID_PART_MAX = 2**64 - 1


def valid_cursor(before: str) -> bool:
    """Whether ``before`` is a stream id Redis accepts as an exclusive end (above ``0-0``)."""
    match = CURSOR.match(before)
    if match is None:
        return False
    ms, seq = int(match.group(1)), int(match.group(2) or 0)
    return ms <= _ID_PART_MAX and seq <= _ID_PART_MAX and (ms, seq) > (0, 0)


def millis(timestamp: int) -> int:
    """Unix ms; a value that can only be seconds (as some WhatsApp clients send) is scaled."""
    return timestamp * 1000 if 0 < timestamp < 100_000_000_000 else timestamp


def to_chat_message(event: Event[Any]) -> ChatMessage:
    m: WhatsAppMessage = event.data
    return ChatMessage(
        id=m.id,
        chat_id=m.chat_id,
        from_=m.from_,
        from_name=m.from_name,
        body=m.body,
        type=m.type,
        timestamp=millis(m.timestamp) or event.timestamp,
        from_me=m.from_me,
        event_id=event.event_id,
        entry_id=event.entry_id,
        media=m.media,
        media_url=f"/api/media/{sha256}" if (sha256 := getattr(m.media, "sha256", None)) else None,
    )


async def read_page(log: EventLog, chat_id: str, limit: int, before: str | None) -> MessagePage:
    """Up to ``limit`` messages older than ``before`` (an entry id), newest first."""
    stream = keys.chat(chat_id)
    end = f"({before}" if before else "+"
    batch = max(limit + 1, 64)
    found: list[ChatMessage] = []
    while len(found) <= limit:
        raw = cast(list[Any], await log.redis.xrevrange(stream, end, "-", count=batch))
        for entry_id, fields in raw:
            try:
                event = log.registry.from_fields(fields, entry_id=text(entry_id), stream=stream)
            except UndecodableEvent:
                continue
            if event.type == MESSAGE_TYPE:
                found.append(to_chat_message(event))
        if len(raw) < batch:
            break
        end = f"({text(raw[-1][0])}"
    more = len(found) > limit
    found = found[:limit]
    return MessagePage(messages=found, next_before=found[-1].entry_id if more and found else None)
