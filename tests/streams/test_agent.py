"""The stream runtime against a real Valkey: delivery, retries, DLQ, takeover, per-key order."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from aspri.schemas import REGISTRY, Event, WhatsAppMessage
from aspri.streams import EventLog, StreamApp, keys
from tests.helpers import wait_until

STREAM = "whatsapp:messages"


def msg(n: int, chat: str = "c1") -> WhatsAppMessage:
    return WhatsAppMessage(id=f"m{n}", chat_id=chat, from_="1555", body=str(n))


def app_for(redis: Redis, consumer: str = "w1", **options: Any) -> StreamApp:
    defaults: dict[str, Any] = {"claim_idle_ms": 200, "retry_backoff_s": 0.01}
    return StreamApp("g", redis, consumer=consumer, **{**defaults, **options})


async def test_seed_format_entry_is_consumed(redis: Redis) -> None:
    """An entry written like the original TypeScript service (no v, no traceparent)."""
    await redis.xadd(
        STREAM,
        {
            "eventId": "e-1",
            "type": "whatsapp:message",
            "source": "whatsapp",
            "timestamp": "1700000000000",
            "data": '{"id":"w1","chatId":"1555@c.us","from":"1555@c.us","body":"hi"}',
        },
    )
    app = app_for(redis)
    seen: list[Event[Any]] = []

    @app.agent(STREAM, schema=WhatsAppMessage)
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            seen.append(event)

    await asyncio.wait_for(app.run(burst=True), 10)
    # read as the newest version of whatsapp:message (v2), upcast from the v1 it was written as
    assert [(e.event_id, e.data.body, e.v, e.deliveries) for e in seen] == [("e-1", "hi", 2, 1)]
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0


async def test_events_written_before_the_group_existed_are_seen(redis: Redis) -> None:
    log = EventLog(redis)
    for i in range(3):
        await log.append(STREAM, REGISTRY.event(msg(i)))
    app = app_for(redis)
    seen: list[str] = []

    @app.agent(STREAM)
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            seen.append(event.data.id)

    await asyncio.wait_for(app.run(burst=True), 10)
    assert seen == ["m0", "m1", "m2"]


async def test_failing_handler_is_retried_then_dead_lettered_with_reason(redis: Redis) -> None:
    log = EventLog(redis)
    await log.append(STREAM, REGISTRY.event(msg(1)))
    await log.append(STREAM, REGISTRY.event(msg(2)))
    app = app_for(redis, max_deliveries=3)
    attempts: dict[str, list[int]] = defaultdict(list)

    @app.agent(STREAM, key="chatId")
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            attempts[event.data.id].append(event.deliveries)
            if event.data.id == "m1":
                raise RuntimeError("model unreachable")

    await asyncio.wait_for(app.run(burst=True), 10)
    assert attempts == {"m1": [1, 2, 3], "m2": [1]}  # m2 waited for m1 (same key), then ran
    dead = await redis.xrange(keys.dlq(STREAM))
    assert len(dead) == 1
    fields = {k.decode(): v.decode() for k, v in dead[0][1].items()}
    assert fields["error"] == "RuntimeError: model unreachable"
    assert fields["deliveries"] == "3"
    assert fields["type"] == "whatsapp:message" and '"id":"m1"' in fields["data"]
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0
    assert await redis.keys("keyq:*") == []  # the key's queue is empty again
    assert await redis.keys("lease:g:whatsapp:messages:c1") == []


async def test_undecodable_and_unexpected_entries_go_to_the_dlq(redis: Redis) -> None:
    await redis.xadd(STREAM, {"type": "whatsapp:message", "data": "{oops"})
    await redis.xadd(STREAM, {"type": "no:such", "data": "{}"})
    await redis.xadd(
        STREAM, {"type": "cronjob:trigger", "data": '{"jobId":"j","jobName":"n","scheduledTime":1}'}
    )
    app = app_for(redis)
    handled: list[str] = []

    @app.agent(STREAM, schema=WhatsAppMessage)
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            handled.append(event.type)

    await asyncio.wait_for(app.run(burst=True), 10)
    assert handled == []
    reasons = [v[b"error"].decode() for _, v in await redis.xrange(keys.dlq(STREAM))]
    assert reasons[0].startswith("undecodable:")
    assert "unknown event type 'no:such'" in reasons[1]
    assert "unexpected event type 'cronjob:trigger'" in reasons[2]
    assert (await redis.xpending(STREAM, "g"))["pending"] == 0


async def test_killed_consumer_event_is_taken_over_and_processed_once(redis: Redis) -> None:
    """A consumer whose task is cancelled mid-handler (no ack) loses its event to another."""
    log = EventLog(redis)
    await log.append(STREAM, REGISTRY.event(msg(1)))
    done: set[str] = set()  # the side effect, idempotent by eventId
    effects: list[str] = []
    entered = asyncio.Event()

    def make(app: StreamApp, hang: bool) -> None:
        @app.agent(STREAM, key="chatId")
        async def handle(events: AsyncIterator[Event[Any]]) -> None:
            async for event in events:
                entered.set()
                if hang:
                    await asyncio.Event().wait()  # killed here, before the ack
                if event.event_id not in done:
                    done.add(event.event_id)
                    effects.append(event.data.id)

    doomed = app_for(redis, consumer="doomed")
    make(doomed, hang=True)
    task = asyncio.create_task(doomed.run())
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()  # the process dies: no ack, no lease release
    await asyncio.gather(task, return_exceptions=True)
    assert (await redis.xpending(STREAM, "g"))["pending"] == 1

    survivor = app_for(redis, consumer="survivor")
    make(survivor, hang=False)
    runner = asyncio.create_task(survivor.run())
    await wait_until(lambda: effects == ["m1"], timeout=10)
    await wait_until(lambda: _no_pending(redis), timeout=5)
    await survivor.stop()
    await asyncio.gather(runner, return_exceptions=True)
    assert effects == ["m1"]
    info = await redis.xpending_range(STREAM, "g", "-", "+", 10)
    assert info == []


async def _no_pending(redis: Redis) -> bool:
    return (await redis.xpending(STREAM, "g"))["pending"] == 0


async def test_per_key_order_across_three_consumers(redis: Redis) -> None:
    """1,000 events over 200 keys, 3 consumers with concurrency 4 each: order kept per key."""
    log = EventLog(redis)
    pipe_events = [msg(i, chat=f"chat-{i % 200}") for i in range(1000)]
    for m in pipe_events:
        await log.append(STREAM, REGISTRY.event(m))
    seen: dict[str, list[int]] = defaultdict(list)
    active: set[str] = set()
    overlaps: list[str] = []

    def make(app: StreamApp) -> None:
        @app.agent(STREAM, key="chatId", concurrency=4)
        async def handle(events: AsyncIterator[Event[Any]]) -> None:
            async for event in events:
                chat = event.data.chat_id
                if chat in active:
                    overlaps.append(chat)
                active.add(chat)
                await asyncio.sleep(random.random() / 1000)  # vary timing between consumers
                seen[chat].append(int(event.data.id[1:]))
                active.discard(chat)

    # No consumer dies here: a long claim idle keeps a loaded machine from faking a takeover.
    apps = [app_for(redis, consumer=f"w{i}", claim_idle_ms=10_000) for i in range(3)]
    for app in apps:
        make(app)
    await asyncio.wait_for(asyncio.gather(*(a.run(burst=True) for a in apps)), 60)
    assert sum(len(v) for v in seen.values()) == 1000
    assert all(v == sorted(v) for v in seen.values()), "per-key order broken"
    assert overlaps == []
    assert all(r.processed > 0 for app in apps for r in app.runners)  # all three did work


async def test_graceful_stop_leaves_unstarted_events_pending_for_the_next_start(
    redis: Redis,
) -> None:
    log = EventLog(redis)
    for i in range(5):
        await log.append(STREAM, REGISTRY.event(msg(i)))
    first: list[str] = []
    release = asyncio.Event()
    app = app_for(redis)

    @app.agent(STREAM)
    async def slow(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            first.append(event.data.id)
            await release.wait()

    task = asyncio.create_task(app.run())
    await wait_until(lambda: first == ["m0"])
    stopping = asyncio.create_task(app.stop(timeout=5))
    release.set()
    await stopping
    await task
    assert first == ["m0"]  # the one in hand finished; nothing new was started
    assert (await redis.xpending(STREAM, "g"))["pending"] == 4  # read but not acked

    again: list[str] = []
    app2 = app_for(redis)  # same consumer name: drains its own pending entries first

    @app2.agent(STREAM)
    async def fast(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            again.append(event.data.id)

    await asyncio.wait_for(app2.run(burst=True), 10)
    assert again == ["m1", "m2", "m3", "m4"]
