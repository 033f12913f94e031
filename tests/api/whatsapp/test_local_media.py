"""Files and voice notes sent from the local web chat (``POST /api/local/media``): stored like
the Cloud API's downloads (content-addressed, the kind's cap) and recorded as a v2 message with
the media reference, a voice note transcribed first; every hostile upload is a 4xx naming the
field, never a 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from aspri.schemas.media import Document, Image, Voice
from aspri.streams import keys
from tests.api.whatsapp.conftest import GatewayFactory, Running
from tests.media.pdf import pdf_with_text
from tests.media.transcription_server import transcription_server

CHAT = "6281400000001@c.us"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
WEBM = b"\x1a\x45\xdf\xa3" + b"\x42\x86\x81\x01" * 300
PDF = b"%PDF-1.7\n" + b"%%EOF\n" * 50


async def upload(
    client: httpx.AsyncClient, data: bytes, mime: str, filename: str = "f", **fields: str
) -> httpx.Response:
    return await client.post(
        "/api/local/media",
        data={"from": CHAT, **fields},
        files={"file": (filename, data, mime)},
    )


async def inbound(gw: Running) -> list[Any]:
    return [e.data for e in await gw.stream(keys.WHATSAPP_MESSAGES)]


async def test_an_image_and_a_document_become_messages_with_media(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with open_gateway(data_dir=tmp_path) as gw:
        r = await upload(gw.client, PNG, "image/png", "cat.png", caption="my cat", name="Dewi")
        assert r.status_code == 202, r.text
        assert r.json()["data"]["chatId"] == CHAT
        again = await upload(gw.client, PNG, "image/png", "same.png")  # stored once
        assert again.status_code == 202
        report_pdf = pdf_with_text(["Quarterly report: all good"])
        doc = await upload(gw.client, report_pdf, "application/pdf", "../../etc/report.pdf")
        assert doc.status_code == 202, doc.text
        photo, copy, report = await inbound(gw)
        assert isinstance(photo.media, Image) and photo.type == "image"
        assert (photo.body, photo.from_name, photo.media.caption) == ("my cat", "Dewi", "my cat")
        assert (photo.media.mime, photo.media.size, photo.media.filename) == (
            "image/png",
            len(PNG),
            "cat.png",
        )
        assert copy.media.sha256 == photo.media.sha256
        stored = list((tmp_path / "media").glob("??/*"))
        assert len(stored) == 2
        assert isinstance(report.media, Document) and report.media.filename == "report.pdf"
        assert report.media.text == "Quarterly report: all good"  # what the model reads
        served = await gw.client.get(f"/api/media/{photo.media.sha256}")
        assert served.status_code == 200 and served.content == PNG
        history = await gw.client.get(f"/api/messages/{CHAT}")
        shown = history.json()["data"]["messages"][-1]
        assert shown["mediaUrl"] == f"/api/media/{photo.media.sha256}"
        assert shown["media"]["kind"] == "image"


async def test_a_throttled_senders_document_is_recorded_but_not_parsed(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """Over the inbound limit a document is still recorded (throttled), but its PDF is not
    read: a flood of files costs no parsing."""
    limits = {"inbound_rate_per_minute": 1, "inbound_burst": 1}
    async with open_gateway(data_dir=tmp_path, **limits) as gw:
        for words in ("First report", "Second report"):
            r = await upload(gw.client, pdf_with_text([words]), "application/pdf", "r.pdf")
            assert r.status_code == 202, r.text
        chat = [e.data for e in await gw.stream(keys.chat(CHAT))]
        first, second = [m for m in chat if isinstance(m.media, Document)]
    assert first.media.text == "First report" and not first.throttled
    assert second.throttled
    assert second.media.text is None and second.media.sha256  # stored, not parsed


async def test_a_recorded_voice_note_is_transcribed_before_it_is_recorded(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with transcription_server() as speech:
        speech.texts = {WEBM: "Remind me to water the plants."}
        settings = {
            "data_dir": tmp_path,
            "transcription_provider": "openai",
            "openai_base_url": speech.url,
            "openai_api_key": speech.key,
        }
        async with open_gateway(**settings) as gw:
            r = await upload(gw.client, WEBM, "audio/webm;codecs=opus", "voice.webm", voice="true")
            assert r.status_code == 202, r.text
            [note] = await inbound(gw)
            assert isinstance(note.media, Voice) and note.type == "audio"
            assert note.media.transcript == "Remind me to water the plants."
            assert note.media.mime == "audio/webm"
            assert speech.received[0]["type"] == "audio/webm"


async def test_hostile_uploads_are_4xx_naming_the_field(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    caps = {"image": 1024, "audio": 2048, "voice": 2048, "video": 2048, "document": 4096}
    async with open_gateway(data_dir=tmp_path, media_max_bytes=caps) as gw:
        client = gw.client
        cases: list[tuple[httpx.Response, int, str]] = [
            (await upload(client, PNG, "image/png"), 413, "file"),  # over the image cap
            (await upload(client, b"MZ\x90\x00", "application/x-msdownload"), 415, "file"),
            (await upload(client, b"", "image/png"), 400, "file"),
            (await upload(client, b"<html><script>", "image/png"), 415, "file"),
            (await upload(client, PDF, "application/pdf", caption="x" * 70_000), 413, "caption"),
            (
                await client.post("/api/local/media", data={"from": CHAT}, files={"x": b"a"}),
                400,
                "file",
            ),
            (
                await client.post("/api/local/media", files={"file": ("f", PDF, "text/plain")}),
                400,
                "from",
            ),
            (
                await client.post(
                    "/api/local/media",
                    data={"from": "not a number"},
                    files={"file": ("f", PDF, "text/plain")},
                ),
                400,
                "from",
            ),
            (
                await client.post(
                    "/api/local/media",
                    content=b"--xyz\r\nContent-Disposition: form-data; name=\r\n\r\nnope",
                    headers={"Content-Type": "multipart/form-data; boundary=xyz"},
                ),
                400,
                "body",
            ),
            (
                await client.post(
                    "/api/local/media",
                    content=b'--xyz\r\nContent-Disposition: form-data; name="from"\r\n\r\n\xff'
                    b"\xfe\r\n--xyz--\r\n",
                    headers={"Content-Type": "multipart/form-data; boundary=xyz"},
                ),
                400,
                "body",
            ),
            (await client.post("/api/local/media", json={"from": CHAT}), 415, "Content-Type"),
            (
                await client.post(
                    "/api/local/media",
                    data={"from": CHAT},
                    files={"file": ("f", PDF, "application/pdf")},
                    headers={"Origin": "https://evil.example"},
                ),
                403,
                "Origin",
            ),
            (
                await client.post(
                    "/api/local/messages",
                    data={"from": CHAT, "text": "hi"},
                    files={"file": ("f", PDF, "application/pdf")},
                ),
                415,
                "Content-Type",
            ),
            (await upload(client, b"x" * 2_000_000, "text/plain"), 413, "body"),
        ]
        for response, status, field in cases:
            assert response.status_code == status, (status, field, response.text)
            message = response.json()["error"]["message"]
            assert message.startswith(f"{field}:"), message
        assert await inbound(gw) == []
        assert not list((tmp_path / "media").glob("??/*"))
