"""The cron gateway over HTTP: CRUD, start/stop, idempotency, read-your-writes, restarts."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import httpx
from redis.asyncio import Redis

from aspri.schemas import REGISTRY
from aspri.schemas.cron import FiredRun, JobFired
from aspri.streams import EventLog, keys
from aspri.streams.health import Beat
from tests.api.cronjob.conftest import gateway

DAILY = {
    "name": "water reminder",
    "schedule": "0 9 * * *",
    "timezone": "Asia/Jakarta",
    "payload": {"chatId": "6281234567890@c.us", "message": "Drink water"},
}


def data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


async def test_create_get_update_delete(api: httpx.AsyncClient, redis: Redis) -> None:
    created = data(await api.post("/api/jobs", json=DAILY), 201)
    job_id = created["jobId"]
    assert created["status"] == "running"
    assert created["schedule"] == "0 9 * * *"
    assert created["nextRunAt"].endswith("T09:00:00+07:00")
    assert created["lastRunAt"] is None and created["runAt"] is None
    assert data(await api.get(f"/api/jobs/{job_id}")) == created

    patched = data(await api.patch(f"/api/jobs/{job_id}", json={"schedule": "30 7 * * 1-5"}))
    assert patched["schedule"] == "30 7 * * 1-5"
    assert patched["name"] == DAILY["name"] and patched["payload"] == DAILY["payload"]
    assert "T07:30:00+07:00" in patched["nextRunAt"]
    assert datetime.fromisoformat(patched["nextRunAt"]).weekday() < 5

    one_shot = data(await api.patch(f"/api/jobs/{job_id}", json={"runAt": "2035-01-01T08:00:00"}))
    assert one_shot["schedule"] is None
    assert one_shot["runAt"] == one_shot["nextRunAt"] == "2035-01-01T08:00:00+07:00"

    gone = data(await api.delete(f"/api/jobs/{job_id}"))
    assert gone["jobId"] == job_id
    assert (await api.get(f"/api/jobs/{job_id}")).status_code == 404
    assert data(await api.get("/api/jobs"))["total"] == 0
    types = [e.type for e in await EventLog(redis).read(keys.CRON_JOBS)]
    assert types == ["cronjob:created", "cronjob:updated", "cronjob:updated", "cronjob:deleted"]


async def test_stop_and_start(api: httpx.AsyncClient, redis: Redis) -> None:
    job_id = data(await api.post("/api/jobs", json=DAILY), 201)["jobId"]
    stopped = data(await api.post(f"/api/jobs/{job_id}/stop"))
    assert stopped["status"] == "stopped" and stopped["nextRunAt"] is None
    assert data(await api.post(f"/api/jobs/{job_id}/stop"))["status"] == "stopped"
    started = data(await api.post(f"/api/jobs/{job_id}/start"))
    assert started["status"] == "running" and started["nextRunAt"] is not None
    assert data(await api.post(f"/api/jobs/{job_id}/start"))["status"] == "running"
    types = [e.type for e in await EventLog(redis).read(keys.CRON_JOBS)]
    assert types == ["cronjob:created", "cronjob:stopped", "cronjob:started"]  # no-ops: no event


async def test_list_filters_by_status_and_paginates(api: httpx.AsyncClient) -> None:
    ids = []
    for n in range(7):
        job = data(await api.post("/api/jobs", json={**DAILY, "name": f"job {n}"}), 201)
        ids.append(job["jobId"])
    for job_id in ids[:3]:
        data(await api.post(f"/api/jobs/{job_id}/stop"))
    page = data(await api.get("/api/jobs", params={"limit": 3, "offset": 2}))
    assert (page["total"], page["offset"], page["limit"]) == (7, 2, 3)
    assert [j["jobId"] for j in page["jobs"]] == ids[2:5]
    stopped = data(await api.get("/api/jobs", params={"status": "stopped"}))
    assert stopped["total"] == 3 and {j["jobId"] for j in stopped["jobs"]} == set(ids[:3])
    running = data(await api.get("/api/jobs", params={"status": "running", "offset": 3}))
    assert running["total"] == 4 and [j["jobId"] for j in running["jobs"]] == ids[6:]


async def test_retried_create_returns_the_same_job(api: httpx.AsyncClient, redis: Redis) -> None:
    headers = {"Idempotency-Key": "tool-call-42"}
    first = await api.post("/api/jobs", json=DAILY, headers=headers)
    again = await api.post("/api/jobs", json=DAILY, headers=headers)
    assert data(first, 201) == data(again, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    other = data(await api.post("/api/jobs", json=DAILY, headers={"Idempotency-Key": "k2"}), 201)
    assert other["jobId"] != data(first, 201)["jobId"]

    by_id = {**DAILY, "jobId": "daily-water"}
    assert data(await api.post("/api/jobs", json=by_id), 201)["jobId"] == "daily-water"
    assert data(await api.post("/api/jobs", json=by_id), 201)["jobId"] == "daily-water"
    clash = await api.post("/api/jobs", json={**by_id, "schedule": "0 10 * * *"})
    assert clash.status_code == 409 and "jobId" in clash.json()["error"]["message"]
    assert await redis.xlen(keys.CRON_JOBS) == 3


async def test_concurrent_creates_all_land_once(api: httpx.AsyncClient, redis: Redis) -> None:
    """Optimistic concurrency: racing writers retry on conflict; none is lost or doubled."""
    bodies = [{**DAILY, "name": f"n{n}", "jobId": f"j{n % 10}"} for n in range(10)]
    replies = await asyncio.gather(*(api.post("/api/jobs", json=b) for b in bodies * 2))
    assert all(r.status_code == 201 for r in replies)
    assert await redis.xlen(keys.CRON_JOBS) == 10
    assert data(await api.get("/api/jobs"))["total"] == 10


async def test_retried_delete_with_a_key_answers_like_the_first(api: httpx.AsyncClient) -> None:
    job_id = data(await api.post("/api/jobs", json=DAILY), 201)["jobId"]
    headers = {"Idempotency-Key": "del-1"}
    first = data(await api.delete(f"/api/jobs/{job_id}", headers=headers))
    assert data(await api.delete(f"/api/jobs/{job_id}", headers=headers)) == first
    plain = await api.delete(f"/api/jobs/{job_id}")
    assert plain.status_code == 404 and "jobId" in plain.json()["error"]["message"]


async def test_reads_see_writes_of_other_processes(redis_url: str, redis: Redis) -> None:
    """A second gateway, and the scheduler's fired event, are visible to the very next read."""
    async with gateway(redis_url) as a, gateway(redis_url) as b:
        for n in range(5):
            job_id = data(await a.post("/api/jobs", json={**DAILY, "name": f"n{n}"}), 201)["jobId"]
            assert data(await b.get(f"/api/jobs/{job_id}"))["name"] == f"n{n}"
            data(await b.post(f"/api/jobs/{job_id}/stop"))
            assert data(await a.get(f"/api/jobs/{job_id}"))["status"] == "stopped"
        fired_at = int(time.time() * 1000)
        fired = REGISTRY.event(
            JobFired(runs=[FiredRun(job_id=job_id, scheduled_time=fired_at - 5)]),
            timestamp=fired_at,
        )
        await EventLog(redis).append(keys.CRON_JOBS, fired)
        assert data(await a.get(f"/api/jobs/{job_id}"))["lastRunAt"] is not None


