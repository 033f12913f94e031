"""Payload structs of the events ASPRI writes and reads (the ``data`` field of an entry).

Field names on the wire are camelCase, as the original TypeScript services wrote them.
Within a version only add fields with defaults; a breaking change is a new version plus an
upcaster in ``registry.py``.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Payload(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Base of every payload. ``type`` and ``version`` are set by ``registry.register``."""


class WhatsAppMessage(Payload, frozen=True, kw_only=True):
    """``whatsapp:message`` v1: one message seen in a chat (inbound, or outbound when fromMe)."""

    id: str
    chat_id: str
    from_: str = msgspec.field(name="from")
    from_name: str | None = None
    body: str = ""
    type: str = "chat"
    timestamp: int = 0
    is_group: bool = False
    from_me: bool = False
    has_media: bool = False
    quoted_message_id: str | None = None
    self_chat: bool = False
    """Written by the linked account in its own chat ("Message yourself"): the owner talking
    to the assistant (browser engine only; set by the channel, never by a request)."""
    throttled: bool = False
    """Recorded, but not handed to the engine: the sender was over the inbound rate limit
    (set by the gateway; the engine neither answers it nor counts it as unanswered)."""


class CronTrigger(Payload, frozen=True, kw_only=True):
    """``cronjob:trigger`` v1: a job came due at ``scheduledTime`` (Unix ms)."""

    job_id: str
    job_name: str
    scheduled_time: int
    payload: dict[str, Any] | None = None
