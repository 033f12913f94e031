"""Scenario 3: ``kill -9`` of the scheduler holding the lease, again and again, while 1,000
one-shot jobs come due within half a minute: every due run fires exactly once.

Two ``aspri scheduler`` processes run (one holds the lease, one waits); every ~2 s the holder
gets SIGKILL and a new standby is started. The checker here is the trigger stream itself:
``cronjob:events`` must hold exactly one trigger per (job, scheduled time), for every job.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from aspri.schemas import CronTrigger, Event
from aspri.schemas.envelope import text
from aspri.streams import ids, keys
from aspri.streams.log import EventLog
from tests.chaos.checker import figures
from tests.chaos.cluster import LONG, Cluster, Service, cluster, now_ms
from tests.helpers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(1800 if LONG else 420)]

LEASE_S = 2


async def holder(c: Cluster, schedulers: list[Service]) -> Service | None:
    token = await c.redis.get(keys.CRON_LEASE)
    owner = text(token).split("|", 1)[0] if token else None
    return next((s for s in schedulers if s.alive and s.name == owner), None)


async def kill_holder_every(
    c: Cluster, schedulers: list[Service], kills: list[int], stop: asyncio.Event
) -> None:
    names = iter(range(2, 10_000))
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0 + random.random())
            return
        victim = await holder(c, schedulers)
        if victim is None:
            continue  # the standby has not taken over yet
        await victim.kill()
        kills.append(now_ms())
        name = f"sched-{next(names)}"
        schedulers.append(await c.spawn("scheduler", name, CONSUMER_NAME=name))


async def triggers(c: Cluster) -> list[Event[CronTrigger]]:
    return [e for e in await EventLog(c.redis).read(keys.CRON_EVENTS) if e.entry_id]


async def test_scheduler_killed_while_1000_jobs_come_due(tmp_path: Path) -> None:
    jobs_n, window_s = (10_000, 60) if LONG else (1_000, 30)
    env = {
        "CRON_LEASE_SECONDS": str(LEASE_S),
        "CRON_GRACE_SECONDS": "600",
        "CRON_MAX_JOBS_PER_CHAT": str(jobs_n),
    }
    async with cluster(tmp_path, **env) as c:
        await c.gateways(cron=True)
        schedulers = [
            await c.spawn("scheduler", name, CONSUMER_NAME=name) for name in ("sched-0", "sched-1")
        ]
        await wait_until(lambda: holder(c, schedulers), 180, interval=0.2)
        start = datetime.now(UTC) + timedelta(seconds=20 if not LONG else 120)
        room = asyncio.Semaphore(16)
        job_ids: list[str] = []

        async def create(i: int) -> None:
            due = start + timedelta(seconds=window_s * i / jobs_n)
            async with room:
                run_at = max(due, datetime.now(UTC) + timedelta(seconds=15))  # creating was slow
                body = {
                    "jobId": f"chaos-{i}",  # a retried create is recognised, not doubled
                    "name": f"job-{i}",
                    "runAt": run_at.isoformat(),
                    "payload": {"chatId": f"6281{i % 50:08d}@c.us", "message": f"tick {i}"},
                }
                for attempt in range(3):
                    try:
                        r = await c.http.post(f"{c.cron_url}/api/jobs", json=body)
                        break
                    except httpx.TransportError:  # a kept-alive connection closed under us
                        if attempt == 2:
                            raise
            assert r.status_code in (200, 201), r.text
            job_ids.append(r.json()["data"]["jobId"])

        kills: list[int] = []
        stop = asyncio.Event()
        killer = asyncio.create_task(kill_holder_every(c, schedulers, kills, stop))

        async def all_fired() -> bool:
            return len({t.data.job_id for t in await triggers(c)}) >= jobs_n

        try:
            await asyncio.gather(*(create(i) for i in range(jobs_n)))
            await wait_until(all_fired, window_s + 300, interval=0.5)
        finally:
            stop.set()
            await killer
        # the survivors keep running a little: a late duplicate would show up now
        await wait_until(lambda: holder(c, schedulers), 60, interval=0.2)
        fired = await triggers(c)
    runs = Counter((t.data.job_id, t.data.scheduled_time) for t in fired)
    per_job = Counter(t.data.job_id for t in fired)
    figures(
        "scheduler kills",
        jobs=jobs_n,
        kills=len(kills),
        fired=len(fired),
        lost=len(set(job_ids) - per_job.keys()),
        duplicated=sum(1 for n in runs.values() if n > 1),
        fire_delay=[float(ids.parse(t.entry_id or "0")[0] - t.data.scheduled_time) for t in fired],
    )
    assert set(per_job) == set(job_ids), "a due run never fired, or an unknown job fired"
    assert all(n == 1 for n in per_job.values()), "a run fired twice"
    assert len(kills) >= 3, "the scheduler was not killed during the window"
