"""Sessions are folds of ``chat:{chatId}``: bounded backwards reads, equal to a full fold.

Events are appended to the real Valkey exactly as the gateway and the engine write them.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec
from redis.asyncio import Redis

from aspri.agents.session import Session, SessionStore, read_session
from aspri.schemas import REGISTRY, Event, WhatsAppMessage
from aspri.schemas.chat import ChatCoalesced, ChatReset, ChatTurn
from aspri.schemas.media import Image, Voice
from aspri.streams import ids, keys
from aspri.streams.log import EventLog
from aspri.streams.table import Table

CHAT = "628111@c.us"
MINUTE = 60_000


class CountingLog(EventLog):
    """The real EventLog, counting the entries its reads return."""

    entries_read = 0

    async def read(self, *args: Any, **kwargs: Any) -> list[Event[Any]]:
        out = await super().read(*args, **kwargs)
        self.entries_read += len(out)
        return out


async def add(log: EventLog, data: Any, ts: int, causation: str | None = None) -> Event[Any]:
    event = REGISTRY.event(data, timestamp=ts, causation_id=causation)
    appended = await log.append(keys.chat(CHAT), event)
    return Event(
        **{**{f: getattr(event, f) for f in event.__struct_fields__}, "entry_id": appended.id}
    )


def inbound(n: int, body: str | None = None) -> WhatsAppMessage:
    return WhatsAppMessage(id=f"in{n}", chat_id=CHAT, from_=CHAT, body=body or f"m{n}")


def outbound(n: int, body: str = "reply") -> WhatsAppMessage:
    return WhatsAppMessage(id=f"out{n}", chat_id=CHAT, from_="me", body=body, from_me=True)


def full_fold(events: list[Event[Any]], limit: int, timeout_ms: int) -> Session:
    session = Session(chat_id=CHAT, history_limit=limit, timeout_ms=timeout_ms)
    for event in events:
        session.apply(event)
    return session


def view(s: Session) -> tuple[Any, ...]:
    return (
        [m.event_id for m in s.messages],
        [m.event_id for m in s.unanswered()],
        sorted(s.sent_unrecorded),
        sorted(s.replied),
    )


async def test_bounded_fold_equals_the_full_fold(redis: Redis) -> None:
    """Random chats (replies, turns, resets, long silences, crashes between send and record):
    after every event the bounded backwards read folds to the same session as replaying all."""
    rng = random.Random(7)
    log = EventLog(redis)
    limit, timeout = 6, 60 * MINUTE
    events: list[Event[Any]] = []
    ts = 1_700_000_000_000
    full = Session(chat_id=CHAT, history_limit=limit, timeout_ms=timeout)
    for n in range(250):
        ts += rng.choice([1_000, 5_000, MINUTE, 2 * timeout]) if rng.random() < 0.9 else 1
        roll = rng.random()
        pending = full.unanswered()
        if roll < 0.45 or not pending:
            body = "/reset" if rng.random() < 0.05 else None
            event = await add(log, inbound(n, body), ts)
        elif roll < 0.75:
            cause = rng.choice(pending)
            event = await add(log, outbound(n), ts, causation=cause.event_id)
        elif roll < 0.9:
            cause = rng.choice(pending)
            turn = ChatTurn(
                chat_id=CHAT,
                cause=cause.event_id,
                through=cause.entry_id,
                answered=[cause.event_id],
            )
            event = await add(log, turn, ts)
        else:
            start = rng.choice(pending)
            event = await add(
                log, ChatReset(chat_id=CHAT, start=start.entry_id, cause=start.event_id), ts
            )
        events.append(event)
        full.apply(event)
        bounded = await read_session(log, CHAT, limit, timeout)
        assert view(bounded) == view(full), f"after event {n}"
    assert view(full) == view(full_fold(events, limit, timeout))


async def test_reading_a_long_answered_chat_reads_only_the_window(redis: Redis) -> None:
    log = CountingLog(redis)
    ts = 1_700_000_000_000
    for n in range(600):
        message = await add(log, inbound(n), ts + n)
        if n % 10 == 9:
            turn = ChatTurn(chat_id=CHAT, cause=message.event_id, through=message.entry_id)
            await add(log, turn, ts + n)
    log.entries_read = 0
    session = await read_session(log, CHAT, 50, 60 * MINUTE)
    assert len(session.messages) == 50
    assert session.messages[-1].body == "m599"
    assert session.unanswered() == [] and session.backlog() is None
    assert log.entries_read <= 2 * 50 + 20


async def test_unanswered_does_not_depend_on_the_window(redis: Redis) -> None:
    """600 messages nobody answered: all are pending, the 550 the window cannot show are the
    backlog to coalesce; beyond the scan limit, ``overflow`` says where the fold stopped."""
    log = EventLog(redis)
    ts = 1_700_000_000_000
    first = await add(log, inbound(0), ts)
    for n in range(1, 600):
        await add(log, inbound(n), ts + n)
    session = await read_session(log, CHAT, 50, 60 * MINUTE)
    assert [m.body for m in session.unanswered()] == [f"m{n}" for n in range(600)]
    backlog = session.backlog()
    assert backlog is not None
    older, through = backlog
    assert [m.body for m in older] == [f"m{n}" for n in range(550)]
    assert through == older[-1].entry_id and session.overflow is None

    capped = await read_session(log, CHAT, 50, 60 * MINUTE, scan_limit=200)
    assert len(capped.unanswered()) == 200 and capped.overflow is not None
    older, through = capped.backlog() or ([], "")
    assert len(older) == 150 and through == older[-1].entry_id
    assert [m.body for m in older] == [f"m{n}" for n in range(400, 550)]
    assert ids.after(through, capped.overflow)  # coalescing through it covers the unread ones

    coalesced = ChatCoalesced(
        chat_id=CHAT, cause=first.event_id, messages=[], through=through, reason="test"
    )
    await add(log, coalesced, ts + 601)
    after = await read_session(log, CHAT, 50, 60 * MINUTE, scan_limit=200)
    assert [m.body for m in after.unanswered()] == [f"m{n}" for n in range(550, 600)]
    assert after.backlog() is None and after.overflow is None


async def test_throttled_messages_are_neither_in_the_window_nor_pending(redis: Redis) -> None:
    log = EventLog(redis)
    ts = 1_700_000_000_000
    await add(log, inbound(1), ts)
    for n in range(2, 40):
        await add(log, msgspec.structs.replace(inbound(n), throttled=True), ts + n)
    session = await read_session(log, CHAT, 5, 60 * MINUTE)
    assert [m.body for m in session.messages] == ["m1"]
    assert [m.body for m in session.unanswered()] == ["m1"]


async def test_silence_starts_a_new_session_and_reset_keeps_its_command(redis: Redis) -> None:
    """The window starts at the session's start: a silence, or the start a reset names; the
    read stops there once the answered watermark is known."""
    log = CountingLog(redis)
    ts = 1_700_000_000_000
    for n in range(100):
        old = await add(log, inbound(100 + n, "old"), ts + n)
    await add(log, ChatTurn(chat_id=CHAT, cause=old.event_id, through=old.entry_id), ts + 100)
    await add(log, inbound(2, "after an hour"), ts + 61 * MINUTE)
    log.entries_read = 0
    session = await read_session(log, CHAT, 5, 60 * MINUTE)
    assert [m.body for m in session.messages] == ["after an hour"]
    assert log.entries_read <= 5 * 2 + 20  # one page, not the 100 old messages

    reset = await add(log, inbound(3, "/reset"), ts + 62 * MINUTE)
    await add(log, inbound(4, "hello again"), ts + 62 * MINUTE + 1)
    await add(
        log,
        ChatReset(chat_id=CHAT, start=reset.entry_id or "", cause=reset.event_id),
        ts + 62 * MINUTE + 2,
    )
    for n in range(40):
        await add(log, inbound(200 + n, "after the reset"), ts + 62 * MINUTE + 3 + n)
    log.entries_read = 0
    session = await read_session(log, CHAT, 50, 60 * MINUTE)
    assert log.entries_read <= 50 * 2 + 20
    assert [m.body for m in session.messages][:2] == ["/reset", "hello again"]
    assert len(session.messages) == 42
    session = await read_session(log, CHAT, 5, 60 * MINUTE)
    assert [m.body for m in session.messages] == ["after the reset"] * 5

    session = await read_session(log, CHAT, 50, 60 * MINUTE)
    pending = [m.body for m in session.unanswered()]
    assert pending[:3] == ["after an hour", "/reset", "hello again"]  # before the reset: kept
    assert [m.body for m in (session.backlog() or ([], ""))[0]] == ["after an hour"]
    assert [m.body for m in session.history(session.last_id)][:2] == [
        "hello again",
        "after the reset",
    ]


async def test_a_reply_in_the_log_answers_its_cause_before_the_turn_is_recorded(
    redis: Redis,
) -> None:
    """A worker that died between the send and the record left only the reply: the fold
    marks the messages answered and remembers that their turn still has to be recorded."""
    log = EventLog(redis)
    ts = 1_700_000_000_000
    a = await add(log, inbound(1), ts)
    b = await add(log, inbound(2), ts + 1)
    await add(log, outbound(3), ts + 2, causation=b.event_id)
    c = await add(log, inbound(4), ts + 3)
    session = await read_session(log, CHAT, 50, 60 * MINUTE)
    assert [m.event_id for m in session.unanswered()] == [c.event_id]
    assert [m.event_id for m in session.sent_unrecorded[b.event_id]] == [a.event_id, b.event_id]
    await add(log, ChatTurn(chat_id=CHAT, cause=b.event_id, through=b.entry_id), ts + 4)
    session = await read_session(log, CHAT, 50, 60 * MINUTE)
    assert session.sent_unrecorded == {}
    assert b.event_id in session.recorded


async def test_the_cache_is_checked_against_the_stream(redis: Redis) -> None:
    """A cached session is used only while the stream's last id matches; new entries (from
    another worker, say) are folded in, and the result equals a fresh read."""
    log = EventLog(redis)
    store = SessionStore(log, history_limit=5, timeout_minutes=60)
    ts = 1_700_000_000_000
    for n in range(4):
        await add(log, inbound(n), ts + n)
    first = await store.load(CHAT)
    again = await store.load(CHAT)
    assert view(first) == view(again)
    assert store.hits == 1 and store.misses == 1
    cause = first.unanswered()[-1]
    await add(log, outbound(10), ts + 10, causation=cause.event_id)
    for n in range(4, 7):
        await add(log, inbound(n), ts + 10 + n)
    cached = await store.load(CHAT)
    fresh = await read_session(log, CHAT, 5, 60 * MINUTE)
    assert view(cached) == view(fresh)
    assert [m.body for m in cached.unanswered()] == ["m4", "m5", "m6"]
    assert store.misses == 1
    cached.messages.clear()  # callers get copies: the cache is not changed through them
    assert len((await store.load(CHAT)).messages) == 5


async def test_a_cached_session_and_its_folds_are_one_round_trip(redis: Redis) -> None:
    """A turn's fold of a cached chat reads the stream's end, the new entries and the folds
    it depends on (access rules, memory) in one pipeline, and those folds are current."""
    log = RoundTrips(redis)
    store = SessionStore(log, history_limit=5, timeout_minutes=60)
    other = Table(log, "other", initial=list, apply=lambda s, e: s.append(e.event_id))
    ts = 1_700_000_000_000
    await add(log, inbound(0), ts)
    await store.load(CHAT, [other])
    assert store.misses == 1
    cause = await add(log, inbound(1), ts + 1)
    written = await log.append("other", REGISTRY.event(inbound(9)))
    log.calls = 0
    session = await store.load(CHAT, [other])
    assert log.calls == 1
    assert store.hits == 1 and store.misses == 1
    assert [m.event_id for m in session.unanswered()][-1] == cause.event_id
    assert other.last_id == written.id and len(other.state) == 1
    assert view(session) == view(await read_session(log, CHAT, 5, 60 * MINUTE))


class RoundTrips(EventLog):
    """The real EventLog, counting the round trips of a session load."""

    calls = 0

    async def ranges(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return await super().ranges(*args, **kwargs)

    async def read(self, *args: Any, **kwargs: Any) -> list[Event[Any]]:
        self.calls += 1
        return await super().read(*args, **kwargs)

    async def last_id(self, stream: str) -> str:
        self.calls += 1
        return await super().last_id(stream)


async def test_media_messages_are_read_as_text(redis: Redis) -> None:
    """What a message carries (``media``) is what the model reads, next to its caption."""
    log = EventLog(redis)
    photo = WhatsAppMessage(
        id="in1",
        chat_id=CHAT,
        from_=CHAT,
        body="my cat",
        type="image",
        media=Image(caption="my cat"),
    )
    note = WhatsAppMessage(
        id="in2", chat_id=CHAT, from_=CHAT, type="audio", media=Voice(transcript="feed the cat")
    )
    first, second = await add(log, photo, MINUTE), await add(log, note, 2 * MINUTE)
    session = full_fold([first, second], limit=50, timeout_ms=60 * MINUTE)
    assert [m.body for m in session.pending] == [
        "[image: my cat]",
        "[voice note, transcribed:] feed the cat",
    ]
