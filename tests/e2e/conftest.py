"""The cross-part loop: both gateways, the scheduler, an engine worker and its MCP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aspri.streams.server import EmbeddedServer
from tests.agents.engine.stack import Stack, running_stack
from tests.helpers import database_url

E2E_DB = 4094
"""A database of the session's Valkey that the per-test numbering never reaches."""


@pytest.fixture(scope="session")
async def loop_stack(
    valkey_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    url = database_url(valkey_server, E2E_DB)
    async with running_stack(url, Path(tmp_path_factory.mktemp("e2e"))) as s:
        yield s
