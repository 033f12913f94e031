"""Payload structs of the events ASPRI writes and reads (the ``data`` field of an entry).

Field names on the wire are camelCase, as the original TypeScript services wrote them.
Within a version only add fields with defaults; a breaking change is a new version plus an
upcaster in ``registry.py``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from aspri.schemas.media import Media


class Payload(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Base of every payload. ``type`` and ``version`` are set by ``registry.register``."""


class WhatsAppMessage(Payload, frozen=True, kw_only=True):
    """``whatsapp:message`` v2: one message seen in a chat (inbound, or outbound when fromMe).

    v2 replaced v1's ``hasMedia`` flag by ``media``, what the message carries besides text (a
    stored file, a location, a contact card, a reaction, a button reply, or a type ASPRI does
    not read, recorded by name); ``body`` stays the text the person wrote (a file's caption).
    ``upcast_v1`` brings a v1 entry up.

    ``id`` and ``chatId`` are empty only in messages other producers wrote (the original ASPRI
    v2's service sent no ``chatId``); the engine derives them (``aspri.agents.foreign``).
    """

    id: str = ""
    chat_id: str = ""
    from_: str = msgspec.field(name="from")
    from_name: str | None = None
    body: str = ""
    type: str = "chat"
    timestamp: int = 0
    is_group: bool = False
    from_me: bool = False
    media: Media | None = None
    quoted_message_id: str | None = None
    """The channel's id of the message this one replies to."""
    self_chat: bool = False
    """Written by the linked account in its own chat ("Message yourself"): the owner talking
    to the assistant (browser engine only; set by the channel, never by a request)."""
    throttled: bool = False
    """Recorded, but not handed to the engine: the sender was over the inbound rate limit
    (set by the gateway; the engine neither answers it nor counts it as unanswered)."""
    alias: str | None = None
    """The id the channel gave the sender by when it is not the person's own (an ``@lid``
    resolved to the phone's ``@c.us``, see ``aspri.identity``); ``from``/``chatId`` are the
    person's. Channels set it with the resolved ids; the gateway fills it for links it knows."""


class CronTrigger(Payload, frozen=True, kw_only=True):
    """``cronjob:trigger`` v1: a job came due at ``scheduledTime`` (Unix ms)."""

    job_id: str
    job_name: str
    scheduled_time: int
    payload: dict[str, Any] | None = None
