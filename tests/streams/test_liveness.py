"""The runtime stays alive and loses nothing through failures: of Redis, of a handler, of a
helper task. Real Valkey throughout; an outage is a real server stopped and started again."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from aspri.schemas import REGISTRY, Event
from aspri.streams import EventLog, StreamApp, Table, keys
from tests.helpers import wait_until
from tests.streams.conftest import Outage
from tests.streams.test_agent import STREAM, app_for, msg


async def append(redis: Redis, n: int, chat: str = "c1") -> str:
    return (await EventLog(redis).append(STREAM, REGISTRY.event(msg(n, chat)))).id


async def pending(redis: Redis) -> int:
    return int((await redis.xpending(STREAM, "g"))["pending"])


async def stop(app: StreamApp, task: asyncio.Task[None]) -> None:
    await app.stop(timeout=5)
    await asyncio.wait_for(task, 10)


def recording(app: StreamApp) -> list[str]:
    """The ids of the events handled so far by an agent of ``app`` that only records them."""
    handled: list[str] = []

    @app.agent(STREAM)
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            handled.append(event.data.id)

    return handled


async def test_a_refused_xack_loses_no_ack(own_redis: Redis) -> None:
    """XACK fails (the server refuses it): the ids are kept and acked once it works again,
    instead of being dropped and the entries handled a second time."""
    for i in range(20):
        await append(own_redis, i, chat=f"c{i}")
    await own_redis.execute_command("ACL", "SETUSER", "default", "-xack")
    app = app_for(own_redis, claim_idle_ms=60_000)
    handled = recording(app)

    task = asyncio.create_task(app.run())
    await wait_until(lambda: len(handled) == 20)
    assert await pending(own_redis) == 20  # every XACK so far was refused
    await own_redis.execute_command("ACL", "SETUSER", "default", "+xack")
    await wait_until(lambda: _none_pending(own_redis), timeout=15)
    await stop(app, task)
    assert sorted(handled) == sorted(f"m{i}" for i in range(20))  # each once


async def _none_pending(redis: Redis) -> bool:
    return await pending(redis) == 0


async def test_a_hung_handler_times_out_and_its_key_moves_on(redis: Redis) -> None:
    await append(redis, 1)
    await append(redis, 2)
    app = app_for(redis, max_deliveries=2)
    attempts: dict[str, list[int]] = defaultdict(list)

    @app.agent(STREAM, key="chatId", timeout=0.3)
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            attempts[event.data.id].append(event.deliveries)
            if event.data.id == "m1":
                await asyncio.Event().wait()  # hangs on every delivery

    await asyncio.wait_for(app.run(burst=True), 20)
    assert attempts == {"m1": [1, 2], "m2": [1]}
    dead = await redis.xrange(keys.dlq(STREAM))
    assert [v[b"error"] for _, v in dead] == [b"HandlerTimeout: handler ran longer than 0.3 s"]
    assert await pending(redis) == 0
    assert await redis.keys("lease:g:*:c1") == []
    assert await redis.keys("keyq:*") == []


async def test_a_handler_within_its_timeout_is_not_cut(redis: Redis) -> None:
    """The deadline covers one handler body, not the wait for the next event."""
    await append(redis, 1)
    app = app_for(redis)
    done: list[str] = []

    @app.agent(STREAM, timeout=1.0)
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            await asyncio.sleep(0.2)
            done.append(event.data.id)

    task = asyncio.create_task(app.run())
    await wait_until(lambda: done == ["m1"])
    await asyncio.sleep(1.2)  # the scenario itself: idle for longer than the timeout
    await append(redis, 2)
    await wait_until(lambda: done == ["m1", "m2"])
    await stop(app, task)
    assert await redis.xlen(keys.dlq(STREAM)) == 0


async def test_each_handler_gets_its_whole_timeout(redis: Redis) -> None:
    """One watch timer serves a worker's handlers: set for the first one's deadline, it must
    give a hung handler that started later its own full time, then cut it."""
    await append(redis, 1)
    await append(redis, 2)
    app = app_for(redis, max_deliveries=1)
    loop = asyncio.get_running_loop()
    ran: dict[str, float] = {}

    @app.agent(STREAM, timeout=0.6)
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            began = loop.time()
            try:
                if event.data.id == "m1":
                    await asyncio.sleep(0.4)  # within its time; m2 starts after it
                else:
                    await asyncio.Event().wait()
            finally:
                ran[event.data.id] = loop.time() - began

    await asyncio.wait_for(app.run(burst=True), 20)
    dead = await redis.xrange(keys.dlq(STREAM))
    assert [v[b"originalId"] for _, v in dead] == [(await redis.xrange(STREAM))[1][0]]
    assert ran["m2"] >= 0.55, ran  # not cut at m1's deadline, 0.2 s into m2


@dataclass
class Holding:
    app: StreamApp
    task: asyncio.Task[None]
    go: asyncio.Event  # set: the handler returns
    handled: list[str]


async def holding_m1(redis: Redis) -> Holding:
    """Consumer w1 inside its handler of m1 until ``go`` is set, beating its lease every 0.1 s
    and claiming nothing itself: the side a take-over by another consumer meets."""
    app = app_for(redis, consumer="w1", claim_idle_ms=10_000)
    go = asyncio.Event()
    handled: list[str] = []

    @app.agent(STREAM, key="chatId", lease_ms=300)  # a heartbeat every 0.1 s
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            handled.append(event.data.id)
            await go.wait()

    task = asyncio.create_task(app.run())
    await wait_until(lambda: handled == ["m1"])
    return Holding(app, task, go, handled)


async def test_a_stale_ack_is_fenced(redis: Redis) -> None:
    """A consumer whose entry and lease were taken over cannot ack: the new owner keeps both,
    and the old one's heartbeat does not steal the entry back."""
    entry = await append(redis, 1)
    w1 = await holding_m1(redis)
    lease = keys.lease(STREAM, "g", "c1")
    assert (await redis.get(lease) or b"").startswith(b"w1|")
    # What a consumer w2 does when it takes over: claim the entry, take the lease.
    await redis.xclaim(STREAM, "g", "w2", 0, [entry])
    await redis.set(lease, "w2|999", px=60_000)
    runner = w1.app.runners[0]
    beats = runner.beats
    await wait_until(lambda: runner.beats >= beats + 2)  # w1 still in its handler
    w1.go.set()
    await wait_until(lambda: runner.processed == 1 and not runner._held)
    owners = await redis.xpending_range(STREAM, "g", "-", "+", 10)
    assert [(o["message_id"].decode(), o["consumer"]) for o in owners] == [(entry, b"w2")]
    assert await redis.get(lease) == b"w2|999"
    assert await redis.lrange(keys.key_queue(STREAM, "g", "c1"), 0, -1) == [entry.encode()]
    await stop(w1.app, w1.task)


