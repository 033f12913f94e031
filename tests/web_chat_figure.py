"""Take docs/web-chat.png from a running ``aspri up``, as a person uses the web chat.

    .venv/bin/python -m tests.web_chat_figure "$(.venv/bin/aspri link)" docs/web-chat.png

It signs in with the one-time link, starts a chat, types a few commands and a question, waits
for each answer from the real engine (whatever model it has, or none), and saves the page.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from playwright.async_api import Page, async_playwright, expect

from tests.browser import ARGS, CHROMIUM

TYPED = [
    "/help",
    "/remind every day at 8:00 drink water",
    "/jobs",
    "What is on my schedule tomorrow?",
]


async def say(page: Page, text: str) -> None:
    """Type ``text`` and wait for the assistant's answer to it."""
    answers = page.locator(".bubble.in")
    before = await answers.count()
    await page.fill("#message-input", text)
    await page.keyboard.press("Enter")
    await expect(answers).to_have_count(before + 1, timeout=60_000)


async def take(link: str, target: Path) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            await page.goto(link)
            await expect(page.locator("#connection")).to_have_attribute("data-state", "online")
            await page.fill("#new-number", "+62 812 3456 7890")
            await page.fill("#new-name", "Ann")
            await page.click("#start-chat")
            for text in TYPED:
                await say(page, text)
            await expect(page.locator("#model-state")).not_to_have_text("model: checking…")
            await page.screenshot(path=str(target))
        finally:
            await browser.close()


if __name__ == "__main__":
    asyncio.run(take(sys.argv[1], Path(sys.argv[2])))
