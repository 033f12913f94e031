"""What a message carries besides its text: a tagged union on ``kind``.

Files (image, audio, voice, video, document, sticker) are references: the bytes live in the
media store under their sha256 (``aspri.media``), never in an event. ``sha256`` is None while
the bytes were not fetched (a v1 entry, a refused download; ``error`` says why). Locations,
contact cards, reactions and button replies are small and carried whole. Anything else is
``Unsupported`` with the channel's own type name, so no message is dropped for its type.
"""

from __future__ import annotations

from typing import Any, cast

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
    """Why the bytes are not stored (too large, the download failed), or why an audio or a
    voice note has no transcript."""
    transcript: str | None = None
    """What an audio or a voice note says (``TRANSCRIPTION_PROVIDER``); the model reads it."""
    text: str | None = None
    """A document's text (PDF, plain text; ``DOCUMENT_TEXT_MAX_CHARS``); the model reads it."""


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

FILES: dict[str, type[MediaFile]] = {
    "image": Image,
    "audio": Audio,
    "voice": Voice,
    "video": Video,
    "document": Document,
    "sticker": Sticker,
}
"""The file variants by kind: every engine builds its references through ``file_ref``."""
FILE_KINDS = tuple(FILES)
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


_FILE_NAMES: dict[type[MediaFile], str] = {
    Image: "image",
    Audio: "audio",
    Voice: "voice note",
    Video: "video",
    Document: "document",
    Sticker: "sticker",
}


def as_text(body: str, media: Media | None) -> str:
    """The message as the model reads it: ``body`` with what it carries as a short note.

    A file is ``[image: caption]``; a voice note or audio its transcript, or a note that it
    could not be transcribed (so the model tells the person); a location, contact card,
    reaction or button reply a line of its own; an unsupported type names itself.
    """
    if media is None:
        return body
    if isinstance(media, MediaFile):
        what = _FILE_NAMES[type(media)]
        if isinstance(media, Document) and media.filename:
            what = f"document {media.filename}"
        if media.transcript:
            return f"[{what}, transcribed:] {media.transcript}"
        if media.text:
            said = f" {body or media.caption}" if body or media.caption else ""
            return f"[{what}, its text follows]{said}\n{media.text}"
        if isinstance(media, Audio | Voice):
            reason = media.error or "no transcription is configured"
            note = f"[{what} that could not be transcribed ({reason}); tell the person so]"
        elif media.error:
            note = f"[{what} that could not be stored: {media.error}]"
        else:
            note = f"[{what}]"
        text = body or media.caption or ""
        return f"{note[:-1]}: {text}]" if text else note
    if isinstance(media, Location):
        place = ", ".join(p for p in (media.name, media.address) if p)
        where = f"{media.latitude:.5f}, {media.longitude:.5f}"
        return f"[location: {place} ({where})]" if place else f"[location: {where}]"
    if isinstance(media, Contact):
        return f"[contact card: {', '.join(p for p in (media.name, *media.phones) if p)}]"
    if isinstance(media, Reaction):
        if not media.emoji:
            return "[removed a reaction]"
        return f"[reacted {media.emoji} to message {media.message_id or 'unknown'}]"
    if isinstance(media, Interactive):
        return f"[tapped the reply: {media.title or media.reply_id or 'unknown'}]"
    return f"[a {media.type or 'unknown'} message, which this assistant cannot read]"


def file_ref(kind: str, **fields: Any) -> Media:
    """The reference to a file of ``kind`` (a key of ``FILES``) with ``fields`` set."""
    return cast(Media, FILES[kind](**fields))  # every class in FILES is a variant of the union
