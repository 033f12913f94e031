"""Whether a reply quotes the message it answers (``REPLY_QUOTE``).

A quote helps when the reply would not sit right under the message it answers: the person
wrote again meanwhile (several messages were pending, so replies come one after another, or a
message arrived while the assistant was thinking). ``first`` quotes only then; ``always`` every
reply that names the message it answers; ``off`` never. The gateway decides, at the moment of
sending, from the newest message the person wrote in the chat: it records every inbound
message, so it knows without asking anyone (after a restart, from the chat's newest entries).
"""

from __future__ import annotations

from collections import OrderedDict

from aspri.schemas import WhatsAppMessage
from aspri.streams import keys
from aspri.streams.log import EventLog

KEPT = 10_000
"""Chats whose newest inbound message is remembered; others are read from their stream."""
LOOK_BACK = 50
"""Entries of a chat read to find its newest inbound message when it is not remembered."""


class Quotes:
    def __init__(self, log_: EventLog, mode: str) -> None:
        self.log = log_
        self.mode = mode
        self._newest: OrderedDict[str, str] = OrderedDict()

    def saw(self, chat_id: str, message_id: str) -> None:
        """The person's message ``message_id`` was just recorded in ``chat_id``."""
        self._newest[chat_id] = message_id
        self._newest.move_to_end(chat_id)
        if len(self._newest) > KEPT:
            self._newest.popitem(last=False)

    async def quoted(self, chat_id: str, reply_to: str | None) -> str | None:
        """The message id a reply answering ``reply_to`` quotes, or None."""
        if not reply_to or self.mode == "off":
            return None
        if self.mode == "always":
            return reply_to
        newest = self._newest.get(chat_id) or await self._read_newest(chat_id)
        return reply_to if newest is not None and newest != reply_to else None

    async def _read_newest(self, chat_id: str) -> str | None:
        for event in await self.log.read(keys.chat(chat_id), "-", "+", LOOK_BACK, reverse=True):
            data = event.data
            if isinstance(data, WhatsAppMessage) and not data.from_me:
                self.saw(chat_id, data.id)
                return data.id
        return None
