"""Poison in the registry: definitions no scheduler can plan, written by any producer.

Each is skipped with one ``cronjob:rejected`` event and a counted metric; the scheduler keeps
firing every other job (also after a restart), and ``GET /api/jobs`` keeps answering.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from aspri.schemas import REGISTRY
from aspri.schemas.cron import JobCreated, JobRejected, JobUpdated
from aspri.streams import EventLog, keys
from aspri.telemetry.metrics import CRON_JOBS_REJECTED
from tests.agents.test_scheduler import T0, ManualClock, Node, count_is, fired_times, minute
from tests.api.cronjob.conftest import gateway
from tests.helpers import wait_until

PAYLOAD = {"chatId": "628123@c.us", "message": "m"}
POISON: dict[str, dict[str, Any]] = {
    "mars": {"schedule": "* * * * *", "timezone": "Mars/Olympus"},
    "prose": {"schedule": "this is not cron"},
    "year-10000": {"run_at": 253402300799000, "timezone": "Etc/GMT-14"},
    "huge": {"schedule": "1," * 5000 + "2 * * * *"},
}


def created(job_id: str, at_ms: int, **definition: Any) -> Any:
    data = JobCreated(job_id=job_id, name=job_id, payload=PAYLOAD, **definition)
    return REGISTRY.event(data, source="someone-else", timestamp=at_ms)


async def rejections(redis: Redis) -> list[JobRejected]:
    events = await EventLog(redis).read(keys.CRON_JOBS)
    return [e.data for e in events if isinstance(e.data, JobRejected)]


async def test_unplannable_jobs_are_rejected_once_and_the_rest_keeps_firing(
    redis_url: str, redis: Redis
) -> None:
    clock = ManualClock(T0)
    log = EventLog(redis)
    at = int(T0 * 1000)
    for job_id, definition in POISON.items():
        await log.append(keys.CRON_JOBS, created(job_id, at, **definition))
    await log.append(keys.CRON_JOBS, created("good", at, schedule="* * * * *"))
    counted = CRON_JOBS_REJECTED._value.get()

    node = Node(redis_url, clock, 60, "s0")
    await wait_until(lambda: node.scheduler.lease.held and clock.idle(1))
    found = await rejections(redis)
    assert sorted(r.job_id for r in found) == sorted(POISON)
    assert next(r for r in found if r.job_id == "mars").reason.startswith("timezone:")
    assert next(r for r in found if r.job_id == "prose").reason.startswith("schedule:")
    assert next(r for r in found if r.job_id == "year-10000").reason.startswith("runAt:")
    assert CRON_JOBS_REJECTED._value.get() == counted + len(POISON)
    clock.set(minute(1) / 1000)
    await wait_until(lambda: count_is(redis, 1))

    await node.stop()  # a restarted scheduler does not reject them again
    node = Node(redis_url, clock, 60, "s1")
    await wait_until(lambda: node.scheduler.lease.held and clock.idle(1))
    clock.set(minute(2) / 1000)
    await wait_until(lambda: count_is(redis, 2))
    await wait_until(lambda: clock.idle(1))
    await node.stop()
    assert len(await rejections(redis)) == len(POISON)
    assert await fired_times(redis) == [minute(1), minute(2)]

    async with gateway(redis_url, now=clock.now) as api:
        listed = await api.get("/api/jobs", params={"limit": 100})
        assert listed.status_code == 200, listed.text
        jobs = {j["jobId"]: j for j in listed.json()["data"]["jobs"]}
        assert jobs["good"]["problem"] is None and jobs["good"]["nextRunAt"]
        for job_id in POISON:
            assert jobs[job_id]["problem"] and jobs[job_id]["nextRunAt"] is None
            assert (await api.get(f"/api/jobs/{job_id}")).status_code == 200
        assert (await api.get("/health")).json()["data"]["details"]["unplannable"] == len(POISON)
        fixed = await api.patch("/api/jobs/prose", json={"schedule": "*/5 * * * *"})
        assert fixed.status_code == 200 and fixed.json()["data"]["problem"] is None
        still = await api.patch("/api/jobs/mars", json={"schedule": "*/5 * * * *"})
        assert still.status_code == 400 and "timezone" in still.json()["error"]["message"]


async def test_a_redefinition_is_judged_afresh(redis_url: str, redis: Redis) -> None:
    """A rejection is about one definition: a good update makes the job fire again."""
    clock = ManualClock(T0)
    log = EventLog(redis)
    at = int(T0 * 1000)
    await log.append(keys.CRON_JOBS, created("j", at, schedule="this is not cron"))
    node = Node(redis_url, clock, 60, "s0")
    await wait_until(lambda: node.scheduler.lease.held and clock.idle(1))
    assert [r.job_id for r in await rejections(redis)] == ["j"]
    update = JobUpdated(job_id="j", name="j", schedule="* * * * *", payload=PAYLOAD)
    await log.append(keys.CRON_JOBS, REGISTRY.event(update, source="x", timestamp=at + 1))
    await wait_until(lambda: clock.idle(1) and clock.sleeping != {})
    clock.set(minute(1) / 1000)
    await wait_until(lambda: count_is(redis, 1))
    await node.stop()
    assert len(await rejections(redis)) == 1
