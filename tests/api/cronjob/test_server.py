"""``aspri cron`` and ``aspri scheduler`` as real processes: serve, fire, stop cleanly, restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from aspri.streams import keys
from aspri.streams.server import free_port
from tests.helpers import API_KEY, AUTH, wait_until

ASPRI = str(Path(sys.executable).parent / "aspri")


async def spawn(
    command: str, env: dict[str, str], log: Path, *, cwd: Path | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        ASPRI, command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log.open("w"), cwd=cwd
    )


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), 20)


async def health(url: str) -> dict | None:  # type: ignore[type-arg]
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{url}/health")
    except httpx.TransportError:
        return None
    return response.json()["data"] if response.status_code == 200 else None


@pytest.mark.slow
async def test_gateway_and_scheduler_processes(
    redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        CRONJOB_PORT=str(port),
        CONSUMER_NAME="sched-1",
        ASPRI_API_KEY=API_KEY,
    )
    gateway = await spawn("cron", env, tmp_path / "cron.log")
    scheduler = await spawn("scheduler", env, tmp_path / "scheduler.log")
    try:
        await wait_until(lambda: health(url), timeout=90)
        await wait_until(lambda: redis.get(keys.CRON_LEASE), timeout=90)
        assert (await health(url) or {})["details"]["scheduler"] == "sched-1"
        run_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
        body = {"name": "soon", "runAt": run_at, "payload": {"chatId": "1@c.us", "message": "hi"}}
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
            job = (await client.post("/api/jobs", json=body)).json()["data"]
            await wait_until(lambda: redis.xlen(keys.CRON_EVENTS), timeout=15)
            done = (await client.get(f"/api/jobs/{job['jobId']}")).json()["data"]
            assert done["status"] == "completed" and done["lastRunAt"] is not None
    finally:
        codes = (await stop(scheduler), await stop(gateway))
    assert codes == (0, 0)
    assert await redis.get(keys.CRON_LEASE) is None  # handed over on the way out

    gateway = await spawn("cron", env, tmp_path / "cron2.log")  # a restart loses nothing
    try:
        await wait_until(lambda: health(url), timeout=90)
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
            again = (await client.get(f"/api/jobs/{job['jobId']}")).json()["data"]
        assert again == done
    finally:
        assert await stop(gateway) == 0


@pytest.mark.slow
async def test_gateway_fails_to_start_when_its_port_is_taken(
    redis_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        env = dict(os.environ, REDIS_URL=redis_url, CRONJOB_PORT=port, ASPRI_API_KEY=API_KEY)
        gateway = await spawn("cron", env, tmp_path / "cron.log")
        assert await asyncio.wait_for(gateway.wait(), 30) == 3  # uvicorn's startup failure


async def full_health(url: str) -> dict | None:  # type: ignore[type-arg]
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{url}/health")).json()["data"]  # type: ignore[no-any-return]
    except httpx.TransportError:
        return None


@pytest.mark.slow
async def test_health_says_when_the_scheduler_is_killed_and_when_it_is_back(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        CRONJOB_PORT=str(port),
        CONSUMER_NAME="sched-k",
        ASPRI_API_KEY=API_KEY,
        HEALTH_TTL_SECONDS="1.5",
    )

    async def state() -> tuple[str, list[str]] | None:
        body = await full_health(url)
        return (body["status"], body["details"]["down"]) if body else None

    gateway = await spawn("cron", env, tmp_path / "cron.log")
    scheduler = await spawn("scheduler", env, tmp_path / "scheduler.log")
    try:
        await wait_until(lambda: _is(state, ("ok", [])), timeout=90)
        scheduler.kill()  # kill -9: no clean stop deletes its record, its TTL runs out
        await scheduler.wait()
        await wait_until(lambda: _is(state, ("degraded", ["scheduler"])), timeout=30)
        body = await full_health(url) or {}
        assert [(s["name"], s["up"]) for s in body["details"]["schedulers"]] == [("sched-k", False)]
        scheduler = await spawn("scheduler", env, tmp_path / "scheduler2.log")
        await wait_until(lambda: _is(state, ("ok", [])), timeout=90)
    finally:
        if scheduler.returncode is None:
            await stop(scheduler)
        await stop(gateway)


async def _is(read: Callable[[], Awaitable[object]], wanted: object) -> bool:
    return await read() == wanted
