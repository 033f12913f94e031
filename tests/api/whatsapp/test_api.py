"""The gateway's REST API on the real embedded Valkey, with the ``local`` engine (no stand-in:
the local engine's "network" is the gateway itself)."""

from __future__ import annotations

from typing import Any

import httpx

from aspri.streams import keys
from tests.api.whatsapp.conftest import GatewayFactory
from tests.helpers import ENGINE_AUTH

ALICE = "6281234567890@c.us"


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["success"] is False, body
    error: dict[str, Any] = body["error"]
    return error


async def say(client: httpx.AsyncClient, sender: str, text: str, name: str | None = None) -> Any:
    body = {"from": sender, "text": text} | ({"name": name} if name else {})
    response = await client.post("/api/local/messages", json=body)
    assert response.status_code == 202, response.text
    return response.json()["data"]


async def test_local_message_becomes_one_event_in_both_streams(
    open_gateway: GatewayFactory,
) -> None:
    async with open_gateway() as gw:
        data = await say(gw.client, "+62 812-3456-7890", "Halo ASPRI", "Alice")
        assert data["chatId"] == ALICE
        queue = await gw.stream(keys.WHATSAPP_MESSAGES)
        chat = await gw.stream(keys.chat(ALICE))
        assert [e.event_id for e in queue] == [data["eventId"]] == [e.event_id for e in chat]
        message = queue[0].data
        assert (message.chat_id, message.from_, message.from_name) == (ALICE, ALICE, "Alice")
        assert message.body == "Halo ASPRI" and not message.from_me
        assert queue[0].type == "whatsapp:message" and queue[0].source == "whatsapp"
        assert queue[0].traceparent  # the request's trace travels with the event


async def test_metrics_watch_the_work_queue_by_its_configured_name(
    open_gateway: GatewayFactory,
) -> None:
    """WHATSAPP_STREAM_NAME renames the queue (as the original's .env may): /metrics follows."""
    async with open_gateway(whatsapp_stream="wa:inbound", cronjob_stream="cron:triggers") as gw:
        await say(gw.client, "+62 812-3456-7890", "Halo")
        lines = set((await gw.client.get("/metrics")).text.splitlines())
    assert 'aspri_stream_length{stream="wa:inbound"} 1.0' in lines
    assert 'aspri_stream_length{stream="cron:triggers"} 0.0' in lines
    assert not any('stream="whatsapp:messages"' in line for line in lines)


