"""Chats and contacts: projections of the chat streams, for ``/api/chats`` and contact search.

The streams ``chat:{chatId}`` are the truth. For each chat the projection keeps a summary and
the id of the last entry it folded (its cursor), in Redis hashes so a restart does not replay
every chat. A refresh folds the entries after the cursor and writes summary, cursor and contacts
in one Lua step that only succeeds if the cursor is unchanged, so two writers never fold an
entry twice. Appends only mark a chat dirty; a background task folds it, and readers settle the
dirty chats first, so they always see their own writes. On start every chat stream is compared
with its cursor, so a crash between an append and its fold loses nothing; deleting the three
hashes rebuilds everything from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

import msgspec
from redis.asyncio import Redis

from aspri.api.whatsapp.history import MESSAGE_TYPE, millis
from aspri.schemas import UndecodableEvent, WhatsAppMessage, chatid
from aspri.schemas.api import ChatSummary, Contact
from aspri.schemas.envelope import text
from aspri.streams import keys
from aspri.streams.log import EventLog
from aspri.telemetry.tracing import tracer

log = logging.getLogger(__name__)
_tracer = tracer("aspri.whatsapp")

PREVIEW_CHARS = 300
LAST_INBOUND_SCAN = 200
_NUMBER_NOISE = re.compile(r"[\s+\-().]")

_COMMIT = """
-- KEYS: chats, cursors, contacts   ARGV: chatId, expected cursor, new cursor, summary ('' for
-- a chat with no message yet: only delivery statuses), then pairs of contact chat id and
-- contact JSON (newest sighting wins, a name is never lost)
local cur = redis.call('HGET', KEYS[2], ARGV[1]) or '0-0'
if cur ~= ARGV[2] then return 0 end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[4]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
for i = 5, #ARGV, 2 do
  local new = cjson.decode(ARGV[i + 1])
  local raw = redis.call('HGET', KEYS[3], ARGV[i])
  if raw then
    local old = cjson.decode(raw)
    if (old.seen or 0) > (new.seen or 0) then
      if old.name == nil then old.name = new.name end
      new = old
    elseif new.name == nil then
      new.name = old.name
    end
  end
  redis.call('HSET', KEYS[3], ARGV[i], cjson.encode(new))
end
return 1
"""


class _Seen(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A contact as stored: ``seen`` (Unix ms) decides which sighting's name is newest."""

    number: str
    chat_id: str
    name: str | None = None
    seen: int = 0


_SUMMARY = msgspec.json.Decoder(ChatSummary)
_SEEN = msgspec.json.Decoder(_Seen)
_ENC = msgspec.json.Encoder()


def fold(
    summary: ChatSummary, contacts: dict[str, _Seen], message: WhatsAppMessage, ts: int
) -> None:
    """Apply one message to a chat's summary and to the contacts it reveals."""
    summary.message_count += 1
    summary.last_activity = max(summary.last_activity, ts)
    body = message.body
    summary.last_message = body if len(body) <= PREVIEW_CHARS else body[:PREVIEW_CHARS] + "…"
    if message.from_me:
        return
    summary.last_inbound = max(summary.last_inbound, ts)
    if message.from_name and not chatid.is_group(summary.chat_id):
        summary.name = message.from_name
    sender = message.from_
    if sender.endswith("@c.us") or sender.endswith("@lid"):
        old = contacts.get(sender)
        name = message.from_name or (old.name if old else None)
        contacts[sender] = _Seen(number=chatid.number(sender), chat_id=sender, name=name, seen=ts)


class _Fold:
    """One chat being folded: where it started, how far it got, what it found."""

    def __init__(self, chat_id: str, cursor: str, summary: bytes | None) -> None:
        self.chat_id = chat_id
        self.cursor = cursor
        self.last = cursor
        self.summary = _SUMMARY.decode(summary) if summary else ChatSummary(chat_id=chat_id)
        self.contacts: dict[str, _Seen] = {}


