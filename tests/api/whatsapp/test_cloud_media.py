"""Cloud API media in: Meta's recorded webhook shapes, downloaded from a local Graph API
stand-in (``graph_recorder``: a real HTTP server serving ``GET /{media-id}`` and the short-lived
URL, both only with the bearer token), stored once per sha256, served back, referenced by the
event. Meta and WhatsApp cannot be reached from a test machine: they are the only stand-ins;
the gateway, the embedded Valkey and the media directory are real."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from aspri.config import Settings
from aspri.schemas import Event
from aspri.schemas.media import (
    Audio,
    Contact,
    Document,
    Image,
    Interactive,
    Location,
    Reaction,
    Unsupported,
    Video,
    Voice,
)
from aspri.streams import keys
from tests.api.whatsapp.conftest import GatewayFactory, Running
from tests.api.whatsapp.graph_recorder import graph_recorder
from tests.api.whatsapp.test_cloud import CLOUD, SENDER, cloud_channel, deliver, webhook
from tests.helpers import wait_until
from tests.media.transcription_server import transcription_server

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
OPUS = b"OggS\x00\x02" + b"\x01" * 600
PDF = b"%PDF-1.7\n" + b"%%EOF\n" * 50
HTML = b"<html><script>alert(1)</script></html>"
CHAT = f"{SENDER}@c.us"


def message(wamid: str, kind: str, part: Any, **extra: Any) -> dict[str, Any]:
    """One entry of ``value.messages`` as Meta documents it for ``kind``."""
    return {
        "from": SENDER,
        "id": wamid,
        "timestamp": "1717000100",
        "type": kind,
        kind: part,
    } | extra


async def recorded(gw: Running, count: int) -> list[Event[Any]]:
    """The engine's queue once it holds ``count`` messages (media are recorded after the 200,
    once the gateway's worker fetched them)."""

    async def enough() -> list[Event[Any]] | None:
        events = await gw.stream(keys.WHATSAPP_MESSAGES)
        return events if len(events) >= count else None

    events: list[Event[Any]] = await wait_until(enough, 20)
    return events


def meta_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "media").rglob("*") if p.is_file())


