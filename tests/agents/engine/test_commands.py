"""Slash commands: answered without the model, through the real MCP tools and gateways.

The scripted chat model stands in for the LLM only to prove it is never called for a command.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from aspri.agents import when
from aspri.agents.prompt import HELP
from tests.agents.engine.stack import Stack, echo, new_number, scripted

NOW = datetime(2030, 5, 1, 17, 0, tzinfo=ZoneInfo("Asia/Jakarta"))
CLOCK = NOW.timestamp()


async def test_commands_work_without_the_model(stack: Stack) -> None:
    model = scripted(echo)
    number = new_number()
    chat = f"{number}@c.us"
    async with stack.engine(model, clock=lambda: CLOCK):
        for i, command in enumerate(
            [
                "/help",
                "/remind in 10m take the pizza out",
                "/remind every day at 8:00 vitamins",
                "/jobs",
            ],
            start=1,
        ):
            await stack.say(number, command)
            await stack.wait_replies(chat, i)
        replies = await stack.replies(chat)
        job_ids = [line.split("id: ")[1].split()[0] for line in replies[1:3]]
        await stack.say(number, f"/cancel {job_ids[0]}")
        await stack.say(number, "/cancel not-a-job")
        await stack.say(number, "/status")
        await stack.say(number, "/remind whenever tea")
        await stack.say(number, "/frobnicate")
        await stack.say(number, "/remind in 99999999999m tea")
        await stack.wait_answered(chat)
    replies = await stack.replies(chat)
    assert model.calls == []
    assert replies[0] == HELP
    assert replies[1].startswith("OK, I will remind you Wed 01 May 17:10: take the pizza out")
    assert replies[2].startswith("OK, I will remind you every day at 08:00: vitamins")
    assert "\nNext: " in replies[2] and "+07:00" not in replies[2]
    assert "• Reminder: take the pizza out — scheduled for Wed 01 May 17:10\n" in replies[3]
    assert "• Reminder: vitamins — every day at 08:00 (Asia/Jakarta), next " in replies[3]
    assert "[running]" not in replies[3] and "+07:00" not in replies[3]
    assert replies[4] == "Deleted: Reminder: take the pizza out"
    assert replies[5] == "There is no job not-a-job. See /jobs for yours."
    assert "Jobs: 1 running, 1 in total" in replies[6]
    assert stack.settings.model_name in replies[6]
    assert replies[7].startswith("I did not understand when")
    assert replies[8].startswith("I do not know the command /frobnicate")
    assert "too far ahead" in replies[9]  # once, at the first delivery: no retries, no apology
    r = await stack.http.get(f"{stack.settings.cronjob_url}/api/jobs", params={"limit": 100})
    mine = [j for j in r.json()["data"]["jobs"] if j["payload"].get("chatId") == chat]
    assert [(j["schedule"], j["payload"]["message"]) for j in mine] == [
        ("0 8 * * *", "⏰ Reminder: vitamins")
    ]
    assert all(t.kind == "command" and len(t.answered) == 1 for t in await stack.turns(chat))


async def test_reset_starts_a_new_conversation(stack: Stack) -> None:
    model = scripted(echo)
    number = new_number()
    chat = f"{number}@c.us"
    async with stack.engine(model):
        await stack.say(number, "remember: blue")
        await stack.wait_replies(chat, 1)
        await stack.say(number, "/reset")
        await stack.wait_replies(chat, 2)
        await stack.say(number, "what did I say?")
        await stack.wait_replies(chat, 3)
    assert [m.text for m in model.calls[-1][1:]] == ["what did I say?"]
    assert (await stack.replies(chat))[1].startswith("Done: I forgot our conversation")


async def test_another_chats_job_cannot_be_cancelled(stack: Stack) -> None:
    owner, other = new_number(), new_number()
    async with stack.engine(scripted(echo)):
        await stack.say(owner, "/remind every 15m water")
        (reply,) = await stack.wait_replies(f"{owner}@c.us", 1)
        job_id = reply.split("id: ")[1].split()[0]
        await stack.say(other, f"/cancel {job_id}")
        (refused,) = await stack.wait_replies(f"{other}@c.us", 1)
    assert refused == f"There is no job {job_id} of yours. See /jobs for yours."
    r = await stack.http.get(f"{stack.settings.cronjob_url}/api/jobs/{job_id}")
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("args", "schedule", "run_at", "rest"),
    [
        ("in 10m pizza", None, "2030-05-01T17:10:00+07:00", "pizza"),
        ("in 1h 30m stretch", None, "2030-05-01T18:30:00+07:00", "stretch"),
        ("in 2 hours call mom", None, "2030-05-01T19:00:00+07:00", "call mom"),
        ("at 18:30 dinner", None, "2030-05-01T18:30:00+07:00", "dinner"),
        ("at 9 gym", None, "2030-05-02T09:00:00+07:00", "gym"),
        ("at 7pm walk", None, "2030-05-01T19:00:00+07:00", "walk"),
        ("tomorrow at 9:00 dentist", None, "2030-05-02T09:00:00+07:00", "dentist"),
        ("every day at 8:00 pills", "0 8 * * *", None, "pills"),
        ("every weekday at 7:30 run", "30 7 * * 1-5", None, "run"),
        ("every monday at 9:00 standup", "0 9 * * 1", None, "standup"),
        ("every 15m water", "*/15 * * * *", None, "water"),
        ("every 2h eyes", "0 */2 * * *", None, "eyes"),
        ("every hour stand up", "0 * * * *", None, "stand up"),
        ("*/30 9-17 * * 1-5 drink", "*/30 9-17 * * 1-5", None, "drink"),
    ],
)
def test_when_is_understood(args: str, schedule: str | None, run_at: str | None, rest: str) -> None:
    parsed = when.parse(args, NOW)
    assert parsed.schedule == schedule
    assert (parsed.run_at.isoformat() if parsed.run_at else None) == run_at
    assert parsed.text == rest


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ("", "usage"),
        ("in soon tea", "duration"),
        ("at 25:00 tea", "not a time of day"),
        ("every day tea", "say the time too"),
        ("in 10m", "what should I remind you of"),
        ("every 90m tea", "whole minutes below an hour"),
        ("someday tea", "did not understand"),
        ("in 99999999999m tea", "too far ahead"),
        ("in 3651d tea", "too far ahead"),
    ],
)
def test_when_explains_what_it_did_not_understand(args: str, problem: str) -> None:
    with pytest.raises(when.WhenError, match=problem):
        when.parse(args, NOW)
