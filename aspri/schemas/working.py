"""The "a turn is working on this chat" signal, from an engine worker to the WhatsApp gateway.

Not an event: it is published on a pub/sub channel (``keys.working_channel``) and lost when no
gateway listens, which is right for what it drives (a typing indicator, a read receipt, both
repeated while the turn runs and harmless to miss).
"""

from __future__ import annotations

import msgspec


class Working(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    chat_id: str
    message_id: str
    """The channel's id of the newest message the turn answers (it and those before are read)."""
    event_id: str = ""
    ttl_ms: int = 30_000
    """How long the signal holds unless repeated (the worker repeats it sooner while working)."""
