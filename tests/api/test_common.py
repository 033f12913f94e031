"""The shared gateway base: every failure is the envelope, a lost event log is a 503."""

from __future__ import annotations

import httpx
from litestar import get
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from aspri.api.access import Access
from aspri.api.common import create_gateway
from aspri.config import Settings
from tests.helpers import API_KEY, AUTH

ACCESS = Access.from_settings(Settings(api_key=API_KEY))


@get("/boom/redis")
async def redis_down() -> None:
    raise RedisConnectionError("Connection refused")


@get("/boom/bug")
async def bug() -> None:
    raise KeyError("secret-token-value")


async def test_redis_failure_is_503_and_a_bug_is_a_500_envelope_without_details() -> None:
    app = create_gateway(
        title="t", description="d", route_handlers=[redis_down, bug], access=ACCESS
    )
    async with AsyncTestClient(app, base_url="http://127.0.0.1") as client:
        client.headers.update(AUTH)
        down = await client.get("/boom/redis")
        assert down.status_code == 503
        assert down.json() == {
            "success": False,
            "error": {"code": "unavailable", "message": down.json()["error"]["message"]},
        }
        broken = await client.get("/boom/bug")
        assert broken.status_code == 500
        assert broken.json()["error"]["code"] == "internal_error"
        assert "secret-token-value" not in broken.text  # internals never reach the client
        missing = await client.get("/nope")
        assert missing.status_code == 404 and missing.json()["success"] is False
        ui = await client.get("/schema/swagger")
        assert ui.status_code == 200 and "/schema-assets/swagger-ui-bundle.js" in ui.text
        assert "//" not in ui.text.replace("http://www.w3.org", "")  # no CDN, favicon included
        for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
            asset = await client.get(f"/schema-assets/{name}")
            assert asset.status_code == 200, name  # the UI renders offline: served locally


async def test_metrics_report_backlog_pending_and_dead_letters(redis: Redis) -> None:
    """Scraped from the real event log: one group lagging, one entry in flight, one dead."""
    for i in range(3):
        await redis.xadd("whatsapp:messages", {"type": "x", "data": str(i)})
    await redis.xgroup_create("whatsapp:messages", "ai-engine", id="0")
    await redis.xreadgroup("ai-engine", "w1", {"whatsapp:messages": ">"}, count=1)
    await redis.xadd("whatsapp:messages:dlq", {"error": "boom"})
    app = create_gateway(title="t", description="d", route_handlers=[], redis=redis, access=ACCESS)
    # In this event loop (the redis client is bound to it): httpx straight to the ASGI app.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        assert (await client.get("/metrics")).status_code == 401  # behind the key, like the API
        reply = await client.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = set(reply.text.splitlines())
    assert 'aspri_stream_length{stream="whatsapp:messages"} 3.0' in lines
    assert 'aspri_stream_group_lag{group="ai-engine",stream="whatsapp:messages"} 2.0' in lines
    assert 'aspri_stream_group_pending{group="ai-engine",stream="whatsapp:messages"} 1.0' in lines
    assert 'aspri_stream_dead_letters{stream="whatsapp:messages"} 1.0' in lines
    assert 'aspri_stream_length{stream="cronjob:events"} 0.0' in lines  # absent stream: zero
