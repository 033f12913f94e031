"""A chat's session: the fold of ``chat:{chatId}``, read backwards only as far as it needs.

The session is the last ``history_limit`` messages since the last ``/reset`` or the last
``timeout`` of silence: the prompt window. Which user messages are answered does not depend on
that window: a message is answered when a recorded turn (or a ``chat:coalesced`` record) went
through it, or when an outbound message names it (or a later one) as its cause. Turns answer in
stream order, so "answered" is one watermark, ``answered_through``, and every user message after
it is ``pending`` however far back it lies: the fold reads back until it finds the watermark
(at most ``SCAN_LIMIT`` entries; beyond that ``overflow`` says older ones may wait too).
Messages the gateway recorded as ``throttled`` are neither in the window nor pending.
The chat's voice setting (``/voice``) is the newest ``chat:voice`` record, or the setting the
newest turn carried (every turn carries it; a turn recorded before voice replies existed means
off), so the fold reads back at most to the newest turn for it, however long ago it was set.

``SessionStore`` keeps recently used sessions as a cache only: a cached session is used after
checking it against the stream's last id, and brought forward by reading just the new entries.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aspri.schemas import Event, WhatsAppMessage
from aspri.schemas.chat import ChatCoalesced, ChatReset, ChatTurn, ChatVoice, VoiceSetting
from aspri.schemas.envelope import text
from aspri.schemas.media import Image, Media, Voice, as_text
from aspri.streams import ids, keys
from aspri.streams.log import EventLog, Range
from aspri.streams.table import Table

SCAN_LIMIT = 2000
"""Entries a fold reads back at most to find the answered watermark (a backlog beyond is
coalesced, see ``Session.backlog``)."""


def just_before(entry_id: str) -> str:
    """The largest entry id below ``entry_id`` (an id need not exist to bound a range)."""
    ms, seq = ids.parse(entry_id)
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{2**64 - 1}"


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the session, as the fold needs it."""

    entry_id: str
    event_id: str
    from_me: bool
    body: str
    timestamp: int
    """Unix ms at which the gateway logged it."""
    causation_id: str | None = None
    name: str | None = None
    sender: str = ""
    """The sender's chat id (in a group, the member who wrote it)."""
    image: tuple[str, str] | None = None
    """(sha256, mime) of a stored image the message carries."""
    message_id: str = ""
    """The channel's id of the message (what a read receipt or a quote names)."""

    @property
    def is_command(self) -> bool:
        return not self.from_me and self.body.lstrip().startswith("/")


