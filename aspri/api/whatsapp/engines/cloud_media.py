"""What a Cloud API message carries besides text, as Meta's webhook shapes it, and the download.

Meta's media flow: the webhook gives a media id; ``GET /{media-id}`` with the access token
answers a short-lived URL (and the file's size); ``GET`` that URL with the same token gives
the bytes. They go to the media store while they arrive, stopped at the kind's cap; the event
keeps the reference. An outage (no connection, a 5xx, a 429) is tried again with a growing
pause; whatever still goes wrong (too large, the Graph API refusing, the last try failing) the
message is still recorded, its reference saying why there are no bytes.
"""

from __future__ import annotations

import logging

import httpx
import msgspec
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from aspri.media import MediaStore, MediaTooLarge
from aspri.schemas import media as parts

log = logging.getLogger(__name__)


class File(msgspec.Struct):
    """``image``, ``audio``, ``video``, ``document``, ``sticker`` of a webhook message."""

    id: str | None = None
    mime_type: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool = False


class Location(msgspec.Struct):
    latitude: float = 0.0
    longitude: float = 0.0
    name: str | None = None
    address: str | None = None


class _Name(msgspec.Struct):
    formatted_name: str | None = None


class _Phone(msgspec.Struct):
    phone: str | None = None
    wa_id: str | None = None


class ContactCard(msgspec.Struct):
    name: _Name | None = None
    phones: list[_Phone] = msgspec.field(default_factory=list)


class Reaction(msgspec.Struct):
    message_id: str | None = None
    emoji: str = ""


class _Reply(msgspec.Struct):
    id: str | None = None
    title: str = ""


class Interactive(msgspec.Struct):
    type: str = ""
    button_reply: _Reply | None = None
    list_reply: _Reply | None = None


class Button(msgspec.Struct):
    """A tap on a template's quick-reply button."""

    payload: str | None = None
    text: str = ""


class _MediaUrl(msgspec.Struct):
    url: str
    file_size: int = 0


FILE_TYPES = ("image", "audio", "video", "document", "sticker")
"""Meta's message types that carry a file to download."""


def _ref(
    kind: str,
    file: File,
    *,
    mime: str | None = None,
    size: int = 0,
    sha256: str | None = None,
    error: str | None = None,
) -> parts.Media:
    return parts.file_ref(
        kind,
        id=file.id,
        mime=mime or file.mime_type,
        size=size,
        sha256=sha256,
        caption=file.caption or None,
        filename=file.filename,
        error=error,
    )


class _Outage(Exception):
    """The Graph API is unreachable or failing (a 5xx, a 429): worth another try."""


def unresolved(kind: str, file: File) -> parts.Media:
    """The reference before any download: the type and the media id, nothing the sender wrote
    (what a throttled message keeps)."""
    return parts.file_ref(kind, id=file.id)


async def download(
    client: httpx.AsyncClient,
    store: MediaStore,
    kind: str,
    file: File,
    *,
    attempts: int = 1,
    wait_s: float = 1.0,
) -> parts.Media:
    """The reference to ``file`` once its bytes are stored, or one saying why they are not;
    outages are tried ``attempts`` times, waiting from ``wait_s`` on (doubling, with jitter)."""
    if not file.id:
        return _ref(kind, file, error="the webhook gave no media id")
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=wait_s, max=60.0, jitter=wait_s),
        retry=retry_if_exception_type(_Outage),
        reraise=True,
    )
    try:
        return await retrying(_fetch, client, store, kind, file)
    except _Outage as exc:
        log.warning("media download failed", extra={"kind": kind, "error": str(exc)})
        return _ref(kind, file, error=str(exc))


def _refused(status: int) -> bool:
    """A refusal that another try cannot change (a 4xx other than 429)."""
    return 400 <= status < 500 and status != 429


async def _fetch(
    client: httpx.AsyncClient, store: MediaStore, kind: str, file: File
) -> parts.Media:
    try:
        meta = await client.get(f"/{file.id}")
        if meta.status_code >= 400:
            error = f"the Graph API refused the media id ({meta.status_code})"
            if _refused(meta.status_code):
                return _ref(kind, file, error=error)
            raise _Outage(error)
        where = msgspec.json.decode(meta.content, type=_MediaUrl)
        cap = store.cap(kind)
        if where.file_size > cap:
            raise MediaTooLarge(kind, cap)
        async with client.stream("GET", where.url) as response:
            if response.status_code >= 400:
                error = f"the media download was refused ({response.status_code})"
                if _refused(response.status_code):
                    return _ref(kind, file, error=error)
                raise _Outage(error)
            stored = await store.put_stream(kind, response.aiter_bytes())
    except MediaTooLarge as exc:
        log.warning("media over the cap not stored", extra={"kind": kind, "cap": exc.cap})
        return _ref(kind, file, error=str(exc))
    except httpx.HTTPError as exc:
        raise _Outage(f"the media download failed ({type(exc).__name__})") from exc
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("media download failed", extra={"kind": kind, "error": type(exc).__name__})
        return _ref(kind, file, error=f"the media download failed ({type(exc).__name__})")
    if stored.sniffed and file.mime_type and stored.sniffed != file.mime_type.split(";")[0]:
        log.warning(
            "media bytes differ from the declared type",
            extra={"kind": kind, "declared": file.mime_type, "sniffed": stored.sniffed},
        )
    return _ref(kind, file, mime=stored.sniffed, size=stored.size, sha256=stored.sha256)


def location(raw: Location) -> parts.Location:
    return parts.Location(
        latitude=raw.latitude, longitude=raw.longitude, name=raw.name, address=raw.address
    )


def contact(cards: list[ContactCard]) -> parts.Contact:
    if not cards:
        return parts.Contact()
    card = cards[0]
    phones = [p.phone or p.wa_id or "" for p in card.phones]
    return parts.Contact(
        name=card.name.formatted_name if card.name else None, phones=[p for p in phones if p]
    )


def reaction(raw: Reaction) -> parts.Reaction:
    return parts.Reaction(message_id=raw.message_id, emoji=raw.emoji)


def interactive(raw: Interactive | None, button: Button | None) -> parts.Interactive:
    if button is not None:
        return parts.Interactive(reply_id=button.payload, title=button.text)
    reply = raw and (raw.button_reply or raw.list_reply)
    if not reply:
        return parts.Interactive()
    return parts.Interactive(reply_id=reply.id, title=reply.title)
