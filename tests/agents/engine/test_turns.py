"""Turns against the real gateways, the real MCP server over stdio and the real Valkey.

A scripted chat model stands in for the LLM (a test machine has none): it answers by a script
and records the prompts it was given.
"""

from __future__ import annotations

import asyncio

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage

from aspri.schemas.chat import ChatTurn
from tests.agents.engine.stack import (
    Stack,
    calls_tool_then_answers,
    echo,
    new_number,
    scripted,
    trailing_user_texts,
)
from tests.helpers import wait_until


async def test_a_message_gets_one_reply_with_the_history_in_the_prompt(stack: Stack) -> None:
    model = scripted(echo)
    number = new_number()
    chat = f"{number}@c.us"
    async with stack.engine(model):
        await stack.say(number, "hello")
        assert await stack.wait_replies(chat, 1) == ["re: hello"]
        await stack.say(number, "how are you?")
        await stack.wait_answered(chat)
    assert await stack.replies(chat) == ["re: hello", "re: how are you?"]
    prompt = model.calls[-1]
    assert isinstance(prompt[0], SystemMessage)
    assert chat in prompt[0].text and "Asia/Jakarta" in prompt[0].text
    assert "cronjob_create" in prompt[0].text
    assert [m.text for m in prompt[1:]] == ["hello", "re: hello", "how are you?"]
    turns = await stack.turns(chat)
    assert [t.kind for t in turns] == ["reply", "reply"]
    assert all(len(t.answered) == 1 and t.reply_message_id for t in turns)
    assert turns[0].model == stack.settings.model_name and turns[0].llm_calls == 1
    assert turns[0].timings.total_ms >= turns[0].timings.agent_ms > 0
    shown = [(m["fromMe"], m["body"]) for m in await stack.history(number)]
    assert shown == [
        (False, "hello"),
        (True, "re: hello"),
        (False, "how are you?"),
        (True, "re: how are you?"),
    ]


async def test_quick_messages_while_busy_become_one_turn(stack: Stack) -> None:
    """Three messages typed while the worker is still answering the first one are answered
    together; their own events, handled afterwards, find nothing left to answer."""
    release = asyncio.Event()
    busy = asyncio.Event()

    async def slow_first(messages: list[BaseMessage]) -> AIMessage:
        if trailing_user_texts(messages) == ["hi"]:
            busy.set()
            await release.wait()
        return echo(messages)

    model = scripted(slow_first)
    number = new_number()
    chat = f"{number}@c.us"
    async with stack.engine(model) as worker:
        await stack.say(number, "hi")
        await asyncio.wait_for(busy.wait(), 20)
        for text in ("are you there", "I need", "a reminder"):
            await stack.say(number, text)
        release.set()
        turns = await stack.wait_answered(chat)
        await wait_until(lambda: worker.engine.app.runners[0].processed >= 4, 20)
    assert await stack.replies(chat) == ["re: hi", "re: are you there | I need | a reminder"]
    assert [len(t.answered) for t in turns] == [1, 3]
    assert len(model.calls) == 2


async def test_a_restarted_worker_continues_the_conversation(stack: Stack) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    async with stack.engine(scripted(echo)):
        await stack.say(number, "my name is Budi")
        await stack.wait_answered(chat)
    second = scripted(echo)
    async with stack.engine(second):  # a new worker: new consumer name, empty cache
        await stack.say(number, "what is my name?")
        await stack.wait_replies(chat, 2)
    assert [m.text for m in second.calls[0][1:]] == [
        "my name is Budi",
        "re: my name is Budi",
        "what is my name?",
    ]


async def test_a_tool_error_goes_back_to_the_model(stack: Stack) -> None:
    """An invalid cron expression comes back from the real cron gateway as a tool error; the
    model reads it and answers, the turn is recorded with the failed call."""
    number = new_number()
    chat = f"{number}@c.us"
    bad = {"name": "x", "schedule": "61 * * * *", "payload": {"chatId": chat, "message": "x"}}
    model = scripted(calls_tool_then_answers("cronjob_create", bad, "that failed"))
    async with stack.engine(model):
        await stack.say(number, "remind me at a strange time")
        turns = await stack.wait_answered(chat)
    assert await stack.replies(chat) == ["that failed [error]"]
    (call,) = turns[0].tool_calls
    assert call.name == "cronjob_create" and not call.ok and call.position == "1.0"
    tool_message = model.calls[1][-1]
    assert "61" in tool_message.text and "minute" in tool_message.text.lower()


