"""The status fold on its own (what every engine's acks go through): recorded once per message
and status, never moving backwards, unknown names recorded but not folded."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from aspri.api.whatsapp.channel import ChannelError
from aspri.api.whatsapp.engines.local import LocalChannel
from aspri.api.whatsapp.statuses import latest, record_status
from aspri.schemas.status import WhatsAppStatus
from aspri.streams import keys
from aspri.streams.log import EventLog

CHAT = "628111222333@c.us"


def report(message_id: str, status: str, **extra: str) -> WhatsAppStatus:
    return WhatsAppStatus(chat_id=CHAT, message_id=message_id, status=status, **extra)


async def test_the_fold_keeps_the_furthest_status(redis: Redis) -> None:
    log = EventLog(redis)
    moves = []
    for name in ("read", "delivered", "read", "sent", "played-on-a-new-device"):
        recorded = await record_status(log, report("m1", name))
        moves.append((recorded.duplicate, recorded.changed))
    assert moves == [(False, True), (False, False), (True, False), (False, False), (False, False)]
    await record_status(log, report("m2", "queued"))
    await record_status(
        log, report("m2", "failed", error_code="131026", error_title="Undeliverable")
    )
    folded = await latest(redis, CHAT, ["m1", "m2", "m3"])
    assert {k: (v.status, v.error) for k, v in folded.items()} == {
        "m1": ("read", None),
        "m2": ("failed", "131026: Undeliverable"),
    }
    events = await log.read(keys.chat(CHAT))
    assert [e.data.status for e in events] == [
        "read",
        "delivered",
        "sent",
        "played-on-a-new-device",
        "queued",
        "failed",
    ]
    assert all(e.type == "whatsapp:status" and e.v == 1 and e.data.timestamp for e in events)


async def test_a_channel_reports_through_the_gateway_hook(redis: Redis) -> None:
    channel = LocalChannel()
    with pytest.raises(ChannelError):
        await channel.report_status(report("m1", "read"))
    log = EventLog(redis)

    async def record(status: WhatsAppStatus) -> object:
        return await record_status(log, status)

    channel.on_status = record
    await channel.report_status(report("m1", "delivered"))
    assert (await latest(redis, CHAT, ["m1"]))["m1"].status == "delivered"