async def test_send_message_records_outbound_in_chat_only(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        response = await gw.client.post(
            "/api/send-message",
            json={"phoneNumber": "+62 812 3456 7890", "message": "Hi Alice", "causationId": "ev-1"},
            headers=ENGINE_AUTH,  # causationId is the engine's
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True
        sent = body["data"]
        assert sent["chatId"] == ALICE and sent["parts"] == 1 and sent["duplicate"] is False
        chat = await gw.stream(keys.chat(ALICE))
        assert len(chat) == 1
        assert chat[0].event_id == sent["eventId"] and chat[0].causation_id == "ev-1"
        assert chat[0].data.from_me and chat[0].data.id == sent["messageId"]
        assert await gw.stream(keys.WHATSAPP_MESSAGES) == []  # the engine must not answer itself


async def test_send_is_idempotent_by_body_key_and_by_header(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        body = {"phoneNumber": ALICE, "message": "once", "idempotencyKey": "k-1"}
        first = (await gw.client.post("/api/send-message", json=body)).json()["data"]
        second = (await gw.client.post("/api/send-message", json=body)).json()["data"]
        assert second["duplicate"] is True
        assert {k: v for k, v in second.items() if k != "duplicate"} == {
            k: v for k, v in first.items() if k != "duplicate"
        }
        headers = {"Idempotency-Key": "k-2"}
        plain = {"phoneNumber": ALICE, "message": "twice?"}
        a = await gw.client.post("/api/send-message", json=plain, headers=headers)
        b = await gw.client.post("/api/send-message", json=plain, headers=headers)
        assert a.json()["data"]["eventId"] == b.json()["data"]["eventId"]
        assert len(await gw.stream(keys.chat(ALICE))) == 2
        reused = await gw.client.post(
            "/api/send-message",
            json={"phoneNumber": ALICE, "message": "other", "idempotencyKey": "k-1"},
        )
        assert reused.status_code == 409
        assert error_of(reused)["code"] == "idempotency_key_reused"


async def test_send_splits_over_the_channel_limit(open_gateway: GatewayFactory) -> None:
    from tests.api.whatsapp.conftest import FakeChannel

    channel = FakeChannel(max_text=20)
    async with open_gateway(channel=channel) as gw:
        text = "one two three four five six seven eight nine ten"
        response = await gw.client.post(
            "/api/send-message", json={"phoneNumber": ALICE, "message": text}
        )
        sent = response.json()["data"]
        assert sent["parts"] == len(channel.sent) == 3
        assert all(len(part) <= 20 for _, part in channel.sent)
        assert " ".join(part for _, part in channel.sent) == text
        chat = await gw.stream(keys.chat(ALICE))
        assert [e.data.body for e in chat] == [part for _, part in channel.sent]
        assert sent["messageIds"] == [e.data.id for e in chat]


async def test_send_message_bad_input(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        post = gw.client.post
        cases = [
            ({"phoneNumber": "not a number", "message": "x"}, 400, "phoneNumber"),
            ({"phoneNumber": "0812 3456", "message": "x"}, 400, "phoneNumber"),
            ({"phoneNumber": ALICE, "message": ""}, 400, "message"),
            ({"phoneNumber": ALICE, "message": "   \n"}, 400, "message"),
            ({"phoneNumber": ALICE, "message": "x" * (64 * 1024 + 1)}, 413, "message"),
            ({"message": "x"}, 400, "phoneNumber"),
            ({"phoneNumber": ALICE, "message": 5}, 400, "message"),
        ]
        for body, status, field in cases:
            response = await post("/api/send-message", json=body)
            assert response.status_code == status, (body, response.text)
            assert field in error_of(response)["message"], response.text
        not_json = await post(
            "/api/send-message", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 400
        error_of(not_json)
        assert await gw.stream(keys.chat(ALICE)) == []


async def test_history_newest_first_with_cursor(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        for n in range(5):
            await say(gw.client, ALICE, f"m{n}")
        await gw.client.post("/api/send-message", json={"phoneNumber": ALICE, "message": "reply"})
        page = (await gw.client.get("/api/messages/+6281234567890", params={"limit": 4})).json()[
            "data"
        ]
        assert [m["body"] for m in page["messages"]] == ["reply", "m4", "m3", "m2"]
        assert page["messages"][0]["fromMe"] is True and page["messages"][1]["fromMe"] is False
        rest = await gw.client.get(
            f"/api/messages/{ALICE}", params={"limit": 4, "before": page["nextBefore"]}
        )
        older = rest.json()["data"]
        assert [m["body"] for m in older["messages"]] == ["m1", "m0"]
        assert older["nextBefore"] is None


async def test_history_bad_input(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        unknown = await gw.client.get("/api/messages/6289999999999")
        assert unknown.status_code == 404 and error_of(unknown)["code"] == "unknown_chat"
        malformed = await gw.client.get("/api/messages/hello")
        assert malformed.status_code == 400 and "phoneNumber" in error_of(malformed)["message"]
        await say(gw.client, ALICE, "hi")
        bad_cursors = ("yesterday", "0-0", "0", "18446744073709551616-0", "1-18446744073709551616")
        for params in (
            {"limit": 0},
            {"limit": 501},
            {"limit": "x"},
            *({"before": cursor} for cursor in bad_cursors),
        ):
            response = await gw.client.get(f"/api/messages/{ALICE}", params=params)
            assert response.status_code == 400, (params, response.text)
            error = error_of(response)
            assert next(iter(params)) in error["message"], error


async def test_chats_by_last_activity_and_contact_search(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        await say(gw.client, "+1 555 123 4567", "hello", "Bob Builder")
        await say(gw.client, ALICE, "halo", "Alice")
        await gw.client.post(
            "/api/send-message", json={"phoneNumber": "15551234567", "message": "yo"}
        )
        chats = (await gw.client.get("/api/chats")).json()["data"]
        assert [c["chatId"] for c in chats] == ["15551234567@c.us", ALICE]
        assert chats[0]["name"] == "Bob Builder" and chats[0]["lastMessage"] == "yo"
        assert chats[0]["messageCount"] == 2 and chats[1]["messageCount"] == 1

        async def search(q: str) -> list[str]:
            response = await gw.client.get("/api/contacts/search", params={"q": q})
            assert response.status_code == 200, response.text
            return [c["chatId"] for c in response.json()["data"]]

        assert await search("bob") == ["15551234567@c.us"]
        assert await search("ALICE") == [ALICE]
        assert await search("+62 812") == [ALICE]
        assert await search("555123") == ["15551234567@c.us"]
        assert await search("0812-3456") == [ALICE]  # written without the country code
        assert await search("nobody") == []
        contact = (await gw.client.get("/api/contacts/search", params={"q": "alice"})).json()[
            "data"
        ]
        assert contact == [{"number": "6281234567890", "chatId": ALICE, "name": "Alice"}]
        for params in ({}, {"q": ""}, {"q": "  "}):
            response = await gw.client.get("/api/contacts/search", params=params)
            assert response.status_code == 400, response.text
            error_of(response)


async def test_local_messages_bad_input(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        for body, field in (
            ({"from": "nobody", "text": "hi"}, "from"),
            ({"from": ALICE, "text": ""}, "text"),
            ({"text": "hi"}, "from"),
        ):
            response = await gw.client.post("/api/local/messages", json=body)
            assert response.status_code == 400, response.text
            assert field in error_of(response)["message"]
        big = await gw.client.post(
            "/api/local/messages", json={"from": ALICE, "text": "é" * 40_000}
        )
        assert big.status_code == 413
        assert await gw.stream(keys.WHATSAPP_MESSAGES) == []


async def test_health_qr_and_openapi(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        health = await gw.client.get("/health")
        assert health.status_code == 200
        assert health.json() == {
            "success": True,
            "data": {
                "status": "ok",
                "channel": "working",
                "engine": "local",
                "details": {
                    "eventLog": "ok",
                    "down": [],
                    "engineWorkers": 0,
                    "liveSubscribers": 0,
                },
            },
        }
        qr = (await gw.client.get("/api/session/qr")).json()
        assert qr == {"success": True, "data": {"state": "working", "qr": None}}
        schema = (await gw.client.get("/schema/openapi.json")).json()
        for path in ("/api/send-message", "/api/messages/{phone_number}", "/api/chats", "/health"):
            assert path in schema["paths"], sorted(schema["paths"])
        ui = await gw.client.get("/schema/swagger")
        assert ui.status_code == 200 and "/schema-assets/swagger-ui-bundle.js" in ui.text
        page = await gw.client.get("/chat")
        assert page.status_code == 200 and "chat.js" in page.text
        assert (await gw.client.get("/chat/assets/chat.js")).status_code == 200
        missing = await gw.client.get("/api/nothing")
        assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
