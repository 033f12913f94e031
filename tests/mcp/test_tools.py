"""Acceptance: every tool through a real MCP client against the real gateways on Valkey.

``aspri whatsapp`` (local engine: the web-chat channel, since WhatsApp itself cannot be reached
from a test machine) and ``aspri cron`` run as subprocesses on free ports over an embedded
Valkey; the MCP server runs as ``aspri mcp`` over stdio and in-process over streamable HTTP.
No HTTP mocks anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession

from aspri.config import Settings
from aspri.mcp.gateway import Gateways, new_http_client
from aspri.mcp.server import build_server
from aspri.streams.server import EmbeddedServer
from tests.helpers import API_KEY, AUTH, serve_asgi
from tests.mcp.support import (
    GatewayProcess,
    data_of,
    http_session,
    stdio_session,
    text_of,
)
from tests.mcp.test_server import TOOLS

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@dataclass
class Stack:
    redis_url: str
    whatsapp: GatewayProcess
    cron: GatewayProcess
    mcp_url: str
    logs: Path

    def mcp_env(self, **overrides: str) -> dict[str, str]:
        return {
            "REDIS_URL": self.redis_url,
            "WHATSAPP_URL": self.whatsapp.url,
            "CRONJOB_URL": self.cron.url,
            "LOG_LEVEL": "warning",
            "ASPRI_API_KEY": API_KEY,
            **overrides,
        }


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_mcp_stack(tmp_path_factory.mktemp("mcp-stack")) as s:
        yield s


@contextlib.asynccontextmanager
async def running_mcp_stack(base: Path) -> AsyncIterator[Stack]:
    """Both gateways as processes on their own Valkey, and the MCP server over HTTP."""
    with EmbeddedServer(base / "valkey", persist=False) as redis_url:
        env = {"REDIS_URL": redis_url, "ASPRI_DATA_DIR": str(base), "LOG_LEVEL": "warning"}
        whatsapp = GatewayProcess("whatsapp", "WHATSAPP_PORT", env, base / "whatsapp.log")
        cron = GatewayProcess("cron", "CRONJOB_PORT", env, base / "cron.log")
        try:
            await asyncio.gather(whatsapp.start(), cron.start())
            settings = Settings(whatsapp_url=whatsapp.url, cronjob_url=cron.url, api_key=API_KEY)
            async with new_http_client(settings) as http:
                server = build_server(settings, Gateways(http, settings))
                async with serve_asgi(server.streamable_http_app()) as mcp_base:
                    yield Stack(redis_url, whatsapp, cron, f"{mcp_base}/mcp", base)
        finally:
            for gateway in (whatsapp, cron):
                await gateway.stop()


def new_number() -> str:
    return "628" + "".join(random.choices("0123456789", k=9))


async def new_contact(stack: Stack, name: str) -> tuple[str, str]:
    """A person who wrote to the assistant through the local channel: (number, chatId)."""
    number = new_number()
    async with httpx.AsyncClient(headers=AUTH) as client:
        response = await client.post(
            f"{stack.whatsapp.url}/api/local/messages",
            json={"from": number, "name": name, "text": "hello"},
        )
    assert response.status_code == 202, response.text
    return number, response.json()["data"]["chatId"]


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    return data_of(await session.call_tool(tool, arguments))


async def exercise_every_tool(session: ClientSession, stack: Stack) -> None:
    assert {t.name for t in (await session.list_tools()).tools} == TOOLS
    name = f"Budi {random.randrange(10**6)}"
    number, chat_id = await new_contact(stack, name)

    found = await call(session, "whatsapp_search_contacts", query=name.upper())
    assert [(c["chatId"], c["name"]) for c in found["contacts"]] == [(chat_id, name)]

    sent = await call(session, "whatsapp_send_message", phoneNumber=chat_id, message="Hi Budi")
    assert (sent["chatId"], sent["duplicate"]) == (chat_id, False)

    page = await call(session, "whatsapp_get_messages", phoneNumber=f"+{number}", limit=10)
    bodies = [(m["body"], m["fromMe"]) for m in page["messages"]]
    assert bodies == [("Hi Budi", True), ("hello", False)]

    chats = await call(session, "whatsapp_get_chats", limit=200)
    assert chat_id in [c["chatId"] for c in chats["chats"]]

    payload = {"chatId": chat_id, "message": "Drink water"}
    job = await call(
        session,
        "cronjob_create",
        name=f"water {number}",
        schedule="0 8 * * *",
        timezone="Asia/Jakarta",
        payload=payload,
    )
    job_id = job["jobId"]
    assert job["status"] == "running"
    assert job["nextRunAt"].endswith("T08:00:00+07:00")
    assert (await call(session, "cronjob_get", jobId=job_id))["payload"] == payload

    running = await call(session, "cronjob_list", status="running", limit=100)
    assert job_id in [j["jobId"] for j in running["jobs"]]

    updated = await call(session, "cronjob_update", jobId=job_id, schedule="30 9 * * 1-5")
    assert updated["schedule"] == "30 9 * * 1-5"
    assert "T09:30:00+07:00" in updated["nextRunAt"]

    assert (await call(session, "cronjob_stop", jobId=job_id))["status"] == "stopped"
    stopped = await call(session, "cronjob_list", status="stopped", limit=100)
    assert job_id in [j["jobId"] for j in stopped["jobs"]]
    assert (await call(session, "cronjob_start", jobId=job_id))["status"] == "running"

    deleted = await call(session, "cronjob_delete", jobId=job_id)
    assert deleted["deleted"] is True and deleted["job"]["jobId"] == job_id
    gone = await session.call_tool("cronjob_get", {"jobId": job_id})
    assert gone.isError
    async with httpx.AsyncClient(headers=AUTH) as client:
        rest = await client.get(f"{stack.cron.url}/api/jobs/{job_id}")
    assert rest.status_code == 404
    assert text_of(gone) == rest.json()["error"]["message"]


@pytest.mark.slow
async def test_every_tool_over_stdio(stack: Stack) -> None:
    async with stdio_session(stack.mcp_env()) as session:
        await exercise_every_tool(session, stack)


async def test_every_tool_over_streamable_http(stack: Stack) -> None:
    async with http_session(stack.mcp_url) as session:
        await exercise_every_tool(session, stack)


async def test_bad_arguments_give_the_gateways_message(stack: Stack) -> None:
    bad_job = {
        "name": "bad",
        "schedule": "61 * * * *",
        "payload": {"chatId": "6281234567890@c.us", "message": "x"},
    }
    async with httpx.AsyncClient(headers=AUTH) as client:
        rest = await client.post(f"{stack.cron.url}/api/jobs", json=bad_job | {"timezone": "UTC"})
    assert rest.status_code == 400
    async with http_session(stack.mcp_url) as session:
        result = await session.call_tool("cronjob_create", bad_job | {"timezone": "UTC"})
        assert result.isError
        assert text_of(result) == rest.json()["error"]["message"]
        assert text_of(result).startswith("schedule: invalid cron expression '61 * * * *'")

        result = await session.call_tool(
            "cronjob_create",
            {**bad_job, "schedule": None, "runAt": "2001-01-01T00:00:00Z"},
        )
        assert result.isError and "runAt" in text_of(result)

        result = await session.call_tool(
            "whatsapp_send_message", {"phoneNumber": "call me maybe", "message": "hi"}
        )
        assert result.isError and text_of(result).startswith("phoneNumber:")

        result = await session.call_tool("whatsapp_get_messages", {"phoneNumber": new_number()})
        assert result.isError and "no messages" in text_of(result)

        # the server keeps serving after every error
        assert "chats" in await call(session, "whatsapp_get_chats")


async def history(stack: Stack, chat_id: str) -> list[str]:
    async with httpx.AsyncClient(headers=AUTH) as client:
        response = await client.get(f"{stack.whatsapp.url}/api/messages/{chat_id}?limit=100")
    return [m["body"] for m in response.json()["data"]["messages"]]


async def test_same_idempotency_key_sends_once(stack: Stack) -> None:
    _, chat_id = await new_contact(stack, "Idem")
    async with http_session(stack.mcp_url) as session:
        args = {"phoneNumber": chat_id, "message": "only once", "idempotencyKey": "turn-1:a"}
        first = data_of(await session.call_tool("whatsapp_send_message", args))
        again = data_of(await session.call_tool("whatsapp_send_message", args))
        assert (first["duplicate"], again["duplicate"]) == (False, True)
        assert again["messageId"] == first["messageId"]

        # the engine's key travels in _meta and wins over whatever the model put in arguments
        meta = {"idempotencyKey": "evt-42:call-1"}
        text = {"phoneNumber": chat_id, "message": "from a replayed turn"}
        first = data_of(
            await session.call_tool(
                "whatsapp_send_message", text | {"idempotencyKey": "model-1"}, meta=meta
            )
        )
        again = data_of(
            await session.call_tool(
                "whatsapp_send_message", text | {"idempotencyKey": "model-2"}, meta=meta
            )
        )
        assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert await history(stack, chat_id) == ["from a replayed turn", "only once", "hello"]


async def test_same_idempotency_key_creates_one_job(stack: Stack) -> None:
    name = f"once {random.randrange(10**6)}"
    args = {
        "name": name,
        "runAt": "2035-01-01T09:00:00",
        "timezone": "Europe/Berlin",
        "payload": {"phoneNumber": "+6281234567890", "prompt": "wish a happy new year"},
    }
    async with http_session(stack.mcp_url) as session:
        meta = {"idempotencyKey": f"evt-{name}"}
        first = data_of(await session.call_tool("cronjob_create", args, meta=meta))
        again = data_of(await session.call_tool("cronjob_create", args, meta=meta))
        assert again["jobId"] == first["jobId"]
        assert first["runAt"] == "2035-01-01T09:00:00+01:00"
        jobs = await call(session, "cronjob_list", limit=100)
    assert [j["name"] for j in jobs["jobs"]].count(name) == 1


@pytest.mark.slow
async def test_stopped_gateway_is_a_tool_error_and_the_server_keeps_serving(
    stack: Stack,
) -> None:
    cron = stack.cron
    try:
        async with stdio_session(stack.mcp_env()) as session:
            assert "jobs" in await call(session, "cronjob_list")
            await cron.stop()
            down = await session.call_tool("cronjob_list", {})
            assert down.isError
            assert text_of(down).startswith(f"the cron service at {cron.url} is unreachable")
            assert "chats" in await call(session, "whatsapp_get_chats")
            await cron.start()
            assert "jobs" in await call(session, "cronjob_list")
    finally:
        if cron.proc is None:
            await cron.start()
