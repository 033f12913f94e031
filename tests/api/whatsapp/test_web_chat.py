"""The local web chat driven in a real Chromium (Debian's, through Playwright) against the
gateway served by uvicorn on the real embedded Valkey. No stand-in: the local engine's
"WhatsApp" is this page."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from aspri.apikey import login_token
from aspri.streams import keys
from tests.api.whatsapp.conftest import GatewayFactory
from tests.browser import MARKS, page_errors, shot
from tests.helpers import API_KEY, wait_until

ALICE = "6281234567890@c.us"

pytestmark = MARKS


async def test_chat_in_the_browser(serve_gateway: GatewayFactory, chromium: Browser) -> None:
    async with serve_gateway() as gw:
        page = await chromium.new_page(viewport={"width": 1200, "height": 760})
        errors = page_errors(page)
        # Not signed in: the page says how; the one-time link signs this browser in.
        await page.goto(f"{gw.client.base_url}/chat")
        await expect(page.locator("h1")).to_contain_text("Sign in")
        await page.goto(f"{gw.client.base_url}/chat/login?token={login_token(API_KEY)}")
        assert page.url == f"{gw.client.base_url}/chat"
        await expect(page.locator("#connection")).to_have_attribute("data-state", "online")

        # A malformed number is refused in the page, with the reason.
        await page.fill("#new-number", "0812 not a number")
        await page.click("#start-chat")
        await expect(page.locator("#new-chat-error")).to_contain_text("country code")
        await expect(page.locator("#chat")).to_be_hidden()

        # Start a chat as Alice and type a message: it becomes an inbound event.
        await page.fill("#new-number", "+62 812-3456-7890")
        await page.fill("#new-name", "Alice")
        await page.click("#start-chat")
        await expect(page.locator("#chat-name")).to_have_text("Alice")
        await page.fill("#message-input", "Halo ASPRI, remind me to call mom at 5")
        await page.keyboard.press("Enter")
        await expect(page.locator(".bubble.out")).to_contain_text("remind me to call mom")

        async def inbound() -> list[str]:
            return [e.data.body for e in await gw.stream(keys.WHATSAPP_MESSAGES)]

        assert await wait_until(inbound, 5) == ["Halo ASPRI, remind me to call mom at 5"]
        event = (await gw.stream(keys.WHATSAPP_MESSAGES))[0]
        assert (event.data.chat_id, event.data.from_name) == (ALICE, "Alice")

        # The assistant answers through the REST API: the reply shows up live, on the left.
        reply = "Sure, *Alice*! I'll remind you at 17:00 to call mom."
        response = await gw.client.post(
            "/api/send-message", json={"phoneNumber": ALICE, "message": reply}
        )
        assert response.status_code == 200
        incoming = page.locator(".bubble.in")
        await expect(incoming).to_contain_text("I'll remind you at 17:00")
        await expect(incoming.locator("strong")).to_have_text("Alice")  # WhatsApp *bold*
        await expect(page.locator(".chat-item .preview").first).to_contain_text("remind you")

        # A reload rebuilds the conversation from the log.
        await page.reload()
        await expect(page.locator("#connection")).to_have_attribute("data-state", "online")
        await expect(page.locator(".bubble")).to_have_count(2)
        await expect(page.locator("#older")).to_be_hidden()  # nothing older than these two
        await expect(page.locator(".bubble.out")).to_contain_text("call mom at 5")
        await expect(page.locator(".bubble.in")).to_contain_text("17:00")

        await shot(page, "whatsapp-local-web-chat")
        assert errors == []
