"""The ``cloud`` engine against recorded webhook payloads and a local Graph API recorder.

Meta cannot be reached from a test machine. The webhook bodies below are shaped exactly like
the examples in Meta's WhatsApp Cloud API webhook reference (``object``/``entry``/``changes``/
``value`` with ``metadata``, ``contacts``, ``messages``, ``statuses``), signed with HMAC-SHA256
like Meta signs them; sends go to ``graph_recorder`` (a real HTTP server) instead of
graph.facebook.com. Everything else is the real gateway on the real embedded Valkey.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from aspri.api.whatsapp.engines.cloud import CloudChannel
from aspri.config import ConfigError
from aspri.streams import keys
from tests.api.whatsapp.conftest import GatewayFactory, settings_for
from tests.api.whatsapp.graph_recorder import graph_recorder

SECRET = "app-secret-for-tests"
VERIFY = "verify-me"
NUMBER_ID = "106540352242922"
SENDER = "16315551181"
CLOUD = {
    "whatsapp_engine": "cloud",
    "whatsapp_cloud_verify_token": VERIFY,
    "whatsapp_cloud_app_secret": SECRET,
    "whatsapp_cloud_access_token": "EAAtoken",
    "whatsapp_cloud_phone_number_id": NUMBER_ID,
}


def text_message(wamid: str, body: str, sender: str = SENDER) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": "1717000000",
        "text": {"body": body},
        "type": "text",
    }


def webhook(messages: list[Any], statuses: list[Any] | None = None, **value: Any) -> dict[str, Any]:
    """A ``messages`` webhook as Meta documents it."""
    change_value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER_ID},
        "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": SENDER}],
        "messages": messages,
    } | value
    if statuses is not None:
        change_value["statuses"] = statuses
        if not messages:
            del change_value["messages"], change_value["contacts"]
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "102290129340398", "changes": [{"value": change_value, "field": "messages"}]}
        ],
    }


def signed(payload: Any, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": f"sha256={signature}", "Content-Type": "application/json"}


JSON = {"Content-Type": "application/json"}
"""What Meta sends with every delivery (any other media type is refused with 415)."""


async def deliver(client: httpx.AsyncClient, payload: Any, secret: str = SECRET) -> httpx.Response:
    body, headers = signed(payload, secret)
    return await client.post("/webhooks/whatsapp", content=body, headers=headers)


def cloud_channel(**overrides: Any) -> CloudChannel:
    """The channel, retrying transient refusals after 10 ms rather than a second."""
    return CloudChannel(settings_for(**(CLOUD | overrides)), retry_wait_s=0.01)


def fresh_inbound(wamid: str, sender: str = SENDER) -> dict[str, Any]:
    """A text from the person just now: it opens their 24-hour window."""
    return text_message(wamid, "hi", sender) | {"timestamp": str(int(time.time()))}


async def test_verification_handshake(open_gateway: GatewayFactory) -> None:
    async with open_gateway(channel=cloud_channel(), **CLOUD) as gw:
        params = {
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY,
            "hub.challenge": "1158201444",
        }
        ok = await gw.client.get("/webhooks/whatsapp", params=params)
        assert ok.status_code == 200 and ok.text == "1158201444"
        wrong = await gw.client.get("/webhooks/whatsapp", params=params | {"hub.verify_token": "x"})
        assert wrong.status_code == 403 and wrong.json()["success"] is False
        missing = await gw.client.get("/webhooks/whatsapp")
        assert missing.status_code == 403


async def test_signed_text_message_is_one_event_even_when_delivered_twice(
    open_gateway: GatewayFactory,
) -> None:
    async with open_gateway(channel=cloud_channel(), **CLOUD) as gw:
        payload = webhook([text_message("wamid.HBgLMTYzMTU1NTExODEVAgASGBQzQTdBMDY", "Hi ASPRI")])
        first = await deliver(gw.client, payload)
        assert first.status_code == 200, first.text
        receipt = first.json()["data"]
        assert receipt == {
            "messages": 1,
            "statuses": 0,
            "ignored": 0,
            "eventIds": [ANY],
            "pending": 0,
            "problems": [],
        }
        again = await deliver(gw.client, payload)  # Meta retries deliveries it is unsure of
        assert again.status_code == 200
        queue = await gw.stream(keys.WHATSAPP_MESSAGES)
        assert len(queue) == 1
        assert [queue[0].event_id] == receipt["eventIds"] == again.json()["data"]["eventIds"]
        message = queue[0].data
        assert message.chat_id == f"{SENDER}@c.us" and message.from_name == "Kerry Fisher"
        assert message.body == "Hi ASPRI" and message.timestamp == 1_717_000_000_000
        assert len(await gw.stream(keys.chat(f"{SENDER}@c.us"))) == 1
        contacts = (await gw.client.get("/api/contacts/search", params={"q": "kerry"})).json()
        assert contacts["data"] == [
            {"number": SENDER, "chatId": f"{SENDER}@c.us", "name": "Kerry Fisher"}
        ]


async def test_missing_or_wrong_signature_is_401_and_no_event(open_gateway: GatewayFactory) -> None:
    async with open_gateway(channel=cloud_channel(), **CLOUD) as gw:
        payload = webhook([text_message("wamid.X", "forged")])
        wrong = await deliver(gw.client, payload, secret="not-the-secret")
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "bad_signature"
        body, _ = signed(payload)
        unsigned = await gw.client.post("/webhooks/whatsapp", content=body, headers=JSON)
        assert unsigned.status_code == 401
        tampered_body, headers = signed(payload)
        tampered = await gw.client.post(
            "/webhooks/whatsapp",
            content=tampered_body.replace(b"forged", b"FORGED"),
            headers=headers,
        )
        assert tampered.status_code == 401
        # Not even parsed: a wrongly signed body that is not JSON is still 401, not 400.
        junk = await gw.client.post(
            "/webhooks/whatsapp",
            content=b"{not json",
            headers={"X-Hub-Signature-256": "sha256=00"} | JSON,
        )
        assert junk.status_code == 401
        assert await gw.stream(keys.WHATSAPP_MESSAGES) == []


async def test_statuses_and_odd_shapes_are_ignored_without_losing_good_messages(
    open_gateway: GatewayFactory,
) -> None:
    async with open_gateway(channel=cloud_channel(), **CLOUD) as gw:
        statuses = [
            {
                "id": "wamid.SENT1",
                "status": "delivered",
                "timestamp": "1717000001",
                "recipient_id": SENDER,
                "conversation": {"id": "c1", "origin": {"type": "service"}},
                "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
            }
        ]
        only_statuses = await deliver(gw.client, webhook([], statuses))
        assert only_statuses.status_code == 200
        assert only_statuses.json()["data"] == {
            "messages": 0,
            "statuses": 1,
            "ignored": 0,
            "eventIds": [],
            "pending": 0,
            "problems": [],
        }

        batch = webhook(
            [
                text_message("wamid.GOOD1", "first"),
                {"id": "wamid.NOFROM", "type": "text", "text": {"body": "who?"}},  # missing from
                "not even an object",
                text_message("wamid.BADFROM", "x", sender="not-a-number"),
                text_message("wamid.GOOD2", "second"),
            ],
            statuses=[{"status": "read"}],  # a status without an id
        )
        mixed = await deliver(gw.client, batch)
        assert mixed.status_code == 200
        receipt = mixed.json()["data"]
        assert receipt == {
            "messages": 2,
            "statuses": 0,
            "ignored": 4,
            "eventIds": [ANY, ANY],
            "pending": 0,
            "problems": [ANY, ANY, ANY, ANY],
        }
        events = await gw.stream(keys.WHATSAPP_MESSAGES)
        assert [e.data.body for e in events] == ["first", "second"]
        assert [e.event_id for e in events] == receipt["eventIds"]

        for odd in (
            {"object": "page", "entry": []},
            {"entry": "nope"},
            [],
            {
                "object": "whatsapp_business_account",
                "entry": [{"changes": [{"field": "account_update", "value": {}}]}],
            },
            webhook([text_message("wamid.OTHER", "x")], metadata={"phone_number_id": "999"}),
        ):
            response = await deliver(gw.client, odd)
            assert response.status_code == 200, (odd, response.text)
        raw = b"{nope"
        signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        not_json = await gw.client.post(
            "/webhooks/whatsapp",
            content=raw,
            headers={"X-Hub-Signature-256": f"sha256={signature}"} | JSON,
        )
        assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
        assert len(await gw.stream(keys.WHATSAPP_MESSAGES)) == 2


async def test_sends_reach_the_graph_api_with_the_documented_body(
    open_gateway: GatewayFactory,
) -> None:
    async with graph_recorder() as graph:
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url)
        async with open_gateway(channel=channel, **CLOUD) as gw:
            assert (await deliver(gw.client, webhook([fresh_inbound("wamid.OPEN")]))).is_success
            text = "word " * 1000  # 5,000 characters: two messages under the 4,096 limit
            response = await gw.client.post(
                "/api/send-message",
                json={"phoneNumber": f"+{SENDER}", "message": text, "idempotencyKey": "cloud-1"},
            )
            assert response.status_code == 200, response.text
            sent = response.json()["data"]
            again = await gw.client.post(
                "/api/send-message",
                json={"phoneNumber": f"+{SENDER}", "message": text, "idempotencyKey": "cloud-1"},
            )
            assert again.json()["data"]["duplicate"] is True
            assert len(graph.requests) == 2 == sent["parts"]
            first = graph.requests[0]
            assert first.path == f"/v21.0/{NUMBER_ID}/messages"
            assert first.headers["authorization"] == "Bearer EAAtoken"
            assert first.body == {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": SENDER,
                "type": "text",
                "text": {"preview_url": False, "body": first.body["text"]["body"]},
            }
            assert all(len(r.body["text"]["body"]) <= 4096 for r in graph.requests)
            assert sent["messageId"].startswith("wamid.")
            chat = await gw.stream(keys.chat(f"{SENDER}@c.us"))
            assert [e.data.id for e in chat if e.data.from_me] == sent["messageIds"]

            graph.fail_status = 400
            refused = await gw.client.post(
                "/api/send-message", json={"phoneNumber": SENDER, "message": "not allowed"}
            )
            assert refused.status_code == 422
            assert refused.json()["error"]["code"] == "channel_refused"
            assert "131030" in refused.json()["error"]["message"]
            graph.fail_status = 500
            broken = await gw.client.post(
                "/api/send-message", json={"phoneNumber": SENDER, "message": "x"}
            )
            assert broken.status_code == 503
            group = await gw.client.post(
                "/api/send-message", json={"phoneNumber": "120363025555555555@g.us", "message": "x"}
            )
            assert group.status_code == 502 and "groups" in group.json()["error"]["message"]
            chat = await gw.stream(keys.chat(f"{SENDER}@c.us"))
            assert [e.data.from_me for e in chat if e.type == "whatsapp:message"] == [
                False,
                True,
                True,
            ]


async def test_an_unreachable_graph_api_is_503_and_health_degrades(
    open_gateway: GatewayFactory,
) -> None:
    from aspri.streams.server import free_port

    channel = cloud_channel(whatsapp_cloud_api_base=f"http://127.0.0.1:{free_port()}/v21.0")
    async with open_gateway(channel=channel, **CLOUD) as gw:
        assert (await deliver(gw.client, webhook([fresh_inbound("wamid.OPEN")]))).is_success
        response = await gw.client.post(
            "/api/send-message", json={"phoneNumber": SENDER, "message": "x"}
        )
        assert (
            response.status_code == 503
            and response.json()["error"]["code"] == "channel_unavailable"
        )
        health = (await gw.client.get("/health")).json()["data"]
        assert health["status"] == "degraded" and health["channel"] == "disconnected"
        assert health["engine"] == "cloud"


def test_incomplete_cloud_settings_name_the_variables() -> None:
    with pytest.raises(ConfigError, match="WHATSAPP_CLOUD_APP_SECRET"):
        cloud_channel(whatsapp_cloud_app_secret=None)
