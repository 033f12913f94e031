"""The streamable HTTP transport with the SDK's real client: token, health, the command.

The gateways are down here (nothing listens on their URLs): these tests are about the wiring;
``test_tools.py`` calls every tool over stdio and HTTP against the real gateways.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx
import pytest

from aspri.config import Settings
from aspri.mcp.gateway import Gateways, new_http_client
from aspri.mcp.server import build_server
from aspri.streams.server import free_port
from tests.helpers import API_KEY, serve_asgi, wait_until
from tests.mcp.support import ASPRI, http_session, text_of

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def gateway_env(nowhere: str, **extra: str) -> dict[str, str]:
    return {
        "WHATSAPP_URL": nowhere,
        "CRONJOB_URL": nowhere,
        "LOG_LEVEL": "warning",
        "ASPRI_API_KEY": API_KEY,
        **extra,
    }


async def test_http_requires_the_token_when_set(nowhere: str) -> None:
    settings = Settings(
        whatsapp_url=nowhere, cronjob_url=nowhere, mcp_token="s3cret", api_key=API_KEY
    )
    async with new_http_client(settings) as http:
        server = build_server(settings, Gateways(http, settings))
        async with serve_asgi(server.streamable_http_app()) as base, httpx.AsyncClient() as raw:
            url = f"{base}/mcp"
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                response = await raw.post(url, json=INITIALIZE, headers=MCP_HEADERS | headers)
                assert response.status_code == 401, headers
                assert response.headers["www-authenticate"].startswith("Bearer")
            health = await raw.get(f"{base}/health")
            assert health.status_code == 200 and health.json()["success"] is True
            async with http_session(url, token="s3cret") as session:
                assert len((await session.list_tools()).tools) == 14
                result = await session.call_tool("cronjob_get", {"jobId": "j1"})
                assert text_of(result).startswith(f"the cron service at {nowhere}")


async def test_http_without_mcp_token_requires_the_api_key(nowhere: str) -> None:
    settings = Settings(whatsapp_url=nowhere, cronjob_url=nowhere, api_key=API_KEY)
    async with new_http_client(settings) as http:
        server = build_server(settings, Gateways(http, settings))
        async with serve_asgi(server.streamable_http_app()) as base, httpx.AsyncClient() as raw:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                response = await raw.post(
                    f"{base}/mcp", json=INITIALIZE, headers=MCP_HEADERS | headers
                )
                assert response.status_code == 401, headers
            async with http_session(f"{base}/mcp", token=API_KEY) as session:
                assert len((await session.list_tools()).tools) == 14


async def test_http_is_open_only_when_the_key_is_off(nowhere: str) -> None:
    settings = Settings(whatsapp_url=nowhere, cronjob_url=nowhere, api_key="off")
    async with new_http_client(settings) as http:
        server = build_server(settings, Gateways(http, settings))
        async with (
            serve_asgi(server.streamable_http_app()) as base,
            http_session(f"{base}/mcp", token=None) as session,
        ):
            assert len((await session.list_tools()).tools) == 14


@pytest.mark.slow
async def test_aspri_mcp_transport_http_command(nowhere: str) -> None:
    """``aspri mcp --transport http`` listens on MCP_PORT, checks MCP_TOKEN, stops on SIGINT."""
    port = free_port()
    env = os.environ | gateway_env(nowhere, MCP_PORT=str(port), MCP_TOKEN="tok")
    proc = await asyncio.create_subprocess_exec(
        ASPRI, "mcp", "--transport", "http", env=env, stderr=sys.stderr
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as raw:

            async def up() -> bool:
                try:
                    return (await raw.get(f"{base}/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(up, timeout=90, interval=0.05)
            denied = await raw.post(f"{base}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
            assert denied.status_code == 401
        async with http_session(f"{base}/mcp", token="tok") as session:
            assert len((await session.list_tools()).tools) == 14
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
