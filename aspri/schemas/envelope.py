"""The envelope every stream entry carries, and its flat wire format.

A Redis stream entry is a flat map of strings. ``Event`` is the decoded, typed view of one entry;
``to_fields`` / ``from_fields`` convert between the two. Entries written by the original
services (no ``v``, no ``traceparent``) decode as version 1.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import msgspec
import uuid_utils

P = TypeVar("P")


def new_event_id() -> str:
    """A UUIDv7: unique and time-ordered, so ids sort like the log."""
    return str(uuid_utils.uuid7())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Event(msgspec.Struct, Generic[P], frozen=True, kw_only=True):
    """One event: the envelope fields plus the typed payload in ``data``.

    ``entry_id`` (the stream id) and ``stream`` are filled when the event was read from a log.
    """

    type: str
    data: P
    event_id: str = msgspec.field(default_factory=new_event_id)
    source: str = "aspri"
    timestamp: int = msgspec.field(default_factory=now_ms)
    v: int = 1
    traceparent: str | None = None
    tracestate: str | None = None
    causation_id: str | None = None
    entry_id: str | None = None
    stream: str | None = None
    deliveries: int = 0


class UndecodableEvent(Exception):
    """An entry that cannot become an Event; ``reason`` goes to the dead-letter stream."""

    def __init__(self, reason: str, fields: dict[str, str]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


def text(value: Any) -> str:
    """A field value as str (redis-py returns bytes unless decode_responses is set)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def fields_as_text(raw: Mapping[Any, Any]) -> dict[str, str]:
    """``raw`` with str keys and values. Runs for every entry read, so ``text`` is inlined."""
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else str(v)
        )
        for k, v in raw.items()
    }


def envelope_fields(event: Event[Any], data_json: bytes) -> dict[str, str | bytes]:
    """The flat wire map for ``event`` whose payload is already encoded as ``data_json``."""
    out: dict[str, str | bytes] = {
        "eventId": event.event_id,
        "type": event.type,
        "source": event.source,
        "timestamp": str(event.timestamp),
        "data": data_json,
        "v": str(event.v),
    }
    if event.traceparent:
        out["traceparent"] = event.traceparent
    if event.tracestate:
        out["tracestate"] = event.tracestate
    if event.causation_id:
        out["causationId"] = event.causation_id
    return out
