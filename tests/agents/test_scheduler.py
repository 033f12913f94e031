"""The scheduler on a real Valkey with a manual clock: an hour of schedule runs in a second.

The clock only moves when a test moves it; ``ManualClock.sleeping`` shows who waits for what,
so a test can wait (with a deadline) until every scheduler is idle before it asserts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from redis.asyncio import Redis

from aspri.agents.scheduler import Scheduler
from aspri.agents.scheduler.fire import Conflict, Fenced, RunWriter, prepare, trigger_event_id
from aspri.agents.scheduler.loop import cancel
from aspri.api.cronjob.registry import JobRegistry
from aspri.api.cronjob.validation import Definition
from aspri.schemas import CronTrigger, Event
from aspri.schemas.cron import COMPLETED, JobSkipped, cron_next
from aspri.streams import EventLog, keys
from tests.helpers import wait_until

T0 = datetime(2026, 1, 5, 8, 0, 10, tzinfo=UTC).timestamp()
BERLIN = ZoneInfo("Europe/Berlin")


class ManualClock:
    """A clock that moves only when told; sleepers wake when it passes their time."""

    def __init__(self, start: float) -> None:
        self.t = start
        self._tick = asyncio.Event()
        self.sleeping: dict[object, float] = {}
        self._wakes: dict[object, tuple[float, asyncio.Event]] = {}

    def now(self) -> float:
        return self.t

    def set(self, t: float) -> None:
        assert t >= self.t, "time only moves forward"
        self.t = t
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def sleep_until(self, t: float, wake: asyncio.Event) -> None:
        me = object()
        try:
            while self.t < t and not wake.is_set():
                self.sleeping[me] = t
                self._wakes[me] = (t, wake)
                waiters = [
                    asyncio.ensure_future(wake.wait()),
                    asyncio.ensure_future(self._tick.wait()),
                ]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
        finally:
            self.sleeping.pop(me, None)
            self._wakes.pop(me, None)

    def idle(self, sleepers: int) -> bool:
        """Exactly ``sleepers`` tasks sleep, none of them due or already woken."""
        return len(self.sleeping) == sleepers and all(
            t > self.t and not wake.is_set() for t, wake in self._wakes.values()
        )


class Node:
    """One scheduler "process": its own connection and task."""

    def __init__(self, redis_url: str, clock: ManualClock, grace_s: float, name: str) -> None:
        self.redis = Redis.from_url(redis_url)
        self.scheduler = Scheduler(
            self.redis, owner=name, clock=clock, grace_s=grace_s, lease_ttl_s=0.3,
            snapshot_every=None,
        )  # fmt: skip
        self.task = asyncio.create_task(self.scheduler.run())

    async def stop(self) -> None:
        self.scheduler.request_stop()
        await self.task
        await self.redis.aclose()

    async def crash(self) -> None:
        """Die without handing the lease over: a successor waits for the lease to expire."""
        await cancel(self.task)
        await self.redis.aclose()


@contextlib.asynccontextmanager
async def registry(redis_url: str, clock: ManualClock) -> AsyncIterator[JobRegistry]:
    """The gateway's command side, writing with the manual clock's time."""
    client = Redis.from_url(redis_url)
    jobs = JobRegistry(client, now=clock.now, snapshot_every=None)
    await jobs.start()
    try:
        yield jobs
    finally:
        await jobs.stop()
        await client.aclose()


def cron(name: str, schedule: str, tz: str = "UTC") -> Definition:
    payload = {"chatId": "628123@c.us", "message": name}
    return Definition(name, schedule, None, tz, payload, "running")


async def triggers(redis: Redis) -> list[Event[Any]]:
    return await EventLog(redis).read(keys.CRON_EVENTS)


async def fired_times(redis: Redis, job_id: str | None = None) -> list[int]:
    return [
        e.data.scheduled_time
        for e in await triggers(redis)
        if job_id is None or e.data.job_id == job_id
    ]


async def count_is(redis: Redis, n: int) -> bool:
    return await redis.xlen(keys.CRON_EVENTS) == n


def minute(k: int) -> int:
    """Unix ms of the k-th whole minute after T0."""
    return (int(T0) // 60 + k) * 60_000


async def test_every_minute_for_an_hour_with_restarts_fires_exactly_60(
    redis_url: str, redis: Redis
) -> None:
    """Schedulers are stopped or killed at random points, also while a run is being written."""
    rng = random.Random(7)
    clock = ManualClock(T0)
    async with registry(redis_url, clock) as jobs:
        job, _ = await jobs.create("every-minute", cron("tick", "* * * * *"))
    node = Node(redis_url, clock, 60, "s0")
    restarts = 0
    for k in range(1, 61):
        clock.set(minute(k) / 1000 + rng.choice([0, 0, 0.2, 1.5]))
        if rng.random() < 0.3:  # restart somewhere between the clock moving and the write
            for _ in range(rng.randint(0, 40)):
                await asyncio.sleep(0)
            await (node.crash() if rng.random() < 0.5 else node.stop())
            node = Node(redis_url, clock, 60, f"s{k}")
            restarts += 1
        await wait_until(lambda k=k: count_is(redis, k), timeout=10)
    await wait_until(lambda: clock.idle(1), timeout=5)
    await node.stop()
    assert restarts >= 10
    assert await fired_times(redis, job.job_id) == [minute(k) for k in range(1, 61)]
    skips = [e for e in await EventLog(redis).read(keys.CRON_JOBS) if e.type == "cronjob:skipped"]
    assert skips == []


async def test_two_schedulers_never_fire_twice_and_fail_over(redis_url: str, redis: Redis) -> None:
    clock = ManualClock(T0)
    async with registry(redis_url, clock) as jobs:
        for n in range(5):
            await jobs.create(f"job{n}", cron(f"j{n}", "*/2 * * * *"))
    a, b = Node(redis_url, clock, 60, "a"), Node(redis_url, clock, 60, "b")
    await wait_until(lambda: a.scheduler.lease.held or b.scheduler.lease.held)
    for k in range(2, 41, 2):
        clock.set(minute(k) / 1000)
        if k == 20:  # the leader dies just as a run comes due; the other takes over
            leader = a if a.scheduler.lease.held else b
            await leader.crash()
            a, b = (b, leader) if leader is a else (a, leader)
        await wait_until(lambda k=k: count_is(redis, 5 * k // 2), timeout=10)
    await wait_until(lambda: clock.idle(1), timeout=5)
    times = await fired_times(redis)
    assert len(times) == len(
        {(e.data.job_id, e.data.scheduled_time) for e in await triggers(redis)}
    )
    assert sorted(set(times)) == [minute(k) for k in range(2, 41, 2)]
    assert a.scheduler.fired + b.scheduler.fired == len(times) == 100
    await a.stop()


async def test_a_run_is_written_only_by_the_lease_holder_and_only_once(
    redis_url: str, redis: Redis
) -> None:
    """The write script itself refuses: a stale lease (fenced) or a stale fold (conflict)."""
    writer = RunWriter(redis, chunk=2)
    async with registry(redis_url, ManualClock(T0)) as jobs:
        job, _ = await jobs.create("j", cron("j", "* * * * *"))
    log = EventLog(redis)
    folded = await log.last_id(keys.CRON_JOBS)
    run = prepare(job, minute(1))
    await redis.set(keys.CRON_LEASE, "other|token")
    with pytest.raises(Fenced):
        await writer.write("mine|token", folded, [run])
    await redis.set(keys.CRON_LEASE, "mine|token")
    with pytest.raises(Conflict):
        await writer.write("mine|token", "0-0", [run])
    assert await redis.xlen(keys.CRON_EVENTS) == 0

    runs = [prepare(job, minute(k)) for k in range(1, 6)]  # three chunks, chained
    last = await writer.write("mine|token", folded, runs)
    assert last == await log.last_id(keys.CRON_JOBS)
    with pytest.raises(Conflict):  # decided on the old fold: these runs are recorded already
        await writer.write("mine|token", folded, [run])
    assert await fired_times(redis) == [minute(k) for k in range(1, 6)]
    records = [e.data for e in await log.read(keys.CRON_JOBS) if e.type == "cronjob:fired"]
    assert [[(r.job_id, r.scheduled_time) for r in f.runs] for f in records] == [
        [(job.job_id, minute(1)), (job.job_id, minute(2))],
        [(job.job_id, minute(3)), (job.job_id, minute(4))],
        [(job.job_id, minute(5))],
    ]


async def test_a_registry_change_racing_a_fire_is_decided_again(
    redis_url: str, redis: Redis
) -> None:
    """The gateway writes between the scheduler's decision and its write: the write is refused
    (optimistic concurrency), the scheduler folds the change and fires what is still due."""
    clock = ManualClock(T0)
    async with registry(redis_url, clock) as jobs:
        keep, _ = await jobs.create("keep", cron("keep", "* * * * *"))
        renamed, _ = await jobs.create("renamed", cron("old name", "* * * * *"))
        gone, _ = await jobs.create("gone", cron("gone", "* * * * *"))
        node = Node(redis_url, clock, 60, "s")
        writer = node.scheduler.writer
        real_write = writer.write
        raced = []

        async def racing_write(*args: Any, **kwargs: Any) -> str:
            if not raced:
                raced.append(True)
                rename = partial(Definition, "new name", "* * * * *", None, "UTC")
                await jobs.update(renamed.job_id, lambda j: rename(j.payload, j.status))
                await jobs.delete(gone.job_id)
            return await real_write(*args, **kwargs)

        writer.write = racing_write  # type: ignore[method-assign]
        await wait_until(lambda: node.scheduler.lease.held and clock.idle(1))
        clock.set(minute(1) / 1000)
        await wait_until(lambda: count_is(redis, 2))
        await wait_until(lambda: clock.idle(1))
        await node.stop()
    assert node.scheduler.conflicts == 1
    fired = {(e.data.job_id, e.data.job_name) for e in await triggers(redis)}
    assert fired == {(keep.job_id, "keep"), (renamed.job_id, "new name")}


async def test_missed_runs_fire_the_latest_within_grace_and_skip_the_rest(
    redis_url: str, redis: Redis
) -> None:
    clock = ManualClock(T0)
    async with registry(redis_url, clock) as jobs:
        job, _ = await jobs.create("m", cron("m", "* * * * *"))
    node = Node(redis_url, clock, 60, "s")
    clock.set(minute(1) / 1000)
    await wait_until(lambda: count_is(redis, 1))
    await node.stop()

    clock.set(minute(5) / 1000 + 30)  # down for 00:02..00:05; 00:05 is 30 s late
    node = Node(redis_url, clock, 60, "s")
    await wait_until(lambda: count_is(redis, 2))
    await wait_until(lambda: clock.idle(1))
    await node.stop()
    assert await fired_times(redis) == [minute(1), minute(5)]

    clock.set(minute(12) / 1000 + 30)  # with 20 s grace even 00:12 is too late: skip all
    node = Node(redis_url, clock, 20, "s")
    await wait_until(lambda: node.scheduler.lease.held and clock.idle(1))
    assert list(clock.sleeping.values()) == [minute(13) / 1000]
    clock.set(minute(13) / 1000)
    await wait_until(lambda: count_is(redis, 3))
    await node.stop()
    assert await fired_times(redis) == [minute(1), minute(5), minute(13)]
    skips = [
        e.data for e in await EventLog(redis).read(keys.CRON_JOBS) if isinstance(e.data, JobSkipped)
    ]
    assert [(s.first_scheduled_time, s.last_scheduled_time, s.count) for s in skips] == [
        (minute(2), minute(4), 3),
        (minute(6), minute(12), 7),
    ]
    assert all(s.job_id == job.job_id for s in skips)


async def test_one_shot_fires_once_and_completes(redis_url: str, redis: Redis) -> None:
    clock = ManualClock(T0)
    run_at = minute(3)
    async with registry(redis_url, clock) as jobs:
        spec = Definition(
            "once", None, run_at, "UTC", {"chatId": "1@c.us", "prompt": "hi"}, "running"
        )
        job, _ = await jobs.create("once", spec)
        node = Node(redis_url, clock, 60, "s")
        # it sleeps until the run is due: no polling
        await wait_until(lambda: clock.idle(1) and list(clock.sleeping.values()) == [run_at / 1000])
        clock.set(run_at / 1000)
        await wait_until(lambda: count_is(redis, 1))
        # nothing left to run: it sleeps until the registry changes
        await wait_until(lambda: clock.idle(1) and list(clock.sleeping.values()) == [math.inf])
        assert (await jobs.get(job.job_id)).status == COMPLETED
        clock.set(minute(60) / 1000)
        await node.stop()
    assert await fired_times(redis) == [run_at]


async def test_changes_wake_the_scheduler_and_take_effect(redis_url: str, redis: Redis) -> None:
    clock = ManualClock(T0)
    node = Node(redis_url, clock, 60, "s")
    async with registry(redis_url, clock) as jobs:
        await wait_until(lambda: node.scheduler.lease.held and clock.idle(1))
        hourly, _ = await jobs.create("h", cron("h", "0 * * * *"))
        await wait_until(lambda: list(clock.sleeping.values()) == [minute(60) / 1000])
        daily, _ = await jobs.create("d", cron("d", "5 8 * * *"))
        await wait_until(lambda: list(clock.sleeping.values()) == [minute(5) / 1000])
        await jobs.stop_job(daily.job_id)
        await wait_until(lambda: list(clock.sleeping.values()) == [minute(60) / 1000])
        await jobs.delete(hourly.job_id)
        await wait_until(lambda: list(clock.sleeping.values()) == [math.inf])
        clock.set(minute(120) / 1000)
        await jobs.start_job(daily.job_id)  # runs missed while stopped are not made up
        await wait_until(lambda: clock.idle(1))
        assert await redis.xlen(keys.CRON_EVENTS) == 0
        assert next(iter(clock.sleeping.values())) == (
            datetime(2026, 1, 6, 8, 5, tzinfo=UTC).timestamp()
        )
    await node.stop()


async def run_until(node: Node, clock: ManualClock, end: float) -> None:
    """Jump from wake-up to wake-up until ``end``, letting the scheduler fire at each."""
    await wait_until(lambda: node.scheduler.lease.held)
    while True:
        await wait_until(lambda: clock.idle(1))
        nxt = min(clock.sleeping.values())
        if nxt > end:
            return
        clock.set(nxt)


def berlin(*args: int) -> int:
    return int(datetime(*args, tzinfo=BERLIN).timestamp() * 1000)


def local(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, BERLIN).isoformat()


@pytest.mark.parametrize(
    ("schedule", "start", "end", "expected"),
    [
        (  # spring: 02:30 does not exist on 29 March; the run happens right after the jump
            "30 2 * * *",
            (2026, 3, 27, 12),
            (2026, 3, 31, 0),
            ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00",
             "2026-03-30T02:30:00+02:00"],
        ),
        (  # autumn: 02:30 happens twice on 25 October; a daily job runs once
            "30 2 * * *",
            (2026, 10, 24, 12),
            (2026, 10, 27, 0),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
        (  # an hourly job runs in every real hour, also in both copies of 02:00
            "0 * * * *",
            (2026, 10, 25, 0, 30),
            (2026, 10, 25, 4, 30),
            ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
             "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00",
             "2026-10-25T04:00:00+01:00"],
        ),
        (  # 09:00 stays 09:00 local, 08:00 then 07:00 UTC
            "0 9 * * *",
            (2026, 3, 28, 0),
            (2026, 3, 30, 0),
            ["2026-03-28T09:00:00+01:00", "2026-03-29T09:00:00+02:00"],
        ),
    ],
    ids=["spring-gap", "autumn-repeat-daily", "autumn-repeat-hourly", "9am-local"],
)  # fmt: skip
async def test_dst_in_berlin_fires_at_the_right_wall_clock_times(
    redis_url: str,
    redis: Redis,
    schedule: str,
    start: tuple[int, ...],
    end: tuple[int, ...],
    expected: list[str],
) -> None:
    clock = ManualClock(berlin(*start) / 1000)
    async with registry(redis_url, clock) as jobs:
        await jobs.create("dst", cron("dst", schedule, "Europe/Berlin"))
    node = Node(redis_url, clock, 60, "s")
    await run_until(node, clock, berlin(*end) / 1000)
    await node.stop()
    assert [local(t) for t in await fired_times(redis)] == expected


def test_next_run_across_dst_directly() -> None:
    after = berlin(2026, 3, 29, 1, 59)
    assert (
        local(cron_next("30 2 * * *", "Europe/Berlin", after) or 0) == "2026-03-29T03:00:00+02:00"
    )
    first = berlin(2026, 10, 25, 2, 30)  # fold 0: the summer-time copy
    assert cron_next("30 2 * * *", "Europe/Berlin", first) == berlin(2026, 10, 26, 2, 30)
    every = "*/30 * * * * *"  # 6 fields: seconds first
    assert cron_next(every, "UTC", minute(1)) == minute(1) + 30_000


async def test_trigger_decodes_with_the_engines_schema(redis_url: str, redis: Redis) -> None:
    clock = ManualClock(T0)
    async with registry(redis_url, clock) as jobs:
        job, _ = await jobs.create("t", cron("tea time", "0 9 * * *"))
    node = Node(redis_url, clock, 60, "s")
    due = datetime(2026, 1, 5, 9, tzinfo=UTC).timestamp()
    await wait_until(lambda: list(clock.sleeping.values()) == [due])
    clock.set(due + 0.25)
    await wait_until(lambda: count_is(redis, 1))
    await node.stop()
    ((entry_id, fields),) = await redis.xrange(keys.CRON_EVENTS)
    raw = {k.decode(): v.decode() for k, v in fields.items()}
    assert raw["type"] == "cronjob:trigger" and raw["source"] == "cronjob" and raw["v"] == "1"
    trigger = msgspec.json.decode(raw["data"], type=CronTrigger)
    assert trigger == CronTrigger(
        job_id=job.job_id,
        job_name="tea time",
        scheduled_time=int(due * 1000),
        payload={"chatId": "628123@c.us", "message": "tea time"},
    )
    assert raw["eventId"] == trigger_event_id(job.job_id, int(due * 1000))
    written_ms = int(entry_id.split(b"-")[0])  # the server stamps the time it wrote the entry
    assert written_ms - 5 <= int(raw["timestamp"]) <= written_ms
    (event,) = await triggers(redis)
    assert isinstance(event.data, CronTrigger) and event.event_id == raw["eventId"]
    fired = [e for e in await EventLog(redis).read(keys.CRON_JOBS) if e.type == "cronjob:fired"]
    assert [[r.trigger_event_id for r in f.data.runs] for f in fired] == [[raw["eventId"]]]
