"""Debian's chromium through Playwright, for the tests that look at a page as a person does.

The ``chromium`` fixture (tests/conftest.py) launches it; ``shot`` keeps what the page looked
like under tests/artifacts/, so a failure or a review can look at it after the run.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, Route

from aspri.api.whatsapp.engines.browser import LAUNCH_ARGS
from tests.helpers import chat_login_url

CHROMIUM = Path("/usr/bin/chromium")
ARGS = list(LAUNCH_ARGS)
"""The browser engine's own flags: the tests run chromium as the engine does."""
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LOCAL = {"127.0.0.1", "localhost", "::1"}

MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]
"""The ``pytestmark`` of a browser test module."""


async def shot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save the page as ``tests/artifacts/<name>.png``; a blank page fails the test."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000, f"{path} looks blank"
    return path


def page_errors(page: Page) -> list[str]:
    """The page's uncaught script errors, collected as they happen: a test ends asserting none."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


async def open_chat(page: Page, base_url: str, chat: str) -> None:
    """Sign ``page`` in to the web chat, then open ``chat`` by its deep link (``/chat#<id>``)."""
    await page.goto(chat_login_url(base_url))
    await page.goto(f"{base_url}/chat#{chat.replace('@', '%40')}")


async def offline(page: Page) -> list[str]:
    """Abort every request to a host other than this machine; return the list of those tried."""
    blocked: list[str] = []

    async def handle(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL:
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort("internetdisconnected")

    await page.route("**/*", handle)
    return blocked
