"""A test OTLP/HTTP trace receiver: what a collector gets, decoded from the wire.

The services export with their real OTLP exporter (protobuf over HTTP, ``/v1/traces``); this
receiver decodes each ``ExportTraceServiceRequest`` and keeps the spans as plain records, so a
test asserts on exactly what Jaeger would show.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, post
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    links: tuple[str, ...]
    """span ids this span links to"""
    error: bool


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


def decode(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    out: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = str(resource.get("service.name", ""))
        for scope in resource_spans.scope_spans:
            for s in scope.spans:
                out.append(
                    ReceivedSpan(
                        service=service,
                        name=s.name,
                        kind=KINDS.get(s.kind, str(s.kind)),
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        links=tuple(link.span_id.hex() for link in s.links),
                        error=s.status.code == 2,
                    )
                )
    return out


@dataclass
class Receiver:
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0

    def app(self) -> Litestar:
        @post("/v1/traces", status_code=200)
        async def traces(request: Request[Any, Any, Any]) -> Response[bytes]:
            body = await request.body()
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            self.spans.extend(decode(body))
            self.requests += 1
            return Response(
                ExportTraceServiceResponse().SerializeToString(),
                media_type="application/x-protobuf",
            )

        return Litestar([traces], logging_config=None)

    def tagged(self, event_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.attributes.get("aspri.event_id") == event_id]

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]


def ancestors(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """``span``'s parent, its parent, ... up to the root (within ``spans``)."""
    by_id = {s.span_id: s for s in spans}
    out: list[ReceivedSpan] = []
    current = by_id.get(span.parent_id)
    while current is not None:
        out.append(current)
        current = by_id.get(current.parent_id)
    return out
