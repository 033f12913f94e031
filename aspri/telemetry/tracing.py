"""OpenTelemetry set-up and W3C trace-context propagation through stream entries.

Every event carries ``traceparent``; a producer injects the current span's context, a consumer
starts its span as a child of the producer's, so one trace follows an eventId across processes.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import msgspec
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

E = TypeVar("E")

_configured = False


def setup_tracing(service_name: str, exporter: SpanExporter | None = None) -> None:
    """Install a tracer provider once per process.

    Spans are exported over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (compose points it
    at the collector), or to ``exporter`` when given (tests). Otherwise spans are still created,
    so trace ids appear in logs and in events, but nothing is exported.
    """
    global _configured
    if _configured:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def current_traceparent() -> tuple[str | None, str | None]:
    """The ``traceparent`` / ``tracestate`` of the active span, if any."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate")


def inject_traceparent(event: E) -> E:
    """A copy of ``event`` (an Event struct) carrying the active span's trace context."""
    parent, state = current_traceparent()
    if parent is None:
        return event
    return msgspec.structs.replace(event, traceparent=parent, tracestate=state)  # type: ignore[type-var]


def context_from(traceparent: str | None, tracestate: str | None = None) -> context.Context:
    """The context a consumer span should be a child of (empty when the event has none)."""
    carrier: dict[str, Any] = {}
    if traceparent:
        carrier["traceparent"] = traceparent
    if tracestate:
        carrier["tracestate"] = tracestate
    return propagate.extract(carrier)
