"""The gateway's listener for the engine's working signals (typing, read receipts)."""

from __future__ import annotations

import asyncio

import msgspec

from aspri.schemas.api import Typing
from aspri.schemas.working import Working
from tests.api.whatsapp.conftest import GatewayFactory
from tests.helpers import wait_until

CHAT = "6281200000001@c.us"


async def test_a_signal_after_its_reply_is_dropped(serve_gateway: GatewayFactory) -> None:
    async with serve_gateway() as gw:
        listener = gw.gateway.working
        seen: list[object] = []

        async def watch() -> None:
            async for item in gw.gateway.hub.subscribe(ping_s=60):
                seen.append(item)

        watcher = asyncio.create_task(watch())
        try:
            await wait_until(lambda: gw.gateway.hub.subscribers == 1)
            late = Working(chat_id=CHAT, message_id="M1", event_id="answered-cause")
            listener.replied("answered-cause")
            listener.handle(msgspec.json.encode(late))
            listener.handle(b"{not json")  # logged and ignored
            listener.handle(msgspec.json.encode(Working(chat_id=CHAT, message_id="M2")))
            await wait_until(lambda: seen)
            assert seen == [Typing(chat_id=CHAT, message_id="M2", expires_in_ms=30_000)]
        finally:
            watcher.cancel()
