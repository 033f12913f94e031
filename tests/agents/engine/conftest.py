"""One stack (both gateways, one ``aspri mcp`` session) for all engine tests of a session.

Spawning the MCP server costs seconds, so it is shared; tests stay independent by using their
own chats (fresh numbers) and their own engine workers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aspri.streams.server import EmbeddedServer
from tests.agents.engine.stack import Stack, running_stack
from tests.helpers import database_url

STACK_DB = 4095
"""A database of the session's Valkey that the per-test numbering (counting up) never reaches."""


@pytest.fixture(scope="session")
async def stack(
    valkey_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    url = database_url(valkey_server, STACK_DB)
    async with running_stack(url, Path(tmp_path_factory.mktemp("engine"))) as s:
        yield s
