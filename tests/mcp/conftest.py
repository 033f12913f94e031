"""Fixtures for the MCP tests.

MCP client sessions are opened inside each test (``async with``), not in fixtures: the SDK's
anyio task groups must be left in the task that entered them.
"""

from __future__ import annotations

import pytest

from aspri.streams.server import free_port


@pytest.fixture
def nowhere() -> str:
    """A URL where nothing listens: a gateway that is down."""
    return f"http://127.0.0.1:{free_port()}"