async def test_media_types_are_downloaded_stored_once_and_served_back(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    caps = Settings().media_max_bytes | {"video": 1000}
    async with graph_recorder() as graph:
        graph.media = {
            "1003383421387256": (JPEG, "image/png"),  # declared wrongly: the bytes are a JPEG
            "1003383421387257": (JPEG, "image/jpeg"),  # the same picture sent again
            "2003383421387256": (OPUS, "audio/ogg; codecs=opus"),
            "3003383421387256": (PDF, "application/pdf"),
            "4003383421387256": (HTML, "application/pdf"),  # a page posing as a PDF
            "5003383421387256": (b"\x00" * 5000, "video/mp4"),  # over the 1000-byte video cap
        }
        # (a burst above the batch: the inbound rate limit is not what this test is about)
        settings = CLOUD | {"data_dir": tmp_path, "media_max_bytes": caps, "inbound_burst": 100}
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url, **settings)
        async with open_gateway(channel=channel, **settings) as gw:
            image = {"caption": "the receipt", "mime_type": "image/png", "sha256": "x"}
            batch = [
                message("wamid.IMG1", "image", image | {"id": "1003383421387256"}),
                message(
                    "wamid.VOICE",
                    "audio",
                    {
                        "mime_type": "audio/ogg; codecs=opus",
                        "id": "2003383421387256",
                        "voice": True,
                    },
                ),
                message(
                    "wamid.DOC",
                    "document",
                    {
                        "caption": "invoice",
                        "filename": "invoice.pdf",
                        "mime_type": "application/pdf",
                        "id": "3003383421387256",
                    },
                ),
                message(
                    "wamid.FAKE",
                    "document",
                    {"mime_type": "application/pdf", "id": "4003383421387256"},
                ),
                message("wamid.BIG", "video", {"mime_type": "video/mp4", "id": "5003383421387256"}),
                message(
                    "wamid.LOC",
                    "location",
                    {
                        "latitude": -6.1754,
                        "longitude": 106.8272,
                        "name": "Monas",
                        "address": "Jakarta",
                    },
                ),
                message(
                    "wamid.REACT", "reaction", {"message_id": "wamid.IMG1", "emoji": "\U0001f44d"}
                ),
                message(
                    "wamid.TAP",
                    "interactive",
                    {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes please"}},
                    context={"from": "15550783881", "id": "wamid.ASKED"},
                ),
                message(
                    "wamid.CARD",
                    "contacts",
                    [
                        {
                            "name": {"formatted_name": "Budi Santoso", "first_name": "Budi"},
                            "phones": [
                                {
                                    "phone": "+62 812 3456 789",
                                    "wa_id": "628123456789",
                                    "type": "MOBILE",
                                }
                            ],
                        }
                    ],
                ),
                {
                    "from": SENDER,
                    "id": "wamid.ODD",
                    "timestamp": "1717000100",
                    "type": "unsupported",
                    "errors": [{"code": 131051, "title": "Message type unknown"}],
                },
                message("wamid.ORDER", "order", {"catalog_id": "c1", "product_items": []}),
                message(
                    "wamid.IMG2", "image", {"mime_type": "image/jpeg", "id": "1003383421387257"}
                ),
            ]
            response = await deliver(gw.client, webhook(batch))
            assert response.status_code == 200, response.text
            assert response.json()["data"]["messages"] == len(batch)
            assert response.json()["data"]["pending"] == 6  # the files, fetched after the 200

            events = await recorded(gw, len(batch))
            by_id = {e.data.id: e.data for e in events}
            assert len(await gw.stream(keys.chat(CHAT))) == len(batch)
            sha_jpeg, sha_opus, sha_pdf = meta_sha(JPEG), meta_sha(OPUS), meta_sha(PDF)
            assert by_id["wamid.IMG1"].media == Image(
                id="1003383421387256",
                mime="image/jpeg",
                size=len(JPEG),
                sha256=sha_jpeg,
                caption="the receipt",
            )
            assert by_id["wamid.IMG1"].body == "the receipt"
            assert by_id["wamid.IMG1"].type == "image"
            assert by_id["wamid.IMG2"].media.sha256 == sha_jpeg  # type: ignore[union-attr]
            voice = by_id["wamid.VOICE"].media
            assert isinstance(voice, Voice) and (voice.sha256, voice.mime) == (
                sha_opus,
                "audio/ogg",
            )
            doc = by_id["wamid.DOC"].media
            assert isinstance(doc, Document) and doc.filename == "invoice.pdf"
            assert (doc.sha256, doc.caption) == (sha_pdf, "invoice")
            fake = by_id["wamid.FAKE"].media
            assert isinstance(fake, Document) and fake.mime == "application/pdf"
            big = by_id["wamid.BIG"].media
            assert isinstance(big, Video) and big.sha256 is None
            assert big.error == "larger than the video cap of 1000 bytes"
            assert by_id["wamid.LOC"].media == Location(
                latitude=-6.1754, longitude=106.8272, name="Monas", address="Jakarta"
            )
            assert by_id["wamid.REACT"].media == Reaction(
                message_id="wamid.IMG1", emoji="\U0001f44d"
            )
            tap = by_id["wamid.TAP"]
            assert tap.media == Interactive(reply_id="yes", title="Yes please")
            assert tap.quoted_message_id == "wamid.ASKED"
            assert by_id["wamid.CARD"].media == Contact(
                name="Budi Santoso", phones=["+62 812 3456 789"]
            )
            assert by_id["wamid.ODD"].media == Unsupported(type="unsupported")
            assert by_id["wamid.ORDER"].media == Unsupported(type="order")

            # Each sha256 once on disk; the oversized video was never downloaded.
            assert [p.name for p in stored_files(tmp_path)] == sorted(
                [sha_jpeg, sha_opus, sha_pdf, meta_sha(HTML)]
            )
            assert graph.downloads == 5
            assert all(
                r.headers["authorization"] == "Bearer EAAtoken" for r in graph.media_requests
            )

            served = await gw.client.get(f"/api/media/{sha_jpeg}")
            assert (served.status_code, served.content) == (200, JPEG)
            assert served.headers["content-type"] == "image/jpeg"
            page = await gw.client.get(f"/api/media/{meta_sha(HTML)}")
            assert page.status_code == 200
            assert page.headers["content-type"] == "application/octet-stream"


async def test_a_refused_download_is_recorded_with_the_reason(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with graph_recorder() as graph:
        graph.media = {"9003383421387256": (JPEG, "image/jpeg")}
        graph.token = "another-token"  # our token is refused, as an expired one would be
        settings = CLOUD | {"data_dir": tmp_path}
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url, **settings)
        async with open_gateway(channel=channel, **settings) as gw:
            image = {"mime_type": "image/jpeg", "id": "9003383421387256"}
            response = await deliver(gw.client, webhook([message("wamid.NOPE", "image", image)]))
            assert response.status_code == 200
            [event] = await recorded(gw, 1)
            assert event.data.media == Image(
                id="9003383421387256",
                mime="image/jpeg",
                error="the Graph API refused the media id (401)",
            )
            assert stored_files(tmp_path) == []


async def test_voice_notes_are_transcribed_before_they_are_recorded(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """The Graph API and the transcription service are local stand-ins (an OpenAI-compatible
    ``/audio/transcriptions``); the gateway, Valkey and the media directory are real."""
    other = b"OggS\x00\x02" + b"\x07" * 300
    async with graph_recorder() as graph, transcription_server() as speech:
        graph.media = {
            "7003383421387256": (OPUS, "audio/ogg; codecs=opus"),
            "7003383421387257": (other, "audio/ogg"),
        }
        speech.texts = {OPUS: "Remind me to call mum at six."}
        settings = CLOUD | {
            "data_dir": tmp_path,
            "transcription_provider": "openai",
            "openai_base_url": speech.url,
            "openai_api_key": speech.key,
        }
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url, **settings)
        async with open_gateway(channel=channel, **settings) as gw:
            voice = {"mime_type": "audio/ogg; codecs=opus", "id": "7003383421387256", "voice": True}
            unknown = {"mime_type": "audio/ogg", "id": "7003383421387257"}
            batch = [message("wamid.V1", "audio", voice), message("wamid.A2", "audio", unknown)]
            response = await deliver(gw.client, webhook(batch))
            assert response.status_code == 200
            by_id = {e.data.id: e.data for e in await recorded(gw, 2)}
            first, second = by_id["wamid.V1"], by_id["wamid.A2"]
            assert isinstance(first.media, Voice)
            assert first.media.transcript == "Remind me to call mum at six."
            assert first.media.sha256 == meta_sha(OPUS)
            assert speech.received[0] == {
                "model": "whisper-1",
                "filename": f"{meta_sha(OPUS)}.ogg",
                "type": "audio/ogg",
            }
            assert isinstance(second.media, Audio) and second.media.transcript is None
            assert second.media.error == "the transcription service refused (400)"
            assert second.media.sha256 == meta_sha(other)  # kept, only not transcribed


async def test_the_history_shows_the_reference_and_where_the_file_is(
    open_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with graph_recorder() as graph:
        graph.media = {"8003383421387256": (JPEG, "image/jpeg")}
        settings = CLOUD | {"data_dir": tmp_path}
        channel = cloud_channel(whatsapp_cloud_api_base=graph.url, **settings)
        async with open_gateway(channel=channel, **settings) as gw:
            image = {"caption": "the view", "mime_type": "image/jpeg", "id": "8003383421387256"}
            batch = [message("wamid.H1", "image", image)]
            assert (await deliver(gw.client, webhook(batch))).status_code == 200
            await recorded(gw, 1)
            page = (await gw.client.get(f"/api/messages/{SENDER}")).json()["data"]
            [shown] = page["messages"]
            assert shown["body"] == "the view"
            assert shown["media"] == {
                "kind": "image",
                "id": "8003383421387256",
                "mime": "image/jpeg",
                "size": len(JPEG),
                "sha256": meta_sha(JPEG),
                "caption": "the view",
                "filename": None,
                "error": None,
                "transcript": None,
                "text": None,
            }
            served = await gw.client.get(shown["mediaUrl"])
            assert (served.status_code, served.content) == (200, JPEG)
