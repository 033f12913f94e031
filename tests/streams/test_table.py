"""Event-sourced tables on a real Valkey: rebuild, tailing, snapshots, read-your-writes."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from aspri.schemas import REGISTRY, Event, WhatsAppMessage
from aspri.streams import EventLog, Table
from aspri.streams.log import Range
from tests.helpers import wait_until

Counts = dict[str, int]


def count_by_chat(state: Counts, event: Event[Any]) -> None:
    state[event.data.chat_id] = state.get(event.data.chat_id, 0) + 1


def table(log: EventLog, **options: Any) -> Table[Counts]:
    return Table(log, "s", initial=dict, apply=count_by_chat, state_type=Counts, **options)


async def append(log: EventLog, n: int, chat: str) -> str:
    event = REGISTRY.event(WhatsAppMessage(id=f"m{n}", chat_id=chat, from_="1"))
    return (await log.append("s", event)).id


async def test_rebuilt_table_equals_the_live_one(redis: Redis) -> None:
    log = EventLog(redis)
    live = table(log)
    await live.start()
    for i in range(300):
        await append(log, i, f"chat-{i % 7}")
    await wait_until(lambda: sum(live.state.values()) == 300)
    await live.stop()

    rebuilt = table(log)
    await rebuilt.start(tail=False)
    assert rebuilt.state == live.state
    assert rebuilt.last_id == live.last_id == await log.last_id("s")
    assert rebuilt.replayed == 300


async def test_snapshot_makes_a_restart_replay_only_the_tail(redis: Redis) -> None:
    log = EventLog(redis)
    first = table(log, snapshot_every=100)
    for i in range(250):
        await append(log, i, f"chat-{i % 3}")
    await first.start(tail=False)
    assert first.replayed == 250
    assert await redis.exists("snapshot:s")  # written because 250 >= snapshot_every
    for i in range(250, 260):
        await append(log, i, "chat-new")

    second = table(log, snapshot_every=100)
    await second.start(tail=False)
    assert second.replayed == 10  # only what came after the snapshot
    full = table(log, name="no-snapshot")
    await full.start(tail=False)
    assert full.replayed == 260
    assert second.state == full.state


async def test_corrupt_snapshot_falls_back_to_a_full_replay(redis: Redis) -> None:
    log = EventLog(redis)
    for i in range(5):
        await append(log, i, "c")
    await redis.hset("snapshot:s", mapping={"state": b"{not json", "id": "9-9"})
    t = table(log)
    await t.start(tail=False)
    assert t.state == {"c": 5} and t.replayed == 5


async def test_catch_up_gives_read_your_writes_and_skips_undecodable(redis: Redis) -> None:
    log = EventLog(redis)
    t = table(log)
    await t.start(tail=False)
    await redis.xadd("s", {"type": "whatsapp:message", "data": "{garbage"})
    entry = await append(log, 1, "c")
    await t.wait_for(entry)
    assert t.state == {"c": 1}
    assert t.skipped == 1
    assert t.last_id == entry


async def test_a_read_made_with_others_is_absorbed_once(redis: Redis) -> None:
    """``next_range`` read in one round trip with other reads (``EventLog.ranges``), then
    ``absorb``: what a catch-up applied meanwhile is not applied twice, and a full batch is
    followed by the rest."""
    log = EventLog(redis)
    t = table(log, batch=3)
    await t.start(tail=False)
    for i in range(2):
        await append(log, i, "c")
    [raw, other] = await log.ranges([t.next_range(), Range("s", "-", "+", 1, reverse=True)])
    assert len(raw) == 2 and len(other) == 1
    await t.catch_up()  # another caller got there first
    await t.absorb(raw)
    assert t.state == {"c": 2}
    for i in range(2, 7):
        await append(log, i, "c")
    [raw] = await log.ranges([t.next_range()])
    assert len(raw) == 3  # a full batch: more may wait behind it
    await t.absorb(raw)
    assert t.state == {"c": 7}
    assert t.last_id == await log.last_id("s")
