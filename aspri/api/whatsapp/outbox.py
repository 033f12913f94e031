"""Outbound messages: idempotent, split to the channel's limit, paced, recorded once sent.

A send with an idempotency key keeps its progress in ``whatsapp:send:{key}``: the request's
fingerprint, each part sent (channel message id and event id) and finally the result. The same
key again returns the stored result without sending; a retry after a channel failure resumes at
the first part not yet sent, so a split message is never sent twice nor left half-recorded.
Each sent part is appended to ``chat:{chatId}`` as a ``fromMe`` message (never to
``whatsapp:messages``: the engine must not answer its own replies). A part the channel did not
take is no message; when the channel refused it for good (``ChannelError.permanent``: a Graph
API error that is not a rate limit or an outage, the 24-hour window closed) it is recorded as a
``failed`` status with its text and the error, once per send and part, and each owner is told
once per cause in their own chat (a turn's reply and its apology are one failure; a notice that
fails in turn is recorded, never reported again).

A send may ask for a voice note (``voice``): the text is spoken (``aspri.media.speech``), stored
in the media store and sent as one voice note, recorded with the text as its body and the note
as its media, so history, memory and search read the text. When it cannot be spoken (no speech
service, a failure, an engine that sends no voice notes, a channel that refused it) the text
goes out as usual and the result's ``voiceError`` says why.
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
from aspri.api.whatsapp.quoting import Quotes
from aspri.api.whatsapp.splitting import split_text
from aspri.api.whatsapp.statuses import Statuses
from aspri.media.speech import NOT_CONFIGURED, Speech, SpeechError
from aspri.schemas import REGISTRY, WhatsAppMessage, chatid, new_event_id, now_ms
from aspri.schemas.api import SentMessage
from aspri.schemas.envelope import text
from aspri.schemas.media import Voice
from aspri.schemas.status import FAILED, OUTSIDE_WINDOW, WhatsAppStatus
from aspri.streams import keys
from aspri.streams.log import EventLog, key_fields
from aspri.telemetry.instruments import SEND_FAILURES, SENDS
from aspri.telemetry.tracing import EVENT_ID, event_id_of, inject_traceparent, tracer

log = logging.getLogger(__name__)
_tracer = tracer("aspri.whatsapp")

OWN_ID = "me"
"""``from`` of the messages the assistant sends (the account's own number is not always known)."""

LOCK_MS = 120_000

FAILURE_NOTICE = "I could not send a message to {to}: {reason}. The message was:\n{body}"
"""What an owner reads when the channel refused a message for good."""
NOTICE_PREVIEW = 500

_BEGIN = """
local state = redis.call('HGETALL', KEYS[1])
local request, result
for i = 1, #state, 2 do
  if state[i] == 'request' then request = state[i + 1] end
  if state[i] == 'result' then result = state[i + 1] end
end
if request and request ~= ARGV[1] then return {'reused'} end
if result then return {'done', result} end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return {'busy'} end
if not request then
  redis.call('HSET', KEYS[1], 'request', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return {'go', state}
"""
"""One round trip before the channel is called: a key reused for another request (409), an
earlier result (returned as is), a send in progress in another process (409), or the lock taken
and the parts already sent (``go``). KEYS: state, lock; ARGV: fingerprint, token, lock ms, ttl."""

_FINISH = """
local prior = redis.call('GET', KEYS[1])
if prior then
  redis.call('SET', KEYS[3], prior, 'EX', ARGV[2], 'NX')
  return {'dup', prior}
end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('SET', KEYS[1], id, 'EX', ARGV[1])
redis.call('SET', KEYS[3], id, 'EX', ARGV[2], 'NX')
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[4], 'result', ARGV[5])
else
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
end
redis.call('EXPIRE', KEYS[4], ARGV[2])
if ARGV[5] ~= '' and redis.call('GET', KEYS[5]) == ARGV[6] then redis.call('DEL', KEYS[5]) end
return {'ok', id}
"""
"""One round trip after the channel took a part, all or nothing: the ``fromMe`` event appended to
the chat once per idempotency key, the echo marker, the part recorded and, with the last part,
the result recorded and the lock released. A part appended before a crash (its key already
taken) comes back as ``dup`` with nothing written but the marker: the caller records it.
KEYS: append key, chat stream, echo marker, state, lock; ARGV: append ttl, ttl, part field,
part, result (empty before the last part), token, the event's fields."""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class _Part(msgspec.Struct, kw_only=True):
    message_id: str
    event_id: str
    voice: bool = False
    """The part is the whole text as a voice note."""


class _Send:
    """One send in progress: its keys, its lock token, whether the lock was released."""

    def __init__(self, key: str, chat_id: str, token: str, report: bool = True) -> None:
        self.key = key
        self.report = report
        self.chat_id = chat_id
        self.token = token
        self.state_key = keys.whatsapp_send(key)
        self.lock_key = keys.whatsapp_send_lock(key)
        self.finished = False
        """The last part's ``_FINISH`` recorded the result and released the lock."""
        self.voice_error: str | None = None
        """Why a voice note asked for went out as text."""
        self.quoted: str | None = None
        """The message the first part quotes (``REPLY_QUOTE``)."""


_PART = msgspec.json.Decoder(_Part)
_SENT = msgspec.json.Decoder(SentMessage)
_ENC = msgspec.json.Encoder()


def fingerprint(chat_id: str, message: str, voice: bool = False) -> str:
    spoken = "\0voice" if voice else ""
    return hashlib.sha256(f"{chat_id}\0{message}{spoken}".encode()).hexdigest()[:32]


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
        statuses: Statuses | None = None,
        owners: tuple[str, ...] = (),
        speech: Speech | None = None,
        quotes: Quotes | None = None,
    ) -> None:
        self.redis = redis
        self.quotes = quotes
        """Decides whether a reply quotes the message it answers (``REPLY_QUOTE``)."""
        self.statuses = statuses
        self.owners = owners
        """Chat ids told when a message could not be sent (``OWNER_NUMBERS``)."""
        self.log = log_
        self.channel = channel
        self.pacer = pacer
        self.directory = directory
        self.hub = hub
        self.ttl_s = ttl_s
        self.speech = speech
        self._local: dict[str, tuple[asyncio.Lock, int]] = {}
        self._begin = redis.register_script(_BEGIN)
        self._finish = redis.register_script(_FINISH)
        self._unlock = redis.register_script(_UNLOCK)

    async def send(
        self,
        chat_id: str,
        message: str,
        *,
        key: str | None,
        causation_id: str | None,
        report: bool = True,
        voice: bool = False,
        reply_to: str | None = None,
    ) -> SentMessage:
        """Send ``message`` (as a voice note when ``voice``) once per ``key``; raise ApiError
        409/422/502/503 when it cannot (422: the channel refused it for good).

        Two round trips to Valkey for a message of one part (``_BEGIN``, ``_FINISH``).
        ``report``: tell the owners when the channel refuses it for good (not for the notice
        that does so, which would loop). ``reply_to``: the channel's id of the message this one
        answers; the first part quotes it when ``REPLY_QUOTE`` says so."""
        key = key or f"auto:{new_event_id()}"
        with _tracer.start_as_current_span("whatsapp send", kind=SpanKind.CLIENT) as span:
            span.set_attribute("messaging.system", "whatsapp")
            span.set_attribute("aspri.channel", self.channel.name)
            async with self._one_at_a_time(key):
                send = _Send(key, chat_id, new_event_id(), report)
                reply = await self._begin(
                    keys=[send.state_key, send.lock_key],
                    args=[fingerprint(chat_id, message, voice), send.token, LOCK_MS, self.ttl_s],
                )
                status = text(reply[0])
                if status == "reused":
                    raise ApiError(
                        409,
                        "idempotency_key_reused",
                        "this idempotency key was used for a different message or chat",
                    )
                if status == "busy":
                    raise ApiError(
                        409, "send_in_progress", "a send with this idempotency key is in progress"
                    )
                if status == "done":
                    sent = msgspec.structs.replace(_SENT.decode(reply[1]), duplicate=True)
                    span.set_attribute("aspri.duplicate", True)
                    log.info(
                        "send already done", extra={"chatId": chat_id, "eventId": sent.event_id}
                    )
                    return sent
                flat = reply[1]
                state = {text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
                if reply_to and self.quotes is not None:
                    send.quoted = await self.quotes.quoted(chat_id, reply_to)
                try:
                    sent = await self._send_parts(send, message, state, causation_id, voice)
                finally:
                    if not send.finished:
                        await self._unlock(keys=[send.lock_key], args=[send.token])
                span.set_attribute("aspri.parts", sent.parts)
                span.set_attribute("aspri.sent_event_id", sent.event_id)
                if event_id_of() is None:  # a send of its own (REST), not part of a turn
                    span.set_attribute(EVENT_ID, sent.event_id)
                return sent

    async def _send_parts(
        self,
        send: _Send,
        message: str,
        state: dict[str, Any],
        causation_id: str | None,
        voice: bool,
    ) -> SentMessage:
        """Send the parts not sent yet; the last one's ``_FINISH`` records the result."""
        first = state.get("part:0")
        done: list[_Part] = []
        parts = split_text(message, self.channel.max_text)
        if voice and first is not None and _PART.decode(first).voice:
            done, parts = [_PART.decode(first)], []  # sent before a crash
        elif voice and first is None:
            spoken = await self._send_voice(send, message, causation_id)
            if spoken is not None:
                done, parts = [spoken], []
        for index, body in enumerate(parts):
            prior = state.get(f"part:{index}")
            if prior is not None:
                done.append(_PART.decode(prior))
                continue
            done.append(await self._send_part(send, body, index, done, len(parts), causation_id))
        sent = _result(send, done)
        if not send.finished:  # the last part was recorded before (a crash, a resumed send)
            await self._save(send.state_key, {"result": _ENC.encode(sent)})
        return sent

    async def _send_voice(
        self, send: _Send, message: str, causation_id: str | None
    ) -> _Part | None:
        """The text sent as one voice note; None (``send.voice_error`` saying why) to send it
        as text instead."""
        if not self.channel.voice_out:
            send.voice_error = f"the {self.channel.name} engine cannot send voice notes yet"
        elif self.speech is None:
            send.voice_error = NOT_CONFIGURED
        else:
            try:
                note = await self.speech.speak(message)
            except SpeechError as exc:
                send.voice_error = str(exc)
            else:
                try:
                    part = await self._send_part(send, message, 0, [], 1, causation_id, note)
                except ApiError as exc:
                    if exc.status_code not in (422, 502):  # not connected: text fails as well
                        raise
                    send.voice_error = f"the channel refused the voice note: {exc.detail}"
                else:
                    return part
        log.warning(
            "voice note not sent, sending text",
            extra={"chatId": send.chat_id, "reason": send.voice_error},
        )
        return None

    async def _send_part(
        self,
        send: _Send,
        body: str,
        index: int,
        done: list[_Part],
        total: int,
        causation_id: str | None,
        voice: Voice | None = None,
    ) -> _Part:
        chat_id = send.chat_id
        waited = await self.pacer.wait_turn(chat_id)
        channel = self.channel.name
        try:
            with _tracer.start_as_current_span(
                f"{channel} send_text",
                kind=SpanKind.CLIENT,
                attributes={"messaging.system": "whatsapp", "aspri.channel": channel},
                record_exception=False,
            ):
                quoted = send.quoted if index == 0 and voice is None else None
                if quoted is not None:
                    message_id = await self.channel.send_reply(chat_id, body, quoted)
                elif voice is None:
                    message_id = await self.channel.send_text(chat_id, body)
                else:
                    message_id = await self._channel_voice(chat_id, voice)
            SENDS.labels(channel).inc()
        except ChannelError as exc:
            SEND_FAILURES.labels(channel).inc()
            trace.get_current_span().record_exception(exc)
            log.warning(
                "channel refused a message",
                extra={"chatId": chat_id, "part": index, "parts": total, "error": str(exc)},
            )
            if exc.permanent and voice is None:  # a refused voice note goes out as text
                await self._refused(send, body, index, exc, causation_id)
            sent_note = f" ({index} of {total} parts were sent; retry with the same key)"
            status = exc.status
            code = "channel_unavailable" if status == 503 else "channel_error"
            if exc.permanent:  # a 4xx: sending it again cannot succeed, so no caller retries
                status = 422
                code = "outside_window" if exc.title == OUTSIDE_WINDOW else "channel_refused"
            raise ApiError(status, code, f"{exc}{sent_note if index else ''}") from exc
        payload = WhatsAppMessage(
            id=message_id,
            chat_id=chat_id,
            from_=OWN_ID,
            body=body,
            type="chat" if voice is None else "ptt",
            media=voice,
            timestamp=now_ms(),
            is_group=chat_id.endswith("@g.us"),
            from_me=True,
            quoted_message_id=send.quoted if index == 0 and voice is None else None,
        )
        event = inject_traceparent(
            REGISTRY.event(payload, source="whatsapp", causation_id=causation_id)
        )
        stream = keys.chat(chat_id)
        part = _Part(message_id=message_id, event_id=event.event_id, voice=voice is not None)
        last = index == total - 1
        result = _ENC.encode(_result(send, [*done, part])) if last else b""
        flat: list[str | bytes] = []
        for name, value in (REGISTRY.to_fields(event) | key_fields(event)).items():
            flat += [name, value]
        # The channel may echo our own message back as inbound (WhatsApp Web does): the marker
        # on its id makes the echo a duplicate, not a second copy in the chat.
        status, entry_id = await self._finish(
            keys=[
                keys.idempotency(f"whatsapp:out:{send.key}:{index}"),
                stream,
                keys.idempotency(inbound_key(message_id)),
                send.state_key,
                send.lock_key,
            ],
            args=[
                self.log.idempotency_ttl_s,
                self.ttl_s,
                f"part:{index}",
                _ENC.encode(part),
                result,
                send.token,
                *flat,
            ],
        )
        entry_id = text(entry_id)
        if text(status) == "dup":  # appended before a crash: the part is the first event
            first = await self.log.read(stream, entry_id, entry_id)
            part = _Part(
                message_id=message_id,
                event_id=first[0].event_id if first else part.event_id,
                voice=part.voice,
            )
            await self._save(send.state_key, {f"part:{index}": _ENC.encode(part)})
        else:
            send.finished = last
            self.directory.mark(chat_id)
            recorded = msgspec.structs.replace(event, entry_id=entry_id, stream=stream)
            if self.hub.subscribers:
                self.hub.publish(to_chat_message(recorded))
        log.info(
            "message sent",
            extra={
                "chatId": chat_id,
                "eventId": part.event_id,
                "messageId": message_id,
                "part": index,
                "parts": total,
                "pacedSeconds": round(waited, 3),
            },
        )
        return part

    async def _refused(
        self, send: _Send, body: str, index: int, exc: ChannelError, causation_id: str | None
    ) -> None:
        """Record a part the channel refused for good as ``failed``, and tell the owners once.

        Never raises: the caller gets the channel's error either way."""
        if self.statuses is None:
            return
        failed = WhatsAppStatus(
            chat_id=send.chat_id,
            status=FAILED,
            channel=self.channel.name,
            error_code=exc.code,
            error_title=exc.title or str(exc)[:2000],
            error_detail=str(exc)[:2000],
            body=body,
            send_key=f"{send.key}:{index}",
        )
        try:
            recorded = await self.statuses.record(failed, causation_id=causation_id)
        except Exception as error:  # the caller still learns of the failure
            log.error("failed send not recorded", extra={"error": repr(error)})
            return
        if recorded.duplicate or not send.report:
            return
        preview = body if len(body) <= NOTICE_PREVIEW else body[:NOTICE_PREVIEW] + "…"
        reason = exc.title or str(exc)
        if exc.code and exc.code not in reason:
            reason = f"{reason} (error {exc.code})"
        notice = FAILURE_NOTICE.format(to=_person(send.chat_id), reason=reason, body=preview)
        if not self.owners:
            log.warning(
                "a message could not be sent and no OWNER_NUMBERS is set to tell",
                extra={"chatId": send.chat_id, "code": exc.code},
            )
        for owner in self.owners:
            try:
                await self.send(
                    owner,
                    notice,
                    key=f"whatsapp:failure-notice:{causation_id or send.key}:{owner}",
                    causation_id=recorded.event_id,
                    report=False,
                )
            except Exception as error:  # recorded as failed in the owner's chat; not reported
                log.warning(
                    "owner not told of a failed send",
                    extra={"chatId": owner, "error": repr(error)},
                )

    async def _channel_voice(self, chat_id: str, voice: Voice) -> str:
        path = self.speech.store.find(voice.sha256 or "") if self.speech else None
        if path is None:
            raise ChannelError("the spoken reply is missing from the media store", 502)
        return await self.channel.send_voice(chat_id, path, voice)

    async def _save(self, state_key: str, fields: Mapping[Any, Any]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(state_key, mapping=fields)
        pipe.expire(state_key, self.ttl_s)
        await pipe.execute()

    @asynccontextmanager
    async def _one_at_a_time(self, key: str) -> AsyncIterator[None]:
        """One send per key at a time in this process: later callers wait for the first (and
        then see its result); a caller in another process gets 409 from ``_BEGIN``'s lock."""
        lock, users = self._local.get(key, (asyncio.Lock(), 0))
        self._local[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._local[key]
            if users == 1:
                del self._local[key]
            else:
                self._local[key] = (lock, users - 1)


def _person(chat_id: str) -> str:
    """How a notice names a chat: ``+<number>`` for a person, the id for anything else."""
    return f"+{chatid.number(chat_id)}" if chat_id.endswith("@c.us") else chat_id


def _result(send: _Send, done: list[_Part]) -> SentMessage:
    return SentMessage(
        message_id=done[0].message_id,
        chat_id=send.chat_id,
        event_id=done[0].event_id,
        parts=len(done),
        message_ids=[p.message_id for p in done],
        voice=done[0].voice,
        voice_error=send.voice_error,
    )
