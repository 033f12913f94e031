"""The gateway client's protocol handling: envelope, error text, retries, headers.

The upstream here is a real Litestar app built with the gateways' own ``create_gateway`` and
served by uvicorn, standing in for failure modes the real gateways cannot be made to show on
demand (a 503 that heals, a foreign program on the port, a request counter). The tools against
the real gateways are tested in ``test_tools.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Request, delete, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Response

from aspri.api.access import Access
from aspri.api.common import ApiError, create_gateway
from aspri.config import Settings
from aspri.mcp.gateway import GatewayError, Gateways, new_http_client
from aspri.streams.server import free_port
from tests.helpers import serve_asgi

calls: Counter[str] = Counter()


def _flaky(name: str, failures: int) -> dict[str, Any]:
    calls[name] += 1
    if calls[name] <= failures:
        raise ApiError(503, "unavailable", "channel is reconnecting")
    return {"attempts": calls[name]}


@get("/api/flaky/{name:str}")
async def flaky_get(name: FromPath[str], failures: FromQuery[int]) -> dict[str, Any]:
    return {"success": True, "data": _flaky(name, failures)}


@post("/api/flaky/{name:str}", status_code=200)
async def flaky_post(name: FromPath[str], failures: FromQuery[int]) -> dict[str, Any]:
    return {"success": True, "data": _flaky(name, failures)}


@delete("/api/flaky/{name:str}", status_code=200)
async def flaky_delete(name: FromPath[str], failures: FromQuery[int]) -> dict[str, Any]:
    return {"success": True, "data": _flaky(name, failures)}


@post("/api/jobs", status_code=200)
async def refuse() -> None:
    raise ApiError(
        400, "invalid_schedule", "invalid cron expression '61 * * * *': minute must be 0-59"
    )


@get("/api/headers")
async def headers(request: Request[Any, Any, Any]) -> dict[str, Any]:
    wanted = ("x-api-key", "idempotency-key", "traceparent")
    return {"success": True, "data": {k: request.headers.get(k) for k in wanted}}


@get("/api/plain")
async def plain() -> Response[str]:
    return Response("hello from something else", media_type="text/plain")


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[str]:
    app = create_gateway(
        title="stand-in",
        description="failure modes for the MCP gateway client",
        route_handlers=[flaky_get, flaky_post, flaky_delete, refuse, headers, plain],
        access=Access.from_settings(Settings(api_key="k-123")),
    )
    async with serve_asgi(app) as url:
        yield url


@pytest.fixture
async def gateways(upstream: str) -> AsyncIterator[Gateways]:
    settings = Settings(whatsapp_url=upstream, cronjob_url=upstream + "/", api_key="k-123")
    async with new_http_client(settings) as http:
        yield Gateways(http, settings)


def _name(request: pytest.FixtureRequest) -> str:
    return request.node.name


async def test_4xx_is_the_envelope_message(gateways: Gateways) -> None:
    with pytest.raises(GatewayError) as caught:
        await gateways.call(gateways.cron, "POST", "/api/jobs", json={"name": "x"})
    assert str(caught.value) == "invalid cron expression '61 * * * *': minute must be 0-59"
    assert (caught.value.status, caught.value.code) == (400, "invalid_schedule")


async def test_get_is_retried_until_it_succeeds(
    gateways: Gateways, request: pytest.FixtureRequest
) -> None:
    name = _name(request)
    data = await gateways.call(gateways.whatsapp, "GET", f"/api/flaky/{name}?failures=2")
    assert data == {"attempts": 3}


async def test_get_gives_up_after_three_attempts(
    gateways: Gateways, request: pytest.FixtureRequest
) -> None:
    name = _name(request)
    with pytest.raises(GatewayError) as caught:
        await gateways.call(gateways.whatsapp, "GET", f"/api/flaky/{name}?failures=5")
    assert calls[name] == 3
    assert str(caught.value) == (
        "the WhatsApp service failed (HTTP 503, unavailable): channel is reconnecting"
    )


async def test_post_without_key_is_not_retried(
    gateways: Gateways, request: pytest.FixtureRequest
) -> None:
    name = _name(request)
    with pytest.raises(GatewayError):
        await gateways.call(gateways.whatsapp, "POST", f"/api/flaky/{name}?failures=1")
    assert calls[name] == 1


async def test_post_with_key_is_retried(gateways: Gateways, request: pytest.FixtureRequest) -> None:
    name = _name(request)
    data = await gateways.call(
        gateways.whatsapp, "POST", f"/api/flaky/{name}?failures=1", idempotency_key="k1"
    )
    assert data == {"attempts": 2}


async def test_delete_without_key_is_not_retried(
    gateways: Gateways, request: pytest.FixtureRequest
) -> None:
    name = _name(request)
    with pytest.raises(GatewayError):
        await gateways.call(gateways.cron, "DELETE", f"/api/flaky/{name}?failures=1")
    assert calls[name] == 1


async def test_headers_carry_api_key_and_idempotency_key(gateways: Gateways) -> None:
    data = await gateways.call(gateways.whatsapp, "GET", "/api/headers", idempotency_key="key-7")
    assert data["x-api-key"] == "k-123"
    assert data["idempotency-key"] == "key-7"


async def test_a_wrong_key_is_refused_and_off_sends_none(upstream: str) -> None:
    wrong = Settings(whatsapp_url=upstream, cronjob_url=upstream, api_key="k-999")
    async with new_http_client(wrong) as http:
        gateways = Gateways(http, wrong)
        with pytest.raises(GatewayError) as caught:
            await gateways.call(gateways.whatsapp, "GET", "/api/headers")
    assert caught.value.status == 401 and "X-API-Key" in str(caught.value)
    off = Settings(whatsapp_url=upstream, cronjob_url=upstream, api_key="off")
    async with new_http_client(off) as http:
        assert "x-api-key" not in http.headers


async def test_without_a_key_setting_the_key_file_is_used(upstream: str, tmp_path: Path) -> None:
    (tmp_path / "api-key").write_text("k-123\n")
    settings = Settings(whatsapp_url=upstream, cronjob_url=upstream, data_dir=tmp_path)
    async with new_http_client(settings) as http:
        data = await Gateways(http, settings).call(
            Gateways(http, settings).whatsapp, "GET", "/api/headers"
        )
    # (traceparent depends on whether another test installed a tracer provider: not asserted)
    assert (data["x-api-key"], data["idempotency-key"]) == ("k-123", None)


async def test_foreign_body_names_the_service(gateways: Gateways) -> None:
    with pytest.raises(GatewayError) as caught:
        await gateways.call(gateways.cron, "GET", "/api/plain")
    assert "cron service" in str(caught.value)
    assert "not its API envelope" in str(caught.value)


async def test_unreachable_names_service_and_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = Settings(whatsapp_url=url, cronjob_url=url, api_key="k-123")
    async with new_http_client(settings) as http:
        gateways = Gateways(http, settings)
        with pytest.raises(GatewayError) as caught:
            await gateways.call(gateways.cron, "GET", "/api/jobs")
    assert str(caught.value).startswith(f"the cron service at {url} is unreachable")


async def test_trailing_slash_in_base_url_is_ignored(gateways: Gateways, upstream: str) -> None:
    assert gateways.cron.base_url == upstream
    assert "x-api-key" in await gateways.call(gateways.cron, "GET", "/api/headers")


async def test_client_has_timeouts(gateways: Gateways) -> None:
    timeout = gateways.http.timeout
    assert isinstance(timeout, httpx.Timeout)
    assert timeout.connect is not None and timeout.connect <= 5
    assert timeout.read is not None
