"""The interface every WhatsApp channel engine implements (``WHATSAPP_ENGINE``).

The gateway owns the event log, idempotency, pacing and splitting; an engine only moves text to
and from one WhatsApp connection. Inbound messages are handed to ``on_message``, which appends
them to the log (deduplicated by the WhatsApp message id).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from pathlib import Path

from aspri.schemas import WhatsAppMessage
from aspri.schemas.media import Voice
from aspri.schemas.status import WhatsAppStatus

OnMessage = Callable[[WhatsAppMessage], Awaitable[str | None]]
"""Records an inbound message; returns the eventId it became (None when not recorded)."""

OnStatus = Callable[[WhatsAppStatus], Awaitable[object]]
"""Records a delivery status of an outbound message (``Statuses.record``)."""


Defer = Callable[[WhatsAppMessage, bytes], Awaitable[str | None]]
"""Admits an inbound message whose media is still to be fetched: ``(message, pending)``, the
message carrying only the media's type and id. Over the rate limit it is recorded at once
as throttled (its eventId returned); otherwise ``pending`` is queued durably for ``resolve``
(None returned)."""

LastInbound = Callable[[str], Awaitable[int]]
"""Unix ms of a chat's last inbound message (0: none), from the chat stream's fold."""


class ChannelError(Exception):
    """The channel could not send; ``status`` is 502 (it refused) or 503 (it is not connected).

    ``permanent``: sending the same message again cannot succeed (the gateway records the send
    as ``failed``, tells the owner and answers 422, which no caller retries); ``code`` and
    ``title`` are the channel's own error code and its short description."""

    def __init__(
        self,
        message: str,
        status: int = 502,
        *,
        permanent: bool = False,
        code: str | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent
        self.code = code
        self.title = title


class Channel(abc.ABC):
    """One WhatsApp connection."""

    name: str = "channel"
    max_text: int = 4096
    """Longest text one message may carry; the gateway splits longer ones."""
    on_status: OnStatus | None = None
    """Set by the gateway before ``start``: where ``report_status`` records."""
    last_inbound: LastInbound | None = None
    """Set by the gateway before ``start`` (the Cloud API's 24-hour window needs it)."""
    voice_out: bool = False
    """Whether ``send_voice`` sends voice notes; the gateway sends replies as text otherwise."""
    defer: Defer | None = None
    """Set by the gateway before ``start`` when ``defers_media``: where a media message goes
    before its file is fetched."""
    defers_media: bool = False
    """Whether the engine queues media messages through ``defer`` and implements ``resolve``."""

    async def report_status(self, status: WhatsAppStatus) -> None:
        """Record what became of a sent message (an ack, a status webhook): once per message
        and status, never moving it backwards; an unknown message id is recorded too."""
        if self.on_status is None:
            raise ChannelError("the channel is not started", 503)
        await self.on_status(status)

    @abc.abstractmethod
    async def start(self, on_message: OnMessage) -> None:
        """Connect and start delivering inbound messages to ``on_message``."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Disconnect; must be safe to call twice."""

    @abc.abstractmethod
    async def send_text(self, chat_id: str, text: str) -> str:
        """Send one message (at most ``max_text`` characters); return the channel's message id."""

    async def send_reply(self, chat_id: str, text: str, quoted: str) -> str:
        """Send one message quoting the message ``quoted`` (the channel's id), where the channel
        can show a quote; the plain message otherwise."""
        return await self.send_text(chat_id, text)

    async def send_voice(self, chat_id: str, path: Path, voice: Voice) -> str:
        """Send the stored voice note at ``path`` (OGG/Opus); return the channel's message id."""
        raise ChannelError(f"the {self.name} engine cannot send voice notes yet", 502)

    @abc.abstractmethod
    def state(self) -> str:
        """``working``, ``starting``, ``scan_qr`` or ``disconnected``."""

    async def working(self, chat_id: str, message_id: str) -> None:
        """A turn started (or still runs) on the messages of ``chat_id`` up to ``message_id``:
        show the person that the assistant is typing and mark those messages read, where the
        channel can. Repeated while the turn runs; must not raise (a courtesy, not a send)."""
        return None

    async def resolve(self, pending: bytes) -> WhatsAppMessage | None:
        """A message queued through ``defer``, its media fetched (or the reason it is not);
        None when ``pending`` cannot be read. Only engines with ``defers_media`` queue any."""
        raise NotImplementedError(f"the {self.name} engine defers no media")

    async def qr(self) -> str | None:
        """The login QR code (its text payload) while ``state() == "scan_qr"``, else None."""
        return None
