"""The async iterator an agent function loops over.

Asking for the next event acks the previous one: the handler body finished. Each event runs in a
consumer span that is a child of the producer's trace context, with ``eventId`` in every log line.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from aspri.schemas import Event, UndecodableEvent
from aspri.streams.spec import Delivery
from aspri.telemetry.logs import event_id_var
from aspri.telemetry.tracing import context_from

if TYPE_CHECKING:
    from aspri.streams.agent import AgentRunner

_tracer = trace.get_tracer("aspri.streams")


class EventStream:
    """The async iterator an agent function loops over; acks the previous event on ``next``."""

    def __init__(
        self,
        runner: AgentRunner,
        queue: asyncio.Queue[Delivery | None],
        retry: Delivery | None,
        deadline: asyncio.Timeout,
    ) -> None:
        self.runner = runner
        self.deadline = deadline
        self.queue = queue
        self.retry = retry
        self.current: Delivery | None = None
        self._span: trace.Span | None = None
        self._token: object | None = None

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event[Any]:
        runner = self.runner
        self.deadline.reschedule(None)  # the handler body is over: no time limit in here
        if self.current is not None:
            done, self.current = self.current, None
            done.deadline = None
            self.close_span(None)
            await runner.finish(done)
        if runner._stopping.is_set() and not runner.burst:
            raise StopAsyncIteration
        while True:
            if self.retry is not None:
                d, self.retry = self.retry, None
            else:
                item = await self.queue.get()
                if item is None:
                    raise StopAsyncIteration
                d = item
            try:
                event = runner.decode(d)
            except UndecodableEvent as exc:
                await runner._finish_entry(d, dead_letter=f"undecodable: {exc.reason}")
                continue
            self.current = d
            self._open_span(event)
            d.deadline = asyncio.get_running_loop().time() + runner.spec.timeout_s
            self.deadline.reschedule(d.deadline)
            return event

    def _open_span(self, event: Event[Any]) -> None:
        spec = self.runner.spec
        span = _tracer.start_span(
            f"{spec.stream} process",
            context=context_from(event.traceparent, event.tracestate),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "redis",
                "messaging.operation.type": "process",
                "messaging.destination.name": spec.stream,
                "messaging.consumer.group.name": spec.group,
                "messaging.message.id": event.entry_id or "",
                "aspri.event_id": event.event_id,
                "aspri.event_type": event.type,
                "aspri.deliveries": event.deliveries,
            },
        )
        self._span = span
        self._token = (
            otel_context.attach(trace.set_span_in_context(span)),
            event_id_var.set(event.event_id),
        )

    def close_span(self, exc: BaseException | None) -> None:
        if self._span is None:
            return
        if exc is not None:
            self._span.record_exception(exc)
            self._span.set_status(Status(StatusCode.ERROR, str(exc)))
        self._span.end()
        ctx_token, id_token = self._token  # type: ignore[misc]
        with contextlib.suppress(ValueError):
            otel_context.detach(ctx_token)
            event_id_var.reset(id_token)
        self._span = None
        self._token = None
