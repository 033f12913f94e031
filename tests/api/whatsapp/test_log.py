"""Inbound and outbound messages through the event log, on the real embedded Valkey.

``FakeChannel`` stands in for WhatsApp (it cannot be reached from a test machine): it records
sends and fails on demand; everything behind it is the real gateway.
"""

from __future__ import annotations

import asyncio

from aspri.api.whatsapp.channel import ChannelError
from aspri.schemas import WhatsAppMessage
from aspri.streams import keys
from tests.api.whatsapp.conftest import FakeChannel, GatewayFactory

BOB = "15551234567@c.us"


def inbound(message_id: str, body: str = "hi", *, from_me: bool = False) -> WhatsAppMessage:
    return WhatsAppMessage(
        id=message_id,
        chat_id=BOB,
        from_=BOB,
        from_name="Bob",
        body=body,
        timestamp=1_700_000_000,
        from_me=from_me,
    )


async def test_redelivered_message_is_one_event(open_gateway: GatewayFactory) -> None:
    channel = FakeChannel()
    async with open_gateway(channel=channel) as gw:
        assert channel.on_message is not None
        await asyncio.gather(*(channel.on_message(inbound("wamid.A")) for _ in range(5)))
        await channel.on_message(inbound("wamid.A"))
        assert len(await gw.stream(keys.WHATSAPP_MESSAGES)) == 1
        assert len(await gw.stream(keys.chat(BOB))) == 1
        # Seconds from a client are stored as given and shown as milliseconds.
        page = (await gw.client.get(f"/api/messages/{BOB}")).json()["data"]
        assert page["messages"][0]["timestamp"] == 1_700_000_000_000


async def test_own_messages_are_history_not_work(open_gateway: GatewayFactory) -> None:
    channel = FakeChannel()
    async with open_gateway(channel=channel) as gw:
        assert channel.on_message is not None
        await channel.on_message(inbound("wamid.OWN", "typed on the phone", from_me=True))
        assert await gw.stream(keys.WHATSAPP_MESSAGES) == []
        assert [e.data.body for e in await gw.stream(keys.chat(BOB))] == ["typed on the phone"]


async def test_echo_of_a_sent_message_is_not_recorded_twice(open_gateway: GatewayFactory) -> None:
    """WhatsApp Web reports our own sends back as messages; the gateway already recorded them."""
    channel = FakeChannel()
    async with open_gateway(channel=channel) as gw:
        sent = (
            await gw.client.post("/api/send-message", json={"phoneNumber": BOB, "message": "yo"})
        ).json()
        assert channel.on_message is not None
        await channel.on_message(inbound(sent["data"]["messageId"], "yo", from_me=True))
        assert len(await gw.stream(keys.chat(BOB))) == 1


async def test_channel_failure_is_502_or_503_and_nothing_is_recorded(
    open_gateway: GatewayFactory,
) -> None:
    channel = FakeChannel()
    async with open_gateway(channel=channel) as gw:
        body = {"phoneNumber": BOB, "message": "hello", "idempotencyKey": "k"}
        channel.fail_with = ChannelError("WhatsApp refused it", 502)
        refused = await gw.client.post("/api/send-message", json=body)
        assert refused.status_code == 502
        assert refused.json()["error"] == {
            "code": "channel_error",
            "message": "WhatsApp refused it",
        }
        channel.fail_with = ChannelError("not connected", 503)
        down = await gw.client.post("/api/send-message", json=body)
        assert down.status_code == 503 and down.json()["error"]["code"] == "channel_unavailable"
        assert await gw.stream(keys.chat(BOB)) == []
        assert (await gw.client.get(f"/api/messages/{BOB}")).status_code == 404
        channel.fail_with = None
        ok = await gw.client.post("/api/send-message", json=body)  # the retry goes through once
        assert ok.status_code == 200 and ok.json()["data"]["duplicate"] is False
        assert channel.sent == [(BOB, "hello")]
        assert len(await gw.stream(keys.chat(BOB))) == 1


async def test_split_send_resumes_after_a_failure_without_resending(
    open_gateway: GatewayFactory,
) -> None:
    channel = FakeChannel(max_text=10)
    async with open_gateway(channel=channel) as gw:
        body = {"phoneNumber": BOB, "message": "aaaa bbbb cccc dddd", "idempotencyKey": "long"}
        channel.fail_with, channel.fail_after = ChannelError("flaky", 503), 1
        first = await gw.client.post("/api/send-message", json=body)
        assert (
            first.status_code == 503
            and "1 of 2 parts were sent" in first.json()["error"]["message"]
        )
        assert [e.data.body for e in await gw.stream(keys.chat(BOB))] == ["aaaa bbbb"]
        channel.fail_with = None
        second = (await gw.client.post("/api/send-message", json=body)).json()["data"]
        assert channel.sent == [(BOB, "aaaa bbbb"), (BOB, "cccc dddd")]
        assert second["parts"] == 2 and second["messageIds"] == ["FAKE1", "FAKE2"]
        assert [e.data.body for e in await gw.stream(keys.chat(BOB))] == ["aaaa bbbb", "cccc dddd"]


