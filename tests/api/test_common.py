"""The shared gateway base: every failure is the envelope, a lost event log is a 503."""

from __future__ import annotations

from litestar import get
from litestar.testing import AsyncTestClient
from redis.exceptions import ConnectionError as RedisConnectionError

from aspri.api.common import create_gateway


@get("/boom/redis")
async def redis_down() -> None:
    raise RedisConnectionError("Connection refused")


@get("/boom/bug")
async def bug() -> None:
    raise KeyError("secret-token-value")


async def test_redis_failure_is_503_and_a_bug_is_a_500_envelope_without_details() -> None:
    app = create_gateway(title="t", description="d", route_handlers=[redis_down, bug])
    async with AsyncTestClient(app) as client:
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
        asset = await client.get("/schema-assets/swagger-ui-bundle.js")
        assert asset.status_code == 200  # the UI renders offline: its JS is served locally
