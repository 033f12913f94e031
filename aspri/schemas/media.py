"""What a message carries besides its text: a tagged union on ``kind``.

Files (image, audio, voice, video, document, sticker) are references: the bytes live in the
media store under their sha256 (``aspri.media``), never in an event. ``sha256`` is None while
the bytes were not fetched (a v1 entry, a refused download; ``error`` says why). Locations,
contact cards, reactions and button replies are small and carried whole. Anything else is
``Unsupported`` with the channel's own type name, so no message is dropped for its type.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Part(msgspec.Struct, frozen=True, kw_only=True, rename="camel", tag_field="kind"):
    """Base of every variant; ``kind`` is the tag on the wire."""


class MediaFile(_Part, frozen=True, kw_only=True):
    """A file: ``id`` is the channel's media id, ``sha256`` names the stored bytes."""

    id: str | None = None
    mime: str | None = None
    size: int = 0
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    error: str | None = None
    """Why the bytes are not stored (too large, the download failed), when they are not."""


class Image(MediaFile, frozen=True, kw_only=True, tag="image"):
    pass


class Audio(MediaFile, frozen=True, kw_only=True, tag="audio"):
    pass


class Voice(MediaFile, frozen=True, kw_only=True, tag="voice"):
    """A voice note (recorded in WhatsApp; Cloud API ``audio`` with ``voice: true``)."""


class Video(MediaFile, frozen=True, kw_only=True, tag="video"):
    pass


class Document(MediaFile, frozen=True, kw_only=True, tag="document"):
    pass


class Sticker(MediaFile, frozen=True, kw_only=True, tag="sticker"):
    pass


class Location(_Part, frozen=True, kw_only=True, tag="location"):
    latitude: float = 0.0
    longitude: float = 0.0
    name: str | None = None
    address: str | None = None


class Contact(_Part, frozen=True, kw_only=True, tag="contact"):
    """Contact cards: names and phone numbers (the first card's when several came)."""

    name: str | None = None
    phones: list[str] = msgspec.field(default_factory=list)


class Reaction(_Part, frozen=True, kw_only=True, tag="reaction"):
    """An emoji on another message (``emoji`` empty: the reaction was removed)."""

    message_id: str | None = None
    emoji: str = ""


class Interactive(_Part, frozen=True, kw_only=True, tag="interactive"):
    """A tap on a button or a list row the assistant sent."""

    reply_id: str | None = None
    title: str = ""


class Unsupported(_Part, frozen=True, kw_only=True, tag="unsupported"):
    """A message of a type ASPRI does not read, recorded with the channel's type name."""

    type: str = ""


Media = (
    Image
    | Audio
    | Voice
    | Video
    | Document
    | Sticker
    | Location
    | Contact
    | Reaction
    | Interactive
    | Unsupported
)

FILE_KINDS = ("image", "audio", "voice", "video", "document", "sticker")
KINDS = (*FILE_KINDS, "location", "contact", "reaction", "interactive", "unsupported")

_KIND_OF_TYPE = {
    **{kind: kind for kind in KINDS},
    "ptt": "voice",
    "vcard": "contact",
    "multi_vcard": "contact",
    "contacts": "contact",
    "button": "interactive",
    "buttons_response": "interactive",
    "list_response": "interactive",
    "template_button_reply": "interactive",
}
"""A channel's message type (Cloud API, WhatsApp Web) → ``kind``."""


def kind_of(channel_type: str) -> str:
    """The ``kind`` for a channel's type name; ``unsupported`` for one ASPRI does not read."""
    return _KIND_OF_TYPE.get(channel_type, "unsupported")


def placeholder(channel_type: str, caption: str | None = None) -> dict[str, Any]:
    """The wire dict of a part known only by its channel type (nothing fetched yet)."""
    kind = kind_of(channel_type)
    if kind == "unsupported":
        return {"kind": kind, "type": channel_type}
    if kind in FILE_KINDS:
        return {"kind": kind, "caption": caption or None}
    return {"kind": kind}
