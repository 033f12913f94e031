"""Media in on the browser engine: files downloaded through wa-js in the page, stored once per
sha256, recorded by the gateway as the same v2 ``whatsapp:message`` the Cloud API path writes.

WhatsApp Web cannot be reached from a test machine: the page is the local stand-in
(``fake_wa/wpp.js``), whose ``WPP.chat.downloadMedia`` behaves as wa-js's (looks the message up
by its serialized id, rejects one without media or whose file cannot be fetched, resolves to a
Blob of the bytes typed with the message's mimetype) and whose ``chat.new_reaction`` event has
wa-js's shape. The transcription service is a local ``/audio/transcriptions`` stand-in; Chromium,
the gateway, the embedded Valkey and the media directory are real.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from aspri.api.whatsapp.engines.browser import BrowserChannel
from aspri.config import Settings
from aspri.schemas import WhatsAppMessage
from aspri.schemas.media import (
    Contact,
    Document,
    Image,
    Location,
    Reaction,
    Sticker,
    Unsupported,
    Video,
    Voice,
)
from aspri.streams import keys
from tests.api.whatsapp.browser.fake_server import FakeWhatsApp
from tests.api.whatsapp.browser.support import CHROMIUM, Inbox, browser_settings
from tests.api.whatsapp.browser.test_browser_channel import ANN, LAUNCH_TIMEOUT, logged_in
from tests.api.whatsapp.conftest import GatewayFactory
from tests.helpers import wait_until
from tests.media.transcription_server import transcription_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"
    ),
]

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
OPUS = b"OggS\x00\x02" + b"\x01" * 600
PDF = b"%PDF-1.7\n" + b"%%EOF\n" * 50
CARD = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Budi Santoso\r\nTEL;type=CELL:+62 812 3456 789\r\nEND:VCARD"
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_message(message_id: str, kind: str, data: bytes | None, **extra: Any) -> dict[str, Any]:
    """A media message as WhatsApp Web models it, with the bytes its media server holds."""
    encoded = None if data is None else base64.b64encode(data).decode()
    size = extra.pop("size", len(data or b""))
    return {
        "id": message_id,
        "chatId": ANN,
        "t": 1_700_000_100,
        "type": kind,
        "isMedia": True,
        "size": size,
        "data": encoded,
        "body": "/9j/thumbnail",
        **extra,
    }


def stored_files(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "media").rglob("*") if p.is_file())


def msg_id(message_id: str) -> str:
    return f"false_{ANN}_{message_id}"


async def test_media_in_is_downloaded_in_the_page_stored_once_and_recorded(
    open_gateway: GatewayFactory, fake_wa: FakeWhatsApp, data_dir: Path
) -> None:
    caps = Settings().media_max_bytes | {"video": 1000}
    async with transcription_server() as speech:
        speech.texts = {OPUS: "Remind me to call mum at six."}
        settings: dict[str, Any] = {
            "media_max_bytes": caps,
            "transcription_provider": "openai",
            "transcription_base_url": speech.url,
            "transcription_api_key": speech.key,
            "inbound_burst": 100,
        }
        channel = BrowserChannel(
            browser_settings(data_dir, fake_wa.url(), **settings), backoff=(0.05, 0.5)
        )
        async with open_gateway(channel=channel, data_dir=data_dir, **settings) as gw:
            await logged_in(channel, fake_wa)
            batch = [
                file_message(
                    "IMG1", "image", JPEG, mimetype="image/png", caption="the receipt"
                ),  # declared wrongly: the bytes are a JPEG
                file_message("IMG2", "image", JPEG, mimetype="image/jpeg"),  # sent again
                file_message(
                    "PTT", "ptt", OPUS, mimetype="audio/ogg; codecs=opus", quotedStanzaID="IMG1"
                ),
                file_message(
                    "DOC",
                    "document",
                    PDF,
                    mimetype="application/pdf",
                    filename="invoice.pdf",
                    caption="invoice",
                ),
                # Over the 1000-byte video cap: said so (never fetched), or lying about its size
                # (refused in the page before a byte is handed over).
                file_message("BIG", "video", b"\x00" * 5000, mimetype="video/mp4"),
                file_message("LIAR", "video", b"\x00" * 5000, mimetype="video/mp4", size=10),
                file_message(
                    "GONE", "sticker", None, mimetype="image/webp", fail="media_not_found"
                ),
                {
                    "id": "LOC",
                    "chatId": ANN,
                    "type": "location",
                    "lat": -6.1754,
                    "lng": 106.8272,
                    "loc": "Monas\nJakarta",
                    "body": "/9j/thumbnail",
                },
                {"id": "CARD", "chatId": ANN, "type": "vcard", "body": CARD},
                {"id": "POLL", "chatId": ANN, "type": "poll_creation", "body": "Lunch?"},
                {"id": "TEXT", "chatId": ANN, "body": "did you get them?"},
            ]
            for message in batch:
                fake_wa.push({"cmd": "message", "message": {"t": 1_700_000_100, **message}})
            reaction = {"id": "R1", "to": "3EB0MINE", "chatId": ANN, "sender": ANN, "emoji": "👍"}
            fake_wa.push({"cmd": "reaction", "reaction": {"t": 1_700_000_200, **reaction}})

            async def recorded() -> list[WhatsAppMessage]:
                return [e.data for e in await gw.stream(keys.WHATSAPP_MESSAGES)]

            async def all_recorded() -> bool:
                return len(await recorded()) == len(batch) + 1

            await wait_until(all_recorded, LAUNCH_TIMEOUT)
            by_id = {m.id: m for m in await recorded()}

    image = by_id[msg_id("IMG1")]
    assert image.media == Image(
        mime="image/jpeg", size=len(JPEG), sha256=sha(JPEG), caption="the receipt"
    )
    assert (image.body, image.type) == ("the receipt", "image")
    assert by_id[msg_id("IMG2")].media == Image(mime="image/jpeg", size=len(JPEG), sha256=sha(JPEG))
    voice = by_id[msg_id("PTT")]
    assert voice.media == Voice(
        mime="audio/ogg",
        size=len(OPUS),
        sha256=sha(OPUS),
        transcript="Remind me to call mum at six.",
    )
    assert voice.quoted_message_id == msg_id("IMG1")
    assert by_id[msg_id("DOC")].media == Document(
        mime="application/pdf",
        size=len(PDF),
        sha256=sha(PDF),
        caption="invoice",
        filename="invoice.pdf",
    )
    too_large = "larger than the video cap of 1000 bytes"
    assert by_id[msg_id("BIG")].media == Video(mime="video/mp4", error=too_large)
    assert by_id[msg_id("LIAR")].media == Video(mime="video/mp4", error=too_large)
    gone = by_id[msg_id("GONE")].media
    assert isinstance(gone, Sticker) and gone.sha256 is None
    assert gone.error is not None and "media_not_found" in gone.error
    assert by_id[msg_id("LOC")].media == Location(
        latitude=-6.1754, longitude=106.8272, name="Monas", address="Jakarta"
    )
    assert by_id[msg_id("LOC")].body == ""  # the thumbnail is no text
    assert by_id[msg_id("CARD")].media == Contact(name="Budi Santoso", phones=["+62 812 3456 789"])
    assert by_id[msg_id("POLL")].media == Unsupported(type="poll_creation")
    assert by_id[msg_id("TEXT")].media is None
    react = by_id[f"false_{ANN}_R1"]
    assert react.media == Reaction(message_id=f"true_{ANN}_3EB0MINE", emoji="👍")
    assert (react.type, react.from_) == ("reaction", ANN)

    # Each sha256 once on disk; nothing of the refused or failed files; the voice note went to
    # the transcription service once.
    assert stored_files(data_dir) == sorted([sha(JPEG), sha(OPUS), sha(PDF)])
    assert [r["model"] for r in speech.received] == ["whisper-1"]


async def test_a_download_that_fails_mid_way_is_recorded_and_the_next_message_arrives(
    channel: BrowserChannel, fake_wa: FakeWhatsApp, inbox: Inbox, data_dir: Path
) -> None:
    """The page breaks while the driver reads a file: the message is recorded with the
    reason, nothing half-written is kept; a content description that makes no sense still
    records the message; the next message is handed over as usual."""
    await logged_in(channel, fake_wa)
    assert channel._page is not None
    # A hostile page: every chunk it hands over is not base64.
    await channel._page.evaluate("window.__aspri.chunk = async () => '%%% not base64 %%%'")
    fake_wa.push(
        {"cmd": "message", "message": file_message("BAD", "image", JPEG, mimetype="image/jpeg")}
    )
    # A description the bridge cannot have written: the message is recorded by its type.
    odd = {
        "id": msg_id("ODD"),
        "chatId": ANN,
        "from": ANN,
        "body": "",
        "type": "poll_creation",
        "media": {"type": 5, "size": "huge"},
    }
    await channel._page.evaluate("(message) => window.__aspriInbound(message)", odd)
    fake_wa.push({"cmd": "message", "message": {"id": "AFTER", "chatId": ANN, "body": "still?"}})
    await wait_until(lambda: len(inbox.messages) == 3, LAUNCH_TIMEOUT)
    by_id = {m.id: m for m in inbox.messages}
    bad, odd, after = by_id[msg_id("BAD")], by_id[msg_id("ODD")], inbox.messages[-1]
    assert bad.media == Image(
        mime="image/jpeg", error="WhatsApp Web sent bytes that are not base64"
    )
    assert (odd.id, odd.media) == (msg_id("ODD"), Unsupported(type="poll_creation"))
    assert after.id == msg_id("AFTER") and after.body == "still?"
    assert stored_files(data_dir) == []
