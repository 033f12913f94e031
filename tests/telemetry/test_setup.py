"""Tracing is all or nothing per process: installed with an OTLP endpoint (http/protobuf or
grpc), absent without one; log lines carry the trace, the span and the event they belong to."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aspri.telemetry.logs import setup_logging
from aspri.telemetry.tracing import continued

PROBE = """
import json, httpx
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from aspri.telemetry import tracing
from aspri.api.common import _tracing_plugins
on = tracing.setup_tracing("aspri-probe")
print(json.dumps({
    "on": on,
    "provider": type(trace.get_tracer_provider()).__name__,
    "httpx": HTTPXClientInstrumentor().is_instrumented_by_opentelemetry,
    "plugins": len(_tracing_plugins()),
    "exporter": type(tracing.otlp_exporter()).__module__ if on else None,
}))
"""


def probe(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=clean | env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_without_an_endpoint_nothing_is_installed() -> None:
    assert probe() == {
        "on": False,
        "provider": "ProxyTracerProvider",
        "httpx": False,
        "plugins": 0,
        "exporter": None,
    }
    assert (
        probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318", OTEL_SDK_DISABLED="true")[
            "provider"
        ]
        == "ProxyTracerProvider"
    )


@pytest.mark.parametrize(
    ("protocol", "module"),
    [
        ("http/protobuf", "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
        ("grpc", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"),
    ],
)
def test_an_endpoint_installs_the_provider_the_instrumentation_and_the_exporter(
    protocol: str, module: str
) -> None:
    assert probe(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318", OTEL_EXPORTER_OTLP_PROTOCOL=protocol
    ) == {"on": True, "provider": "TracerProvider", "httpx": True, "plugins": 1, "exporter": module}


def test_an_unknown_protocol_stops_the_process_naming_the_variable() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env = clean | {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
    }
    done = subprocess.run(
        [sys.executable, "-m", "aspri.cli", "mcp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' is not supported" in done.stderr


def test_a_line_inside_a_span_carries_trace_span_and_event_as_json(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()  # not a terminal: auto means JSON
    monkeypatch.setattr(sys, "stderr", out)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging("aspri-test", "auto", "INFO")
    try:
        with (
            continued({"baggage": "aspri.event_id=ev-1"}),  # as an MCP _meta or HTTP headers
            trace.get_tracer("t").start_as_current_span("work") as span,
        ):
            logging.getLogger("aspri.test").info("inside")
            with trace.get_tracer("t").start_as_current_span("child"):
                pass
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    line = json.loads(out.getvalue().splitlines()[-1])
    context = span.get_span_context()
    assert line["msg"] == "inside" and line["eventId"] == "ev-1"
    assert line["traceId"] == format(context.trace_id, "032x")
    assert line["spanId"] == format(context.span_id, "016x")
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert finished["child"].attributes == {"aspri.event_id": "ev-1"}  # from the baggage
    assert finished["work"].attributes == {"aspri.event_id": "ev-1"}
