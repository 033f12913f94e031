"""The scheduler's notion of time, injectable so tests can run an hour of schedule in a second."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in Unix seconds, and a sleep that an event can cut short."""

    def now(self) -> float: ...

    async def sleep_until(self, t: float, wake: asyncio.Event) -> None:
        """Return at time ``t`` (``math.inf``: never) or as soon as ``wake`` is set."""
        ...


class SystemClock:
    """The real clock. Sleeps are timers on the event loop, not polls."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, t: float, wake: asyncio.Event) -> None:
        if wake.is_set():
            return
        delay = None if math.isinf(t) else t - time.time()
        if delay is not None and delay <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), delay)