async def test_a_waiting_entry_taken_over_is_not_started(redis: Redis) -> None:
    """The heartbeat finds an entry waiting here that another consumer took over: it is
    dropped here, so a slow consumer does not do it a second time."""
    await append(redis, 1)
    second = await append(redis, 2)
    w1 = await holding_m1(redis)
    runner = w1.app.runners[0]
    assert second in runner._held  # m2 waits behind m1 here
    await redis.xclaim(STREAM, "g", "w2", 0, [second])
    await wait_until(lambda: second not in runner._held)
    w1.go.set()
    await wait_until(lambda: _none_pending_but(redis, second))
    await stop(w1.app, w1.task)
    assert w1.handled == ["m1"]
    owners = await redis.xpending_range(STREAM, "g", "-", "+", 10)
    assert [o["consumer"] for o in owners] == [b"w2"]


async def _none_pending_but(redis: Redis, entry: str) -> bool:
    owners = await redis.xpending_range(STREAM, "g", "-", "+", 10)
    return [o["message_id"].decode() for o in owners] == [entry]


async def test_a_stale_head_is_dropped(redis: Redis) -> None:
    """A key queue whose head is no longer pending (acked or trimmed away) does not block it."""
    await redis.rpush(keys.key_queue(STREAM, "g", "c1"), "1-1")
    await append(redis, 1)
    app = app_for(redis)
    handled: list[str] = []

    @app.agent(STREAM, key="chatId")
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            handled.append(event.data.id)

    await asyncio.wait_for(app.run(burst=True), 15)
    assert handled == ["m1"]
    assert await redis.keys("keyq:*") == []


async def test_the_heartbeat_keeps_a_long_handler_from_being_taken_over(redis: Redis) -> None:
    """A handler running many times ``claim_idle_ms`` keeps its entry and its key's lease."""
    await append(redis, 1)
    handled: list[tuple[str, str]] = []
    leases: list[bytes] = []

    def make(app: StreamApp) -> None:
        @app.agent(STREAM, key="chatId")
        async def handle(events: AsyncIterator[Event[Any]]) -> None:
            async for event in events:
                handled.append((app.consumer, event.data.id))
                for _ in range(5):  # 3 s: five times the idle time and the lease
                    await asyncio.sleep(0.6)
                    leases.append(await redis.get(keys.lease(STREAM, "g", "c1")) or b"")

    apps = [app_for(redis, consumer=f"w{i}", claim_idle_ms=600) for i in range(2)]
    for app in apps:
        make(app)
    tasks = [asyncio.create_task(app.run()) for app in apps]
    await wait_until(lambda: len(leases) == 5, timeout=15)
    await wait_until(lambda: _none_pending(redis))
    for app, task in zip(apps, tasks, strict=True):
        await stop(app, task)
    assert len(handled) == 1
    owner = handled[0][0].encode()
    assert all(lease.startswith(owner + b"|") for lease in leases), leases


