"""What the model reads of media, through the real model path: ``langchain-openai`` against a
scripted OpenAI-compatible server (the model is the only stand-in; the engine, the gateways,
Valkey and the media directory are real). The requests it records are what a model reads."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, post
from litestar.params import JSONBody
from redis.asyncio import Redis

from aspri.agents.llm import build_model
from aspri.api.whatsapp.engines.browser import BrowserChannel
from aspri.api.whatsapp.gateway import Gateway
from aspri.config import Settings
from aspri.media import MediaStore
from aspri.schemas import REGISTRY, WhatsAppMessage
from aspri.schemas.media import Image, Voice
from aspri.streams import keys
from tests.agents.engine.stack import Stack, new_number
from tests.agents.engine.test_injection import completion
from tests.api.whatsapp.browser.fake_server import FakeWhatsApp
from tests.api.whatsapp.browser.support import CHROMIUM, browser_settings
from tests.api.whatsapp.browser.test_browser_channel import logged_in
from tests.helpers import serve_asgi, wait_until
from tests.media.transcription_server import transcription_server

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


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing")
async def test_media_from_the_browser_engine_reaches_the_model(
    stack: Stack, scripted: tuple[list[dict[str, Any]], str]
) -> None:
    """A picture and a voice note sent on WhatsApp Web (the local stand-in page, see
    ``tests/api/whatsapp/browser``) are downloaded through wa-js, stored, transcribed by a
    local ``/audio/transcriptions`` stand-in, recorded by the gateway, and read by the model."""
    requests, url = scripted
    chat = f"{new_number()}@c.us"
    voice = b"OggS\x00\x02" + b"\x05" * 400
    fake = FakeWhatsApp()
    fake.start()
    redis = Redis.from_url(stack.settings.redis_url or "")
    try:
        async with transcription_server() as speech:
            speech.texts = {voice: "Is it a cat?"}
            settings = browser_settings(
                stack.settings.data_dir,
                fake.url(),
                transcription_provider="openai",
                transcription_base_url=speech.url,
                transcription_api_key=speech.key,
            )
            channel = BrowserChannel(settings, backoff=(0.05, 0.5))
            gateway = Gateway(settings, redis, channel)
            await gateway.start()
            try:
                await logged_in(channel, fake)
                for message in (
                    {"id": "V1", "type": "ptt", "mimetype": "audio/ogg; codecs=opus", "b": voice},
                    {"id": "I1", "type": "image", "mimetype": "image/jpeg", "b": JPEG},
                ):
                    data = message.pop("b")
                    assert isinstance(data, bytes)
                    message |= {"chatId": chat, "isMedia": True, "size": len(data), "t": 1}
                    message["data"] = base64.b64encode(data).decode()
                    if message["type"] == "image":
                        message["caption"] = "look"
                    fake.push({"cmd": "message", "message": message})

                async def both_recorded() -> bool:
                    return len(await stack.chat_events(chat)) == 2

                await wait_until(both_recorded, 20)
            finally:
                await gateway.stop()
        model = build_model(
            Settings(llm_provider="openai", openai_base_url=url, openai_api_key="k", llm_model="m")
        )
        async with stack.engine(model, owner_numbers=(chat,), llm_images="on"):
            await stack.wait_replies(chat, 1)
    finally:
        await redis.aclose()
        fake.stop()
    users = [m["content"] for m in requests[-1]["messages"] if m["role"] == "user"]
    assert users[0] == "[voice note, transcribed:] Is it a cat?"
    text, picture = users[1]
    assert text == {"type": "text", "text": "[image: look]"}
    data_url = f"data:image/jpeg;base64,{base64.b64encode(JPEG).decode()}"
    assert picture == {"type": "image_url", "image_url": {"url": data_url}}
