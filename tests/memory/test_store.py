"""The fold of ``memory:{person}`` on real Valkey: saves, forgets, summaries, hostile entries
from other producers, the fact cap, and the prompt block's enforced token budget."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from redis.asyncio import Redis

from aspri.agents.memory import Recall
from aspri.agents.model_state import ModelState
from aspri.config import Settings
from aspri.memory.prompt import memory_block, tokens
from aspri.memory.store import MemoryRefused, MemoryStore
from aspri.schemas import REGISTRY, WhatsAppMessage
from aspri.schemas.chat import ChatTurn
from aspri.schemas.memory import MemorySaved, MemorySummary
from aspri.streams import EventLog, keys
from tests.agents.engine.stack import scripted

PERSON = "628111222333@c.us"
UTC = ZoneInfo("UTC")


def store_on(redis: Redis, max_chars: int = 500) -> MemoryStore:
    return MemoryStore(EventLog(redis), max_chars=max_chars, source="test")


async def test_save_forget_and_replays_fold_to_the_same_memory(redis: Redis) -> None:
    store = store_on(redis)
    first, dup = await store.save(PERSON, "  likes   tea ", by="command", key="k1")
    assert (first.text, dup) == ("likes tea", False)
    again, dup = await store.save(PERSON, "likes tea", by="command", key="k1")
    assert (again.fact_id, dup) == (first.fact_id, True)
    second, _ = await store.save(PERSON, "lives in Bandung", by="model", key="k2")
    forgotten = await store.forget(PERSON, first.fact_id.upper(), by="command", key="k3")
    assert forgotten == first
    assert (await store.forget(PERSON, first.fact_id, by="command", key="k3")) == first
    fresh = await store_on(redis).load(PERSON)  # another worker, rebuilt from the log
    assert list(fresh.facts) == [second.fact_id] and list(fresh.forgotten) == [first.fact_id]
    assert len(await EventLog(redis).read(keys.memory(PERSON))) == 3  # the forget kept its save


async def test_oversized_empty_and_ambiguous_requests_are_refused_with_the_reason(
    redis: Redis,
) -> None:
    store = store_on(redis, max_chars=20)
    with pytest.raises(MemoryRefused, match="at most 20 \\(MEMORY_FACT_MAX_CHARS\\)"):
        await store.save(PERSON, "x" * 21, by="command")
    with pytest.raises(MemoryRefused, match="empty"):
        await store.save(PERSON, "   ", by="command")
    await store.save(PERSON, "tea in the morning", by="command")
    await store.save(PERSON, "tea at night", by="command")
    with pytest.raises(MemoryRefused, match="2 saved facts match; say which one by its id"):
        await store.forget(PERSON, "tea", by="command")
    with pytest.raises(MemoryRefused, match="no saved fact matches"):
        await store.forget(PERSON, "coffee", by="command")
    assert len((await store.load(PERSON)).facts) == 2


async def test_poison_entries_from_another_producer_are_skipped_and_counted(redis: Redis) -> None:
    stream = keys.memory(PERSON)
    base = {"eventId": "e", "source": "elsewhere", "timestamp": "1", "v": "1"}
    await redis.xadd(stream, base | {"type": "memory:saved", "data": "{not json"})
    await redis.xadd(stream, base | {"type": "memory:mystery", "data": "{}"})
    await redis.xadd(stream, {"garbage": "only"})
    log = EventLog(redis)
    other = MemorySaved(person="6299@c.us", fact_id="aaaaaaaa", text="not theirs")
    huge = MemorySaved(person=PERSON, fact_id="bbbbbbbb", text="y" * 10_000)
    for payload in (other, huge):
        await log.append(stream, REGISTRY.event(payload, source="elsewhere"))
    store = store_on(redis)
    fact, _ = await store.save(PERSON, "a real fact", by="command")
    memory = await store.load(PERSON)
    assert list(memory.facts) == [fact.fact_id]
    assert (memory.skipped, memory.undecodable) == (2, 3)
    block = memory_block(memory, 800, 3, UTC)
    assert "a real fact" in block.text and "not theirs" not in block.text


async def test_the_prompt_block_keeps_to_its_budget_and_says_what_it_left_out(
    redis: Redis,
) -> None:
    store = store_on(redis)
    for i in range(300):
        await store.save(PERSON, f"fact number {i:03d} about something worth keeping", by="t")
    log = EventLog(redis)
    for i in range(5):
        summary = MemorySummary(
            person=PERSON,
            chat_id=PERSON,
            session_start=f"{i}-0",
            session_end=f"{1_700_000_000_000 + i}-0",
            text=f"summary {i} " + "words " * 20,
        )
        await log.append(keys.memory(PERSON), REGISTRY.event(summary, source="t"))
    memory = await store.load(PERSON)
    block = memory_block(memory, 800, 3, UTC)
    assert block.tokens <= 800
    assert block.facts_shown + block.facts_left_out == 300 and block.facts_left_out > 0
    assert f"({block.facts_left_out} more saved facts did not fit here" in block.text
    assert "memory_search" in block.text
    assert "fact number 299" in block.text and "fact number 000" not in block.text  # newest kept
    roomy = memory_block(memory, 100_000, 3, UTC)
    assert roomy.facts_left_out == 0 and roomy.summaries_shown == 3
    assert "summary 4" in roomy.text and "summary 1" not in roomy.text
    tight = tokens(roomy.text) - 40  # room for every fact, not every summary
    partial = memory_block(memory, tight, 3, UTC)
    assert partial.tokens <= tight and partial.facts_left_out == 0
    assert "summary 4" in partial.text and "summary 2" not in partial.text  # oldest dropped first


async def test_a_session_end_is_summarized_once_whoever_notices_it(redis: Redis) -> None:
    """Two workers (a redelivered event, or both noticing the same end) summarize one session
    at the same time, and once more later: one ``memory:summary``."""
    log = EventLog(redis)
    chat = PERSON
    ids = []
    for i, (body, mine) in enumerate([("my daughter is Sari", False), ("nice!", True)]):
        msg = WhatsAppMessage(id=f"m{i}", chat_id=chat, from_=chat, body=body, from_me=mine)
        ids.append((await log.append(keys.chat(chat), REGISTRY.event(msg, source="t"))).id)
    turn = ChatTurn(chat_id=chat, cause="c", through=ids[0])
    await log.append(keys.chat(chat), REGISTRY.event(turn, source="t"))
    reset_at = (await log.append(keys.chat(chat), REGISTRY.event(turn, source="t"))).id

    async def answer(_: list[BaseMessage]) -> AIMessage:
        await asyncio.sleep(0.05)  # both are in the model call at once
        return AIMessage(content="About Sari.")

    model = scripted(answer)

    async def ready() -> str | None:
        return None

    settings = Settings()
    workers = [Recall(settings, EventLog(redis), model, ModelState(ready)) for _ in range(2)]
    results = await asyncio.gather(*(w.summarize(chat, PERSON, reset_at) for w in workers))
    assert sorted(results) == [False, True]
    assert await workers[0].summarize(chat, PERSON, reset_at) is False
    written = [e.data for e in await log.read(keys.memory(PERSON))]
    assert [(s.text, s.session_end, s.messages) for s in written] == [("About Sari.", ids[1], 2)]
