"""``aspri health SERVICE [--name NAME]``: exit 0 when the service works, 1 with the reason.

For container health checks (compose.yaml). The gateways answer for themselves over HTTP
(``/health`` on their port: anything but ``down`` is healthy). The engine and the scheduler
prove they work by renewing a health record with a TTL in the event log (``streams/health.py``):
healthy while the record of instance ``NAME`` (their ``CONSUMER_NAME``) exists, or, without a
name, while any instance's does.
"""

from __future__ import annotations

import asyncio
import sys

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from aspri.config import Settings
from aspri.streams.health import instances

_TIMEOUT_S = 4.0


async def problem(settings: Settings, service: str, name: str | None = None) -> str | None:
    """What is wrong with ``service``, or None when it is healthy."""
    if service in ("whatsapp", "cron"):
        port = settings.whatsapp_port if service == "whatsapp" else settings.cronjob_port
        return await _gateway(f"http://127.0.0.1:{port}/health")
    if not settings.redis_url:
        return "REDIS_URL is not set: the health records live in the event log"
    redis = Redis.from_url(settings.redis_url, socket_timeout=_TIMEOUT_S)
    try:
        seen = await instances(redis, service)
    except (RedisError, OSError) as exc:
        return f"the event log does not answer: {exc}"
    finally:
        await redis.aclose()
    live = [i for i in seen if i.up and (name is None or i.name == name)]
    if live:
        return None
    who = f"{service} {name}" if name else f"any {service}"
    return f"no live health record of {who} (seen: {', '.join(i.name for i in seen) or 'none'})"


async def _gateway(url: str) -> str | None:
    try:
        async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
            reply = await client.get(url)
    except httpx.HTTPError as exc:
        return f"{url} does not answer: {exc!r}"
    try:
        status = reply.json()["data"]["status"]
    except (ValueError, LookupError, TypeError):
        return f"{url} answered {reply.status_code} without a health body"
    if reply.status_code != 200 or status == "down":
        return f"{url} says {status} ({reply.status_code})"
    return None


def main(settings: Settings, service: str, name: str | None) -> int:
    found = asyncio.run(problem(settings, service, name))
    if found is None:
        print(f"{service}: healthy")
        return 0
    print(f"{service}: {found}", file=sys.stderr)
    return 1
