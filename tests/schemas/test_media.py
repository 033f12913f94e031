"""``whatsapp:message`` v2: the media union on the wire, and v1 entries brought up to it."""

from __future__ import annotations

import msgspec
import pytest

from aspri.schemas import REGISTRY, UndecodableEvent, WhatsAppMessage
from aspri.schemas.media import (
    KINDS,
    Contact,
    Document,
    Image,
    Interactive,
    Location,
    Media,
    Reaction,
    Unsupported,
    Voice,
    as_text,
    kind_of,
)


def v1_entry(data: bytes, *, v: bytes | None = b"1") -> dict[bytes, bytes]:
    """A v1 entry as ASPRI wrote it before v2 (``v`` 1) or the original services (no ``v``)."""
    fields = {
        b"eventId": b"0190c0de-0000-7000-8000-000000000001",
        b"type": b"whatsapp:message",
        b"source": b"whatsapp",
        b"timestamp": b"1700000000123",
        b"data": data,
    }
    if v is not None:
        fields[b"v"] = v
    return fields


STORED_V1_IMAGE = (
    b'{"id":"false_1555@c.us_IMG","chatId":"1555@c.us","from":"1555@c.us","fromName":"Ann",'
    b'"body":"look at this","type":"image","timestamp":1700000000,"isGroup":false,'
    b'"fromMe":false,"hasMedia":true,"quotedMessageId":"false_1555@c.us_Q","selfChat":false,'
    b'"throttled":false}'
)
"""A v1 image message exactly as the browser engine recorded it before v2."""


@pytest.mark.parametrize("v", [b"1", None])
def test_a_stored_v1_media_message_decodes_as_v2(v: bytes | None) -> None:
    event = REGISTRY.from_fields(v1_entry(STORED_V1_IMAGE, v=v), entry_id="1-0")
    assert event.v == 2
    message = event.data
    assert isinstance(message, WhatsAppMessage)
    assert message.media == Image(caption="look at this")
    assert message.media.sha256 is None  # v1 never stored the bytes
    assert (message.body, message.type) == ("look at this", "image")
    assert message.quoted_message_id == "false_1555@c.us_Q"


@pytest.mark.parametrize(
    ("channel_type", "media"),
    [
        ("ptt", Voice()),
        ("location", Location()),
        ("vcard", Contact()),
        ("reaction", Reaction()),
        ("list_response", Interactive()),
        ("poll_creation", Unsupported(type="poll_creation")),
    ],
)
def test_v1_types_map_to_kinds_and_unknown_ones_are_kept_by_name(
    channel_type: str, media: object
) -> None:
    data = (
        b'{"id":"m","chatId":"1555@c.us","from":"1555@c.us","body":"","hasMedia":true,'
        b'"type":"' + channel_type.encode() + b'"}'
    )
    assert REGISTRY.from_fields(v1_entry(data)).data.media == media


def test_v1_without_media_has_none() -> None:
    data = b'{"id":"m","chatId":"1555@c.us","from":"1555@c.us","body":"hi","hasMedia":false}'
    assert REGISTRY.from_fields(v1_entry(data)).data.media is None


def test_v2_round_trip_carries_the_kind_tag() -> None:
    message = WhatsAppMessage(
        id="wamid.1",
        chat_id="1555@c.us",
        from_="1555@c.us",
        type="document",
        media=Document(
            id="media-1",
            mime="application/pdf",
            size=12,
            sha256="ab" * 32,
            caption="the invoice",
            filename="invoice.pdf",
        ),
    )
    fields = REGISTRY.to_fields(REGISTRY.event(message, source="whatsapp"))
    assert fields["v"] == "2"
    data = msgspec.json.decode(fields["data"])
    assert data["media"]["kind"] == "document" and data["media"]["filename"] == "invoice.pdf"
    assert "hasMedia" not in data
    assert REGISTRY.from_fields(fields).data == message
    assert (
        REGISTRY.from_fields(
            {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}
        ).data
        == message
    )


def test_an_unknown_kind_is_undecodable_with_the_reason() -> None:
    data = b'{"id":"m","chatId":"c","from":"c","media":{"kind":"hologram"}}'
    with pytest.raises(UndecodableEvent, match="hologram"):
        REGISTRY.from_fields(v1_entry(data, v=b"2"))


def test_every_kind_has_a_variant() -> None:
    for kind in KINDS:
        assert kind_of(kind) == kind
        assert msgspec.to_builtins(msgspec.convert({"kind": kind}, Media))["kind"] == kind


@pytest.mark.parametrize(
    ("body", "media", "text"),
    [
        ("hi", None, "hi"),
        ("the receipt", Image(caption="the receipt", sha256="a" * 64), "[image: the receipt]"),
        ("", Image(sha256="a" * 64), "[image]"),
        (
            "",
            Image(error="larger than the image cap"),
            "[image that could not be stored: larger than the image cap]",
        ),
        (
            "",
            Voice(sha256="a" * 64, transcript="call mum at six"),
            "[voice note, transcribed:] call mum at six",
        ),
        (
            "",
            Voice(sha256="a" * 64),
            "[voice note that could not be transcribed (no transcription is configured);"
            " tell the person so]",
        ),
        ("invoice", Document(filename="inv.pdf", caption="invoice"), "[document inv.pdf: invoice]"),
        (
            "",
            Location(latitude=-6.1754, longitude=106.8272, name="Monas"),
            "[location: Monas (-6.17540, 106.82720)]",
        ),
        ("", Contact(name="Budi", phones=["+62 812"]), "[contact card: Budi, +62 812]"),
        (
            "",
            Reaction(message_id="wamid.1", emoji="\U0001f44d"),
            "[reacted \U0001f44d to message wamid.1]",
        ),
        ("", Interactive(reply_id="yes", title="Yes please"), "[tapped the reply: Yes please]"),
        ("", Unsupported(type="order"), "[a order message, which this assistant cannot read]"),
    ],
)
def test_what_the_model_reads(body: str, media: Media | None, text: str) -> None:
    assert as_text(body, media) == text


def test_an_original_service_entry_with_only_from_and_media_decodes() -> None:
    """The original services wrote ``{from, body, type, hasMedia}`` without ids and without v:
    the engine adopts such entries (``aspri.agents.foreign``), so they must decode as v2."""
    data = b'{"from":"628123456789@c.us","body":"","type":"ptt","hasMedia":true}'
    message = REGISTRY.from_fields(v1_entry(data, v=None)).data
    assert (message.id, message.chat_id, message.from_) == ("", "", "628123456789@c.us")
    assert message.media == Voice()
