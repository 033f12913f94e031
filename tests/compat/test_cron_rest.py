"""The original ASPRI v2's cron requests, replayed against the real cron gateway on Valkey.

Every request of its ``docs/CRONJOB_API_EXAMPLES.md`` (the curl blocks parsed from the file, the
JavaScript/Python ones transcribed below) and of ``services/cronjob/request.http`` (parsed), and
the cron requests of its README, answer 2xx with the fields the original's clients read. The
clock is the docs' own "now" (2025-01-15 10:00 UTC), so their fixed dates are still ahead.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from redis.asyncio import Redis

from aspri.api.cronjob.validation import Limits
from aspri.schemas import REGISTRY
from aspri.schemas.cron import FiredRun, JobFired
from aspri.streams import EventLog, keys
from tests.api.cronjob.conftest import gateway

ORIGINAL = Path(__file__).parent / "original"
NOW = datetime(2025, 1, 15, 10, 0, tzinfo=ZoneInfo("UTC")).timestamp()
LOCAL = "Asia/Jakarta"
"""ASPRI_TIMEZONE of these tests: the original read yyyyMMddHHmmss in the server's local time."""
JOB_FIELDS = ("id", "name", "type", "enabled", "payload", "createdAt", "updatedAt")
Request = tuple[str, str, dict[str, Any] | None]


def local_ms(text: str) -> int:
    """JavaScript's ``new Date('2025-01-20 09:00:00').getTime()`` on a server in LOCAL."""
    moment = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(LOCAL))
    return int(moment.timestamp() * 1000)


def curl_requests(markdown: str) -> list[Request]:
    """Every ``curl`` of the file's bash blocks: (method, path, JSON body or None)."""
    found: list[Request] = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.S):
        words = shlex.split(block.replace("\\\n", " "), comments=True)
        while "curl" in words:
            words = words[words.index("curl") + 1 :]
            end = words.index("curl") if "curl" in words else len(words)
            command, method, body = words[:end], "GET", None
            if "-X" in command:
                method = command[command.index("-X") + 1]
            if "-d" in command:
                body = httpx.Response(200, content=command[command.index("-d") + 1]).json()
            url = next(w for w in command if w.startswith("http://"))
            found.append((method, url.removeprefix("http://localhost:3002"), body))
    return found


def http_file_requests(text: str) -> list[Request]:
    """The requests of a ``.http`` file (REST Client format)."""
    found: list[Request] = []
    for part in text.split("###")[1:]:
        lines = [line for line in part.splitlines()[1:] if not line.startswith("#")]
        start = next(i for i, line in enumerate(lines) if line.strip())
        method, url, _ = lines[start].split()
        rest = "\n".join(lines[start + 1 :])
        body_text = rest.split("\n\n", 1)[1].strip() if "\n\n" in rest else ""
        body = httpx.Response(200, content=body_text).json() if body_text else None
        found.append((method, url.replace("{{baseUrl}}", ""), body))
    return found


def in_an_hour() -> int:
    return int(NOW * 1000) + 3_600_000


