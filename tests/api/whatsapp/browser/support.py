"""Helpers of the browser engine's tests: what ``on_message`` received, settings, processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from aspri.config import Settings
from aspri.schemas import WhatsAppMessage

CHROMIUM = Settings().chromium_path


class Inbox:
    """Collects what the channel hands to ``on_message``; fails the first attempts on request."""

    def __init__(self) -> None:
        self.messages: list[WhatsAppMessage] = []
        self.attempts: dict[str, int] = {}
        self.fail_first: dict[str, int] = {}

    async def __call__(self, message: WhatsAppMessage) -> None:
        self.attempts[message.id] = self.attempts.get(message.id, 0) + 1
        if self.attempts[message.id] <= self.fail_first.get(message.id, 0):
            raise ConnectionError("event log unavailable")
        self.messages.append(message)


def browser_settings(data_dir: Path, url: str, **overrides: Any) -> Settings:
    return Settings(data_dir=data_dir, browser_url=url, max_deliveries=3, **overrides)


def chromium_pids(profile: Path, renderers: bool) -> list[int]:
    """Chromium processes using ``profile``: its renderers, or the browser process itself.

    Chromium's zygote children rewrite their command line into one string, so the flags are
    looked for as substrings.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        flag = f"--user-data-dir={profile}".encode()
        if flag + b"\0" not in raw and flag + b" " not in raw:
            continue
        if (b"--type=renderer" in raw) if renderers else (b"--type=" not in raw):
            pids.append(int(entry.name))
    return pids


def kill(pids: list[int]) -> None:
    assert pids, "no Chromium process found for the profile"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
