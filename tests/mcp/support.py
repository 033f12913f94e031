"""Helpers for the MCP tests: real servers on free ports, real MCP client sessions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import CallToolResult, TextContent

from aspri.config import Settings
from aspri.mcp.gateway import Gateways, new_http_client
from aspri.mcp.server import build_server
from aspri.streams.server import free_port
from tests.helpers import API_KEY, wait_until

ASPRI = str(Path(sys.executable).parent / "aspri")


@dataclass
class GatewayProcess:
    """An ``aspri whatsapp`` or ``aspri cron`` subprocess on a fixed port."""

    command: str
    port_variable: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = (
            os.environ
            | {"ASPRI_API_KEY": API_KEY}
            | self.env
            | {self.port_variable: str(self.port)}
        )
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                ASPRI, self.command, env=env, stdout=log, stderr=log
            )
        proc = self.proc
        async with httpx.AsyncClient() as client:

            async def healthy() -> bool:
                if proc.returncode is not None:
                    output = self.log_path.read_text()
                    raise AssertionError(f"aspri {self.command} exited: {output}")
                try:
                    return (await client.get(f"{self.url}/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(healthy, timeout=90, interval=0.05)  # a loaded machine starts slowly

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), 15)
        self.proc = None


@asynccontextmanager
async def memory_session(settings: Settings) -> AsyncIterator[ClientSession]:
    """A real client session over the SDK's in-memory transport to an in-process server."""
    async with new_http_client(settings) as http:
        server = build_server(settings, Gateways(http, settings))
        async with create_connected_server_and_client_session(server) as session:
            yield session


@asynccontextmanager
async def stdio_session(env: Mapping[str, str]) -> AsyncIterator[ClientSession]:
    """``aspri mcp`` spawned over stdio, as the engine does, with an initialized session."""
    params = StdioServerParameters(command=ASPRI, args=["mcp"], env=dict(env))
    async with (
        stdio_client(params, errlog=sys.stderr) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url: str, token: str | None = API_KEY) -> AsyncIterator[ClientSession]:
    """A streamable HTTP session to ``url`` (``.../mcp``), with a bearer token (the test API
    key unless another or None is given)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx.AsyncClient(headers=headers, timeout=30) as client,
        streamable_http_client(url, http_client=client) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def data_of(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful call (fails the test with the error text)."""
    assert not result.isError, text_of(result)
    assert result.structuredContent is not None
    # the text content carries the same JSON for clients without structured output
    assert json.loads(text_of(result)) == result.structuredContent
    return result.structuredContent
