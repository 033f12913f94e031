"""While the assistant works, the web chat shows "typing…": from the engine's working signal
(published here by the engine's own publisher) until the reply arrives, or until the signal
expires when no reply comes; a signal that arrives after its reply shows nothing."""

from __future__ import annotations

import asyncio

import httpx
import msgspec
from playwright.async_api import Browser, expect
from redis.asyncio import Redis

from aspri.agents.working import Typing
from aspri.schemas.working import Working
from tests.api.whatsapp.conftest import GatewayFactory
from tests.browser import MARKS, open_chat, page_errors, shot
from tests.helpers import ENGINE_AUTH

pytestmark = MARKS

CHAT = "6281200000001@c.us"
OTHER = "6281200000002@c.us"


async def say(client: httpx.AsyncClient, chat: str, text: str) -> dict[str, str]:
    r = await client.post("/api/local/messages", json={"from": chat, "name": "Tia", "text": text})
    assert r.status_code == 202, r.text
    data: dict[str, str] = r.json()["data"]
    return data


async def message_id(redis: Redis, chat: str) -> str:
    """The channel id of the chat's newest message (what the engine names in its signal)."""
    [(_, fields)] = await redis.xrevrange(f"chat:{chat}", count=1)
    return str(msgspec.json.decode(fields[b"data"])["id"])


async def test_typing_line_until_the_reply_or_until_it_expires(
    serve_gateway: GatewayFactory, chromium: Browser
) -> None:
    async with serve_gateway() as gw:
        asked = await say(gw.client, CHAT, "What is on my calendar?")
        await say(gw.client, OTHER, "hello")
        page = await chromium.new_page(viewport={"width": 1000, "height": 650})
        errors = page_errors(page)
        await open_chat(page, str(gw.client.base_url), CHAT)
        await expect(page.locator("#connection")).to_have_attribute("data-state", "online")
        typing = page.locator("#typing")
        await expect(typing).to_be_hidden()
        await asyncio.wait_for(gw.gateway.working.subscribed.wait(), 10)

        engine = Typing(gw.redis, refresh_s=20)
        async with engine.during(CHAT, await message_id(gw.redis, CHAT), asked["eventId"]):
            await expect(typing).to_be_visible()
            await expect(typing).to_have_text("typing…")
            await shot(page, "web-chat-typing")
            sent = await gw.client.post(
                "/api/send-message",
                json={
                    "phoneNumber": CHAT,
                    "message": "Two meetings.",
                    "causationId": asked["eventId"],
                },
                headers=ENGINE_AUTH,
            )
            assert sent.status_code == 200, sent.text
            answers = page.locator("#message-list .bubble.in")
            await expect(answers.last).to_contain_text("Two meetings.")
            await expect(typing).to_be_hidden()

        # A turn that fails sends no reply: the line goes when its signal expires.
        short = Working(chat_id=CHAT, message_id="LOCALX", event_id="cause-x", ttl_ms=300)
        await gw.redis.publish(engine.channel, msgspec.json.encode(short))
        await expect(typing).to_be_visible()
        await expect(typing).to_be_hidden()

        # Another chat's turn shows nothing in this one.
        await engine.publish(msgspec.json.encode(Working(chat_id=OTHER, message_id="LOCALY")))
        await page.locator(f'.chat-item[data-chat-id="{OTHER}"]').click()
        await expect(typing).to_be_visible()
        await page.locator(f'.chat-item[data-chat-id="{CHAT}"]').click()
        await expect(typing).to_be_hidden()
        await page.close()
        assert errors == []
