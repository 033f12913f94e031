"""Attaching in the web chat: a photo with a caption, a document and a voice note recorded with
MediaRecorder go to the gateway, are stored and recorded like the Cloud API's media, and show in
the chat behind the page's session cookie (a thumbnail, a link, a player); an upload the
gateway refuses says why in the page."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from playwright.async_api import Browser, expect

from aspri.config import Settings
from aspri.schemas.media import Document, Image, Voice
from aspri.streams import keys
from tests.api.whatsapp.conftest import GatewayFactory
from tests.browser import MARKS, open_chat, page_errors, shot
from tests.helpers import wait_until

pytestmark = MARKS

CHAT = "6281400000002@c.us"
PDF = b"%PDF-1.7\n" + b"%%EOF\n" * 50

FAKE_MICROPHONE = """
navigator.mediaDevices.getUserMedia = async () => {
  const context = new AudioContext();
  const tone = context.createOscillator();
  const out = context.createMediaStreamDestination();
  tone.connect(out);
  tone.start();
  return out.stream;
};
"""
"""A microphone for headless chromium: a tone through Web Audio, recorded by the page's own
MediaRecorder."""


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour (so the page's thumbnail has pixels to show)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


async def test_attach_a_photo_a_document_and_a_voice_note(
    serve_gateway: GatewayFactory, chromium: Browser, tmp_path: Path
) -> None:
    caps = Settings().media_max_bytes | {"image": 20_000}
    async with serve_gateway(data_dir=tmp_path, media_max_bytes=caps) as gw:
        hello = await gw.client.post("/api/local/messages", json={"from": CHAT, "text": "hi"})
        assert hello.status_code == 202
        page = await chromium.new_page(viewport={"width": 1000, "height": 700})
        errors = page_errors(page)
        await page.add_init_script(FAKE_MICROPHONE)
        await open_chat(page, str(gw.client.base_url), CHAT)
        await expect(page.locator("#connection")).to_have_attribute("data-state", "online")

        await page.locator("#message-input").fill("Our new sofa")
        photo = png(160, 120, (40, 140, 200))
        await page.set_input_files(
            "#attach-input", files=[{"name": "sofa.png", "mimeType": "image/png", "buffer": photo}]
        )
        thumbnail = page.locator(".bubble.out img.photo")
        await expect(thumbnail).to_be_visible()
        await expect(page.locator(".bubble.out").last).to_contain_text("Our new sofa")
        await expect(page.locator("#message-input")).to_have_value("")
        loaded = await thumbnail.evaluate("img => img.complete && img.naturalWidth")
        assert loaded == 160  # the bytes came back through GET /api/media with the cookie

        await page.set_input_files(
            "#attach-input",
            files=[{"name": "invoice.pdf", "mimeType": "application/pdf", "buffer": PDF}],
        )
        await expect(page.locator(".bubble.out a.file")).to_contain_text("invoice.pdf")

        await page.locator("#record-button").click()
        await expect(page.locator("#recording")).to_be_visible()
        await page.wait_for_function(
            "Number(document.querySelector('#recording').dataset.bytes) > 0"
        )
        await page.locator("#record-button").click()
        await expect(page.locator(".bubble.out audio.voice")).to_have_count(1)
        await expect(page.locator("#recording")).to_be_hidden()
        await shot(page, "web-chat-attachments")

        too_big = png(400, 400, (1, 2, 3)) + bytes(30_000)
        await page.set_input_files(
            "#attach-input", files=[{"name": "big.png", "mimeType": "image/png", "buffer": too_big}]
        )
        await expect(page.locator("#send-error")).to_contain_text("Not sent: file: larger than")

        async def recorded() -> list[object]:
            events = await gw.stream(keys.WHATSAPP_MESSAGES)
            return [e.data.media for e in events if e.data.media is not None]

        media = await wait_until(recorded)
        assert [type(m) for m in media] == [Image, Document, Voice]
        image, document, voice = media
        assert isinstance(image, Image) and image.caption == "Our new sofa"
        assert isinstance(document, Document) and document.filename == "invoice.pdf"
        assert isinstance(voice, Voice) and (voice.mime or "").startswith("audio/")
        assert voice.size > 0 and (tmp_path / "media" / voice.sha256[:2] / voice.sha256).is_file()
        await page.close()
        assert errors == []
