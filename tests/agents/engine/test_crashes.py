"""A worker killed at any point of a turn leads to exactly one reply.

"Killed" is the hard stop of a worker's task at a chosen point (nothing after it runs, nothing
is acked), after which another worker with another consumer name takes the event over, as when
a process dies. Real gateways, real MCP server, real Valkey; a scripted chat model stands in
for the LLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_ollama import ChatOllama
from litestar import Litestar, post

from aspri.agents.prompt import HELP
from aspri.agents.tools import McpTools
from aspri.agents.turns import APOLOGY
from aspri.schemas.envelope import text
from aspri.streams import keys
from tests.agents.engine.stack import (
    Stack,
    calls_tool_then_answers,
    echo,
    mcp_children,
    new_number,
    scripted,
)
from tests.helpers import serve_asgi, wait_until


@contextlib.contextmanager
def hang_after(
    obj: Any, name: str, when: Callable[..., bool] = lambda *a, **k: True
) -> Iterator[asyncio.Event]:
    """Make ``obj.name`` hang (until the worker is killed) right after its first matching
    call returned; the event is set at that moment."""
    original = getattr(obj, name)
    reached = asyncio.Event()

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        if not reached.is_set() and when(*args, **kwargs):
            reached.set()
            await asyncio.Future()  # never resolves: the worker dies here
        return result

    setattr(obj, name, wrapper)
    try:
        yield reached
    finally:
        setattr(obj, name, original)


async def wait_handled(stack: Stack, event_id: str, within: float = 20) -> None:
    """Wait until the inbound event's entry is acked by the engine group."""
    entries = await stack.redis.xrevrange(keys.WHATSAPP_MESSAGES, count=500)
    entry = next(text(e[0]) for e in entries if text(e[1][b"eventId"]) == event_id)

    async def acked() -> bool:
        pending = await stack.redis.xpending_range(
            keys.WHATSAPP_MESSAGES, keys.ENGINE_GROUP, min=entry, max=entry, count=1
        )
        return not pending

    await wait_until(acked, within)


async def test_killed_after_recording_before_the_ack(stack: Stack) -> None:
    number, first, second = new_number(), scripted(echo), scripted(echo)
    chat = f"{number}@c.us"
    async with stack.engine(first) as worker:
        with hang_after(worker.engine.conversation, "_record") as reached:
            sent = await stack.say(number, "hello")
            await asyncio.wait_for(reached.wait(), 20)
            await worker.kill()
    async with stack.engine(second):
        await wait_handled(stack, sent["eventId"])
    assert await stack.replies(chat) == ["re: hello"]
    assert [t.kind for t in await stack.turns(chat)] == ["reply"]
    assert second.calls == []  # the redelivered event found nothing left to answer


async def test_killed_after_the_send(stack: Stack) -> None:
    number, first, second = new_number(), scripted(echo), scripted(echo)
    chat = f"{number}@c.us"
    async with stack.engine(first) as worker:
        with hang_after(worker.engine.conversation, "_send") as reached:
            sent = await stack.say(number, "hello")
            await asyncio.wait_for(reached.wait(), 20)
            await worker.kill()
    assert await stack.turns(chat) == []
    async with stack.engine(second):
        await wait_handled(stack, sent["eventId"])
    assert await stack.replies(chat) == ["re: hello"]
    turns = await stack.turns(chat)
    assert [(t.kind, t.answered) for t in turns] == [("recovered", [sent["eventId"]])]
    assert second.calls == []  # the reply in the log was recognised; no second answer


