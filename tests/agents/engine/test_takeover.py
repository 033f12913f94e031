"""Issue 9's takeover, end to end: a caller with the API key sees a message's eventId on the
live stream and tries to answer it first with the engine's idempotency key (or to mark it
answered with causationId). The engine's own credential (derived from the key, handed to its
MCP server) is the only one that may; the person still gets the engine's reply, and the chat
keeps working."""

from __future__ import annotations

import asyncio

from langchain_core.messages import AIMessage, BaseMessage

from tests.agents.engine.stack import Stack, echo, new_number, scripted


async def test_a_rest_caller_cannot_take_over_or_silence_a_reply(stack: Stack) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    release = asyncio.Event()

    async def held(messages: list[BaseMessage]) -> AIMessage:
        await release.wait()  # the attacker acts while the engine is thinking
        return echo(messages)

    async with stack.engine(scripted(held)):
        event_id = (await stack.say(number, "hello"))["eventId"]
        send = f"{stack.settings.whatsapp_url}/api/send-message"
        attack = {"phoneNumber": chat, "message": "pwned"}
        takeover = await stack.http.post(
            send, json=attack | {"idempotencyKey": f"engine:{event_id}:reply"}
        )
        silence = await stack.http.post(send, json=attack | {"causationId": event_id})
        assert (takeover.status_code, silence.status_code) == (403, 403)
        release.set()
        assert await stack.wait_replies(chat, 1) == ["re: hello"]
        await stack.say(number, "/reset")
        await stack.say(number, "still there?")
        await stack.wait_answered(chat)
    replies = await stack.replies(chat)
    assert "pwned" not in replies and replies[-1] == "re: still there?"
