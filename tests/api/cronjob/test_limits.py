"""Limits of the cron gateway: how often, how large, how far ahead, how many per chat.

Each refusal is a 400 (409 for the per-chat quota) whose message names the field; nothing is
stored, and nothing answers 500 afterwards.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from aspri.api.cronjob.validation import Limits
from aspri.streams import keys
from tests.api.cronjob.conftest import gateway

GOOD = {"name": "n", "schedule": "*/5 * * * *", "payload": {"chatId": "1@c.us", "message": "m"}}


def body(**change: Any) -> dict[str, Any]:
    return {k: v for k, v in {**GOOD, **change}.items() if v is not None}


async def refused(api: httpx.AsyncClient, redis: Redis, request: dict[str, Any]) -> str:
    response = await api.post("/api/jobs", json=request)
    assert response.status_code == 400, response.text
    assert await redis.xlen(keys.CRON_JOBS) == 0
    message: str = response.json()["error"]["message"]
    return message


@pytest.mark.parametrize("schedule", ["*/1 * * * * *", "* * * * * *", "0,30 * * * * *"])
async def test_more_than_once_a_minute_is_refused_by_default(
    api: httpx.AsyncClient, redis: Redis, schedule: str
) -> None:
    message = await refused(api, redis, body(schedule=schedule))
    assert message.startswith("schedule:") and "CRON_ALLOW_SECONDS" in message


async def test_one_second_value_a_minute_is_fine(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/jobs", json=body(schedule="30 * * * * *"))
    assert response.status_code == 201, response.text


async def test_cron_allow_seconds_lets_them_through(redis_url: str, redis: Redis) -> None:
    async with gateway(redis_url, limits=Limits(allow_seconds=True)) as api:
        response = await api.post("/api/jobs", json=body(schedule="*/1 * * * * *"))
    assert response.status_code == 201, response.text


async def test_a_huge_schedule_is_refused_by_size_before_parsing(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    began = time.perf_counter()
    message = await refused(api, redis, body(schedule="1," * 250_000 + "2 * * * *"))
    assert message.startswith("schedule: is 500009 characters")
    assert time.perf_counter() - began < 1.0  # parsing it would take seconds
    assert (await api.get("/health")).status_code == 200


@pytest.mark.parametrize(
    "run_at",
    [
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59-12:00",
        "2999-01-01T00:00:00Z",
        "+275760-09-13T00:00:00Z",
    ],
)
async def test_run_at_out_of_range_is_a_400_naming_it(
    api: httpx.AsyncClient, redis: Redis, run_at: str
) -> None:
    message = await refused(api, redis, body(schedule=None, runAt=run_at, timezone="Etc/GMT+12"))
    assert message.startswith("runAt:")
    listed = await api.get("/api/jobs")
    assert listed.status_code == 200 and listed.json()["data"]["total"] == 0


async def test_run_at_out_of_range_in_a_patch(api: httpx.AsyncClient, redis: Redis) -> None:
    job = (await api.post("/api/jobs", json=GOOD)).json()["data"]
    for run_at in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"):
        response = await api.patch(f"/api/jobs/{job['jobId']}", json={"runAt": run_at})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["message"].startswith("runAt:")
    assert (await api.get(f"/api/jobs/{job['jobId']}")).json()["data"] == job


async def test_jobs_per_chat_are_capped(redis_url: str, redis: Redis) -> None:
    async with gateway(redis_url, limits=Limits(max_jobs_per_chat=2)) as api:
        first = await api.post("/api/jobs", json=GOOD)
        second = {**GOOD, "payload": {"phoneNumber": "+1", "message": "same chat by number"}}
        assert (await api.post("/api/jobs", json=second)).status_code == 201
        third = await api.post("/api/jobs", json=GOOD)
        assert third.status_code == 409, third.text
        assert third.json()["error"]["message"].startswith("payload: chat 1@c.us already has 2")
        other = {**GOOD, "payload": {"chatId": "2@c.us", "message": "another chat"}}
        moved = (await api.post("/api/jobs", json=other)).json()["data"]
        retarget = await api.patch(f"/api/jobs/{moved['jobId']}", json={"payload": GOOD["payload"]})
        assert retarget.status_code == 409, retarget.text
        await api.delete(f"/api/jobs/{first.json()['data']['jobId']}")
        assert (await api.post("/api/jobs", json=GOOD)).status_code == 201
        assert (await api.get("/api/jobs")).json()["data"]["total"] == 3
