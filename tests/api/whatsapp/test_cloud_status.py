"""Delivery statuses from the Cloud API's ``statuses`` webhooks, shaped as Meta documents them
(``entry[].changes[].value.statuses[]`` with ``id``, ``status``, ``timestamp``,
``recipient_id``, ``errors[]``), moving a sent reply's state in the history."""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aspri.streams import keys
from tests.api.whatsapp.conftest import GatewayFactory
from tests.api.whatsapp.graph_recorder import graph_recorder
from tests.api.whatsapp.test_cloud import (
    CLOUD,
    SENDER,
    cloud_channel,
    deliver,
    fresh_inbound,
    webhook,
)

CHAT = f"{SENDER}@c.us"


def status(wamid: str, name: str, seconds: int = 1717000100, **extra: Any) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": name,
        "timestamp": str(seconds),
        "recipient_id": SENDER,
        "conversation": {"id": "c1", "origin": {"type": "service"}},
        "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
    } | extra


UNDELIVERABLE = {
    "code": 131026,
    "title": "Message undeliverable",
    "message": "Message undeliverable",
    "error_data": {"details": "Message Undeliverable."},
}


async def history(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await client.get(f"/api/messages/{SENDER}")
    assert response.status_code == 200, response.text
    return {m["id"]: m for m in response.json()["data"]["messages"]}


async def send(client: httpx.AsyncClient, text: str) -> str:
    response = await client.post("/api/send-message", json={"phoneNumber": SENDER, "message": text})
    assert response.status_code == 200, response.text
    message_id: str = response.json()["data"]["messageId"]
    return message_id


async def test_statuses_move_the_reply_forward_never_back(open_gateway: GatewayFactory) -> None:
    async with graph_recorder() as graph:
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url)
        async with open_gateway(channel=channel, **CLOUD) as gw:
            assert (await deliver(gw.client, webhook([fresh_inbound("wamid.IN1")]))).is_success
            wamid = await send(gw.client, "your reminder is set")
            assert (await history(gw.client))[wamid]["status"] == "sent"

            seen = []
            for name in ("sent", "delivered", "read"):
                response = await deliver(gw.client, webhook([], [status(wamid, name)]))
                assert response.json()["data"]["statuses"] == 1, response.text
                seen.append((await history(gw.client))[wamid]["status"])
            assert seen == ["sent", "delivered", "read"]

            # A late "delivered" and a repeated "read" change nothing; the repeat is not
            # recorded twice.
            await deliver(gw.client, webhook([], [status(wamid, "delivered")]))
            await deliver(gw.client, webhook([], [status(wamid, "read")]))
            assert (await history(gw.client))[wamid]["status"] == "read"
            chat = await gw.stream(keys.chat(CHAT))
            reports = [
                (e.data.message_id, e.data.status) for e in chat if e.type == "whatsapp:status"
            ]
            assert reports == [(wamid, "sent"), (wamid, "delivered"), (wamid, "read")]


async def test_out_of_order_and_failed_statuses(open_gateway: GatewayFactory) -> None:
    async with graph_recorder() as graph:
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url)
        async with open_gateway(channel=channel, **CLOUD) as gw:
            assert (await deliver(gw.client, webhook([fresh_inbound("wamid.IN2")]))).is_success
            first = await send(gw.client, "one")
            second = await send(gw.client, "two")
            # One delivery with read before delivered before sent (Meta does not promise order).
            batch = [status(first, "read"), status(first, "delivered"), status(first, "sent")]
            await deliver(gw.client, webhook([], batch))
            failed = status(second, "failed", errors=[UNDELIVERABLE])
            await deliver(gw.client, webhook([], [status(second, "sent"), failed]))
            await deliver(gw.client, webhook([], [status(second, "delivered")]))

            messages = await history(gw.client)
            assert messages[first]["status"] == "read"
            assert messages[second]["status"] == "failed"
            assert messages[second]["statusError"] == "131026: Message undeliverable"
            events = [e for e in await gw.stream(keys.chat(CHAT)) if e.type == "whatsapp:status"]
            failure = next(e.data for e in events if e.data.status == "failed")
            assert failure.error_detail == "Message Undeliverable."
            assert failure.timestamp == 1717000100 * 1000


