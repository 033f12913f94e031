"""Bad input: a 4xx envelope whose message names the field, never a 500, never a stored job."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from aspri.streams import keys

GOOD = {"name": "n", "schedule": "*/5 * * * *", "payload": {"chatId": "1@c.us", "message": "m"}}

CREATE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("minute out of range", {"schedule": "61 * * * *"}, "minute must be 0-59"),
    ("hour out of range", {"schedule": "0 24 * * *"}, "hour must be 0-23"),
    ("day-of-week out of range", {"schedule": "0 9 * * 8"}, "day-of-week"),
    ("zero step", {"schedule": "*/0 * * * *"}, "minute"),
    ("second out of range", {"schedule": "61 * * * * *"}, "second must be 0-59"),
    ("too few fields", {"schedule": "* * * *"}, "4 fields"),
    ("too many fields", {"schedule": "* * * * * * *"}, "7 fields"),
    ("never matches", {"schedule": "0 0 30 2 *"}, "never matches"),
    ("empty schedule", {"schedule": "  "}, "schedule: must not be empty"),
    ("unknown alias", {"schedule": "@sometimes"}, "schedule"),
    ("unknown timezone", {"timezone": "Mars/Olympus_Mons"}, "timezone: unknown"),
    ("timezone path", {"timezone": "../../etc/passwd"}, "timezone: unknown"),
    ("runAt in the past", {"schedule": None, "runAt": "2001-01-01T00:00:00Z"}, "in the past"),
    ("runAt not a date", {"schedule": None, "runAt": "tomorrow 9am"}, "not an ISO-8601"),
    ("runAt bad month", {"schedule": None, "runAt": "2030-13-01T00:00:00Z"}, "runAt"),
    ("both schedule and runAt", {"runAt": "2035-01-01T00:00:00Z"}, "both were given"),
    ("neither", {"schedule": None}, "neither was given"),
    ("oversized payload", {"payload": {"message": "x" * (64 * 1024)}}, "payload: is"),
    ("payload not an object", {"payload": ["a"]}, "payload"),
    ("name not a string", {"name": 12}, "name"),
    ("name empty", {"name": " "}, "name: must not be empty"),
    ("name too long", {"name": "x" * 201}, "name: is 201 characters"),
    ("schedule not a string", {"schedule": 5}, "schedule"),
    ("timezone not a string", {"timezone": ["UTC"]}, "timezone"),
    ("status completed", {"status": "completed"}, "status: must be one of"),
    ("bad jobId", {"jobId": "has space"}, "jobId"),
    ("jobId too long", {"jobId": "j" * 129}, "jobId"),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [(c, e) for _, c, e in CREATE_CASES],
    ids=[name for name, _, _ in CREATE_CASES],
)
async def test_bad_create_is_refused_and_not_stored(
    api: httpx.AsyncClient, redis: Redis, change: dict[str, Any], expected: str
) -> None:
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    response = await api.post("/api/jobs", json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()
    assert error["success"] is False
    assert expected in error["error"]["message"]
    assert await redis.xlen(keys.CRON_JOBS) == 0


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"{not json", 400), (b"[1, 2]", 400), (b'"job"', 400), (b"", 400), (b"x" * 2_000_000, 413)],
    ids=["malformed", "array", "string", "empty", "too large"],
)
async def test_unparseable_bodies(
    api: httpx.AsyncClient, redis: Redis, content: bytes, status: int
) -> None:
    response = await api.post(
        "/api/jobs", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.json()["success"] is False
    assert await redis.xlen(keys.CRON_JOBS) == 0


PATCH_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("bad schedule", {"schedule": "0 25 * * *"}, "hour must be 0-23"),
    ("runAt in the past", {"runAt": "2000-01-01T00:00:00+07:00"}, "runAt"),
    ("both", {"schedule": "* * * * *", "runAt": "2035-01-01T00:00:00Z"}, "both were given"),
    ("bad timezone", {"timezone": "Europe/Atlantis"}, "timezone"),
    ("payload type", {"payload": "text"}, "payload"),
    ("name empty", {"name": ""}, "name"),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [(c, e) for _, c, e in PATCH_CASES],
    ids=[name for name, _, _ in PATCH_CASES],
)
async def test_bad_update_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, redis: Redis, change: dict[str, Any], expected: str
) -> None:
    created = (await api.post("/api/jobs", json=GOOD)).json()["data"]
    response = await api.patch(f"/api/jobs/{created['jobId']}", json=change)
    assert 400 <= response.status_code < 500, response.text
    assert expected in response.json()["error"]["message"]
    assert await redis.xlen(keys.CRON_JOBS) == 1
    assert (await api.get(f"/api/jobs/{created['jobId']}")).json()["data"] == created


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs/nope"),
        ("PATCH", "/api/jobs/nope"),
        ("DELETE", "/api/jobs/nope"),
        ("POST", "/api/jobs/nope/start"),
        ("POST", "/api/jobs/nope/stop"),
    ],
)
async def test_unknown_job_id_is_404(
    api: httpx.AsyncClient, redis: Redis, method: str, path: str
) -> None:
    kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
    response = await api.request(method, path, **kwargs)
    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("jobId: no job with id 'nope'")
    assert await redis.xlen(keys.CRON_JOBS) == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "paused"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
async def test_bad_list_query(api: httpx.AsyncClient, params: dict[str, Any], field: str) -> None:
    response = await api.get("/api/jobs", params=params)
    assert response.status_code == 400
    assert field in response.json()["error"]["message"]
