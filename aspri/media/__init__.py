"""Media bytes, content-addressed on disk (never in Redis); events carry references to them."""

from aspri.media.store import MediaStore, MediaTooLarge, sniff

__all__ = ["MediaStore", "MediaTooLarge", "sniff"]