async def test_a_status_for_an_unknown_message_is_recorded(open_gateway: GatewayFactory) -> None:
    async with open_gateway(channel=cloud_channel(), **CLOUD) as gw:
        response = await deliver(gw.client, webhook([], [status("wamid.NOBODY", "delivered")]))
        assert response.status_code == 200
        assert response.json()["data"]["statuses"] == 1
        events = await gw.stream(keys.chat(CHAT))
        assert [(e.type, e.data.message_id) for e in events] == [
            ("whatsapp:status", "wamid.NOBODY")
        ]
        assert events[0].causation_id is None
        # The chat has no messages to show, and the status invents none, nor a chat to list.
        assert await history(gw.client) == {}
        await gw.gateway.directory.refresh(CHAT)  # as a restart's catch-up does
        assert (await gw.client.get("/api/chats")).json()["data"] == []
        # A status naming a message the person sent (not one of ours) is recorded too.
        assert (await deliver(gw.client, webhook([fresh_inbound("wamid.THEIRS")]))).is_success
        response = await deliver(gw.client, webhook([], [status("wamid.THEIRS", "read")]))
        assert response.json()["data"]["statuses"] == 1
        assert (await history(gw.client))["wamid.THEIRS"]["status"] is None


async def test_a_status_links_to_the_send_it_is_about(
    open_gateway: GatewayFactory, spans: InMemorySpanExporter
) -> None:
    async with graph_recorder() as graph:
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url)
        async with open_gateway(channel=channel, **CLOUD) as gw:
            assert (await deliver(gw.client, webhook([fresh_inbound("wamid.IN9")]))).is_success
            response = await gw.client.post(
                "/api/send-message", json={"phoneNumber": SENDER, "message": "traced"}
            )
            sent = response.json()["data"]
            await deliver(gw.client, webhook([], [status(sent["messageId"], "delivered")]))
            [report] = [e for e in await gw.stream(keys.chat(CHAT)) if e.type == "whatsapp:status"]
            assert report.causation_id == sent["eventId"]
            finished = spans.get_finished_spans()
            [send_span] = [s for s in finished if s.name == "whatsapp send"]
            [status_span] = [s for s in finished if s.name == "whatsapp status"]
            assert [link.context.trace_id for link in status_span.links] == [
                send_span.context.trace_id
            ]
            assert status_span.attributes["aspri.event_id"] == sent["eventId"]


async def test_malformed_statuses_are_named_never_a_server_error(
    open_gateway: GatewayFactory,
) -> None:
    async with open_gateway(channel=cloud_channel(), **CLOUD) as gw:
        odd: list[Any] = [
            {"status": "read", "recipient_id": SENDER},  # no id
            status("wamid.X", "read", recipient_id=None),
            status("wamid.X", "read", recipient_id="not a number"),
            status("wamid.X", "read", timestamp="yesterday"),
            status("wamid.X", "read", errors="boom"),
            status("wamid.X", "read", errors=[{"code": {"nested": 1}}]),
            status("wamid." + "x" * 5000, "read"),
            status(12, "read"),
            "a string",
            None,
        ]
        response = await deliver(gw.client, webhook([], odd))
        assert response.status_code == 200, response.text
        receipt = response.json()["data"]
        assert receipt["statuses"] == 0 and receipt["ignored"] == len(odd)
        problems = receipt["problems"]
        assert len(problems) == len(odd)
        assert "`id`" in problems[0] and "recipient_id" in problems[1]
        assert "recipient_id" in problems[2] and "timestamp" in problems[3]
        assert "errors" in problems[4]

        for statuses in ("nope", [[]], {"id": 1}, 7):
            payload = webhook([], [])
            payload["entry"][0]["changes"][0]["value"]["statuses"] = statuses
            response = await deliver(gw.client, payload)
            assert response.status_code == 200, response.text
            assert response.json()["data"]["ignored"] == 1
        # A good status in a batch with bad ones is still recorded.
        batch = [{"id": "wamid.Y"}, status("wamid.GOOD", "delivered")]
        response = await deliver(gw.client, webhook([], batch))
        assert response.json()["data"]["statuses"] == 1
        events = await gw.stream(keys.chat(CHAT))
        assert [e.data.message_id for e in events] == ["wamid.GOOD"]
        assert (await gw.client.get("/health")).status_code == 200
