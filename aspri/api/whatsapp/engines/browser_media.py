"""What a WhatsApp Web message carries besides text, as the bridge describes it, and the download.

The bridge (``browser_bridge.js``) describes each message's content (``PageMedia``). Files are
downloaded in the page by wa-js (``WPP.chat.downloadMedia``, which decrypts them as WhatsApp Web
does) and handed to Python in base64 chunks straight into the media store, which stops at the
kind's cap; the page refuses a file larger than the cap before any byte is sent. Locations,
contact cards, reactions and button replies are small and taken as they are; any other type is
recorded by its name. Whatever goes wrong the message is still recorded, its reference saying
why there are no bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from aspri.media import MediaStore, MediaTooLarge
from aspri.schemas import media as parts

log = logging.getLogger("aspri.whatsapp.browser")

CHUNK = 1 << 20
"""Bytes per call from the page (base64 makes a third more on the wire)."""


class PageMedia(msgspec.Struct, kw_only=True, rename="camel"):
    """The bridge's description of a message's content (``type`` is WhatsApp Web's)."""

    type: str
    mimetype: str | None = None
    filename: str | None = None
    size: int = 0
    caption: str | None = None
    lat: float | None = None
    lng: float | None = None
    loc: str | None = None
    vcards: list[str] = msgspec.field(default_factory=list)
    message_id: str | None = None
    emoji: str | None = None
    reply_id: str | None = None
    title: str | None = None


class DownloadFailed(Exception):
    """The page did not give the bytes; the message is the reason recorded."""


_DOWNLOAD = "([id, cap]) => window.__aspri.download(id, cap)"
_CHUNK = "([token, offset, length]) => window.__aspri.chunk(token, offset, length)"
_RELEASE = "(token) => window.__aspri.release(token)"


class _Downloaded(msgspec.Struct):
    size: int
    token: str | None = None
    mime: str | None = None
    too_large: bool = msgspec.field(default=False, name="tooLarge")


async def content(
    page: Page | None, store: MediaStore, message_id: str, described: PageMedia
) -> parts.Media:
    """The part ``described`` stands for; a file once its bytes are stored (or why not)."""
    kind = parts.kind_of(described.type)
    if kind in parts.FILES:
        return await _file(page, store, kind, message_id, described)
    if kind == "location":
        name, _, address = (described.loc or "").partition("\n")
        return parts.Location(
            latitude=described.lat or 0.0,
            longitude=described.lng or 0.0,
            name=name.strip() or None,
            address=address.strip() or None,
        )
    if kind == "contact":
        return vcard(described.vcards[0] if described.vcards else "")
    if kind == "reaction":
        return parts.Reaction(message_id=described.message_id, emoji=described.emoji or "")
    if kind == "interactive":
        return parts.Interactive(reply_id=described.reply_id, title=described.title or "")
    log.info("unsupported message type recorded", extra={"type": described.type})
    return parts.Unsupported(type=described.type)


def vcard(text: str) -> parts.Contact:
    """Name and phone numbers of a vCard (``FN`` and ``TEL`` lines; folded lines joined)."""
    name: str | None = None
    phones: list[str] = []
    for line in text.replace("\r\n ", "").replace("\n ", "").splitlines():
        field, sep, value = line.partition(":")
        if not sep:
            continue
        key = field.split(";", 1)[0].upper()
        if key == "FN" and name is None:
            name = value.strip() or None
        elif key == "TEL" and value.strip():
            phones.append(value.strip())
    return parts.Contact(name=name, phones=phones)


def _ref(
    kind: str,
    described: PageMedia,
    *,
    mime: str | None = None,
    size: int = 0,
    sha256: str | None = None,
    error: str | None = None,
) -> parts.Media:
    return parts.file_ref(
        kind,
        mime=mime or described.mimetype,
        size=size,
        sha256=sha256,
        caption=described.caption or None,
        filename=described.filename,
        error=error,
    )


async def _file(
    page: Page | None, store: MediaStore, kind: str, message_id: str, described: PageMedia
) -> parts.Media:
    cap = store.cap(kind)
    try:
        if described.size > cap:
            raise MediaTooLarge(kind, cap)
        if page is None:
            raise DownloadFailed("WhatsApp Web went away before the download")
        stored = await store.put_stream(kind, _chunks(page, message_id, cap, kind))
    except MediaTooLarge as exc:
        log.warning("media over the cap not stored", extra={"kind": kind, "cap": exc.cap})
        return _ref(kind, described, error=str(exc))
    except DownloadFailed as exc:
        log.warning("media download failed", extra={"kind": kind, "messageId": message_id})
        return _ref(kind, described, error=str(exc))
    except OSError as exc:
        log.error("media not stored", extra={"kind": kind, "error": repr(exc)})
        return _ref(kind, described, error=f"the media could not be stored ({type(exc).__name__})")
    declared = (described.mimetype or "").split(";")[0]
    if stored.sniffed and declared and stored.sniffed != declared:
        log.warning(
            "media bytes differ from the declared type",
            extra={"kind": kind, "declared": declared, "sniffed": stored.sniffed},
        )
    return _ref(kind, described, mime=stored.sniffed, size=stored.size, sha256=stored.sha256)


async def _chunks(page: Page, message_id: str, cap: int, kind: str) -> AsyncIterator[bytes]:
    """The file's bytes from the page, chunk by chunk; the page's copy is released after."""
    answer = await _call(page, _DOWNLOAD, [message_id, cap])
    try:
        got = msgspec.convert(answer, _Downloaded)
    except msgspec.ValidationError:
        raise DownloadFailed("WhatsApp Web answered the download with nonsense") from None
    if got.too_large or got.size > cap:
        raise MediaTooLarge(kind, cap)
    if got.token is None:
        raise DownloadFailed("WhatsApp Web answered the download with nonsense")
    if got.size <= 0:
        await _release(page, got.token)
        raise DownloadFailed("WhatsApp Web gave an empty file")
    try:
        offset = 0
        while offset < got.size:
            length = min(CHUNK, got.size - offset)
            encoded = await _call(page, _CHUNK, [got.token, offset, length])
            try:
                chunk = base64.b64decode(encoded, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise DownloadFailed("WhatsApp Web sent bytes that are not base64") from None
            if not chunk or len(chunk) > length:
                raise DownloadFailed("WhatsApp Web sent a chunk of the wrong size")
            offset += len(chunk)
            yield chunk
    finally:
        await _release(page, got.token)


async def _call(page: Page, expression: str, arg: Any) -> Any:
    try:
        return await page.evaluate(expression, arg)
    except PlaywrightError as exc:
        reason = (str(exc).splitlines() or ["unknown error"])[0][:200]
        raise DownloadFailed(f"the media download failed in WhatsApp Web: {reason}") from None


async def _release(page: Page, token: str) -> None:
    with contextlib.suppress(PlaywrightError):  # the page went away: so did its copy
        await page.evaluate(_RELEASE, token)