class Directory:
    """The chats and contacts projections, kept current in the background."""

    def __init__(
        self, redis: Redis, log_: EventLog, *, batch: int = 1000, interval_s: float = 1.0
    ) -> None:
        self.redis = redis
        self.log = log_
        self.batch = batch
        self.interval_s = interval_s
        """The background fold waits this long after a mark, so that under load one fold
        covers many messages and many chats (readers never wait for it: they settle)."""
        self._commit = redis.register_script(_COMMIT)
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        """Fold whatever the projections missed, then keep folding marked chats."""
        with _tracer.start_as_current_span("whatsapp directory rebuild") as span:
            behind = await self._behind()
            for start in range(0, len(behind), 500):
                await self.refresh(*behind[start : start + 500])
            span.set_attribute("aspri.chats_refreshed", len(behind))
        log.info("chat directory ready", extra={"chats_refreshed": len(behind)})
        self._task = asyncio.create_task(self._run(), name="whatsapp-directory")

    async def stop(self) -> None:
        """Finish the folds in progress and stop. (A flag, not ``Task.cancel``: redis-py 8.1
        can swallow a cancellation that lands during a command, which would hang here.)"""
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    def mark(self, chat_id: str) -> None:
        """``chat_id``'s stream grew; fold it soon."""
        self._dirty.add(chat_id)
        self._wake.set()

    async def settle(self) -> None:
        """Return once every chat marked so far is folded (read-your-writes for readers)."""
        await self.refresh(*self._dirty)  # also waits for a refresh in flight (the lock)

    async def refresh(self, *chat_ids: str) -> None:
        """Fold the entries of these chats after their cursors into the projections, with one
        pipeline per step for all of them (under load, many chats are folded per round trip)."""
        async with self._lock:
            pending = list(dict.fromkeys(chat_ids))
            self._dirty.difference_update(pending)
            while pending:
                pending = await self._fold(pending)
                if pending:
                    log.info(
                        "projection moved under us; folding again", extra={"chats": len(pending)}
                    )

    async def last_inbound(self, chat_id: str) -> int:
        """Unix ms of the chat's last inbound message (0: none), its own writes included.

        A summary folded before it kept ``lastInbound`` says 0 for a chat with messages: then
        the newest ``LAST_INBOUND_SCAN`` entries of the chat answer instead."""
        if chat_id in self._dirty:
            await self.refresh(chat_id)
        raw = await self.redis.hget(keys.WHATSAPP_CHATS, chat_id)
        summary = _SUMMARY.decode(raw) if raw else None
        if summary is None or summary.last_inbound or not summary.message_count:
            return summary.last_inbound if summary else 0
        stream = keys.chat(chat_id)
        for event in await self.log.read(stream, count=LAST_INBOUND_SCAN, reverse=True):
            if event.type == MESSAGE_TYPE and not event.data.from_me:
                return millis(event.data.timestamp) or event.timestamp
        return 0

    async def chats(self, limit: int) -> list[ChatSummary]:
        await self.settle()
        raw = await self.redis.hvals(keys.WHATSAPP_CHATS)
        chats = [_SUMMARY.decode(v) for v in raw]
        chats.sort(key=lambda c: c.last_activity, reverse=True)
        return chats[:limit]

    async def search(self, query: str, limit: int) -> list[Contact]:
        """Contacts whose name or number contains ``query`` (any case); most recent first."""
        await self.settle()
        needle = query.strip().casefold()
        digits = _NUMBER_NOISE.sub("", needle)
        # "0812..." is how people write a number without its country code: match the rest.
        numbers = [digits, digits.lstrip("0")] if digits.isdigit() else []
        numbers = [n for n in numbers if n]
        found: list[_Seen] = []
        async for _field, raw in self.redis.hscan_iter(keys.WHATSAPP_CONTACTS, count=1000):
            contact = _SEEN.decode(raw)
            named = contact.name is not None and needle in contact.name.casefold()
            if named or any(n in contact.number for n in numbers):
                found.append(contact)
        found.sort(key=lambda c: c.seen, reverse=True)
        return [Contact(number=c.number, chat_id=c.chat_id, name=c.name) for c in found[:limit]]

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            with contextlib.suppress(TimeoutError):  # a stop cuts the pause short
                await asyncio.wait_for(self._stopped.wait(), self.interval_s)
            self._wake.clear()
            dirty = list(self._dirty)
            try:
                await self.refresh(*dirty)
            except Exception:  # Redis away: the chats stay behind; start() catches them up
                log.exception("projection refresh failed", extra={"chats": len(dirty)})
                if self._stopping:
                    return
                for chat_id in dirty:
                    self.mark(chat_id)
                await asyncio.sleep(1)

    async def _fold(self, chat_ids: list[str]) -> list[str]:
        """One fold of each chat; returns the chats whose commit lost a race (fold again)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(keys.WHATSAPP_CHATS, chat_ids)
        pipe.hmget(keys.WHATSAPP_CHAT_CURSORS, chat_ids)
        summaries, cursors = await pipe.execute()
        folds = [
            _Fold(chat_id, text(cursor) if cursor else "0-0", summary)
            for chat_id, summary, cursor in zip(chat_ids, summaries, cursors, strict=True)
        ]
        reading = folds
        while reading:
            pipe = self.redis.pipeline(transaction=False)
            for fold_ in reading:
                pipe.xrange(keys.chat(fold_.chat_id), f"({fold_.last}", "+", count=self.batch)
            replies = await pipe.execute()
            for fold_, raw in zip(reading, replies, strict=True):
                self._apply(fold_, raw)
            reading = [f for f, raw in zip(reading, replies, strict=True) if len(raw) == self.batch]
        changed = [f for f in folds if f.last != f.cursor]
        if not changed:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for fold_ in changed:
            summary = _ENC.encode(fold_.summary) if fold_.summary.message_count else b""
            args: list[Any] = [fold_.chat_id, fold_.cursor, fold_.last, summary]
            for contact_id, contact in fold_.contacts.items():
                args += [contact_id, _ENC.encode(contact)]
            await self._commit(
                keys=[keys.WHATSAPP_CHATS, keys.WHATSAPP_CHAT_CURSORS, keys.WHATSAPP_CONTACTS],
                args=args,
                client=pipe,
            )
        done = await pipe.execute()
        return [f.chat_id for f, ok in zip(changed, done, strict=True) if not ok]

    def _apply(self, fold_: _Fold, raw: list[Any]) -> None:
        stream = keys.chat(fold_.chat_id)
        for entry_id, fields in raw:
            fold_.last = text(entry_id)
            try:
                event = self.log.registry.from_fields(fields, entry_id=fold_.last, stream=stream)
            except UndecodableEvent:
                continue
            if event.type == MESSAGE_TYPE:
                ts = millis(event.data.timestamp) or event.timestamp
                fold(fold_.summary, fold_.contacts, event.data, ts)

    async def _behind(self) -> list[str]:
        """Chats whose stream has entries their projection has not folded yet."""
        stale: list[str] = []
        scan = self.redis.scan_iter(match="chat:*", count=1000, _type="stream")
        names = [text(k) async for k in scan]
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            pipe = self.redis.pipeline(transaction=False)
            for name in chunk:
                pipe.xrevrange(name, "+", "-", count=1)
            pipe.hmget(keys.WHATSAPP_CHAT_CURSORS, [n.removeprefix("chat:") for n in chunk])
            *lasts, cursors = await pipe.execute()
            for name, last, cursor in zip(chunk, lasts, cursors, strict=True):
                if last and (cursor is None or text(last[0][0]) != text(cursor)):
                    stale.append(name.removeprefix("chat:"))
        return stale