async def test_redis_down_while_an_entry_finishes(outage: Outage, own_redis: Redis) -> None:
    """The server goes away between the end of a handler and its ack, and comes back: the
    entry is acked once, its key's next entry runs, and every helper carries on."""
    await append(own_redis, 1)
    await append(own_redis, 2)
    app = app_for(own_redis, claim_idle_ms=10_000)
    go = asyncio.Event()
    bodies: list[str] = []
    ends: list[str] = []

    @app.agent(STREAM, key="chatId")
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for event in events:
            bodies.append(event.data.id)
            if event.data.id == "m1":
                await go.wait()
            ends.append(event.data.id)

    task = asyncio.create_task(app.run())
    await wait_until(lambda: bodies == ["m1"])
    outage.stop()
    go.set()
    # The key's next entry runs under the same lease; the acks of both wait for the server.
    await wait_until(lambda: ends == ["m1", "m2"])
    outage.start()
    await wait_until(lambda: _none_pending(own_redis), timeout=20)
    await append(own_redis, 3)  # new entries are read again after the outage
    await wait_until(lambda: ends == ["m1", "m2", "m3"], timeout=10)
    await stop(app, task)
    assert bodies == ["m1", "m2", "m3"]
    assert await own_redis.keys("keyq:*") == []


async def test_the_wake_up_listener_resubscribes(own_redis: Redis) -> None:
    """Killing the pub/sub connections does not leave keyed hand-overs to 1 s polling."""
    loop = asyncio.get_running_loop()
    release = asyncio.Event()
    started: dict[str, float] = {}

    def make(app: StreamApp) -> None:
        @app.agent(STREAM, key="chatId")
        async def handle(events: AsyncIterator[Event[Any]]) -> None:
            async for event in events:
                started[event.data.id] = loop.time()
                if event.data.id == "m1":
                    await release.wait()

    other = app_for(own_redis, consumer="other", claim_idle_ms=10_000)
    make(other)
    other_task = asyncio.create_task(other.run())
    await append(own_redis, 1)
    await wait_until(lambda: "m1" in started)
    other.runners[0].stop()  # reads nothing more; finishes m1 once released
    mine = app_for(own_redis, consumer="mine", claim_idle_ms=10_000)
    make(mine)
    mine_task = asyncio.create_task(mine.run())
    await append(own_redis, 2)
    await wait_until(lambda: mine.runners and mine.runners[0]._held)  # m2 waits behind m1
    channel = keys.wake_channel(STREAM, "g")
    await wait_until(lambda: _subscribers(own_redis, channel, 2))
    await own_redis.client_kill_filter(_type="pubsub")
    await wait_until(lambda: _subscribers(own_redis, channel, 2), timeout=10)
    released = loop.time()
    release.set()
    await wait_until(lambda: "m2" in started)
    assert started["m2"] - released < 0.5
    await stop(mine, mine_task)
    await stop(other, other_task)


async def _subscribers(redis: Redis, channel: str, n: int) -> bool:
    counts = await redis.pubsub_numsub(channel)
    return bool(counts and counts[0][1] == n)


async def test_a_deleted_group_is_recreated(redis: Redis) -> None:
    await append(redis, 1)
    app = app_for(redis)
    handled = recording(app)

    task = asyncio.create_task(app.run())
    await wait_until(lambda: handled == ["m1"])
    await wait_until(lambda: _none_pending(redis))
    await redis.xgroup_destroy(STREAM, "g")
    await append(redis, 2)
    await wait_until(lambda: "m2" in handled, timeout=15)
    assert not task.done()
    await stop(app, task)
    assert handled == ["m1", "m1", "m2"]  # recreated at 0: what is left is read again


async def test_a_table_keeps_tailing_across_an_outage(
    outage: Outage, own_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    log = EventLog(own_redis)

    def count(state: dict[str, int], event: Event[Any]) -> None:
        state[event.data.chat_id] = state.get(event.data.chat_id, 0) + 1

    table: Table[dict[str, int]] = Table(log, STREAM, initial=dict, apply=count)
    await table.start()
    await append(own_redis, 1)
    await wait_until(lambda: table.state == {"c1": 1})
    outage.stop()
    await wait_until(lambda: "task table:whatsapp:messages failed" in caplog.text)
    outage.start()
    await append(own_redis, 2)
    await wait_until(lambda: table.state == {"c1": 2}, timeout=15)
    await table.stop()


async def test_run_until_signal_raises_a_crash(redis: Redis) -> None:
    await redis.set(STREAM, "not a stream")  # the group cannot be created: a real failure
    app = app_for(redis)

    @app.agent(STREAM)
    async def handle(events: AsyncIterator[Event[Any]]) -> None:
        async for _event in events:
            pass

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await asyncio.wait_for(app.run_until_signal(), 10)


async def test_run_until_signal_stops_on_sigterm(redis: Redis) -> None:
    app = app_for(redis)
    handled = recording(app)

    task = asyncio.create_task(app.run_until_signal())
    await append(redis, 1)
    await wait_until(lambda: handled == ["m1"])
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 15)  # returns normally
    assert app.runners[0]._stopping.is_set()
