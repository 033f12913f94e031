"""Outbound messages: idempotent, split to the channel's limit, paced, recorded once sent.

A send with an idempotency key keeps its progress in ``whatsapp:send:{key}``: the request's
fingerprint, each part sent (channel message id and event id) and finally the result. The same
key again returns the stored result without sending; a retry after a channel failure resumes at
the first part not yet sent, so a split message is never sent twice nor left half-recorded.
Each sent part is appended to ``chat:{chatId}`` as a ``fromMe`` message (never to
``whatsapp:messages``: the engine must not answer its own replies). Nothing is recorded for a
part the channel did not take.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from aspri.api.common import ApiError
from aspri.api.whatsapp.channel import Channel, ChannelError
from aspri.api.whatsapp.directory import Directory
from aspri.api.whatsapp.history import to_chat_message
from aspri.api.whatsapp.hub import Hub
from aspri.api.whatsapp.inbox import inbound_key
from aspri.api.whatsapp.pacing import Pacer
from aspri.api.whatsapp.splitting import split_text
from aspri.schemas import REGISTRY, WhatsAppMessage, new_event_id, now_ms
from aspri.schemas.api import SentMessage
from aspri.schemas.envelope import text
from aspri.streams import keys
from aspri.streams.log import EventLog
from aspri.telemetry.instruments import SEND_FAILURES, SENDS
from aspri.telemetry.tracing import EVENT_ID, event_id_of, tracer

log = logging.getLogger(__name__)
_tracer = tracer("aspri.whatsapp")

OWN_ID = "me"
"""``from`` of the messages the assistant sends (the account's own number is not always known)."""

LOCK_MS = 120_000
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class _Part(msgspec.Struct, kw_only=True):
    message_id: str
    event_id: str


_PART = msgspec.json.Decoder(_Part)
_SENT = msgspec.json.Decoder(SentMessage)
_ENC = msgspec.json.Encoder()


def fingerprint(chat_id: str, message: str) -> str:
    return hashlib.sha256(f"{chat_id}\0{message}".encode()).hexdigest()[:32]


class Outbox:
    """Sends text through the channel and records what was sent."""

    def __init__(
        self,
        redis: Redis,
        log_: EventLog,
        channel: Channel,
        pacer: Pacer,
        directory: Directory,
        hub: Hub,
        *,
        ttl_s: int,
    ) -> None:
        self.redis = redis
        self.log = log_
        self.channel = channel
        self.pacer = pacer
        self.directory = directory
        self.hub = hub
        self.ttl_s = ttl_s
        self._local: dict[str, tuple[asyncio.Lock, int]] = {}
        self._unlock = redis.register_script(_UNLOCK)

    async def send(
        self, chat_id: str, message: str, *, key: str | None, causation_id: str | None
    ) -> SentMessage:
        """Send ``message`` once per ``key``; raise ApiError 409/502/503 when it cannot."""
        key = key or f"auto:{new_event_id()}"
        state_key = keys.whatsapp_send(key)
        with _tracer.start_as_current_span("whatsapp send", kind=SpanKind.CLIENT) as span:
            span.set_attribute("messaging.system", "whatsapp")
            span.set_attribute("aspri.channel", self.channel.name)
            async with self._exclusive(key):
                state = {text(k): v for k, v in (await self.redis.hgetall(state_key)).items()}
                request = fingerprint(chat_id, message)
                if "request" in state and text(state["request"]) != request:
                    raise ApiError(
                        409,
                        "idempotency_key_reused",
                        "this idempotency key was used for a different message or chat",
                    )
                if "result" in state:
                    sent = msgspec.structs.replace(_SENT.decode(state["result"]), duplicate=True)
                    span.set_attribute("aspri.duplicate", True)
                    log.info(
                        "send already done", extra={"chatId": chat_id, "eventId": sent.event_id}
                    )
                    return sent
                await self._save(state_key, {"request": request})
                parts = split_text(message, self.channel.max_text)
                span.set_attribute("aspri.parts", len(parts))
                done: list[_Part] = []
                for index, body in enumerate(parts):
                    prior = state.get(f"part:{index}")
                    if prior is not None:
                        done.append(_PART.decode(prior))
                        continue
                    part = await self._send_part(
                        chat_id, body, key, index, len(parts), causation_id
                    )
                    await self._save(state_key, {f"part:{index}": _ENC.encode(part)})
                    done.append(part)
                sent = SentMessage(
                    message_id=done[0].message_id,
                    chat_id=chat_id,
                    event_id=done[0].event_id,
                    parts=len(done),
                    message_ids=[p.message_id for p in done],
                )
                await self._save(state_key, {"result": _ENC.encode(sent)})
                span.set_attribute("aspri.sent_event_id", sent.event_id)
                if event_id_of() is None:  # a send of its own (REST), not part of a turn
                    span.set_attribute(EVENT_ID, sent.event_id)
                return sent

    async def _send_part(
        self, chat_id: str, body: str, key: str, index: int, total: int, causation_id: str | None
    ) -> _Part:
        waited = await self.pacer.wait_turn(chat_id)
        channel = self.channel.name
        try:
            with _tracer.start_as_current_span(
                f"{channel} send_text",
                kind=SpanKind.CLIENT,
                attributes={"messaging.system": "whatsapp", "aspri.channel": channel},
                record_exception=False,
            ):
                message_id = await self.channel.send_text(chat_id, body)
            SENDS.labels(channel).inc()
        except ChannelError as exc:
            SEND_FAILURES.labels(channel).inc()
            trace.get_current_span().record_exception(exc)
            log.warning(
                "channel refused a message",
                extra={"chatId": chat_id, "part": index, "parts": total, "error": str(exc)},
            )
            sent_note = f" ({index} of {total} parts were sent; retry with the same key)"
            code = "channel_unavailable" if exc.status == 503 else "channel_error"
            raise ApiError(exc.status, code, f"{exc}{sent_note if index else ''}") from exc
        payload = WhatsAppMessage(
            id=message_id,
            chat_id=chat_id,
            from_=OWN_ID,
            body=body,
            timestamp=now_ms(),
            is_group=chat_id.endswith("@g.us"),
            from_me=True,
        )
        event = REGISTRY.event(payload, source="whatsapp", causation_id=causation_id)
        stream = keys.chat(chat_id)
        out_key = f"whatsapp:out:{key}:{index}"
        appended = await self.log.append(stream, event, idempotency_key=out_key)
        # The channel may echo our own message back as inbound (WhatsApp Web does): mark its id
        # as recorded so the echo is a duplicate, not a second copy in the chat.
        await self.redis.set(
            keys.idempotency(inbound_key(message_id)), appended.id, ex=self.ttl_s, nx=True
        )
        event_id = event.event_id
        if appended.duplicate:
            first = await self.log.read(stream, appended.id, appended.id)
            event_id = first[0].event_id if first else event_id
        else:
            self.directory.mark(chat_id)
            recorded = msgspec.structs.replace(event, entry_id=appended.id, stream=stream)
            if self.hub.subscribers:
                self.hub.publish(to_chat_message(recorded))
        log.info(
            "message sent",
            extra={
                "chatId": chat_id,
                "eventId": event_id,
                "messageId": message_id,
                "part": index,
                "parts": total,
                "pacedSeconds": round(waited, 3),
            },
        )
        return _Part(message_id=message_id, event_id=event_id)

    async def _save(self, state_key: str, fields: Mapping[Any, Any]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(state_key, mapping=fields)
        pipe.expire(state_key, self.ttl_s)
        await pipe.execute()

    @asynccontextmanager
    async def _exclusive(self, key: str) -> AsyncIterator[None]:
        """One send per key at a time: later callers in this process wait for the first; a
        caller in another process gets 409 while it runs."""
        lock, users = self._local.get(key, (asyncio.Lock(), 0))
        self._local[key] = (lock, users + 1)
        try:
            async with lock:
                token = new_event_id()
                name = keys.whatsapp_send_lock(key)
                if not await self.redis.set(name, token, nx=True, px=LOCK_MS):
                    raise ApiError(
                        409, "send_in_progress", "a send with this idempotency key is in progress"
                    )
                try:
                    yield
                finally:
                    await self._unlock(keys=[name], args=[token])
        finally:
            lock, users = self._local[key]
            if users == 1:
                del self._local[key]
            else:
                self._local[key] = (lock, users - 1)