async def test_gateway_restart_loses_no_job(redis_url: str, redis: Redis) -> None:
    """Snapshots every 3 events: the restart loads one and replays the tail after it."""
    async with gateway(redis_url, snapshot_every=3) as first:
        for n in range(8):
            data(await first.post("/api/jobs", json={**DAILY, "name": f"n{n}"}), 201)
        before = data(await first.get("/api/jobs"))
    assert await redis.exists(keys.snapshot(keys.CRON_JOBS))
    async with gateway(redis_url, snapshot_every=3) as second:
        assert data(await second.get("/api/jobs")) == before
        assert before["total"] == 8
    await redis.delete(keys.snapshot(keys.CRON_JOBS))
    async with gateway(redis_url) as third:
        assert data(await third.get("/api/jobs")) == before


async def test_one_shot_completes_and_needs_a_new_time(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    run_at = "2035-06-01T12:00:00+00:00"
    job = data(await api.post("/api/jobs", json={**DAILY, "schedule": None, "runAt": run_at}), 201)
    assert job["runAt"] == "2035-06-01T19:00:00+07:00"  # shown in the job's timezone
    scheduled = int(datetime.fromisoformat(run_at).timestamp() * 1000)
    fired = REGISTRY.event(JobFired(runs=[FiredRun(job_id=job["jobId"], scheduled_time=scheduled)]))
    await EventLog(redis).append(keys.CRON_JOBS, fired)
    done = data(await api.get(f"/api/jobs/{job['jobId']}"))
    assert done["status"] == "completed" and done["nextRunAt"] is None
    listed = data(await api.get("/api/jobs", params={"status": "completed"}))
    assert [j["jobId"] for j in listed["jobs"]] == [job["jobId"]]
    refused = await api.post(f"/api/jobs/{job['jobId']}/start")
    assert refused.status_code == 409 and "runAt" in refused.json()["error"]["message"]
    again = data(await api.patch(f"/api/jobs/{job['jobId']}", json={"runAt": "2035-07-01T00:00Z"}))
    assert again["status"] == "running" and again["nextRunAt"].startswith("2035-07-01T07:00")


async def test_health_openapi_and_ui(api: httpx.AsyncClient, redis: Redis) -> None:
    data(await api.post("/api/jobs", json=DAILY), 201)
    health = data(await api.get("/health"))  # no scheduler has written a health record
    assert health["status"] == "degraded" and health["details"]["down"] == ["scheduler"]
    assert health["details"]["jobs"] == 1 and health["details"]["schedulers"] == []
    async with Beat(redis, "scheduler", "sched-a", details=lambda: {"leader": True}):
        health = data(await api.get("/health"))
        assert health["status"] == "ok" and health["details"]["down"] == []
        [seen] = health["details"]["schedulers"]
        assert seen["name"] == "sched-a" and seen["up"] is True
    health = data(await api.get("/health"))  # a clean stop deletes the record at once
    assert health["status"] == "degraded" and health["details"]["schedulers"][0]["up"] is False
    spec = (await api.get("/schema/openapi.json")).json()
    assert {"/api/jobs", "/api/jobs/{jobId}", "/api/jobs/{jobId}/start"} <= set(spec["paths"])
    create = spec["paths"]["/api/jobs"]["post"]
    assert {"201", "400", "409"} <= set(create["responses"])
    ui = await api.get("/schema/swagger")
    assert ui.status_code == 200 and "/schema-assets/swagger-ui-bundle.js" in ui.text
