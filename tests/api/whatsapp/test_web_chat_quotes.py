"""A reply that quotes the message it answers shows it in the web chat as WhatsApp does: a
block above the reply's text with who wrote it and its first lines (the person's own message,
sent from this page, included), also after a reload."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser, expect

from tests.api.whatsapp.conftest import GatewayFactory
from tests.browser import MARKS, open_chat, page_errors, shot

pytestmark = MARKS

CHAT = "6281300000002@c.us"


async def newest_id(client: httpx.AsyncClient) -> str:
    page = await client.get(f"/api/messages/{CHAT}", params={"limit": 1})
    message_id: str = page.json()["data"]["messages"][0]["id"]
    return message_id


async def test_a_quoted_reply_shows_the_message_it_answers(
    serve_gateway: GatewayFactory, chromium: Browser
) -> None:
    async with serve_gateway() as gw:
        first = await gw.client.post(
            "/api/local/messages", json={"from": CHAT, "name": "Rani", "text": "hello"}
        )
        assert first.status_code == 202
        page = await chromium.new_page(viewport={"width": 1000, "height": 650})
        errors = page_errors(page)
        await open_chat(page, str(gw.client.base_url), CHAT)
        await expect(page.locator("#connection")).to_have_attribute("data-state", "online")

        # The person asks two things from the page; the answer to the first quotes it.
        box = page.locator("#message-input")
        await box.fill("Which meetings do I have tomorrow?")
        await box.press("Enter")
        await expect(page.locator(".bubble.out")).to_have_count(2)
        asked = await newest_id(gw.client)
        await box.fill("and is it going to rain?")
        await box.press("Enter")
        await expect(page.locator(".bubble.out")).to_have_count(3)
        for text, reply_to in (
            ("Two: standup at 9 and lunch with Ana.", asked),
            ("No rain tomorrow.", await newest_id(gw.client)),
        ):
            sent = await gw.client.post(
                "/api/send-message",
                json={"phoneNumber": CHAT, "message": text, "replyTo": reply_to},
            )
            assert sent.status_code == 200, sent.text

        answers = page.locator("#message-list .bubble.in")
        await expect(answers).to_have_count(2)
        quote = answers.first.locator(".quote")
        await expect(quote.locator(".quote-author")).to_have_text("You")
        await expect(quote.locator(".quote-text")).to_have_text(
            "Which meetings do I have tomorrow?"
        )
        await expect(answers.first).to_contain_text("standup at 9")
        await expect(answers.last.locator(".quote")).to_have_count(0)  # right under its question
        await shot(page, "web-chat-quoted-reply")

        await page.reload()
        quote = page.locator("#message-list .bubble.in").first.locator(".quote")
        await expect(quote.locator(".quote-text")).to_have_text(
            "Which meetings do I have tomorrow?"
        )
        await page.close()
        assert errors == []
