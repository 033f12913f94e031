"""Cloud API sends against the Graph API stand-in: the 24-hour window and its template, rate
limits and outages retried, permanent refusals recorded as failed and told to the owner once."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from aspri.api.common import ApiError
from aspri.streams import keys
from tests.api.whatsapp.conftest import GatewayFactory
from tests.api.whatsapp.graph_recorder import GraphRecorder, graph_recorder
from tests.api.whatsapp.test_cloud import (
    CLOUD,
    SENDER,
    cloud_channel,
    deliver,
    fresh_inbound,
    webhook,
)

OWNER = "6281234567890"
CHAT = f"{SENDER}@c.us"
OWNER_CHAT = f"{OWNER}@c.us"


async def send(client: httpx.AsyncClient, text: str, key: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"phoneNumber": SENDER, "message": text}
    if key:
        body["idempotencyKey"] = key
    return await client.post("/api/send-message", json=body)


async def history(client: httpx.AsyncClient, number: str = SENDER) -> list[dict[str, Any]]:
    response = await client.get(f"/api/messages/{number}")
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["data"]["messages"]
    return messages


def sent_to(graph: GraphRecorder, number: str) -> list[dict[str, Any]]:
    return [r.body for r in graph.requests if r.body["to"] == number]


async def test_outside_the_window_the_template_carries_the_text(
    open_gateway: GatewayFactory,
) -> None:
    async with graph_recorder() as graph:
        channel = cloud_channel(
            whatsapp_cloud_api_base=graph.url, whatsapp_cloud_template="reminder_v1"
        )
        settings = CLOUD | {"whatsapp_cloud_template": "reminder_v1"}
        async with open_gateway(channel=channel, **settings) as gw:
            # The person wrote long ago (Meta's 2024 timestamp): the window is closed.
            old = webhook([fresh_inbound("wamid.OLD") | {"timestamp": "1717000000"}])
            assert (await deliver(gw.client, old)).is_success
            response = await send(gw.client, "Reminder:\n\tpay the  rent\n\ntoday")
            assert response.status_code == 200, response.text
            assert graph.requests[-1].body == {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": SENDER,
                "type": "template",
                "template": {
                    "name": "reminder_v1",
                    "language": {"code": "en_US"},
                    "components": [
                        {
                            "type": "body",
                            "parameters": [
                                {"type": "text", "text": "Reminder: pay the rent today"}
                            ],
                        }
                    ],
                },
            }
            # Once the person writes, free text again.
            assert (await deliver(gw.client, webhook([fresh_inbound("wamid.NEW")]))).is_success
            assert (await send(gw.client, "thanks")).status_code == 200
            assert graph.requests[-1].body["type"] == "text"
            chats = (await gw.client.get("/api/chats")).json()["data"]
            assert chats[0]["lastInbound"] > 1717000000 * 1000


async def test_outside_the_window_without_a_template_fails_clearly_and_tells_the_owner(
    open_gateway: GatewayFactory,
) -> None:
    async with graph_recorder() as graph:
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url)
        async with open_gateway(channel=channel, owner_numbers=(OWNER_CHAT,), **CLOUD) as gw:
            opened = webhook([fresh_inbound("wamid.OWN", sender=OWNER)])
            assert (await deliver(gw.client, opened)).is_success
            for _ in range(2):  # the engine's redelivery: same key, one record, one notice
                refused = await send(gw.client, "your reminder: call mom", key="cron-7")
                assert refused.status_code == 422
                error = refused.json()["error"]
                assert error["code"] == "outside_window"
                assert "outside the 24-hour window" in error["message"]
                assert "WHATSAPP_CLOUD_TEMPLATE" in error["message"]
            assert sent_to(graph, SENDER) == []  # nothing opaque from Meta: never asked

            [failed] = await history(gw.client)
            assert failed["fromMe"] is True and failed["body"] == "your reminder: call mom"
            assert failed["status"] == "failed"
            assert failed["statusError"] == "outside_window: outside the 24-hour window"

            [notice] = sent_to(graph, OWNER)
            assert f"+{SENDER}" in notice["text"]["body"]
            assert "outside the 24-hour window" in notice["text"]["body"]
            assert "call mom" in notice["text"]["body"]
            owner_chat = await history(gw.client, OWNER)
            assert [m["status"] for m in owner_chat if m["fromMe"]] == ["sent"]


async def test_rate_limits_and_outages_are_retried_then_sent(open_gateway: GatewayFactory) -> None:
    async with graph_recorder() as graph:
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url)
        async with open_gateway(channel=channel, owner_numbers=(OWNER_CHAT,), **CLOUD) as gw:
            assert (await deliver(gw.client, webhook([fresh_inbound("wamid.IN")]))).is_success
            graph.failures = [
                (400, 130429, "Rate limit hit"),
                (400, 131056, "(Business Account, Consumer Account) pair rate limit hit"),
                (503, 131000, "Something went wrong"),
            ]
            response = await send(gw.client, "hello after a storm")
            assert response.status_code == 200, response.text
            assert len(sent_to(graph, SENDER)) == 4
            [reply] = [m for m in await history(gw.client) if m["fromMe"]]
            assert reply["status"] == "sent" and reply["id"] == response.json()["data"]["messageId"]

            # Still limited after every try: a 503 to try later, not a failure to report.
            graph.failures = [(400, 80007, "Rate limit issues")] * 4
            limited = await send(gw.client, "one more")
            assert limited.status_code == 503
            assert limited.json()["error"]["code"] == "channel_unavailable"
            assert len(sent_to(graph, SENDER)) == 8
            assert sent_to(graph, OWNER) == []
            statuses = [e for e in await gw.stream(keys.chat(CHAT)) if e.type == "whatsapp:status"]
            assert statuses == []


async def test_a_permanent_refusal_is_recorded_and_told_once_without_a_loop(
    open_gateway: GatewayFactory,
) -> None:
    async with graph_recorder() as graph:
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url)
        async with open_gateway(channel=channel, owner_numbers=(OWNER_CHAT,), **CLOUD) as gw:
            for number in (SENDER, OWNER):
                opened = webhook([fresh_inbound(f"wamid.IN{number}", sender=number)])
                assert (await deliver(gw.client, opened)).is_success
            graph.failures = [(400, 131030, "Recipient phone number not in allowed list")]
            refused = await send(gw.client, "hi there", key="k1")
            assert refused.status_code == 422
            assert "131030" in refused.json()["error"]["message"]
            assert len(sent_to(graph, SENDER)) == 1  # a permanent refusal is not retried
            [failed] = [m for m in await history(gw.client) if m["fromMe"]]
            assert failed["status"] == "failed"
            assert failed["statusError"] == "131030: Recipient phone number not in allowed list"
            [notice] = sent_to(graph, OWNER)
            assert "Recipient phone number not in allowed list" in notice["text"]["body"]

            # The owner's own chat refuses too: the notice is recorded as failed, and nobody
            # is told about the notice (no loop).
            graph.fail_status = 400
            again = await send(gw.client, "second try", key="k2")
            assert again.status_code == 422
            assert len(sent_to(graph, OWNER)) == 2
            owner_chat = await history(gw.client, OWNER)
            assert [m["status"] for m in owner_chat if m["fromMe"]] == ["failed", "sent"]
            graph.fail_status = None
            assert (await send(gw.client, "second try", key="k2")).status_code == 200
            assert len(sent_to(graph, OWNER)) == 2

            # A turn's reply and then its apology, refused: one failure, one notice.
            outbox = gw.gateway.outbox
            for text, key in (("the reply", "engine:c9:reply"), ("sorry", "engine:c9:sorry")):
                graph.failures = [(400, 131026, "Message undeliverable")]
                with pytest.raises(ApiError):
                    await outbox.send(CHAT, text, key=key, causation_id="c9")
            notices = sent_to(graph, OWNER)[2:]
            assert len(notices) == 1 and "the reply" in notices[0]["text"]["body"]


async def test_a_summary_folded_before_last_inbound_existed_still_opens_the_window(
    open_gateway: GatewayFactory,
) -> None:
    async with graph_recorder() as graph:
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url)
        async with open_gateway(channel=channel, **CLOUD) as gw:
            assert (await deliver(gw.client, webhook([fresh_inbound("wamid.IN")]))).is_success
            directory = gw.gateway.directory
            assert await directory.last_inbound(CHAT) > 0
            # The projection as an older gateway wrote it: no lastInbound.
            raw = json.loads(await gw.redis.hget(keys.WHATSAPP_CHATS, CHAT))
            del raw["lastInbound"]
            await gw.redis.hset(keys.WHATSAPP_CHATS, CHAT, json.dumps(raw))
            assert (await send(gw.client, "still inside")).status_code == 200
            assert graph.requests[-1].body["type"] == "text"
