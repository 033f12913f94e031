"""Fixtures for the browser engine: the fake WhatsApp server and a channel pointed at it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from aspri.api.whatsapp.engines.browser import BrowserChannel
from tests.api.whatsapp.browser.fake_server import FakeWhatsApp
from tests.api.whatsapp.browser.support import Inbox, browser_settings


@pytest.fixture
def fake_wa() -> Iterator[FakeWhatsApp]:
    server = FakeWhatsApp()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
async def channel(
    fake_wa: FakeWhatsApp, inbox: Inbox, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[BrowserChannel]:
    """A started channel on the fake WhatsApp Web page (which defines ``window.WPP`` itself).

    Its logs are captured from the start, at debug level, so tests can check what is logged.
    """
    caplog.set_level(logging.DEBUG, logger="aspri.whatsapp.browser")
    ch = BrowserChannel(browser_settings(data_dir, fake_wa.url()), backoff=(0.05, 0.5))
    await ch.start(inbox)
    yield ch
    await ch.stop()
