"""A send the channel refuses for good ends its turn: recorded with the reason, the model asked
once, no retry, no dead letter. The case: the Cloud API outside the person's 24-hour window
with no template configured, where the gateway refuses before asking Meta; the Graph API
stand-in (tests/api/whatsapp/graph_recorder.py) stands in for Meta."""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import AIMessage, BaseMessage

from aspri.schemas import REGISTRY, CronTrigger
from aspri.streams import keys
from tests.agents.engine.stack import new_number, running_stack, scripted
from tests.api.whatsapp.graph_recorder import graph_recorder
from tests.api.whatsapp.test_cloud import CLOUD
from tests.helpers import wait_until


async def test_a_reply_refused_for_good_is_recorded_once_and_not_retried(
    redis_url: str, tmp_path: Path
) -> None:
    calls: list[int] = []

    def briefing(messages: list[BaseMessage]) -> AIMessage:
        calls.append(len(messages))
        return AIMessage("Here is your morning briefing")

    chat = f"{new_number()}@c.us"
    reminder = CronTrigger(
        job_id="water",
        job_name="Water",
        scheduled_time=1,
        payload={"chatId": chat, "message": "Drink water"},
    )
    prompt = CronTrigger(
        job_id="brief",
        job_name="Briefing",
        scheduled_time=1,
        payload={"chatId": chat, "prompt": "Give me my morning briefing"},
    )
    async with (
        graph_recorder() as graph,
        running_stack(
            redis_url,
            tmp_path,
            **CLOUD,
            whatsapp_cloud_api_base=graph.url,
            owner_numbers=(chat,),
        ) as stack,
        stack.engine(scripted(briefing), max_deliveries=3) as worker,
    ):
        for trigger in (reminder, prompt):
            await stack.log.append(keys.CRON_EVENTS, REGISTRY.event(trigger, source="cronjob"))
        app = worker.engine.app  # its runners are there once the worker has started
        await wait_until(lambda: len(app.runners) == 2 and app.runners[1].processed >= 2, 20)
        (turn,) = await stack.turns(chat)
        dead = await stack.log.read(keys.dlq(keys.CRON_EVENTS))
    assert (turn.kind, turn.job_id, turn.reply_message_id) == ("cron", "brief", None)
    assert "24-hour window" in (turn.error or ""), turn.error
    assert len(calls) == 1 and turn.deliveries == 1  # the model was not asked again
    assert dead == []
    assert graph.sends() == []  # refused before Meta was asked, the reminder too
