"""Per-sender inbound rate limit, kept in Redis so every gateway process shares it.

A generic cell rate algorithm (the token bucket without a refill task): each sender has one
hash holding the theoretical arrival time ``tat`` of its next message. A message is accepted
when it is at most ``burst - 1`` intervals early; each accepted one moves ``tat`` on by one
interval (``60 s / rate_per_minute``); a refused one changes nothing. The hash expires when the
bucket is full again, and with it the ``noticed`` flag, so a sender gets one "slow down" notice
per flood, however long it lasts. A message already recorded (a redelivered webhook) is let
through without spending anything: its append is a no-op anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from aspri.streams import keys

_CHECK = """
-- KEYS: the sender's limiter hash, the message's idempotency key
-- ARGV: interval ms, burst tolerance ms     returns {accepted, notify}
if redis.call('EXISTS', KEYS[2]) == 1 then return {1, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or now)
if tat < now then tat = now end
if tat - tolerance > now then
  return {0, redis.call('HSETNX', KEYS[1], 'noticed', 1)}
end
redis.call('HSET', KEYS[1], 'tat', tat + interval)
redis.call('PEXPIRE', KEYS[1], tat + interval - now)
return {1, 0}
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the message goes to the engine, and whether to tell the sender to slow down."""

    accepted: bool
    notify: bool = False


class InboundLimiter:
    """``rate_per_minute`` messages per sender on average, ``burst`` of them at once."""

    def __init__(self, redis: Redis, *, rate_per_minute: float, burst: int) -> None:
        self.interval_ms = max(1, round(60_000 / rate_per_minute))
        self.tolerance_ms = self.interval_ms * (burst - 1)
        self._check = redis.register_script(_CHECK)

    async def check(self, sender: str, idempotency_key: str) -> Verdict:
        accepted, notify = await self._check(
            keys=[keys.inbound_limit(sender), keys.idempotency(idempotency_key)],
            args=[self.interval_ms, self.tolerance_ms],
        )
        return Verdict(bool(accepted), bool(notify))
