"""``aspri health SERVICE``, the containers' health check: a gateway is asked over HTTP, the
engine and the scheduler are looked up by their health record in the real event log."""

from __future__ import annotations

import asyncio
import sys

from litestar import Litestar, Response, get
from redis.asyncio import Redis

from aspri.config import Settings
from aspri.health_check import problem
from aspri.streams.health import Beat
from tests.helpers import serve_asgi


def health_app(status: str) -> Litestar:
    @get("/health")
    async def health() -> Response[dict[str, object]]:
        code = 503 if status == "down" else 200
        return Response({"success": True, "data": {"status": status}}, status_code=code)

    return Litestar(route_handlers=[health], logging_config=None)


async def test_a_gateway_is_healthy_unless_down_or_silent() -> None:
    for status, healthy in (("ok", True), ("degraded", True), ("down", False)):
        async with serve_asgi(health_app(status)) as url:
            port = int(url.rsplit(":", 1)[1])
            found = await problem(Settings(cronjob_port=port), "cron")
        assert (found is None) == healthy, (status, found)
    found = await problem(Settings(whatsapp_port=port), "whatsapp")  # nothing listens now
    assert found is not None and "does not answer" in found


async def aspri_health(redis_url: str, *args: str) -> tuple[int, str]:
    """The real command, as a container runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aspri.cli",
        "health",
        *args,
        env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


async def test_engine_health_follows_its_record(redis_url: str, redis: Redis) -> None:
    async with Beat(redis, "engine", "ai-worker-1", ttl_s=30):
        assert await aspri_health(redis_url, "engine", "--name", "ai-worker-1") == (
            0,
            "engine: healthy\n",
        )
        code, said = await aspri_health(redis_url, "engine", "--name", "ai-worker-2")
        assert code == 1 and "no live health record of engine ai-worker-2" in said
        assert "ai-worker-1" in said  # who was seen instead
        assert await problem(Settings(redis_url=redis_url), "engine") is None  # any instance
    # A clean stop deletes the record: the check fails at once, not after the TTL.
    code, said = await aspri_health(redis_url, "engine", "--name", "ai-worker-1")
    assert code == 1 and "no live health record" in said
    assert await problem(Settings(redis_url=redis_url), "scheduler") is not None
