"""A document's text, for the model: plain text as it is, a PDF's text through pypdf.

Run before the message is recorded (the gateway's inbox, for every engine), so the text is
stored with the message and is what the model reads. Bounded: at most ``max_chars`` characters
are kept (the rest is cut, and the cut said), a PDF is read at most ``MAX_PAGES`` pages deep,
and a document that is not text nor PDF, or that pypdf cannot read, keeps no text (its name
still reaches the model). The work runs in a thread: a large PDF must not hold the loop.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from aspri.media.store import MediaStore
from aspri.schemas.media import Document, Media

log = logging.getLogger(__name__)

MAX_PAGES = 50
TEXT_TYPES = frozenset({"text/plain", "text/csv", "text/markdown"})
CUT = "\n[… the rest of the document is cut]"


def _pdf_text(path: Path, max_chars: int) -> str:
    reader = PdfReader(path)
    pieces: list[str] = []
    size = 0
    for page in reader.pages[:MAX_PAGES]:
        text = (page.extract_text() or "").strip()
        if text:
            pieces.append(text)
            size += len(text)
        if size > max_chars:
            break
    return "\n\n".join(pieces)


def _plain_text(path: Path, max_chars: int) -> str:
    with path.open("rb") as file:
        head = file.read(4 * max_chars + 4)
    return head.decode("utf-8", errors="replace")


def extract(path: Path, mime: str, max_chars: int) -> str | None:
    """The text of the document at ``path``, at most ``max_chars`` (None: no text to give)."""
    if mime == "application/pdf":
        text = _pdf_text(path, max_chars)
    elif mime in TEXT_TYPES:
        text = _plain_text(path, max_chars)
    else:
        return None
    text = text.replace("\x00", "").strip()
    if not text:
        return None
    return text if len(text) <= max_chars else text[:max_chars] + CUT


async def with_text(store: MediaStore, media: Media | None, max_chars: int) -> Media | None:
    """A stored document with its text (or with why there is none); anything else as it is."""
    if not isinstance(media, Document) or max_chars <= 0 or media.text is not None:
        return media
    path = store.find(media.sha256 or "")
    mime = (media.mime or "").partition(";")[0].strip().lower()
    if path is None or not mime:
        return media
    try:
        text = await asyncio.to_thread(extract, path, mime, max_chars)
    except (PyPdfError, ValueError, OSError) as exc:  # its name still reaches the model
        log.warning("document text not extracted", extra={"error": type(exc).__name__})
        return media
    return media if text is None else msgspec.structs.replace(media, text=text)
