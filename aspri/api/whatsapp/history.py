"""A chat's messages as the history endpoint shows them, read from ``chat:{chatId}``.

A chat stream also holds the engine's own events (turns, resets) and delivery statuses; only
``whatsapp:message`` events are messages, each outbound one with its latest status (the fold
``statuses.py`` keeps), plus the sends the channel refused (a ``failed`` status without a
message id), so the person sees what was not sent. Pages are cut by stream id, so ``before``
is a stable cursor even while new messages arrive.
"""

from __future__ import annotations

import re
from typing import Any, cast

import msgspec
from redis.asyncio import Redis

from aspri.api.whatsapp.statuses import error_text, latest
from aspri.schemas import Event, UndecodableEvent, WhatsAppMessage
from aspri.schemas.api import ChatMessage, MessagePage
from aspri.schemas.envelope import text
from aspri.schemas.status import FAILED, SENT, WhatsAppStatus
from aspri.streams import keys
from aspri.streams.log import EventLog

MESSAGE_TYPE = "whatsapp:message"
STATUS_TYPE = "whatsapp:status"
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
        status=SENT if m.from_me else None,
        quoted_message_id=m.quoted_message_id,
    )


def refused_send(event: Event[Any]) -> ChatMessage | None:
    """A send the channel refused (``failed`` with no message id) as the message it would have
    been; None for any other status report."""
    s: WhatsAppStatus = event.data
    if s.status != FAILED or s.message_id or s.body is None:
        return None
    return ChatMessage(
        id=f"failed:{event.event_id}",
        chat_id=s.chat_id,
        from_="me",
        body=s.body,
        timestamp=s.timestamp or event.timestamp,
        from_me=True,
        event_id=event.event_id,
        entry_id=event.entry_id,
        status=FAILED,
        status_error=error_text(s),
    )


async def with_statuses(
    redis: Redis, chat_id: str, messages: list[ChatMessage]
) -> list[ChatMessage]:
    """``messages`` with each outbound one's latest delivery status."""
    sent = [m.id for m in messages if m.from_me and m.status == SENT]
    folded = await latest(redis, chat_id, sent)
    return [
        msgspec.structs.replace(m, status=f.status, status_error=f.error)
        if (f := folded.get(m.id)) is not None
        else m
        for m in messages
    ]


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
            elif event.type == STATUS_TYPE and (refused := refused_send(event)) is not None:
                found.append(refused)
        if len(raw) < batch:
            break
        end = f"({text(raw[-1][0])}"
    more = len(found) > limit
    found = await with_statuses(log.redis, chat_id, found[:limit])
    return MessagePage(messages=found, next_before=found[-1].entry_id if more and found else None)
