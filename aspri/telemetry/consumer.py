"""What the stream runtime records around one handled event: the consumer span, the eventId of
every log line, and the processing metrics.

The span follows the messaging conventions: kind CONSUMER, ``messaging.system=redis``, the
stream as ``messaging.destination.name``, the entry id as ``messaging.message.id``; it is a
child of the producer's context (so the trace is one tree in Jaeger) and links to it too (as
the conventions ask of a consumer). With tracing off only the metrics and the log field remain.
"""

from __future__ import annotations

import contextlib
import time
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from aspri.schemas import Event
from aspri.telemetry import instruments, tracing
from aspri.telemetry.logs import event_id_var

_tracer = trace.get_tracer("aspri.streams")

_Child = Any  # a metric's child for one label value (prometheus_client does not export its type)
_children: dict[str, tuple[_Child, _Child]] = {}


def _per_event(agent: str) -> tuple[_Child, _Child]:
    """The agent's processing-time and processed-count children, looked up once per agent:
    ``labels()`` takes a lock and builds a key, twice per event otherwise."""
    pair = _children.get(agent)
    if pair is None:
        pair = _children[agent] = (
            instruments.PROCESSING_SECONDS.labels(agent),
            instruments.EVENTS_PROCESSED.labels(agent),
        )
    return pair


class Handling:
    """One event in a handler: ``close`` it with the exception the handler raised, if any."""

    __slots__ = ("_began", "_ctx_token", "_id_token", "agent", "span")

    def __init__(self, agent: str, stream: str, group: str, event: Event[Any]) -> None:
        self.agent = agent
        self.span: trace.Span | None = None
        self._ctx_token: Token[Context] | None = None
        self._id_token: Token[str | None] = event_id_var.set(event.event_id)
        if event.deliveries > 1:
            instruments.EVENTS_REDELIVERED.labels(agent).inc()
        if tracing.enabled():
            producer = tracing.context_from(event.traceparent, event.tracestate)
            parent = trace.get_current_span(producer).get_span_context()
            ctx = tracing.with_event_id(event.event_id, producer)
            self.span = _tracer.start_span(
                f"{stream} process",
                context=ctx,
                kind=SpanKind.CONSUMER,
                links=[Link(parent)] if parent.is_valid else None,
                attributes={
                    "messaging.system": "redis",
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.destination.name": stream,
                    "messaging.consumer.group.name": group,
                    "messaging.message.id": event.entry_id or "",
                    "aspri.event_type": event.type,
                    "aspri.deliveries": event.deliveries,
                },
            )
            self._ctx_token = otel_context.attach(trace.set_span_in_context(self.span, ctx))
        self._began = time.perf_counter()

    def close(self, exc: BaseException | None) -> None:
        seconds, processed = _per_event(self.agent)
        seconds.observe(time.perf_counter() - self._began)
        if exc is None:
            processed.inc()
        else:
            instruments.EVENTS_FAILED.labels(self.agent).inc()
        if self.span is not None:
            if exc is not None:
                self.span.record_exception(exc)
                self.span.set_status(Status(StatusCode.ERROR, str(exc)))
            self.span.end()
        # A handler cancelled in another task's context cannot reset these; that is harmless.
        with contextlib.suppress(ValueError):
            if self._ctx_token is not None:
                otel_context.detach(self._ctx_token)
            event_id_var.reset(self._id_token)
