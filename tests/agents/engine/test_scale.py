"""Two workers, 200 chats x 5 messages: every message answered once, each chat in order.

Each worker has its own MCP session (its own ``aspri mcp`` process), as in production. The
messages go through the real WhatsApp gateway; a scripted chat model stands in for the LLM and
echoes what it answers, so the replies show which messages each turn covered.
"""

from __future__ import annotations

import asyncio

import pytest

from aspri.schemas.chat import ChatTurn
from aspri.streams import keys
from tests.agents.engine.stack import Stack, echo, new_number, scripted
from tests.helpers import wait_until

CHATS = 200
PER_CHAT = 5


@pytest.mark.slow
async def test_two_workers_answer_every_message_once_in_order(stack: Stack) -> None:
    second_tools = await stack.another_mcp()
    numbers = [new_number() for _ in range(CHATS)]
    models = [scripted(echo), scripted(echo)]
    limit = asyncio.Semaphore(50)

    async def person(number: str) -> None:
        for i in range(PER_CHAT):
            async with limit:
                await stack.say(number, f"m{i}")

    async with (
        stack.engine(models[0], engine_concurrency=8, claim_idle_ms=5000) as one,
        stack.engine(
            models[1], tools=second_tools, engine_concurrency=8, claim_idle_ms=5000
        ) as two,
    ):
        await asyncio.gather(*(person(n) for n in numbers))

        async def all_answered() -> bool:
            turns = [len(t.answered) for n in numbers for t in await stack.turns(f"{n}@c.us")]
            return sum(turns) >= CHATS * PER_CHAT

        await wait_until(all_answered, 120, interval=0.5)
        processed = [w.engine.app.runners[0].processed for w in (one, two)]
    assert all(p > 0 for p in processed), processed  # both workers took part

    chats = {f"{n}@c.us" for n in numbers}
    dead = await stack.log.read(keys.dlq(keys.WHATSAPP_MESSAGES), skip_undecodable=False)
    assert not [e for e in dead if e.data.chat_id in chats]
    expected = [f"m{i}" for i in range(PER_CHAT)]
    for number in numbers:
        events = await stack.chat_events(f"{number}@c.us")
        inbound = {
            e.event_id: e.data.body
            for e in events
            if e.type == "whatsapp:message" and not e.data.from_me
        }
        turns = [e.data for e in events if isinstance(e.data, ChatTurn)]
        answered = [inbound[a] for t in turns for a in t.answered]
        assert answered == expected, number  # each message once, in the order typed
        replies = [e.data.body for e in events if e.type == "whatsapp:message" and e.data.from_me]
        assert replies == ["re: " + " | ".join(inbound[a] for a in t.answered) for t in turns]