@dataclass
class Session:
    """The state of one chat's current session; ``apply`` folds one event into it."""

    chat_id: str
    history_limit: int
    timeout_ms: int
    messages: list[Message] = field(default_factory=list)
    answered_through: str = "0-0"
    last_id: str = "0-0"
    replied: dict[str, Message] = field(default_factory=dict)
    """Outbound messages by the cause they name (an inbound eventId or a trigger eventId)."""
    recorded: dict[str, None] = field(default_factory=dict)
    """Causes whose turn is recorded (insertion-ordered, the most recent kept)."""
    sent_unrecorded: dict[str, list[Message]] = field(default_factory=dict)
    """For an inbound cause whose reply went out but whose turn is not recorded yet: the user
    messages that reply answered (what a recovered turn records)."""
    pending: list[Message] = field(default_factory=list)
    """User messages after ``answered_through``, oldest first, inside the window or not."""
    overflow: str | None = None
    """Set when the fold stopped at ``SCAN_LIMIT`` before the watermark: the oldest entry it
    read; user messages before it may be unanswered too."""
    voice: VoiceSetting = field(default_factory=VoiceSetting)
    """Whether replies are spoken (``/voice``), and the problem the chat was last told of."""

    def apply(self, event: Event[Any]) -> None:
        entry_id = event.entry_id or "0-0"
        if not ids.after(entry_id, self.last_id):
            return
        self.last_id = entry_id
        data = event.data
        if isinstance(data, WhatsAppMessage):
            if not data.throttled:
                self._message(event, data, entry_id)
        elif isinstance(data, ChatVoice):
            self.voice = data.setting
        elif isinstance(data, ChatTurn):
            self.voice = data.voice if data.voice is not None else VoiceSetting()
            self.recorded[data.cause] = None
            self.sent_unrecorded.pop(data.cause, None)
            while len(self.recorded) > 4 * self.history_limit:
                del self.recorded[next(iter(self.recorded))]
            self._answered(data.through, data.answered)
            self._settled()
        elif isinstance(data, ChatCoalesced):
            self._answered(data.through, data.messages)
            self._settled()
        elif isinstance(data, ChatReset):
            self.messages = [m for m in self.messages if not ids.after(data.start, m.entry_id)]
            self._prune()

    def _message(self, event: Event[Any], data: WhatsAppMessage, entry_id: str) -> None:
        msg = Message(
            entry_id=entry_id,
            event_id=event.event_id,
            from_me=data.from_me,
            body=_text(data),
            timestamp=event.timestamp,
            causation_id=event.causation_id,
            name=data.from_name,
            sender=data.from_,
            image=_image(data.media),
            message_id=data.id,
        )
        if self.messages and msg.timestamp - self.messages[-1].timestamp > self.timeout_ms:
            self.messages = []  # silence: a new session starts with this message
            self._prune()
        self.messages.append(msg)
        if not msg.from_me:
            self.pending.append(msg)
        elif msg.causation_id:
            self.replied[msg.causation_id] = msg
            cause = next((m for m in self.pending if m.event_id == msg.causation_id), None)
            if cause is not None:
                answered = [m for m in self.pending if not ids.after(m.entry_id, cause.entry_id)]
                self._answered(cause.entry_id, [])
                if msg.causation_id not in self.recorded:
                    self.sent_unrecorded[msg.causation_id] = answered
        if len(self.messages) > self.history_limit:
            del self.messages[: len(self.messages) - self.history_limit]
            self._prune()

    def _answered(self, through: str | None, event_ids: list[str]) -> None:
        """Move the watermark to ``through`` and drop what it (or ``event_ids``) answered."""
        if through and ids.after(through, self.answered_through):
            self.answered_through = through
        if self.overflow and not ids.after(just_before(self.overflow), self.answered_through):
            self.overflow = None
        done = set(event_ids)
        self.pending = [
            m
            for m in self.pending
            if ids.after(m.entry_id, self.answered_through) and m.event_id not in done
        ]

    def _settled(self) -> None:
        """A record went past an unrecorded reply's messages: nothing is left to recover (a
        fold starting after them would not see them either)."""
        self.sent_unrecorded = {
            c: a
            for c, a in self.sent_unrecorded.items()
            if a and ids.after(a[-1].entry_id, self.answered_through)
        }

    def _prune(self) -> None:
        """Forget replies and causes that left the window (a fresh fold would not see them)."""
        kept = {m.event_id for m in self.messages}
        self.replied = {c: m for c, m in self.replied.items() if m.event_id in kept}
        self.sent_unrecorded = {c: a for c, a in self.sent_unrecorded.items() if c in kept}

    def copy(self) -> Session:
        """A copy whose containers the caller may change (messages themselves are frozen)."""
        return replace(
            self,
            messages=list(self.messages),
            replied=dict(self.replied),
            recorded=dict(self.recorded),
            sent_unrecorded={k: list(v) for k, v in self.sent_unrecorded.items()},
            pending=list(self.pending),
        )

    def unanswered(self) -> list[Message]:
        """User messages not answered yet, oldest first (in the prompt window or not)."""
        return list(self.pending)

    def backlog(self) -> tuple[list[Message], str] | None:
        """Pending messages a turn could not show the model, and the entry they end at.

        Those older than the prompt window (more waited than ``history_limit`` messages, or
        than the session holds), and when the fold overflowed, everything before what it read.
        None when every pending message is in the window.
        """
        first = self.messages[0].entry_id if self.messages else None
        older = [m for m in self.pending if first is None or ids.after(first, m.entry_id)]
        if self.overflow is None and not older:
            return None
        ends = [m.entry_id for m in older]
        if self.overflow is not None:
            ends.append(just_before(self.overflow))
        return older, max(ends, key=ids.parse)

    def history(self, through: str) -> list[Message]:
        """The conversation for a turn answering the user's messages up to entry ``through``.

        Later user messages are left for later turns; slash commands and their replies are
        left out (they are not conversation); each reply is placed right after the message it
        answered, even when the person typed more before it arrived, so the transcript reads
        as the exchange it was and the messages to answer come last.
        """
        commands = {m.event_id for m in self.messages if m.is_command}
        kept = [
            m
            for m in self.messages
            if not (not m.from_me and ids.after(m.entry_id, through))
            and not m.is_command
            and not (m.from_me and m.causation_id in commands)
        ]
        user = {m.event_id for m in kept if not m.from_me}
        replies: dict[str, list[Message]] = {}
        for m in kept:
            if m.from_me and m.causation_id in user:
                replies.setdefault(m.causation_id, []).append(m)
        out: list[Message] = []
        for m in kept:
            if m.from_me and m.causation_id in user:
                continue
            out.append(m)
            out += replies.get(m.event_id, [])
        return out


