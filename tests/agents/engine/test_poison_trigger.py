"""A cron trigger no retry can help goes to the dead-letter stream at its first delivery."""

from __future__ import annotations

from aspri.schemas import REGISTRY, CronTrigger
from aspri.schemas.envelope import text
from aspri.streams import keys
from tests.agents.engine.stack import Stack, echo, new_number, scripted
from tests.helpers import wait_until


async def test_a_trigger_without_a_usable_target_is_dead_lettered_at_once(stack: Stack) -> None:
    bad = {"phoneNumber": "not a number", "message": "hi"}
    trigger = REGISTRY.event(
        CronTrigger(job_id=f"bad-{new_number()}", job_name="x", scheduled_time=1, payload=bad),
        source="someone-else",
    )
    good_number = new_number()
    good = REGISTRY.event(
        CronTrigger(
            job_id=f"good-{good_number}",
            job_name="y",
            scheduled_time=1,
            payload={"chatId": f"{good_number}@c.us", "message": "still works"},
        ),
        source="cronjob",
    )
    await stack.log.append(keys.CRON_EVENTS, trigger)
    await stack.log.append(keys.CRON_EVENTS, good)

    async def dead() -> list[dict[str, str]]:
        entries = await stack.redis.xrange(keys.dlq(keys.CRON_EVENTS))
        fields = [{text(k): text(v) for k, v in f.items()} for _, f in entries]
        return [f for f in fields if f.get("eventId") == trigger.event_id]

    async with stack.engine(scripted(echo), max_deliveries=5, retry_backoff_s=1.0):
        (letter,) = await wait_until(dead, 10)
        assert await stack.wait_replies(f"{good_number}@c.us", 1) == ["still works"]
    assert letter["deliveries"] == "1"
    assert letter["error"].startswith("Permanent:") and "is not a chat" in letter["error"]
