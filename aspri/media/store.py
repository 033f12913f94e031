"""The media store: files named by their sha256 under ``ASPRI_DATA_DIR/media``.

Content addressing stores a file once however often it is sent, and makes a name safe by
construction: a path is only ever built from 64 lowercase hex digits, so no request can reach
another file. Bytes are written to a temporary file while they are hashed and counted, and
the write stops at the kind's size cap; the finished file is moved into place atomically, so
a reader never sees half a file. Retention removes files not stored again for that long.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SHA256 = re.compile(r"[0-9a-f]{64}")

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"#!AMR", "audio/amr"),
    (0, b"%PDF-", "application/pdf"),
    (4, b"ftyp", "video/mp4"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),  # Matroska/WebM: a browser's recorded voice note
)


def sniff(head: bytes) -> str | None:
    """The type the first bytes show, for the few types ASPRI serves inline; None otherwise."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    for offset, magic, mime in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return mime
    return None


class MediaTooLarge(Exception):
    """The bytes exceed the kind's cap; nothing was stored."""

    def __init__(self, kind: str, cap: int) -> None:
        super().__init__(f"larger than the {kind} cap of {cap} bytes")
        self.kind = kind
        self.cap = cap


@dataclass(frozen=True)
class Stored:
    sha256: str
    size: int
    sniffed: str | None
    """What the first bytes show (``sniff``); None for a type ASPRI does not recognise."""


class MediaStore:
    """Stores and finds media bytes by sha256. ``caps``: kind → max bytes."""

    def __init__(self, root: Path, caps: Mapping[str, int], retention_days: float = 0) -> None:
        self.root = root
        self.caps = dict(caps)
        self.retention_s = retention_days * 86400

    def cap(self, kind: str) -> int:
        return self.caps.get(kind, 0)

    def path_of(self, sha256: str) -> Path | None:
        """Where a file with this name lives; None for anything but 64 lowercase hex digits."""
        if not SHA256.fullmatch(sha256):
            return None
        return self.root / sha256[:2] / sha256

    def find(self, sha256: str) -> Path | None:
        path = self.path_of(sha256)
        return path if path is not None and path.is_file() else None

    async def put(self, kind: str, data: bytes) -> Stored:
        async def one() -> AsyncIterable[bytes]:
            yield data

        return await self.put_stream(kind, one())

    async def put_stream(self, kind: str, chunks: AsyncIterable[bytes]) -> Stored:
        """Store the bytes of ``chunks``; raise MediaTooLarge as soon as they pass the cap."""
        cap = self.cap(kind)
        tmp_dir = self.root / "tmp"
        await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        head = b""
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > cap:
                        raise MediaTooLarge(kind, cap)
                    digest.update(chunk)
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    await asyncio.to_thread(out.write, chunk)
            sha256 = digest.hexdigest()
            await asyncio.to_thread(self._place, tmp, sha256)
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        return Stored(sha256, size, sniff(head))

    def _place(self, tmp: Path, sha256: str) -> None:
        """Move ``tmp`` to its name, or only refresh the stored copy's time if there is one."""
        path = self.root / sha256[:2] / sha256
        if path.is_file():
            os.utime(path)
            return
        path.parent.mkdir(exist_ok=True)
        os.replace(tmp, path)

    def prune(self, now: float | None = None) -> int:
        """Remove files last stored more than the retention ago; how many went."""
        if self.retention_s <= 0 or not self.root.is_dir():
            return 0
        limit = (time.time() if now is None else now) - self.retention_s
        removed = 0
        for shard in self.root.iterdir():
            if not (len(shard.name) == 2 and shard.is_dir()):
                continue
            for path in shard.iterdir():
                if SHA256.fullmatch(path.name) and path.stat().st_mtime < limit:
                    path.unlink(missing_ok=True)
                    removed += 1
        if removed:
            log.info("media past retention removed", extra={"files": removed})
        return removed
