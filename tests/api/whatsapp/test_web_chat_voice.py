"""A spoken reply in the local web chat, in a real Chromium: the bubble holds an audio player of
the stored voice note (a real OGG/Opus file from the speech stand-in, loaded by the browser's
own decoder) above the reply's text, live and after a reload."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from aspri.apikey import login_token
from tests.api.whatsapp.conftest import GatewayFactory
from tests.browser import MARKS, page_errors, shot
from tests.helpers import API_KEY
from tests.media.speech_server import speech_server

ALICE = "6281234567890@c.us"

pytestmark = MARKS


async def test_a_spoken_reply_plays_in_the_web_chat(
    serve_gateway: GatewayFactory, chromium: Browser, tmp_path: Path
) -> None:
    async with speech_server() as speech:
        settings = {
            "speech_provider": "openai",
            "speech_base_url": speech.url,
            "speech_api_key": speech.key,
            "data_dir": tmp_path,
        }
        async with serve_gateway(**settings) as gw:
            page = await chromium.new_page(viewport={"width": 1000, "height": 640})
            errors = page_errors(page)
            await page.goto(f"{gw.client.base_url}/chat/login?token={login_token(API_KEY)}")
            await page.fill("#new-number", "+62 812-3456-7890")
            await page.fill("#new-name", "Alice")
            await page.click("#start-chat")
            await expect(page.locator("#connection")).to_have_attribute("data-state", "online")

            reply = "It is sunny in Bandung today."
            response = await gw.client.post(
                "/api/send-message", json={"phoneNumber": ALICE, "message": reply, "voice": True}
            )
            assert response.json()["data"]["voice"] is True, response.text

            for reloaded in (False, True):
                if reloaded:
                    await page.reload()
                bubble = page.locator(".bubble.in")
                await expect(bubble).to_contain_text(reply)
                player = bubble.locator("audio.voice")
                await expect(player).to_have_count(1)
                src = await player.get_attribute("src")
                assert src is not None and src.startswith("/api/media/")
                # the browser fetched and decoded the file: one second of audio. An Ogg file's
                # length is found at its end, so chromium may say Infinity at first: a seek to
                # the end (what scrubbing the player does) makes it read it.
                await page.wait_for_function(
                    """() => {
                        const audio = document.querySelector('audio.voice');
                        if (audio.readyState < 1) return false;
                        if (!Number.isFinite(audio.duration)) audio.currentTime = 1e6;
                        return Number.isFinite(audio.duration);
                    }""",
                    timeout=10_000,
                )
                duration = await player.evaluate("(audio) => audio.duration")
                assert abs(duration - 1.0) < 0.05, duration
            plain = await gw.client.post(
                "/api/send-message", json={"phoneNumber": ALICE, "message": "and text"}
            )
            assert plain.status_code == 200
            await expect(page.locator(".bubble.in")).to_have_count(2)
            await expect(page.locator("audio.voice")).to_have_count(1)
            await shot(page, "whatsapp-local-web-chat-voice")
            assert errors == []
