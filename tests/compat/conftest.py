"""The stacks the compatibility tests run against: the MCP stack (both gateways as processes,
the MCP server), and the engine stack (gateways, one MCP session, engine workers on demand)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aspri.streams.server import EmbeddedServer
from tests.agents.engine.stack import Stack, running_stack
from tests.helpers import database_url
from tests.mcp.test_tools import Stack as McpStack
from tests.mcp.test_tools import running_mcp_stack

COMPAT_DB = 4093
"""A database of the session's Valkey that the per-test numbering never reaches."""


@pytest.fixture(scope="module")
async def mcp_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[McpStack]:
    async with running_mcp_stack(tmp_path_factory.mktemp("compat-mcp")) as s:
        yield s


@pytest.fixture(scope="session")
async def stack(
    valkey_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    url = database_url(valkey_server, COMPAT_DB)
    async with running_stack(url, Path(tmp_path_factory.mktemp("compat-engine"))) as s:
        yield s