TRANSCRIBED: list[dict[str, Any]] = [
    # "Create One-Time Job", Example 1 (JavaScript: Date.now() + 1 hour)
    {
        "name": "Send Birthday Reminder",
        "type": "one-time",
        "scheduledTime": in_an_hour(),
        "enabled": True,
        "payload": {"message": "Happy Birthday! 🎉", "recipient": "628123456789"},
    },
    # Example 3 (Python: 30 minutes from now)
    {
        "name": "Coffee Break Reminder",
        "type": "one-time",
        "scheduledTime": int(NOW * 1000) + 1_800_000,
        "enabled": True,
        "payload": {"message": "Time for a coffee break! ☕", "action": "send_notification"},
    },
    # "Birthday Reminder System" step 2 (JavaScript, server local time)
    {
        "name": "Birthday Greeting - John Doe",
        "type": "one-time",
        "scheduledTime": local_ms("2025-01-20 09:00:00"),
        "enabled": True,
        "payload": {"message": "Happy Birthday John! 🎂", "recipient": "628123456789"},
    },
    # "Meeting Reminder System" steps 1-3 (createJob without enabled)
    *(
        {
            "name": name,
            "type": "one-time",
            "scheduledTime": local_ms("2025-01-20 14:00:00") - before,
            "payload": {"message": text},
        }
        for name, before, text in (
            ("Meeting Reminder - 24h before", 86_400_000, "Meeting tomorrow at 2 PM"),
            ("Meeting Reminder - 1h before", 3_600_000, "Meeting in 1 hour!"),
            ("Meeting Reminder - 5min before", 300_000, "Meeting starts in 5 minutes!"),
        )
    ),
]
README_CRON: list[Request] = [
    # the original README's "Cronjob Service API" (no "type": ASPRI reads the schedule)
    (
        "POST",
        "/api/jobs",
        {
            "name": "Daily Reminder",
            "schedule": "0 9 * * *",
            "enabled": True,
            "payload": {"message": "Good morning!"},
        },
    ),
    ("GET", "/api/jobs", None),
    ("POST", "/api/jobs/{jobId}/start", None),
    ("POST", "/api/jobs/{jobId}/stop", None),
]


