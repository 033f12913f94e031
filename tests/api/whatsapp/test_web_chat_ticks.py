"""The web chat's ticks on the assistant's messages, in a real browser: one tick when the
gateway stored the message, two when the page got it, blue when the open chat showed it, a red
mark when the channel reported it failed; the page's acks become statuses in the history."""

from __future__ import annotations

import asyncio

from playwright.async_api import Browser, Route, expect

from aspri.schemas.status import WhatsAppStatus
from tests.api.whatsapp.conftest import GatewayFactory
from tests.browser import MARKS, open_chat, page_errors, shot
from tests.helpers import wait_until

pytestmark = MARKS

PERSON = "6281100000009@c.us"


async def test_ticks_follow_the_statuses(serve_gateway: GatewayFactory, chromium: Browser) -> None:
    async with serve_gateway() as gw:
        said = await gw.client.post(
            "/api/local/messages", json={"from": PERSON, "name": "Rina", "text": "remind me"}
        )
        assert said.status_code == 202, said.text

        page = await chromium.new_page(viewport={"width": 1000, "height": 650})
        errors = page_errors(page)
        held: asyncio.Queue[Route] = asyncio.Queue()
        await page.route("**/api/local/acks", held.put_nowait)  # the test lets each ack through
        loads: list[int] = []
        page.on("response", lambda r: loads.append(r.status) if "/api/messages/" in r.url else None)
        await open_chat(page, str(gw.client.base_url), PERSON)
        await expect(page.locator("#chat-name")).to_have_text("Rina")
        # The page loads the chat twice (the link, then the live stream's connect): the reply
        # lands while the second load may be on its way, and must be shown all the same.
        await wait_until(lambda: len(loads) >= 1, 10)

        sent = await gw.client.post(
            "/api/send-message", json={"phoneNumber": PERSON, "message": "Done: 7 pm, call Ayu."}
        )
        assert sent.status_code == 200, sent.text
        message_id = sent.json()["data"]["messageId"]
        tick = page.locator(f'.row-msg[data-message-id="{message_id}"] .status-ticks')
        await expect(tick).to_have_attribute("data-status", "sent")
        await expect(tick).to_have_text("✓")
        await shot(page, "web-chat-ticks-sent")

        delivered = await asyncio.wait_for(held.get(), 10)
        assert delivered.request.post_data_json == {
            "chatId": PERSON,
            "messageIds": [message_id],
            "status": "delivered",
        }
        await delivered.continue_()
        await expect(tick).to_have_attribute("data-status", "delivered")
        await expect(tick).to_have_text("✓✓")
        grey = await tick.evaluate("el => getComputedStyle(el).color")
        await shot(page, "web-chat-ticks-delivered")

        read = await asyncio.wait_for(held.get(), 10)
        assert read.request.post_data_json["status"] == "read"
        await read.continue_()
        await expect(tick).to_have_attribute("data-status", "read")
        blue = await tick.evaluate("el => getComputedStyle(el).color")
        assert blue == "rgb(83, 189, 235)" and grey != blue
        await shot(page, "web-chat-ticks-read")

        history = (await gw.client.get(f"/api/messages/{PERSON}")).json()["data"]["messages"]
        assert [(m["fromMe"], m["status"]) for m in history] == [(True, "read"), (False, None)]

        # A second reply the channel later reports failed: a red mark with the reason.
        await page.unroute("**/api/local/acks")
        other = await gw.client.post(
            "/api/send-message", json={"phoneNumber": PERSON, "message": "And tomorrow?"}
        )
        other_id = other.json()["data"]["messageId"]
        other_tick = page.locator(f'.row-msg[data-message-id="{other_id}"] .status-ticks')
        await expect(other_tick).to_have_attribute("data-status", "read")
        failed = WhatsAppStatus(
            chat_id=PERSON,
            message_id=other_id,
            status="failed",
            channel="local",
            error_code="131026",
            error_title="Message undeliverable",
        )
        await gw.gateway.statuses.record(failed)
        await expect(other_tick).to_have_attribute("data-status", "failed")
        await expect(other_tick).to_have_text("!")
        await expect(other_tick).to_have_attribute(
            "title", "not sent: 131026: Message undeliverable"
        )
        await shot(page, "web-chat-ticks-failed")

        # After a reload the ticks come from the history, and nothing is acked again.
        acks: list[str] = []
        page.on("request", lambda r: acks.append(r.url) if "/api/local/acks" in r.url else None)
        await page.reload()
        await expect(tick).to_have_attribute("data-status", "read")
        await expect(other_tick).to_have_attribute("data-status", "failed")
        await wait_until(lambda: page.url.endswith(PERSON.replace("@", "%40")), 5)
        assert acks == []
        await page.close()
        assert errors == []


async def test_acks_name_a_bad_field(serve_gateway: GatewayFactory) -> None:
    async with serve_gateway() as gw:
        for body, field in (
            ({"chatId": PERSON, "messageIds": ["X"], "status": "seen"}, "status"),
            ({"chatId": PERSON, "messageIds": [], "status": "read"}, "messageIds"),
            ({"chatId": PERSON, "messageIds": ["x" * 201], "status": "read"}, "messageIds"),
            ({"chatId": "not a chat", "messageIds": ["X"], "status": "read"}, "chatId"),
            ({"messageIds": ["X"], "status": "read"}, "chatId"),
        ):
            response = await gw.client.post("/api/local/acks", json=body)
            assert response.status_code == 400, (body, response.text)
            assert field in response.text, (body, response.text)
        ok = await gw.client.post(
            "/api/local/acks",
            json={"chatId": PERSON, "messageIds": ["NOPE", "NOPE"], "status": "read"},
        )
        assert ok.json()["data"] == {"recorded": 1, "changed": 1}
