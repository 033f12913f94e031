"""``GET /api/media/{sha256}``: a stored media file, for the owner's API and the web chat.

Behind the API key like every non-public route (``aspri.api.access``). The name must be a
sha256 in lowercase hex, so nothing but a stored file can be reached. The response type is
what the bytes show (``aspri.media.sniff``), never what a sender claimed: a file ASPRI does
not recognise is served as an ``application/octet-stream`` download, and ``nosniff`` plus a
sandbox CSP keep a browser from running anything in it.
"""

from __future__ import annotations

import asyncio

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import File

from aspri.api.common import ApiError
from aspri.media import MediaStore, sniff

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "private, max-age=31536000, immutable",
}
"""A content-addressed file never changes under its name: cache it, never run it."""


def _head(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read(16)


@get("/api/media/{sha256:str}", tags=["media"])
async def get_media(sha256: FromPath[str], media: NamedDependency[MediaStore]) -> File:
    """The bytes of a stored media file, named by its sha256 (from a message's ``media``)."""
    if media.path_of(sha256) is None:
        raise ApiError(400, "invalid_request", "sha256: must be 64 lowercase hex digits")
    path = media.find(sha256)
    if path is None:
        raise ApiError(404, "unknown_media", f"no stored media {sha256}")
    mime = sniff(await asyncio.to_thread(_head, str(path)))
    return File(
        path,
        media_type=mime or "application/octet-stream",
        content_disposition_type="inline" if mime else "attachment",
        filename=sha256,
        headers=HEADERS,
    )
