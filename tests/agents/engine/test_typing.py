"""While the assistant works: the Cloud API's read receipt with its typing indicator, sent when
the turn starts and again while a slow model thinks, against the Graph API stand-in.

Everything but Meta and the model is real: the Cloud gateway (signed webhooks in, Graph API
requests out to ``graph_recorder``), an engine worker with its ``aspri mcp`` child, Valkey.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage

from aspri.streams.server import EmbeddedServer
from tests.agents.engine.stack import Stack, running_stack, scripted, trailing_user_texts
from tests.api.whatsapp.graph_recorder import GraphRecorder, graph_recorder
from tests.api.whatsapp.test_cloud import CLOUD, signed, text_message, webhook
from tests.helpers import wait_until

CLOUD_STACK_DB = 4091
SENDER = "16315551181"


@pytest.fixture(scope="module")
async def cloud(
    valkey_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Stack, GraphRecorder]]:
    """A stack whose WhatsApp gateway is the Cloud API engine, talking to the stand-in."""
    url = valkey_server.url.rsplit("/", 1)[0] + f"/{CLOUD_STACK_DB}"
    async with graph_recorder() as graph:
        settings: dict[str, Any] = CLOUD | {
            "whatsapp_cloud_api_base": graph.url,
            "owner_numbers": (f"{SENDER}@c.us",),
            "send_rate_per_s": 1000.0,
            "send_per_chat_interval_s": 0.0,
        }
        async with running_stack(url, tmp_path_factory.mktemp("cloud"), **settings) as stack:
            yield stack, graph


async def arrive(stack: Stack, wamid: str, body: str) -> None:
    """Meta delivers a signed webhook with one text message from ``SENDER``, sent just now (so
    the reply is inside the 24-hour window)."""
    message = text_message(wamid, body, SENDER) | {"timestamp": str(int(time.time()))}
    content, headers = signed(webhook([message]))
    r = await stack.http.post(
        f"{stack.settings.whatsapp_url}/webhooks/whatsapp", content=content, headers=headers
    )
    assert r.status_code == 200, r.text


async def test_typing_and_read_receipt_repeat_while_a_slow_model_thinks(
    cloud: tuple[Stack, GraphRecorder],
) -> None:
    stack, graph = cloud
    wamid = "wamid.HBgLMTYzMTU1NTExODEVAgASGBQzQUFCRkUwMTc0QUI1QkQ1NjY3OQA="

    async def slow(messages: list[BaseMessage]) -> AIMessage:
        # thinks until the indicator was sent again (refreshed) at least twice after the first
        await wait_until(lambda: len(graph.receipts(wamid)) >= 3, 20)
        return AIMessage(content="Done thinking.")

    async with stack.engine(scripted(slow), typing_refresh_s=0.2):
        await arrive(stack, wamid, "Think hard about this")
        await wait_until(lambda: graph.sends(), 30)
        await stack.wait_answered(f"{SENDER}@c.us")
    receipts = graph.receipts(wamid)
    assert len(receipts) >= 3
    assert receipts[0] == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": wamid,
        "typing_indicator": {"type": "text"},
    }
    assert all(r == receipts[0] for r in receipts)
    [reply] = graph.sends()
    assert reply["text"]["body"] == "Done thinking."
    # no indicator after the reply: it would show "typing…" under the answer
    bodies = [r.body for r in graph.requests]
    assert bodies.index(reply) > max(i for i, b in enumerate(bodies) if b.get("status") == "read")


async def test_a_reply_quotes_its_message_when_the_person_wrote_again_meanwhile(
    cloud: tuple[Stack, GraphRecorder],
) -> None:
    """REPLY_QUOTE=first (the default): the answer to the first question quotes it, because
    the second arrived while the model thought; the answer to the second sits right under it."""
    stack, graph = cloud
    first, second = "wamid.FIRSTQUESTION0001", "wamid.SECONDQUESTION002"
    chat = f"{SENDER}@c.us"

    async def inbound() -> int:
        events = await stack.chat_events(chat)
        return sum(1 for e in events if e.type == "whatsapp:message" and e.data.id == second)

    async def thinks(messages: list[BaseMessage]) -> AIMessage:
        asked = trailing_user_texts(messages)
        if asked == ["When is the dentist?"]:
            await wait_until(inbound, 20)  # the person writes again meanwhile
        return AIMessage(content=f"About: {' | '.join(asked)}")

    before = len(graph.sends())
    async with stack.engine(scripted(thinks)):
        await arrive(stack, first, "When is the dentist?")
        await wait_until(lambda: graph.receipts(first), 20)
        await arrive(stack, second, "And the plumber?")
        await wait_until(lambda: len(graph.sends()) >= before + 2, 30)
    replies = {s["text"]["body"]: s.get("context") for s in graph.sends()[before:]}
    assert replies == {
        "About: When is the dentist?": {"message_id": first},
        "About: And the plumber?": None,
    }
