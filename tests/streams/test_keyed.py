"""The keyed path under contention and through a crash: order per key, nothing lost, nothing
done twice that was acked."""

from __future__ import annotations

import asyncio
import random
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from aspri.schemas import REGISTRY, Event
from aspri.streams import EventLog, StreamApp, ids
from tests.helpers import wait_until
from tests.streams.test_agent import STREAM, app_for, msg


async def produce(redis: Redis, n: int, keys: int) -> dict[str, list[int]]:
    """``n`` events round-robin over ``keys`` chats; returns the message numbers per chat."""
    log = EventLog(redis)
    per_key: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        chat = f"chat-{i % keys}"
        await log.append(STREAM, REGISTRY.event(msg(i, chat=chat)))
        per_key[chat].append(i)
    return per_key


async def test_consumers_contending_for_the_same_keys_keep_their_order(redis: Redis) -> None:
    """3 consumers x 4 workers on 5 hot keys: every key hops between consumers all the time."""
    expected = await produce(redis, 600, keys=5)
    seen: dict[str, list[int]] = defaultdict(list)
    active: set[str] = set()
    overlaps: list[str] = []

    def make(app: StreamApp) -> None:
        @app.agent(STREAM, key="chatId", concurrency=4, batch=20)
        async def handle(events: AsyncIterator[Event[Any]]) -> None:
            async for event in events:
                chat = event.data.chat_id
                if chat in active:
                    overlaps.append(chat)
                active.add(chat)
                await asyncio.sleep(random.random() / 2000)
                seen[chat].append(int(event.data.id[1:]))
                active.discard(chat)

    apps = [app_for(redis, consumer=f"w{i}", claim_idle_ms=10_000) for i in range(3)]
    for app in apps:
        make(app)
    await asyncio.wait_for(asyncio.gather(*(a.run(burst=True) for a in apps)), 90)
    assert overlaps == []
    assert dict(seen) == dict(expected)  # each once, in stream order per key
    assert all(r.processed > 0 for app in apps for r in app.runners)
    assert sum(r._order.handovers for app in apps for r in app.runners) > 0  # keys moved
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0
    assert await redis.keys("keyq:*") == []
    assert await redis.keys("lease:g:whatsapp:messages:chat-*") == []


async def test_one_consumer_needs_no_wake_ups_and_no_round_trip_per_entry(redis: Redis) -> None:
    """Uncontended, the keyed path costs a script per read and per flush, not per entry, and
    publishes nothing: a wake-up is only for a hand-over to another consumer."""
    expected = await produce(redis, 300, keys=20)
    await redis.config_resetstat()
    seen: dict[str, list[int]] = defaultdict(list)
    app = app_for(redis)

    @app.agent(STREAM, key="chatId", batch=100)
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            seen[event.data.chat_id].append(int(event.data.id[1:]))

    await asyncio.wait_for(app.run(burst=True), 30)
    assert dict(seen) == dict(expected)
    stats = await redis.info("commandstats")
    assert "cmdstat_publish" not in stats
    scripts = sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("eval", "evalsha"))
    assert scripts <= 30  # 300 entries
    assert stats["cmdstat_xreadgroup"]["calls"] <= 15  # read in batches, payloads natively


async def test_a_crash_in_the_middle_of_a_batch(redis: Redis, redis_url: str) -> None:
    """A consumer process is killed (SIGKILL) with finishes not yet flushed and entries not yet
    started: a survivor takes over exactly the unacked entries, in order per key."""
    expected = await produce(redis, 400, keys=20)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.streams.doomed", redis_url, STREAM, "150"
    )
    assert await asyncio.wait_for(proc.wait(), 60) == -9
    pending = await redis.xpending_range(STREAM, "g", "-", "+", 1_000)
    unacked = {p["message_id"].decode() for p in pending}
    group = (await redis.xinfo_groups(STREAM))[0]
    delivered_up_to = ids.parse(group["last-delivered-id"].decode())
    numbers = {e[0].decode(): _number(e[1]) for e in await redis.xrange(STREAM)}
    acked = {n for i, n in numbers.items() if i not in unacked and ids.parse(i) <= delivered_up_to}
    assert len(await redis.lrange("handled", 0, -1)) >= 150  # 4 workers: a few more
    assert 0 < len(acked) < 150  # some finishes were flushed, others were not
    assert len(unacked) > 0

    survivor = app_for(redis, consumer="survivor", claim_idle_ms=1_000)
    seen: dict[str, list[int]] = defaultdict(list)

    @survivor.agent(STREAM, key="chatId", concurrency=4)
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            seen[event.data.chat_id].append(int(event.data.id[1:]))

    task = asyncio.create_task(survivor.run())
    await wait_until(lambda: _all_acked(redis), timeout=60)
    await survivor.stop(timeout=5)
    await asyncio.wait_for(task, 10)
    for chat, sent in expected.items():  # exactly what was not acked, in stream order
        assert seen[chat] == [n for n in sent if n not in acked], chat
    assert await redis.keys("keyq:*") == []


def _number(fields: dict[bytes, bytes]) -> int:
    return int(REGISTRY.from_fields(fields).data.id[1:])


async def _unread(redis: Redis) -> int:
    for group in await redis.xinfo_groups(STREAM):
        return int(group.get("lag") or 0)
    return 0


async def _all_acked(redis: Redis) -> bool:
    return await _unread(redis) == 0 and (await redis.xpending(STREAM, "g"))["pending"] == 0
