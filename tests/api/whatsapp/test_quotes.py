"""A reply quotes the message it answers (``replyTo`` of ``POST /api/send-message``) as
``REPLY_QUOTE`` says: ``first`` only when the person wrote again after it, ``always``, ``off``;
only the first part of a long reply quotes; the Cloud API gets Meta's ``context.message_id``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from aspri.api.whatsapp.engines.local import LocalChannel
from aspri.streams import keys
from tests.api.whatsapp.conftest import FakeChannel, GatewayFactory, Running
from tests.api.whatsapp.graph_recorder import graph_recorder
from tests.api.whatsapp.test_cloud import (
    CLOUD,
    SENDER,
    cloud_channel,
    deliver,
    fresh_inbound,
    webhook,
)

CHAT = "6281300000001@c.us"


async def say(gw: Running, text: str) -> str:
    """The person writes ``text`` (recorded as every engine records it); its channel id."""
    event, _ = await gw.gateway.inbox.record(LocalChannel.inbound(CHAT, text, None))
    return event.data.id


async def reply(client: httpx.AsyncClient, text: str, reply_to: str | None) -> dict[str, Any]:
    body = {"phoneNumber": CHAT, "message": text, "replyTo": reply_to}
    r = await client.post("/api/send-message", json={k: v for k, v in body.items() if v})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def quotes(gw: Running) -> list[str | None]:
    """What each message the assistant sent quotes, oldest first (from the chat's log)."""
    return [e.data.quoted_message_id for e in await gw.stream(keys.chat(CHAT)) if e.data.from_me]


async def test_first_quotes_only_when_the_person_wrote_again(open_gateway: GatewayFactory) -> None:
    async with open_gateway(channel=FakeChannel(max_text=30)) as gw:
        a = await say(gw, "What time is it?")
        await reply(gw.client, "It is noon.", a)  # right under A: no quote
        b = await say(gw, "/jobs")
        c = await say(gw, "and the weather?")
        await reply(gw.client, "No jobs.", b)  # C came after B: quoted
        await reply(gw.client, "Sunny all day long.", c)  # C is newest
        await reply(gw.client, "An unrelated note.", None)
        long = await reply(gw.client, "A long answer that is split into several parts for sure.", b)
        assert long["parts"] > 1
        assert await quotes(gw) == [None, b, None, None, b] + [None] * (long["parts"] - 1)
        page = (await gw.client.get(f"/api/messages/{CHAT}", params={"limit": 100})).json()
        quoted = [m["quotedMessageId"] for m in reversed(page["data"]["messages"]) if m["fromMe"]]
        assert quoted == await quotes(gw)


async def test_first_after_a_restart_reads_the_chat(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        a = await say(gw, "one")
        b = await say(gw, "two")
    async with open_gateway() as gw:  # a new gateway remembers nothing: it reads the chat
        await reply(gw.client, "About one.", a)
        await reply(gw.client, "About two.", b)
        assert await quotes(gw) == [a, None]


@pytest.mark.parametrize(("mode", "expected"), [("always", True), ("off", False)])
async def test_always_and_off(open_gateway: GatewayFactory, mode: str, expected: bool) -> None:
    async with open_gateway(reply_quote=mode) as gw:
        a = await say(gw, "one")
        await say(gw, "two")
        b = await say(gw, "three")
        await reply(gw.client, "About one.", a)
        await reply(gw.client, "About three.", b)
        assert await quotes(gw) == ([a, b] if expected else [None, None])


async def test_a_bad_reply_to_is_a_400_naming_it(open_gateway: GatewayFactory) -> None:
    async with open_gateway() as gw:
        for bad in ("", "x" * 257, 12):
            r = await gw.client.post(
                "/api/send-message", json={"phoneNumber": CHAT, "message": "hi", "replyTo": bad}
            )
            assert r.status_code == 400, (bad, r.text)
            assert "replyTo" in r.json()["error"]["message"]
        assert await quotes(gw) == []


async def test_the_cloud_api_gets_context_message_id(open_gateway: GatewayFactory) -> None:
    async with graph_recorder() as graph:
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url)
        async with open_gateway(channel=channel, reply_quote="always", **CLOUD) as gw:
            assert (await deliver(gw.client, webhook([fresh_inbound("wamid.ASKED")]))).is_success
            r = await gw.client.post(
                "/api/send-message",
                json={"phoneNumber": SENDER, "message": "Answer.", "replyTo": "wamid.ASKED"},
            )
            assert r.status_code == 200, r.text
            [sent] = graph.sends()
            assert sent["context"] == {"message_id": "wamid.ASKED"}
            assert sent["text"]["body"] == "Answer."
