"""Trimming of acknowledged work-queue entries, so a work queue stays bounded over a long run.

XACK does not delete, so ``whatsapp:messages`` and ``cronjob:events`` would grow for ever. The
trimmer removes (XTRIM MINID) only entries below the oldest one some consumer group still needs:
its oldest pending entry (delivered, not acked) or the first it has not read yet. The newest
``keep`` entries stay anyway, for inspection. A stream without a group is left alone (nobody is
known to be done with it), and only the streams it is given are touched: the conversation logs
(``chat:*``) are the record, never trimmed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from redis.asyncio import Redis

from aspri.schemas.envelope import text
from aspri.streams import ids

log = logging.getLogger(__name__)

KEEP_FROM = """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1])
if #newest < tonumber(ARGV[1]) then return false end
return newest[#newest][1]
"""
"""The id of the ``keep``-th newest entry (false when the stream holds fewer): only the id
crosses the wire, not the entries."""


def _next(entry_id: str) -> str:
    ms, seq = ids.parse(entry_id)
    return f"{ms}-{seq + 1}"


def _lowest(a: str, b: str) -> str:
    return a if ids.parse(a) <= ids.parse(b) else b


async def needed_from(redis: Redis, stream: str) -> str | None:
    """The lowest entry id any group of ``stream`` still needs; None when it has no group."""
    floor: str | None = None
    for group in await redis.xinfo_groups(stream):
        need = _next(text(group["last-delivered-id"]))
        if int(group["pending"]):
            summary = await redis.xpending(stream, group["name"])
            if summary["min"] is not None:
                need = _lowest(need, text(summary["min"]))
        floor = need if floor is None else _lowest(floor, need)
    return floor


class Trimmer:
    """Trims ``streams`` every ``interval_s`` seconds (any number of processes may run one)."""

    def __init__(
        self, redis: Redis, streams: Sequence[str], *, keep: int, interval_s: float = 5.0
    ) -> None:
        self.redis = redis
        self.streams = list(streams)
        self.keep = keep
        self.interval_s = interval_s
        self.trimmed = 0
        self._keep_from = redis.register_script(KEEP_FROM)

    async def trim(self, stream: str) -> int:
        """Trim one stream now; returns how many entries went."""
        if not await self.redis.exists(stream):
            return 0
        floor = await needed_from(self.redis, stream)
        if floor is None:
            return 0
        if self.keep:
            kept_from = await self._keep_from(keys=[stream], args=[self.keep])
            if kept_from is None:
                return 0
            floor = _lowest(floor, text(kept_from))
        removed = int(await self.redis.xtrim(stream, minid=floor, approximate=False))
        self.trimmed += removed
        if removed:
            log.debug("stream trimmed", extra={"stream": stream, "removed": removed})
        return removed

    async def run_once(self) -> int:
        return sum([await self.trim(stream) for stream in self.streams])

    async def run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval_s)