async def test_concurrent_sends_with_one_key_send_once(open_gateway: GatewayFactory) -> None:
    channel = FakeChannel()
    async with open_gateway(channel=channel) as gw:
        body = {"phoneNumber": BOB, "message": "only once", "idempotencyKey": "race"}
        responses = await asyncio.gather(
            *(gw.client.post("/api/send-message", json=body) for _ in range(5))
        )
        assert all(r.status_code == 200 for r in responses)
        assert len({r.json()["data"]["eventId"] for r in responses}) == 1
        assert sum(not r.json()["data"]["duplicate"] for r in responses) == 1
        assert channel.sent == [(BOB, "only once")]


async def test_sends_are_paced_per_chat(open_gateway: GatewayFactory) -> None:
    channel = FakeChannel()
    async with open_gateway(
        channel=channel, send_rate_per_s=80.0, send_per_chat_interval_s=6.0
    ) as gw:
        for n in range(3):
            await gw.client.post("/api/send-message", json={"phoneNumber": BOB, "message": f"m{n}"})
        await gw.client.post(
            "/api/send-message", json={"phoneNumber": "6281234567890", "message": "x"}
        )
        # Bob's 2nd and 3rd waited 6 s each (on the test clock); the other chat only 1/80 s.
        assert gw.clock.sleeps[:2] == [6.0, 6.0]
        assert all(s <= 1 / 80 + 1e-9 for s in gw.clock.sleeps[2:])
        assert len(channel.sent) == 4


async def test_history_and_projections_survive_a_restart_and_a_rebuild(
    open_gateway: GatewayFactory,
) -> None:
    async with open_gateway() as gw:
        await gw.client.post(
            "/api/local/messages", json={"from": BOB, "text": "hello", "name": "Bob"}
        )
        await gw.client.post("/api/send-message", json={"phoneNumber": BOB, "message": "hi Bob"})
        before = {
            path: (await gw.client.get(path)).json()
            for path in (f"/api/messages/{BOB}", "/api/chats", "/api/contacts/search?q=bob")
        }
        redis = gw.redis
    async with open_gateway() as gw:  # a new gateway process, same log
        for path, body in before.items():
            assert (await gw.client.get(path)).json() == body
    # The projections are only caches of the log: drop them and they are rebuilt on start.
    await redis.delete(keys.WHATSAPP_CHATS, keys.WHATSAPP_CHAT_CURSORS, keys.WHATSAPP_CONTACTS)
    async with open_gateway() as gw:
        for path, body in before.items():
            assert (await gw.client.get(path)).json() == body
        assert before["/api/chats"]["data"][0]["messageCount"] == 2


async def test_a_crash_between_append_and_fold_is_caught_up_on_start(
    open_gateway: GatewayFactory,
) -> None:
    """Entries appended while no gateway folded them (a crash) show up after the next start."""
    async with open_gateway() as gw:
        await gw.client.post(
            "/api/local/messages", json={"from": BOB, "text": "one", "name": "Bob"}
        )
        await gw.client.get("/api/chats")
        log = gw.gateway.log
    # Appended behind the gateway's back, as if it died before folding.
    from aspri.schemas import REGISTRY

    await log.append(
        keys.chat(BOB), REGISTRY.event(inbound("wamid.LATE", "two"), source="whatsapp")
    )
    async with open_gateway() as gw:
        chats = (await gw.client.get("/api/chats")).json()["data"]
        assert chats[0]["messageCount"] == 2 and chats[0]["lastMessage"] == "two"


class WaitingForScan(FakeChannel):
    """A channel that waits for its QR code to be scanned (as the browser engine does)."""

    def state(self) -> str:
        return "scan_qr"

    async def qr(self) -> str | None:
        return "2@AbCdEf,ghIjK,LmNoP="


async def test_qr_and_health_while_waiting_for_a_scan(open_gateway: GatewayFactory) -> None:
    async with open_gateway(channel=WaitingForScan()) as gw:
        qr = (await gw.client.get("/api/session/qr")).json()["data"]
        assert qr == {"state": "scan_qr", "qr": "2@AbCdEf,ghIjK,LmNoP="}
        health = await gw.client.get("/health")
        assert health.status_code == 200
        assert health.json()["data"]["status"] == "degraded"
        assert health.json()["data"]["channel"] == "scan_qr"
