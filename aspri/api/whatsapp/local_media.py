"""``POST /api/local/media``: a file or a recorded voice note sent from the local web chat.

The page posts ``multipart/form-data``: ``from`` (the chat), ``file``, and optionally
``caption``, ``name`` and ``voice=true`` (a note recorded in the page with MediaRecorder). The
bytes go to the media store under the kind's cap (``MEDIA_MAX_MB``), exactly as the Cloud API's
downloads do, and the message becomes a v2 ``whatsapp:message`` whose ``media`` references them,
so transcription (voice notes, audio) and image parts work as on every other engine.

What is refused, with a 4xx naming the field: a body that is not multipart, a missing, empty or
oversized ``file``, a type the web chat does not send (``file``'s content type), an image whose
bytes are not an image, a caption or name too long.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.exceptions import ClientException

from aspri.api.common import ApiError
from aspri.api.limits import UPLOAD_OPT
from aspri.api.whatsapp.engines.local import LocalChannel
from aspri.api.whatsapp.gateway import MAX_MESSAGE_BYTES, Gateway
from aspri.api.whatsapp.routes import check_text, parse_chat_id
from aspri.media import MediaStore, MediaTooLarge, sniff
from aspri.media.transcribe import Transcriber, with_transcript
from aspri.schemas import media as parts
from aspri.schemas.api import LocalMessageAccepted, Success

log = logging.getLogger(__name__)

MULTIPART_SLACK = 4 * MAX_MESSAGE_BYTES + 64 * 1024
"""Room for the form's other fields (a caption) and the multipart framing beside the file."""
CHUNK = 256 * 1024
UPLOADS = ("image", "audio", "voice", "video", "document")
"""The kinds the page uploads (a sticker is not made in a web chat)."""

TYPES: dict[str, frozenset[str]] = {
    "image": frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"}),
    "audio": frozenset(
        {
            "audio/ogg",
            "audio/opus",
            "audio/mpeg",
            "audio/mp4",
            "audio/aac",
            "audio/amr",
            "audio/webm",
            "audio/wav",
            "audio/x-wav",
        }
    ),
    "video": frozenset({"video/mp4", "video/3gpp", "video/webm"}),
    "document": frozenset(
        {
            "application/pdf",
            "text/plain",
            "text/csv",
            "application/msword",
            "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/zip",
        }
    ),
}
"""The content types the web chat sends, by kind (WhatsApp's own list, roughly)."""
KIND_OF = {mime: kind for kind, mimes in TYPES.items() for mime in mimes}
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
NAME_MAX = 200


def upload_limit(caps: dict[str, int]) -> int:
    """The largest upload body: the largest cap of a kind the web chat sends, and the rest."""
    return max(caps.get(kind, 0) for kind in UPLOADS) + MULTIPART_SLACK


def _text_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_request", f"{name}: must be a text field, not a file")
    return value


def _kind(upload: UploadFile, voice: bool) -> tuple[str, str]:
    """The kind and the content type of ``upload``; 415 naming ``file`` for any other type."""
    declared = (upload.content_type or "").lower()
    base = declared.partition(";")[0].strip()
    kind = KIND_OF.get(base)
    if kind is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"file: {base or 'no content type'} is not a type the web chat sends (images: JPEG, "
            "PNG, WebP, GIF; audio; MP4, 3GPP or WebM video; PDF, text and office documents)",
        )
    if voice and kind == "audio":
        kind = "voice"
    return kind, declared if kind in ("audio", "voice") else base


def _filename(raw: str | None) -> str | None:
    if not raw:
        return None
    name = _UNSAFE_NAME.sub("_", raw.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip()
    return name[:NAME_MAX] or None


async def _chunks(first: bytes, upload: UploadFile) -> AsyncIterator[bytes]:
    yield first
    while chunk := await upload.read(CHUNK):
        yield chunk


async def _form(request: Request[Any, Any, Any]) -> Any:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type: {media_type or 'none'}; send multipart/form-data with a file field",
        )
    try:
        return await request.form()
    except (ClientException, UnicodeDecodeError) as exc:
        detail = getattr(exc, "detail", "") or str(exc)
        reason = f"body: not valid multipart/form-data ({detail})"
        raise ApiError(400, "invalid_multipart", reason) from None


@post(
    "/api/local/media",
    status_code=202,
    tags=["local"],
    opt={UPLOAD_OPT: True},
    request_max_body_size=None,  # BodyLimits applies the upload limit (UPLOAD_OPT)
)
async def post_local_media(
    request: Request[Any, Any, Any],
    gateway: NamedDependency[Gateway],
    media: NamedDependency[MediaStore],
) -> Success[LocalMessageAccepted]:
    """A file (image, audio, video, document) or a voice note recorded in the local web chat,
    stored like every engine's media and recorded as an inbound message carrying it."""
    form = await _form(request)
    try:
        chat_id = parse_chat_id(_text_field(form, "from") or "", "from")
        upload = form.get("file")
        if upload is None:
            raise ApiError(400, "invalid_request", "file: required (the file to send)")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "invalid_request", "file: must be a file part, not a text field")
        voice = (_text_field(form, "voice") or "").lower() in ("true", "1", "on")
        kind, mime = _kind(upload, voice)
        caption = (_text_field(form, "caption") or "").strip() or None
        if caption is not None:
            check_text(caption, "caption")
        name = (_text_field(form, "name") or "").strip()[:100] or None
        first = await upload.read(CHUNK)
        if not first:
            raise ApiError(400, "invalid_request", "file: is empty")
        if kind == "image" and (sniff(first[:16]) or "").partition("/")[0] != "image":
            raise ApiError(
                415,
                "unsupported_media_type",
                "file: the bytes are not a JPEG, PNG, WebP or GIF image",
            )
        try:
            stored = await media.put_stream(kind, _chunks(first, upload))
        except MediaTooLarge as exc:
            raise ApiError(
                413, "file_too_large", f"file: {exc} ({exc.cap / 1048576:g} MiB, MEDIA_MAX_MB)"
            ) from None
    finally:
        for value in form.values():
            if isinstance(value, UploadFile):
                await value.close()
    ref = parts.file_ref(
        kind,
        mime=stored.sniffed if kind == "image" else mime,
        size=stored.size,
        sha256=stored.sha256,
        caption=caption,
        filename=_filename(upload.filename) if kind != "voice" else None,
    )
    ref = await with_transcript(Transcriber.from_settings(gateway.settings), media, ref)
    message = msgspec.structs.replace(
        LocalChannel.inbound(chat_id, caption or "", name),
        type="audio" if kind == "voice" else kind,
        media=ref,
    )
    event, _ = await gateway.inbox.record(message)
    log.info("web chat media recorded", extra={"kind": kind, "bytes": stored.size})
    accepted = LocalMessageAccepted(
        event_id=event.event_id, chat_id=chat_id, throttled=event.data.throttled
    )
    return Success(data=accepted)
