"""What the model reads of media, through the real model path: ``langchain-openai`` against a
scripted OpenAI-compatible server (the model is the only stand-in; the engine, the gateways,
Valkey and the media directory are real). The requests it records are what a model reads."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar, post
from litestar.params import JSONBody

from aspri.agents.llm import build_model
from aspri.config import Settings
from aspri.media import MediaStore
from aspri.schemas import REGISTRY, WhatsAppMessage
from aspri.schemas.media import Image, Voice
from aspri.streams import keys
from tests.agents.engine.stack import Stack, new_number
from tests.agents.engine.test_injection import completion
from tests.helpers import serve_asgi

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256))


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
    requests: list[dict[str, Any]] = []

    @post("/v1/chat/completions", status_code=200)
    async def chat(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        requests.append(data)
        return completion({"role": "assistant", "content": "A small test picture."})

    async with serve_asgi(Litestar([chat])) as url:
        yield requests, f"{url}/v1"


async def arrive(stack: Stack, message: WhatsAppMessage) -> None:
    """Recorded as the gateway records an inbound message (both streams in one append)."""
    event = REGISTRY.event(message, source="whatsapp")
    await stack.log.append([keys.WHATSAPP_MESSAGES, keys.chat(message.chat_id)], event)


@pytest.mark.parametrize("images", ["on", "off"])
async def test_an_image_is_an_image_part_and_a_voice_note_its_transcript(
    stack: Stack, scripted: tuple[list[dict[str, Any]], str], images: str
) -> None:
    requests, url = scripted
    number = new_number()
    chat = f"{number}@c.us"
    stored = await MediaStore(stack.settings.media_dir, {"image": 10_000}).put("image", JPEG)
    settings = Settings(
        llm_provider="openai", openai_base_url=url, openai_api_key="k", llm_model="m"
    )
    note = Voice(sha256="0" * 64, mime="audio/ogg", transcript="Is it a cat?")
    photo = Image(sha256=stored.sha256, mime="image/jpeg", size=stored.size, caption="look")
    # Both are recorded before the engine starts, so one turn answers them together.
    await arrive(
        stack, WhatsAppMessage(id="w1", chat_id=chat, from_=chat, type="audio", media=note)
    )
    await arrive(
        stack,
        WhatsAppMessage(id="w2", chat_id=chat, from_=chat, body="look", type="image", media=photo),
    )
    async with stack.engine(build_model(settings), owner_numbers=(chat,), llm_images=images):
        await stack.wait_replies(chat, 1)
    users = [m["content"] for m in requests[-1]["messages"] if m["role"] == "user"]
    assert users[0] == "[voice note, transcribed:] Is it a cat?"
    if images == "off":
        assert users[1] == "[image: look]"
        return
    text, picture = users[1]
    assert text == {"type": "text", "text": "[image: look]"}
    data_url = f"data:image/jpeg;base64,{base64.b64encode(JPEG).decode()}"
    assert picture == {"type": "image_url", "image_url": {"url": data_url}}
