"""The web chat's live stream (SSE) on a gateway served by uvicorn, with the ``local`` engine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from tests.api.whatsapp.conftest import GatewayFactory
from tests.helpers import wait_until

ALICE = "6281234567890@c.us"


async def sse_messages(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    event: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if event.get("event") == "message":
                yield json.loads(event["data"])
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            event[name] = value


async def test_recorded_messages_reach_open_streams_live(serve_gateway: GatewayFactory) -> None:
    async with serve_gateway() as gw:
        async with gw.client.stream("GET", "/api/local/events", params={"chatId": ALICE}) as live:
            assert live.status_code == 200
            assert live.headers["content-type"].startswith("text/event-stream")
            await wait_until(lambda: gw.gateway.hub.subscribers == 1, 5)
            said = await gw.client.post(
                "/api/local/messages", json={"from": ALICE, "text": "hi", "name": "Alice"}
            )
            # Another chat's message is filtered out of this stream.
            await gw.client.post(
                "/api/local/messages", json={"from": "15551234567", "text": "other"}
            )
            sent = await gw.client.post(
                "/api/send-message", json={"phoneNumber": ALICE, "message": "hello Alice"}
            )
            stream = sse_messages(live.aiter_lines())
            first = await asyncio.wait_for(anext(stream), 5)
            second = await asyncio.wait_for(anext(stream), 5)
        assert (first["eventId"], first["body"], first["fromMe"]) == (
            said.json()["data"]["eventId"],
            "hi",
            False,
        )
        assert (second["eventId"], second["body"], second["fromMe"]) == (
            sent.json()["data"]["eventId"],
            "hello Alice",
            True,
        )
        assert second["entryId"] and second["chatId"] == ALICE
        bad = await gw.client.get("/api/local/events", params={"chatId": "nobody"})
        assert bad.status_code == 400


async def test_shutdown_ends_open_streams(serve_gateway: GatewayFactory) -> None:
    """A stop must not wait for open pages: the hub ends their streams first."""
    async with serve_gateway() as gw:
        async with gw.client.stream("GET", "/api/local/events") as live:
            await wait_until(lambda: gw.gateway.hub.subscribers == 1, 5)
            gw.gateway.hub.close()
            remaining = [line async for line in live.aiter_lines()]
        assert all(line == "" or line.startswith((":", "retry")) for line in remaining)
