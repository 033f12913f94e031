"""Memory beyond the window, through the real engine, MCP server and gateways on real Valkey:
facts outlive ``/reset``, a silence and hundreds of messages; the model's ``memory_save`` is
seen after a restart and by another worker; ``memory_search`` reaches 1,000 messages back;
``/forget`` takes a fact out of prompts and searches; sessions are summarized once; a
contact's turn never sees the owner's memory. The scripted model stands in for the LLM."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage

from aspri.agents.llm import build_model
from aspri.config import Settings
from aspri.memory.store import MemoryStore
from aspri.schemas import REGISTRY, WhatsAppMessage, now_ms
from aspri.schemas.chat import ChatTurn
from aspri.schemas.memory import MemoryForgotten, MemorySaved, MemorySummary
from aspri.streams import ids, keys
from aspri.streams.server import free_port
from tests.agents.engine.stack import Stack, echo, new_number, scripted
from tests.agents.engine.test_access import say_in_group
from tests.helpers import wait_until

HOUR_MS = 3_600_000
SUMMARY = "They told me about their daughter Sari."


def is_summary_request(messages: list[BaseMessage]) -> bool:
    first = messages[0] if messages else None
    return isinstance(first, SystemMessage) and first.text.startswith("Summarize")


def remembering(script: Any = echo) -> Any:
    """``script`` for turns; a fixed text for session summaries."""

    def run(messages: list[BaseMessage]) -> AIMessage:
        if is_summary_request(messages):
            return AIMessage(content=SUMMARY)
        reply: AIMessage = script(messages)
        return reply

    return run


def turn_calls(model: Any) -> list[list[BaseMessage]]:
    return [c for c in model.calls if not is_summary_request(c)]


def system_of(messages: list[BaseMessage]) -> str:
    assert isinstance(messages[0], SystemMessage)
    return messages[0].text


def conversation_of(messages: list[BaseMessage]) -> str:
    return "\n".join(m.text for m in messages[1:])


def searching(query: str) -> Any:
    """Calls memory_search once, then answers with what the tool returned."""

    def script(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return AIMessage(content=f"[{messages[-1].status}] {messages[-1].text}")
        call = {"name": "memory_search", "args": {"query": query, "limit": 5}, "id": "s1"}
        return AIMessage(content="", tool_calls=[call])

    return script


async def past_exchanges(stack: Stack, chat: str, texts: list[str], start_ms: int) -> list[str]:
    """Exchanges already answered (message, reply, turn record), written as the gateway and
    engine write them, at chosen times (one second apart); the entry ids of the messages."""
    log = stack.log
    out = []
    for i, text in enumerate(texts):
        ts = start_ms + i * 1_000
        inbound = WhatsAppMessage(
            id=f"old-{uuid.uuid4().hex}", chat_id=chat, from_=chat, body=text, timestamp=ts
        )
        event = REGISTRY.event(inbound, source="whatsapp", timestamp=ts)
        at = (await log.append(keys.chat(chat), event)).id
        reply = WhatsAppMessage(
            id=f"out-{uuid.uuid4().hex}", chat_id=chat, from_="me", body=f"noted {i}",
            timestamp=ts + 1, from_me=True,
        )  # fmt: skip
        reply_event = REGISTRY.event(
            reply, source="whatsapp", timestamp=ts + 1, causation_id=event.event_id
        )
        await log.append(keys.chat(chat), reply_event)
        turn = ChatTurn(chat_id=chat, cause=event.event_id, answered=[event.event_id], through=at)
        await log.append(keys.chat(chat), REGISTRY.event(turn, source="engine", timestamp=ts + 2))
        out.append(at)
    return out


async def memory_events(stack: Stack, person: str) -> list[Any]:
    return [e.data for e in await stack.log.read(keys.memory(person))]


async def summaries(stack: Stack, person: str) -> list[MemorySummary]:
    return [d for d in await memory_events(stack, person) if isinstance(d, MemorySummary)]


async def test_a_fact_is_in_the_prompt_after_reset_and_the_session_is_summarized_once(
    stack: Stack,
) -> None:
    model = scripted(remembering())
    number = new_number()
    chat = f"{number}@c.us"
    async with stack.engine(model):
        for i, text in enumerate(
            ["/remember my daughter's name is Sari", "we talked about school", "/reset"], 1
        ):
            await stack.say(number, text)
            await stack.wait_replies(chat, i)
        await wait_until(lambda: summaries(stack, chat), 20)
        await stack.say(number, "what is her name?")
        await stack.wait_replies(chat, 4)
        await stack.say(number, "/reset")  # a session with one exchange: summarized too
        await stack.wait_replies(chat, 5)
        await wait_until(lambda: _count(summaries(stack, chat), 2), 20)
    replies = await stack.replies(chat)
    assert replies[0].startswith("OK, I will remember: my daughter's name is Sari\nid: ")
    last = turn_calls(model)[-1]
    assert "my daughter's name is Sari" in system_of(last)
    assert SUMMARY in system_of(last)  # the first session's summary
    assert "we talked about school" not in conversation_of(last)  # a new session
    written = await summaries(stack, chat)
    assert [s.messages for s in written] == [2, 2]
    assert len({s.session_end for s in written}) == 2
    assert len([c for c in model.calls if is_summary_request(c)]) == 2


async def _count(pending: Any, n: int) -> bool:
    return len(await pending) >= n


async def test_after_an_hour_of_silence_a_new_session_still_knows_the_fact(stack: Stack) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    two_hours_ago = now_ms() - 2 * HOUR_MS  # the silence: a clock the test sets
    ends = await past_exchanges(
        stack, chat, ["my daughter's name is Sari", "she likes drawing"], two_hours_ago
    )
    store = MemoryStore(stack.log, max_chars=500, source="test")
    await store.save(chat, "Their daughter is called Sari", by="model", key=uuid.uuid4().hex)
    model = scripted(remembering())
    async with stack.engine(model):
        await stack.say(number, "what is her name?")
        await stack.wait_replies(chat, 3)
        await wait_until(lambda: summaries(stack, chat), 20)
    (prompt,) = turn_calls(model)
    assert "Their daughter is called Sari" in system_of(prompt)
    assert "she likes drawing" not in conversation_of(prompt)  # the silence ended that session
    (summary,) = await summaries(stack, chat)
    assert summary.session_start == ends[0] and summary.messages == 4  # the whole old session
    assert ids.after(summary.session_end, ends[-1])  # its last reply


async def test_a_fact_outlives_200_more_messages_and_poison_in_its_stream(stack: Stack) -> None:
    model = scripted(remembering())
    number = new_number()
    chat = f"{number}@c.us"
    async with stack.engine(model):
        await stack.say(number, "/remember I am allergic to peanuts")
        await stack.wait_replies(chat, 1)
        await past_exchanges(stack, chat, [f"chat {i}" for i in range(200)], now_ms())
        poison = {"eventId": "p", "source": "elsewhere", "timestamp": "1", "type": "memory:saved"}
        await stack.redis.xadd(keys.memory(chat), poison | {"data": '{"person": 1'})
        await stack.redis.xadd(keys.memory(chat), {"junk": "only"})
        await stack.say(number, "what should I not eat?")
        await stack.wait_answered(chat)
    (prompt,) = turn_calls(model)
    assert "I am allergic to peanuts" in system_of(prompt)  # poison skipped, nothing crashed
    assert len(prompt) - 1 <= stack.settings.session_history_limit  # the window is full


async def test_the_models_memory_save_survives_a_restart_and_is_seen_by_another_worker(
    stack: Stack,
) -> None:
    number = new_number()
    chat = f"{number}@c.us"

    def saves(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            return AIMessage(content=f"saved [{messages[-1].status}]")
        call = {"name": "memory_save", "args": {"text": "Their cat is called Milo"}, "id": "m1"}
        return AIMessage(content="", tool_calls=[call])

    async with stack.engine(scripted(saves)):
        await stack.say(number, "my cat is Milo")
        await stack.wait_replies(chat, 1)
    (saved,) = await memory_events(stack, chat)
    assert isinstance(saved, MemorySaved) and saved.by == "model" and saved.chat_id == chat
    (asked,) = [e for e in await stack.chat_events(chat) if e.type == "whatsapp:message"][:1]
    assert saved.sources == [asked.event_id]
    other = scripted(remembering(searching("cat")))
    async with stack.engine(other, tools=await stack.another_mcp()):  # a new worker, its MCP
        await stack.say(number, "what is my cat called?")
        await stack.wait_replies(chat, 2)
    replies = await stack.replies(chat)
    assert replies[0] == "saved [success]"
    assert "Their cat is called Milo" in system_of(turn_calls(other)[0])
    assert replies[1].startswith("[success]") and "Their cat is called Milo" in replies[1]


async def test_memory_search_finds_a_message_1000_messages_back(stack: Stack) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    texts = ["the wifi password at the cabin is mango42"]
    texts += [f"message {i} about the weather and the traffic" for i in range(999)]
    await past_exchanges(stack, chat, texts, now_ms() - 3_000_000)
    model = scripted(remembering(searching("cabin wifi password")))
    async with stack.engine(model):
        await stack.say(number, "what was the cabin wifi password?")
        await stack.wait_replies(chat, 1001)
    reply = (await stack.replies(chat))[-1]
    assert reply.startswith("[success]") and "mango42" in reply
    assert '"ranking":"bm25"' in reply.replace(" ", "")


async def test_forget_takes_a_fact_out_of_later_prompts_and_searches(stack: Stack) -> None:
    model = scripted(remembering(searching("durian fruit")))
    number = new_number()
    chat = f"{number}@c.us"
    async with stack.engine(model):
        for i, text in enumerate(
            [
                "/remember I love durian",
                "/remember I live in Bandung",
                "/remember " + "x" * 501,
                "/forget durian",
                "/forget durian",
                "/memory",
                "any fruit for me?",
            ],
            1,
        ):
            await stack.say(number, text)
            await stack.wait_replies(chat, i)
    replies = await stack.replies(chat)
    assert "at most 500 (MEMORY_FACT_MAX_CHARS)" in replies[2]
    assert replies[3] == "Forgotten: I love durian"
    assert replies[4].startswith("That did not work: no saved fact matches")
    assert "I live in Bandung" in replies[5] and "durian" not in replies[5]
    prompt = turn_calls(model)[-1]
    assert "I live in Bandung" in system_of(prompt) and "durian" not in system_of(prompt)
    assert replies[6].startswith("[success]") and "durian" not in replies[6].lower()
    events = await memory_events(stack, chat)
    assert [type(e) for e in events] == [MemorySaved, MemorySaved, MemoryForgotten]


@pytest.fixture
async def rules(stack: Stack) -> AsyncIterator[dict[str, Any]]:
    await stack.redis.delete(keys.ACCESS)
    yield {"owner_numbers": (f"{new_number()}@c.us",)}
    await stack.redis.delete(keys.ACCESS)


async def test_a_contacts_turn_never_sees_the_owners_memory(
    stack: Stack, rules: dict[str, Any]
) -> None:
    owner = rules["owner_numbers"][0].split("@")[0]
    contact = new_number()
    owner_chat, chat = f"{owner}@c.us", f"{contact}@c.us"

    def prying(messages: list[BaseMessage]) -> AIMessage:
        if isinstance(messages[-1], ToolMessage):
            results = [m for m in messages if isinstance(m, ToolMessage)]
            return AIMessage(content=" || ".join(f"{m.status}: {m.text}" for m in results))
        calls = [
            {"name": "memory_search", "args": {"query": "safe code 4321"}, "id": "a"},
            {"name": "memory_forget", "args": {"fact": "safe code"}, "id": "b"},
            {"name": "memory_save", "args": {"text": "I like tea"}, "id": "c"},
        ]
        return AIMessage(content="", tool_calls=calls)

    model = scripted(remembering(prying))
    async with stack.engine(model, **rules):
        await stack.say(owner, "/remember the safe code is 4321")
        await stack.wait_replies(owner_chat, 1)
        await stack.say(owner, f"/allow +{contact}")
        await stack.wait_replies(owner_chat, 2)
        await stack.say(contact, "what is the safe code?")
        (answer,) = await stack.wait_replies(chat, 1)
    assert "4321" not in answer and "4321" not in system_of(turn_calls(model)[0])
    assert "no saved fact matches" in answer  # the forget found nothing of theirs
    owners = await memory_events(stack, owner_chat)
    assert [type(e) for e in owners] == [MemorySaved]  # untouched
    (theirs,) = await memory_events(stack, chat)
    assert isinstance(theirs, MemorySaved) and theirs.text == "I like tea"


async def test_without_a_model_memory_commands_work_and_no_summary_is_written(
    stack: Stack,
) -> None:
    dead: dict[str, Any] = {
        "llm_provider": "openai",
        "openai_base_url": f"http://127.0.0.1:{free_port()}/v1",  # nobody listens
        "openai_api_key": "k",
        "llm_model": "m",
    }
    number = new_number()
    chat = f"{number}@c.us"
    await past_exchanges(stack, chat, ["hello", "plans for the weekend"], now_ms() - 60_000)
    async with stack.engine(build_model(Settings(**dead)), **dead) as running:
        for i, text in enumerate(["/remember I run on Sundays", "/reset", "/memory"], 3):
            await stack.say(number, text)
            await stack.wait_replies(chat, i)
        await wait_until(lambda: not running.engine.recall.tasks, 20)
        assert running.engine.recall.summaries_written == 0
    replies = await stack.replies(chat)
    assert "I run on Sundays" in replies[-1]
    assert await summaries(stack, chat) == []


async def test_a_group_has_its_own_memory_and_never_shows_a_members_own(
    stack: Stack, rules: dict[str, Any]
) -> None:
    owner, member = rules["owner_numbers"][0].split("@")[0], new_number()
    group = f"120363{random.randrange(10**12):012d}@g.us"
    model = scripted(remembering())
    async with stack.engine(model, allowed_groups=(group,), **rules):
        await stack.say(owner, "/remember my bank PIN hint is blue")
        await stack.wait_replies(f"{owner}@c.us", 1)
        await say_in_group(stack, group, owner, "/remember team lunch is on Fridays")
        await stack.wait_replies(group, 1)
        await say_in_group(stack, group, member, "ASPRI, when is lunch?")
        await stack.wait_replies(group, 2)
    (prompt,) = turn_calls(model)
    assert "team lunch is on Fridays" in system_of(prompt)
    assert "bank PIN" not in system_of(prompt)
    (fact,) = await memory_events(stack, group)
    assert isinstance(fact, MemorySaved) and fact.person == group


async def test_a_summary_that_failed_is_written_by_a_later_turn_once(stack: Stack) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    await past_exchanges(stack, chat, ["we planned the trip to Bali"], now_ms() - 2 * HOUR_MS)
    failures = [RuntimeError("the model fell over")]

    def flaky(messages: list[BaseMessage]) -> AIMessage:
        if is_summary_request(messages) and failures:
            raise failures.pop()
        return remembering()(messages)

    model = scripted(flaky)
    async with stack.engine(model) as running:
        await stack.say(number, "hi again")
        await stack.wait_replies(chat, 2)
        await wait_until(lambda: not failures and not running.engine.recall.tasks, 20)
        assert await summaries(stack, chat) == []
        for i, text in enumerate(["still there?", "and now?"], 3):
            await stack.say(number, text)
            await stack.wait_replies(chat, i)
            await wait_until(lambda: not running.engine.recall.tasks, 20)
    (summary,) = await summaries(stack, chat)
    assert summary.text == SUMMARY and summary.messages == 2
    assert len([c for c in model.calls if is_summary_request(c)]) == 2  # the failure, then one
