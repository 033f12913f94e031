"""The ``local`` engine: WhatsApp without a phone, through the gateway's own web chat.

The "network" is the gateway itself: the page at ``/chat`` posts what a person types to
``/api/local/messages`` (an inbound message) and shows what the assistant sends, which the
gateway records in the chat stream and pushes to the page live. So sending always succeeds
and the channel is always ``working``.
"""

from __future__ import annotations

from pathlib import Path

import uuid_utils

from aspri.api.whatsapp.channel import Channel, OnMessage
from aspri.schemas import WhatsAppMessage, now_ms
from aspri.schemas.media import Voice

MAX_TEXT = 65_536


def local_message_id() -> str:
    """A WhatsApp-like message id (upper-case hex), unique and time-ordered."""
    return "LOCAL" + uuid_utils.uuid7().hex.upper()


class LocalChannel(Channel):
    name = "local"
    max_text = MAX_TEXT
    voice_out = True

    def __init__(self) -> None:
        self._running = False

    async def start(self, on_message: OnMessage) -> None:
        """Inbound messages arrive through ``/api/local/messages``, which records them itself
        (it answers with the event id), so ``on_message`` is not needed here."""
        self._running = True

    async def stop(self) -> None:
        self._running = False

    async def send_text(self, chat_id: str, text: str) -> str:
        return local_message_id()

    async def send_voice(self, chat_id: str, path: Path, voice: Voice) -> str:
        """The page plays the stored file itself (``/api/media/{sha256}``)."""
        return local_message_id()

    def state(self) -> str:
        return "working" if self._running else "disconnected"

    @staticmethod
    def inbound(chat_id: str, text: str, name: str | None) -> WhatsAppMessage:
        """The message a person typed into the web chat as ``chat_id``."""
        return WhatsAppMessage(
            id=local_message_id(),
            chat_id=chat_id,
            from_=chat_id,
            from_name=name,
            body=text,
            timestamp=now_ms(),
            is_group=chat_id.endswith("@g.us"),
        )
