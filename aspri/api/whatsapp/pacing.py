"""Send pacing: a channel-wide rate and a minimum interval between messages to one chat.

WhatsApp throttles (and eventually bans) numbers that burst: the Cloud API allows about 80
messages/s per business number and roughly one message every few seconds to the same user; a
phone linked through WhatsApp Web is an ordinary account, flagged far sooner when it sends like
a bot. So the defaults depend on the engine (``ENGINE_PACING``): 80/s on the Cloud API, one
message a second on WhatsApp Web, none on the local web chat (nothing to protect, and a lock
and a clock read per send for nothing). Each send reserves the earliest slot that respects both
limits, under a lock, and then waits for it outside the lock, so concurrent sends to different
chats do not queue behind a sleeping one. The clock is injectable so tests advance time instead
of waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic clock."""

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


ENGINE_PACING: dict[str, tuple[float | None, float]] = {
    "cloud": (80.0, 0.0),
    "browser": (1.0, 0.0),
    "local": (None, 0.0),
}
"""Default (sends per second overall, or None for no limit; seconds between sends to one chat)
by ``WHATSAPP_ENGINE``; ``WHATSAPP_SEND_RATE`` / ``WHATSAPP_PER_CHAT_INTERVAL`` override them."""


def pacer_for(
    engine: str,
    rate_per_s: float | None,
    per_chat_interval_s: float | None,
    clock: Clock | None = None,
) -> Pacer:
    """The pacer of ``engine``: its defaults where the settings leave a value unset."""
    default_rate, default_per_chat = ENGINE_PACING.get(engine, ENGINE_PACING["cloud"])
    return Pacer(
        default_rate if rate_per_s is None else rate_per_s,
        default_per_chat if per_chat_interval_s is None else per_chat_interval_s,
        clock,
    )


class Pacer:
    """Spaces sends by ``1/rate_per_s`` overall (no limit when None) and ``per_chat_interval_s``
    within a chat."""

    def __init__(
        self, rate_per_s: float | None, per_chat_interval_s: float, clock: Clock | None = None
    ) -> None:
        self.gap = 0.0 if rate_per_s is None else 1.0 / rate_per_s
        self.per_chat = per_chat_interval_s
        self.clock = clock or MonotonicClock()
        self._next_any = 0.0
        self._next_chat: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def wait_turn(self, chat_id: str) -> float:
        """Wait until this chat may be sent to; returns how long it waited."""
        if self.gap == 0 and self.per_chat <= 0:  # unpaced
            return 0.0
        async with self._lock:
            now = self.clock.now()
            slot = max(now, self._next_any, self._next_chat.get(chat_id, 0.0))
            self._next_any = slot + self.gap
            if self.per_chat > 0:
                self._next_chat[chat_id] = slot + self.per_chat
                self._forget_idle(now)
        delay = slot - now
        if delay > 0:
            await self.clock.sleep(delay)
        return delay

    def _forget_idle(self, now: float) -> None:
        """Drop chats whose interval has passed, so the map does not grow with every chat."""
        if len(self._next_chat) > 1024:
            self._next_chat = {c: t for c, t in self._next_chat.items() if t > now}
