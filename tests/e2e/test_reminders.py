"""Reminders across every part: a person writes in the web chat, the engine creates a job
through MCP, the scheduler fires it on a controlled clock, the engine writes the message, and
the web chat shows it — once, even when the trigger is delivered again.

Real Valkey, real gateways, real scheduler, real MCP server over stdio. The LLM is the one
stand-in: a scripted chat model (only the prompt-job test uses it; slash commands never do).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from aspri.agents.scheduler import Scheduler
from aspri.streams import keys
from tests.agents.engine.stack import ManualClock, Stack, echo, new_number, scripted
from tests.helpers import wait_until


@contextlib.asynccontextmanager
async def scheduler(stack: Stack, clock: ManualClock) -> AsyncIterator[Scheduler]:
    node = Scheduler(stack.redis, owner=f"e2e-{new_number()}", clock=clock, lease_ttl_s=5)
    task = asyncio.create_task(node.run())
    try:
        yield node
    finally:
        node.request_stop()
        await asyncio.wait_for(task, 20)


async def jobs_of(stack: Stack, chat: str) -> list[dict]:  # type: ignore[type-arg]
    r = await stack.http.get(f"{stack.settings.cronjob_url}/api/jobs", params={"limit": 100})
    return [j for j in r.json()["data"]["jobs"] if j["payload"].get("chatId") == chat]


async def test_remind_in_1m_ends_as_one_message_in_the_web_chat(loop_stack: Stack) -> None:
    stack = loop_stack
    number = new_number()
    chat = f"{number}@c.us"
    clock = ManualClock(time.time())
    async with stack.engine(scripted(echo)) as worker, scheduler(stack, clock):
        await stack.say(number, "/remind in 1m stretch your legs")
        (confirmation,) = await stack.wait_replies(chat, 1)
        assert confirmation.startswith("OK, I will remind you")
        (job,) = await jobs_of(stack, chat)
        assert job["runAt"] and job["status"] == "running"

        clock.advance(61)
        await stack.wait_replies(chat, 2)
        await wait_until(lambda: worker.engine.app.runners[1].processed >= 1, 20)
        (trigger,) = await stack.log.read(keys.CRON_EVENTS, count=1, reverse=True)
        assert trigger.data.job_id == job["jobId"]
        await stack.log.append(keys.CRON_EVENTS, trigger)  # the same run delivered again
        await wait_until(lambda: worker.engine.app.runners[1].processed >= 2, 20)

    shown = [(m["fromMe"], m["body"]) for m in await stack.history(number)]
    assert shown == [
        (False, "/remind in 1m stretch your legs"),
        (True, confirmation),
        (True, "⏰ Reminder: stretch your legs"),
    ]
    (job,) = await jobs_of(stack, chat)
    assert job["status"] == "completed"


async def test_a_job_the_model_scheduled_with_a_prompt_runs_a_turn(loop_stack: Stack) -> None:
    """The model schedules a prompt job through MCP; when it fires, the engine runs a turn
    in the person's session and the answer reaches the web chat."""
    stack = loop_stack
    number = new_number()
    chat = f"{number}@c.us"
    clock = ManualClock(time.time())
    run_at = (datetime.now(ZoneInfo("Asia/Jakarta")) + timedelta(minutes=5)).isoformat()

    def model_script(messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if "[Scheduled job" in last.text:
            return AIMessage(content="Good morning! Your plan: write the report.")
        if isinstance(last, ToolMessage):
            return AIMessage(content="I will check in with you in 5 minutes.")
        if last.text == "check in with me in 5 minutes":
            job = {
                "name": "Check-in",
                "runAt": run_at,
                "payload": {"chatId": chat, "prompt": "Check in on the user's plan"},
            }
            return AIMessage(
                content="", tool_calls=[{"name": "cronjob_create", "args": job, "id": "call-1"}]
            )
        return echo(messages)

    model = scripted(model_script)
    async with stack.engine(model), scheduler(stack, clock):
        await stack.say(number, "today I will write the report")
        await stack.wait_replies(chat, 1)
        await stack.say(number, "check in with me in 5 minutes")
        await stack.wait_replies(chat, 2)
        (job,) = await jobs_of(stack, chat)
        assert job["payload"]["prompt"] == "Check in on the user's plan"
        clock.advance(5 * 60 + 1)
        replies = await stack.wait_replies(chat, 3)
    assert replies[2] == "Good morning! Your plan: write the report."
    prompt = model.calls[-1]
    assert "today I will write the report" in [m.text for m in prompt]
    turns = await stack.turns(chat)
    assert [t.kind for t in turns] == ["reply", "reply", "cron"]
    assert turns[2].job_id == job["jobId"]
