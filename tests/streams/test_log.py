"""The event log on a real Valkey: optimistic concurrency, idempotency, multi-stream appends."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from aspri.schemas import REGISTRY, WhatsAppMessage
from aspri.streams import AppendConflict, EventLog


def message(n: int, chat: str = "c1") -> WhatsAppMessage:
    return WhatsAppMessage(id=f"m{n}", chat_id=chat, from_="1555", body=f"body {n}")


async def test_append_with_stale_expected_id_is_rejected(redis: Redis) -> None:
    log = EventLog(redis)
    first = await log.append("s", REGISTRY.event(message(1)), expected_last_id="0-0")
    await log.append("s", REGISTRY.event(message(2)), expected_last_id=first.id)
    with pytest.raises(AppendConflict) as info:
        await log.append("s", REGISTRY.event(message(3)), expected_last_id=first.id)
    assert info.value.expected == first.id
    assert info.value.actual == await log.last_id("s")
    assert [e.data.id for e in await log.read("s")] == ["m1", "m2"]


async def test_concurrent_writers_on_the_same_id_only_one_wins(redis: Redis) -> None:
    log = EventLog(redis)
    base = await log.last_id("s")
    results = await asyncio.gather(
        *(log.append("s", REGISTRY.event(message(i)), expected_last_id=base) for i in range(10)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert await redis.xlen("s") == 1


async def test_idempotent_append_writes_once_to_every_stream(redis: Redis) -> None:
    log = EventLog(redis)
    event = REGISTRY.event(message(1))
    a = await log.append(["whatsapp:messages", "chat:c1"], event, idempotency_key="wamid.1")
    b = await log.append(["whatsapp:messages", "chat:c1"], event, idempotency_key="wamid.1")
    assert not a.duplicate and b.duplicate
    assert a.ids == b.ids and len(a.ids) == 2
    assert await redis.xlen("whatsapp:messages") == 1
    assert await redis.xlen("chat:c1") == 1
    stored = (await log.read("chat:c1"))[0]
    assert stored.event_id == event.event_id


async def test_read_ranges_reverse_and_tail(redis: Redis) -> None:
    log = EventLog(redis)
    ids = [(await log.append("s", REGISTRY.event(message(i)))).id for i in range(5)]
    newest = await log.read("s", count=2, reverse=True)
    assert [e.data.id for e in newest] == ["m4", "m3"]
    middle = await log.read("s", f"({ids[1]}", ids[3])
    assert [e.data.id for e in middle] == ["m2", "m3"]

    seen: list[str] = []

    async def follow() -> None:
        async for event in log.tail("s", after=ids[-1], block_ms=100):
            seen.append(event.data.id)
            if len(seen) == 2:
                return

    task = asyncio.create_task(follow())
    await log.append("s", REGISTRY.event(message(5)))
    await log.append("s", REGISTRY.event(message(6)))
    await asyncio.wait_for(task, 5)
    assert seen == ["m5", "m6"]


async def test_undecodable_entries_are_skipped_when_reading(redis: Redis) -> None:
    log = EventLog(redis)
    await redis.xadd("s", {"type": "whatsapp:message", "data": "{broken"})
    await log.append("s", REGISTRY.event(message(1)))
    assert [e.data.id for e in await log.read("s")] == ["m1"]
