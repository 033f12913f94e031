"""Structured logs: one line per record, with service, eventId and trace id.

``LOG_FORMAT=json`` writes JSON lines (production, compose); ``text`` writes the same fields as
``key=value`` for people at a terminal; ``auto`` (the default) picks ``text`` when stderr is a
terminal and ``json`` otherwise. A line written inside a span carries ``traceId`` and ``spanId``;
a line written while an event is handled (or a request about one runs) carries ``eventId``.
Message bodies and tokens are never logged at info level.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import msgspec
from opentelemetry import baggage, trace

event_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)
"""The eventId being handled in this task; set by the stream runtime, read by every log line."""

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
"""Record attributes that are not extra fields; ``color_message`` is uvicorn's copy of the
message with ANSI colour codes, which have no place in a log file."""
_ENC = msgspec.json.Encoder()


def _fields(record: logging.LogRecord, service: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "service": service,
        "logger": record.name,
        "msg": record.getMessage(),
    }
    event_id = event_id_var.get() or baggage.get_baggage("aspri.event_id")
    if event_id:
        out["eventId"] = str(event_id)
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        out["traceId"] = format(span.trace_id, "032x")
        out["spanId"] = format(span.span_id, "016x")
    for key, value in vars(record).items():
        if key not in _RESERVED and not key.startswith("_"):
            out[key] = value
    if record.exc_info:
        out["exc"] = logging.Formatter().formatException(record.exc_info)
    return out


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        return _ENC.encode(_fields(record, self.service)).decode()


class TextFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        f = _fields(record, self.service)
        head = f"{f.pop('ts')} {f.pop('level'):7} {f.pop('service')} {f.pop('msg')}"
        f.pop("logger")
        exc = f.pop("exc", None)
        tail = " ".join(f"{k}={v}" for k, v in f.items())
        return f"{head} {tail}".rstrip() + (f"\n{exc}" if exc else "")


def setup_logging(service: str, fmt: str = "auto", level: str = "INFO") -> None:
    """Route every logger of the process through one structured handler on stderr."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "uvicorn.access", "mcp", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
