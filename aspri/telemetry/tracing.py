"""OpenTelemetry for every process: one tracer provider, the OTLP exporter, trace-context
propagation through stream entries, MCP ``_meta`` and HTTP, and the inbound eventId on every span.

Tracing is installed only when an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). Without one nothing is installed — no provider, no
ASGI or httpx instrumentation, no baggage — because instrumentation costs about a millisecond
per turn even when nothing exports (measured for issue 16). The exporter, the sampler and the
batching read the standard variables: ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``, the
default, or ``grpc``), ``OTEL_TRACES_SAMPLER[_ARG]``, ``OTEL_BSP_*``.

The inbound event's id travels as W3C baggage (``aspri.event_id``) beside ``traceparent``;
a span processor copies it onto every span started under it, so Jaeger's tag search
``aspri.event_id=<id>`` finds the whole trace across processes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import msgspec
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from aspri.telemetry.logs import event_id_var

E = TypeVar("E")

EVENT_ID = "aspri.event_id"
"""The span attribute and baggage entry naming the inbound event a trace is about."""
PROTOCOLS = ("http/protobuf", "grpc")

_enabled = False


class TracingConfigError(ValueError):
    """An OTEL_* variable has a value this build cannot use."""


def enabled() -> bool:
    """True when this process records and exports spans."""
    return _enabled


def endpoint_configured() -> bool:
    """Whether the standard variables ask for OTLP trace export."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def otlp_exporter() -> SpanExporter:
    """The OTLP span exporter for ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``; the exporter
    itself reads the endpoint, headers, timeout and compression variables."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    raise TracingConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; use {' or '.join(PROTOCOLS)}"
    )


class EventIdSpans(SpanProcessor):
    """Tags every span with ``aspri.event_id`` from the baggage (or the handled event)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        event_id = baggage.get_baggage(EVENT_ID, parent_context) or event_id_var.get()
        if event_id:
            span.set_attribute(EVENT_ID, str(event_id))

    def on_end(self, span: ReadableSpan) -> None:
        return None


def setup_tracing(
    service_name: str, exporter: SpanExporter | None = None, *, force: bool = False
) -> bool:
    """Install tracing once per process when an endpoint is configured; return whether spans
    are recorded. Without one nothing is installed, unless ``force`` (tests: spans recorded for
    their own processors, or sent to ``exporter``).
    """
    global _enabled
    if _enabled:
        return True
    if exporter is None and not force:
        if not endpoint_configured():
            return False
        exporter = otlp_exporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(EventIdSpans())
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument()  # the MCP server's gateway calls, the model's API
    _enabled = True
    return True


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject(carrier: dict[str, Any]) -> dict[str, Any]:
    """Put ``traceparent``, ``tracestate`` and ``baggage`` of the active context in
    ``carrier`` (nothing when tracing is off); returns it."""
    if _enabled:
        propagate.inject(carrier)
    return carrier


def current_traceparent() -> tuple[str | None, str | None]:
    """The ``traceparent`` / ``tracestate`` of the active span, if any."""
    carrier = inject({})
    return carrier.get("traceparent"), carrier.get("tracestate")


def inject_traceparent(event: E) -> E:
    """A copy of ``event`` (an Event struct) carrying the active span's trace context."""
    parent, state = current_traceparent()
    if parent is None:
        return event
    return msgspec.structs.replace(event, traceparent=parent, tracestate=state)  # type: ignore[type-var]


def extract(carrier: Mapping[str, Any]) -> Context:
    """The context a carrier (HTTP headers, an MCP ``_meta``) continues: its trace context and
    baggage (an empty context when tracing is off or the carrier has none)."""
    if not _enabled:
        return Context()
    return propagate.extract({k: v for k, v in carrier.items() if isinstance(v, str)})


@contextlib.contextmanager
def continued(carrier: Mapping[str, Any]) -> Iterator[None]:
    """Run the block in the context ``carrier`` propagates: spans started inside are children
    of its trace and carry its baggage (``start_span(context=...)`` alone sets only the parent
    and would drop the baggage)."""
    if not _enabled:
        yield
        return
    token = context.attach(extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


def context_from(traceparent: str | None, tracestate: str | None = None) -> Context:
    """The context a consumer span should be a child of (empty when the event has none)."""
    carrier: dict[str, str] = {}
    if traceparent:
        carrier["traceparent"] = traceparent
    if tracestate:
        carrier["tracestate"] = tracestate
    return extract(carrier)


def with_event_id(event_id: str, ctx: Context | None = None) -> Context:
    """``ctx`` (the current context by default) carrying ``event_id`` as baggage."""
    return baggage.set_baggage(EVENT_ID, event_id, ctx)


def event_id_of(ctx: Context | None = None) -> str | None:
    """The inbound eventId this context is about, if any."""
    value = baggage.get_baggage(EVENT_ID, ctx) if _enabled else None
    return str(value) if value else event_id_var.get()


def tag_current_span(event_id: str) -> None:
    """Mark the span in progress (e.g. the inbound HTTP request) as being about ``event_id``."""
    if _enabled:
        trace.get_current_span().set_attribute(EVENT_ID, event_id)
