"""A chat's session: the fold of ``chat:{chatId}``, read backwards only as far as it needs.

The session is the last ``history_limit`` messages since the last ``/reset`` or the last
``timeout`` of silence. It also knows which user messages are answered: a message is answered
when a recorded turn went through it, or when an outbound message names it (or a later one) as
its cause. Turns answer in stream order, so "answered" is one watermark, ``answered_through``.

``SessionStore`` keeps recently used sessions as a cache only: a cached session is used after
checking it against the stream's last id, and brought forward by reading just the new entries.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from aspri.schemas import Event, WhatsAppMessage
from aspri.schemas.chat import ChatReset, ChatTurn
from aspri.streams import ids, keys
from aspri.streams.log import EventLog


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

    def apply(self, event: Event[Any]) -> None:
        entry_id = event.entry_id or "0-0"
        if not ids.after(entry_id, self.last_id):
            return
        self.last_id = entry_id
        data = event.data
        if isinstance(data, WhatsAppMessage):
            self._message(event, data, entry_id)
        elif isinstance(data, ChatTurn):
            self.recorded[data.cause] = None
            self.sent_unrecorded.pop(data.cause, None)
            while len(self.recorded) > 4 * self.history_limit:
                del self.recorded[next(iter(self.recorded))]
            if data.through and ids.after(data.through, self.answered_through):
                self.answered_through = data.through
        elif isinstance(data, ChatReset):
            self.messages = [m for m in self.messages if not ids.after(data.start, m.entry_id)]
            self._prune()

    def _message(self, event: Event[Any], data: WhatsAppMessage, entry_id: str) -> None:
        msg = Message(
            entry_id=entry_id,
            event_id=event.event_id,
            from_me=data.from_me,
            body=data.body,
            timestamp=event.timestamp,
            causation_id=event.causation_id,
            name=data.from_name,
            sender=data.from_,
        )
        if self.messages and msg.timestamp - self.messages[-1].timestamp > self.timeout_ms:
            self.messages = []  # silence: a new session starts with this message
            self._prune()
        self.messages.append(msg)
        if msg.from_me and msg.causation_id:
            self.replied[msg.causation_id] = msg
            cause = next(
                (m for m in self.messages if not m.from_me and m.event_id == msg.causation_id),
                None,
            )
            if cause is not None and ids.after(cause.entry_id, self.answered_through):
                answered = [
                    m for m in self.unanswered() if not ids.after(m.entry_id, cause.entry_id)
                ]
                self.answered_through = cause.entry_id
                if msg.causation_id not in self.recorded:
                    self.sent_unrecorded[msg.causation_id] = answered
        if len(self.messages) > self.history_limit:
            del self.messages[: len(self.messages) - self.history_limit]
            self._prune()

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
        )

    def unanswered(self) -> list[Message]:
        """User messages of this session not answered yet, oldest first."""
        return [
            m
            for m in self.messages
            if not m.from_me and ids.after(m.entry_id, self.answered_through)
        ]

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
    log_: EventLog, chat_id: str, history_limit: int, timeout_ms: int, end: str = "+"
) -> Session:
    """Fold the current session of ``chat_id`` from a bounded backwards read ending at ``end``.

    Reads newest first until the session's start (a reset, a silence longer than the timeout)
    or until ``history_limit`` messages were seen, then applies those entries oldest first.
    Anything older cannot change the result: a turn or reply older than every message kept can
    only have answered messages that are no longer in the window.
    """
    stream = keys.chat(chat_id)
    page = history_limit * 2 + 20
    collected: list[Event[Any]] = []
    messages = 0
    newer_ts: int | None = None
    reset_start: tuple[int, int] | None = None
    cursor = end
    done = False
    while not done:
        batch = await log_.read(stream, "-", cursor, page, reverse=True)
        for event in batch:
            data = event.data
            if reset_start is not None and ids.parse(event.entry_id or "0-0") < reset_start:
                done = True
                break
            if isinstance(data, WhatsAppMessage):
                if newer_ts is not None and newer_ts - event.timestamp > timeout_ms:
                    done = True  # the silence before the session's first message
                    break
                messages += 1
                newer_ts = event.timestamp
            elif isinstance(data, ChatReset) and reset_start is None:
                reset_start = ids.parse(data.start)
            collected.append(event)
            if messages >= history_limit:
                done = True
                break
        if len(batch) < page:
            break
        cursor = f"({batch[-1].entry_id}"
    session = Session(chat_id=chat_id, history_limit=history_limit, timeout_ms=timeout_ms)
    for event in reversed(collected):
        session.apply(event)
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

    async def load(self, chat_id: str) -> Session:
        """The session as of the stream's last entry (a copy the caller may keep)."""
        stream = keys.chat(chat_id)
        last = await self.log.last_id(stream)
        cached = self._cache.get(chat_id)
        session: Session | None = None
        if cached is not None and cached.last_id == last:
            self.hits += 1
            session = cached
        elif cached is not None and ids.after(last, cached.last_id):
            session = await self._forward(cached, stream, last)
        if session is None:
            self.misses += 1
            session = await read_session(
                self.log, chat_id, self.history_limit, self.timeout_ms, end=last
            )
        session.last_id = last
        self._remember(chat_id, session)
        return session.copy()

    async def _forward(self, cached: Session, stream: str, last: str) -> Session | None:
        """Apply only the entries after the cached state; None when too many are new."""
        cap = self.history_limit * 2 + 20
        newer = await self.log.read(stream, f"({cached.last_id}", last, cap + 1)
        if len(newer) > cap:
            return None
        self.hits += 1
        session = cached.copy()
        for event in newer:
            session.apply(event)
        return session

    def _remember(self, chat_id: str, session: Session) -> None:
        self._cache[chat_id] = session
        self._cache.move_to_end(chat_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
