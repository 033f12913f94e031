"""Voice replies through the gateway: ``POST /api/send-message`` with ``voice: true``.

The speech service is a local OpenAI-compatible ``/audio/speech`` stand-in (``speech_server``)
and Meta's Graph API the local recorder (``graph_recorder``, which now also takes uploads with
the bearer check); the gateway, the media store and Valkey are real. When no voice note can be
made the text still goes out, and the result says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aspri.api.whatsapp.engines.cloud import CloudChannel
from aspri.schemas.media import Voice
from aspri.streams import keys
from tests.api.whatsapp.conftest import FakeChannel, GatewayFactory, settings_for
from tests.api.whatsapp.graph_recorder import graph_recorder
from tests.api.whatsapp.test_cloud import (
    CLOUD,
    NUMBER_ID,
    SENDER,
    deliver,
    fresh_inbound,
    webhook,
)
from tests.media.speech_server import ogg_of, speech_server

CHAT = f"{SENDER}@c.us"


def spoken(url: str, key: str, data_dir: Path) -> dict[str, Any]:
    return {
        "speech_provider": "openai",
        "openai_base_url": url,
        "openai_api_key": key,
        "data_dir": data_dir,
    }


async def test_a_cloud_voice_reply_is_uploaded_then_sent_as_a_voice_note(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    text = "Your meeting with Budi is at three."
    async with speech_server() as speech, graph_recorder() as graph:
        settings = CLOUD | spoken(speech.url, speech.key, tmp_path)
        channel = CloudChannel(settings_for(**settings, whatsapp_cloud_api_base=graph.url))
        async with open_gateway(channel=channel, **settings) as gw:
            await deliver(gw.client, webhook([fresh_inbound("wamid.in1")]))  # the window opens
            body = {"phoneNumber": SENDER, "message": text, "voice": True, "idempotencyKey": "v1"}
            response = await gw.client.post("/api/send-message", json=body)
            assert response.status_code == 200, response.text
            sent = response.json()["data"]
            assert sent["voice"] is True and sent.get("voiceError") is None
            again = await gw.client.post("/api/send-message", json=body)
            assert again.json()["data"]["duplicate"] is True

            assert speech.received == [
                {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "opus"}
            ]
            [(media_id, upload)] = graph.uploads.items()
            assert upload.data == ogg_of(text)
            assert upload.mime == upload.file_type == "audio/ogg"
            assert upload.messaging_product == "whatsapp"
            [message] = graph.requests
            assert message.path == f"/v21.0/{NUMBER_ID}/messages"
            assert message.body == {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": SENDER,
                "type": "audio",
                "audio": {"id": media_id, "voice": True},
            }
            assert sent["messageId"].startswith("wamid.")

            event = (await gw.stream(keys.chat(CHAT)))[-1]
            assert event.data.body == text and event.data.from_me
            assert isinstance(event.data.media, Voice) and event.data.media.transcript == text
            shown = (await gw.client.get(f"/api/messages/{SENDER}")).json()["data"]["messages"][0]
            assert shown["body"] == text and shown["media"]["kind"] == "voice"
            served = await gw.client.get(shown["mediaUrl"])
            assert served.content == ogg_of(text)
            assert served.headers["content-type"] == "audio/ogg"


async def test_an_upload_without_the_token_is_refused_and_the_text_goes_out(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with speech_server() as speech, graph_recorder() as graph:
        graph.token = "another-token"  # the channel's token no longer opens /media
        settings = CLOUD | spoken(speech.url, speech.key, tmp_path)
        channel = CloudChannel(settings_for(**settings, whatsapp_cloud_api_base=graph.url))
        async with open_gateway(channel=channel, **settings) as gw:
            await deliver(gw.client, webhook([fresh_inbound("wamid.in1")]))
            body = {"phoneNumber": SENDER, "message": "hello", "voice": True}
            sent = (await gw.client.post("/api/send-message", json=body)).json()["data"]
            assert sent["voice"] is False
            assert "refused the voice note" in sent["voiceError"] and "190" in sent["voiceError"]
            assert not graph.uploads
            [message] = graph.requests
            assert message.body["type"] == "text" and message.body["text"]["body"] == "hello"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("refuse", "the speech service refused (500)"),
        ("garbage", "the speech service did not answer with OGG audio"),
        ("huge", "the speech service answered more than 65536 bytes"),
    ],
)
async def test_a_failing_speech_service_means_the_text_goes_out(
    open_gateway: GatewayFactory, tmp_path: Path, mode: str, reason: str
) -> None:
    async with speech_server() as speech:
        speech.mode = mode
        settings = spoken(speech.url, speech.key, tmp_path)
        async with open_gateway(**settings, media_max_bytes={"voice": 64 * 1024}) as gw:
            body = {"phoneNumber": SENDER, "message": "the reply", "voice": True}
            response = await gw.client.post("/api/send-message", json=body)
            assert response.status_code == 200, response.text
            sent = response.json()["data"]
            assert sent["voice"] is False and sent["voiceError"] == reason
            [event] = await gw.stream(keys.chat(CHAT))
            assert event.data.body == "the reply" and event.data.media is None
            leftovers = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
            assert leftovers == [], "nothing of a refused answer stays in the media store"


async def test_without_speech_or_on_an_engine_without_voice_the_text_goes_out(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    body = {"phoneNumber": SENDER, "message": "plain", "voice": True}
    async with open_gateway(data_dir=tmp_path) as gw:
        sent = (await gw.client.post("/api/send-message", json=body)).json()["data"]
        assert sent["voice"] is False
        assert sent["voiceError"] == "no speech service is configured (SPEECH_PROVIDER)"
    async with speech_server() as speech:
        channel = FakeChannel()
        settings = spoken(speech.url, speech.key, tmp_path)
        async with open_gateway(channel=channel, **settings) as gw:
            sent = (await gw.client.post("/api/send-message", json=body)).json()["data"]
            assert sent["voiceError"] == "the fake engine cannot send voice notes yet"
            assert channel.sent == [(CHAT, "plain")]
            assert speech.received == [], "nothing is spoken that cannot be sent"


async def test_outside_the_24_hour_window_the_text_goes_as_the_template(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with speech_server() as speech, graph_recorder() as graph:
        settings = CLOUD | spoken(speech.url, speech.key, tmp_path)
        channel = CloudChannel(
            settings_for(
                **settings,
                whatsapp_cloud_api_base=graph.url,
                whatsapp_cloud_template="reminder",
            )
        )
        async with open_gateway(channel=channel, **settings) as gw:
            body = {"phoneNumber": SENDER, "message": "tea time", "voice": True}
            sent = (await gw.client.post("/api/send-message", json=body)).json()["data"]
            assert sent["voice"] is False and "outside the 24-hour window" in sent["voiceError"]
            assert not graph.uploads
            [message] = graph.requests
            assert message.body["type"] == "template"


async def test_a_key_used_for_text_is_not_reused_for_a_voice_note(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with open_gateway(data_dir=tmp_path) as gw:
        body = {"phoneNumber": SENDER, "message": "same", "idempotencyKey": "k"}
        assert (await gw.client.post("/api/send-message", json=body)).status_code == 200
        voiced = await gw.client.post("/api/send-message", json=body | {"voice": True})
        assert voiced.status_code == 409
        assert voiced.json()["error"]["code"] == "idempotency_key_reused"
