"""The outbox's two scripts (``_BEGIN``, ``_FINISH``) on the real embedded Valkey: one send of one
part is two round trips, and every idempotency and locking rule holds across processes and
crashes (a lock left by another gateway process, an append recorded before a crash).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from aspri.api.whatsapp.outbox import OWN_ID, fingerprint
from aspri.schemas import REGISTRY, WhatsAppMessage
from aspri.streams import keys
from aspri.streams.log import EventLog
from tests.api.whatsapp.conftest import FakeChannel, GatewayFactory

BOB = "15551234567@c.us"


async def _calls(redis: Redis) -> dict[str, int]:
    stats: dict[str, Any] = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def test_a_send_of_one_part_is_two_round_trips(open_gateway: GatewayFactory) -> None:
    channel = FakeChannel()
    async with open_gateway(channel=channel) as gw:
        outbox = gw.gateway.outbox
        await outbox.send(BOB, "warm-up", key="w", causation_id=None)  # scripts loaded
        before = await _calls(gw.redis)
        sent = await outbox.send(BOB, "hello", key="k", causation_id=None)
        after = await _calls(gw.redis)
        delta = {name: n - before.get(name, 0) for name, n in after.items()}
        assert delta.get("evalsha") == 2, delta
        assert delta.get("multi", 0) == 0 and delta.get("exec", 0) == 0, delta
        assert delta.get("xadd") == 1 and delta.get("hgetall") == 1
        assert sent.duplicate is False and channel.sent[-1] == (BOB, "hello")
        assert await gw.redis.exists(keys.whatsapp_send_lock("k")) == 0
        assert await gw.redis.ttl(keys.whatsapp_send("k")) > 0
        again = await outbox.send(BOB, "hello", key="k", causation_id=None)
        assert again.duplicate is True and again.event_id == sent.event_id
        assert len(channel.sent) == 2


async def test_a_send_in_progress_in_another_process_is_409(open_gateway: GatewayFactory) -> None:
    channel = FakeChannel()
    async with open_gateway(channel=channel) as gw:
        body = {"phoneNumber": BOB, "message": "once", "idempotencyKey": "elsewhere"}
        await gw.redis.set(keys.whatsapp_send_lock("elsewhere"), "another-process", px=60_000)
        busy = await gw.client.post("/api/send-message", json=body)
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "send_in_progress"
        assert channel.sent == []
        await gw.redis.delete(keys.whatsapp_send_lock("elsewhere"))  # that process finished
        ok = await gw.client.post("/api/send-message", json=body)
        assert ok.status_code == 200 and channel.sent == [(BOB, "once")]
        # a done send answers with its result even while someone holds the lock
        await gw.redis.set(keys.whatsapp_send_lock("elsewhere"), "another-process", px=60_000)
        done = await gw.client.post("/api/send-message", json=body)
        assert done.status_code == 200 and done.json()["data"]["duplicate"] is True
        assert await gw.redis.get(keys.whatsapp_send_lock("elsewhere")) == b"another-process"


async def test_a_failed_send_releases_its_lock_and_keeps_the_request(
    open_gateway: GatewayFactory,
) -> None:
    from aspri.api.whatsapp.channel import ChannelError

    channel = FakeChannel()
    async with open_gateway(channel=channel) as gw:
        channel.fail_with = ChannelError("not connected", 503)
        body = {"phoneNumber": BOB, "message": "first", "idempotencyKey": "f"}
        assert (await gw.client.post("/api/send-message", json=body)).status_code == 503
        assert await gw.redis.exists(keys.whatsapp_send_lock("f")) == 0
        state = await gw.redis.hgetall(keys.whatsapp_send("f"))
        assert state == {b"request": fingerprint(BOB, "first").encode()}
        other = {**body, "message": "second"}
        reused = await gw.client.post("/api/send-message", json=other)
        assert reused.status_code == 409
        assert reused.json()["error"]["code"] == "idempotency_key_reused"


async def test_a_part_appended_before_a_crash_is_recorded_once(
    open_gateway: GatewayFactory,
) -> None:
    """The part's append is in the log but the send's state does not say so (the state written
    by an older gateway that died between the two): the part keeps its first event."""
    channel = FakeChannel()
    async with open_gateway(channel=channel) as gw:
        log = EventLog(gw.redis)
        first = REGISTRY.event(
            WhatsAppMessage(id="OLD1", chat_id=BOB, from_=OWN_ID, body="hi", from_me=True),
            source="whatsapp",
        )
        await log.append(keys.chat(BOB), first, idempotency_key="whatsapp:out:crash:0")
        await gw.redis.hset(keys.whatsapp_send("crash"), "request", fingerprint(BOB, "hi"))
        body = {"phoneNumber": BOB, "message": "hi", "idempotencyKey": "crash"}
        sent = (await gw.client.post("/api/send-message", json=body)).json()["data"]
        assert sent["eventId"] == first.event_id and sent["duplicate"] is False
        assert [e.event_id for e in await gw.stream(keys.chat(BOB))] == [first.event_id]
        assert await gw.redis.exists(keys.whatsapp_send_lock("crash")) == 0
        again = (await gw.client.post("/api/send-message", json=body)).json()["data"]
        assert again["duplicate"] is True and again["eventId"] == first.event_id
        # the echo of what the channel took this time is not recorded as a second message
        assert await gw.redis.exists(keys.idempotency(f"whatsapp:in:{sent['messageId']}")) == 1
