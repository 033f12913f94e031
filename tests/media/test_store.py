"""The media store on a real directory: content addressing, caps, names, retention."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aspri.config import ConfigError, Settings
from aspri.media import MediaStore, MediaTooLarge, sniff

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"x" * 100


def files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def store(root: Path, **caps: int) -> MediaStore:
    return MediaStore(root, {"image": 1000, "document": 1000} | caps, retention_days=1)


async def test_the_same_bytes_are_stored_once_under_their_sha256(tmp_path: Path) -> None:
    media = store(tmp_path)
    first = await media.put("image", JPEG)
    second = await media.put("image", JPEG)
    assert first.sha256 == second.sha256 == hashlib.sha256(JPEG).hexdigest()
    assert (first.size, first.sniffed) == (len(JPEG), "image/jpeg")
    path = tmp_path / first.sha256[:2] / first.sha256
    assert files(tmp_path) == [path]
    assert media.find(first.sha256) == path


async def test_bytes_over_the_cap_are_refused_and_nothing_is_left(tmp_path: Path) -> None:
    media = store(tmp_path, image=50)
    chunks_read = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        while True:
            chunks_read += 1
            yield b"y" * 20

    with pytest.raises(MediaTooLarge, match="image cap of 50 bytes"):
        await media.put_stream("image", endless())
    assert chunks_read == 3  # stopped as soon as the cap was passed, not at the end
    assert files(tmp_path) == []
    with pytest.raises(MediaTooLarge):
        await media.put("sticker", b"z")  # a kind without a cap stores nothing


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "..", "A" * 64, "ab" * 31, "ab" * 33, "/" + "a" * 63, "a" * 63 + "\x00"],
)
def test_only_hex_sha256_names_make_a_path(tmp_path: Path, name: str) -> None:
    assert store(tmp_path).path_of(name) is None
    assert store(tmp_path).find(name) is None


async def test_retention_removes_files_not_stored_again(tmp_path: Path) -> None:
    media = store(tmp_path)
    old = await media.put("image", JPEG)
    new = await media.put("document", b"%PDF-1.7 fresh")
    old_path = media.find(old.sha256)
    assert old_path is not None
    two_days_ago = time.time() - 2 * 86400
    os.utime(old_path, (two_days_ago, two_days_ago))
    assert media.prune() == 1
    assert media.find(old.sha256) is None and media.find(new.sha256) is not None
    assert MediaStore(tmp_path, {}, retention_days=0).prune(now=time.time() + 10**9) == 0


def test_sniff_reads_the_bytes_not_the_claim() -> None:
    assert sniff(JPEG) == "image/jpeg"
    assert sniff(b"OggS\x00\x02") == "audio/ogg"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(b"\x00\x00\x00\x18ftypmp42") == "video/mp4"
    assert sniff(b"<html><script>alert(1)</script>") is None


def test_caps_and_retention_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {"MEDIA_MAX_MB": "image=2, document=0.5", "MEDIA_RETENTION_DAYS": "0"}
    )
    assert settings.media_max_bytes["image"] == 2 * 1024 * 1024
    assert settings.media_max_bytes["document"] == 512 * 1024
    assert settings.media_max_bytes["voice"] == 16 * 1024 * 1024
    assert settings.media_retention_days == 0
    assert Settings.from_env({}).media_max_bytes == Settings().media_max_bytes
    with pytest.raises(ConfigError, match="MEDIA_MAX_MB"):
        Settings.from_env({"MEDIA_MAX_MB": "hologram=5"})
    with pytest.raises(ConfigError, match="MEDIA_RETENTION_DAYS"):
        Settings.from_env({"MEDIA_RETENTION_DAYS": "-1"})