async def test_the_models_side_effects_carry_keys_from_the_event(stack: Stack) -> None:
    number = new_number()
    chat = f"{number}@c.us"
    job = {"name": "water", "schedule": "0 9 * * *", "payload": {"chatId": chat, "message": "💧"}}
    model = scripted(calls_tool_then_answers("cronjob_create", job, "scheduled"))
    async with stack.engine(model):
        sent = await stack.say(number, "remind me to drink water every morning")
        turns = await stack.wait_answered(chat)
    (call,) = turns[0].tool_calls
    assert call.ok and call.idempotency_key == f"engine:{sent['eventId']}:tool:1.0"
    r = await stack.http.get(f"{stack.settings.cronjob_url}/api/jobs", params={"limit": 100})
    mine = [j for j in r.json()["data"]["jobs"] if j["payload"].get("chatId") == chat]
    assert [j["name"] for j in mine] == ["water"]


async def test_a_cron_prompt_runs_a_turn_in_the_chats_session(stack: Stack) -> None:
    from aspri.schemas import REGISTRY, CronTrigger
    from aspri.streams import keys

    number = new_number()
    chat = f"{number}@c.us"

    def script(messages: list[BaseMessage]) -> AIMessage:
        if "[Scheduled job" in messages[-1].text:
            return AIMessage(content=f"briefing ({len(messages)} messages seen)")
        return echo(messages)

    model = scripted(script)
    trigger = CronTrigger(
        job_id="job-brief",
        job_name="Morning briefing",
        scheduled_time=1_800_000_000_000,
        payload={"chatId": chat, "prompt": "Give me my morning briefing"},
    )
    event = REGISTRY.event(trigger, source="cronjob")
    async with stack.engine(model) as worker:
        await stack.say(number, "good night")
        await stack.wait_answered(chat)
        for _ in range(2):  # the same run twice (the scheduler's event ids are deterministic)
            await stack.log.append(keys.CRON_EVENTS, event)
        await stack.wait_replies(chat, 2)
        await wait_until(lambda: worker.engine.app.runners[1].processed >= 2, 20)
    replies = await stack.replies(chat)
    assert replies == ["re: good night", "briefing (4 messages seen)"]
    assert len(model.calls) == 2
    prompt = model.calls[-1]
    assert [m.text for m in prompt[1:3]] == ["good night", "re: good night"]
    assert "Give me my morning briefing" in prompt[3].text
    cron_turns = [t for t in await stack.turns(chat) if t.kind == "cron"]
    assert [(t.job_id, t.scheduled_time) for t in cron_turns] == [("job-brief", 1_800_000_000_000)]


async def test_cron_messages_are_sent_once_and_targetless_triggers_only_logged(
    stack: Stack,
) -> None:
    from aspri.schemas import REGISTRY, CronTrigger
    from aspri.streams import keys

    number = new_number()
    chat = f"{number}@c.us"
    model = scripted(echo)
    literal = CronTrigger(
        job_id="job-tea",
        job_name="Tea",
        scheduled_time=1_800_000_060_000,
        payload={"phoneNumber": f"+{number}", "message": "Tea time!"},
    )
    nobody = CronTrigger(job_id="job-log", job_name="Just log", scheduled_time=1, payload={})
    async with stack.engine(model) as worker:
        await stack.say(number, "hi")
        await stack.wait_answered(chat)
        for trigger in (literal, nobody, literal):
            await stack.log.append(keys.CRON_EVENTS, REGISTRY.event(trigger, source="cronjob"))
        await wait_until(lambda: worker.engine.app.runners[1].processed >= 3, 20)
    assert await stack.replies(chat) == ["re: hi", "Tea time!"]
    assert len(model.calls) == 1
    dead = await stack.log.read(keys.dlq(keys.CRON_EVENTS))  # shared with other tests
    assert not [e for e in dead if e.data.job_id in {"job-tea", "job-log"}]


def _turn_kinds(turns: list[ChatTurn]) -> list[str]:
    return [t.kind for t in turns]


async def test_a_model_looping_on_tools_gets_a_fixed_answer_not_a_retry(stack: Stack) -> None:
    from aspri.agents.agent import TOO_MANY_STEPS

    number = new_number()
    chat = f"{number}@c.us"
    looping = scripted(
        lambda m: AIMessage(
            content="",
            tool_calls=[{"name": "whatsapp_get_chats", "args": {"limit": 1}, "id": f"c{len(m)}"}],
        )
    )
    async with stack.engine(looping):
        await stack.say(number, "hi")
        (turn,) = await stack.wait_answered(chat)
    assert await stack.replies(chat) == [TOO_MANY_STEPS]
    assert turn.deliveries == 1 and len(turn.tool_calls) >= 10
    assert [c.position for c in turn.tool_calls[:3]] == ["1.0", "2.0", "3.0"]
