"""A real OGG/Opus file made in the test (no encoder on a test machine): the two header pages
RFC 7845 requires and one page of 20 ms Opus silence frames, each page with its Ogg CRC, so a
browser's audio element loads it and knows its duration."""

from __future__ import annotations

import struct

SILENCE = b"\xf8\xff\xfe"
"""One Opus packet: 20 ms of silence (CELT, full band, mono)."""
PRE_SKIP = 312
SAMPLES_PER_FRAME = 960
"""20 ms at 48 kHz, the rate Opus granule positions count in."""


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return table


_TABLE = _crc_table()


def _crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _TABLE[(crc >> 24) ^ byte]
    return crc


def _page(packets: list[bytes], *, kind: int, granule: int, sequence: int) -> bytes:
    lacing = b""
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, kind, granule, 1, sequence, 0, len(lacing))
    page = header + lacing + b"".join(packets)
    return page[:22] + struct.pack("<I", _crc(page)) + page[26:]


def silent_opus(seconds: float = 1.0, comment: str = "") -> bytes:
    """``seconds`` of silence as OGG/Opus; ``comment`` (in the tags) makes the bytes differ."""
    frames = max(1, round(seconds * 50))
    head = struct.pack("<8sBBHIhB", b"OpusHead", 1, 1, PRE_SKIP, 48_000, 0, 0)
    vendor = b"aspri-tests"
    note = f"TITLE={comment}".encode()
    tags = (
        b"OpusTags"
        + struct.pack("<I", len(vendor))
        + vendor
        + struct.pack("<I", 1)
        + struct.pack("<I", len(note))
        + note
    )
    return (
        _page([head], kind=0x02, granule=0, sequence=0)
        + _page([tags], kind=0x00, granule=0, sequence=1)
        + _page(
            [SILENCE] * frames,
            kind=0x04,
            granule=PRE_SKIP + frames * SAMPLES_PER_FRAME,
            sequence=2,
        )
    )
