"""Delivery statuses of outbound messages: recorded in the chat, folded to the latest one.

Every report (``whatsapp:status``, see ``aspri.schemas.status``) is appended to
``chat:{chatId}`` once per message and status (a webhook Meta delivers twice records nothing
new), and in the same Lua step the message's entry in ``whatsapp:status:{chatId}`` moves to the
report's status if that is further along (``RANK``): the history reads the latest status of a
page's messages with one HMGET instead of replaying the chat. The hash is a projection: the
events are the truth, and a report arriving out of order still leaves the furthest status.

A report about a message this gateway sent names that message's event as its ``causationId``,
and its span links to the send's trace, so a reply's trace leads to what became of it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import msgspec
from opentelemetry import trace
from opentelemetry.trace import Link
from redis.asyncio import Redis

from aspri.api.whatsapp.hub import Hub
from aspri.schemas import REGISTRY, Event, now_ms
from aspri.schemas.api import StatusUpdate
from aspri.schemas.envelope import text
from aspri.schemas.status import WhatsAppStatus, rank
from aspri.streams import keys
from aspri.streams.log import EventLog, key_fields
from aspri.telemetry.tracing import EVENT_ID, context_from, inject_traceparent, tracer

log = logging.getLogger(__name__)
_tracer = tracer("aspri.whatsapp")

_RECORD = """
if KEYS[1] ~= '' then
  local prior = redis.call('GET', KEYS[1])
  if prior then return {'dup', prior, 0} end
end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
if KEYS[1] ~= '' then redis.call('SET', KEYS[1], id, 'EX', ARGV[1]) end
local new = tonumber(ARGV[3])
if new < 0 or ARGV[2] == '' then return {'ok', id, 0} end
local cur = redis.call('HGET', KEYS[3], ARGV[2])
if cur and tonumber(string.match(cur, '^(%-?%d+)|')) >= new then return {'ok', id, 0} end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3] .. '|' .. ARGV[4])
return {'ok', id, 1}
"""
"""KEYS: idempotency key ('' for none), chat stream, status hash; ARGV: ttl, message id ('' for
a refused send: not folded), rank, latest (JSON), the event's fields."""


class Latest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A message's folded status as the hash keeps it (after ``<rank>|``)."""

    status: str
    error: str | None = None


_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_LATEST = msgspec.json.Decoder(Latest)
_ENC = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class StatusRecorded:
    """Where a report landed; ``changed``: it moved the message's latest status."""

    entry_id: str
    event_id: str
    """The report's eventId (when ``duplicate``, of this attempt, which wrote nothing)."""
    duplicate: bool
    changed: bool


def error_text(status: WhatsAppStatus) -> str | None:
    """``<code>: <title>`` of a failed report (None when it names no error)."""
    parts = [p for p in (status.error_code, status.error_title) if p]
    return ": ".join(parts) or None


def status_key(status: WhatsAppStatus) -> str:
    """One report per message and status (per refused send for a message that has no id)."""
    subject = status.message_id or f"send:{status.send_key or ''}"
    return f"whatsapp:status:{status.chat_id}:{subject}:{status.status}"


class Statuses:
    """Records delivery statuses and tells open web chat pages when one moved."""

    def __init__(self, redis: Redis, log_: EventLog, hub: Hub | None = None) -> None:
        self.redis = redis
        self.log = log_
        self.hub = hub
        self._record = redis.register_script(_RECORD)

    async def record(
        self, status: WhatsAppStatus, *, causation_id: str | None = None
    ) -> StatusRecorded:
        """Append ``status`` to its chat once and fold it into the message's latest status."""
        sent = await self._sent(status)
        links = []
        if sent is not None and sent.traceparent:
            context = context_from(sent.traceparent, sent.tracestate)
            sent_span = trace.get_current_span(context).get_span_context()
            if sent_span.is_valid:
                links.append(Link(sent_span))
        attributes = {"messaging.message.id": status.message_id, "aspri.status": status.status}
        with _tracer.start_as_current_span(
            "whatsapp status", links=links, attributes=attributes
        ) as span:
            if sent is not None:
                span.set_attribute(EVENT_ID, sent.event_id)
                causation_id = causation_id or sent.event_id
            return await self._record_once(status, causation_id)

    async def _sent(self, status: WhatsAppStatus) -> Event[Any] | None:
        """The ``fromMe`` message the report is about, found through the marker the outbox
        set on its message id (``inbox.inbound_key``); None for an unknown id."""
        if not status.message_id:
            return None
        marker = await self.redis.get(keys.idempotency(f"whatsapp:in:{status.message_id}"))
        # The outbox's marker holds the chat entry's id; an inbound message's holds the ids of
        # its appends, the chat's last.
        entry = text(marker).rsplit(" ", 1)[-1] if marker else ""
        if not _ENTRY_ID.match(entry):
            return None
        found = await self.log.read(keys.chat(status.chat_id), entry, entry)
        sent = found[0] if found and found[0].type == "whatsapp:message" else None
        return sent if sent is not None and sent.data.from_me else None

    async def _record_once(
        self, status: WhatsAppStatus, causation_id: str | None
    ) -> StatusRecorded:
        if not status.timestamp:
            status = msgspec.structs.replace(status, timestamp=now_ms())
        event = inject_traceparent(
            REGISTRY.event(status, source="whatsapp", causation_id=causation_id)
        )
        flat: list[str | bytes] = []
        for name, value in (REGISTRY.to_fields(event) | key_fields(event)).items():
            flat += [name, value]
        latest = _ENC.encode(Latest(status=status.status, error=error_text(status)))
        outcome, entry_id, changed = await self._record(
            keys=[
                keys.idempotency(status_key(status)),
                keys.chat(status.chat_id),
                keys.whatsapp_statuses(status.chat_id),
            ],
            args=[
                self.log.idempotency_ttl_s,
                status.message_id,
                rank(status.status),
                latest,
                *flat,
            ],
        )
        recorded = StatusRecorded(
            text(entry_id), event.event_id, text(outcome) == "dup", bool(int(changed))
        )
        log.info(
            "message status recorded",
            extra={
                "chatId": status.chat_id,
                "messageId": status.message_id,
                "status": status.status,
                "duplicate": recorded.duplicate,
                "changed": recorded.changed,
            },
        )
        if recorded.changed and self.hub is not None and self.hub.subscribers:
            self.hub.publish(
                StatusUpdate(
                    chat_id=status.chat_id,
                    message_id=status.message_id,
                    status=status.status,
                    status_error=error_text(status),
                )
            )
        return recorded


async def latest(redis: Redis, chat_id: str, message_ids: list[str]) -> dict[str, Latest]:
    """The folded status of each of these outbound messages that has one."""
    if not message_ids:
        return {}
    raw = await redis.hmget(keys.whatsapp_statuses(chat_id), message_ids)
    return {
        message_id: _LATEST.decode(text(value).partition("|")[2])
        for message_id, value in zip(message_ids, raw, strict=True)
        if value is not None
    }


async def record_status(
    log_: EventLog, status: WhatsAppStatus, *, hub: Hub | None = None
) -> StatusRecorded:
    """Record one report without a gateway at hand (a channel engine's own process, tests)."""
    return await Statuses(log_.redis, log_, hub).record(status)
