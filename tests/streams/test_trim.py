"""Trimming work queues: only what every group is done with, never a pending or unread entry,
never a stream it was not given."""

from __future__ import annotations

from redis.asyncio import Redis

from aspri.streams.ids import parse
from aspri.streams.trim import Trimmer, needed_from

STREAM = "work"


async def fill(redis: Redis, n: int, stream: str = STREAM) -> list[str]:
    return [(await redis.xadd(stream, {"n": str(i)})).decode() for i in range(n)]


async def read(redis: Redis, group: str, count: int) -> list[str]:
    got = await redis.xreadgroup(group, "c1", {STREAM: ">"}, count=count)
    return [entry_id.decode() for entry_id, _ in got[0][1]]


async def remaining(redis: Redis, stream: str = STREAM) -> list[str]:
    return [entry_id.decode() for entry_id, _ in await redis.xrange(stream)]


async def test_pending_and_unread_entries_stay(redis: Redis) -> None:
    ids = await fill(redis, 100)
    await redis.xgroup_create(STREAM, "g", id="0")
    delivered = await read(redis, "g", 60)
    await redis.xack(STREAM, "g", *delivered[:10], *delivered[20:])  # 10..19 still pending
    trimmer = Trimmer(redis, [STREAM], keep=1)
    assert await trimmer.trim(STREAM) == 10
    assert await remaining(redis) == ids[10:]
    await redis.xack(STREAM, "g", *delivered[10:20])
    assert await trimmer.trim(STREAM) == 50  # all acked: down to the first unread entry
    assert await remaining(redis) == ids[60:]


async def test_the_slowest_group_decides(redis: Redis) -> None:
    ids = await fill(redis, 50)
    await redis.xgroup_create(STREAM, "fast", id="0")
    await redis.xgroup_create(STREAM, "slow", id="0")
    await redis.xack(STREAM, "fast", *await read(redis, "fast", 50))
    await redis.xack(STREAM, "slow", *await read(redis, "slow", 20))
    needed = parse(await needed_from(redis, STREAM) or "0-0")
    assert parse(ids[19]) < needed <= parse(ids[20])  # just past what "slow" read
    await Trimmer(redis, [STREAM], keep=1).trim(STREAM)
    assert await remaining(redis) == ids[20:]


async def test_keeps_the_newest_and_leaves_other_streams_alone(redis: Redis) -> None:
    ids = await fill(redis, 40)
    chat = await fill(redis, 40, "chat:someone@c.us")
    ungrouped = await fill(redis, 40, "nobody-reads-this")
    await redis.xgroup_create(STREAM, "g", id="0")
    await redis.xack(STREAM, "g", *await read(redis, "g", 40))
    trimmer = Trimmer(redis, [STREAM, "nobody-reads-this"], keep=15)
    await trimmer.run_once()
    assert await remaining(redis) == ids[-15:]
    assert await remaining(redis, "chat:someone@c.us") == chat
    assert await remaining(redis, "nobody-reads-this") == ungrouped  # no group: not known done
    assert await Trimmer(redis, ["absent"], keep=1).trim("absent") == 0
