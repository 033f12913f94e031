"""The leader lease: only the scheduler holding it fires jobs.

The lease is a key holding the holder's token with a TTL the holder renews every third of it.
A holder that cannot renew (dead, cut off) loses it when the TTL runs out, and a waiting
scheduler takes it over. Writes of the holder are fenced by the same key (see ``fire.py``), so
a holder that was paused past its TTL cannot fire after a successor took over. A holder that
stops cleanly hands the lease over at once through a list a waiting scheduler blocks on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from aspri.schemas import new_event_id
from aspri.streams import keys

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


class Lease:
    """Acquire, keep and release the lease; ``on_change`` is called whenever ``held`` flips."""

    def __init__(
        self,
        redis: Redis,
        owner: str,
        *,
        ttl_s: float = 10.0,
        on_change: Callable[[], None] = lambda: None,
        longest_wait_ms: int = 4_000,
        key: str = keys.CRON_LEASE,
        handover_key: str = keys.CRON_HANDOVER,
    ) -> None:
        self.redis = redis
        self.key = key
        self.handover_key = handover_key
        self.token = f"{owner}|{new_event_id()}"
        self.ttl_ms = max(int(ttl_s * 1000), 30)
        self.held = False
        self.longest_wait_ms = longest_wait_ms
        self._on_change = on_change
        self._renewed_at = 0.0
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _set(self, held: bool) -> None:
        if held != self.held:
            self.held = held
            log.info(
                "scheduler lease " + ("acquired" if held else "lost"),
                extra={"lease": self.key, "token": self.token},
            )
            self._on_change()

    def lost(self) -> None:
        """A fenced write showed that another scheduler holds the lease now."""
        self._set(False)

    async def keep(self) -> None:
        """Hold the lease whenever possible, until cancelled."""
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("scheduler lease: redis unavailable", extra={"error": str(exc)})
                if self.held and time.monotonic() - self._renewed_at > self.ttl_ms / 1000:
                    self._set(False)
                await asyncio.sleep(min(1.0, self.ttl_ms / 3000))

    async def _step(self) -> None:
        if self.held:
            if not await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]):
                self._set(False)
                return
            self._renewed_at = time.monotonic()
            await asyncio.sleep(self.ttl_ms / 3000)
            return
        if await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            self._renewed_at = time.monotonic()
            self._set(True)
            return
        remaining = await self.redis.pttl(self.key)
        if remaining > 0:  # wait for expiry, or for the holder to hand over
            wait_ms = min(remaining + 10, self.longest_wait_ms)
            await self.redis.blpop([self.handover_key], timeout=wait_ms / 1000)

    async def release(self) -> None:
        """Give the lease up (only if still ours) and wake a waiting scheduler."""
        try:
            await self._release(keys=[self.key, self.handover_key], args=[self.token, self.ttl_ms])
        except (RedisError, OSError) as exc:
            log.warning("scheduler lease not released", extra={"error": str(exc)})
        self._set(False)
