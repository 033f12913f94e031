"""Fixtures for the MCP tests.

MCP client sessions are opened inside each test (``async with``), not in fixtures: the SDK's
anyio task groups must be left in the task that entered them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aspri.streams.server import free_port
from aspri.telemetry.tracing import setup_tracing


@pytest.fixture
def nowhere() -> str:
    """A URL where nothing listens: a gateway that is down."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans finished during the test (adds a processor to the process's SDK provider)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        setup_tracing("aspri-tests")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "another tracer provider was installed"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()