async def test_killed_mid_tool_call(stack: Stack) -> None:
    """The job was created, the worker died before the model saw the result: the replayed
    turn calls the tool again with the same key, and the cron gateway creates nothing new."""
    number = new_number()
    chat = f"{number}@c.us"
    job = {"name": "stretch", "schedule": "0 * * * *", "payload": {"chatId": chat, "message": "🤸"}}
    script = calls_tool_then_answers("cronjob_create", job, "scheduled hourly")
    first, second = scripted(script), scripted(script)
    async with stack.engine(first) as worker:
        with hang_after(stack.tools, "call", lambda name, *a, **k: name == "cronjob_create") as hit:
            sent = await stack.say(number, "remind me to stretch every hour")
            await asyncio.wait_for(hit.wait(), 20)
            await worker.kill()
    async with stack.engine(second):
        await wait_handled(stack, sent["eventId"])
    assert await stack.replies(chat) == ["scheduled hourly [success]"]
    r = await stack.http.get(f"{stack.settings.cronjob_url}/api/jobs", params={"limit": 100})
    mine = [j for j in r.json()["data"]["jobs"] if j["payload"].get("chatId") == chat]
    assert len(mine) == 1
    (turn,) = await stack.turns(chat)
    assert turn.tool_calls[0].idempotency_key == f"engine:{sent['eventId']}:tool:1.0"


async def test_llm_failing_retries_then_one_apology_and_the_dlq(stack: Stack) -> None:
    """The real Ollama client at a server that answers every call with a 500 (reachable, so
    the model breaker stays closed): every delivery fails, the last one apologises once, the
    event goes to the dead-letter stream, and slash commands keep working. (A model that is
    not reachable at all is answered at once instead: test_model_offline.)"""
    number = new_number()
    chat = f"{number}@c.us"

    @post("/api/chat", status_code=500)
    async def broken() -> dict[str, str]:
        return {"error": "model crashed"}

    async with (
        serve_asgi(Litestar([broken], debug=False)) as url,
        stack.engine(ChatOllama(model="qwen2.5:3b", base_url=url), max_deliveries=3),
    ):
        sent = await stack.say(number, "are you there?")
        await stack.wait_replies(chat, 1)  # the apology: by then the engine's group exists
        await wait_handled(stack, sent["eventId"])
        await stack.say(number, "/help")
        replies = await stack.wait_replies(chat, 2)
    assert replies == [APOLOGY, HELP]
    turns = await stack.turns(chat)
    assert [t.kind for t in turns] == ["failed", "command"]
    assert "model crashed" in (turns[0].error or "")
    dead = [
        e
        for _, e in await stack.redis.xrange(keys.dlq(keys.WHATSAPP_MESSAGES))
        if text(e[b"eventId"]) == sent["eventId"]
    ]
    assert len(dead) == 1 and text(dead[0][b"deliveries"]) == "3"


@pytest.mark.slow
async def test_the_mcp_server_is_restarted_when_it_dies(stack: Stack) -> None:
    """The next tool call after the MCP child died starts a new one (the replies themselves
    do not go through MCP, so the second turn's model calls a tool)."""
    before = set(mcp_children())
    tools = McpTools(stack.settings)
    await tools.start()
    lookup = calls_tool_then_answers("whatsapp_get_chats", {}, "re: two")

    def script(messages: list[BaseMessage]) -> Any:
        last = next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))
        return lookup(messages) if last == "two" else echo(messages)

    try:
        (pid,) = set(mcp_children()) - before
        number = new_number()
        chat = f"{number}@c.us"
        async with stack.engine(scripted(script), tools=tools):
            await stack.say(number, "one")
            await stack.wait_replies(chat, 1)
            os.kill(pid, signal.SIGKILL)
            await wait_until(lambda: pid not in mcp_children(), 10)
            await stack.say(number, "two")
            assert await stack.wait_replies(chat, 2) == ["re: one", "re: two [success]"]
        assert tools.restarts == 1
        assert len(set(mcp_children()) - before) == 1
    finally:
        await tools.close()


@pytest.mark.slow
async def test_an_mcp_server_that_dies_between_calls_is_restarted_at_once(stack: Stack) -> None:
    """No call has to fail first: the worker notices the exit and starts a new server."""
    before = set(mcp_children())
    tools = McpTools(stack.settings)
    await tools.start()
    try:
        (pid,) = set(mcp_children()) - before
        os.kill(pid, signal.SIGKILL)
        await wait_until(lambda: tools.restarts == 1, 20)
        (new,) = await wait_until(lambda: set(mcp_children()) - before, 20)
        assert new != pid
        await tools.call("whatsapp_list_chats", {})  # served by the new one: no ToolsUnavailable
        assert tools.restarts == 1
    finally:
        await tools.close()