@pytest.fixture
async def api(redis_url: str, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(redis_url, now=lambda: NOW, limits=Limits(local_timezone=LOCAL)) as http:
        yield http


async def send(api: httpx.AsyncClient, method: str, path: str, body: Any) -> Any:
    response = await api.request(method, path, json=body)
    assert 200 <= response.status_code < 300, (method, path, body, response.text)
    envelope = response.json()
    assert envelope["success"] is True
    return envelope["data"]


def check_job(job: dict[str, Any], sent: dict[str, Any] | None = None) -> None:
    """The fields the original's clients read, with the original's meaning."""
    for field in JOB_FIELDS:
        assert field in job, (field, job)
    assert job["id"] == job["jobId"]
    if job["type"] == "recurring":
        assert re.fullmatch(r"[\d*/,\- ]+", job["schedule"])
    else:
        assert job["type"] == "one-time" and job["executed"] is False
        assert re.fullmatch(r"\d{14}", job["scheduledTime"])
    if sent is not None:
        assert job["name"] == sent["name"] and job["payload"] == sent.get("payload", {})
        assert job["enabled"] is sent.get("enabled", True)
        if sent.get("type") in ("recurring", "one-time"):
            assert job["type"] == sent["type"]
        if isinstance(sent.get("scheduledTime"), int):
            ms = datetime.strptime(job["scheduledTime"], "%Y%m%d%H%M%S")
            shown = ms.replace(tzinfo=ZoneInfo(LOCAL)).timestamp() * 1000
            assert shown == sent["scheduledTime"] // 1000 * 1000


def check_answer(method: str, path: str, body: Any, data: Any) -> None:
    if path == "/api/jobs/stats":
        assert {"total", "recurring", "oneTime", "active", "executed"} <= set(data)
    elif method == "GET" and path == "/api/jobs":
        for job in data["jobs"]:
            check_job(job)
    elif path.endswith("/start"):
        check_job(data)
        assert data["started"] is True and data["enabled"] is True
    elif path.endswith("/stop"):
        check_job(data)
        assert data["stopped"] is True and data["enabled"] is False
    elif method == "DELETE":
        assert data["deleted"] is True
    else:
        check_job(data, body if method == "POST" else None)


async def test_every_request_of_cronjob_api_examples_md(api: httpx.AsyncClient) -> None:
    requests = curl_requests((ORIGINAL / "CRONJOB_API_EXAMPLES.md").read_text())
    assert len(requests) == 12  # 5 creates, list, stats, 2 updates, stop, start, delete
    ids: dict[str, str] = {}
    names = {
        "uuid-123-abc": "Daily Morning Reminder",
        "uuid-456-def": "Meeting Reminder - Q1 Review",
    }
    for method, path, body in requests:
        for placeholder, name in names.items():
            path = path.replace(placeholder, ids.get(name, placeholder))
        data = await send(api, method, path, body)
        check_answer(method, path, body, data)
        if method == "POST" and path == "/api/jobs":
            ids[data["name"]] = data["id"]
    for body in TRANSCRIBED:
        check_answer("POST", "/api/jobs", body, await send(api, "POST", "/api/jobs", body))

    q1 = await send(api, "GET", f"/api/jobs/{ids['Meeting Reminder - Q1 Review']}", None)
    assert q1["scheduledTime"] == "20250120230000"  # 1737388800000 (PATCHed) in Jakarta
    jobs = (await send(api, "GET", "/api/jobs", None))["jobs"]
    stats = await send(api, "GET", "/api/jobs/stats", None)
    one_time = sum(j["type"] == "one-time" for j in jobs)
    assert stats == {
        "total": len(jobs),
        "recurring": len(jobs) - one_time,
        "oneTime": one_time,
        "active": sum(j["enabled"] for j in jobs),
        "executed": 0,
    }


async def test_every_request_of_request_http(api: httpx.AsyncClient) -> None:
    requests = http_file_requests((ORIGINAL / "request.http").read_text())
    assert [m for m, _, _ in requests].count("POST") == 5 and len(requests) == 10
    first = requests[0][2]
    for method, path, body in requests:
        if "{{jobId}}" in path:  # each on a job of its own: the file deletes before it starts
            job = await send(api, "POST", "/api/jobs", first)
            path = path.replace("{{jobId}}", job["id"])
        data = await send(api, method, path, body)
        check_answer(method, path, body, data)
        if body and body.get("delayTime") == "2m":
            assert data["runAt"] == "2025-01-15T10:02:00+00:00" and data["type"] == "one-time"
        if body and body.get("scheduledTime") == "20251221120000":
            assert data["runAt"] == "2025-12-21T05:00:00+00:00"  # noon in Jakarta
            assert data["scheduledTime"] == "20251221120000"
        if method == "PATCH":
            assert data["enabled"] is False and data["status"] == "stopped"
            assert data["schedule"] == "0 10 * * *"


async def test_the_readme_cron_requests(api: httpx.AsyncClient) -> None:
    job_id = ""
    for method, path, body in README_CRON:
        path = path.replace("{jobId}", job_id)
        data = await send(api, method, path, body)
        check_answer(method, path, body, data)
        job_id = job_id or data["id"]


async def test_enabled_false_creates_a_stopped_job_and_patch_enabled_switches_it(
    api: httpx.AsyncClient,
) -> None:
    body = {"name": "later", "type": "one-time-relative", "delayTime": "1h", "enabled": False}
    job = await send(api, "POST", "/api/jobs", body)
    assert (job["status"], job["enabled"], job["nextRunAt"]) == ("stopped", False, None)
    on = await send(api, "PATCH", f"/api/jobs/{job['id']}", {"enabled": True})
    assert on["status"] == "running" and on["nextRunAt"] == "2025-01-15T11:00:00+00:00"
    off = await send(api, "PATCH", f"/api/jobs/{job['id']}", {"enabled": False})
    assert off["status"] == "stopped" and off["enabled"] is False


async def test_a_retried_relative_create_is_the_same_job(redis_url: str, redis: Redis) -> None:
    clock = [NOW]
    limits = Limits(local_timezone=LOCAL)
    async with gateway(redis_url, now=lambda: clock[0], limits=limits) as api:
        body = {"name": "soon", "type": "one-time-relative", "delayTime": "2m", "jobId": "r-1"}
        first = await send(api, "POST", "/api/jobs", body)
        clock[0] += 5
        again = await api.post("/api/jobs", json=body)
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["data"]["runAt"] == first["runAt"]


async def test_an_executed_one_time_job_shows_executed_and_counts(
    redis_url: str, redis: Redis
) -> None:
    clock = [NOW]
    async with gateway(redis_url, now=lambda: clock[0], limits=Limits(local_timezone=LOCAL)) as api:
        once = {"name": "once", "type": "one-time", "scheduledTime": in_an_hour()}
        job = await send(api, "POST", "/api/jobs", once)
        daily = {"name": "daily", "type": "recurring", "schedule": "0 9 * * *"}
        await send(api, "POST", "/api/jobs", daily)
        clock[0] = (in_an_hour() + 2000) / 1000  # what the scheduler records when it fires
        fired = JobFired(runs=[FiredRun(job_id=job["id"], scheduled_time=in_an_hour())])
        event = REGISTRY.event(fired, source="cronjob", timestamp=in_an_hour() + 2000)
        await EventLog(redis).append(keys.CRON_JOBS, event)
        done = await send(api, "GET", f"/api/jobs/{job['id']}", None)
        assert (done["executed"], done["enabled"], done["status"]) == (True, False, "completed")
        assert done["executedAt"] == "20250115180002"  # 11:00:02 UTC in Jakarta
        stats = await send(api, "GET", "/api/jobs/stats", None)
        assert stats == {"total": 2, "recurring": 1, "oneTime": 1, "active": 1, "executed": 1}
        again = await api.patch(f"/api/jobs/{job['id']}", json={"enabled": True})
        assert again.status_code == 409, again.text
        assert again.json()["error"]["message"].startswith("enabled:")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "weekly", "schedule": "0 9 * * *"}, "type"),
        ({"type": "recurring"}, "schedule"),
        ({"type": "one-time"}, "scheduledTime"),
        ({"type": "one-time-relative", "scheduledTime": "20251221120000"}, "delayTime"),
        ({"type": "one-time", "scheduledTime": "2025-12-21 12:00"}, "scheduledTime"),
        ({"type": "one-time", "scheduledTime": "20250230120000"}, "scheduledTime"),
        ({"type": "one-time", "scheduledTime": 1_000}, "scheduledTime"),
        ({"type": "one-time", "scheduledTime": True}, "scheduledTime"),
        ({"type": "one-time", "scheduledTime": 10**30}, "scheduledTime"),
        ({"type": "one-time-relative", "delayTime": "2x"}, "delayTime"),
        ({"type": "one-time-relative", "delayTime": "0s"}, "delayTime"),
        ({"type": "one-time-relative", "delayTime": "9999h"}, "delayTime"),
        ({"schedule": "0 9 * * *", "delayTime": "2m"}, "schedule, runAt, scheduledTime"),
        ({"schedule": "0 9 * * *", "enabled": "yes"}, "enabled"),
        ({"schedule": "0 9 * * *", "enabled": True, "status": "stopped"}, "enabled"),
    ],
)
async def test_bad_original_bodies_get_a_4xx_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await api.post("/api/jobs", json={"name": "x", **body})
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["message"]


async def test_patch_cannot_change_the_type(api: httpx.AsyncClient) -> None:
    job = await send(api, "POST", "/api/jobs", README_CRON[0][2])
    response = await api.patch(f"/api/jobs/{job['id']}", json={"type": "one-time"})
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("type:")
    same = await api.patch(f"/api/jobs/{job['id']}", json={"type": "recurring", "name": "y"})
    assert same.status_code == 200


async def test_openapi_documents_both_shapes(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/schema/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    create = schemas["JobCreate"]["properties"]
    assert {"schedule", "runAt", "type", "scheduledTime", "delayTime", "enabled"} <= set(create)
    job = schemas["Job"]["properties"]
    assert {"jobId", "status", "id", "type", "enabled", "executed", "executedAt"} <= set(job)
    assert "/api/jobs/stats" in spec["paths"]
