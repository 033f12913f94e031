"""The versioned event registry: ``(type, v) → struct``, upcasters, and the codecs.

Readers always see the newest version of a payload, writers always write it. An old entry is
decoded to a plain dict, passed through the upcasters ``v(n) → v(n+1)`` and then converted to
the newest struct. Encoders and decoders are built once per type, not per event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from aspri.schemas.envelope import Event, UndecodableEvent, envelope_fields, fields_as_text
from aspri.schemas.events import CronTrigger, Payload, WhatsAppMessage
from aspri.schemas.media import placeholder

S = TypeVar("S", bound=Payload)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_ENCODER = msgspec.json.Encoder()
_DICT = msgspec.json.Decoder(dict[str, Any])


@dataclass
class _TypeInfo:
    struct: type[Payload]
    version: int
    decoder: msgspec.json.Decoder[Any]
    upcasters: dict[int, Upcaster] = field(default_factory=dict)


class Registry:
    """Knows every event type, its newest version and how to bring old versions up to it."""

    def __init__(self) -> None:
        self._types: dict[str, _TypeInfo] = {}
        self._by_struct: dict[type[Payload], str] = {}

    def register(self, type_name: str, struct: type[S], version: int = 1) -> type[S]:
        """Make ``struct`` the newest version ``version`` of ``type_name``."""
        old = self._types.get(type_name)
        upcasters = old.upcasters if old else {}
        if old is not None:
            del self._by_struct[old.struct]
        self._types[type_name] = _TypeInfo(struct, version, msgspec.json.Decoder(struct), upcasters)
        self._by_struct[struct] = type_name
        return struct

    def upcaster(self, type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function turning the dict of ``from_version`` into ``from_version + 1``."""

        def wrap(fn: Upcaster) -> Upcaster:
            self._types[type_name].upcasters[from_version] = fn
            return fn

        return wrap

    def type_of(self, struct: type[Payload]) -> str:
        try:
            return self._by_struct[struct]
        except KeyError:
            raise KeyError(f"{struct.__name__} is not a registered event payload") from None

    def version_of(self, type_name: str) -> int:
        return self._types[type_name].version

    def struct_of(self, type_name: str) -> type[Payload]:
        return self._types[type_name].struct

    def knows(self, type_name: str) -> bool:
        return type_name in self._types

    def event(self, data: S, **envelope: Any) -> Event[S]:
        """Wrap a payload in a new envelope of its registered type and newest version."""
        type_name = self.type_of(type(data))
        return Event(type=type_name, data=data, v=self._types[type_name].version, **envelope)

    def to_fields(self, event: Event[Any]) -> dict[str, str | bytes]:
        """The flat wire map of an event (payload encoded as JSON)."""
        return envelope_fields(event, _ENCODER.encode(event.data))

    def decode_data(self, type_name: str, version: int, data: bytes | str) -> Payload:
        """Decode a payload of any known version into the newest struct."""
        info = self._types.get(type_name)
        if info is None:
            raise ValueError(f"unknown event type {type_name!r}")
        if version == info.version:
            return info.decoder.decode(data)  # type: ignore[no-any-return]
        if version > info.version or version < 1:
            raise ValueError(f"{type_name} v{version} is not supported (newest is v{info.version})")
        raw = _DICT.decode(data)
        for step in range(version, info.version):
            upcast = info.upcasters.get(step)
            if upcast is None:
                raise ValueError(f"no upcaster for {type_name} v{step} -> v{step + 1}")
            raw = upcast(raw)
        return msgspec.convert(raw, info.struct)

    def from_fields(
        self,
        raw: Mapping[Any, Any],
        *,
        entry_id: str | None = None,
        stream: str | None = None,
        deliveries: int = 0,
    ) -> Event[Any]:
        """Decode one stream entry; raise UndecodableEvent with the reason if it cannot be.

        A redis-py reply (bytes keys and values) of a known type at its newest version takes a
        fast path (table replays spend most of their time here); anything else, and every entry
        the fast path cannot decode, takes the general path, which gives the reason.
        """
        if b"type" in raw:
            event = self._from_reply(raw, entry_id, stream, deliveries)
            if event is not None:
                return event
        fields = fields_as_text(raw)
        try:
            type_name = fields["type"]
            version = int(fields.get("v") or 1)
            data = self.decode_data(type_name, version, fields.get("data") or "{}")
            return Event(
                type=type_name,
                data=data,
                event_id=fields.get("eventId") or entry_id or "",
                source=fields.get("source", ""),
                timestamp=int(fields.get("timestamp") or 0),
                v=self._types[type_name].version,
                traceparent=fields.get("traceparent"),
                tracestate=fields.get("tracestate"),
                causation_id=fields.get("causationId"),
                entry_id=entry_id,
                stream=stream,
                deliveries=deliveries,
            )
        except KeyError as exc:
            raise UndecodableEvent(f"missing field {exc.args[0]}", fields) from None
        except (ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise UndecodableEvent(str(exc), fields) from None

    def _from_reply(
        self, raw: Mapping[Any, Any], entry_id: str | None, stream: str | None, deliveries: int
    ) -> Event[Any] | None:
        """``from_fields`` on bytes without a str copy of the entry: ``data`` goes to msgspec as
        is and only the envelope fields are decoded. None: leave it to the general path."""
        get = raw.get
        try:
            type_name = raw[b"type"].decode()
            info = self._types.get(type_name)
            if info is None or int(get(b"v") or 1) != info.version:
                return None
            event_id, source = get(b"eventId"), get(b"source")
            parent, state, cause = get(b"traceparent"), get(b"tracestate"), get(b"causationId")
            return Event(
                type=type_name,
                data=info.decoder.decode(get(b"data") or b"{}"),
                event_id=(event_id.decode() if event_id else "") or entry_id or "",
                source="" if source is None else source.decode(),
                timestamp=int(get(b"timestamp") or 0),
                v=info.version,
                traceparent=None if parent is None else parent.decode(),
                tracestate=None if state is None else state.decode(),
                causation_id=None if cause is None else cause.decode(),
                entry_id=entry_id,
                stream=stream,
                deliveries=deliveries,
            )
        except (AttributeError, TypeError, ValueError, msgspec.MsgspecError):
            return None


REGISTRY = Registry()
"""The process-wide registry with ASPRI's own event types."""

REGISTRY.register("whatsapp:message", WhatsAppMessage, version=2)
REGISTRY.register("cronjob:trigger", CronTrigger)


@REGISTRY.upcaster("whatsapp:message", 1)
def whatsapp_message_v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """v1's ``hasMedia`` flag becomes a ``media`` part of the message's type, with no bytes
    (v1 never stored any); a v1 entry without media is a v2 entry as it stands."""
    if raw.pop("hasMedia", False) is True:
        body = raw.get("body")
        raw["media"] = placeholder(
            str(raw.get("type") or ""), body if isinstance(body, str) else None
        )
    return raw
