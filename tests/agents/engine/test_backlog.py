"""Nothing silently dropped: whether a message is answered does not depend on the prompt window.

300 ``/help`` from one number reach the engine (as if no rate limit stood in between) faster
than it answers them: every one ends in a recorded turn or a ``chat:coalesced`` record, and
every turn's reply is in the chat. Before, "unanswered" was computed over the last 50 messages
only, and most of such a flood vanished without a reply, a log line or a dead letter.
"""

from __future__ import annotations

import asyncio

from aspri.schemas import REGISTRY, WhatsAppMessage
from aspri.schemas.chat import ChatCoalesced, ChatTurn
from aspri.streams import ids, keys
from tests.agents.engine.stack import Stack, echo, new_number, scripted
from tests.helpers import wait_until

FLOOD = 300


async def accounted(stack: Stack, chat: str) -> tuple[set[str], set[str], set[str]]:
    """Inbound event ids, those answered by a turn, and those covered by a coalesced record."""
    events = await stack.chat_events(chat)
    inbound = {
        e.event_id: e.entry_id or ""
        for e in events
        if isinstance(e.data, WhatsAppMessage) and not e.data.from_me
    }
    answered = {a for e in events if isinstance(e.data, ChatTurn) for a in e.data.answered}
    ends = [e.data.through for e in events if isinstance(e.data, ChatCoalesced)]
    coalesced = {k for k, at in inbound.items() if any(not ids.after(at, end) for end in ends)}
    return set(inbound), answered, coalesced


async def test_a_flood_faster_than_the_engine_is_answered_or_coalesced(stack: Stack) -> None:
    number = new_number()
    chat = f"{number}@c.us"

    async def arrive(n: int) -> None:
        message = WhatsAppMessage(id=f"flood-{number}-{n}", chat_id=chat, from_=chat, body="/help")
        event = REGISTRY.event(message, source="whatsapp")
        await stack.log.append([keys.WHATSAPP_MESSAGES, keys.chat(chat)], event)

    async with stack.engine(scripted(echo), engine_concurrency=4):
        for start in range(0, FLOOD, 50):
            await asyncio.gather(*(arrive(n) for n in range(start, start + 50)))

        async def all_accounted() -> bool:
            inbound, answered, coalesced = await accounted(stack, chat)
            return len(inbound) == FLOOD and inbound <= answered | coalesced

        await wait_until(all_accounted, 90, interval=0.5)
    _, answered, coalesced = await accounted(stack, chat)
    assert not answered & coalesced  # each message one way, not both
    turns = await stack.turns(chat)
    assert all(t.kind == "command" and len(t.answered) == 1 for t in turns)
    assert len(await stack.replies(chat)) == len(turns) == len(answered)
    dead = await stack.log.read(keys.dlq(keys.WHATSAPP_MESSAGES), skip_undecodable=False)
    assert not [e for e in dead if e.data.chat_id == chat]
    print(f"\n{FLOOD} /help: {len(answered)} answered, {len(coalesced)} coalesced, 0 lost")