async def read_session(
    log_: EventLog,
    chat_id: str,
    history_limit: int,
    timeout_ms: int,
    end: str = "+",
    scan_limit: int = SCAN_LIMIT,
) -> Session:
    """Fold the current session of ``chat_id`` from a bounded backwards read ending at ``end``.

    Reads newest first until both are known: the window (the session's start, a reset or a
    silence longer than the timeout, or ``history_limit`` messages) and the answered watermark
    (the newest turn or coalesced record), then applies those entries oldest first. Anything
    older cannot change the result: the window is full, and every user message older than the
    watermark is answered. At most ``scan_limit`` entries are read (see ``Session.overflow``).
    """
    stream = keys.chat(chat_id)
    page = history_limit * 2 + 20
    collected: list[Event[Any]] = []
    messages = 0
    newer_ts: int | None = None
    reset_start: tuple[int, int] | None = None
    watermark: tuple[int, int] | None = None
    window_done = settled = voice_known = done = False
    cursor = end
    while not done:
        batch = await log_.read(stream, "-", cursor, page, reverse=True)
        for event in batch:
            data = event.data
            at = ids.parse(event.entry_id or "0-0")
            if reset_start is not None and at < reset_start:
                window_done = True
            if isinstance(data, WhatsAppMessage) and not data.throttled:
                if newer_ts is not None and newer_ts - event.timestamp > timeout_ms:
                    window_done = True  # the silence before the session's first message
                messages += 1
                newer_ts = event.timestamp
                window_done = window_done or messages > history_limit
            elif isinstance(data, ChatReset) and reset_start is None:
                reset_start = ids.parse(data.start)
            elif isinstance(data, ChatTurn | ChatCoalesced) and data.through:
                watermark = max(watermark or (0, 0), ids.parse(data.through))
            voice_known = voice_known or isinstance(data, ChatVoice | ChatTurn)
            collected.append(event)
            # older entries change nothing: the window is full, and every user message older
            # than the newest answered one is answered (a turn is recorded after what it answers)
            settled = window_done and watermark is not None and at <= watermark
            done = settled and voice_known
            if done or len(collected) >= scan_limit:
                break
        if done or len(collected) >= scan_limit or len(batch) < page:
            break
        cursor = f"({batch[-1].entry_id}"
    session = Session(chat_id=chat_id, history_limit=history_limit, timeout_ms=timeout_ms)
    for event in reversed(collected):
        session.apply(event)
    if not settled and len(collected) >= scan_limit:
        session.overflow = collected[-1].entry_id
    return session


class SessionStore:
    """Sessions by chat id, from the log; an LRU of recent ones is only a cache."""

    def __init__(
        self,
        log_: EventLog,
        *,
        history_limit: int,
        timeout_minutes: int,
        cache_size: int = 1024,
    ) -> None:
        self.log = log_
        self.history_limit = history_limit
        self.timeout_ms = timeout_minutes * 60_000
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Session] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def load(self, chat_id: str, tables: Sequence[Table[Any]] = ()) -> Session:
        """The session as of the stream's last entry (a copy the caller may keep).

        One round trip when the session is cached: the stream's last id, the entries after the
        cached state and the next reads of ``tables`` (folds the turn depends on, brought up to
        date with it) go in one pipeline.
        """
        stream = keys.chat(chat_id)
        cached = self._cache.get(chat_id)
        cap = self.history_limit * 2 + 20
        reads = [Range(stream, "-", "+", 1, reverse=True)]
        if cached is not None:
            reads.append(Range(stream, f"({cached.last_id}", "+", cap + 1))
        reads += [table.next_range() for table in tables]
        replies = await self.log.ranges(reads)
        for table, raw in zip(tables, replies[len(replies) - len(tables) :], strict=True):
            await table.absorb(raw)
        last = text(replies[0][0][0]) if replies[0] else "0-0"
        session: Session | None = None
        if cached is not None and not ids.after(cached.last_id, last) and len(replies[1]) <= cap:
            self.hits += 1
            session = cached
            if replies[1]:  # a copy: the cached one may be in use by another turn
                session = cached.copy()
                for event in self.log.decode(stream, replies[1]):
                    session.apply(event)
        if session is None:
            self.misses += 1
            session = await read_session(
                self.log, chat_id, self.history_limit, self.timeout_ms, end=last
            )
            session.last_id = last
        self._remember(chat_id, session)
        return session.copy()

    def _remember(self, chat_id: str, session: Session) -> None:
        self._cache[chat_id] = session
        self._cache.move_to_end(chat_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _text(data: WhatsAppMessage) -> str:
    """What the model reads of a message; a reply the assistant spoke reads as what it said."""
    media = data.media
    if data.from_me and isinstance(media, Voice) and media.transcript == data.body:
        return data.body
    return as_text(data.body, data.media)


def _image(media: Media | None) -> tuple[str, str] | None:
    if isinstance(media, Image) and media.sha256 and media.mime:
        return media.sha256, media.mime
    return None
