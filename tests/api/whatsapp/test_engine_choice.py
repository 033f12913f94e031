"""Playwright is an optional extra (``aspri[browser]``): without it, choosing the browser engine
stops with what to install instead of an import traceback."""

from __future__ import annotations

import sys

import pytest

from aspri.api.whatsapp.app import make_channel
from aspri.config import Settings


def test_browser_engine_without_playwright_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "aspri.api.whatsapp.engines.browser", raising=False)
    monkeypatch.setitem(sys.modules, "playwright", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "playwright.async_api", None)
    with pytest.raises(RuntimeError, match=r"WHATSAPP_ENGINE=browser needs Playwright.*--extra"):
        make_channel(Settings(whatsapp_engine="browser"))
